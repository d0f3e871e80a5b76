"""Row-wise softmax over the last dimension of a (batch, dim) float32 matrix.

Input and output are (batch_size, dim) float32. Needs a max and a sum per row before it can write, so
a naive kernel reads the row three times; an online softmax reads it once. The probabilities are
about 1/dim, far below the default tolerance, so ATOL is set small enough that an all-zero output fails.
"""
import torch
import torch.nn as nn

batch_size = 3072
dim = 2048

SIZES = {
    "gpu": {"batch_size": 16384, "dim": 16384},
    "npu": {"batch_size": 16384, "dim": 16384},
}

# Several shapes (harness.suite.shapes), each checked and timed; the case scores the geometric mean of
# their speedups. The second and third: short rows of 1000 and rows longer than one 16384-wide block.
SHAPES = {
    "cpu": [{}, {"batch_size": 4097, "dim": 1000}, {"batch_size": 200, "dim": 20011}],
    "gpu": [{}, {"batch_size": 131071, "dim": 1000}, {"batch_size": 8191, "dim": 20011}],
    "npu": [{}, {"batch_size": 131071, "dim": 1000}, {"batch_size": 8191, "dim": 20011}],
}

ATOL = 1e-6
RTOL = 1e-3


class Model(nn.Module):
    def __init__(self):
        super().__init__()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.softmax(x, dim=-1)


def get_inputs():
    return [torch.randn(batch_size, dim)]


def get_init_inputs():
    return []


def get_flops():
    # max, subtract, exp, sum, divide.
    return 5 * batch_size * dim
