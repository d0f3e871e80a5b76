"""Elementwise SiLU (swish), x * sigmoid(x), of a (batch, dim) float32 matrix.

Input and output are (batch_size, dim) float32. The activation of SwiGLU MLPs; memory-bound, with one
exponential per element.
"""
import torch
import torch.nn as nn
import torch.nn.functional as F

batch_size = 3840
dim = 2048

SIZES = {
    "gpu": {"batch_size": 16384, "dim": 16384},
    "npu": {"batch_size": 16384, "dim": 16384},
}


class Model(nn.Module):
    def __init__(self):
        super().__init__()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.silu(x)


def get_inputs():
    return [torch.randn(batch_size, dim)]


def get_init_inputs():
    return []


def get_flops():
    # x / (1 + exp(-x)): negate, exp, add, divide.
    return 4 * batch_size * dim
