"""Triton row softmax for float16: float32 max and sum, one program per row, one read and one write."""
import torch
import torch.nn as nn

from harness.solutions.triton_kernels import softmax_lastdim


class ModelNew(nn.Module):
    def __init__(self):
        super().__init__()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return softmax_lastdim(x)
