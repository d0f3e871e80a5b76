"""Triton batched float32 GEMM: one grid axis per batch entry, 3xTF32 tensor-core products (float32-level
accuracy) with float32 accumulation."""
import torch
import torch.nn as nn

from harness.solutions.triton_kernels import gemm


class ModelNew(nn.Module):
    def __init__(self):
        super().__init__()

    def forward(self, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        return gemm(a.contiguous(), b.contiguous(), precision="tf32x3", b_is_weight=False)
