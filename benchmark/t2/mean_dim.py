"""Mean of each row of a (batch, dim) float32 matrix (reduction over the last dimension).

Input is (batch_size, dim) float32, output (batch_size,) float32. A contiguous row reduction: reads
every element once and writes one value per row. The means are about 1/sqrt(dim), below the default
tolerance, so ATOL is 1e-4.
"""
import torch
import torch.nn as nn

batch_size = 4096
dim = 4096

SIZES = {
    "gpu": {"batch_size": 16384, "dim": 16384},
    "npu": {"batch_size": 16384, "dim": 16384},
}

ATOL = 1e-4
RTOL = 1e-3


class Model(nn.Module):
    def __init__(self):
        super().__init__()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.mean(x, dim=-1)


def get_inputs():
    return [torch.randn(batch_size, dim)]


def get_init_inputs():
    return []


def get_flops():
    return batch_size * dim
