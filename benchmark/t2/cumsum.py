"""Inclusive prefix sum (cumsum) along the last dimension of a (batch, dim) float32 matrix.

Input and output are (batch_size, dim) float32. A scan: each output depends on all earlier elements
of its row, so a parallel kernel needs a block-wide scan and carries between blocks.
"""
import torch
import torch.nn as nn

batch_size = 3072
dim = 2048

SIZES = {
    "gpu": {"batch_size": 16384, "dim": 16384},
    "npu": {"batch_size": 16384, "dim": 16384},
}


class Model(nn.Module):
    def __init__(self):
        super().__init__()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.cumsum(x, dim=-1)


def get_inputs():
    return [torch.randn(batch_size, dim)]


def get_init_inputs():
    return []


def get_flops():
    return batch_size * dim
