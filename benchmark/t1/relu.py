"""Elementwise ReLU, max(x, 0), of a (batch, dim) float32 matrix.

Input and output are (batch_size, dim) float32. The simplest memory-bound kernel: one read and one
write per element, so its speed is set by memory bandwidth alone.
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
        return torch.relu(x)


def get_inputs():
    return [torch.randn(batch_size, dim)]


def get_init_inputs():
    return []


def get_flops():
    return batch_size * dim
