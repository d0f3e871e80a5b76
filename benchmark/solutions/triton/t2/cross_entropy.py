"""Triton fused cross-entropy: per row an online log-sum-exp over the logits (read once) minus the
target's logit, then a second small kernel that averages the row losses in a fixed order.
The log-probabilities are never written."""
import torch
import torch.nn as nn
import triton
import triton.language as tl

from harness.solutions.triton_kernels import row_max_and_sum_exp


@triton.jit
def _row_losses(x_ptr, t_ptr, loss_ptr, n_cols, BLOCK: tl.constexpr):
    row = tl.program_id(0).to(tl.int64)
    base = row * n_cols
    row_max, total = row_max_and_sum_exp(x_ptr, base, n_cols, BLOCK)
    lse = row_max + tl.log(total)
    target = tl.load(t_ptr + row)
    picked = tl.load(x_ptr + base + target).to(tl.float32)
    tl.store(loss_ptr + row, lse - picked)


@triton.jit
def _mean(loss_ptr, out_ptr, n, BLOCK: tl.constexpr):
    acc = tl.zeros([BLOCK], tl.float32)
    for start in range(0, n, BLOCK):
        offs = start + tl.arange(0, BLOCK)
        acc += tl.load(loss_ptr + offs, mask=offs < n, other=0.0)
    tl.store(out_ptr, tl.sum(acc, axis=0) / n)


class ModelNew(nn.Module):
    def __init__(self):
        super().__init__()

    def forward(self, logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        logits = logits.contiguous()
        targets = targets.contiguous()
        rows, n_cols = logits.shape
        losses = torch.empty(rows, device=logits.device, dtype=torch.float32)
        block = min(8192, triton.next_power_of_2(n_cols))
        _row_losses[(rows,)](logits, targets, losses, n_cols, BLOCK=block, num_warps=8)
        out = torch.empty((), device=logits.device, dtype=logits.dtype)
        _mean[(1,)](losses, out, rows, BLOCK=1024, num_warps=4)
        return out
