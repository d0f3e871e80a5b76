"""Elementwise hyperbolic tangent of a (batch, dim) float32 matrix.

Input and output are (batch_size, dim) float32. Memory-bound; tests a transcendental that saturates
to +-1 and must stay accurate near zero.
"""
import torch
import torch.nn as nn

batch_size = 2048
dim = 2048

SIZES = {
    "gpu": {"batch_size": 16384, "dim": 16384},
    "npu": {"batch_size": 16384, "dim": 16384},
}


class Model(nn.Module):
    def __init__(self):
        super().__init__()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.tanh(x)


def get_inputs():
    return [torch.randn(batch_size, dim)]


def get_init_inputs():
    return []


def get_flops():
    return batch_size * dim
