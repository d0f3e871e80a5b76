"""Triton linear + exact GELU: a tiled tl.dot GEMM (TF32 tensor cores, float32 accumulation) with bias
and erf-GELU in the epilogue."""
import torch
import torch.nn as nn

from harness.solutions.triton_kernels import gemm


class ModelNew(nn.Module):
    def __init__(self, in_features: int, out_features: int):
        super().__init__()
        self.linear = nn.Linear(in_features, out_features)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return gemm(x.contiguous(), self.linear.weight, self.linear.bias, act="gelu")
