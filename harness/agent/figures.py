"""What a run of the loop achieved, per case and overall, computed from its attempts alone.

Per case: solved, the first passing turn, best and last reward, best speedup, turns, tokens,
latency, and the best attempt (the one written as the team's submission). Per run: pass@k for
k <= rollouts (a rollout that never got an answer counts as not solved), the share of cases solved
within N turns (in any rollout), and the harness's own summary (fast_p, geometric mean, weighted
score) over the best result of every case.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from harness.agent.metrics import mean_pass_at_k
from harness.agent.records import Attempt
from harness.agent.seams import Case, CaseResult, apply_score, skipped, summarize

STATUS_RANK = {"pass": 4, "fail": 3, "timeout": 2, "error": 1}
NO_CODE_REASON = "no attempt produced code to evaluate"


def best_attempt(attempts: Sequence[Attempt]) -> Attempt | None:
    """The attempt with code that has the highest reward (then the furthest status, then the earliest)."""
    with_code = [a for a in attempts if a.code_path and a.result is not None]
    if not with_code:
        return None
    return max(with_code, key=lambda a: (a.reward, STATUS_RANK.get(a.status, 0), -a.rollout, -a.turn))


def best_result(case: Case, backend: str, attempts: Sequence[Attempt], skip_reason: str | None) -> CaseResult:
    """The case result that stands for the case in the run's summary."""
    if skip_reason:
        return skipped(case, backend, skip_reason)
    best = best_attempt(attempts)
    if best is not None and best.result is not None:
        return best.result
    return apply_score(
        CaseResult(
            name=case.name,
            tier=case.tier,
            backend=backend,
            status="error",
            reason=NO_CODE_REASON,
            case_path=str(case.path),
        )
    )


@dataclass(frozen=True)
class CaseOutcome:
    """One case of the run: its attempts, its best result, and how each conversation ended."""

    case: Case
    attempts: list[Attempt]
    result: CaseResult
    skip_reason: str | None
    stop_reasons: dict[int, str]
    submission: str | None


def _tokens(attempts: Sequence[Attempt]) -> dict[str, int]:
    return {k: sum(a.usage.get(k, 0) for a in attempts) for k in ("prompt_tokens", "completion_tokens", "total_tokens")}


def _first_pass_turn(attempts: Sequence[Attempt]) -> int | None:
    return min((a.turn for a in attempts if a.correct), default=None)


def _rollout(rollout: int, attempts: Sequence[Attempt], stop_reason: str | None) -> dict[str, Any]:
    answered = sorted((a for a in attempts if a.answered), key=lambda a: a.turn)
    return {
        "rollout": rollout,
        "turns_used": len(answered),
        "solved": any(a.correct for a in answered),
        "first_pass_turn": _first_pass_turn(answered),
        "best_reward": max((a.reward for a in answered), default=0.0),
        "last_reward": answered[-1].reward if answered else 0.0,
        "stop_reason": stop_reason,
    }


def case_figures(outcome: CaseOutcome, rollouts: int) -> dict[str, Any]:
    """The per-case entry of the agent-run artifact."""
    attempts = outcome.attempts
    answered = [a for a in attempts if a.answered]
    per_rollout = [
        _rollout(r, [a for a in attempts if a.rollout == r], outcome.stop_reasons.get(r)) for r in range(rollouts)
    ]
    best = best_attempt(attempts)
    speedups = [a.result.speedup for a in answered if a.correct and a.result and a.result.speedup]
    return {
        "name": outcome.case.name,
        "tier": outcome.case.tier,
        "status": outcome.result.status,
        "reason": outcome.result.reason if outcome.result.status != "pass" else None,
        "solved": any(a.correct for a in answered),
        "solved_rollouts": sum(1 for r in per_rollout if r["solved"]),
        "first_pass_turn": _first_pass_turn(answered),
        "best_reward": max((a.reward for a in answered), default=0.0),
        "last_reward": sum(r["last_reward"] for r in per_rollout) / rollouts if not outcome.skip_reason else 0.0,
        "best_speedup": max(speedups, default=None),
        "turns_used": len(answered),
        "attempts": len(attempts),
        "endpoint_errors": sum(1 for a in attempts if not a.answered),
        "extraction_failures": sum(1 for a in answered if a.extraction_error),
        "tokens": _tokens(attempts),
        "latency_s": sum(a.latency_s for a in attempts),
        "rollouts": per_rollout,
        "best": None
        if best is None
        else {
            "rollout": best.rollout,
            "turn": best.turn,
            "attempt_file": best.code_path,
            "sha256": best.code_sha256,
            "status": best.status,
            "reward": best.reward,
        },
        "submission": outcome.submission,
        "result": outcome.result.to_json(),
    }


def run_figures(outcomes: Sequence[CaseOutcome], rollouts: int, turns: int) -> dict[str, Any]:
    """The summary of the agent-run artifact."""
    counted = [o for o in outcomes if not o.skip_reason]
    attempts = [a for o in outcomes for a in o.attempts]
    samples = [
        (rollouts, len({a.rollout for a in o.attempts if a.correct})) for o in counted
    ]  # (n, c) per case: c rollouts out of n reached a correct candidate
    solved = [o for o in counted if any(a.correct for a in o.attempts)]
    first = [_first_pass_turn(o.attempts) for o in counted]
    return {
        "cases": len(outcomes),
        "evaluated_cases": len(counted),
        "solved": len(solved),
        "solve_rate": len(solved) / len(counted) if counted else None,
        "rollouts": rollouts,
        "turns": turns,
        "pass_at_k": {str(k): mean_pass_at_k(samples, k) for k in range(1, rollouts + 1)},
        "solved_within_turns": {
            str(n): (sum(1 for t in first if t is not None and t <= n) / len(counted) if counted else None)
            for n in range(1, turns + 1)
        },
        "mean_best_reward": (
            sum(max((a.reward for a in o.attempts), default=0.0) for o in counted) / len(counted) if counted else None
        ),
        "attempts": len(attempts),
        "answered": sum(1 for a in attempts if a.answered),
        "endpoint_errors": sum(1 for a in attempts if not a.answered),
        "extraction_failures": sum(1 for a in attempts if a.extraction_error),
        "tokens": _tokens(attempts),
        "latency_s": sum(a.latency_s for a in attempts),
        "scores": summarize([o.result for o in outcomes]),
    }
