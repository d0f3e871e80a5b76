"""`harness validate --deep`: the figures of a result recomputed from its raw samples.

A schema says a result is well formed; it cannot say its numbers are right. Every case result
keeps its raw timing samples (a case of several shapes, per shape), so a third party can recompute
each series' statistics, each speedup (a case of several shapes: the geometric mean of its shapes')
and score and the run's summary from them, with nothing but this package (no torch), and
see whether a file was edited by hand or written by a harness with a bug.
"""

from __future__ import annotations

import math
from typing import Any

from harness.results import CaseResult
from harness.scoring import apply_score, geometric_mean, summarize
from harness.timing import STABLE_CV, TimingStats

_STATS = ("median_ms", "mean_ms", "min_ms", "max_ms", "iqr_ms", "stdev_ms", "cv", "spread", "stable", "repetitions")
_SUMMARY = ("cases", "evaluated", "pass_rate", "geomean_speedup", "total_weighted_score", "max_weighted_score")


def _close(a: Any, b: Any) -> bool:
    if isinstance(a, bool) or isinstance(b, bool) or not isinstance(a, (int, float)) or not isinstance(b, (int, float)):
        return bool(a == b)
    return math.isclose(float(a), float(b), rel_tol=1e-9, abs_tol=1e-12)


def _recheck_timing(timing: dict[str, Any], status: Any, speedup: Any, name: str) -> tuple[list[str], float | None]:
    """What in one timing block (a case's or a shape's) disagrees with its samples, and the speedup its
    medians give (None where it has no pair of series or did not pass)."""
    problems: list[str] = []
    for side in ("reference", "solution"):
        series = timing.get(side)
        if not series:
            continue
        try:
            stats = TimingStats.from_samples(list(series["samples_ms"]), int(series.get("warmup_calls", 0))).to_json()
            if "spread" not in series:  # written before schema 1.2: `stable` was judged on the plain CV
                stats["stable"] = stats["cv"] <= STABLE_CV
        except (ValueError, TypeError, KeyError) as exc:
            problems.append(f"{name}: {side} timing: the samples cannot be summarised ({exc})")
            continue
        for key in _STATS:
            if key in series and not _close(series[key], stats[key]):
                problems.append(f"{name}: {side} {key} is {series[key]!r}, the samples give {stats[key]!r}")
    ref, sol = timing.get("reference"), timing.get("solution")
    expected = None
    if status == "pass" and ref and sol and sol.get("median_ms"):
        expected = ref["median_ms"] / sol["median_ms"]
        if not _close(speedup, expected):
            problems.append(f"{name}: speedup is {speedup!r}, the medians give {expected!r}")
    return problems, expected


def recheck_case(case: dict[str, Any], where: str = "") -> list[str]:
    """What in one case result disagrees with its own raw samples (empty: nothing).

    A case of several shapes is checked shape by shape, and its speedup against the geometric mean
    of the speedups its shapes' medians give.
    """
    name = where or f"case {case.get('name')}"
    problems, _ = _recheck_timing(case.get("timing") or {}, case.get("status"), case.get("speedup"), name)
    shapes = case.get("shapes") or []
    speedups = []
    for i, shape in enumerate(shapes):
        where_shape = f"{name} shape {shape.get('index', i) + 1}" if isinstance(shape, dict) else name
        if not isinstance(shape, dict):
            problems.append(f"{where_shape}: a shape entry is not an object")
            continue
        timing = shape.get("timing") or {}
        found, expected = _recheck_timing(timing, shape.get("status"), shape.get("speedup"), where_shape)
        problems += found
        speedups.append(expected)
    if shapes and case.get("status") == "pass":
        geomean = geometric_mean([v for v in speedups if v]) if all(speedups) else None
        if geomean is None or not _close(case.get("speedup"), geomean):
            problems.append(
                f"{name}: speedup is {case.get('speedup')!r}, the geometric mean over its shapes gives {geomean!r}"
            )
    try:
        rescored = apply_score(CaseResult.from_json(case))
    except (KeyError, TypeError, ValueError) as exc:
        return [*problems, f"{name}: cannot be read back as a case result ({exc})"]
    for key in ("score", "weighted_score"):
        if not _close(case.get(key), getattr(rescored, key)):
            problems.append(f"{name}: {key} is {case.get(key)!r}, the speedup and tier give {getattr(rescored, key)!r}")
    return problems


def recheck(payload: dict[str, Any]) -> list[str]:
    """What in an artifact disagrees with its raw data: case results, and a run's summary."""
    kind = payload.get("artifact_type")
    if kind == "case_result":
        return recheck_case(payload.get("result") or {})
    if kind != "run_result":
        return []
    cases = payload.get("cases") or []
    problems = [p for i, case in enumerate(cases) for p in recheck_case(case, f"cases/{i} ({case.get('name')})")]
    try:
        summary = summarize([CaseResult.from_json(c) for c in cases])
    except (KeyError, TypeError, ValueError):
        return problems
    reported = payload.get("summary") or {}
    for key in _SUMMARY:
        if key in reported and key in summary and not _close(reported[key], summary[key]):
            problems.append(f"summary: {key} is {reported[key]!r}, the cases give {summary[key]!r}")
    return problems
