"""Pre-norm MLP block with a residual connection: x + fc2(gelu(fc1(layernorm(x)))), in float32.

Input x is (batch_size, seq_len, hidden) float32; the output has the same shape. fc1 is
nn.Linear(hidden, ffn_dim), fc2 nn.Linear(ffn_dim, hidden), the GELU exact (erf). The second half of
a transformer layer: layer norm can fuse into the first GEMM's prologue, GELU into its epilogue and
the residual add into the second GEMM's epilogue.
"""
import torch
import torch.nn as nn
import torch.nn.functional as F

batch_size = 4
seq_len = 128
hidden = 256
ffn_dim = 1024

SIZES = {
    "gpu": {"batch_size": 4, "seq_len": 1024, "hidden": 1024, "ffn_dim": 4096},
    "npu": {"batch_size": 4, "seq_len": 1024, "hidden": 1024, "ffn_dim": 4096},
}

# Several shapes (harness.suite.shapes), each checked and timed; the case scores the geometric mean of
# their speedups. The second: a token count that is no multiple of a GEMM tile.
SHAPES = {
    "cpu": [{}, {"batch_size": 3, "seq_len": 77}],
    "gpu": [{}, {"batch_size": 3, "seq_len": 1111}],
    "npu": [{}, {"batch_size": 3, "seq_len": 1111}],
}


class Model(nn.Module):
    def __init__(self, hidden: int, ffn_dim: int):
        super().__init__()
        self.norm = nn.LayerNorm(hidden)
        self.fc1 = nn.Linear(hidden, ffn_dim)
        self.fc2 = nn.Linear(ffn_dim, hidden)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.fc2(F.gelu(self.fc1(self.norm(x))))


def get_inputs():
    return [torch.randn(batch_size, seq_len, hidden)]


def get_init_inputs():
    return [hidden, ffn_dim]


def get_flops():
    tokens = batch_size * seq_len
    return 2 * 2 * tokens * hidden * ffn_dim + 8 * tokens * hidden + 6 * tokens * ffn_dim
