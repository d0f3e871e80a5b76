"""Running a suite: tasks per backend and device, one device thread each, journal, resume, Ctrl-C.

The runner decides what runs where (the executor); `harness.evaluation.evaluate` decides how one case is
evaluated. One reference worker per device is reused; each candidate gets a fresh worker.
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
import queue
import secrets
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from harness.backends import get_backend
from harness.errors import EnvironmentUnavailable
from harness.evaluation.cleanup import make_scratch, remove_scratch
from harness.evaluation.evaluate import EvalConfig, Task, evaluate
from harness.evaluation.file_watch import FileWatch, WatchRoot
from harness.evaluation.forkserver import cpu_sets, start_forkserver
from harness.evaluation.workers import (
    CandidateProcess,
    InProcessWorker,
    ReferenceProcess,
    WorkerCrashed,
    WorkerFailure,
    WorkerTimeout,
)
from harness.results import CaseResult
from harness.sandbox.landlock import landlock_abi
from harness.scoring import apply_score
from harness.suite.cases import Case, solution_paths

# HARNESS_SANDBOX=off turns Landlock off (for testing the file-watch fallback); the supervisor's
# environment decides, never the candidate's.
SANDBOX_ENV = "HARNESS_SANDBOX"
# HARNESS_PIN_CPUS=off keeps workers on every CPU instead of one set per device (docs/measurement.md).
PIN_ENV = "HARNESS_PIN_CPUS"


def worker_cpus(backend: str, devices: Sequence[str]) -> dict[str, list[int]]:
    """The CPU set of each device's workers, where the backend pins them (empty: not pinned)."""
    if not get_backend(backend).pin_workers or os.environ.get(PIN_ENV, "on").lower() in ("off", "0", "no", "false"):
        return {}
    try:
        sets = cpu_sets(len(devices))
    except (AttributeError, OSError):
        return {}
    return dict(zip(devices, sets, strict=True))


def sandbox_enabled() -> bool:
    """Whether candidates are to be confined with Landlock (where the kernel has it)."""
    return os.environ.get(SANDBOX_ENV, "on").lower() not in ("off", "0", "no", "false")


def needs_file_watch(isolation: str) -> bool:
    """Whether writes outside scratch folders can only be detected, not prevented, here."""
    return isolation != "process" or not sandbox_enabled() or landlock_abi() < 1


class Observer(Protocol):
    """What a front end (progress bar, logger) hears while a run goes on."""

    def planned(self, total: int) -> None: ...
    def case_started(self, task: Task) -> None: ...
    def case_finished(self, result: CaseResult) -> None: ...


class _Silent:
    def planned(self, total: int) -> None: ...
    def case_started(self, task: Task) -> None: ...
    def case_finished(self, result: CaseResult) -> None: ...


@dataclass
class BackendRun:
    backend: str
    status: str  # ran | unavailable
    reason: str | None = None
    devices: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    environment: dict[str, Any] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        return {
            "backend": self.backend,
            "status": self.status,
            "reason": self.reason,
            "devices": self.devices,
            "warnings": self.warnings,
        }


@dataclass
class RunOutcome:
    results: list[CaseResult]
    backends: list[BackendRun]
    interrupted: bool = False


def skipped(case: Case, backend: str, reason: str) -> CaseResult:
    result = CaseResult(
        name=case.name,
        tier=case.tier,
        backend=backend,
        status="skipped",
        phase=None,
        reason=reason,
        case_path=str(case.path),
    )
    return apply_score(result)


def best_attempt(attempts: Sequence[CaseResult]) -> CaseResult:
    """pass@N: the fastest passing attempt, else the first; all attempts are listed in it."""
    passing = [r for r in attempts if r.status == "pass"]
    chosen = max(passing, key=lambda r: r.speedup or 0.0) if passing else attempts[0]
    if len(attempts) > 1:
        chosen.attempts = [
            {
                "attempt": r.attempt,
                "status": r.status,
                "speedup": r.speedup,
                "solution": r.solution_path,
                "reason": r.reason,
            }
            for r in attempts
        ]
    return chosen


def select_backends(
    backends: Sequence[str], requested: Sequence[str] | None, strict: bool = True
) -> list[BackendRun]:
    """Each backend with the devices it will use, or why it is unavailable.

    Raises EnvironmentUnavailable when ``strict`` (one backend asked for by name) and it is not usable.
    """
    runs: list[BackendRun] = []
    for name in backends:
        try:
            devices, warnings = get_backend(name).select_devices(list(requested) if requested else None)
        except EnvironmentUnavailable as exc:
            if strict:
                raise
            runs.append(BackendRun(name, "unavailable", reason=str(exc)))
            continue
        runs.append(BackendRun(name, "ran", devices=devices, warnings=warnings))
    return runs


class Runner:
    """Evaluates cases on one or more backends; reports each finished case to ``on_result``."""

    def __init__(
        self,
        config: EvalConfig,
        solutions: Path,
        pass_n: int = 1,
        observer: Observer | None = None,
        on_result: Callable[[CaseResult], None] | None = None,
        devices: Sequence[str] | None = None,
        watch: FileWatch | None = None,
    ) -> None:
        self.config = config
        self.watch = watch
        self.sandbox = sandbox_enabled()
        self.solutions = solutions
        self.pass_n = max(1, pass_n)
        self.observer = observer or _Silent()
        self.on_result = on_result or (lambda r: None)
        self.requested_devices = list(devices) if devices else None
        self.run_seed = config.seed if config.seed is not None else secrets.randbelow(2**31 - 1)
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._active: set[Any] = set()
        self._spares: dict[tuple[str, str], Any] = {}
        self._cpus: dict[tuple[str, str], list[int]] = {}
        self.device_warnings: dict[str, list[str]] = {}  # backend -> devices lost mid-run

    def attempts_for(self, case: Case, backend: str) -> list[Task]:
        paths = solution_paths(self.solutions, case)
        if len(paths) == 1:
            paths = paths * self.pass_n
        return [Task(case, path, backend, attempt=i) for i, path in enumerate(paths[: self.pass_n])]

    def run(
        self,
        backends: Sequence[str],
        cases: Sequence[Case],
        done: Sequence[CaseResult] = (),
        strict_backend: bool = True,
        selected: Sequence[BackendRun] | None = None,
    ) -> RunOutcome:
        """Evaluate ``cases`` on each backend, skipping what ``done`` already holds (resume).

        ``selected`` is `select_backends`'s answer when the caller checked the devices already
        (`harness run` does, before it writes anything).
        """
        finished = {r.key for r in done}
        results: list[CaseResult] = list(done)
        if selected is None:
            selected = select_backends(backends, self.requested_devices, strict_backend)
        runs = [dataclasses.replace(r, devices=list(r.devices), warnings=list(r.warnings)) for r in selected]
        plan: list[tuple[str, list[str], list[Case]]] = []
        for backend_run in runs:
            if backend_run.status != "ran":
                continue
            name = backend_run.backend
            todo = [c for c in cases if f"{name}/{c.tier}/{c.name}" not in finished]
            plan.append((name, backend_run.devices, todo))
        self.observer.planned(sum(len(todo) for _, _, todo in plan))
        interrupted = False
        for (name, devices, todo), backend_run in zip(
            plan, [r for r in runs if r.status == "ran"], strict=True
        ):
            new, env = self._run_backend(name, devices, todo)
            backend_run.environment = env
            backend_run.warnings += self.device_warnings.get(name, [])
            results.extend(new)
            if self._stop.is_set():
                interrupted = True
                break
        return RunOutcome(results=results, backends=runs, interrupted=interrupted)

    def stop(self) -> None:
        """Stop handing out cases and end the workers in flight (Ctrl-C); device threads clean up."""
        self._stop.set()
        with self._lock:
            active = list(self._active)
        for worker in active:
            with contextlib.suppress(Exception):
                interrupt = getattr(worker, "interrupt", None)
                if interrupt is not None:
                    interrupt()

    def _emit(self, result: CaseResult) -> None:
        with self._lock:
            self.on_result(result)
        self.observer.case_finished(result)

    def _run_backend(
        self, backend: str, devices: list[str], cases: list[Case]
    ) -> tuple[list[CaseResult], dict[str, Any]]:
        for device, cpus in worker_cpus(backend, devices).items():
            self._cpus[(backend, device)] = cpus
        work = _Work(devices)
        for case in cases:
            work.queue.put(_Item(case))
        results: list[CaseResult] = []
        environment: dict[str, Any] = {}
        failures: list[tuple[str, BaseException]] = []

        def loop(device: str) -> None:
            try:
                self._device_loop(backend, device, work, results, environment)
            except BaseException as exc:  # noqa: BLE001 - re-raised in the main thread below
                failures.append((device, exc))
                self._stop.set()
            finally:
                work.leave(device)

        threads = [threading.Thread(target=loop, args=(device,), daemon=True) for device in devices]
        for thread in threads:
            thread.start()
        try:
            for thread in threads:
                while thread.is_alive():
                    thread.join(timeout=0.2)
        except KeyboardInterrupt:
            self.stop()
            for thread in threads:
                thread.join(timeout=30)
        if failures:
            # A dead device thread must never look like a finished run with fewer cases.
            device, exc = failures[0]
            raise RuntimeError(f"the worker thread for {device} failed: {type(exc).__name__}: {exc}") from exc
        self.device_warnings[backend] = [f"device {d} was lost mid-run ({why}); no further case ran on it"
                                          for d, why in work.lost.items()]  # fmt: skip
        if not self._stop.is_set():
            while True:  # cases no device was left to run (every device lost)
                try:
                    item = work.queue.get_nowait()
                except queue.Empty:
                    break
                lost = "; ".join(f"{d}: {why}" for d, why in work.lost.items())
                result = apply_score(CaseResult(
                    name=item.case.name, tier=item.case.tier, backend=backend, status="error", phase=None,
                    reason=f"no device was left to run this case ({lost})", case_path=str(item.case.path),
                ))  # fmt: skip
                results.append(result)
                self._emit(result)
        order = {c.name: i for i, c in enumerate(cases)}
        results.sort(key=lambda r: order.get(r.name, 0))
        return results, environment

    def _new_worker(self, role: str, backend: str, device: str, scratch: Path | None = None) -> Any:
        """A fresh worker: the reference (reused by the caller) or one candidate's (used once)."""
        worker: Any
        cpus = self._cpus.get((backend, device))
        if self.config.isolation != "process":
            worker = InProcessWorker(role, backend, device, scratch)
        elif role == "reference":
            worker = ReferenceProcess(backend, device, cpus)
        else:
            assert scratch is not None
            worker = CandidateProcess(
                backend, device, scratch, self.config.output_limit_bytes, self.sandbox, cpus
            )
        with self._lock:
            self._active = {w for w in self._active if getattr(w, "alive", False)}
            self._active.add(worker)
        return worker

    def _candidate(self, backend: str, device: str) -> Any:
        """A fresh candidate worker with its own scratch folder: the spare started earlier, if ready.

        Reusing a worker that ran a candidate is never safe; starting the next one while the
        supervisor journals and the reference prepares the next case is, and hides its start-up.
        """
        with self._lock:
            spare = self._spares.pop((backend, device), None)
        if spare is not None and spare.alive:
            return spare
        if spare is not None:
            _discard(spare)
        return self._new_worker("candidate", backend, device, make_scratch())

    def _start_spare(self, backend: str, device: str) -> None:
        if self.config.isolation != "process" or self._stop.is_set():
            return
        with self._lock:
            if (backend, device) in self._spares:
                return
        spare = self._new_worker("candidate", backend, device, make_scratch())
        with self._lock:
            self._spares[(backend, device)] = spare

    def _drop_spare(self, backend: str, device: str) -> None:
        with self._lock:
            spare = self._spares.pop((backend, device), None)
        if spare is not None:
            _discard(spare)

    def _device_loop(
        self,
        backend: str,
        device: str,
        work: _Work,
        results: list[CaseResult],
        environment: dict[str, Any],
    ) -> None:
        flush = self.config.timing.flush_cache
        if flush is None:
            flush = get_backend(backend).flush_cache_by_default
        reference: Any = None
        try:
            while not self._stop.is_set():
                item = work.take(device)
                if item is None:
                    return
                try:
                    case = item.case
                    reason = case.skip_reason(backend)
                    tasks = self.attempts_for(case, backend) if not reason else []
                    if reason or not tasks:
                        why = reason or f"no candidate for {case.name} in {self.solutions}"
                        result = skipped(case, backend, why)
                        results.append(result)
                        self._emit(result)
                        continue
                    attempts = []
                    for task in tasks:
                        if reference is None or not reference.alive:
                            reference = self._new_worker("reference", backend, device)
                            if device not in environment:
                                with contextlib.suppress(WorkerFailure, WorkerTimeout, WorkerCrashed):
                                    environment.update({device: reference.call("environment", 120)})
                        self.observer.case_started(task)
                        attempts.append(
                            evaluate(
                                task,
                                self.config,
                                self.run_seed,
                                reference,
                                lambda: self._candidate(backend, device),
                                device,
                                flush,
                                self.watch,
                                environment.get(device),
                            )
                        )
                        if attempts[-1].reference_lost or self._stop.is_set():
                            break
                        if not work.queue.empty() or task is not tasks[-1]:
                            self._start_spare(backend, device)
                    if self._stop.is_set() and attempts and attempts[-1].status in ("error", "timeout"):
                        return  # killed by Ctrl-C: not a verdict on the candidate; resume re-runs it
                    if attempts[-1].reference_lost and not item.retried and work.others(device):
                        # The device (or its reference) failed, not the candidate: the case goes to
                        # another device once, and this device goes on only if a fresh reference answers.
                        work.queue.put(_Item(case, avoid=device, lost=attempts[-1].reason))
                        reference = self._healthy_reference(backend, device, reference)
                        if reference is None:
                            work.lose(device, attempts[-1].reason or "its reference worker died")
                            return
                        continue
                    result = best_attempt(attempts)
                    if item.retried:
                        result.warnings.append(
                            f"retried on device {device} after the reference worker on device {item.avoid} "
                            f"was lost: {item.lost}"
                        )
                    results.append(result)
                    self._emit(result)
                finally:
                    work.done(device)
        finally:
            self._drop_spare(backend, device)
            if reference is not None:
                reference.close()
            with self._lock:
                self._active = {w for w in self._active if getattr(w, "alive", False)}

    def _healthy_reference(self, backend: str, device: str, old: Any) -> Any:
        """A fresh reference worker on ``device`` that answers, or None (the device is gone)."""
        if old is not None:
            _discard(old)
        try:
            reference = self._new_worker("reference", backend, device)
            reference.call("environment", 120)
            return reference
        except (WorkerFailure, WorkerTimeout, WorkerCrashed, OSError, RuntimeError):
            return None


@dataclass
class _Item:
    """A case waiting for a device; ``avoid`` is the device its reference was lost on (retried once)."""

    case: Case
    avoid: str | None = None
    lost: str | None = None  # why the reference on ``avoid`` was lost

    @property
    def retried(self) -> bool:
        return self.avoid is not None


class _Work:
    """The cases of one backend and the devices taking them: who is busy, who is still there.

    A device thread waits while another is busy (that one may put a case back); it stops when the
    queue is empty and nobody is busy.
    """

    def __init__(self, devices: Sequence[str]) -> None:
        self.queue: queue.Queue[_Item] = queue.Queue()
        self.live = set(devices)
        self.busy: set[str] = set()
        self.lost: dict[str, str] = {}
        self._lock = threading.Lock()

    def take(self, device: str) -> _Item | None:
        while True:
            try:
                item = self.queue.get(timeout=0.05)
            except queue.Empty:
                with self._lock:
                    if not self.busy - {device}:
                        return None
                continue
            with self._lock:
                elsewhere = item.avoid == device and bool(self.live - {device})
                if not elsewhere:
                    self.busy.add(device)
            if elsewhere:  # a case this device lost goes to another one while another is there
                self.queue.put(item)
                time.sleep(0.01)
                continue
            return item

    def done(self, device: str) -> None:
        with self._lock:
            self.busy.discard(device)

    def others(self, device: str) -> bool:
        with self._lock:
            return bool(self.live - {device})

    def lose(self, device: str, reason: str) -> None:
        with self._lock:
            self.live.discard(device)
            self.lost[device] = reason

    def leave(self, device: str) -> None:
        with self._lock:
            self.live.discard(device)
            self.busy.discard(device)


def _discard(worker: Any) -> None:
    """Kill an unused worker and remove its scratch folder."""
    worker.kill()
    if worker.scratch is not None:
        remove_scratch(worker.scratch)


def evaluate_single(
    task: Task, config: EvalConfig, device: str | None = None
) -> tuple[CaseResult, dict[str, Any]]:
    """One evaluation outside a suite run (``harness eval``): the result and the device's environment."""
    if config.isolation == "process":
        start_forkserver()  # torch is imported there while this process checks the backend
    backend = get_backend(task.backend)
    if device is None:
        device = backend.select_devices(None)[0][0]
    reason = task.case.skip_reason(task.backend)
    if reason:
        return skipped(task.case, task.backend, reason), {}
    watch = None
    if needs_file_watch(config.isolation):
        import harness

        roots = [WatchRoot(task.case.path.resolve().parent, depth=1, restore=True)]
        if task.solution is not None:
            roots.append(WatchRoot(task.solution.resolve().parent, depth=1, restore=True))
        roots.append(WatchRoot(Path(harness.__file__).resolve().parent, ignore=frozenset({"__pycache__"})))
        if os.environ.get("HOME"):
            roots.append(WatchRoot(Path(os.environ["HOME"]), depth=1))
        watch = FileWatch(roots)
    runner = Runner(config, solutions=task.solution.parent if task.solution else Path("."), watch=watch)
    for dev, cpus in worker_cpus(task.backend, [device]).items():
        runner._cpus[(task.backend, dev)] = cpus
    flush = config.timing.flush_cache
    if flush is None:
        flush = backend.flush_cache_by_default
    # Both workers start at once: each makes its device context while the other does.
    reference = runner._new_worker("reference", task.backend, device)
    candidate = runner._new_worker("candidate", task.backend, device, make_scratch())
    try:
        environment: dict[str, Any] = {}
        with contextlib.suppress(WorkerFailure, WorkerTimeout, WorkerCrashed):
            environment = {device: reference.call("environment", 120)}
        result = evaluate(
            task,
            config,
            runner.run_seed,
            reference,
            lambda: candidate,
            device,
            flush,
            watch,
            environment.get(device),
        )
    finally:
        reference.close()
        if candidate.alive:
            _discard(candidate)
    return result, environment
