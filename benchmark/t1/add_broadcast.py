"""Broadcast addition of a (dim,) row vector to every row of a (batch, dim) float32 matrix.

Inputs are x of shape (batch_size, dim) and bias of shape (dim,), both float32; the output is
(batch_size, dim). A bias add: the small operand is reused by every row, so a kernel should keep it
in cache or registers and stream x once.
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

    def forward(self, x: torch.Tensor, bias: torch.Tensor) -> torch.Tensor:
        return x + bias


def get_inputs():
    return [torch.randn(batch_size, dim), torch.randn(dim)]


def get_init_inputs():
    return []


def get_flops():
    return batch_size * dim
