"""Scalar affine map y = alpha * x + beta of a (batch, dim) float32 matrix.

Input and output are (batch_size, dim) float32; alpha and beta are Python floats given to the
constructor. Two elementwise operations that eager PyTorch runs as two kernels and a fused kernel
does in one pass.
"""
import torch
import torch.nn as nn

batch_size = 3840
dim = 2048
alpha = 1.75
beta = -0.5

SIZES = {
    "gpu": {"batch_size": 16384, "dim": 16384},
    "npu": {"batch_size": 16384, "dim": 16384},
}


class Model(nn.Module):
    def __init__(self, alpha: float, beta: float):
        super().__init__()
        self.alpha = alpha
        self.beta = beta

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * self.alpha + self.beta


def get_inputs():
    return [torch.randn(batch_size, dim)]


def get_init_inputs():
    return [alpha, beta]


def get_flops():
    return 2 * batch_size * dim
