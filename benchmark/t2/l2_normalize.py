"""L2 normalization of each row of a (batch, dim) float32 matrix: x / max(||x||_2, eps).

Input and output are (batch_size, dim) float32 (torch.nn.functional.normalize with p=2 over the last
dimension). The entries are about 1/sqrt(dim), below the default tolerance, so ATOL is 1e-5.
"""
import torch
import torch.nn as nn
import torch.nn.functional as F

batch_size = 3072
dim = 2048

SIZES = {
    "gpu": {"batch_size": 16384, "dim": 16384},
    "npu": {"batch_size": 16384, "dim": 16384},
}

ATOL = 1e-5
RTOL = 1e-3


class Model(nn.Module):
    def __init__(self):
        super().__init__()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.normalize(x, p=2.0, dim=-1)


def get_inputs():
    return [torch.randn(batch_size, dim)]


def get_init_inputs():
    return []


def get_flops():
    # square, sum, divide.
    return 3 * batch_size * dim
