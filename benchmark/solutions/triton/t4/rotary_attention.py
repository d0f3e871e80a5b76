"""Triton RoPE + causal attention: a rotate-half RoPE kernel for q and k, then a causal flash-attention
kernel that skips key blocks above the diagonal. TF32 tensor cores with float32 accumulation and a
float32 online softmax."""
import torch
import torch.nn as nn
import triton
import triton.language as tl

from harness.solutions.triton_kernels import attention


@triton.jit
def _rope_kernel(x_ptr, cos_ptr, sin_ptr, y_ptr, n_rows, seq, D: tl.constexpr, ROWS: tl.constexpr):
    """Rotate-half RoPE of ROWS rows of a contiguous (..., seq, D) tensor."""
    rows = tl.program_id(0) * ROWS + tl.arange(0, ROWS)
    mask = (rows < n_rows)[:, None]
    pos = rows % seq
    offs = tl.arange(0, D)
    half = D // 2
    partner = (offs + half) % D
    sign = tl.where(offs < half, -1.0, 1.0)
    base = rows.to(tl.int64)[:, None] * D
    x = tl.load(x_ptr + base + offs[None, :], mask=mask, other=0.0)
    xp = tl.load(x_ptr + base + partner[None, :], mask=mask, other=0.0)
    c = tl.load(cos_ptr + pos[:, None] * D + offs[None, :], mask=mask, other=0.0)
    s = tl.load(sin_ptr + pos[:, None] * D + offs[None, :], mask=mask, other=0.0)
    tl.store(y_ptr + base + offs[None, :], x * c + sign[None, :] * xp * s, mask=mask)


def rope(x, cos, sin):
    y = torch.empty_like(x)
    d = x.shape[-1]
    rows = x.numel() // d
    _rope_kernel[(triton.cdiv(rows, 16),)](x, cos, sin, y, rows, x.shape[-2], D=d, ROWS=16, num_warps=4)
    return y


class ModelNew(nn.Module):
    def __init__(self, seq_len: int, head_dim: int, base: float = 10000.0):
        super().__init__()
        inv_freq = 1.0 / base ** (torch.arange(0, head_dim, 2, dtype=torch.float32) / head_dim)
        angles = torch.outer(torch.arange(seq_len, dtype=torch.float32), inv_freq)
        angles = torch.cat((angles, angles), dim=-1)
        self.register_buffer("cos", angles.cos().contiguous(), persistent=False)
        self.register_buffer("sin", angles.sin().contiguous(), persistent=False)

    def forward(self, q: torch.Tensor, k: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
        b, h, s, d = q.shape
        q = rope(q.contiguous(), self.cos, self.sin)
        k = rope(k.contiguous(), self.cos, self.sin)
        out = torch.empty_like(q)
        return attention(q, k, v, out, h, causal=True)
