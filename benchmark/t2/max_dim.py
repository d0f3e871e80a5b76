"""Column-wise maximum of a (batch, dim) float32 matrix (values only, no argmax).

Input is (batch_size, dim) float32, output (dim,) float32: torch.amax over dimension 0. Each output
reduces a strided column, so a kernel must tile across rows to keep loads coalesced.
"""
import torch
import torch.nn as nn

batch_size = 4096
dim = 4096

SIZES = {
    "gpu": {"batch_size": 16384, "dim": 16384},
    "npu": {"batch_size": 16384, "dim": 16384},
}


class Model(nn.Module):
    def __init__(self):
        super().__init__()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.amax(x, dim=0)


def get_inputs():
    return [torch.randn(batch_size, dim)]


def get_init_inputs():
    return []


def get_flops():
    return batch_size * dim
