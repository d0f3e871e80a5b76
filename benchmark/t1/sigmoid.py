"""Elementwise logistic sigmoid, 1 / (1 + exp(-x)), of a (batch, dim) float32 matrix.

Input and output are (batch_size, dim) float32. Memory-bound with one exponential per element; a
naive kernel must avoid overflow of exp(-x) for large negative x.
"""
import torch
import torch.nn as nn

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
        return torch.sigmoid(x)


def get_inputs():
    return [torch.randn(batch_size, dim)]


def get_init_inputs():
    return []


def get_flops():
    # negate, exp, add, reciprocal.
    return 4 * batch_size * dim
