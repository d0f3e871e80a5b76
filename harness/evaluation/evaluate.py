"""One evaluation, phase by phase: reference outputs, candidate outputs, comparison, interleaved timing.

The reference worker (trusted) holds the reference outputs and does every comparison; the
candidate worker only runs the candidate and reports what it returned (its replies are passed on to
the reference worker as raw bytes). Timing alternates between the two in rounds so that clock and
thermal drift hit both alike, and the candidate's processes are stopped while the reference is timed.
This module sets an evaluation up, runs it shape by shape (`harness.evaluation.shape_pass` has one
shape's pass: staging, trials, timing, speed of light) and cleans up after it, however it ended.
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from harness.analysis.static_flags import scan_file, strict_failures
from harness.backends import get_backend
from harness.evaluation import build_cache
from harness.evaluation.cleanup import remove_scratch
from harness.evaluation.file_watch import FileWatch
from harness.evaluation.shape_pass import Pass, run_shape, settle, shape_timing
from harness.evaluation.workers import WorkerCrashed, WorkerFailure, WorkerTimeout
from harness.results import PHASE_LOADING, CaseResult, ShapeResult
from harness.sandbox.protocol import BaselineReply, PrepareReply, ProtocolError
from harness.scoring import apply_score
from harness.suite.cases import Case, file_sha256
from harness.timing import TimingConfig, for_backend


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


def seeds_for(run_seed: int, task: Task, trials: int, shape: int = 0) -> dict[str, Any]:
    """Per-task seeds derived from the run's seed, so a resumed or sharded run draws the same inputs.

    Shape 0 draws what a case without shapes always drew; a later shape draws its own inputs but
    keeps shape 0's ``init_seed``, so that a model built from equal init inputs has equal weights on
    every shape (the candidate keeps its ``ModelNew`` across such shapes).
    """
    rng = random.Random(f"{run_seed}:{task.case.name}:{task.attempt}")
    draw = lambda: rng.randrange(1, 2**31 - 1)  # noqa: E731
    seeds = {
        "init_seed": draw(),
        "trial_seeds": [draw() for _ in range(trials)],
        "timing_seed": draw(),
        "fresh_seed": draw(),
    }
    if shape:
        rng = random.Random(f"{run_seed}:{task.case.name}:{task.attempt}:shape{shape}")
        seeds.update(trial_seeds=[draw() for _ in range(trials)], timing_seed=draw(), fresh_seed=draw())
    return seeds


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
    speed-of-light figures and floor. A case of several shapes goes through the protocol once per
    shape with the same two workers (`harness.evaluation.shape_pass`).
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
    run = _Run(task, config, run_seed, result, reference, deadline)
    cache_root = Path(config.build_cache) if config.build_cache else None
    try:
        _protocol(run, start_candidate, cache_root, flush_cache, device_env)
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
        settle(result, run.shapes, run.current)
        candidate = run.candidate
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


@dataclass
class _Run:
    """The state of one evaluation that its cleanup needs, however it ended."""

    task: Task
    config: EvalConfig
    run_seed: int
    result: CaseResult
    reference: Worker
    deadline: float
    candidate: Worker | None = None
    shapes: list[ShapeResult] = field(default_factory=list)
    current: ShapeResult | None = None  # the shape being evaluated

    def left(self) -> float:
        return self.deadline - time.monotonic()

    def seeds(self, shape: int) -> dict[str, Any]:
        return seeds_for(self.run_seed, self.task, self.config.trials, shape)

    def case_json(self) -> dict[str, Any]:
        case = self.task.case
        return {"name": case.name, "tier": case.tier, "path": str(case.path.resolve())}

    def prepare(self, shape: int) -> PrepareReply | None:
        """The reference's prepare of shape ``shape``; None (the result says why) when the case fails it."""
        self.result.phase = PHASE_LOADING  # a later shape starts over: its case module, model, inputs
        try:
            meta = PrepareReply.from_json(
                self.reference.call("prepare", self.left(), case=self.case_json(), shape=shape, **self.seeds(shape))
            )
        except (WorkerFailure, ProtocolError) as exc:
            self.result.reason = f"reference case failed: {exc}"
            self.result.case_error = isinstance(exc, WorkerFailure)  # the case file raised or broke its contract
            return None
        if shape < len(self.shapes):
            self.shapes[shape].sizes = meta.sizes
        return meta


def _protocol(
    run: _Run,
    start_candidate: Callable[[], Worker],
    cache_root: Path | None,
    flush_cache: bool,
    device_env: dict[str, Any] | None,
) -> None:
    """The evaluation proper: sets the result's status and reason, the shapes' figures on ``run``."""
    task, config, result, reference, left = run.task, run.config, run.result, run.reference, run.left
    backend = get_backend(task.backend)
    seeds = run.seeds(0)
    assert task.solution is not None and result.solution_sha256 is not None
    # The reference computes its expected outputs while the candidate's worker starts (nothing
    # is timed yet); the reference's reply is collected first so that it stays in step.
    reference.begin("prepare", case=run.case_json(), **seeds)
    starting: Exception | None = None
    load = {"case": run.case_json(), "solution_path": str(task.solution.resolve()), **seeds}
    try:
        run.candidate = candidate = start_candidate()
        build_cache.restore(cache_root, task.backend, result.solution_sha256, candidate.scratch)
        if not backend.needs_baseline:
            # Nothing a stopped candidate started can run on the host, so its load may overlap
            # the reference's prepare (on two cores that halves the wait).
            candidate.begin("load", timing_later=True, **load)
    except Exception as exc:  # noqa: BLE001 - raised again once the reference has answered
        starting = exc
    try:
        meta: PrepareReply | None = PrepareReply.from_json(reference.finish(left()))
    except (WorkerFailure, ProtocolError) as exc:
        result.reason = f"reference case failed: {exc}"
        result.case_error = isinstance(exc, WorkerFailure)  # the case file raised or broke its contract
        return
    if starting is not None:
        raise starting
    assert meta is not None
    run.shapes = [ShapeResult(index=i) for i in range(meta.shapes)]
    run.shapes[0].sizes = meta.sizes
    timing = shape_timing(for_backend(config.timing, backend.timing_overrides), meta.shapes)
    bases: list[BaselineReply | None] = [None] * meta.shapes
    if backend.needs_baseline:
        # The reference is timed alone once per shape before any candidate code runs (the
        # candidate's worker is set up, its device context made, the solution not imported): its
        # later rounds are checked against this baseline, which also fixes the lead and correction
        # constants. Each shape is prepared for it; shape 0 again last, as it is the first to run.
        candidate.call("ping", left())
        for index in range(meta.shapes):
            run.current = run.shapes[index]
            if index and run.prepare(index) is None:
                return
            try:
                bases[index] = BaselineReply.from_json(
                    reference.call("baseline", left(), timing=timing.to_json(), flush_cache=flush_cache)
                )
            except (WorkerFailure, ProtocolError) as exc:
                result.reason = f"reference case failed: {exc}"
                result.case_error = isinstance(exc, WorkerFailure)  # before any candidate code ran
                return
        run.current = run.shapes[0]
        if meta.shapes > 1 and (meta := run.prepare(0)) is None:
            return
    else:
        candidate.finish(left())
    shared = Pass(
        result=result,
        reference=reference,
        candidate=candidate,
        timing=timing,
        trials=config.trials,
        flush_cache=flush_cache,
        left=left,
        device_env=device_env,
        shapes=len(run.shapes),
        load=load if backend.needs_baseline else None,
    )
    for shape in run.shapes:
        run.current = shape
        if shape.index and (meta := run.prepare(shape.index)) is None:
            return
        assert meta is not None
        run_shape(shared, shape, meta, bases[shape.index], run.seeds(shape.index))
        if shape.status != "pass":
            result.status, result.reason = shape.status, shape.reason
            return
    run.current = None
    result.status, result.reason = "pass", None


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


def _finish(result: CaseResult, started: float) -> CaseResult:
    result.wall_time_s = time.monotonic() - started
    return apply_score(result)
