"""One evaluation, phase by phase: reference outputs, candidate outputs, comparison, interleaved timing.

The reference worker (trusted) holds the reference outputs and does every comparison; the
candidate worker only runs the candidate and reports what it returned (its replies are passed on to
the reference worker as raw bytes). Timing alternates between the two in rounds so that clock and
thermal drift hit both alike, and the candidate's processes are stopped while the reference is timed.
"""

from __future__ import annotations

import math
import random
import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from harness.analysis.speed_of_light import assess, too_fast
from harness.analysis.static_flags import scan_file, strict_failures
from harness.backends import get_backend
from harness.backends.peaks import DevicePeaks, dtype_class
from harness.evaluation import build_cache
from harness.evaluation.cleanup import remove_scratch
from harness.evaluation.file_watch import FileWatch
from harness.evaluation.workers import WorkerCrashed, WorkerFailure, WorkerTimeout
from harness.results import (
    PHASE_BASELINE,
    PHASE_CORRECTNESS,
    PHASE_LOADING,
    PHASE_SOLUTION,
    CaseResult,
    CorrectnessReport,
)
from harness.sandbox import wire
from harness.sandbox.protocol import BaselineReply, PrepareReply, ProtocolError
from harness.scoring import apply_score
from harness.suite.cases import Case, file_sha256
from harness.timing import TimingConfig, TimingStats, for_backend, plan_repetitions, warmup_calls

# The supervisor times every round from outside. A round whose wall time exceeds what the candidate
# reported, plus the most the protocol cost the reference in any round, by more than this share of
# the round's wall time (and by at least TIMER_ROUND_FLOOR_S) is unexplained; when most rounds are
# and the unexplained time adds up to TIMER_FLOOR_S, the candidate's own timings are not trusted.
TIMER_UNEXPLAINED_SHARE = 0.75
TIMER_ROUND_FLOOR_S = 0.005
TIMER_FLOOR_S = 0.1
TIMER_ROUNDS_SHARE = 0.75


class Worker(Protocol):
    alive: bool
    can_stage: bool
    scratch: Path | None
    outcome: dict[str, Any] | None
    sandbox: dict[str, Any] | None

    def call(self, method: str, timeout_s: float, **kwargs: Any) -> Any: ...
    def begin(self, method: str, **kwargs: Any) -> None: ...
    def finish(self, timeout_s: float) -> Any: ...
    def call_forwarding(self, method: str, timeout_s: float, **kwargs: Any) -> tuple[Any, Any]: ...
    def freeze(self) -> None: ...
    def thaw(self) -> None: ...
    def attach(self, buffer: Any, timeout_s: float) -> None: ...
    def reply_buffer(self, min_size: int, timeout_s: float) -> Any: ...
    def staging_buffer(self, min_size: int, timeout_s: float) -> Any: ...
    def attach_staging(self, buffer: Any, timeout_s: float) -> None: ...
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
    build_cache: str | None = None  # folder that keeps candidates' builds between runs (build_cache.py)
    strict: tuple[str, ...] = ()  # static flags (harness.analysis.static_flags) that fail a candidate

    def to_json(self) -> dict[str, Any]:
        return {
            "backend": self.backend,
            "trials": self.trials,
            "timeout_s": self.timeout_s,
            "seed": self.seed,
            "timing": self.timing.to_json(),
            "output_limit_bytes": self.output_limit_bytes,
            "isolation": self.isolation,
            "build_cache": self.build_cache,
            "strict": list(self.strict),
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
    start_candidate: Callable[[], Worker],
    device: str,
    flush_cache: bool,
    watch: FileWatch | None = None,
    device_env: dict[str, Any] | None = None,
) -> CaseResult:
    """Evaluate ``task``; never raises for anything the case or candidate does.

    ``start_candidate`` gives a fresh candidate worker with its own scratch folder (removed here).
    ``watch``, when given, is checked after the candidate's processes are gone if the candidate was
    not confined by Landlock: a changed file outside its scratch folder makes the result an error.
    ``device_env`` (the reference worker's environment block) gives the device's peaks for the
    speed-of-light figures and floor.
    """
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
    result.flags = scan_file(task.solution, case.path)
    failure = strict_failures(result.flags, set(config.strict))
    if failure:
        result.status, result.reason = "fail", failure
        return _finish(result, started)
    seeds = seeds_for(run_seed, task, config.trials)
    case_json = {"name": case.name, "tier": case.tier, "path": str(case.path.resolve())}
    left = lambda: deadline - time.monotonic()  # noqa: E731
    cache_root = Path(config.build_cache) if config.build_cache else None
    backend = get_backend(task.backend)
    timing = for_backend(config.timing, backend.timing_overrides)
    candidate: Worker | None = None
    try:
        # The reference computes its expected outputs while the candidate's worker starts (nothing
        # is timed yet); the reference's reply is collected first so that it stays in step.
        reference.begin("prepare", case=case_json, **seeds)
        starting: Exception | None = None
        load = {"case": case_json, "solution_path": str(task.solution.resolve()), **seeds}
        try:
            candidate = start_candidate()
            build_cache.restore(cache_root, task.backend, result.solution_sha256, candidate.scratch)
            if not backend.needs_baseline:
                # Nothing a stopped candidate started can run on the host, so its load may overlap
                # the reference's prepare (on two cores that halves the wait).
                candidate.begin("load", timing_later=True, **load)
        except Exception as exc:  # noqa: BLE001 - raised again once the reference has answered
            starting = exc
        try:
            meta = PrepareReply.from_json(reference.finish(left()))
        except (WorkerFailure, ProtocolError) as exc:
            result.reason = f"reference case failed: {exc}"
            result.case_error = isinstance(exc, WorkerFailure)  # the case file raised or broke its contract
            return _finish(result, started)
        if starting is not None:
            raise starting
        assert candidate is not None
        correctness = CorrectnessReport(trials=config.trials, atol=meta.atol, rtol=meta.rtol)
        result.correctness = correctness
        result.flops = meta.flops
        result.bytes_moved = meta.input_bytes + meta.output_bytes

        base: BaselineReply | None = None
        if backend.needs_baseline:
            # The reference is timed alone once before any candidate code runs (the candidate's
            # worker is set up, its device context made, the solution not imported): its later rounds
            # are checked against this baseline, which also fixes the lead and correction constants.
            candidate.call("ping", left())
            try:
                base = BaselineReply.from_json(
                    reference.call("baseline", left(), timing=timing.to_json(), flush_cache=flush_cache)
                )
            except (WorkerFailure, ProtocolError) as exc:
                result.reason = f"reference case failed: {exc}"
                result.case_error = isinstance(exc, WorkerFailure)  # before any candidate code ran
                return _finish(result, started)
        else:
            candidate.finish(left())
        staged = _prepare_staging(meta, reference, candidate, left)
        correctness.staged_inputs = staged
        timed = reference.call("stage", left(), key="timed") if staged else None
        if backend.needs_baseline:
            candidate.call("load", left(), timed=timed, **load)
        else:
            candidate.call("take_timing_inputs", left(), timed=timed)
        # Large outputs come back through shared memory the reference worker reads where they lie.
        size = wire.reply_bytes(meta.output_bytes, meta.outputs)
        buffer = reference.reply_buffer(size, left()) if size >= wire.SHARED_MIN_BYTES else None
        candidate.attach(buffer, left())

        result.phase = PHASE_CORRECTNESS
        if not _check_correctness(result, correctness, reference, candidate, config.trials, left, staged):
            result.status = "fail"
            return _finish(result, started)

        problem = _measure(result, timing, reference, candidate, flush_cache, left, base)
        problem = problem or _speed_of_light(result, meta, device_env)
        if problem:
            result.reason = problem
            return _finish(result, started)
        result.phase = PHASE_CORRECTNESS
        for key, label, field_name in (
            ("timed", "the output of the last timed call (cached result?)", "timed_output_ok"),
            (
                "fresh",
                "the output for fresh values in the same input tensors (cached result?)",
                "fresh_output_ok",
            ),
        ):
            if key == "timed":
                _, forward = candidate.call_forwarding("timed_output", left())
            else:
                fresh = reference.call("stage", left(), key="fresh") if staged else None
                _, forward = candidate.call_forwarding("fresh_output", left(), staged=fresh)
            verdict = reference.call("compare", left(), key=key, forward=forward)
            correctness.record(verdict)
            setattr(correctness, field_name, verdict["ok"])
            if not verdict["ok"]:
                result.status = "fail"
                result.reason = f"{label} is wrong: {verdict['reason']}"
                return _finish(result, started)
        result.phase = PHASE_SOLUTION
        assert result.reference_timing and result.solution_timing
        result.speedup = result.reference_timing.median_ms / result.solution_timing.median_ms
        result.status = "pass"
        result.reason = None
    except WorkerFailure as exc:
        result.status = "error"
        if exc.phase:
            result.phase = exc.phase
        result.reason = str(exc)
    except WorkerTimeout as exc:
        result.status = "timeout"
        waiting = "" if exc.role == "candidate" else f"; waiting for the {exc.role} worker"
        result.reference_lost = exc.role == "reference"
        result.reason = f"no result within the {config.timeout_s:g} s timeout (phase {result.phase}{waiting})"
    except WorkerCrashed as exc:
        result.status = "error"
        if exc.role == "candidate":
            result.exit_code = exc.exitcode
            result.signal = exc.signal_name
            result.reason = f"{exc} (phase {result.phase})"
        else:
            result.reason = f"{exc} (phase {result.phase}); the reference worker is replaced"
            result.reference_lost = True
    finally:
        if candidate is not None:
            candidate.thaw()
            candidate.kill()
            _take_outcome(result, candidate, config.output_limit_bytes)
            _check_files(result, candidate, watch)
            if result.status in ("pass", "fail"):
                build_cache.store(cache_root, task.backend, result.solution_sha256, candidate.scratch)
            if candidate.scratch is not None:
                remove_scratch(candidate.scratch)
        _release_reference(reference)
    return _finish(result, started)


def _speed_of_light(result: CaseResult, meta: PrepareReply, device_env: dict[str, Any] | None) -> str | None:
    """Fill the speed-of-light figures; the reason when the candidate is faster than the hardware allows."""
    peaks = (device_env or {}).get("peaks")
    if not peaks or result.solution_timing is None or result.reference_timing is None:
        return None
    traffic = meta.input_bytes + meta.param_bytes + meta.output_bytes
    result.speed_of_light = assess(
        result.flops,
        traffic,
        dtype_class(meta.dtypes),
        DevicePeaks.from_json(peaks),
        result.solution_timing.median_ms,
        result.reference_timing.median_ms,
    )
    return too_fast(result.speed_of_light)


def _prepare_staging(meta: PrepareReply, reference: Worker, candidate: Worker, left: Callable[[], float]) -> bool:
    """Whether the candidate runs on inputs the reference stages (else it draws them from the seeds)."""
    if not meta.staging or not reference.can_stage or not candidate.can_stage:
        return False
    if meta.staging == "host":
        buffer = reference.staging_buffer(meta.stage_bytes, left())
        if buffer is None:
            return False
        candidate.attach_staging(buffer, left())
    return True


def _take_outcome(result: CaseResult, candidate: Worker, limit: int) -> None:
    """Copy what the candidate's keeper reported (output tails, leftovers) into ``result``."""
    outcome = candidate.outcome or {}
    stdout, stderr = str(outcome.get("stdout", "")), str(outcome.get("stderr", ""))
    result.stdout = stdout[-limit:] if limit else ""
    result.stderr = stderr[-limit:] if limit else ""
    result.output_truncated = bool(outcome.get("truncated", False)) or max(len(stdout), len(stderr)) > limit
    leftovers = int(outcome.get("leftovers") or 0)
    if leftovers:
        result.warnings.append(f"the candidate left {leftovers} process(es) running after its worker; they were killed")


def _check_files(result: CaseResult, candidate: Worker, watch: FileWatch | None) -> None:
    """Blame the candidate for files changed outside its scratch folder, where nothing forbade it."""
    sandbox = candidate.sandbox or {}
    if watch is None or sandbox.get("landlock"):
        return
    changed, restored = watch.check()
    if not changed:
        return
    shown = ", ".join(changed[:5]) + (f" and {len(changed) - 5} more" if len(changed) > 5 else "")
    result.status = "error"
    result.speedup = None
    result.reason = f"the candidate changed files outside its scratch folder: {shown}" + (
        f" ({len(restored)} restored)" if restored else ""
    )


def _release_reference(reference: Worker) -> None:
    """Keep the reference worker for the next case unless it died or fell out of step.

    (Its tensors for this case are dropped by the next ``prepare``: no round trip is spent on it.)
    """
    if not reference.alive:
        reference.kill()


def _check_correctness(
    result: CaseResult,
    report: CorrectnessReport,
    reference: Worker,
    candidate: Worker,
    trials: int,
    left: Callable[[], float],
    staged: bool,
) -> bool:
    for index in range(trials):
        inputs = reference.call("stage", left(), key=str(index)) if staged else None
        reply, forward = candidate.call_forwarding("run_trial", left(), index=index, staged=inputs)
        if not isinstance(reply, dict):
            report.first_failure = result.reason = f"trial {index}: the candidate's reply carries no outputs"
            return False
        verdict = reference.call("compare", left(), key=str(index), forward=forward)
        # Staged inputs are checked by the reference; inputs drawn by the candidate, by its own worker.
        unchanged = verdict.get("inputs_unchanged") if staged else reply.get("inputs_unchanged")
        if unchanged is not True:
            report.inputs_unchanged = False
            report.first_failure = result.reason = f"trial {index}: the candidate modified its input tensors"
            return False
        report.record(verdict)
        if index == 0:
            report.output_fingerprint = verdict.get("output_fingerprint")
        if not verdict["ok"]:
            report.first_failure = result.reason = f"trial {index}: {verdict['reason']}"
            return False
        report.passed_trials += 1
    report.inputs_unchanged = True
    return True


_Round = tuple[list[float], float]  # samples (ms) the worker reported, seconds the supervisor measured


def _alone(worker: Worker, other: Worker, method: str, left: Callable[[], float], **kw: Any) -> Any:
    """A request to ``worker`` with every process of ``other`` stopped: nothing the other left running
    (a candidate's background threads, or either side's OpenMP threads still spinning after its own
    round) competes for the cores while ``worker`` warms up or is timed."""
    other.freeze()
    try:
        return worker.call(method, left(), **kw)
    finally:
        other.thaw()


def _measure(
    result: CaseResult,
    timing: TimingConfig,
    reference: Worker,
    candidate: Worker,
    flush_cache: bool,
    left: Callable[[], float],
    base: BaselineReply | None,
) -> str | None:
    """Warm both up, then alternate reference and candidate rounds; fills the timing fields.

    ``base`` is the reference's baseline where the backend takes one (taken before the candidate was
    loaded): its lead and calibration time both sides; its round is what the reference's rounds are
    checked against. Returns why the evaluation's timings cannot be trusted, or None.
    """
    backend = get_backend(result.backend)
    calibration = base.calibration if base else None
    lead = base.lead_ms if base else 0.0
    result.phase = PHASE_BASELINE
    # The reference was warmed up before the candidate loaded where there is a baseline; a few calls
    # bring it back after the candidate's correctness trials.
    ref_estimate = _alone(reference, candidate, "warmup", left, calls=timing.min_warmup)["estimate_ms"]
    if base:
        ref_estimate = base.estimate_ms
    result.phase = PHASE_SOLUTION
    cand_estimate = _alone(candidate, reference, "warmup", left, calls=timing.min_warmup)["estimate_ms"]
    slower = max(_finite(ref_estimate), _finite(cand_estimate), 1e-6)
    extra = warmup_calls(slower, timing) - timing.min_warmup
    if extra > 0:
        if not base:
            result.phase = PHASE_BASELINE
            _alone(reference, candidate, "warmup", left, calls=extra)
        result.phase = PHASE_SOLUTION
        _alone(candidate, reference, "warmup", left, calls=extra)
    # Both get the same number of samples, sized by the slower of the two so the budget holds.
    repetitions = plan_repetitions(slower, timing)
    per_round = repetitions // timing.rounds
    ref_raw: list[Any] = []
    cand_raw: list[Any] = []
    ref_walls: list[float] = []
    cand_walls: list[float] = []
    request = {"repetitions": per_round, "flush_cache": flush_cache, "lead_ms": lead, "calibration": calibration}
    for _ in range(timing.rounds):
        result.phase = PHASE_BASELINE
        t0 = time.perf_counter()
        ref_raw.append(_alone(reference, candidate, "time", left, **request))
        ref_walls.append(time.perf_counter() - t0)
        result.phase = PHASE_SOLUTION
        t0 = time.perf_counter()
        cand_raw.append(_alone(candidate, reference, "time", left, **request))
        cand_walls.append(time.perf_counter() - t0)
    ref_rounds, ref_notes = backend.finish_rounds(ref_raw, calibration, per_round)
    cand_rounds, cand_notes = backend.finish_rounds(cand_raw, calibration, per_round)
    if any(not samples for samples in cand_rounds):
        return f"the candidate did not report {per_round} valid timing samples per round"
    if any(not samples for samples in ref_rounds):
        return "the reference worker reported malformed timing samples"
    ref_samples = [s for samples in ref_rounds for s in samples]
    cand_samples = [s for samples in cand_rounds for s in samples]
    warm = timing.min_warmup + max(0, extra)
    result.reference_timing = TimingStats.from_samples(ref_samples, warm)
    result.solution_timing = TimingStats.from_samples(cand_samples, warm)
    result.timed_time_s = (sum(ref_samples) + sum(cand_samples)) / 1000.0
    result.warnings += [f"reference timing: {n[:500]}" for n in ref_notes[:20]]
    result.warnings += [f"candidate timing: {n[:500]}" for n in cand_notes[:20]]
    _dump_raw_timing(result, base, ref_raw, cand_raw)
    return (_disturbance(backend, base, ref_samples) if base else None) or timer_inconsistency(
        list(zip(ref_rounds, ref_walls, strict=True)), list(zip(cand_rounds, cand_walls, strict=True))
    )


# HARNESS_TIMING_DUMP=FOLDER keeps every evaluation's raw timing (the baseline, both sides' rounds as
# the workers reported them, the calibration) as FOLDER/<backend>-<case>-<attempt>.json, for studying
# the measurement itself (docs/measurement.md).
TIMING_DUMP_ENV = "HARNESS_TIMING_DUMP"


def _dump_raw_timing(result: CaseResult, base: BaselineReply | None, ref_raw: list[Any], cand_raw: list[Any]) -> None:
    import json
    import os

    folder = os.environ.get(TIMING_DUMP_ENV)
    if not folder:
        return
    path = Path(folder) / f"{result.backend}-{result.name}-{result.attempt}.json"
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        baseline = base.to_json() if base else None
        path.write_text(json.dumps({"baseline": baseline, "reference": ref_raw, "candidate": cand_raw}))
    except (OSError, TypeError, ValueError):
        pass


# On event-timed devices the candidate's processes are stopped while the reference is timed, but
# work they queued on the device before that still runs. The reference's rounds must then not be
# slower than its baseline (timed before any candidate code ran) by more than this share, or by
# more than three times the baseline's own interquartile spread, whichever is larger.
DISTURBANCE_SHARE = 0.03
_DISTURBANCE_FLOOR_MS = 0.002


def _disturbance(backend: Any, base: BaselineReply, ref_samples: list[float]) -> str | None:
    """Why the reference's rounds cannot be trusted (something slowed it down), or None."""
    calibration, series = base.calibration, base.series
    if calibration is None or not ref_samples:
        return None
    count = len(series.get("event_ms") or series.get("samples_ms") or [])
    (baseline,), _ = backend.finish_rounds([series], calibration, count)
    if len(baseline) < 3:
        return None
    ordered = sorted(baseline)
    b = statistics.median(ordered)
    spread = (ordered[(3 * len(ordered)) // 4] - ordered[len(ordered) // 4]) / b if b > 0 else 0.0
    tolerance = max(DISTURBANCE_SHARE, 3.0 * spread)
    r = statistics.median(ref_samples)
    if r <= b * (1.0 + tolerance) + _DISTURBANCE_FLOOR_MS:
        return None
    return (
        f"the reference was disturbed while it was timed: its median was {r:.4f} ms during the rounds "
        f"but {b:.4f} ms when timed alone before the candidate was loaded (+{(r / b - 1) * 100:.1f} %, "
        f"tolerance {tolerance * 100:.1f} %); work the candidate left running on the device (a kernel "
        f"queued from a background thread or a child process) shares the device with the reference"
    )


def _finite(value: Any) -> float:
    return float(value) if isinstance(value, (int, float)) and math.isfinite(value) and value > 0 else 0.0


def timer_inconsistency(ref_rounds: list[_Round], cand_rounds: list[_Round]) -> str | None:
    """Why the candidate's reported times cannot be true, judged by the supervisor's own clock.

    The candidate's samples are taken inside its own process, which it could patch. The supervisor
    times each round from outside: the candidate cannot have spent more than that in its calls, and
    what it did not report must be explained by what the protocol cost the trusted reference (its
    worst round, so that noise does not count against the candidate).
    """
    reported = sum(sum(samples) for samples, _ in cand_rounds) / 1000.0
    wall = sum(w for _, w in cand_rounds)
    if reported > wall * 1.05 + 0.01:
        return f"candidate reported {reported:.3f} s of timed calls in {wall:.3f} s of wall time"
    allowance = max((max(0.0, w - sum(samples) / 1000.0) for samples, w in ref_rounds), default=0.0)
    unexplained = [max(0.0, w - sum(samples) / 1000.0 - allowance) for samples, w in cand_rounds]
    suspicious = sum(
        1
        for u, (_, w) in zip(unexplained, cand_rounds, strict=True)
        if u > max(TIMER_ROUND_FLOOR_S, TIMER_UNEXPLAINED_SHARE * w)
    )
    if sum(unexplained) > TIMER_FLOOR_S and suspicious >= max(1, math.ceil(TIMER_ROUNDS_SHARE * len(cand_rounds))):
        return (
            f"candidate's timer is not trustworthy: its timed rounds took {wall:.3f} s on the supervisor's "
            f"clock, but it reported {reported:.3f} s of calls and the protocol explains at most "
            f"{allowance * len(cand_rounds):.3f} s more"
        )
    return None


def _finish(result: CaseResult, started: float) -> CaseResult:
    result.wall_time_s = time.monotonic() - started
    return apply_score(result)
