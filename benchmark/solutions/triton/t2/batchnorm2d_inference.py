"""Triton inference batch norm: each program folds its channel's statistics into one scale and shift
and applies them to a block of that (n, c) plane (one read, one write)."""
import torch
import torch.nn as nn
import triton
import triton.language as tl


@triton.jit
def _bn(x_ptr, y_ptr, mean_ptr, var_ptr, w_ptr, b_ptr, channels, hw, eps, BLOCK: tl.constexpr):
    plane = tl.program_id(0)
    c = plane % channels
    scale = tl.load(w_ptr + c) / tl.sqrt(tl.load(var_ptr + c) + eps)
    shift = tl.load(b_ptr + c) - tl.load(mean_ptr + c) * scale
    offs = tl.program_id(1) * BLOCK + tl.arange(0, BLOCK)
    mask = offs < hw
    base = plane.to(tl.int64) * hw
    x = tl.load(x_ptr + base + offs, mask=mask)
    tl.store(y_ptr + base + offs, x * scale + shift, mask=mask)


class ModelNew(nn.Module):
    def __init__(self, channels: int):
        super().__init__()
        self.bn = nn.BatchNorm2d(channels)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x.contiguous()
        n, c, h, w = x.shape
        y = torch.empty_like(x)
        bn = self.bn
        block = min(4096, triton.next_power_of_2(h * w))
        _bn[(n * c, triton.cdiv(h * w, block))](
            x, y, bn.running_mean, bn.running_var, bn.weight, bn.bias, c, h * w, bn.eps, BLOCK=block, num_warps=8
        )
        return y
