"""One shape's pass through the evaluation protocol: staging, correctness trials, interleaved timing,
the speed of light, and the checks of the timed and fresh outputs; and how the passes of a case of
several shapes (``SHAPES``, `harness.suite.shapes`) make up its result.

`harness.evaluation.evaluate` runs one pass per shape with the same two workers: the reference
prepares each shape in turn, and the candidate keeps its ``ModelNew`` from one shape to the next unless
the shape's init inputs differ (`harness.sandbox.candidate.CandidateSession.use_shape`). A shape that
fails ends the evaluation: the case fails on any shape, and its reason names the shape.
"""

from __future__ import annotations

import dataclasses
import math
import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from harness.analysis.speed_of_light import assess, too_fast
from harness.backends import get_backend
from harness.backends.peaks import DevicePeaks, dtype_class
from harness.results import (
    PHASE_BASELINE,
    PHASE_CORRECTNESS,
    PHASE_SOLUTION,
    CaseResult,
    CorrectnessReport,
    ShapeResult,
)
from harness.sandbox import wire
from harness.sandbox.protocol import BaselineReply, PrepareReply
from harness.scoring import geometric_mean
from harness.suite.shapes import shape_label
from harness.timing import TimingConfig, TimingStats, plan_repetitions, warmup_calls

if TYPE_CHECKING:
    from harness.evaluation.evaluate import Worker

# The supervisor times every round from outside. A round whose wall time exceeds what the candidate
# reported, plus the most the protocol cost the reference in any round, by more than this share of
# the round's wall time (and by at least TIMER_ROUND_FLOOR_S) is unexplained; when most rounds are
# and the unexplained time adds up to TIMER_FLOOR_S, the candidate's own timings are not trusted.
TIMER_UNEXPLAINED_SHARE = 0.75
TIMER_ROUND_FLOOR_S = 0.005
TIMER_FLOOR_S = 0.1
TIMER_ROUNDS_SHARE = 0.75


def shape_timing(timing: TimingConfig, shapes: int) -> TimingConfig:
    """The timing plan of one shape: ``--budget-ms`` is per model per case, shared by its shapes, so a
    case's timed cost does not grow with its number of shapes (each still gets the minimum repetitions)."""
    if shapes <= 1:
        return timing
    return dataclasses.replace(timing, budget_ms=timing.budget_ms / shapes)


@dataclass
class Pass:
    """What every shape's pass of one evaluation shares."""

    result: CaseResult
    reference: Worker
    candidate: Worker
    timing: TimingConfig  # already split between the shapes (shape_timing)
    trials: int
    flush_cache: bool
    left: Callable[[], float]
    device_env: dict[str, Any] | None
    shapes: int
    load: dict[str, Any] | None  # the candidate's load request where it is still to come (device backends)


def run_shape(
    p: Pass, shape: ShapeResult, meta: PrepareReply, base: BaselineReply | None, seeds: dict[str, Any]
) -> None:
    """Take shape ``shape`` (prepared by the reference: ``meta``) through the protocol.

    Sets ``shape.status`` to ``pass``, or to ``fail``/``error`` with ``shape.reason``; worker
    failures, crashes and timeouts propagate to the caller.
    """
    result, reference, candidate, left = p.result, p.reference, p.candidate, p.left
    report = CorrectnessReport(trials=p.trials, atol=meta.atol, rtol=meta.rtol)
    shape.correctness = report
    shape.flops = meta.flops
    shape.bytes_moved = meta.input_bytes + meta.output_bytes
    staged = _prepare_staging(meta, reference, candidate, left)
    report.staged_inputs = staged
    timed = reference.call("stage", left(), key="timed") if staged else None
    if shape.index > 0:
        shape_seeds = {k: seeds[k] for k in ("trial_seeds", "timing_seed", "fresh_seed")}
        candidate.call("use_shape", left(), shape=shape.index, timed=timed, **shape_seeds)
    elif p.load is not None:
        candidate.call("load", left(), timed=timed, **p.load)
    else:
        candidate.call("take_timing_inputs", left(), timed=timed)
    # Large outputs come back through shared memory the reference worker reads where they lie.
    size = wire.reply_bytes(meta.output_bytes, meta.outputs)
    buffer = reference.reply_buffer(size, left()) if size >= wire.SHARED_MIN_BYTES else None
    candidate.attach(buffer, left())

    result.phase = PHASE_CORRECTNESS
    failure = _check_correctness(report, reference, candidate, p.trials, left, staged)
    if failure:
        shape.status, shape.reason = "fail", failure
        return
    dump = f"{result.backend}-{result.name}-{result.attempt}" + (f"-shape{shape.index + 1}" if p.shapes > 1 else "")
    where = f"shape {shape.index + 1} of {p.shapes}: " if p.shapes > 1 else ""  # labels the timers' notes
    problem = _measure(result, shape, p.timing, reference, candidate, p.flush_cache, left, base, dump, where)
    problem = problem or _speed_of_light(shape, meta, p.device_env)
    if problem:
        shape.status, shape.reason = "error", problem
        return
    result.phase = PHASE_CORRECTNESS
    for key, label, field_name in (
        ("timed", "the output of the last timed call (cached result?)", "timed_output_ok"),
        ("fresh", "the output for fresh values in the same input tensors (cached result?)", "fresh_output_ok"),
    ):
        if key == "timed":
            _, forward = candidate.call_forwarding("timed_output", left())
        else:
            fresh = reference.call("stage", left(), key="fresh") if staged else None
            _, forward = candidate.call_forwarding("fresh_output", left(), staged=fresh)
        verdict = reference.call("compare", left(), key=key, forward=forward)
        report.record(verdict)
        setattr(report, field_name, verdict["ok"])
        if not verdict["ok"]:
            shape.status, shape.reason = "fail", f"{label} is wrong: {verdict['reason']}"
            return
    result.phase = PHASE_SOLUTION
    assert shape.reference_timing and shape.solution_timing
    shape.speedup = shape.reference_timing.median_ms / shape.solution_timing.median_ms
    shape.status, shape.reason = "pass", None


def settle(result: CaseResult, shapes: list[ShapeResult], current: ShapeResult | None) -> None:
    """Make the case result out of its shapes' (once the evaluation has ended, however it ended).

    One shape: its figures become the case's, as before there were shapes, and ``shapes`` stays
    empty. Several: ``shapes`` keeps every one; the case's speedup is the geometric mean of theirs
    (when all pass), its correctness the worst over them, and a failure's reason names the shape.
    """
    if current is not None and current.status == "not_run" and result.status != "pass":
        current.status, current.reason = result.status, result.reason  # stopped by an error or a timeout
    if len(shapes) == 1:
        only = shapes[0]
        result.correctness = only.correctness
        result.reference_timing, result.solution_timing = only.reference_timing, only.solution_timing
        result.speedup = only.speedup if result.status == "pass" else None
        result.flops, result.bytes_moved = only.flops, only.bytes_moved
        result.speed_of_light = only.speed_of_light
        result.timed_time_s = only.timed_time_s
        return
    if not shapes:
        return
    result.shapes = shapes
    reports = [s.correctness for s in shapes if s.correctness is not None]
    result.correctness = CorrectnessReport.merged(reports) if reports else None
    result.timed_time_s = sum(s.timed_time_s for s in shapes)
    speedups = [s.speedup for s in shapes]
    if result.status == "pass" and all(s.status == "pass" and v for s, v in zip(shapes, speedups, strict=True)):
        result.speedup = geometric_mean([v for v in speedups if v])
    else:
        result.speedup = None
    failed = next((s for s in shapes if s.status not in ("pass", "not_run")), None)
    if failed is not None and result.status != "pass":
        label = shape_label(failed.index, len(shapes), failed.sizes)
        if result.reason and not result.reason.startswith(label):
            result.reason = f"{label}: {result.reason}"
        if result.correctness is not None and failed.correctness is not None and failed.correctness.first_failure:
            result.correctness.first_failure = f"{label}: {failed.correctness.first_failure}"


def _speed_of_light(shape: ShapeResult, meta: PrepareReply, device_env: dict[str, Any] | None) -> str | None:
    """Fill the shape's speed-of-light figures; the reason when the candidate is faster than the hardware allows."""
    peaks = (device_env or {}).get("peaks")
    if not peaks or shape.solution_timing is None or shape.reference_timing is None:
        return None
    traffic = meta.input_bytes + meta.param_bytes + meta.output_bytes
    shape.speed_of_light = assess(
        shape.flops,
        traffic,
        dtype_class(meta.dtypes),
        DevicePeaks.from_json(peaks),
        shape.solution_timing.median_ms,
        shape.reference_timing.median_ms,
    )
    return too_fast(shape.speed_of_light)


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


def _check_correctness(
    report: CorrectnessReport,
    reference: Worker,
    candidate: Worker,
    trials: int,
    left: Callable[[], float],
    staged: bool,
) -> str | None:
    """Run the correctness trials; why the candidate failed one, or None when all passed."""
    for index in range(trials):
        inputs = reference.call("stage", left(), key=str(index)) if staged else None
        reply, forward = candidate.call_forwarding("run_trial", left(), index=index, staged=inputs)
        if not isinstance(reply, dict):
            report.first_failure = f"trial {index}: the candidate's reply carries no outputs"
            return report.first_failure
        verdict = reference.call("compare", left(), key=str(index), forward=forward)
        # Staged inputs are checked by the reference; inputs drawn by the candidate, by its own worker.
        unchanged = verdict.get("inputs_unchanged") if staged else reply.get("inputs_unchanged")
        if unchanged is not True:
            report.inputs_unchanged = False
            report.first_failure = f"trial {index}: the candidate modified its input tensors"
            return report.first_failure
        report.record(verdict)
        if index == 0:
            report.output_fingerprint = verdict.get("output_fingerprint")
        if not verdict["ok"]:
            report.first_failure = f"trial {index}: {verdict['reason']}"
            return report.first_failure
        report.passed_trials += 1
    report.inputs_unchanged = True
    return None


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
    shape: ShapeResult,
    timing: TimingConfig,
    reference: Worker,
    candidate: Worker,
    flush_cache: bool,
    left: Callable[[], float],
    base: BaselineReply | None,
    dump_name: str,
    where: str = "",
) -> str | None:
    """Warm both up, then alternate reference and candidate rounds; fills the shape's timing fields
    (the case result gets the phase reached and the timers' notes).

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
    shape.reference_timing = TimingStats.from_samples(ref_samples, warm)
    shape.solution_timing = TimingStats.from_samples(cand_samples, warm)
    shape.timed_time_s = (sum(ref_samples) + sum(cand_samples)) / 1000.0
    result.warnings += [f"{where}reference timing: {n[:500]}" for n in ref_notes[:20]]
    result.warnings += [f"{where}candidate timing: {n[:500]}" for n in cand_notes[:20]]
    _dump_raw_timing(dump_name, base, ref_raw, cand_raw)
    return (_disturbance(backend, base, ref_samples) if base else None) or timer_inconsistency(
        list(zip(ref_rounds, ref_walls, strict=True)), list(zip(cand_rounds, cand_walls, strict=True))
    )


# HARNESS_TIMING_DUMP=FOLDER keeps every evaluation's raw timing (the baseline, both sides' rounds as
# the workers reported them, the calibration) as FOLDER/<backend>-<case>-<attempt>.json (a case of
# several shapes: one file per shape, ending -shape<N>.json), for studying the measurement itself
# (docs/measurement.md).
TIMING_DUMP_ENV = "HARNESS_TIMING_DUMP"


def _dump_raw_timing(name: str, base: BaselineReply | None, ref_raw: list[Any], cand_raw: list[Any]) -> None:
    import json
    import os

    folder = os.environ.get(TIMING_DUMP_ENV)
    if not folder:
        return
    path = Path(folder) / f"{name}.json"
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
