"""Ascend NPU backend through torch_npu: ``torch.npu`` events, synchronize, ASCEND_RT_VISIBLE_DEVICES.

Written against the public torch_npu API; it has not run on Ascend hardware in this project's CI.
Results produced through a stand-in module say so (``simulated: true`` in the environment block).
"""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import Any

from harness.backends.base import Backend

_FLUSH_BYTES = 256 * 1024 * 1024


def _torch_npu() -> Any:
    import torch_npu  # type: ignore[import-not-found]  # noqa: F401 - registers torch.npu

    return torch_npu


class NpuBackend(Backend):
    name = "npu"
    device_type = "npu"
    default_dsl = "triton_ascend"
    flush_cache_by_default = True

    def __init__(self) -> None:
        self._flush_buffers: dict[str, Any] = {}

    @property
    def simulated(self) -> bool:  # type: ignore[override]
        try:
            return bool(getattr(_torch_npu(), "HARNESS_STAND_IN", False))
        except ImportError:
            return False

    def available(self) -> str | None:
        try:
            _torch_npu()
        except ImportError:
            return "torch_npu is not installed (use the Ascend image: nox -s image-npu)"
        import torch

        if not torch.npu.is_available():
            visible = os.environ.get("ASCEND_RT_VISIBLE_DEVICES")
            return f"torch_npu sees no NPU (ASCEND_RT_VISIBLE_DEVICES={visible!r})"
        return None

    def device_count(self) -> int:
        import torch

        _torch_npu()
        return int(torch.npu.device_count())

    def prepare_process(self, device: str) -> None:
        import torch

        _torch_npu()
        torch.npu.set_device(device)

    def synchronize(self, device: str) -> None:
        import torch

        torch.npu.synchronize()

    def flush(self, device: str) -> None:
        import torch

        buf = self._flush_buffers.get(device)
        if buf is None:
            buf = torch.empty(_FLUSH_BYTES // 4, dtype=torch.int32, device=device)
            self._flush_buffers[device] = buf
        buf.zero_()

    def measure(self, fn: Callable[[], Any], repetitions: int, device: str, flush_cache: bool) -> list[float]:
        import torch

        starts = [torch.npu.Event(enable_timing=True) for _ in range(repetitions)]
        ends = [torch.npu.Event(enable_timing=True) for _ in range(repetitions)]
        for i in range(repetitions):
            if flush_cache:
                self.flush(device)
            starts[i].record()
            fn()
            torch.npu.synchronize()  # covers streams the candidate created itself
            ends[i].record()
        torch.npu.synchronize()
        return [float(s.elapsed_time(e)) for s, e in zip(starts, ends, strict=True)]

    def seed(self, seed: int) -> None:
        import torch

        torch.manual_seed(seed)

    def environment(self, device: str) -> dict[str, Any]:
        import torch

        env = super().environment(device)
        torch_npu = _torch_npu()
        env.update(
            torch_npu=getattr(torch_npu, "__version__", None),
            device_name=str(torch.npu.get_device_name(device)) if hasattr(torch.npu, "get_device_name") else None,
            ascend_rt_visible_devices=os.environ.get("ASCEND_RT_VISIBLE_DEVICES"),
            simulated=self.simulated,
        )
        if self.simulated:
            env["note"] = "torch_npu stand-in: NOT run on Ascend hardware"
        return env


BACKEND = NpuBackend()
