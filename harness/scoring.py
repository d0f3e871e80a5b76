"""Speedup to score, tier weights, and the run summary (pass rate, tier stats, geomean, fast_p)."""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

from harness.results import CaseResult

TIER_WEIGHTS = {"t1": 1.0, "t2": 1.5, "t3": 2.0, "t4": 2.5, "t5": 3.0}
FAST_P_THRESHOLDS = (0.0, 0.5, 0.8, 1.0, 1.5, 2.0)


def tier_weight(tier: str) -> float:
    """Weight of a tier; tiers past t5 keep growing by 0.5 per step."""
    if tier in TIER_WEIGHTS:
        return TIER_WEIGHTS[tier]
    return 1.0 + 0.5 * (int(tier[1:]) - 1)


def case_score(speedup: float | None, correct: bool) -> float:
    """60·s below parity, 60 + 40·min(s − 1, 4)/4 above; 0 when the output is not correct."""
    if not correct or speedup is None or not math.isfinite(speedup) or speedup <= 0:
        return 0.0
    if speedup < 1.0:
        return 60.0 * speedup
    return 60.0 + 40.0 * min(speedup - 1.0, 4.0) / 4.0


def apply_score(result: CaseResult) -> CaseResult:
    """Fill score, tier weight and weighted score of a finished case in place."""
    result.tier_weight = tier_weight(result.tier)
    result.score = case_score(result.speedup, result.correct)
    result.weighted_score = result.score * result.tier_weight
    return result


def geometric_mean(values: Sequence[float]) -> float | None:
    positive = [v for v in values if v > 0 and math.isfinite(v)]
    if not positive:
        return None
    return math.exp(sum(math.log(v) for v in positive) / len(positive))


def summarize(results: Sequence[CaseResult]) -> dict[str, Any]:
    """Aggregates over a run's case results (skipped and broken cases are counted but not scored).

    A broken case (``case_error``: the case file is at fault, not the candidate) is listed under
    ``statuses.error`` and apart in ``broken_cases``, and left out of every rate and score.
    """
    counted = [r for r in results if r.status != "skipped" and not r.case_error]
    passed = [r for r in counted if r.correct]
    statuses = {s: sum(1 for r in results if r.status == s) for s in ("pass", "fail", "error", "timeout", "skipped")}
    tiers: dict[str, dict[str, Any]] = {}
    for tier in sorted({r.tier for r in results}, key=lambda t: int(t[1:])):
        in_tier = [r for r in counted if r.tier == tier]
        ok = [r for r in in_tier if r.correct]
        tiers[tier] = {
            "cases": len(in_tier),
            "passed": len(ok),
            "pass_rate": len(ok) / len(in_tier) if in_tier else None,
            "weight": tier_weight(tier),
            "weighted_score": sum(r.weighted_score for r in in_tier),
            "max_weighted_score": 100.0 * tier_weight(tier) * len(in_tier),
            "geomean_speedup": geometric_mean([r.speedup for r in ok if r.speedup]),
        }
    total = sum(r.weighted_score for r in counted)
    maximum = sum(100.0 * tier_weight(r.tier) for r in counted)
    speedups = [r.speedup for r in passed if r.speedup]
    return {
        "cases": len(results),
        "evaluated": len(counted),
        "statuses": statuses,
        "broken_cases": sum(1 for r in results if r.case_error),
        "unstable": sum(1 for r in counted if r.unstable),
        "pass_rate": len(passed) / len(counted) if counted else None,
        "total_weighted_score": total,
        "max_weighted_score": maximum,
        "normalized_score": total / maximum if maximum else None,
        "geomean_speedup": geometric_mean(speedups),
        "fast_p": {
            f"{p:g}": (sum(1 for r in passed if (r.speedup or 0) > p) / len(counted)) if counted else None
            for p in FAST_P_THRESHOLDS
        },
        "tiers": tiers,
        "wall_time_s": sum(r.wall_time_s for r in results),
        "timed_time_s": sum(r.timed_time_s for r in results),
        "overhead_per_case_s": (
            sum(max(0.0, r.wall_time_s - r.timed_time_s) for r in counted) / len(counted) if counted else None
        ),
    }
