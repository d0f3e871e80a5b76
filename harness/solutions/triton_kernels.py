"""Triton kernels that several solutions of the ``triton`` set share (benchmark/solutions/triton/).

One copy of each kernel that was the same in several files: the tiled ``tl.dot`` GEMM with bias,
activation and residual epilogues; flash attention (online softmax, scores never leave the chip)
reading strided q/k/v views; the one-program-per-row layer norm and softmax; the online
log-sum-exp of a row longer than one block; and the launch of a one-read-one-write elementwise
kernel. Solutions import what they use (``from harness.solutions.triton_kernels import gemm``).

Kernels run on whatever device their tensors are on, and on the CPU with ``TRITON_INTERPRET=1`` (set
before this module is first imported, as for any ``@triton.jit`` code). Triton's compile cache is
sound across changes here: a kernel's cache key covers its own source and that of every
``@triton.jit`` function it calls, wherever they are defined, so a kernel restored by the harness's
build cache (keyed by the solution file alone) is not reused after a kernel here changes.
"""

from __future__ import annotations

import math
from typing import Any

import torch
import triton
import triton.language as tl

# --- GEMM -----------------------------------------------------------------------------------------


@triton.jit
def _gemm_kernel(
    a_ptr, b_ptr, c_ptr, bias_ptr, res_ptr, M, N, K,
    stride_ab, stride_am, stride_ak, stride_bb, stride_bk, stride_bn, stride_cb, stride_cm, stride_cn,
    HAS_BIAS: tl.constexpr, ACT: tl.constexpr, HAS_RES: tl.constexpr, PRECISION: tl.constexpr,
    BM: tl.constexpr, BN: tl.constexpr, BK: tl.constexpr, GROUP_M: tl.constexpr, EVEN_K: tl.constexpr,
):
    """C[z] = act(A[z] @ B[z] + bias) + res, float32 accumulation; grouped tile order for L2 reuse."""
    pid = tl.program_id(0)
    z = tl.program_id(1).to(tl.int64)
    num_m = tl.cdiv(M, BM)
    num_n = tl.cdiv(N, BN)
    in_group = GROUP_M * num_n
    first_m = (pid // in_group) * GROUP_M
    group_m = min(num_m - first_m, GROUP_M)
    pid_m = first_m + (pid % in_group) % group_m
    pid_n = (pid % in_group) // group_m
    offs_m = pid_m * BM + tl.arange(0, BM)
    offs_n = pid_n * BN + tl.arange(0, BN)
    offs_k = tl.arange(0, BK)
    rows = offs_m % M  # wrapped rows/columns are computed but never stored
    cols = offs_n % N
    a_ptrs = a_ptr + z * stride_ab + rows[:, None].to(tl.int64) * stride_am + offs_k[None, :] * stride_ak
    b_ptrs = b_ptr + z * stride_bb + offs_k[:, None] * stride_bk + cols[None, :].to(tl.int64) * stride_bn
    acc = tl.zeros((BM, BN), dtype=tl.float32)
    for k in range(0, K, BK):
        if EVEN_K:
            a = tl.load(a_ptrs)
            b = tl.load(b_ptrs)
        else:
            a = tl.load(a_ptrs, mask=offs_k[None, :] < K - k, other=0.0)
            b = tl.load(b_ptrs, mask=offs_k[:, None] < K - k, other=0.0)
        acc = tl.dot(a, b, acc, input_precision=PRECISION)
        a_ptrs += BK * stride_ak
        b_ptrs += BK * stride_bk
    if HAS_BIAS:
        acc += tl.load(bias_ptr + offs_n, mask=offs_n < N, other=0.0).to(tl.float32)[None, :]
    if ACT == "relu":
        acc = tl.maximum(acc, 0.0)
    elif ACT == "gelu":
        acc = 0.5 * acc * (1.0 + tl.math.erf(acc * 0.7071067811865476))
    mask = (offs_m[:, None] < M) & (offs_n[None, :] < N)
    c_off = z * stride_cb + offs_m[:, None].to(tl.int64) * stride_cm + offs_n[None, :] * stride_cn
    if HAS_RES:
        acc += tl.load(res_ptr + c_off, mask=mask, other=0.0).to(tl.float32)
    tl.store(c_ptr + c_off, acc.to(c_ptr.dtype.element_ty), mask=mask)


def gemm(
    a: torch.Tensor,
    b: torch.Tensor,
    bias: torch.Tensor | None = None,
    act: str = "none",
    residual: torch.Tensor | None = None,
    precision: str = "tf32",
    b_is_weight: bool = True,
) -> torch.Tensor:
    """act(a @ W^T + bias) + residual for a (M, K) and an nn.Linear weight W (N, K); or a @ b for b (K, N).

    Batched when a is 3-D (Z, M, K) and b is 3-D (Z, K, N).
    """
    batched = a.dim() == 3
    if b_is_weight:
        n, k = b.shape
        sbb, sbk, sbn = 0, b.stride(1), b.stride(0)
    else:
        k, n = b.shape[-2:]
        sbb, sbk, sbn = (b.stride(0) if batched else 0), b.stride(-2), b.stride(-1)
    m = a.shape[-2]
    z = a.shape[0] if batched else 1
    out = torch.empty((z, m, n) if batched else (m, n), device=a.device, dtype=a.dtype)
    sab = a.stride(0) if batched else 0
    scb = out.stride(0) if batched else 0
    if residual is not None:
        assert residual.shape == out.shape and residual.stride() == out.stride()
    bm, bn, bk, warps, stages = (128, 128, 32, 8, 3) if a.dtype == torch.float32 else (128, 256, 64, 8, 3)
    grid = (triton.cdiv(m, bm) * triton.cdiv(n, bn), z)
    _gemm_kernel[grid](
        a, b, out, bias if bias is not None else out, residual if residual is not None else out, m, n, k,
        sab, a.stride(-2), a.stride(-1), sbb, sbk, sbn, scb, out.stride(-2), out.stride(-1),
        HAS_BIAS=bias is not None, ACT=act, HAS_RES=residual is not None, PRECISION=precision,
        BM=bm, BN=bn, BK=bk, GROUP_M=8, EVEN_K=k % bk == 0, num_warps=warps, num_stages=stages,
    )
    return out


# --- attention ------------------------------------------------------------------------------------


@triton.jit
def _attn_kernel(
    q_ptr, k_ptr, v_ptr, o_ptr, qk_scale, H, SQ, SK,
    sqb, sqh, sqs, sqd, skb, skh, sks, skd, svb, svh, svs, svd, sob, soh, sos, sod,
    CAUSAL: tl.constexpr, D: tl.constexpr, BM: tl.constexpr, BN: tl.constexpr, PRECISION: tl.constexpr,
):
    """Flash-attention forward for one (batch, head, query block): online softmax over key blocks,
    scores and probabilities never leave the chip. qk_scale includes log2(e) (exp2 is used)."""
    pid_m = tl.program_id(0)
    bh = tl.program_id(1)
    b = (bh // H).to(tl.int64)
    h = (bh % H).to(tl.int64)
    offs_m = pid_m * BM + tl.arange(0, BM)
    offs_n = tl.arange(0, BN)
    offs_d = tl.arange(0, D)
    q = tl.load(
        q_ptr + b * sqb + h * sqh + offs_m[:, None].to(tl.int64) * sqs + offs_d[None, :] * sqd,
        mask=offs_m[:, None] < SQ, other=0.0,
    )
    k_base = k_ptr + b * skb + h * skh
    v_base = v_ptr + b * svb + h * svh
    m_i = tl.full([BM], -float("inf"), tl.float32)
    l_i = tl.zeros([BM], tl.float32)
    acc = tl.zeros([BM, D], tl.float32)
    if CAUSAL:
        hi = tl.minimum((pid_m + 1) * BM, SK)
    else:
        hi = SK
    for start in range(0, hi, BN):
        cols = start + offs_n
        k = tl.load(
            k_base + cols[:, None].to(tl.int64) * sks + offs_d[None, :] * skd, mask=cols[:, None] < SK, other=0.0
        )
        s = tl.dot(q, tl.trans(k), input_precision=PRECISION) * qk_scale
        valid = cols[None, :] < SK
        if CAUSAL:
            valid = valid & (offs_m[:, None] >= cols[None, :])
        s = tl.where(valid, s, -float("inf"))
        m_new = tl.maximum(m_i, tl.max(s, axis=1))
        alpha = tl.exp2(m_i - m_new)
        p = tl.exp2(s - m_new[:, None])
        l_i = l_i * alpha + tl.sum(p, axis=1)
        v = tl.load(
            v_base + cols[:, None].to(tl.int64) * svs + offs_d[None, :] * svd, mask=cols[:, None] < SK, other=0.0
        )
        acc = tl.dot(p.to(v.dtype), v, acc * alpha[:, None], input_precision=PRECISION)
        m_i = m_new
    out = acc / l_i[:, None]
    tl.store(
        o_ptr + b * sob + h * soh + offs_m[:, None].to(tl.int64) * sos + offs_d[None, :] * sod,
        out.to(o_ptr.dtype.element_ty),
        mask=offs_m[:, None] < SQ,
    )


def attention(
    q: torch.Tensor,
    k: torch.Tensor,
    v: torch.Tensor,
    out: torch.Tensor,
    heads: int,
    causal: bool = False,
    precision: str = "tf32",
) -> torch.Tensor:
    """softmax(q k^T / sqrt(d)) v for (batch, seq, heads, d)-indexed views given as (b, h, s, d) views."""
    batch, _, sq, d = q.shape
    sk = k.shape[2]
    bm, bn, warps, stages = (128, 64, 8, 2) if d <= 64 else (64, 64, 4, 2)
    grid = (triton.cdiv(sq, bm), batch * heads)
    _attn_kernel[grid](
        q, k, v, out, (1.0 / math.sqrt(d)) * 1.4426950408889634, heads, sq, sk,
        *q.stride(), *k.stride(), *v.stride(), *out.stride(),
        CAUSAL=causal, D=d, BM=bm, BN=bn, PRECISION=precision, num_warps=warps, num_stages=stages,
    )
    return out


# --- rows: layer norm, softmax, log-sum-exp -------------------------------------------------------


@triton.jit
def _layernorm_kernel(x_ptr, w_ptr, b_ptr, y_ptr, n_cols, eps, BLOCK: tl.constexpr):
    row = tl.program_id(0).to(tl.int64)
    cols = tl.arange(0, BLOCK)
    mask = cols < n_cols
    x = tl.load(x_ptr + row * n_cols + cols, mask=mask, other=0.0).to(tl.float32)
    mean = tl.sum(x, axis=0) / n_cols
    d = tl.where(mask, x - mean, 0.0)
    rstd = 1.0 / tl.sqrt(tl.sum(d * d, axis=0) / n_cols + eps)
    w = tl.load(w_ptr + cols, mask=mask, other=0.0)
    b = tl.load(b_ptr + cols, mask=mask, other=0.0)
    tl.store(y_ptr + row * n_cols + cols, d * rstd * w + b, mask=mask)


def layernorm(x: torch.Tensor, norm: torch.nn.LayerNorm) -> torch.Tensor:
    """nn.LayerNorm ``norm`` over the last dimension of a contiguous x: one program per row."""
    n_cols = x.shape[-1]
    y = torch.empty_like(x)
    block = triton.next_power_of_2(n_cols)
    _layernorm_kernel[(x.numel() // n_cols,)](
        x, norm.weight, norm.bias, y, n_cols, norm.eps, BLOCK=block, num_warps=max(4, min(16, block // 512))
    )
    return y


@triton.jit
def row_max_and_sum_exp(x_ptr, base, n_cols, BLOCK: tl.constexpr):
    """Max and sum of exp(x - max) of the row at ``x_ptr + base`` in one read, BLOCK columns at a time
    (an online log-sum-exp: each block's partial sums are rescaled to the running max)."""
    m = tl.full([BLOCK], -float("inf"), tl.float32)
    s = tl.zeros([BLOCK], tl.float32)
    for start in range(0, n_cols, BLOCK):
        cols = start + tl.arange(0, BLOCK)
        x = tl.load(x_ptr + base + cols, mask=cols < n_cols, other=-float("inf")).to(tl.float32)
        m_new = tl.maximum(m, x)
        s = s * tl.exp(m - m_new) + tl.exp(x - m_new)
        m = tl.where(m_new == -float("inf"), m, m_new)
    row_max = tl.max(m, axis=0)
    total = tl.sum(s * tl.exp(m - row_max), axis=0)
    return row_max, total


@triton.jit
def _softmax_rows(x_ptr, y_ptr, n_cols, BLOCK: tl.constexpr):
    row = tl.program_id(0).to(tl.int64)
    cols = tl.arange(0, BLOCK)
    mask = cols < n_cols
    x = tl.load(x_ptr + row * n_cols + cols, mask=mask, other=-float("inf")).to(tl.float32)
    e = tl.exp(x - tl.max(x, axis=0))
    y = e / tl.sum(e, axis=0)
    tl.store(y_ptr + row * n_cols + cols, y.to(y_ptr.dtype.element_ty), mask=mask)


@triton.jit
def _softmax_rows_looped(x_ptr, y_ptr, n_cols, BLOCK: tl.constexpr):
    """Rows longer than one block: online max and sum in one pass, then a second pass that writes."""
    row = tl.program_id(0).to(tl.int64)
    base = row * n_cols
    row_max, total = row_max_and_sum_exp(x_ptr, base, n_cols, BLOCK)
    for start in range(0, n_cols, BLOCK):
        cols = start + tl.arange(0, BLOCK)
        mask = cols < n_cols
        x = tl.load(x_ptr + base + cols, mask=mask, other=-float("inf")).to(tl.float32)
        y = tl.exp(x - row_max) / total
        tl.store(y_ptr + base + cols, y.to(y_ptr.dtype.element_ty), mask=mask)


def softmax_lastdim(x: torch.Tensor) -> torch.Tensor:
    """softmax over the last dimension: one program per row, the row in registers up to 16384 wide."""
    x = x.contiguous()
    n_cols = x.shape[-1]
    rows = x.numel() // n_cols
    y = torch.empty_like(x)
    block = triton.next_power_of_2(n_cols)
    if block <= 16384:
        warps = max(4, min(16, block // 1024))
        _softmax_rows[(rows,)](x, y, n_cols, BLOCK=block, num_warps=warps)
    else:
        _softmax_rows_looped[(rows,)](x, y, n_cols, BLOCK=4096, num_warps=8)
    return y


# --- elementwise ----------------------------------------------------------------------------------


def elementwise(kernel: Any, x: torch.Tensor, *args: Any, block: int = 4096) -> torch.Tensor:
    """``kernel(x_ptr, y_ptr, n, *args, BLOCK)`` over a contiguous copy of x into a new tensor like it,
    one program per ``block`` elements: the launch every one-read-one-write elementwise solution makes."""
    x = x.contiguous()
    y = torch.empty_like(x)
    n = x.numel()
    kernel[(triton.cdiv(n, block),)](x, y, n, *args, BLOCK=block, num_warps=8)
    return y
