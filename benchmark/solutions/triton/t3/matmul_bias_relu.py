"""Triton linear + ReLU: a tiled tl.dot GEMM (TF32 tensor cores, float32 accumulation; the case's
1e-2 tolerance admits TF32 here) with bias and ReLU applied in the epilogue before the tile is written."""
import torch
import torch.nn as nn

from harness.solutions.triton_kernels import gemm


class ModelNew(nn.Module):
    def __init__(self, in_features: int, out_features: int):
        super().__init__()
        self.linear = nn.Linear(in_features, out_features)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return gemm(x.contiguous(), self.linear.weight, self.linear.bias, act="relu")
