"""The statistics behind `harness compare`: a rank test and a distribution-free interval on log times.

Why these choices (docs/compare.md has the long form):

- The quantity compared is the candidate's time *relative to the reference measured in the same
  run*, sample by sample: ``d_i = log(solution_i) - log(reference_i)``. The harness alternates
  reference and candidate in rounds and gives both the same number of samples per round, so the
  i-th samples of the two series come from the same round; pairing them cancels drift that hits both
  (a slower clock, a busy neighbour). Were the lengths different, each solution sample is divided by
  the reference's median instead.
- Between two runs the shift of ``d`` is tested with the Mann-Whitney U test (scipy), which assumes
  neither normality nor equal spread and is robust to the long right tail of timings.
- The estimate is the Hodges-Lehmann shift (median of all pairwise differences ``dB_j - dA_i``) and
  the interval is the matching distribution-free (Lehmann/Moses) interval: order statistics of the
  same pairwise differences at the Mann-Whitney critical value, as R's ``wilcox.test(conf.int=TRUE)``.
  Test and interval agree with each other, need no random resampling (deterministic, no seed) and
  take well under a millisecond for the usual tens of samples, about 20 ms for 1000 x 1000.
- Holm's step-down correction keeps the chance of any false alarm over all cases below alpha.
- Within-run samples cannot show how much a whole run drifts (another process competing for the
  cores, a different placement in memory): a disturbed run is also a noisy one, so a series whose
  robust CV exceeds a limit makes its case inconclusive whatever the test says (`harness.timing.robust_cv`).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

TEST_NAME = "mann-whitney-u"
ESTIMATOR_NAME = "hodges-lehmann"
_TINY_MS = 1e-9  # a zero sample would be log(0); timers never truly report zero
_MAX_PAIRS = 4_000_000  # above this many pairwise differences, both series are thinned evenly


@dataclass(frozen=True)
class ShiftTest:
    """Shift of log(solution/reference) from the baseline run to the candidate run."""

    log_ratio: float  # Hodges-Lehmann estimate; exp() is the normalised time ratio new/old
    ci_low: float  # log scale, level ``confidence``
    ci_high: float
    p_value: float  # two-sided Mann-Whitney U
    confidence: float
    n_baseline: int
    n_candidate: int

    @property
    def ratio(self) -> float:
        return math.exp(self.log_ratio)


def relative_log_times(reference_ms: Sequence[float], solution_ms: Sequence[float]) -> np.ndarray:
    """Per-sample log(solution / reference), paired by round when both series have the same length."""
    ref = np.log(np.maximum(np.asarray(reference_ms, dtype=float), _TINY_MS))
    sol = np.log(np.maximum(np.asarray(solution_ms, dtype=float), _TINY_MS))
    if ref.shape == sol.shape:
        return sol - ref
    return sol - float(np.median(ref))


def _thin(values: np.ndarray, keep: int) -> np.ndarray:
    if values.size <= keep:
        return values
    return np.sort(values)[np.linspace(0, values.size - 1, keep).round().astype(int)]


def shift_test(baseline: np.ndarray, candidate: np.ndarray, confidence: float) -> ShiftTest:
    """Mann-Whitney U p-value, Hodges-Lehmann shift and its (Lehmann) interval of ``candidate - baseline``."""
    from scipy import stats

    a = np.asarray(baseline, dtype=float)
    b = np.asarray(candidate, dtype=float)
    if a.size < 2 or b.size < 2:
        raise ValueError("a shift test needs at least two samples on each side")
    p_value = float(stats.mannwhitneyu(b, a, alternative="two-sided").pvalue)
    if a.size * b.size > _MAX_PAIRS:  # the interval from evenly spaced quantiles is indistinguishable
        side = int(math.sqrt(_MAX_PAIRS))
        a, b = _thin(a, side), _thin(b, side)
    m, n = a.size, b.size
    diffs = np.subtract.outer(b, a).ravel()
    z = float(stats.norm.ppf(0.5 + confidence / 2.0))
    # Critical value of U (normal approximation): the interval runs from the (k+1)-th smallest to
    # the (k+1)-th largest pairwise difference.
    k = int(math.floor(m * n / 2.0 - z * math.sqrt(m * n * (m + n + 1) / 12.0)))
    k = min(max(k, 0), (m * n - 1) // 2)
    low_i, high_i = k, m * n - 1 - k
    mid = (m * n - 1) // 2
    kth = sorted({low_i, high_i, mid, (m * n) // 2})
    part = np.partition(diffs, kth)
    estimate = float((part[mid] + part[(m * n) // 2]) / 2.0)
    return ShiftTest(
        log_ratio=estimate,
        ci_low=float(part[low_i]),
        ci_high=float(part[high_i]),
        p_value=p_value,
        confidence=confidence,
        n_baseline=int(np.asarray(baseline).size),
        n_candidate=int(np.asarray(candidate).size),
    )


def holm(p_values: Sequence[float]) -> list[float]:
    """Holm step-down adjusted p-values (same order as given); controls the family-wise error rate."""
    m = len(p_values)
    order = sorted(range(m), key=lambda i: p_values[i])
    adjusted = [1.0] * m
    running = 0.0
    for rank, index in enumerate(order):
        running = max(running, min(1.0, (m - rank) * p_values[index]))
        adjusted[index] = running
    return adjusted


def geometric_mean(values: Sequence[float]) -> float | None:
    """Geometric mean of the positive finite values; None when there is none."""
    logs = [math.log(v) for v in values if v > 0 and math.isfinite(v)]
    return math.exp(sum(logs) / len(logs)) if logs else None
