"""Dense bfloat16 matrix product C = A @ B of an (M, K) and a (K, N) matrix, accumulated in float32.

Inputs are A (M, K), scaled by 1/sqrt(K), and B (K, N), both bfloat16; the output is (M, N) bfloat16
with entries of order 1. The tensor-core workload of the suite. ATOL = RTOL = 2e-2 covers the final
rounding to bfloat16 (up to 0.8% relative) and differences in the order of accumulation.
"""
import torch
import torch.nn as nn

M = 384
K = 384
N = 384

SIZES = {
    "gpu": {"M": 8192, "K": 8192, "N": 8192},
    "npu": {"M": 8192, "K": 8192, "N": 8192},
}

ATOL = 2e-2
RTOL = 2e-2


class Model(nn.Module):
    def __init__(self):
        super().__init__()

    def forward(self, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        return torch.matmul(a, b)


def get_inputs():
    a = torch.randn(M, K, dtype=torch.bfloat16) * K**-0.5
    return [a, torch.randn(K, N, dtype=torch.bfloat16)]


def get_init_inputs():
    return []


def get_flops():
    return 2 * M * N * K
