"""Where worker processes come from: a fork server that has imported torch, and CPU sets per device.
"""

from __future__ import annotations

import contextlib
import multiprocessing
import multiprocessing.connection
import os
import threading
from collections.abc import Sequence
from typing import Any

_CONTEXT: Any = None
_CONTEXT_LOCK = threading.Lock()


def context() -> Any:
    """The multiprocessing context: a fork server that preloads torch and the worker module."""
    global _CONTEXT
    with _CONTEXT_LOCK:
        if _CONTEXT is None:
            ctx = multiprocessing.get_context("forkserver")
            ctx.set_forkserver_preload(
                ["numpy", "torch", "harness.sandbox.entry", "harness.backends.cpu", "harness.sandbox.correctness"]
            )
            _install_main_module_skip()
            _CONTEXT = ctx
    return _CONTEXT


def start_forkserver() -> None:
    """Start the fork server now, without waiting for it: it imports torch (seconds) while the
    caller does its own start-up, instead of after it."""
    from multiprocessing import forkserver

    context()
    with contextlib.suppress(Exception):
        forkserver.ensure_running()


def cpu_sets(devices: int, available: Sequence[int] | None = None, per_device: int = 4) -> list[list[int]]:
    """One CPU set per device for its reference and candidate workers (docs/measurement.md, pinning).

    CPU 0 is left to the supervisor and the kernel's housekeeping where there are more than two;
    each device gets up to ``per_device`` CPUs of its own; with fewer CPUs than devices, sets are shared.
    """
    cpus = sorted(available if available is not None else os.sched_getaffinity(0))
    if len(cpus) > 2:
        cpus = cpus[1:]
    size = max(1, min(per_device, len(cpus) // max(1, devices)))
    return [[cpus[(i * size + k) % len(cpus)] for k in range(size)] for i in range(max(1, devices))]


_SKIP_MAIN = threading.local()


def _install_main_module_skip() -> None:
    """Workers never need the supervisor's ``__main__``: don't let multiprocessing re-run it in each.

    Started as the ``harness`` console script, every worker would otherwise re-import the CLI (click,
    rich, every extension command) before doing anything: a tenth of a second per candidate.
    """
    from multiprocessing import spawn

    original = spawn.get_preparation_data
    if getattr(original, "_harness_wrapped", False):
        return

    def get_preparation_data(name: str) -> dict[str, Any]:
        data: dict[str, Any] = original(name)
        if getattr(_SKIP_MAIN, "on", False):
            data.pop("init_main_from_path", None)
            data.pop("init_main_from_name", None)
        return data

    get_preparation_data._harness_wrapped = True  # type: ignore[attr-defined]
    spawn.get_preparation_data = get_preparation_data


def _start(process: Any) -> None:
    _SKIP_MAIN.on = True
    try:
        process.start()
    finally:
        _SKIP_MAIN.on = False
