"""Clean-up after candidates: scratch folders, and the last resort against processes that escaped.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import tempfile
from pathlib import Path

from harness.sandbox.entry import TOKEN_ENV


def kill_marked_processes(token: str) -> int:
    """SIGKILL every process whose environment carries ``token``; returns how many were found.

    The last resort, for when a keeper could not clean up: catches processes a candidate started
    in a new session (escaping its process group), unless they also cleared their environment.
    """
    if not token:
        return 0
    needle = f"{TOKEN_ENV}={token}".encode()
    killed = 0
    for pid in marked_processes(needle):
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.kill(pid, signal.SIGKILL)
            killed += 1
    return killed


def marked_processes(needle: bytes) -> list[int]:
    """Pids whose environment holds the exact entry ``needle`` (``NAME=value``)."""
    found = []
    for name in os.listdir("/proc"):
        if not name.isdigit() or int(name) == os.getpid():
            continue
        try:
            with open(f"/proc/{name}/environ", "rb") as fh:
                environ = fh.read()
        except OSError:
            continue
        if needle in environ.split(b"\0"):
            found.append(int(name))
    return found


def make_scratch(root: Path | None = None) -> Path:
    """A fresh private folder for one candidate's files."""
    return Path(tempfile.mkdtemp(prefix="harness-scratch-", dir=str(root) if root else None))


def remove_scratch(path: Path) -> None:
    shutil.rmtree(path, ignore_errors=True)


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
