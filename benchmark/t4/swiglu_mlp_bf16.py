"""SwiGLU gated MLP in bfloat16: down(silu(gate(x)) * up(x)), as in LLaMA-style transformers.

Input x is (tokens, hidden) bfloat16; gate and up are bias-free nn.Linear(hidden, ffn) and down an
nn.Linear(ffn, hidden), all bfloat16; the output is (tokens, hidden) bfloat16. Three GEMMs; the
gate and up projections can share one read of x and the SiLU-product can be fused into their
epilogue. ATOL = RTOL = 2e-2: the reference rounds the intermediates to bfloat16, a fused kernel may not.
"""
import torch
import torch.nn as nn
import torch.nn.functional as F

tokens = 512
hidden = 512
ffn = 1408

SIZES = {
    "gpu": {"tokens": 8192, "hidden": 4096, "ffn": 11008},
    "npu": {"tokens": 8192, "hidden": 4096, "ffn": 11008},
}

ATOL = 2e-2
RTOL = 2e-2


class Model(nn.Module):
    def __init__(self, hidden: int, ffn: int):
        super().__init__()
        self.gate = nn.Linear(hidden, ffn, bias=False, dtype=torch.bfloat16)
        self.up = nn.Linear(hidden, ffn, bias=False, dtype=torch.bfloat16)
        self.down = nn.Linear(ffn, hidden, bias=False, dtype=torch.bfloat16)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.down(F.silu(self.gate(x)) * self.up(x))


def get_inputs():
    return [torch.randn(tokens, hidden, dtype=torch.bfloat16)]


def get_init_inputs():
    return [hidden, ffn]


def get_flops():
    return 3 * 2 * tokens * hidden * ffn + 5 * tokens * ffn
