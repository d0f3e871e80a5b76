"""Triton row log-softmax: one program per row; rows up to 32768 are held in registers (one read, one write)."""
import torch
import torch.nn as nn
import triton
import triton.language as tl

from harness.solutions.triton_kernels import row_max_and_sum_exp


@triton.jit
def _log_softmax_rows(x_ptr, y_ptr, n_cols, BLOCK: tl.constexpr):
    row = tl.program_id(0).to(tl.int64)
    cols = tl.arange(0, BLOCK)
    mask = cols < n_cols
    x = tl.load(x_ptr + row * n_cols + cols, mask=mask, other=-float("inf")).to(tl.float32)
    shifted = x - tl.max(x, axis=0)
    lse = tl.log(tl.sum(tl.exp(shifted), axis=0))
    tl.store(y_ptr + row * n_cols + cols, shifted - lse, mask=mask)


@triton.jit
def _log_softmax_looped(x_ptr, y_ptr, n_cols, BLOCK: tl.constexpr):
    row = tl.program_id(0).to(tl.int64)
    base = row * n_cols
    row_max, total = row_max_and_sum_exp(x_ptr, base, n_cols, BLOCK)
    lse = row_max + tl.log(total)
    for start in range(0, n_cols, BLOCK):
        cols = start + tl.arange(0, BLOCK)
        mask = cols < n_cols
        x = tl.load(x_ptr + base + cols, mask=mask, other=0.0).to(tl.float32)
        tl.store(y_ptr + base + cols, x - lse, mask=mask)


class ModelNew(nn.Module):
    def __init__(self):
        super().__init__()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x.contiguous()
        n_cols = x.shape[-1]
        rows = x.numel() // n_cols
        y = torch.empty_like(x)
        block = triton.next_power_of_2(n_cols)
        if block <= 32768:
            _log_softmax_rows[(rows,)](x, y, n_cols, BLOCK=block, num_warps=max(4, min(32, block // 1024)))
        else:
            _log_softmax_looped[(rows,)](x, y, n_cols, BLOCK=4096, num_warps=8)
        return y
