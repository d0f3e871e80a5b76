"""Triton fused attention probabilities: softmax(q k^T * scale) without materialising the raw scores.

One program per (batch*head, block of queries): a first loop over key blocks computes the scores
with 3xTF32 tensor-core products (float32-level accuracy, which the case's 1e-3 relative tolerance
needs) and keeps an online row max and sum; a second loop recomputes each score block and writes
the normalised probabilities once. The output is written exactly once; the scores never reach memory.
"""
import math

import torch
import torch.nn as nn
import triton
import triton.language as tl


@triton.jit
def _scores_softmax(
    q_ptr, k_ptr, o_ptr, qk_scale, S,
    D: tl.constexpr, BM: tl.constexpr, BN: tl.constexpr, PRECISION: tl.constexpr,
):
    pid_m = tl.program_id(0)
    bh = tl.program_id(1).to(tl.int64)
    offs_m = pid_m * BM + tl.arange(0, BM)
    offs_n = tl.arange(0, BN)
    offs_d = tl.arange(0, D)
    row_mask = offs_m < S
    q = tl.load(q_ptr + bh * S * D + offs_m[:, None] * D + offs_d[None, :], mask=row_mask[:, None], other=0.0)
    k_base = k_ptr + bh * S * D
    m_i = tl.full([BM], -float("inf"), tl.float32)
    l_i = tl.zeros([BM], tl.float32)
    for start in range(0, S, BN):
        cols = start + offs_n
        k = tl.load(k_base + cols[:, None] * D + offs_d[None, :], mask=cols[:, None] < S, other=0.0)
        s = tl.dot(q, tl.trans(k), input_precision=PRECISION) * qk_scale
        s = tl.where(cols[None, :] < S, s, -float("inf"))
        m_new = tl.maximum(m_i, tl.max(s, axis=1))
        l_i = l_i * tl.exp2(m_i - m_new) + tl.sum(tl.exp2(s - m_new[:, None]), axis=1)
        m_i = m_new
    inv_l = 1.0 / l_i
    o_base = o_ptr + bh * S * S + offs_m[:, None].to(tl.int64) * S
    for start in range(0, S, BN):
        cols = start + offs_n
        k = tl.load(k_base + cols[:, None] * D + offs_d[None, :], mask=cols[:, None] < S, other=0.0)
        s = tl.dot(q, tl.trans(k), input_precision=PRECISION) * qk_scale
        p = tl.exp2(s - m_i[:, None]) * inv_l[:, None]
        tl.store(o_base + cols[None, :], p, mask=row_mask[:, None] & (cols[None, :] < S))


class ModelNew(nn.Module):
    def __init__(self, head_dim: int):
        super().__init__()
        self.scale = 1.0 / math.sqrt(head_dim)

    def forward(self, q: torch.Tensor, k: torch.Tensor) -> torch.Tensor:
        q = q.contiguous()
        k = k.contiguous()
        b, h, s, d = q.shape
        out = torch.empty((b, h, s, s), device=q.device, dtype=q.dtype)
        bm, bn = 64, 128
        grid = (triton.cdiv(s, bm), b * h)
        _scores_softmax[grid](
            q, k, out, self.scale * 1.4426950408889634, s,
            D=d, BM=bm, BN=bn, PRECISION="tf32x3", num_warps=8, num_stages=2,
        )
        return out
