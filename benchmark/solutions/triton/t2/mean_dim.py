"""Triton row mean: each program reduces ROWS rows with a [ROWS, BLOCK] tile loop (contiguous loads)."""
import torch
import torch.nn as nn
import triton
import triton.language as tl


@triton.jit
def _row_mean(x_ptr, y_ptr, n_rows, n_cols, ROWS: tl.constexpr, BLOCK: tl.constexpr):
    rows = tl.program_id(0) * ROWS + tl.arange(0, ROWS)
    row_mask = rows < n_rows
    base = rows.to(tl.int64)[:, None] * n_cols
    acc = tl.zeros([ROWS, BLOCK], tl.float32)
    for start in range(0, n_cols, BLOCK):
        cols = start + tl.arange(0, BLOCK)
        mask = row_mask[:, None] & (cols < n_cols)[None, :]
        acc += tl.load(x_ptr + base + cols[None, :], mask=mask, other=0.0).to(tl.float32)
    tl.store(y_ptr + rows, tl.sum(acc, axis=1) / n_cols, mask=row_mask)


class ModelNew(nn.Module):
    def __init__(self):
        super().__init__()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x.contiguous()
        n_cols = x.shape[-1]
        n_rows = x.numel() // n_cols
        y = torch.empty(x.shape[:-1], device=x.device, dtype=x.dtype)
        rows, block = 4, min(2048, triton.next_power_of_2(n_cols))
        _row_mean[(triton.cdiv(n_rows, rows),)](x, y, n_rows, n_cols, ROWS=rows, BLOCK=block, num_warps=8)
        return y
