"""Sum of a (batch, rows, cols) float32 tensor over its middle dimension.

Input is (batch_size, rows, cols) float32, output (batch_size, cols) float32. The reduced dimension is
not the innermost one, so each thread's inputs are strided; a good kernel reduces across rows while
keeping the column loads contiguous.
"""
import torch
import torch.nn as nn

batch_size = 64
rows = 512
cols = 512

SIZES = {
    "gpu": {"batch_size": 256, "rows": 2048, "cols": 512},
    "npu": {"batch_size": 256, "rows": 2048, "cols": 512},
}


class Model(nn.Module):
    def __init__(self):
        super().__init__()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.sum(x, dim=1)


def get_inputs():
    return [torch.randn(batch_size, rows, cols)]


def get_init_inputs():
    return []


def get_flops():
    return batch_size * rows * cols
