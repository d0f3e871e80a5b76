"""Elementwise clamp of a (batch, dim) float32 matrix between min_value and max_value.

Input and output are (batch_size, dim) float32; the bounds (-0.5, 0.5) are constructor arguments, so
about 60% of the standard-normal inputs are clipped. Memory-bound, with two comparisons per element.
"""
import torch
import torch.nn as nn

batch_size = 3840
dim = 2048
min_value = -0.5
max_value = 0.5

SIZES = {
    "gpu": {"batch_size": 16384, "dim": 16384},
    "npu": {"batch_size": 16384, "dim": 16384},
}


class Model(nn.Module):
    def __init__(self, min_value: float, max_value: float):
        super().__init__()
        self.min_value = min_value
        self.max_value = max_value

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.clamp(x, self.min_value, self.max_value)


def get_inputs():
    return [torch.randn(batch_size, dim)]


def get_init_inputs():
    return [min_value, max_value]


def get_flops():
    return 2 * batch_size * dim
