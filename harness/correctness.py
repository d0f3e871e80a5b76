"""Comparing a candidate's outputs with the reference's: structure, dtype, non-finite values, tolerances.

Runs in a trusted process (the reference worker), never in the candidate's, so a candidate cannot
patch the comparison.
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any


@dataclass
class Comparison:
    """Outcome of comparing one set of outputs; ``reason`` is None when they match."""

    ok: bool
    reason: str | None = None
    max_abs_error: float | None = None
    max_rel_error: float | None = None
    mismatched_fraction: float | None = None


def as_output_list(value: Any) -> list[Any]:
    """A forward's return value as a flat list (a tensor or a tuple/list of tensors)."""
    if isinstance(value, (list, tuple)):
        return list(value)
    return [value]


def compare_outputs(reference: list[Any], candidate: list[Any], atol: float, rtol: float) -> Comparison:
    """Whether ``candidate`` matches ``reference`` elementwise: |c - r| <= atol + rtol * |r|.

    NaN or infinity in the candidate where the reference is finite fails; so does any difference in
    the number of outputs, their type (plain ``torch.Tensor`` only), device, shape or dtype. A worker
    reports an output it could not send as a tensor as a small dict (``{"not_a_tensor": type}``,
    ``{"wrong_device": device, "expected": device}``, ``{"unsupported_dtype": dtype}``).
    """
    if len(reference) != len(candidate):
        return Comparison(False, f"expected {len(reference)} output(s), got {len(candidate)}")
    with _one_thread():
        return _compare_all(reference, candidate, atol, rtol)


@contextlib.contextmanager
def _one_thread() -> Iterator[None]:
    """Compare on one CPU thread: the chunks are small, and with threads each of their dozens of
    parallel regions waits at a barrier -- seconds per comparison when the machine is busy."""
    import torch

    threads = torch.get_num_threads()
    if threads > 1:
        torch.set_num_threads(1)
    try:
        yield
    finally:
        if threads > 1:
            torch.set_num_threads(threads)


def _compare_all(reference: list[Any], candidate: list[Any], atol: float, rtol: float) -> Comparison:
    total = _Tally()
    for index, (ref, out) in enumerate(zip(reference, candidate, strict=True)):
        where = f"output {index}" if len(reference) > 1 else "output"
        problem = _structural_problem(where, ref, out)
        if problem:
            return Comparison(False, problem)
        if out.numel() == 0:
            continue
        problem = _compare_values(where, ref, out, atol, rtol, total)
        if problem:
            return Comparison(False, problem)
    fraction = total.mismatched / total.elements if total.elements else 0.0
    if total.mismatched:
        return Comparison(
            False,
            f"{total.mismatched} of {total.elements} elements differ beyond atol={atol:g}, rtol={rtol:g} "
            f"(max abs error {total.worst_abs:.3g}, max rel error {total.worst_rel:.3g})",
            total.worst_abs,
            total.worst_rel,
            fraction,
        )
    return Comparison(True, None, total.worst_abs, total.worst_rel, 0.0)


def _structural_problem(where: str, ref: Any, out: Any) -> str | None:
    """Why ``out`` cannot be compared with ``ref`` value by value (type, device, shape, dtype), or None."""
    import torch

    if isinstance(out, dict):
        if "wrong_device" in out:
            return f"{where} is on device {out['wrong_device']}, expected {out.get('expected', ref.device)}"
        if "unsupported_dtype" in out:
            return f"{where} dtype {out['unsupported_dtype']} != expected {ref.dtype}"
        if "not_a_tensor" in out:
            return f"{where} is {out['not_a_tensor']}, expected a plain torch.Tensor"
    if type(out) is not torch.Tensor:
        return f"{where} is {type(out).__name__}, expected a plain torch.Tensor"
    if out.shape != ref.shape:
        return f"{where} shape {tuple(out.shape)} != expected {tuple(ref.shape)}"
    if out.dtype != ref.dtype:
        return f"{where} dtype {out.dtype} != expected {ref.dtype}"
    return None


@dataclass
class _Tally:
    """Running totals over every output and chunk compared so far."""

    elements: int = 0
    mismatched: int = 0
    worst_abs: float = 0.0
    worst_rel: float = 0.0


# Elements compared at a time on the CPU: the temporaries of one chunk stay in cache, which makes
# the dozen passes of a comparison several times cheaper than on whole multi-megabyte outputs.
_CPU_CHUNK = 1 << 18


def _work_dtype(dtype: Any) -> Any:
    """The dtype differences are computed in: float64 for float64 and integers, complex kept, else float32."""
    import torch

    if dtype.is_complex:
        return dtype
    if dtype == torch.float64 or not dtype.is_floating_point:
        return torch.float64
    return torch.float32


def _compare_values(where: str, ref: Any, out: Any, atol: float, rtol: float, tally: _Tally) -> str | None:
    """Add ``out`` vs ``ref`` to ``tally``; returns why they differ in their non-finite values, or None."""
    import torch

    work = _work_dtype(ref.dtype)
    r_all = ref.detach().reshape(-1)
    c_all = out.detach().reshape(-1).to(device=r_all.device)
    n = r_all.numel()
    step = _CPU_CHUNK if r_all.device.type == "cpu" else n
    new_non_finite = 0
    for start in range(0, n, step):
        r = r_all[start : start + step].to(work)
        # A copy, always: the candidate's outputs may lie in memory it can still write to, and every
        # check below must see the same bytes.
        c = c_all[start : start + step].to(work, copy=True)
        diff = torch.sub(c, r).abs_() if not r.is_complex() else torch.sub(c, r).abs()
        worst = float(diff.max())  # NaN when any difference is NaN: max propagates it
        if not math.isfinite(worst):  # NaN or Inf on either side (rare): the careful path
            finite_r = torch.isfinite(r)
            finite_c = torch.isfinite(c)
            new_non_finite += int((finite_r & ~finite_c).sum())
            # Non-finite reference values must be matched exactly (NaN positions, signed infinities).
            same = (c == r) | (torch.isnan(c) & torch.isnan(r))
            if bool((~finite_r & ~same).any()):
                return f"{where} differs from the reference's NaN/Inf values"
            diff = torch.where(finite_r & finite_c, diff, torch.zeros((), dtype=diff.dtype))
            worst = float(diff.max())
        abs_r = r.abs()
        bad = diff > abs_r * rtol + atol
        mismatched = int(bad.sum())
        tally.mismatched += mismatched
        tally.elements += diff.numel()
        tally.worst_abs = max(tally.worst_abs, worst)
        # The relative error counts where the reference is not tiny, and wherever the check failed.
        counted = abs_r > atol
        if mismatched:
            counted |= bad
        rel = diff.div_(abs_r.clamp_min_(1e-12))
        tally.worst_rel = max(tally.worst_rel, float(torch.where(counted, rel, 0.0).max()))
    if new_non_finite:
        return f"{where} has {new_non_finite} NaN/Inf value(s) where the reference is finite"
    return None


def output_fingerprint(outputs: list[Any], atol: float) -> str:
    """A sha256 of the outputs rounded to the tolerance: equal when two runs' outputs did not change.

    Computed in the trusted reference worker from the bytes the candidate returned, so a candidate
    cannot forge it. Values within one ``atol`` step of a rounding boundary may still flip it. The
    version tag in the hash changes whenever the rounding does, so fingerprints of different harness
    versions never match by accident. Outputs on an accelerator are summarised where they lie
    (`_device_digest`) instead of being copied to the host: a multi-gigabyte output would otherwise
    cost seconds.
    """
    import hashlib

    import torch

    on_device = any(t.device.type != "cpu" for t in outputs)
    digest = hashlib.sha256(b"output-fingerprint v3-device|" if on_device else b"output-fingerprint v2|")
    step = max(float(atol), 1e-12)
    with _one_thread():
        for tensor in outputs:
            t = tensor.detach()
            digest.update(f"{t.dtype}|{tuple(t.shape)}|".encode())
            flat = (torch.view_as_real(t) if t.dtype.is_complex else t).reshape(-1)
            if on_device:
                digest.update(_device_digest(flat, step))
                continue
            if not flat.dtype.is_floating_point:
                digest.update(flat.contiguous().numpy().data)
                continue
            # Rounded to the tolerance in float32 (float64 kept): deterministic, and in cache-sized
            # chunks several times cheaper than one float64 pass over a large output.
            work = torch.float64 if flat.dtype == torch.float64 else torch.float32
            for start in range(0, flat.numel(), _CPU_CHUNK):
                x = flat[start : start + _CPU_CHUNK].to(work, copy=True).div_(step).round_()
                nan = torch.isnan(x)
                if bool(nan.any()):
                    digest.update(b"nan:" + nan.numpy().tobytes())
                    x.masked_fill_(nan, 0.0)
                digest.update(x.add_(0.0).numpy().data)  # + 0.0 turns -0.0 into 0.0
    return digest.hexdigest()


# Elements summarised at a time on a device (bounds the temporaries: a few bytes per element).
_DEVICE_CHUNK = 1 << 26
_MIX = (0x9E3779B97F4A7C15 - (1 << 64), 0xC2B2AE3D27D4EB4F - (1 << 64), 0x165667B19E3779F9)


def _device_digest(flat: Any, step: float) -> bytes:
    """Position-weighted sums (mod 2**64) of the values rounded to ``step``, computed on their device.

    Integer sums are exact in any order, so the result is deterministic; two independent weightings
    and the NaN positions make an accidental match of different outputs negligible (the fingerprint
    only tells "unchanged" from "changed"; a candidate gains nothing by forging it).
    """
    import torch

    parts: list[int] = []
    for start in range(0, flat.numel(), _DEVICE_CHUNK):
        chunk = flat[start : start + _DEVICE_CHUNK]
        if chunk.dtype.is_floating_point:
            x = chunk.to(torch.float64).div_(step).round_()
            nan = torch.isnan(x)
            q = x.masked_fill_(nan, 0.0).clamp_(-(2.0**62), 2.0**62).to(torch.int64)
        else:
            nan = None
            q = chunk.to(torch.int64)
        index = torch.arange(start, start + chunk.numel(), device=chunk.device, dtype=torch.int64)
        for mix in _MIX[:2]:
            parts.append(int((q * (index * mix + 1).bitwise_or_(1)).sum()))
        if nan is not None:
            parts.append(int((nan.to(torch.int64) * (index * _MIX[2] + 1)).sum()))
    return b"|".join(str(p).encode() for p in parts)
