"""Process isolation: worker processes, deadlines, crash reports, and cleanup of what a candidate left.

The supervisor never runs candidate code. It starts a fresh candidate worker per evaluation from a
fork server that has already imported torch (cheap to fork, nothing inherited from earlier
candidates), talks to it through a pipe it reads with `harness.wire` only, and kills the worker's
process group, plus any process carrying the evaluation's token, when the evaluation ends.
"""

from __future__ import annotations

import contextlib
import multiprocessing
import os
import secrets
import shutil
import signal
import tempfile
import time
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

from harness import wire
from harness.worker import TOKEN_ENV, dispatch, worker_main

_CONTEXT: Any = None
_READY_TIMEOUT_S = 120.0


class WorkerFailure(Exception):
    """A worker answered with an error (an exception in the case or candidate code)."""

    def __init__(self, message: str, phase: str | None, kind: str, traceback_text: str | None = None) -> None:
        super().__init__(message)
        self.phase = phase
        self.kind = kind
        self.traceback_text = traceback_text


class WorkerCrashed(Exception):
    """The worker process died or closed its pipe without answering."""

    def __init__(self, exitcode: int | None) -> None:
        self.exitcode = exitcode
        self.signal_name: str | None = None
        if exitcode is not None and exitcode < 0:
            with contextlib.suppress(ValueError):
                self.signal_name = signal.Signals(-exitcode).name
        what = f"killed by {self.signal_name}" if self.signal_name else f"exited with code {exitcode}"
        super().__init__(f"worker process {what} without delivering a result")


class WorkerTimeout(Exception):
    """The evaluation's deadline passed while waiting for the worker."""


def context() -> Any:
    """The multiprocessing context: a fork server that preloads torch and the worker module."""
    global _CONTEXT
    if _CONTEXT is None:
        ctx = multiprocessing.get_context("forkserver")
        ctx.set_forkserver_preload(["numpy", "torch", "harness.worker", "harness.backends.cpu", "harness.correctness"])
        _CONTEXT = ctx
    return _CONTEXT


class ProcessWorker:
    """A worker in its own process, reached through a pipe; see `harness.worker`."""

    def __init__(self, role: str, backend: str, device: str, scratch: Path | None = None) -> None:
        self.role = role
        self.scratch = scratch
        self.token = secrets.token_hex(8)
        ctx = context()
        self._conn, child = ctx.Pipe(duplex=True)
        self.process = ctx.Process(
            target=worker_main,
            args=(child, role, backend, device, str(scratch) if scratch else None, self.token),
            name=f"harness-{role}",
        )
        self.process.start()
        child.close()

    @property
    def alive(self) -> bool:
        return bool(self.process.is_alive())

    def call(self, method: str, timeout_s: float, **kwargs: Any) -> Any:
        """Send one request and wait at most ``timeout_s`` for its reply."""
        try:
            self._conn.send((method, kwargs))
        except (BrokenPipeError, OSError) as exc:
            raise self._crashed() from exc
        return _unwrap(_receive(self._conn, self.process, timeout_s, self._crashed))

    def _crashed(self) -> WorkerCrashed:
        self.process.join(timeout=5)
        return WorkerCrashed(self.process.exitcode)

    def kill(self) -> None:
        """Kill the worker, its process group and every process that carries its token."""
        pid = self.process.pid
        if pid is not None and self.role == "candidate":
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(pid, signal.SIGKILL)
        with contextlib.suppress(Exception):
            self.process.kill()
        self.process.join(timeout=10)
        kill_marked_processes(self.token)
        with contextlib.suppress(Exception):
            self._conn.close()

    def close(self) -> None:
        """Ask the worker to stop; kill it if it does not."""
        if self.alive and self.role == "reference":
            with contextlib.suppress(Exception):
                self.call("stop", 10)
            self.process.join(timeout=10)
        self.kill()


def _receive(conn: Connection, process: Any, timeout_s: float, crashed: Any) -> Any:
    deadline = time.monotonic() + max(0.0, timeout_s)
    while True:
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise WorkerTimeout()
        try:
            if conn.poll(min(remaining, 1.0)):
                data = conn.recv_bytes()
                return wire.decode(data)
        except (EOFError, OSError) as exc:
            raise crashed() from exc
        except wire.WireError as exc:
            raise WorkerFailure(f"worker sent a malformed reply: {exc}", None, "WireError") from exc
        if not process.is_alive() and not conn.poll(0):
            raise crashed()


def _unwrap(reply: Any) -> Any:
    if not isinstance(reply, dict) or "ok" not in reply:
        raise WorkerFailure("worker sent a reply without status", None, "ProtocolError")
    if reply["ok"]:
        return reply.get("value")
    error = reply.get("error") or {}
    raise WorkerFailure(
        str(error.get("message", "unknown error")),
        error.get("phase"),
        str(error.get("type", "Error")),
        error.get("traceback"),
    )


class InProcessWorker:
    """The same sessions called directly (``--isolation none``): no protection, no process cost."""

    def __init__(self, role: str, backend: str, device: str, scratch: Path | None = None) -> None:
        from harness.backends import get_backend
        from harness.worker import CandidateSession, ReferenceSession

        self.role = role
        self.scratch = scratch
        self.token = ""
        get_backend(backend).prepare_process(device)
        cls = ReferenceSession if role == "reference" else CandidateSession
        self.session = cls(backend, device)

    alive = True

    def call(self, method: str, timeout_s: float, **kwargs: Any) -> Any:
        return _unwrap(dispatch(self.session, method, kwargs))

    def kill(self) -> None:
        self.session = None  # type: ignore[assignment]

    close = kill


def kill_marked_processes(token: str) -> int:
    """SIGKILL every process whose environment carries ``token``; returns how many were found.

    Catches processes a candidate started in a new session (escaping its process group).
    """
    if not token:
        return 0
    needle = f"{TOKEN_ENV}={token}".encode()
    killed = 0
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        try:
            environ = (entry / "environ").read_bytes()
        except OSError:
            continue
        if needle in environ.split(b"\0"):
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.kill(int(entry.name), signal.SIGKILL)
                killed += 1
    return killed


def make_scratch(root: Path | None = None) -> Path:
    """A fresh private folder for one candidate's files."""
    return Path(tempfile.mkdtemp(prefix="harness-scratch-", dir=str(root) if root else None))


def read_tail(path: Path, limit: int) -> tuple[str, bool]:
    """The last ``limit`` bytes of a file as text, and whether anything was cut."""
    try:
        size = path.stat().st_size
        with path.open("rb") as fh:
            if size > limit:
                fh.seek(size - limit)
            data = fh.read(limit)
    except OSError:
        return "", False
    return data.decode("utf-8", errors="replace"), size > limit


def remove_scratch(path: Path) -> None:
    shutil.rmtree(path, ignore_errors=True)
