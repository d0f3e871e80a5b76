"""Row-wise softmax over the last dimension of a (batch, dim) float16 matrix.

Input and output are (batch_size, dim) float16; accumulate the row max and sum in float32. Half the
bytes of the float32 softmax. RTOL is 1e-2 (about 20 float16 ulps, for different accumulation
orders); ATOL is 1e-5 because the probabilities are about 1/dim, so the default 1e-2 would accept zeros.
"""
import torch
import torch.nn as nn

batch_size = 4096
dim = 2048

SIZES = {
    "gpu": {"batch_size": 32768, "dim": 16384},
    "npu": {"batch_size": 32768, "dim": 16384},
}

ATOL = 1e-5
RTOL = 1e-2


class Model(nn.Module):
    def __init__(self):
        super().__init__()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.softmax(x, dim=-1)


def get_inputs():
    return [torch.randn(batch_size, dim, dtype=torch.float16)]


def get_init_inputs():
    return []


def get_flops():
    return 5 * batch_size * dim
