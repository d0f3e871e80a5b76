"""The supervisor's handles on worker processes: requests, deadlines, crash reports, stop and kill.

The supervisor never runs candidate code. Replies are read with `harness.sandbox.wire` only (never
unpickled); each echoes its request's number, so a reply that arrives late or out of order is a
protocol error, never a result, and the worker is not used again.
"""

from __future__ import annotations

import contextlib
import json
import multiprocessing
import multiprocessing.connection
import os
import secrets
import signal
import threading
import time
from multiprocessing import reduction
from pathlib import Path
from typing import Any

from harness.evaluation.buffers import ReplyBuffer, SharedReply, StagingBuffer
from harness.evaluation.capture import OutputCapture, stdout_to_stderr
from harness.evaluation.cleanup import kill_marked_processes
from harness.evaluation.forkserver import _start, context
from harness.sandbox import wire
from harness.sandbox.entry import keeper_main, reference_main
from harness.sandbox.process import descendants, signal_all
from harness.sandbox.serve import dispatch

# How long a keeper is given to report after it was asked to stop (or its worker died).
_OUTCOME_WAIT_S = 10.0

class WorkerFailure(Exception):
    """A worker answered with an error (an exception in the case or candidate code)."""

    def __init__(self, message: str, phase: str | None, kind: str, traceback_text: str | None = None) -> None:
        super().__init__(message)
        self.phase = phase
        self.kind = kind
        self.traceback_text = traceback_text


class WorkerCrashed(Exception):
    """The worker process died or closed its pipe without answering."""

    def __init__(self, exitcode: int | None, role: str = "candidate", signal_name: str | None = None) -> None:
        self.exitcode = exitcode
        self.role = role
        self.signal_name = signal_name
        if self.signal_name is None and exitcode is not None and exitcode < 0:
            with contextlib.suppress(ValueError):
                self.signal_name = signal.Signals(-exitcode).name
        if self.signal_name:
            what = f"killed by {self.signal_name}"
        elif exitcode is None:
            what = "vanished"
        else:
            what = f"exited with code {exitcode}"
        super().__init__(f"{role} worker process {what} without delivering a result")


class WorkerTimeout(Exception):
    """The evaluation's deadline passed while waiting for the worker."""

    def __init__(self, role: str = "candidate") -> None:
        super().__init__(f"{role} worker gave no answer in time")
        self.role = role




class _PipeWorker:
    """A worker process reached through a pipe: numbered requests, `harness.sandbox.wire` replies."""

    role = "worker"
    can_stage = True  # a worker in a process of its own can map staged inputs

    def __init__(self) -> None:
        self._seq = 0
        self.desynced = False
        self.token = ""
        self.scratch: Path | None = None
        self.process: Any = None
        self._conn: Any = None
        self._attached: ReplyBuffer | None = None
        self._staging: StagingBuffer | None = None

    def call(self, method: str, timeout_s: float, **kwargs: Any) -> Any:
        """Send one request and wait at most ``timeout_s`` for its reply; returns the reply's value."""
        body, _ = self._request(method, timeout_s, kwargs, keep_bytes=False)
        return _unwrap(body)

    def call_forwarding(self, method: str, timeout_s: float, **kwargs: Any) -> tuple[Any, Any]:
        """Like `call`, plus the reply's raw bytes, to be passed on (``forward=``) to the reference worker."""
        body, data = self._request(method, timeout_s, kwargs, keep_bytes=True)
        return _unwrap(body), data

    def attach(self, buffer: ReplyBuffer | None, timeout_s: float) -> None:
        """Hand the worker the reply buffer (once per buffer): large replies then skip the pipe."""
        if buffer is None or self._attached is buffer:
            return
        self._request("attach_buffer", timeout_s, {"forward": buffer}, keep_bytes=False)
        self._attached = buffer

    def attach_staging(self, buffer: StagingBuffer | None, timeout_s: float) -> None:
        """Hand the worker the host staging buffer (once per buffer)."""
        if buffer is None or self._staging is buffer:
            return
        self._request("attach_staging", timeout_s, {"forward": buffer}, keep_bytes=False)
        self._staging = buffer

    def begin(self, method: str, **kwargs: Any) -> None:
        """Send a request without waiting for it; `finish` collects its reply.

        Lets the two workers work at once where nothing is timed (the reference computing its
        expected outputs while the candidate loads). One request at a time per worker.
        """
        self._send(method, kwargs)

    def finish(self, timeout_s: float) -> Any:
        """The reply to the request `begin` sent, waiting at most ``timeout_s``."""
        body, _ = self._collect(time.monotonic() + max(0.0, timeout_s), keep_bytes=False)
        return _unwrap(body)

    def _request(
        self, method: str, timeout_s: float, kwargs: dict[str, Any], keep_bytes: bool
    ) -> tuple[Any, Any]:
        deadline = time.monotonic() + max(0.0, timeout_s)
        self._send(method, kwargs)
        return self._collect(deadline, keep_bytes)

    def _send(self, method: str, kwargs: dict[str, Any]) -> None:
        if self.desynced:
            raise WorkerFailure(
                f"{self.role} worker is out of step with the supervisor", None, "ProtocolError"
            )
        self._seq += 1
        forward = kwargs.pop("forward", None)
        blob: Any = None
        if isinstance(forward, ReplyBuffer):
            blob = ("fd", forward.size)
        elif isinstance(forward, StagingBuffer):
            blob = ("stage_fd", forward.size)
        elif isinstance(forward, SharedReply):
            blob = ("shared", forward.length)
        elif isinstance(forward, (bytes, bytearray, memoryview)):
            blob = "bytes"
        elif forward is not None:
            kwargs["forward"] = forward
        try:
            self._conn.send((self._seq, method, kwargs, blob))
            if blob == "bytes":
                self._conn.send_bytes(forward)
            elif isinstance(forward, (ReplyBuffer, StagingBuffer)):
                reduction.send_handle(self._conn, forward.fd, self.process.pid)
        except (BrokenPipeError, OSError) as exc:
            self.desynced = True
            raise self._crashed() from exc

    def _collect(self, deadline: float, keep_bytes: bool) -> tuple[Any, Any]:
        try:
            data: Any = self._receive(deadline)
            body = wire.decode_body(data)
            if isinstance(body, dict) and "shared" in body and "ok" not in body:
                self._check_seq(body)
                if self._attached is None or type(body["shared"]) is not int:
                    raise wire.WireError("a reply in a shared buffer that was never attached")
                data = SharedReply(self._attached, body["shared"])
                body = wire.read_body(self._attached.view, data.length)
            self._check_seq(body)
            if not keep_bytes:
                body = data.decode() if isinstance(data, SharedReply) else wire.decode(data)
        except (WorkerTimeout, WorkerCrashed):
            self.desynced = True  # a late reply would answer the wrong request
            raise
        except wire.WireError as exc:
            self.desynced = True
            raise WorkerFailure(
                f"{self.role} worker sent a malformed reply: {exc}", None, "WireError"
            ) from exc
        return body, data

    def _check_seq(self, body: Any) -> None:
        if not isinstance(body, dict) or body.get("seq") != self._seq:
            self.desynced = True
            raise WorkerFailure(
                f"{self.role} worker's reply does not answer the request (protocol out of step)",
                None,
                "ProtocolError",
            )

    def _receive(self, deadline: float) -> bytes:
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise WorkerTimeout(self.role)
            ready = multiprocessing.connection.wait(
                [self._conn, *self._watched()], timeout=min(remaining, 1.0)
            )
            if self._conn in ready:
                try:
                    return bytes(self._conn.recv_bytes())
                except (EOFError, OSError) as exc:
                    raise self._crashed() from exc
            if ready:
                self._on_watched(ready)

    def _watched(self) -> list[Any]:
        return []

    def _on_watched(self, ready: list[Any]) -> None:
        """Something besides the reply pipe became ready while waiting; may raise WorkerCrashed."""

    def _crashed(self) -> WorkerCrashed:
        raise NotImplementedError

    @property
    def alive(self) -> bool:
        return bool(self.process is not None and self.process.is_alive()) and not self.desynced

    def freeze(self) -> None:
        """Stop every process of this worker (while the other worker is timed)."""

    def thaw(self) -> None:
        """Let the processes `freeze` stopped run again."""


class ReferenceProcess(_PipeWorker):
    """The trusted reference worker: imports suite files only; reused until it fails or falls out of step."""

    role = "reference"

    def __init__(self, backend: str, device: str, cpus: list[int] | None = None) -> None:
        super().__init__()
        ctx = context()
        self._conn, child = ctx.Pipe(duplex=True)
        self.process = ctx.Process(
            target=reference_main, args=(child, backend, device, os.getpid(), cpus), name="harness-reference"
        )
        _start(self.process)
        child.close()
        self._buffer: ReplyBuffer | None = None
        self._inputs: StagingBuffer | None = None
        self._stopped = False

    def _watched(self) -> list[Any]:
        return [self.process.sentinel]

    def freeze(self) -> None:
        """Stop the reference worker while the candidate is timed (and `thaw` it after).

        The same treatment the candidate gets while the reference is timed: right after its own
        round the reference's OpenMP threads still spin for a few milliseconds, which on a small
        machine took a core from the start of every candidate round (A/A runs read the candidate
        about 5 % slower). The reference is one process, so one signal stops it all.
        """
        if self.process.pid is not None and self.process.is_alive():
            with contextlib.suppress(ProcessLookupError):
                os.kill(self.process.pid, signal.SIGSTOP)
                self._stopped = True

    def thaw(self) -> None:
        if self._stopped:
            self._stopped = False
            with contextlib.suppress(ProcessLookupError):
                os.kill(self.process.pid, signal.SIGCONT)

    def reply_buffer(self, min_size: int, timeout_s: float) -> ReplyBuffer | None:
        """The reply buffer for a case whose replies need up to ``min_size`` bytes, attached here.

        None where memfds are not available: replies then go through the pipes.
        """
        if self._buffer is None or self._buffer.size < min_size:
            try:
                buffer = ReplyBuffer(max(min_size, 2 * (self._buffer.size if self._buffer else 0)))
            except (AttributeError, OSError):
                return None
            if self._buffer is not None:
                self._buffer.close()
            self._buffer = buffer
        self.attach(self._buffer, timeout_s)
        return self._buffer

    def staging_buffer(self, min_size: int, timeout_s: float) -> StagingBuffer | None:
        """The host staging buffer for a case whose input sets need up to ``min_size`` bytes, attached here.

        None where memfds are not available: the candidate then draws its own inputs.
        """
        if self._inputs is None or self._inputs.size < min_size:
            try:
                buffer = StagingBuffer(max(min_size, 2 * (self._inputs.size if self._inputs else 0)))
            except (AttributeError, OSError):
                return None
            if self._inputs is not None:
                self._inputs.close()
            self._inputs = buffer
        self.attach_staging(self._inputs, timeout_s)
        return self._inputs

    def _on_watched(self, ready: list[Any]) -> None:
        if self._conn.poll(0):
            return
        raise self._crashed()

    def _crashed(self) -> WorkerCrashed:
        self.process.join(timeout=5)
        return WorkerCrashed(self.process.exitcode, role=self.role)

    def interrupt(self) -> None:
        """Kill the process now (from another thread, e.g. on Ctrl-C); the owner cleans up."""
        with contextlib.suppress(Exception):
            self.process.kill()

    def kill(self) -> None:
        with contextlib.suppress(Exception):
            self.process.kill()
        self.process.join(timeout=10)
        with contextlib.suppress(Exception):
            self._conn.close()
        if self._buffer is not None:
            self._buffer.close()
            self._buffer = None
        if self._inputs is not None:
            self._inputs.close()
            self._inputs = None

    def close(self) -> None:
        """Ask the worker to stop; kill it if it does not."""
        self.thaw()
        if self.alive:
            with contextlib.suppress(Exception):
                self.call("stop", 10)
            self.process.join(timeout=10)
        self.kill()


class CandidateProcess(_PipeWorker):
    """One candidate's keeper and worker (see `harness.sandbox.entry.keeper_main`); used for one evaluation.

    After `kill`, ``outcome`` holds what the keeper reported: the worker's exit code or signal, the
    tails of its stdout and stderr, and how many leftover processes it killed; ``sandbox`` says
    whether Landlock was enforced.
    """

    role = "candidate"

    def __init__(
        self,
        backend: str,
        device: str,
        scratch: Path,
        output_limit: int = 16384,
        sandbox: bool = True,
        cpus: list[int] | None = None,
    ) -> None:
        super().__init__()
        ctx = context()
        self.scratch = scratch
        self.token = secrets.token_hex(8)
        self._conn, child = ctx.Pipe(duplex=True)
        self._status, status_w = ctx.Pipe(duplex=False)
        self.process = ctx.Process(
            target=keeper_main,
            args=(
                child,
                status_w,
                backend,
                device,
                str(scratch),
                self.token,
                os.getpid(),
                output_limit,
                sandbox,
                cpus,
            ),
            name="harness-candidate",
        )
        _start(self.process)
        child.close()
        status_w.close()
        self.worker_pid: int | None = None
        self.sandbox: dict[str, Any] | None = None
        self.outcome: dict[str, Any] | None = None
        self._frozen: list[int] = []
        self._killed = False
        self._status_closed = False

    @property
    def alive(self) -> bool:
        return self.outcome is None and super().alive

    def _watched(self) -> list[Any]:
        return [self._status, self.process.sentinel]

    def _on_watched(self, ready: list[Any]) -> None:
        self._read_status(0)
        if self.outcome is not None or not self.process.is_alive():
            if self._conn.poll(0):
                return  # the reply came before the exit: take it
            raise self._crashed()

    def _read_status(self, timeout_s: float) -> None:
        """Take in the keeper's messages; wait up to ``timeout_s`` for the first one."""
        deadline = time.monotonic() + timeout_s
        while True:
            try:
                if not self._status.poll(max(0.0, deadline - time.monotonic())):
                    return
                message = json.loads(self._status.recv_bytes())
            except (EOFError, OSError):
                self._status_closed = True  # the keeper is gone: nothing more will come
                return
            except ValueError:
                return
            if not isinstance(message, dict):
                continue
            if message.get("event") == "started":
                self.worker_pid = message.get("pid")
            elif message.get("event") == "sandbox":
                self.sandbox = message.get("sandbox")
            elif message.get("event") == "finished":
                self.outcome = message
                return
            deadline = time.monotonic()  # more may be queued; don't wait for them

    def _await_outcome(self, timeout_s: float) -> None:
        deadline = time.monotonic() + timeout_s
        while self.outcome is None and time.monotonic() < deadline:
            self._read_status(min(0.5, max(0.0, deadline - time.monotonic())))
            if self.outcome is None and self._status_closed:
                return  # e.g. a keeper killed by SIGTERM before it set its handler: no report comes
            if self.outcome is None and not self.process.is_alive() and not self._status.poll(0):
                return

    def _crashed(self) -> WorkerCrashed:
        self._await_outcome(_OUTCOME_WAIT_S)
        outcome = self.outcome or {}
        return WorkerCrashed(outcome.get("exit_code"), role=self.role, signal_name=outcome.get("signal"))

    def freeze(self) -> None:
        if self.process.pid is None or not self.process.is_alive():
            return
        self._frozen = descendants(self.process.pid)
        signal_all(self._frozen, signal.SIGSTOP)

    def thaw(self) -> None:
        signal_all(self._frozen, signal.SIGCONT)
        self._frozen = []

    def interrupt(self) -> None:
        """Ask the keeper to end everything now (from another thread, e.g. on Ctrl-C); the owner cleans up."""
        if self.process.pid is not None and self.outcome is None:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.kill(self.process.pid, signal.SIGTERM)

    def kill(self) -> None:
        """End the evaluation: the keeper kills the worker and its subtree and reports; fallbacks if not."""
        if self._killed:
            return
        self._killed = True
        pid = self.process.pid
        if self.outcome is None and self.process.is_alive() and pid is not None:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.kill(pid, signal.SIGTERM)
            self._await_outcome(_OUTCOME_WAIT_S)
        if self.outcome is not None:
            _reap_later(self.process)  # it reported and only exits now: don't wait for that
        else:
            self.process.join(timeout=5)
        if self.outcome is None:
            # The keeper failed us: kill its group, itself and every process carrying the token.
            if pid is not None:
                with contextlib.suppress(ProcessLookupError, PermissionError):
                    os.killpg(pid, signal.SIGKILL)
            with contextlib.suppress(Exception):
                self.process.kill()
            self.process.join(timeout=10)
            if self.worker_pid is not None:
                signal_all([self.worker_pid], signal.SIGKILL)
            kill_marked_processes(self.token)
        for conn in (self._conn, self._status):
            with contextlib.suppress(Exception):
                conn.close()

    close = kill


_EXITING: list[Any] = []
_EXITING_LOCK = threading.Lock()


def _reap_later(process: Any) -> None:
    """Keep ``process`` (a keeper that has reported) until it has exited, then release its handles."""
    with _EXITING_LOCK:
        _EXITING.append(process)
        still = []
        for p in _EXITING:
            if p.is_alive():
                still.append(p)
            else:
                with contextlib.suppress(Exception):
                    p.join(0)
                    p.close()
        _EXITING[:] = still


def _unwrap(reply: Any) -> Any:
    if not isinstance(reply, dict) or "ok" not in reply:
        raise WorkerFailure("worker sent a reply without status", None, "ProtocolError")
    if reply["ok"]:
        return reply.get("value")
    raw = reply.get("error")
    error: dict[str, Any] = raw if isinstance(raw, dict) else {}
    phase = error.get("phase")
    raise WorkerFailure(
        str(error.get("message", "unknown error"))[:4000],
        phase if isinstance(phase, str) else None,
        str(error.get("type", "Error"))[:200],
        str(error["traceback"])[:8000] if error.get("traceback") else None,
    )


class InProcessWorker:
    """The same sessions called directly (``--isolation none``): no protection, no process cost."""

    def __init__(self, role: str, backend: str, device: str, scratch: Path | None = None) -> None:
        from harness.backends import get_backend
        from harness.sandbox.candidate import CandidateSession
        from harness.sandbox.reference import ReferenceSession

        self.role = role
        self.scratch = scratch
        self.token = ""
        self.outcome: dict[str, Any] | None = None
        self.sandbox: dict[str, Any] | None = None
        self.desynced = False
        get_backend(backend).prepare_process(device)
        cls = ReferenceSession if role == "reference" else CandidateSession
        self.session = cls(backend, device)
        self._output = OutputCapture()  # the candidate's prints go into its result, never onto stdout

    alive = True
    can_stage = False  # both sessions in one process: the candidate draws its own inputs

    def call(self, method: str, timeout_s: float, **kwargs: Any) -> Any:
        return _unwrap(self._dispatch(method, kwargs))

    def begin(self, method: str, **kwargs: Any) -> None:
        self._pending = self._dispatch(method, kwargs)

    def _dispatch(self, method: str, kwargs: dict[str, Any]) -> Any:
        with self._output.capture() if self.role == "candidate" else stdout_to_stderr():
            return dispatch(self.session, method, kwargs)

    def finish(self, timeout_s: float) -> Any:
        return _unwrap(self._pending)

    def call_forwarding(self, method: str, timeout_s: float, **kwargs: Any) -> tuple[Any, Any]:
        value = self.call(method, timeout_s, **kwargs)
        return value, value

    def freeze(self) -> None:
        pass

    def thaw(self) -> None:
        pass

    def attach(self, buffer: ReplyBuffer | None, timeout_s: float) -> None:
        pass

    def reply_buffer(self, min_size: int, timeout_s: float) -> ReplyBuffer | None:
        return None

    def staging_buffer(self, min_size: int, timeout_s: float) -> StagingBuffer | None:
        return None

    def attach_staging(self, buffer: StagingBuffer | None, timeout_s: float) -> None:
        pass

    def kill(self) -> None:
        if self.role == "candidate" and self.session is not None:
            self.outcome = self._output.outcome()
        self.session = None  # type: ignore[assignment]

    close = kill
