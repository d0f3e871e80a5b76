"""Shared memory between the supervisor and the workers: the reply buffer (large candidate outputs) and
the staging buffer (input sets the reference stages for the candidate, on the host)."""

from __future__ import annotations

import contextlib
import os
from typing import Any

from harness.sandbox import wire


class ReplyBuffer:
    """Shared memory for large replies (candidate outputs): written by the candidate worker, read by
    the supervisor (the header, copied) and the reference worker (each chunk copied as it is compared).

    One per reference worker, grown as cases need and reused by every candidate, so its pages are
    touched once, not once per output; the candidate may scribble on it, but only its own replies
    lie there, and nobody reads a byte of it twice.
    """

    def __init__(self, size: int) -> None:
        self.fd = os.memfd_create("harness-replies", os.MFD_CLOEXEC)
        os.ftruncate(self.fd, size)
        self.size = size
        self.view = wire.map_shared(self.fd, size, writable=False)

    def close(self) -> None:
        with contextlib.suppress(BufferError, ValueError):
            self.view.close()
        with contextlib.suppress(OSError):
            os.close(self.fd)


class StagingBuffer:
    """Shared memory for staged inputs on the host (harness.sandbox.exchange): written by the reference worker,
    mapped by the candidate's. The supervisor only creates it and passes its descriptor on."""

    def __init__(self, size: int) -> None:
        self.fd = os.memfd_create("harness-inputs", os.MFD_CLOEXEC)
        os.ftruncate(self.fd, size)
        self.size = size

    def close(self) -> None:
        with contextlib.suppress(OSError):
            os.close(self.fd)


class SharedReply:
    """A reply that lies in a `ReplyBuffer`: ``length`` bytes at its start."""

    def __init__(self, buffer: ReplyBuffer, length: int) -> None:
        self.buffer = buffer
        self.length = length

    def decode(self) -> Any:
        return wire.decode(bytes(self.buffer.view[: self.length]))


