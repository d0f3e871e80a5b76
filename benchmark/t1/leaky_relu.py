"""Elementwise leaky ReLU, x if x > 0 else slope * x, of a (batch, dim) float32 matrix.

Input and output are (batch_size, dim) float32; the negative slope (0.01) is a constructor argument.
Memory-bound, with a data-dependent select per element.
"""
import torch
import torch.nn as nn
import torch.nn.functional as F

batch_size = 3840
dim = 2048
negative_slope = 0.01

SIZES = {
    "gpu": {"batch_size": 16384, "dim": 16384},
    "npu": {"batch_size": 16384, "dim": 16384},
}


class Model(nn.Module):
    def __init__(self, negative_slope: float):
        super().__init__()
        self.negative_slope = negative_slope

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.leaky_relu(x, self.negative_slope)


def get_inputs():
    return [torch.randn(batch_size, dim)]


def get_init_inputs():
    return [negative_slope]


def get_flops():
    # compare and multiply.
    return 2 * batch_size * dim
