"""Per-channel scaling: multiply an NCHW float32 tensor by a (channels, 1, 1) tensor.

Inputs are x of shape (batch_size, channels, height, width) and scale of shape (channels, 1, 1),
both float32; the output has the shape of x. The broadcast runs over the two innermost and the
outermost dimension, as in a folded batch norm or a squeeze-and-excitation gate.
"""
import torch
import torch.nn as nn

batch_size = 30
channels = 64
height = 64
width = 64

SIZES = {
    "gpu": {"batch_size": 64, "channels": 256, "height": 128, "width": 128},
    "npu": {"batch_size": 64, "channels": 256, "height": 128, "width": 128},
}


class Model(nn.Module):
    def __init__(self):
        super().__init__()

    def forward(self, x: torch.Tensor, scale: torch.Tensor) -> torch.Tensor:
        return x * scale


def get_inputs():
    return [torch.randn(batch_size, channels, height, width), torch.randn(channels, 1, 1)]


def get_init_inputs():
    return []


def get_flops():
    return batch_size * channels * height * width
