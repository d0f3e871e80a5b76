"""Ascend NPU backend through torch_npu: ``torch.npu`` events, synchronize, ASCEND_RT_VISIBLE_DEVICES.

Written against the public torch_npu API (``torch.npu.Event(enable_timing=True)``, ``Event.record``,
``Event.elapsed_time``, ``torch.npu.synchronize(device)``, ``torch.npu.current_stream(device)``,
``torch.npu.set_device("npu:N")``, ``torch.npu.device_count()``, ``torch.npu.get_device_name``) and
timed exactly like the CUDA backend (`harness.backends.gpu.EventTimedBackend`). It has NOT run on
Ascend hardware in this project: CI exercises it through the stand-in module in
``tests/stand_ins/torch_npu``, and results produced through a stand-in say so
(``simulated: true`` and a note in the environment block).

The stand-in holds its tensors on the CPU, because CPU-only torch has no ``npu`` device type; it
says so with ``HARNESS_DEVICE_TYPE = "cpu"``, which this backend honours only from a module that
also sets ``HARNESS_STAND_IN = True``. Real torch_npu sets neither, so real runs use ``npu:N``.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Mapping
from typing import Any

from harness.backends.gpu import EventTimedBackend

STAND_IN_NOTE = "torch_npu stand-in: NOT run on Ascend hardware"


def _torch_npu() -> Any:
    import torch_npu  # noqa: F401 - registers torch.npu

    return torch_npu


# Device events a device offers differ by part: 65535 on Atlas A2/A3 (910B/910C), but 1023 on the Atlas
# inference series (310P) (CANN aclrtCreateEvent). Recording one more blocks until another is freed, and
# the reference and candidate workers share a device, so one timing series keeps to a quarter of the
# small limit (85 timed calls per chunk) whatever the part.
MAX_EVENTS_PER_SERIES = 255
# CANN's folders (the image puts them under /tmp): CANN creates ASCEND_WORK_PATH when it needs it, but
# ASCEND_CACHE_PATH must exist before use; all three are made before torch_npu starts.
ASCEND_FOLDERS = ("ASCEND_CACHE_PATH", "ASCEND_WORK_PATH", "ASCEND_PROCESS_LOG_PATH")


def make_ascend_folders(environ: Mapping[str, str]) -> list[str]:
    """The CANN folders named in ``environ`` that were created now (the image's entrypoint also makes them).

    Also done here because a container started with another entrypoint (as the container tests do)
    skips the image's script, and CANN does not create ``ASCEND_CACHE_PATH`` itself.
    """
    made = []
    for name in ASCEND_FOLDERS:
        folder = environ.get(name)
        if folder and not os.path.isdir(folder):
            with contextlib.suppress(OSError):  # a folder CANN cannot use shows in its own error
                os.makedirs(folder, exist_ok=True)
                made.append(folder)
    return made


class NpuBackend(EventTimedBackend):
    name = "npu"
    default_dsl = "triton_ascend"
    flush_cache_by_default = True
    timing_overrides = {"max_repetitions": 5000, "warmup_ms": 50.0, "min_warmup": 3}
    max_events_per_series = MAX_EVENTS_PER_SERIES

    @property
    def simulated(self) -> bool:  # type: ignore[override]
        try:
            return bool(getattr(_torch_npu(), "HARNESS_STAND_IN", False))
        except ImportError:
            return False

    @property
    def device_type(self) -> str:  # type: ignore[override]
        """``npu``; the stand-in's own device type (``cpu``) when a stand-in answers."""
        try:
            module = _torch_npu()
        except ImportError:
            return "npu"
        if getattr(module, "HARNESS_STAND_IN", False):
            return str(getattr(module, "HARNESS_DEVICE_TYPE", "npu"))
        return "npu"

    def device_string(self, index: int) -> str:
        if self.device_type == "cpu":
            return "cpu"  # the stand-in's CPU has one device; torch rejects cpu:N for N > 0
        return f"{self.device_type}:{index}"

    def flush_bytes(self) -> int:
        """The stand-in names its own (small) cache to flush; real hardware gets the 256 MiB buffer."""
        module = _torch_npu()
        if getattr(module, "HARNESS_STAND_IN", False):
            return int(getattr(module, "HARNESS_FLUSH_BYTES", super().flush_bytes()))
        return super().flush_bytes()

    def runtime(self) -> Any:
        import torch

        _torch_npu()
        return torch.npu  # type: ignore[attr-defined]  # registered by torch_npu

    def available(self) -> str | None:
        try:
            _torch_npu()
        except ImportError:
            return "torch_npu is not installed (use the Ascend image: nox -s image-npu)"
        if not self.runtime().is_available():
            visible = os.environ.get("ASCEND_RT_VISIBLE_DEVICES")
            return f"torch_npu sees no NPU (ASCEND_RT_VISIBLE_DEVICES={visible!r})"
        return None

    def device_count(self) -> int:
        return int(self.runtime().device_count())

    def prepare_process(self, device: str) -> None:
        make_ascend_folders(os.environ)
        self.runtime().set_device(device)

    def environment(self, device: str) -> dict[str, Any]:
        env = super().environment(device)
        torch_npu = _torch_npu()
        rt = self.runtime()
        env.update(
            torch_npu=getattr(torch_npu, "__version__", None),
            device_name=str(rt.get_device_name(device)) if hasattr(rt, "get_device_name") else None,
            ascend_rt_visible_devices=os.environ.get("ASCEND_RT_VISIBLE_DEVICES"),
            simulated=self.simulated,
            timing=self._measured_timing_facts(device),
        )
        if self.simulated:
            env["note"] = STAND_IN_NOTE
        return env


BACKEND = NpuBackend()
