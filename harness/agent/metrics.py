"""Rewards and the estimators over them: reward per attempt, pass@k.

reward = case score / 100: 0 when the candidate is not correct, and capped at 1 because the score
curve is (speedup 5x and above all score 100), so one implausible speedup cannot dominate a run.
pass@k is the unbiased estimator of Chen et al. (2021) that KernelBench uses: with n samples of
which c are correct, ``1 - C(n-c, k) / C(n, k)``, the chance that at least one of k samples drawn
without replacement is correct.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

from harness.agent.seams import CaseResult


def reward(result: CaseResult | None) -> float:
    """Reward of one evaluated attempt in [0, 1]; 0 for no result or a result that is not a pass."""
    if result is None or not result.correct:
        return 0.0
    return min(1.0, max(0.0, result.score / 100.0))


def pass_at_k(n: int, c: int, k: int) -> float:
    """Unbiased pass@k for ``c`` correct out of ``n`` samples (k <= n)."""
    if not 0 <= c <= n or not 1 <= k <= n:
        raise ValueError(f"pass@k needs 0 <= c <= n and 1 <= k <= n (n={n}, c={c}, k={k})")
    if n - c < k:
        return 1.0
    return 1.0 - math.prod(1.0 - k / i for i in range(n - c + 1, n + 1))


def mean_pass_at_k(samples: Sequence[tuple[int, int]], k: int) -> float | None:
    """pass@k averaged over cases given as ``(n, c)`` pairs; None without cases."""
    if not samples:
        return None
    return sum(pass_at_k(n, c, k) for n, c in samples) / len(samples)
