"""One evaluation, phase by phase: reference outputs, candidate outputs, comparison, interleaved timing.

The reference worker (trusted) holds the reference outputs and does every comparison; the
candidate worker only runs the candidate and reports what it returned. Timing alternates between
the two in rounds so that clock and thermal drift hit both alike.
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from harness.cases import Case, file_sha256
from harness.results import CaseResult, CorrectnessReport
from harness.scoring import apply_score
from harness.supervisor import (
    WorkerCrashed,
    WorkerFailure,
    WorkerTimeout,
    make_scratch,
    read_tail,
    remove_scratch,
)
from harness.timing import TimingConfig, TimingStats, plan_repetitions, warmup_calls
from harness.worker import PHASE_BASELINE, PHASE_CORRECTNESS, PHASE_INIT, PHASE_LOADING, PHASE_SOLUTION

# A candidate whose timed calls took this many times longer on the supervisor's clock than it
# reported (beyond the reference's own overhead) is treated as having tampered with its timer.
TIMER_SLACK_FACTOR = 3.0
TIMER_SLACK_S = 0.2


class Worker(Protocol):
    alive: bool
    scratch: Path | None

    def call(self, method: str, timeout_s: float, **kwargs: Any) -> Any: ...
    def kill(self) -> None: ...
    def close(self) -> None: ...


@dataclass(frozen=True)
class EvalConfig:
    """Everything that decides how one case is evaluated."""

    backend: str = "cpu"
    trials: int = 3
    timeout_s: float = 300.0
    seed: int | None = None  # None: a fresh secret seed per run
    timing: TimingConfig = field(default_factory=TimingConfig)
    output_limit_bytes: int = 16 * 1024
    isolation: str = "process"  # process | none

    def to_json(self) -> dict[str, Any]:
        return {
            "backend": self.backend,
            "trials": self.trials,
            "timeout_s": self.timeout_s,
            "seed": self.seed,
            "timing": self.timing.to_json(),
            "output_limit_bytes": self.output_limit_bytes,
            "isolation": self.isolation,
        }


@dataclass(frozen=True)
class Task:
    """One candidate file on one case and backend (attempt numbers the candidates of a case)."""

    case: Case
    solution: Path | None
    backend: str
    attempt: int = 0

    @property
    def key(self) -> str:
        return f"{self.backend}/{self.case.tier}/{self.case.name}"


def seeds_for(run_seed: int, task: Task, trials: int) -> dict[str, Any]:
    """Per-task seeds derived from the run's seed, so a resumed or sharded run draws the same inputs."""
    rng = random.Random(f"{run_seed}:{task.case.name}:{task.attempt}")
    draw = lambda: rng.randrange(1, 2**31 - 1)  # noqa: E731
    return {
        "init_seed": draw(),
        "trial_seeds": [draw() for _ in range(trials)],
        "timing_seed": draw(),
        "fresh_seed": draw(),
    }


def evaluate(
    task: Task,
    config: EvalConfig,
    run_seed: int,
    reference: Worker,
    start_candidate: Callable[[Path], Worker],
    device: str,
    flush_cache: bool,
) -> CaseResult:
    """Evaluate ``task``; never raises for anything the case or candidate does."""
    started = time.monotonic()
    deadline = started + config.timeout_s
    case = task.case
    result = CaseResult(
        name=case.name,
        tier=case.tier,
        backend=task.backend,
        status="error",
        phase=PHASE_LOADING,
        case_path=str(case.path),
        case_sha256=case.sha256(),
        solution_path=str(task.solution) if task.solution else None,
        device=device,
        attempt=task.attempt,
    )
    if task.solution is None or not task.solution.is_file():
        result.reason = f"no solution file for {case.name} (expected <solutions>/{case.tier}/{case.name}.py)"
        return _finish(result, started)
    result.solution_sha256 = file_sha256(task.solution)
    seeds = seeds_for(run_seed, task, config.trials)
    case_json = {"name": case.name, "tier": case.tier, "path": str(case.path.resolve())}
    left = lambda: deadline - time.monotonic()  # noqa: E731
    candidate: Worker | None = None
    scratch = make_scratch()
    try:
        try:
            meta = reference.call("prepare", left(), case=case_json, **seeds)
        except WorkerFailure as exc:
            result.reason = f"reference case failed: {exc}"
            return _finish(result, started)
        correctness = CorrectnessReport(trials=config.trials, atol=meta["atol"], rtol=meta["rtol"])
        result.correctness = correctness
        result.flops = meta.get("flops")
        result.bytes_moved = int(meta.get("input_bytes", 0)) + int(meta.get("output_bytes", 0))

        candidate = start_candidate(scratch)
        candidate.call("load", left(), case=case_json, solution_path=str(task.solution.resolve()), **seeds)

        result.phase = PHASE_CORRECTNESS
        if not _check_correctness(result, correctness, reference, candidate, config.trials, left):
            result.status = "fail"
            return _finish(result, started)

        problem = _measure(result, config.timing, reference, candidate, flush_cache, left)
        if problem:
            result.reason = problem
            return _finish(result, started)
        for key, label, field_name in (
            ("timed", "the output of the last timed call", "timed_output_ok"),
            ("fresh", "the output for fresh values in the same input tensors (cached result?)", "fresh_output_ok"),
        ):
            method = "timed_output" if key == "timed" else "fresh_output"
            outputs = candidate.call(method, left())["outputs"]
            verdict = reference.call("compare", left(), key=key, outputs=outputs)
            setattr(correctness, field_name, verdict["ok"])
            if not verdict["ok"]:
                result.status = "fail"
                result.reason = f"{label} is wrong: {verdict['reason']}"
                return _finish(result, started)
        assert result.reference_timing and result.solution_timing
        result.speedup = result.reference_timing.median_ms / result.solution_timing.median_ms
        result.status = "pass"
        result.reason = None
    except WorkerFailure as exc:
        result.status = "error"
        result.phase = exc.phase or result.phase
        result.reason = str(exc)
        if exc.phase == PHASE_INIT:
            result.phase = PHASE_INIT
    except WorkerTimeout:
        reference.kill()  # it may be mid-request; a fresh one is started for the next case
        result.status = "timeout"
        result.reason = f"no result within the {config.timeout_s:g} s timeout (phase {result.phase})"
    except WorkerCrashed as exc:
        reference.kill()
        result.status = "error"
        result.exit_code = exc.exitcode
        result.signal = exc.signal_name
        result.reason = f"candidate {exc} (phase {result.phase})"
    finally:
        if candidate is not None:
            candidate.kill()
        result.stdout, cut_out = read_tail(scratch / "stdout.txt", config.output_limit_bytes)
        result.stderr, cut_err = read_tail(scratch / "stderr.txt", config.output_limit_bytes)
        result.output_truncated = cut_out or cut_err
        remove_scratch(scratch)
        _release_reference(reference, left)
    return _finish(result, started)


def _release_reference(reference: Worker, left: Callable[[], float]) -> None:
    if not reference.alive:
        return
    try:
        reference.call("finish", max(5.0, left()))
    except (WorkerFailure, WorkerTimeout, WorkerCrashed):
        reference.kill()


def _check_correctness(
    result: CaseResult,
    report: CorrectnessReport,
    reference: Worker,
    candidate: Worker,
    trials: int,
    left: Callable[[], float],
) -> bool:
    for index in range(trials):
        reply = candidate.call("run_trial", left(), index=index)
        if not reply["inputs_unchanged"]:
            report.inputs_unchanged = False
            report.first_failure = result.reason = f"trial {index}: the candidate modified its input tensors"
            return False
        verdict = reference.call("compare", left(), key=str(index), outputs=reply["outputs"])
        for name in ("max_abs_error", "max_rel_error"):
            value = verdict.get(name)
            if value is not None:
                current = getattr(report, name)
                setattr(report, name, value if current is None else max(current, value))
        report.mismatched_fraction = verdict.get("mismatched_fraction")
        if not verdict["ok"]:
            report.first_failure = result.reason = f"trial {index}: {verdict['reason']}"
            return False
        report.passed_trials += 1
    report.inputs_unchanged = True
    return True


def _measure(
    result: CaseResult,
    timing: TimingConfig,
    reference: Worker,
    candidate: Worker,
    flush_cache: bool,
    left: Callable[[], float],
) -> str | None:
    """Warm both up, then alternate reference and candidate rounds; fills the timing fields.

    Returns why the candidate's timings cannot be trusted, or None.
    """
    result.phase = PHASE_BASELINE
    ref_estimate = reference.call("warmup", left(), calls=timing.min_warmup)["estimate_ms"]
    result.phase = PHASE_SOLUTION
    cand_estimate = candidate.call("warmup", left(), calls=timing.min_warmup)["estimate_ms"]
    slower = max(ref_estimate, cand_estimate, 1e-6)
    extra = warmup_calls(slower, timing) - timing.min_warmup
    if extra > 0:
        result.phase = PHASE_BASELINE
        reference.call("warmup", left(), calls=extra)
        result.phase = PHASE_SOLUTION
        candidate.call("warmup", left(), calls=extra)
    # Both get the same number of samples, sized by the slower of the two so the budget holds.
    repetitions = plan_repetitions(slower, timing)
    per_round = repetitions // timing.rounds
    ref_samples: list[float] = []
    cand_samples: list[float] = []
    ref_wall = cand_wall = 0.0
    for _ in range(timing.rounds):
        result.phase = PHASE_BASELINE
        t0 = time.perf_counter()
        ref_samples += reference.call("time", left(), repetitions=per_round, flush_cache=flush_cache)["samples_ms"]
        ref_wall += time.perf_counter() - t0
        result.phase = PHASE_SOLUTION
        t0 = time.perf_counter()
        cand_samples += candidate.call("time", left(), repetitions=per_round, flush_cache=flush_cache)["samples_ms"]
        cand_wall += time.perf_counter() - t0
    warm = timing.min_warmup + max(0, extra)
    result.reference_timing = TimingStats.from_samples(ref_samples, warm)
    result.solution_timing = TimingStats.from_samples(cand_samples, warm)
    result.timed_time_s = (sum(ref_samples) + sum(cand_samples)) / 1000.0
    return timer_inconsistency(ref_samples, ref_wall, cand_samples, cand_wall)


def timer_inconsistency(
    ref_samples: list[float], ref_wall_s: float, cand_samples: list[float], cand_wall_s: float
) -> str | None:
    """Why the candidate's reported times cannot be true, judged by the supervisor's own clock.

    The candidate's samples are taken inside its own process, which it could patch. The supervisor
    times each round from outside: the candidate cannot have spent more than that, and what it did
    not report must be explained by the per-call overhead the reference showed.
    """
    reported = sum(cand_samples) / 1000.0
    if reported > cand_wall_s * 1.05 + 0.01:
        return f"candidate reported {reported:.3f} s of timed calls in {cand_wall_s:.3f} s of wall time"
    overhead_per_call = max(0.0, ref_wall_s - sum(ref_samples) / 1000.0) / max(1, len(ref_samples))
    explained = reported + overhead_per_call * len(cand_samples)
    if cand_wall_s > TIMER_SLACK_FACTOR * explained + TIMER_SLACK_S:
        return (
            f"candidate's timer is not trustworthy: its timed calls took {cand_wall_s:.3f} s of wall time "
            f"but it reported {reported:.3f} s"
        )
    return None


def _finish(result: CaseResult, started: float) -> CaseResult:
    result.wall_time_s = time.monotonic() - started
    return apply_score(result)
