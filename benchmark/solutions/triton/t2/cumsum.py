"""Triton row cumsum: one program per row, blocks scanned with tl.cumsum and a running carry."""
import torch
import torch.nn as nn
import triton
import triton.language as tl


@triton.jit
def _row_cumsum(x_ptr, y_ptr, n_cols, BLOCK: tl.constexpr):
    row = tl.program_id(0).to(tl.int64)
    base = row * n_cols
    carry = tl.zeros([1], tl.float32)
    for start in range(0, n_cols, BLOCK):
        cols = start + tl.arange(0, BLOCK)
        mask = cols < n_cols
        x = tl.load(x_ptr + base + cols, mask=mask, other=0.0).to(tl.float32)
        scan = tl.cumsum(x, axis=0) + carry
        tl.store(y_ptr + base + cols, scan, mask=mask)
        carry = tl.sum(x, axis=0) + carry


class ModelNew(nn.Module):
    def __init__(self):
        super().__init__()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x.contiguous()
        n_cols = x.shape[-1]
        rows = x.numel() // n_cols
        y = torch.empty_like(x)
        _row_cumsum[(rows,)](x, y, n_cols, BLOCK=min(4096, triton.next_power_of_2(n_cols)), num_warps=8)
        return y
