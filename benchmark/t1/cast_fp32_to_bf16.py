"""Cast a (batch, dim) float32 matrix to bfloat16 (round to nearest even).

Input is (batch_size, dim) float32, output (batch_size, dim) bfloat16: 4 bytes read and 2 written per
element. The output dtype must be bfloat16 and the values must equal PyTorch's round-to-nearest-even
exactly: the default tolerance would forgive truncation (one bfloat16 ulp), so this case sets it to 0.
"""
import torch
import torch.nn as nn

batch_size = 7680
dim = 2048

SIZES = {
    "gpu": {"batch_size": 16384, "dim": 16384},
    "npu": {"batch_size": 16384, "dim": 16384},
}

ATOL = 0.0  # a cast has exactly one right answer
RTOL = 0.0


class Model(nn.Module):
    def __init__(self):
        super().__init__()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x.to(torch.bfloat16)


def get_inputs():
    return [torch.randn(batch_size, dim)]


def get_init_inputs():
    return []


def get_flops():
    return batch_size * dim
