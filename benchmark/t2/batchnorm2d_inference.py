"""Inference-mode 2-D batch normalization of an NCHW float32 tensor with running statistics.

Input and output are (batch_size, channels, height, width) float32. Uses the stored running mean and
variance (randomly initialised, never the batch statistics) and a random per-channel affine:
y = (x - mean[c]) / sqrt(var[c] + eps) * weight[c] + bias[c], which folds to one multiply-add per element.
"""
import torch
import torch.nn as nn
import torch.nn.functional as F

batch_size = 24
channels = 64
height = 64
width = 64

SIZES = {
    "gpu": {"batch_size": 64, "channels": 256, "height": 128, "width": 128},
    "npu": {"batch_size": 64, "channels": 256, "height": 128, "width": 128},
}


class Model(nn.Module):
    def __init__(self, channels: int):
        super().__init__()
        self.bn = nn.BatchNorm2d(channels)
        nn.init.normal_(self.bn.weight, mean=1.0, std=0.1)
        nn.init.normal_(self.bn.bias, std=0.1)
        nn.init.normal_(self.bn.running_mean, std=0.5)
        nn.init.uniform_(self.bn.running_var, 0.5, 1.5)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        bn = self.bn
        return F.batch_norm(
            x, bn.running_mean, bn.running_var, bn.weight, bn.bias, training=False, eps=bn.eps
        )


def get_inputs():
    return [torch.randn(batch_size, channels, height, width)]


def get_init_inputs():
    return [channels]


def get_flops():
    # folded to a multiply and an add per element.
    return 2 * batch_size * channels * height * width
