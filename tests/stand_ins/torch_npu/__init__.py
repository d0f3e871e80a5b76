"""A stand-in for ``torch_npu`` so the NPU backend's code paths run in CI, on the CPU.

It is NOT an NPU emulator: tensors stay on the CPU (CPU-only torch has no ``npu`` device type, and
renaming PrivateUse1 to ``npu`` would still leave no kernels behind it), events read the host clock
(CPU work is synchronous, so that is exact), and ``synchronize`` has nothing to wait for. It mimics
only the parts of the ``torch.npu`` API that `harness.backends.npu` uses, and announces itself:

- ``HARNESS_STAND_IN = True``: the backend marks every result ``simulated: true`` with the note
  "NOT run on Ascend hardware";
- ``HARNESS_DEVICE_TYPE = "cpu"``: the torch device type its tensors live on;
- ``HARNESS_FLUSH_BYTES``: a small cache-flush buffer, since the flush runs on the CPU.

Put ``tests/stand_ins`` on PYTHONPATH to use it; never install it where real torch_npu is wanted.
``ASCEND_RT_VISIBLE_DEVICES`` sets how many devices it reports (default: one).

Device events are limited as on the smallest Ascend part: an Atlas inference-series device (310P)
holds 1023 (``TORCH_NPU_STAND_IN_MAX_EVENTS`` changes it). Real hardware blocks the recording of one
event more until another is freed; the stand-in raises instead, so a timer that holds too many events
fails here rather than hanging there. ``_state["peak_events"]`` is the most held at once.
"""

from __future__ import annotations

import contextlib
import os
import sys
import time
import types
from typing import Any

import torch

__version__ = "0.0+stand-in"
HARNESS_STAND_IN = True
HARNESS_DEVICE_TYPE = "cpu"
HARNESS_FLUSH_BYTES = 4 * 1024 * 1024  # the cache flush runs on the CPU: keep it cheap

_state = {"device": 0, "live_events": 0, "peak_events": 0}
MAX_EVENTS = int(os.environ.get("TORCH_NPU_STAND_IN_MAX_EVENTS", "1023"))


def is_available() -> bool:
    return device_count() > 0


def device_count() -> int:
    visible = os.environ.get("ASCEND_RT_VISIBLE_DEVICES")
    if visible is None:
        return 1
    return len([v for v in visible.split(",") if v.strip()])


def _index(device: Any) -> int:
    if device is None:
        return _state["device"]
    if isinstance(device, int):
        return device
    if isinstance(device, torch.device):
        return device.index or 0
    text = str(device)
    return int(text.split(":", 1)[1]) if ":" in text else 0


def set_device(device: Any) -> None:
    index = _index(device)
    if not 0 <= index < device_count():
        raise RuntimeError(f"stand-in torch_npu: invalid device {device!r} ({device_count()} visible)")
    _state["device"] = index


def current_device() -> int:
    return _state["device"]


def synchronize(device: Any = None) -> None:
    """CPU work is finished when the call returns: nothing to wait for."""


def get_device_name(device: Any = None) -> str:
    return f"stand-in NPU {_index(device)} (CPU)"


class Stream:
    def __init__(self, device: Any = None, priority: int = 0) -> None:
        self.device = device

    def synchronize(self) -> None:
        return None

    def wait_stream(self, other: Stream) -> None:
        return None


_DEFAULT_STREAM = Stream()


def current_stream(device: Any = None) -> Stream:
    return _DEFAULT_STREAM


class Event:
    """``torch.npu.Event`` on the host clock."""

    def __init__(
        self, enable_timing: bool = False, blocking: bool = False, interprocess: bool = False
    ) -> None:
        self.enable_timing = enable_timing
        self._ns: int | None = None
        self._held = False

    def record(self, stream: Stream | None = None) -> None:
        if not self._held:  # CANN takes the device event at the first record, not at creation
            if _state["live_events"] >= MAX_EVENTS:
                raise RuntimeError(
                    f"stand-in torch_npu: more than {MAX_EVENTS} device events held at once "
                    "(real hardware would block here until one is freed)"
                )
            self._held = True
            _state["live_events"] += 1
            _state["peak_events"] = max(_state["peak_events"], _state["live_events"])
        self._ns = time.perf_counter_ns()

    def __del__(self) -> None:
        if self._held:
            with contextlib.suppress(Exception):  # module globals may be gone at interpreter exit
                _state["live_events"] -= 1

    def synchronize(self) -> None:
        return None

    def query(self) -> bool:
        return True

    def elapsed_time(self, end: Event) -> float:
        if not (self.enable_timing and end.enable_timing):
            raise RuntimeError("stand-in torch_npu: both events need enable_timing=True")
        if self._ns is None or end._ns is None:
            raise RuntimeError("stand-in torch_npu: event not recorded")
        return (end._ns - self._ns) / 1e6


npu = types.ModuleType("torch_npu.npu")
for _name in (
    "is_available",
    "device_count",
    "set_device",
    "current_device",
    "synchronize",
    "get_device_name",
    "current_stream",
    "Stream",
    "Event",
):
    setattr(npu, _name, globals()[_name])
sys.modules["torch_npu.npu"] = npu
torch.npu = npu  # type: ignore[attr-defined]  # what real torch_npu does on import
