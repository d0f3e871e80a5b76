"""What in-process code (``--isolation none``) writes to stdout and stderr, taken at the descriptor level.

A candidate in its own process has its output piped to its keeper. In-process there is no pipe: its
prints (and a C++ extension's) would land on the harness's own stdout, in front of ``--json``. So
each candidate call runs with file descriptors 1 and 2 pointed at temporary files, whose text goes
into the result as the candidate's output; a reference call (case code) gets its stdout sent to
stderr. Descriptors are process-wide: this is for the single-threaded debugging mode only.
"""

from __future__ import annotations

import contextlib
import os
import sys
import tempfile
from collections.abc import Iterator

# Kept per stream (the tail); the result keeps at most --output-limit of it.
KEEP_BYTES = 1 << 20


def _flush() -> None:
    for stream in (sys.stdout, sys.stderr):
        with contextlib.suppress(Exception):
            stream.flush()


class OutputCapture:
    """Everything written to fds 1 and 2 inside ``capture()`` blocks, kept in order per stream."""

    def __init__(self) -> None:
        self.data = {1: b"", 2: b""}
        self.truncated = False

    @contextlib.contextmanager
    def capture(self) -> Iterator[None]:
        _flush()
        saved = {fd: os.dup(fd) for fd in (1, 2)}
        files = {fd: tempfile.TemporaryFile() for fd in (1, 2)}
        try:
            for fd, fh in files.items():
                os.dup2(fh.fileno(), fd)
            yield
        finally:
            _flush()
            for fd, fh in files.items():
                os.dup2(saved[fd], fd)
                os.close(saved[fd])
                fh.seek(0)
                data = self.data[fd] + fh.read()
                fh.close()
                if len(data) > KEEP_BYTES:
                    data, self.truncated = data[-KEEP_BYTES:], True
                self.data[fd] = data

    def outcome(self) -> dict[str, object]:
        """The keeper's report, for the in-process candidate: its output tails."""
        text = {fd: data.decode("utf-8", "replace") for fd, data in self.data.items()}
        return {"stdout": text[1], "stderr": text[2], "truncated": self.truncated}


@contextlib.contextmanager
def stdout_to_stderr() -> Iterator[None]:
    """Point fd 1 at fd 2 inside the block (case code may print; stdout stays the harness's own)."""
    _flush()
    saved = os.dup(1)
    try:
        os.dup2(2, 1)
        yield
    finally:
        _flush()
        os.dup2(saved, 1)
        os.close(saved)
