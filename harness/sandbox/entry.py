"""Entry points of the worker processes: the reference worker, a candidate's keeper and its worker.

A candidate runs two processes deep (see docs/security.md):

    keeper (trusted: child subreaper, Landlock, output capture)
      └── candidate worker (imports the solution; stdout/stderr are pipes to the keeper)
            └── whatever the candidate starts: it can never leave the keeper's subtree
"""

from __future__ import annotations

import contextlib
import json
import os
import resource
import select
import signal
import sys
import time
import traceback
from pathlib import Path
from typing import Any

from harness.sandbox.candidate import CandidateSession
from harness.sandbox.guard import Guard
from harness.sandbox.landlock import apply_landlock
from harness.sandbox.process import (
    _PR_SET_CHILD_SUBREAPER,
    _PR_SET_DUMPABLE,
    _PR_SET_PDEATHSIG,
    _alive,
    _exit_with_supervisor,
    _kill_subtree,
    _reap_all,
    _supervisor_watch,
    _worker_process_setup,
    prctl,
)
from harness.sandbox.reference import ReferenceSession
from harness.sandbox.serve import serve

TOKEN_ENV = "HARNESS_EVAL_TOKEN"  # inherited by everything a candidate starts; used to find leftovers




def reference_main(
    conn: Any, backend_name: str, device: str, supervisor_pid: int, cpus: list[int] | None = None
) -> None:
    """Entry point of the reference worker (trusted; reused across cases)."""
    _worker_process_setup(cpus)
    with contextlib.suppress(OSError):
        os.setsid()  # Ctrl-C in a terminal reaches the supervisor only
    with contextlib.suppress(OSError):
        os.dup2(2, 1)  # a case that prints must not corrupt `harness eval --json` on stdout
    prctl(_PR_SET_DUMPABLE, 0)  # no ptrace or /proc/<pid>/mem from same-user processes
    # Killed with its parent (the fork server, which ends with the supervisor) even while stopped
    # (the supervisor stops it while a candidate is timed): a stopped process cannot run its watcher.
    prctl(_PR_SET_PDEATHSIG, signal.SIGKILL)
    _exit_with_supervisor(supervisor_pid)
    session = ReferenceSession(backend_name, device)
    session.backend.prepare_process(device)
    serve(conn, session)
    with contextlib.suppress(Exception):
        conn.close()
    os._exit(0)


class _Tail:
    """The last ``limit`` bytes of a stream, and how many bytes it carried in all."""

    def __init__(self, limit: int) -> None:
        self.limit = max(0, limit)
        self.data = bytearray()
        self.total = 0

    def add(self, chunk: bytes) -> None:
        self.total += len(chunk)
        self.data += chunk
        if len(self.data) > 2 * self.limit + (1 << 16):
            del self.data[: len(self.data) - self.limit]

    def text(self) -> str:
        return bytes(self.data[-self.limit :] if self.limit else b"").decode("utf-8", errors="replace")


def keeper_main(
    conn: Any,
    status: Any,
    backend_name: str,
    device: str,
    scratch: str,
    token: str,
    supervisor_pid: int,
    output_limit: int,
    sandbox: bool,
    cpus: list[int] | None = None,
) -> None:
    """Entry point of a candidate's keeper: the trusted parent of one candidate worker.

    It makes itself a child subreaper (whatever the candidate starts, double-forked or not, stays
    in its subtree), confines itself and so the candidate to Landlock, starts the candidate worker
    with stdout/stderr on pipes, keeps the tail of both, and when the worker exits, the supervisor
    asks (SIGTERM) or the supervisor dies, kills the whole subtree. Then it reports the worker's exit
    status, the output tails and what it had to kill on ``status`` and exits.
    """
    try:
        _keeper(conn, status, backend_name, device, scratch, token, supervisor_pid, output_limit, sandbox, cpus)
    finally:
        os._exit(0)


def _keeper(
    conn: Any,
    status: Any,
    backend_name: str,
    device: str,
    scratch: str,
    token: str,
    supervisor_pid: int,
    output_limit: int,
    sandbox: bool,
    cpus: list[int] | None,
) -> None:
    _worker_process_setup(cpus)  # the candidate worker forked below inherits the CPU set
    with contextlib.suppress(OSError):
        os.setsid()
    reaper = prctl(_PR_SET_CHILD_SUBREAPER, 1)
    prctl(_PR_SET_DUMPABLE, 0)  # without Landlock, a same-user candidate could otherwise ptrace it
    with contextlib.suppress(ValueError, OSError):
        resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
    out_r, out_w = os.pipe()
    err_r, err_w = os.pipe()
    box_r, box_w = os.pipe()
    wake_r, wake_w = os.pipe()
    for fd in (out_r, err_r, box_r, wake_r, wake_w):
        os.set_blocking(fd, False)
    for fd in (out_r, err_r):
        with contextlib.suppress(OSError):
            import fcntl

            fcntl.fcntl(fd, 1031, 1 << 20)  # F_SETPIPE_SZ: fewer wake-ups when a candidate floods
    # Handlers first: a SIGTERM that came before them would kill the keeper and orphan the subtree.
    signal.set_wakeup_fd(wake_w)
    signal.signal(signal.SIGCHLD, lambda *_: None)
    signal.signal(signal.SIGTERM, lambda *_: None)
    signal.signal(signal.SIGPIPE, signal.SIG_IGN)
    keeper = os.getpid()
    pid = os.fork()
    if pid == 0:
        code = 70
        try:
            status.close()
            for fd in (out_r, err_r, box_r, wake_r, wake_w):
                os.close(fd)
            pipes = {"stdout": out_w, "stderr": err_w, "sandbox": box_w}
            _candidate_main(conn, backend_name, device, Path(scratch), token, keeper, pipes, sandbox)
            code = 0
        except BaseException:  # noqa: BLE001 - this process must never return into the keeper's code
            with contextlib.suppress(Exception):
                traceback.print_exc()
        finally:
            os._exit(code)
    conn.close()
    for fd in (out_w, err_w, box_w):
        os.close(fd)
    _send(status, {"event": "started", "pid": pid, "subreaper": reaper})
    tails = {out_r: _Tail(output_limit), err_r: _Tail(output_limit)}
    open_fds = [out_r, err_r]
    box = _Tail(1 << 16)
    box_open = [box_r]
    supervisor_fd = _supervisor_watch(supervisor_pid)
    exit_status: int | None = None
    reason = None
    while reason is None:
        watched = [wake_r, *open_fds, *box_open] + ([supervisor_fd] if supervisor_fd is not None else [])
        try:
            ready, _, _ = select.select(watched, [], [], 1.0)
        except InterruptedError:
            ready = []
        for fd in ready:
            if fd == wake_r:
                with contextlib.suppress(BlockingIOError):
                    if bytes([signal.SIGTERM]) in os.read(wake_r, 512):
                        reason = "stopped"
            elif fd == supervisor_fd:
                reason = "supervisor gone"
            elif fd == box_r:
                _drain(fd, box, box_open, budget=1 << 16)
                if not box_open:
                    _send(status, {"event": "sandbox", "sandbox": _sandbox_report(box.text())})
            else:
                _drain(fd, tails[fd], open_fds, budget=64 << 20)
        for child, child_status in _reap_all():
            if child == pid:
                exit_status = child_status
                reason = reason or "exited"
        if supervisor_fd is None and not _alive(supervisor_pid):
            reason = "supervisor gone"
    killed = _kill_subtree(keeper)
    killed.discard(pid)
    deadline = time.monotonic() + 1.0
    while open_fds and time.monotonic() < deadline:
        ready, _, _ = select.select(open_fds, [], [], 0.1)
        for fd in ready:
            _drain(fd, tails[fd], open_fds, budget=64 << 20)
    report: dict[str, Any] = {
        "event": "finished",
        "reason": reason,
        "exit_code": None,
        "signal": None,
        "stdout": tails[out_r].text(),
        "stderr": tails[err_r].text(),
        "truncated": any(t.total > t.limit for t in tails.values()),
        "output_bytes": sum(t.total for t in tails.values()),
        "leftovers": len(killed),
    }
    if exit_status is not None and reason == "exited":
        if os.WIFSIGNALED(exit_status):
            signum = os.WTERMSIG(exit_status)
            report["signal"] = _signal_name(signum)
            report["exit_code"] = -signum
        else:
            report["exit_code"] = os.WEXITSTATUS(exit_status)
    _send(status, report)


def _send(status: Any, message: dict[str, Any]) -> None:
    with contextlib.suppress(Exception):
        status.send_bytes(json.dumps(message).encode())


def _sandbox_report(text: str) -> dict[str, Any]:
    """What the worker said about its sandbox, written before any candidate code ran in it."""
    try:
        report = json.loads(text)
    except ValueError:
        return {"landlock": None, "reason": "the worker did not report its sandbox"}
    return report if isinstance(report, dict) else {"landlock": None, "reason": "malformed sandbox report"}


def _drain(fd: int, tail: _Tail, open_fds: list[int], budget: int) -> None:
    """Read what ``fd`` holds (up to ``budget`` bytes) into ``tail``; forget ``fd`` at end of file."""
    taken = 0
    while taken < budget:
        try:
            chunk = os.read(fd, 1 << 20)
        except BlockingIOError:
            return
        except OSError:
            chunk = b""
        if not chunk:
            open_fds.remove(fd)
            os.close(fd)
            return
        tail.add(chunk)
        taken += len(chunk)


def _signal_name(signum: int) -> str:
    try:
        return signal.Signals(signum).name
    except ValueError:
        return f"signal {signum}"


def _candidate_main(
    conn: Any,
    backend_name: str,
    device: str,
    scratch: Path,
    token: str,
    keeper: int,
    pipes: dict[str, int],
    sandbox: bool,
) -> None:
    """The candidate worker (forked by its keeper): set up, sandbox, record the guard, then serve.

    Everything before `serve` runs before the candidate's file is imported, so what it writes on the
    sandbox pipe (then closed) can be believed by the keeper.
    """
    os.dup2(pipes["stdout"], 1)
    os.dup2(pipes["stderr"], 2)
    os.close(pipes["stdout"])
    os.close(pipes["stderr"])
    prctl(_PR_SET_PDEATHSIG, signal.SIGKILL)
    if os.getppid() != keeper:
        os._exit(70)
    prctl(_PR_SET_DUMPABLE, 1)  # only the keeper must be safe from ptrace
    signal.set_wakeup_fd(-1)
    for signum in (signal.SIGTERM, signal.SIGCHLD, signal.SIGPIPE):
        signal.signal(signum, signal.SIG_DFL)
    _drop_secrets(os.environ)
    os.environ[TOKEN_ENV] = token
    _confine_to_scratch(scratch)
    with contextlib.suppress(Exception):
        sys.stdout.reconfigure(line_buffering=True)  # type: ignore[union-attr]
    session = CandidateSession(backend_name, device)
    session.ipc_outputs = True
    session.backend.prepare_process(device)
    _warm_up_cpu()
    box: dict[str, Any] = {"landlock": None, "reason": "sandbox turned off"}
    if sandbox:
        box = apply_landlock(scratch)
    os.write(pipes["sandbox"], json.dumps(box).encode())
    os.close(pipes["sandbox"])
    guard = Guard.capture(session, session.backend)
    serve(conn, session, guard)
    with contextlib.suppress(Exception):
        conn.close()
    with contextlib.suppress(Exception):
        sys.stdout.flush()
        sys.stderr.flush()


_SECRET_MARKS = (
    "TOKEN", "SECRET", "PASSWORD", "PASSWD", "CREDENTIAL", "API_KEY", "ACCESS_KEY", "PRIVATE_KEY",
)  # fmt: skip


def _drop_secrets(environ: Any) -> None:
    """Remove variables that look like credentials: a candidate has no use for them."""
    for name in list(environ):
        upper = name.upper()
        if any(mark in upper for mark in _SECRET_MARKS) or upper.startswith(("AWS_", "GITHUB_", "GH_")):
            del environ[name]


def _warm_up_cpu() -> None:
    """Start torch's CPU thread pool and random generator before the candidate arrives.

    A long-lived process (the reference worker, or everything with ``--isolation none``) has them
    running already; a fresh worker would otherwise pay for them in its first correctness trial.
    """
    import torch

    with contextlib.suppress(Exception):
        torch.randn(1 << 17).mul_(2).sum()


def _confine_to_scratch(scratch: Path) -> None:
    """Run in the scratch folder; temporary files, caches and HOME point into it; no core files."""
    scratch.mkdir(parents=True, exist_ok=True)
    os.chdir(scratch)
    for env in ("TMPDIR", "TEMP", "TMP", "HOME"):
        os.environ[env] = str(scratch)
    caches = {
        "XDG_CACHE_HOME": ".cache",
        "TRITON_CACHE_DIR": ".cache/triton",
        "TORCHINDUCTOR_CACHE_DIR": ".cache/inductor",
        "TORCH_EXTENSIONS_DIR": ".cache/torch_extensions",
        "CUDA_CACHE_PATH": ".cache/nv",
        "NUMBA_CACHE_DIR": ".cache/numba",
    }
    for env, sub in caches.items():
        os.environ[env] = str(scratch / sub)
    with contextlib.suppress(ValueError, OSError):
        resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
