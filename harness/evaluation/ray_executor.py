"""`harness run --executor ray`: one `harness eval` per task on a Ray cluster, results streamed into the run.

Why the command line is the contract: a Ray task runs ``python -m harness eval CASE SOLUTION --json ...`` in
a subprocess on its node and hands back what it printed (a ``v1/case-result`` artifact). Everything that
makes one evaluation safe and comparable (the sandbox, the reference worker, the per-case seeds, the
container runtime) is then exactly what a local ``harness eval`` does, the node needs nothing but the
harness installed, and this module never reaches into the evaluation's internals.

The driver (this process) plans the cases like a local run, sends one task per candidate file, and feeds
each finished case to the run's ``on_result`` (journal and checkpoint), so ``--resume`` works unchanged.
A task whose worker or node dies, whose ``harness eval`` exits without a case result or that
overruns its deadline is retried once, on another node where the cluster has one, and is then reported as
an ``error`` with the reason. Ray is optional (``pip install 'kernel-harness[ray]'``): it is imported only
here, and only when ``--executor ray`` is asked for. Long because the driver's plan, the node's side of a
task and the retry bookkeeping share one task format and are read together.
"""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from harness.errors import EnvironmentUnavailable

if TYPE_CHECKING:
    from harness.evaluation.evaluate import Task
    from harness.evaluation.runner import Observer, Runner, RunOutcome
    from harness.results import CaseResult
    from harness.suite.cases import Case

RAY_INSTALL_HINT = "pip install 'kernel-harness[ray]'"
# Seconds a task may run beyond the evaluation's own --timeout (interpreter and worker start, a container
# start) before the driver gives it up as hung and cancels it.
TASK_GRACE_S = 300.0
# How long ray.wait blocks before the driver looks at deadlines and signals (Ctrl-C) again.
POLL_S = 0.5
# What each backend asks Ray for besides CPUs: Ray sets CUDA_VISIBLE_DEVICES for GPU and
# ASCEND_RT_VISIBLE_DEVICES for NPU to the devices it assigned to the task.
ACCELERATOR_RESOURCE = {"gpu": "GPU", "npu": "NPU"}
VISIBLE_DEVICES_ENV = {"gpu": "CUDA_VISIBLE_DEVICES", "npu": "ASCEND_RT_VISIBLE_DEVICES"}
STDERR_KEPT = 4000  # bytes of a failed eval's stderr that travel back for the reason

# Run as `python -c LAUNCHER PARENT_PID CPUS -m harness eval ...`: makes the evaluation die with the Ray
# worker that started it (PR_SET_PDEATHSIG; SIGTERM lets `harness eval` stop its own workers), so a killed or
# cancelled task leaves no evaluation running on the node, then pins it to CPUS (comma list, may be empty)
# and becomes `python -m harness eval ...` (execv keeps the death signal and the CPU set).
_LAUNCHER = """\
import ctypes, os, signal, sys
try:
    ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGTERM)
except (OSError, AttributeError):
    pass
if os.getppid() != int(sys.argv[1]):
    sys.exit(137)
if sys.argv[2] and hasattr(os, "sched_setaffinity"):
    try:
        os.sched_setaffinity(0, [int(c) for c in sys.argv[2].split(",")])
    except (OSError, ValueError):
        pass
os.execv(sys.executable, [sys.executable, *sys.argv[3:]])
"""


@dataclass(frozen=True)
class RemoteTask:
    """One candidate file on one case and backend, as the driver planned it (``task.attempt`` for pass@N)."""

    task: Task
    solution_relpath: str | None = None  # the file's path inside its solutions folder (layout of shipped files)

    @property
    def key(self) -> str:
        return self.task.key


@dataclass(frozen=True)
class RayOptions:
    """How the run uses the cluster; ``eval_args`` are the run's evaluation options as `harness eval` flags."""

    address: str | None = None  # None: $RAY_ADDRESS, else a new local cluster on this machine
    run_seed: int = 0
    eval_args: tuple[str, ...] = ()
    timeout_s: float = 300.0  # the evaluation's --timeout; a task's deadline adds TASK_GRACE_S
    ship_files: bool = False  # send file contents with each task instead of relying on a shared file system
    num_cpus: float = 1.0
    runtime: str = "local"  # harness eval --runtime on each node
    image: str | None = None
    retries: int = 1


def ray_options(options: Mapping[str, Any], run_seed: int) -> RayOptions:
    """The RayOptions of a `harness run` invocation (its parsed CLI options, restored ones included)."""
    return RayOptions(
        address=options.get("ray_address") or None,
        run_seed=run_seed,
        eval_args=eval_arguments(options),
        timeout_s=float(options.get("timeout_s") or 300.0),
        ship_files=bool(options.get("ray_ship_files")),
        num_cpus=float(options.get("ray_cpus") or 1.0),
        runtime=options.get("runtime") or "local",
        image=options.get("image"),
    )


def eval_arguments(options: Mapping[str, Any]) -> tuple[str, ...]:
    """The `harness eval` flags that make a task evaluate exactly as this run would locally.

    The build cache is passed only when the run names one: a path of the driver's home means nothing on
    a node, whose own default ($HARNESS_BUILD_CACHE, else ~/.cache) is the right one there.
    """
    args = [
        "--timeout", str(options["timeout_s"]), "--trials", str(options["trials"]),
        "--budget-ms", str(options["budget_ms"]), "--rounds", str(options["rounds"]),
        "--isolation", str(options["isolation"]), "--output-limit", str(options["output_limit"]),
    ]  # fmt: skip
    if options.get("flush_cache") is not None:
        args.append("--flush-cache" if options["flush_cache"] else "--warm-cache")
    strict = options.get("strict")
    if strict:
        args += ["--strict", strict if isinstance(strict, str) else ",".join(strict)]
    if options.get("no_build_cache") or ("build_cache" in options and options["build_cache"] is None):
        args.append("--no-build-cache")  # a named cache is a path of the driver's: each node keeps its own
    return tuple(args)


def import_ray() -> Any:
    """The ray module, or EnvironmentUnavailable saying how to install it."""
    try:
        import ray
    except ImportError as exc:
        raise EnvironmentUnavailable(
            f"--executor ray needs Ray, which is not installed here ({exc}); install it with: {RAY_INSTALL_HINT}"
        ) from exc
    return ray


def connect(address: str | None) -> tuple[Any, str]:
    """Connect this process to the cluster (or start a local one); returns (ray, a description of where).

    A host:port that nothing answers on fails at once: Ray itself would retry for minutes. Ray replaces
    the SIGTERM handler in ray.init; the harness's own one (stop, write partial results) is put back.
    """
    import logging

    ray = import_ray()
    target = address or os.environ.get("RAY_ADDRESS") or None
    where = f"the Ray cluster at {target}" if target else "a new local Ray cluster"
    fix = (
        "start it with `ray start --head` (and `ray start --address HEAD:PORT` on the other nodes), "
        "or pass the address the head printed with --ray-address HOST:PORT"
    )
    if target and "://" not in target and target != "auto":
        host, _, port = target.rpartition(":")
        if not host or not port.isdigit():
            raise EnvironmentUnavailable(
                f"--ray-address {target!r} is not HOST:PORT; pass the address `ray start --head` printed"
            )
        try:
            socket.create_connection((host, int(port)), timeout=5).close()
        except OSError as exc:
            raise EnvironmentUnavailable(f"no Ray cluster answers at {target} ({exc.strerror or exc}); {fix}") from exc
    handler = signal.getsignal(signal.SIGTERM)
    kwargs: dict[str, Any] = {"logging_level": logging.WARNING, "log_to_driver": False}
    if not target:
        kwargs["include_dashboard"] = False
    with tempfile.TemporaryFile() as log:
        try:
            # Ray's C++ client logs every failed retry to fd 2: kept for the reason. Not while a local
            # cluster starts, whose processes would inherit the file.
            with _stderr_to(log) if target else contextlib.nullcontext():
                ray.init(address=target, **kwargs)
        except Exception as exc:  # noqa: BLE001 - Ray raises ConnectionError, RuntimeError, AuthenticationError...
            log.seek(0)
            said = log.read().decode("utf-8", "replace")
            text = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            if "auth" in f"{text} {said}".lower():
                fix = (
                    "the cluster wants its authentication token: set RAY_AUTH_MODE=token and RAY_AUTH_TOKEN (or "
                    "RAY_AUTH_TOKEN_PATH) to the token the head was started with (`ray get-auth-token` there)"
                )
            elif target:
                fix += "; the Ray and Python versions here must match the cluster's"
            raise EnvironmentUnavailable(f"could not connect to {where}: {type(exc).__name__}: {text}; {fix}") from exc
        finally:
            if handler is not None and _in_main_thread():
                signal.signal(signal.SIGTERM, handler)
        log.seek(0)
        sys.stderr.write(log.read().decode("utf-8", "replace"))  # nothing went wrong: what Ray said stands
    return ray, where


@contextlib.contextmanager
def _stderr_to(sink: Any) -> Iterator[None]:
    """Point file descriptor 2 (where native code writes too) at ``sink`` for the duration."""
    sys.stderr.flush()
    saved = os.dup(2)
    try:
        os.dup2(sink.fileno(), 2)
        yield
    finally:
        sys.stderr.flush()
        os.dup2(saved, 2)
        os.close(saved)


def _in_main_thread() -> bool:
    import threading

    return threading.current_thread() is threading.main_thread()


def task_resources(backend: str, num_cpus: float) -> dict[str, Any]:
    """The Ray resource request of one evaluation on ``backend`` (one device, ``num_cpus`` CPUs)."""
    request: dict[str, Any] = {"num_cpus": num_cpus}
    if backend == "gpu":
        request["num_gpus"] = 1
    elif backend == "npu":
        request["resources"] = {"NPU": 1}
    return request


# --- the node side ------------------------------------------------------------------------------------


def node_command(
    spec: Mapping[str, Any],
    accelerator_ids: Mapping[str, Sequence[str]],
    environ: Mapping[str, str],
    files_root: Path | None = None,
) -> tuple[list[str], dict[str, str]]:
    """The `harness eval` argument list (after ``-m harness``) and the environment for one task on a node.

    With ``--runtime local`` the evaluation sees only the device Ray assigned (its visibility variable)
    and uses index 0. With docker or auto the runtime may start a container that is handed a host
    device, so the variable is dropped and the Ray-assigned (host) index is passed instead: a local
    evaluation then finds the same device among all of them.
    """
    backend = spec["backend"]
    env = dict(environ)
    device = "0"
    resource = ACCELERATOR_RESOURCE.get(backend)
    assigned = list(accelerator_ids.get(resource, ())) if resource else []
    variable = VISIBLE_DEVICES_ENV.get(backend)
    if variable and assigned:
        if spec["runtime"] == "local":
            env[variable] = ",".join(assigned)  # Ray sets it for GPUs; for NPUs only since Ray 2.9
        else:
            env.pop(variable, None)
            device = assigned[0]
    case, solution = spec["case"], spec["solution"]
    if files_root is not None:
        case, solution = _write_shipped(spec["files"], files_root)
    args = ["eval", str(case), str(solution), "--json", "--backend", backend, "--devices", device]
    args += [*spec["eval_args"], "--seed", str(spec["seed"]), "--attempt", str(spec["attempt"])]
    if spec["runtime"] != "local":
        args += ["--runtime", spec["runtime"]]
        if spec.get("image"):
            args += ["--image", spec["image"]]
    return args, env


def _write_shipped(files: Mapping[str, tuple[str, bytes]], root: Path) -> tuple[Path, Path]:
    """Write the shipped case and solution under ``root`` in the suite's layout (``suite/t<N>/case.py``,
    ``suite/solutions/set/...``), so a solution that finds its case from ``__file__`` still does."""
    paths = []
    for role in ("case", "solution"):
        relpath, data = files[role]
        path = root / relpath
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
        paths.append(path)
    return paths[0], paths[1]


def node_cpus(backend: str, assigned: Sequence[str], device_count: int) -> list[int]:
    """The CPUs an evaluation of an accelerator backend may use: its device's share of this node's CPUs.

    A local run gives each device its own CPU set; Ray runs one task per device at once on a node, so
    without this every evaluation on the node would pin its workers to the same few CPUs.
    """
    if backend not in ACCELERATOR_RESOURCE or not assigned or device_count < 2:
        return []
    if not hasattr(os, "sched_getaffinity"):
        return []
    from harness.evaluation.forkserver import cpu_sets

    index = int(assigned[0]) if str(assigned[0]).isdigit() else 0
    return cpu_sets(device_count, per_device=1 << 16)[index % device_count]


def evaluate_on_node(spec: dict[str, Any]) -> Iterator[dict[str, Any]]:
    """The Ray task: yields where it runs (so the driver can avoid the node on a retry), then what
    `harness eval` returned on this node (exit code, stdout, the end of stderr)."""
    import ray

    context = ray.get_runtime_context()
    node_id = context.get_node_id()
    yield {"node_id": node_id, "host": socket.gethostname(), "pid": os.getpid()}
    accelerators = context.get_accelerator_ids()
    resource = ACCELERATOR_RESOURCE.get(spec["backend"])
    count = 0
    if resource:
        node: dict[str, Any] = next((n for n in ray.nodes() if n.get("NodeID") == node_id), {})
        count = int(node.get("Resources", {}).get(resource, 0))
    root = Path(tempfile.mkdtemp(prefix="harness-ray-")) if spec.get("files") else None
    try:
        args, env = node_command(spec, accelerators, os.environ, root)
        cpus = node_cpus(spec["backend"], accelerators.get(resource or "", []), count)
        yield _run_eval(args, env, cpus, spec["deadline_s"])
    finally:
        if root is not None:
            shutil.rmtree(root, ignore_errors=True)


def _run_eval(args: list[str], env: dict[str, str], cpus: list[int], deadline_s: float) -> dict[str, Any]:
    launcher = [sys.executable, "-c", _LAUNCHER, str(os.getpid()), ",".join(map(str, cpus)), "-m", "harness"]
    proc = subprocess.Popen(
        [*launcher, *args],
        env=env,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        start_new_session=True,
    )
    try:
        out, err = proc.communicate(timeout=deadline_s)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        out, err = proc.communicate()
        return {"returncode": None, "stdout": "", "stderr": f"no answer within {deadline_s:.0f} s; killed"}
    return {
        "returncode": proc.returncode,
        "stdout": out.decode("utf-8", "replace"),
        "stderr": err.decode("utf-8", "replace")[-STDERR_KEPT:],
    }


# --- the driver side ----------------------------------------------------------------------------------


@dataclass
class _Try:
    """One task's progress through its tries."""

    remote: RemoteTask
    spec: dict[str, Any]
    tries: int = 0
    node_id: str | None = None
    host: str | None = None
    started: float | None = None
    cancelled: str | None = None
    failures: list[str] = field(default_factory=list)


def _spec(remote: RemoteTask, options: RayOptions) -> dict[str, Any]:
    task = remote.task
    assert task.solution is not None
    spec: dict[str, Any] = {
        "backend": task.backend,
        "case": str(task.case.path.resolve()),
        "solution": str(task.solution.resolve()),
        "eval_args": list(options.eval_args),
        "seed": options.run_seed,
        "attempt": task.attempt,
        "runtime": options.runtime,
        "image": options.image,
        "deadline_s": options.timeout_s + TASK_GRACE_S,
    }
    if options.ship_files:
        relpath = remote.solution_relpath or f"{task.case.tier}/{task.solution.name}"
        spec["files"] = {
            "case": (f"suite/{task.case.tier}/{task.case.path.name}", task.case.path.read_bytes()),
            "solution": (f"suite/solutions/set/{relpath}", task.solution.read_bytes()),
        }
    return spec


def _error_result(remote: RemoteTask, reason: str) -> CaseResult:
    from harness.results import CaseResult
    from harness.scoring import apply_score

    task = remote.task
    return apply_score(
        CaseResult(
            name=task.case.name,
            tier=task.case.tier,
            backend=task.backend,
            status="error",
            reason=reason,
            case_path=str(task.case.path),
            solution_path=str(task.solution) if task.solution else None,
            attempt=task.attempt,
        )
    )


def _parse(reply: Mapping[str, Any]) -> tuple[dict[str, Any] | None, str]:
    """The case-result artifact `harness eval` printed, or None and why the try failed."""
    code = reply.get("returncode")
    last = next((line for line in reversed(str(reply.get("stderr", "")).splitlines()) if line.strip()), "")
    if code not in (0, 1, 2):  # 2 with a case result: a broken case (case_error), reported as it is
        detail = f": {last.strip()}" if last else ""
        what = "was killed" if code is None or code < 0 else f"exited {code}"
        return None, f"harness eval {what}{detail}"
    try:
        payload = json.loads(str(reply.get("stdout", "")))
        payload["result"]["name"]  # noqa: B018 - the shape check
    except (json.JSONDecodeError, KeyError, TypeError):
        return None, f"harness eval exited {code} without a case result on stdout{': ' + last if last else ''}"
    return payload, ""


def run_on_ray(
    tasks: Sequence[RemoteTask],
    options: RayOptions,
    on_result: Callable[[CaseResult], None],
    observer: Observer,
    on_environment: Callable[[str, str, dict[str, Any]], None] | None = None,
) -> list[CaseResult]:
    """Evaluate ``tasks`` on the cluster; each finished case goes to ``on_result`` as soon as it is known.

    Tasks of one case (pass@N attempts) are reported together, as their best attempt. Connects (and
    disconnects) unless this process is already connected. On Ctrl-C every task in flight is cancelled
    and KeyboardInterrupt propagates: the cases reported so far stand, the rest are left for --resume.
    ``on_environment(backend, host, environment)`` hears each node's environment block once.
    """
    from harness.evaluation.runner import best_attempt

    ray: Any = import_ray()
    owned = not ray.is_initialized()
    if owned:
        ray, _ = connect(options.address)
    remote_fn = ray.remote(max_retries=0)(evaluate_on_node)
    expected: dict[str, int] = {}
    for remote in tasks:
        expected[remote.key] = expected.get(remote.key, 0) + 1
    attempts: dict[str, list[CaseResult]] = {}
    reported: list[CaseResult] = []
    seen_env: set[tuple[str, str]] = set()
    pending: dict[Any, _Try] = {}

    def submit(entry: _Try) -> None:
        avoid = entry.node_id  # where the last try ran, if it got that far
        entry.tries += 1
        entry.node_id = entry.host = entry.started = entry.cancelled = None
        request = task_resources(entry.remote.task.backend, options.num_cpus)
        other = _other_node(ray, avoid, entry.remote.task.backend) if avoid else None
        if other:
            from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

            request["scheduling_strategy"] = NodeAffinitySchedulingStrategy(node_id=other, soft=True)
        pending[remote_fn.options(**request).remote(entry.spec)] = entry

    def finish(entry: _Try, result: CaseResult) -> None:
        key = entry.remote.key
        attempts.setdefault(key, []).append(result)
        if len(attempts[key]) == expected[key]:
            chosen = best_attempt(sorted(attempts[key], key=lambda r: r.attempt))
            reported.append(chosen)
            on_result(chosen)
            observer.case_finished(chosen)

    def failed(entry: _Try, reason: str) -> None:
        where = f" on {entry.host}" if entry.host else ""
        entry.failures.append(f"{reason}{where}")
        if entry.tries <= options.retries:
            submit(entry)
            return
        tries = "; ".join(f"try {i + 1}: {text}" for i, text in enumerate(entry.failures))
        finish(entry, _error_result(entry.remote, f"ray: the evaluation failed {entry.tries} time(s) ({tries})"))

    def answered(entry: _Try, reply: dict[str, Any]) -> None:
        if "node_id" in reply:
            entry.node_id, entry.host, entry.started = reply["node_id"], reply.get("host"), time.monotonic()
            if entry.tries == 1:
                observer.case_started(entry.remote.task)
            return
        payload, reason = _parse(reply)
        if payload is None:
            if reply.get("returncode") == 2 and not options.ship_files:
                reason += " (does the node see the run's files? else pass --ray-ship-files)"
            failed(entry, reason)
            return
        try:
            result = _from_payload(entry, payload, on_environment, seen_env)
        except (KeyError, TypeError, ValueError) as exc:
            failed(entry, f"harness eval printed a case result this harness cannot read ({type(exc).__name__}: {exc})")
            return
        finish(entry, result)

    try:
        for remote in tasks:
            submit(_Try(remote, _spec(remote, options)))
        while pending:
            ready, _ = ray.wait(list(pending), num_returns=1, timeout=POLL_S)
            for ref in ready:
                entry = pending.pop(ref)
                try:
                    reply = ray.get(next(ref))
                except StopIteration:
                    failed(entry, "the task ended without an answer")
                    continue
                except Exception as exc:  # noqa: BLE001 - worker or node died, cancelled, object lost
                    failed(entry, entry.cancelled or _ray_reason(exc))
                    continue
                if "node_id" in reply:
                    pending[ref] = entry  # the same task goes on to its answer
                answered(entry, reply)
            now = time.monotonic()
            for ref, entry in pending.items():
                deadline = options.timeout_s + TASK_GRACE_S
                if entry.started is not None and entry.cancelled is None and now - entry.started > deadline:
                    entry.cancelled = f"no answer within {deadline:.0f} s; cancelled"
                    ray.cancel(ref, force=True)
    except KeyboardInterrupt:
        for ref in list(pending):
            try:
                ray.cancel(ref, force=True)
            except Exception:  # noqa: BLE001 - best effort: the cluster may be gone already
                pass
        raise
    finally:
        if owned:
            ray.shutdown()
    return reported


def _from_payload(
    entry: _Try,
    payload: dict[str, Any],
    on_environment: Callable[[str, str, dict[str, Any]], None] | None,
    seen_env: set[tuple[str, str]],
) -> CaseResult:
    """The case result a node returned, with the driver's paths (what a local run records)."""
    from harness import __version__
    from harness.results import CaseResult

    task = entry.remote.task
    result = CaseResult.from_json(payload["result"])
    result.case_path = str(task.case.path)
    result.solution_path = str(task.solution) if task.solution else None
    result.attempt = task.attempt
    if entry.failures:
        result.warnings.append(f"ray: retried after {entry.failures[-1]}")
    version = payload.get("harness_version")
    if version and version != __version__:
        result.warnings.append(f"ray: node {entry.host} ran harness {version}, the driver {__version__}")
    host = entry.host or "?"
    if on_environment is not None and (task.backend, host) not in seen_env:
        seen_env.add((task.backend, host))
        backends = (payload.get("environment") or {}).get("backends") or {}
        on_environment(task.backend, host, backends.get(task.backend) or {})
    return result


def _ray_reason(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    first = next((line.strip() for line in text if line.strip()), "")
    return f"{type(exc).__name__}: {first}" if first else type(exc).__name__


def _other_node(ray: Any, avoid: str | None, backend: str) -> str | None:
    """An alive node other than ``avoid`` that has ``backend``'s resource (the one with the most of it)."""
    resource = ACCELERATOR_RESOURCE.get(backend, "CPU")
    try:
        nodes = ray.nodes()
    except Exception:  # noqa: BLE001 - no preference is better than no retry
        return None
    candidates = [
        n for n in nodes if n.get("Alive") and n.get("NodeID") != avoid and n.get("Resources", {}).get(resource, 0) > 0
    ]
    if not candidates:
        return None
    best = max(candidates, key=lambda n: (n["Resources"][resource], secrets.randbelow(1 << 16)))
    return str(best["NodeID"])


# --- the seam with `harness run` ----------------------------------------------------------------------


def run_runner_on_ray(
    runner: Runner,
    backends: Sequence[str],
    cases: Sequence[Case],
    done: Sequence[CaseResult],
    options: Mapping[str, Any],
    strict_backend: bool = True,
) -> RunOutcome:
    """What ``runner.run`` does, with every evaluation on the Ray cluster: the same plan, skips, pass@N,
    seeds (the runner's run seed), journal callback and observer; Ctrl-C ends it as interrupted."""
    from harness.evaluation.runner import BackendRun, RunOutcome, skipped

    ray, where = connect(options.get("ray_address"))
    try:
        available = ray.cluster_resources()
        finished = {r.key for r in done}
        runs: list[BackendRun] = []
        tasks: list[RemoteTask] = []
        skips: list[CaseResult] = []
        todo_count = 0
        for name in backends:
            resource = ACCELERATOR_RESOURCE.get(name, "CPU")
            if not available.get(resource):
                reason = f"{where} has no {resource} resource (start nodes that have one with `ray start`)"
                if strict_backend:
                    raise EnvironmentUnavailable(f"backend {name} is unavailable: {reason}")
                runs.append(BackendRun(name, "unavailable", reason=reason))
                continue
            ignored = ["--devices is ignored with --executor ray: Ray assigns devices"]
            runs.append(BackendRun(name, "ran", devices=[], warnings=ignored if options.get("devices") else []))
            for case in cases:
                if f"{name}/{case.tier}/{case.name}" in finished:
                    continue
                todo_count += 1
                skip = case.skip_reason(name)
                planned = [] if skip else runner.attempts_for(case, name)
                if skip or not planned:
                    skips.append(skipped(case, name, skip or f"no candidate for {case.name} in {runner.solutions}"))
                    continue
                tasks += [RemoteTask(t, _relative(t.solution, runner.solutions)) for t in planned]
        runner.observer.planned(todo_count)
        results: list[CaseResult] = list(done)
        for result in skips:
            results.append(result)
            runner.on_result(result)
            runner.observer.case_finished(result)
        by_backend = {r.backend: r for r in runs}

        def heard(backend: str, host: str, environment: dict[str, Any]) -> None:
            run = by_backend[backend]
            run.devices.append(f"ray:{host}")
            for device, block in environment.items():
                run.environment.setdefault(f"{host}/{device}", block)

        def reported(result: CaseResult) -> None:
            results.append(result)
            runner.on_result(result)

        try:
            run_on_ray(tasks, ray_options(options, runner.run_seed), reported, runner.observer, heard)
        except KeyboardInterrupt:
            return RunOutcome(results=results, backends=runs, interrupted=True)
        return RunOutcome(results=results, backends=runs)
    finally:
        ray.shutdown()


def _relative(solution: Path | None, root: Path) -> str | None:
    if solution is None:
        return None
    try:
        return solution.resolve().relative_to(root.resolve()).as_posix()
    except ValueError:
        return None
