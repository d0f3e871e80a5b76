"""Triton column max (amax over dim 0): stage 1 reduces [ROWS, COLS] tiles of a row slice per program
(contiguous column loads), stage 2 reduces the SPLIT partial rows."""
import torch
import torch.nn as nn
import triton
import triton.language as tl


@triton.jit
def _partial_colmax(x_ptr, part_ptr, n_rows, n_cols, rows_per_split, ROWS: tl.constexpr, COLS: tl.constexpr):
    cols = tl.program_id(0) * COLS + tl.arange(0, COLS)
    split = tl.program_id(1)
    col_mask = cols < n_cols
    acc = tl.full([ROWS, COLS], -float("inf"), tl.float32)
    first = split * rows_per_split
    for start in range(0, rows_per_split, ROWS):
        rows = first + start + tl.arange(0, ROWS)
        mask = (rows < n_rows)[:, None] & col_mask[None, :]
        x = tl.load(x_ptr + rows.to(tl.int64)[:, None] * n_cols + cols[None, :], mask=mask, other=-float("inf"))
        acc = tl.maximum(acc, x)
    tl.store(part_ptr + split * n_cols + cols, tl.max(acc, axis=0), mask=col_mask)


@triton.jit
def _final_colmax(part_ptr, y_ptr, n_split, n_cols, SPLIT: tl.constexpr, COLS: tl.constexpr):
    cols = tl.program_id(0) * COLS + tl.arange(0, COLS)
    splits = tl.arange(0, SPLIT)
    mask = (splits < n_split)[:, None] & (cols < n_cols)[None, :]
    part = tl.load(part_ptr + splits[:, None] * n_cols + cols[None, :], mask=mask, other=-float("inf"))
    tl.store(y_ptr + cols, tl.max(part, axis=0), mask=cols < n_cols)


class ModelNew(nn.Module):
    def __init__(self):
        super().__init__()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x.contiguous()
        n_rows, n_cols = x.shape
        rows, cols = 32, min(128, triton.next_power_of_2(n_cols))
        split = max(1, min(64, triton.cdiv(n_rows, 256)))
        rows_per_split = triton.cdiv(triton.cdiv(n_rows, split), rows) * rows
        part = torch.empty((split, n_cols), device=x.device, dtype=x.dtype)
        _partial_colmax[(triton.cdiv(n_cols, cols), split)](
            x, part, n_rows, n_cols, rows_per_split, ROWS=rows, COLS=cols, num_warps=4
        )
        y = torch.empty(n_cols, device=x.device, dtype=x.dtype)
        _final_colmax[(triton.cdiv(n_cols, 128),)](
            part, y, split, n_cols, SPLIT=triton.next_power_of_2(split), COLS=128, num_warps=4
        )
        return y
