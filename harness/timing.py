"""Timing plans and statistics: warm-up, adaptive repetitions, median, IQR, CV, spread, stability.

The raw samples are always kept: comparisons between runs re-test them, and ``harness validate
--deep`` recomputes these statistics from them.
"""

from __future__ import annotations

import dataclasses
import math
import statistics
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

STABLE_CV = 0.10  # spread (robust CV) at or below which a series is called stable
_TINY_MS = 1e-9  # a zero sample would be log(0); timers never truly report zero


def robust_cv(samples_ms: Any) -> float:
    """Spread of a timing series as a fraction: 1.4826 x the median absolute deviation of log times.

    Equals the CV for log-normal timings, but a few outliers (a preemption, an interrupt, a page
    fault) barely move it. The plain CV (stdev / mean) does: on a shared 2-core machine one
    descheduled call in fifty lifts it above 10 % while the median, which the speedup uses, has not
    moved. So stability is judged on this figure, as `harness compare`'s noise guard does.
    """
    logs = [math.log(max(float(x), _TINY_MS)) for x in samples_ms]
    if len(logs) < 2:
        return 0.0
    middle = statistics.median(logs)
    return 1.4826 * statistics.median(abs(v - middle) for v in logs)


@dataclass(frozen=True)
class TimingConfig:
    """How long and how often to measure one model of one case."""

    warmup_ms: float = 25.0  # time spent in untimed calls before measuring (at least min_warmup calls)
    min_warmup: int = 2
    budget_ms: float = 400.0  # target total timed time per model
    min_repetitions: int = 10
    max_repetitions: int = 1000
    rounds: int = 10  # reference and candidate alternate in this many rounds (drift hits both alike)
    flush_cache: bool | None = None  # None: the backend's default

    def to_json(self) -> dict[str, Any]:
        return {
            "warmup_ms": self.warmup_ms,
            "min_warmup": self.min_warmup,
            "budget_ms": self.budget_ms,
            "min_repetitions": self.min_repetitions,
            "max_repetitions": self.max_repetitions,
            "rounds": self.rounds,
            "flush_cache": self.flush_cache,
        }


def for_backend(config: TimingConfig, overrides: Mapping[str, Any]) -> TimingConfig:
    """``config`` with a backend's own defaults applied to the fields still at the generic default.

    A value set explicitly (anything but the generic default) wins over the backend's default.
    """
    generic = TimingConfig()
    changes = {k: v for k, v in overrides.items() if getattr(config, k) == getattr(generic, k)}
    return dataclasses.replace(config, **changes) if changes else config


def plan_repetitions(estimate_ms: float, config: TimingConfig) -> int:
    """Repetitions that fill the budget for a call of ``estimate_ms``, within the configured caps."""
    # no estimate, or one too small to divide by: the cap (still in whole rounds)
    wanted = config.budget_ms / estimate_ms if estimate_ms > 0 else math.inf
    reps = max(config.min_repetitions, math.ceil(min(wanted, config.max_repetitions)))
    # whole rounds, so reference and candidate get the same number of samples per round
    return max(config.rounds, math.ceil(reps / config.rounds) * config.rounds)


def warmup_calls(estimate_ms: float, config: TimingConfig) -> int:
    if estimate_ms <= 0:
        return config.min_warmup
    return max(config.min_warmup, min(1000, math.ceil(config.warmup_ms / estimate_ms)))


@dataclass
class TimingStats:
    """Summary of one series of per-call times in milliseconds, with the samples themselves."""

    samples_ms: list[float] = field(default_factory=list)
    median_ms: float = 0.0
    mean_ms: float = 0.0
    min_ms: float = 0.0
    max_ms: float = 0.0
    iqr_ms: float = 0.0
    stdev_ms: float = 0.0
    cv: float = 0.0  # stdev / mean, outliers included
    spread: float = 0.0  # robust_cv: what `stable` is judged on
    stable: bool = False
    repetitions: int = 0
    warmup_calls: int = 0

    @classmethod
    def from_samples(cls, samples_ms: list[float], warmup: int = 0) -> TimingStats:
        if not samples_ms:
            raise ValueError("no timing samples")
        data = sorted(samples_ms)
        mean = statistics.fmean(data)
        stdev = statistics.stdev(data) if len(data) > 1 else 0.0
        if len(data) >= 4:
            q1, _, q3 = statistics.quantiles(data, n=4, method="inclusive")
        else:
            q1, q3 = data[0], data[-1]
        cv = stdev / mean if mean > 0 else 0.0
        spread = robust_cv(data)
        return cls(
            samples_ms=list(samples_ms),
            median_ms=statistics.median(data),
            mean_ms=mean,
            min_ms=data[0],
            max_ms=data[-1],
            iqr_ms=q3 - q1,
            stdev_ms=stdev,
            cv=cv,
            spread=spread,
            stable=spread <= STABLE_CV,
            repetitions=len(data),
            warmup_calls=warmup,
        )

    def to_json(self) -> dict[str, Any]:
        return {
            "median_ms": self.median_ms,
            "mean_ms": self.mean_ms,
            "min_ms": self.min_ms,
            "max_ms": self.max_ms,
            "iqr_ms": self.iqr_ms,
            "stdev_ms": self.stdev_ms,
            "cv": self.cv,
            "spread": self.spread,
            "stable": self.stable,
            "repetitions": self.repetitions,
            "warmup_calls": self.warmup_calls,
            "samples_ms": self.samples_ms,
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> TimingStats:
        return cls.from_samples(list(data["samples_ms"]), int(data.get("warmup_calls", 0)))
