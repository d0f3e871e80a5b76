"""Batched float32 matrix product: one (M, K) @ (K, N) product per batch entry.

Inputs are A (batch_size, M, K) and B (batch_size, K, N) float32, output (batch_size, M, N) float32
(torch.bmm). Many independent medium-sized GEMMs in one launch.
"""
import torch
import torch.nn as nn

batch_size = 16
M = 256
K = 256
N = 256

SIZES = {
    "gpu": {"batch_size": 64, "M": 1024, "K": 1024, "N": 1024},
    "npu": {"batch_size": 64, "M": 1024, "K": 1024, "N": 1024},
}


class Model(nn.Module):
    def __init__(self):
        super().__init__()

    def forward(self, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        return torch.bmm(a, b)


def get_inputs():
    return [torch.randn(batch_size, M, K), torch.randn(batch_size, K, N)]


def get_init_inputs():
    return []


def get_flops():
    return 2 * batch_size * M * N * K
