"""Process set-up of every worker (signals, allocator, CPU set, supervisor watch) and the process tree.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import select
import signal
import sys
import threading
import time
from typing import Any

_PR_SET_PDEATHSIG = 1
_PR_SET_DUMPABLE = 4
_PR_SET_CHILD_SUBREAPER = 36
_PR_SET_NO_NEW_PRIVS = 38
_LIBC: Any = None


def _libc() -> Any:
    global _LIBC
    if _LIBC is None:
        _LIBC = ctypes.CDLL(None, use_errno=True)
        _LIBC.syscall.restype = ctypes.c_long
    return _LIBC


def prctl(option: int, value: int) -> bool:
    """``prctl(option, value)``; False where the call is not available or fails."""
    try:
        return int(_libc().prctl(option, ctypes.c_ulong(value), 0, 0, 0)) == 0
    except (OSError, AttributeError):
        return False


# glibc mallopt parameters (malloc.h)
_M_TRIM_THRESHOLD = -1
_M_MMAP_THRESHOLD = -3
_MMAP_THRESHOLD_MAX = 32 << 20  # glibc's upper limit on 64-bit


def _fixed_allocator() -> None:
    """Give every worker the same, static malloc policy: blocks up to 32 MiB from the heap, no trimming.

    glibc adapts its mmap and trim thresholds to what a process freed before: the long-lived
    reference worker had raised them (its large outputs reuse heap memory), while a fresh candidate
    worker starts at 128 KiB, so each of its multi-megabyte outputs was a new mapping, page-faulted
    in on every call. That made the same model time up to 2x slower as a candidate (A/A runs), an
    allocator artefact rather than a kernel's speed. Fixed thresholds (setting them turns the
    adaptation off) make both sides allocate alike from the first call. ``HARNESS_MALLOC=default``
    keeps glibc's behaviour (for comparison); elsewhere than glibc this does nothing.
    """
    if os.environ.get("HARNESS_MALLOC") == "default" or not sys.platform.startswith("linux"):
        return
    with contextlib.suppress(Exception):
        libc = _libc()
        libc.mallopt(_M_MMAP_THRESHOLD, _MMAP_THRESHOLD_MAX)
        libc.mallopt(_M_TRIM_THRESHOLD, 1 << 30)


def _worker_process_setup(cpus: list[int] | None = None) -> None:
    """What every worker does first: ignore Ctrl-C, write no bytecode, drop inherited fds, pin CPUs.

    Ctrl-C is the supervisor's to handle. Workers write no ``__pycache__`` beside case and solution
    files (the file watch would see them as changes). The fork server's liveness pipe and the
    resource tracker's pipe are closed so that neither outlives the supervisor because a worker
    still holds it.
    """
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    sys.dont_write_bytecode = True
    _fixed_allocator()
    _pin(cpus)
    with contextlib.suppress(Exception):
        from multiprocessing import forkserver, resource_tracker

        fds = (forkserver._forkserver._forkserver_alive_fd, resource_tracker._resource_tracker._fd)  # type: ignore[attr-defined]
        for fd in fds:
            if isinstance(fd, int):
                with contextlib.suppress(OSError):
                    os.close(fd)
        forkserver._forkserver._forkserver_alive_fd = None  # type: ignore[attr-defined]
        resource_tracker._resource_tracker._fd = None  # type: ignore[attr-defined]
        resource_tracker._resource_tracker._pid = None  # type: ignore[attr-defined]


def _pin(cpus: list[int] | None) -> None:
    """Run on ``cpus`` only (the reference and the candidate of a device get the same set).

    Host speed differs between CPU cores (interrupt routing, a busy SMT sibling, a virtual CPU whose
    host thread is shared), and on a GPU the host's launch time reaches the samples of calls whose
    launches the lead does not cover: two processes on different cores read an A/A pair up to 2 %
    apart (docs/measurement.md). On the same cores, with the other side stopped while one is timed,
    both get the same host.
    """
    if not cpus or not hasattr(os, "sched_setaffinity"):
        return
    with contextlib.suppress(OSError, ValueError):
        os.sched_setaffinity(0, cpus)
        import torch

        torch.set_num_threads(len(cpus))


def _supervisor_watch(supervisor_pid: int) -> int | None:
    """A file descriptor that becomes readable when the supervisor exits (a pidfd), or None."""
    try:
        return os.pidfd_open(supervisor_pid)
    except (AttributeError, OSError):
        return None


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _exit_with_supervisor(supervisor_pid: int) -> None:
    """End this process as soon as the supervisor is gone (a thread waiting on its pidfd)."""

    def watch() -> None:
        fd = _supervisor_watch(supervisor_pid)
        while True:
            if fd is not None:
                select.select([fd], [], [])
                os._exit(0)
            if not _alive(supervisor_pid):
                os._exit(0)
            time.sleep(1.0)

    threading.Thread(target=watch, name="harness-supervisor-watch", daemon=True).start()






def process_parents() -> dict[int, tuple[int, str]]:
    """pid -> (parent pid, state letter) of every process visible in /proc."""
    table: dict[int, tuple[int, str]] = {}
    try:
        entries = os.listdir("/proc")
    except OSError:
        return table
    for name in entries:
        if not name.isdigit():
            continue
        try:
            with open(f"/proc/{name}/stat", "rb") as fh:
                stat = fh.read()
        except OSError:
            continue
        fields = stat[stat.rfind(b")") + 2 :].split()
        if len(fields) >= 2:
            table[int(name)] = (int(fields[1]), fields[0].decode("ascii", "replace"))
    return table


def descendants(root: int, table: dict[int, tuple[int, str]] | None = None) -> list[int]:
    """Living (non-zombie) descendants of ``root``, parents before children."""
    table = process_parents() if table is None else table
    children: dict[int, list[int]] = {}
    for pid, (ppid, state) in table.items():
        if state not in ("Z", "X"):
            children.setdefault(ppid, []).append(pid)
    found: list[int] = []
    stack = list(children.get(root, ()))
    while stack:
        pid = stack.pop()
        found.append(pid)
        stack.extend(children.get(pid, ()))
    return found


def signal_all(pids: list[int], signum: int) -> None:
    for pid in pids:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.kill(pid, signum)


def _kill_subtree(root: int, deadline_s: float = 5.0) -> set[int]:
    """SIGKILL every descendant of ``root`` (this process, a subreaper) until none is left; reaps them."""
    killed: set[int] = set()
    stop = time.monotonic() + deadline_s
    while time.monotonic() < stop:
        _reap_all()
        found = descendants(root)
        if not found:
            break
        signal_all(found, signal.SIGKILL)
        killed.update(found)
        time.sleep(0.001)
    _reap_all()
    return killed


def _reap_all() -> list[tuple[int, int]]:
    reaped = []
    while True:
        try:
            pid, status = os.waitpid(-1, os.WNOHANG)
        except ChildProcessError:
            break
        if pid == 0:
            break
        reaped.append((pid, status))
    return reaped
