"""Dense float32 matrix product C = A @ B of an (M, K) and a (K, N) matrix.

Inputs are A (M, K) and B (K, N) float32, output (M, N) float32. Compute-bound at the GPU size; the
reference runs true float32 (TF32 off), so a TF32 or lower-precision kernel will not pass.
"""
import torch
import torch.nn as nn

M = 1024
K = 1024
N = 1024

SIZES = {
    "gpu": {"M": 4096, "K": 4096, "N": 4096},
    "npu": {"M": 4096, "K": 4096, "N": 4096},
}

# Several shapes (harness.suite.shapes), each checked and timed; the case scores the geometric mean of
# their speedups. The second: a ragged K and odd M and N.
SHAPES = {
    "cpu": [{}, {"M": 1000, "K": 1531, "N": 999}],
    "gpu": [{}, {"M": 3000, "K": 4097, "N": 5000}],
    "npu": [{}, {"M": 3000, "K": 4097, "N": 5000}],
}


class Model(nn.Module):
    def __init__(self):
        super().__init__()

    def forward(self, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        return torch.matmul(a, b)


def get_inputs():
    return [torch.randn(M, K), torch.randn(K, N)]


def get_init_inputs():
    return []


def get_flops():
    return 2 * M * N * K
