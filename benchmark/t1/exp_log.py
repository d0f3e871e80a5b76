"""Two outputs: exp(x) of a standard-normal matrix and log(y) of a positive matrix, both float32.

Inputs are x of shape (batch_size, dim), standard normal, and y of shape (batch_size, dim), uniform in
[0.5, 1.5); the outputs are the tuple (exp(x), log(y)), each (batch_size, dim) float32. Two
independent transcendental maps, and the only tier-1 case with a tuple of outputs.
"""
import torch
import torch.nn as nn

batch_size = 2048
dim = 2048

SIZES = {
    "gpu": {"batch_size": 16384, "dim": 8192},
    "npu": {"batch_size": 16384, "dim": 8192},
}

# Several shapes (harness.suite.shapes), each checked and timed; the case scores the geometric mean of
# their speedups. The second: odd row and column counts.
SHAPES = {
    "cpu": [{}, {"batch_size": 1531, "dim": 2047}],
    "gpu": [{}, {"batch_size": 12289, "dim": 10001}],
    "npu": [{}, {"batch_size": 12289, "dim": 10001}],
}


class Model(nn.Module):
    def __init__(self):
        super().__init__()

    def forward(self, x: torch.Tensor, y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return torch.exp(x), torch.log(y)


def get_inputs():
    return [torch.randn(batch_size, dim), torch.rand(batch_size, dim) + 0.5]


def get_init_inputs():
    return []


def get_flops():
    return 2 * batch_size * dim
