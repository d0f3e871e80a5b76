"""Comparing a candidate's outputs with the reference's: structure, dtype, non-finite values, tolerances.

Runs in a trusted process (the reference worker), never in the candidate's, so a candidate cannot
patch the comparison.
"""

from __future__ import annotations

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
    the number of outputs, their type (plain ``torch.Tensor`` only), shape or dtype.
    """
    import torch

    if len(reference) != len(candidate):
        return Comparison(False, f"expected {len(reference)} output(s), got {len(candidate)}")
    worst_abs = 0.0
    worst_rel = 0.0
    mismatched = 0
    total = 0
    for index, (ref, out) in enumerate(zip(reference, candidate, strict=True)):
        where = f"output {index}" if len(reference) > 1 else "output"
        if type(out) is not torch.Tensor:
            return Comparison(False, f"{where} is {type(out).__name__}, expected a plain torch.Tensor")
        if out.shape != ref.shape:
            return Comparison(False, f"{where} shape {tuple(out.shape)} != expected {tuple(ref.shape)}")
        if out.dtype != ref.dtype:
            return Comparison(False, f"{where} dtype {out.dtype} != expected {ref.dtype}")
        if out.numel() == 0:
            continue
        r = ref.detach().to(torch.float64 if ref.dtype == torch.float64 else torch.float32)
        c = out.detach().to(device=r.device, dtype=r.dtype)
        if not ref.dtype.is_floating_point and not ref.dtype.is_complex:
            diff = (c - r).abs()
        else:
            bad_c = ~torch.isfinite(c)
            bad_r = ~torch.isfinite(r)
            if bool((bad_c & ~bad_r).any()):
                count = int((bad_c & ~bad_r).sum())
                return Comparison(False, f"{where} has {count} NaN/Inf value(s) where the reference is finite")
            # Non-finite values must agree exactly (same NaN positions, same signed infinities).
            if bool((bad_r & ~(bad_c & ((c == r) | (torch.isnan(c) & torch.isnan(r))))).any()):
                return Comparison(False, f"{where} differs from the reference's NaN/Inf values")
            finite = ~bad_r
            diff = torch.where(finite, (c - r).abs(), torch.zeros_like(r))
        limit = atol + rtol * r.abs()
        bad = diff > limit
        mismatched += int(bad.sum())
        total += diff.numel()
        worst_abs = max(worst_abs, float(diff.max()))
        rel = diff / r.abs().clamp_min(1e-12)
        worst_rel = max(worst_rel, float(torch.where(bad | (r.abs() > atol), rel, torch.zeros_like(rel)).max()))
    fraction = mismatched / total if total else 0.0
    if mismatched:
        return Comparison(
            False,
            f"{mismatched} of {total} elements differ beyond atol={atol:g}, rtol={rtol:g} "
            f"(max abs error {worst_abs:.3g}, max rel error {worst_rel:.3g})",
            worst_abs,
            worst_rel,
            fraction,
        )
    return Comparison(True, None, worst_abs, worst_rel, 0.0)
