"""A worker's request loop: numbered requests in, `harness.sandbox.wire` replies out, never pickle.
"""

from __future__ import annotations

import contextlib
import mmap
import os
import traceback
from collections.abc import Callable
from typing import Any

from harness.sandbox import wire
from harness.sandbox.guard import Guard
from harness.sandbox.session import SessionError, _line, _Session


class _Transport:
    """How one worker exchanges large payloads: the reply buffer the supervisor attached, if any."""

    def __init__(self, writable: bool) -> None:
        self.writable = writable  # the candidate worker writes its replies; the reference only reads
        self.buffer: mmap.mmap | None = None
        self.staging: mmap.mmap | None = None

    def receive(self, conn: Any, blob: Any) -> Any:
        """What came with a request: raw reply bytes, a new shared buffer, or a reply in the buffer."""
        if blob == "bytes":
            return conn.recv_bytes()
        kind, size = blob[0], int(blob[1])
        if kind in ("fd", "stage_fd"):
            from multiprocessing import reduction

            fd = reduction.recv_handle(conn)
            try:
                if kind == "stage_fd":  # staged inputs: written by the reference, read by the candidate
                    self.staging = wire.map_shared(fd, size, writable=True)
                    return None
                if self.buffer is not None:
                    with contextlib.suppress(BufferError):
                        self.buffer.close()
                self.buffer = wire.map_shared(fd, size, self.writable)
            finally:
                os.close(fd)
            return None
        if self.buffer is None or not 0 <= size <= len(self.buffer):
            raise wire.WireError("a reply in a shared buffer that is not there")
        return memoryview(self.buffer)[:size]

    def send(self, conn: Any, reply: dict[str, Any]) -> None:
        """Send ``reply``: into the shared buffer (and a small envelope) when it carries large tensors."""
        if self.writable and self.buffer is not None and wire.tensor_bytes(reply) >= wire.SHARED_MIN_BYTES:
            try:
                length = wire.encode_into(reply, self.buffer)
            except wire.TooLarge:
                pass
            else:
                conn.send_bytes(wire.encode({"seq": reply["seq"], "shared": length}))
                return
        conn.send_bytes(wire.encode(reply))


def serve(conn: Any, session: _Session, guard: Guard | None = None) -> None:
    """Answer requests until the supervisor closes the connection or asks to stop.

    With a ``guard`` (candidate workers) every reply is preceded by a tamper check, so a candidate
    that patched the clock or the harness ends with an error naming what it replaced.
    """
    check = guard.violations if guard is not None else None
    transport = _Transport(writable=guard is not None)
    while True:
        try:
            seq, method, kwargs, blob = conn.recv()
            if blob:
                received = transport.receive(conn, blob)
                if received is not None:
                    kwargs["forward"] = received
        except (EOFError, OSError):
            return
        except wire.WireError as exc:
            conn.send_bytes(wire.encode({"ok": False, "seq": seq, "error": _error_dict(exc, None)}))
            continue
        if method == "stop":
            conn.send_bytes(wire.encode({"ok": True, "value": {}, "seq": seq}))
            return
        if method == "attach_buffer":
            reply = {"ok": True, "value": {}}
        elif method == "attach_staging":
            session.attach_staging(transport.staging)
            reply = {"ok": True, "value": {}}
        else:
            reply = dispatch(session, method, kwargs)
        forwarded = kwargs.pop("forward", None)
        if isinstance(forwarded, memoryview):
            with contextlib.suppress(BufferError):
                forwarded.release()
        if check is not None:
            replaced = check()
            if replaced:
                reply = _tampered(replaced)
        reply["seq"] = seq
        try:
            transport.send(conn, reply)
        except (BrokenPipeError, ConnectionError):
            return
        except Exception as exc:  # noqa: BLE001 - an unsendable value is the worker's error, not a crash
            conn.send_bytes(wire.encode({"ok": False, "seq": seq, "error": _error_dict(exc, None)}))


def _tampered(replaced: list[str]) -> dict[str, Any]:
    shown = ", ".join(replaced[:5]) + (f" and {len(replaced) - 5} more" if len(replaced) > 5 else "")
    message = f"the candidate replaced {shown}; a solution may not patch torch, time, builtins or the harness"
    return {"ok": False, "error": {"type": "TamperError", "message": message, "phase": None}}


def dispatch(session: _Session, method: str, kwargs: dict[str, Any]) -> dict[str, Any]:
    """Call one session method; failures become an error reply with type, message and phase."""
    handler: Callable[..., dict[str, Any]] | None = getattr(session, method, None)
    if handler is None or method.startswith("_"):
        return {
            "ok": False,
            "error": {"type": "ProtocolError", "message": f"no method {method}", "phase": None},
        }
    try:
        return {"ok": True, "value": handler(**kwargs)}
    except SessionError as exc:
        return {"ok": False, "error": {"type": "SessionError", "message": str(exc), "phase": exc.phase}}
    except Exception as exc:  # noqa: BLE001 - reported to the supervisor, which decides the status
        return {"ok": False, "error": _error_dict(exc, None)}


def _error_dict(exc: BaseException, phase: str | None) -> dict[str, Any]:
    return {
        "type": type(exc).__name__,
        "message": f"{type(exc).__name__}: {_line(exc)}",
        "phase": phase,
        "traceback": traceback.format_exc(limit=8)[-4000:],
    }
