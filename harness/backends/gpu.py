"""CUDA backend: CUDA events around each call, L2 flush between calls, device-wide completion."""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import Any

from harness.backends.base import Backend

# Zeroing a buffer larger than any current L2 (H100: 50 MB, H200: 60 MB, B200: 126 MB) evicts it.
_FLUSH_BYTES = 256 * 1024 * 1024


class GpuBackend(Backend):
    name = "gpu"
    device_type = "cuda"
    default_dsl = "triton_cuda"
    flush_cache_by_default = True

    def __init__(self) -> None:
        self._flush_buffers: dict[str, Any] = {}

    def available(self) -> str | None:
        try:
            import torch
        except ImportError:
            return "torch is not installed"
        if not torch.cuda.is_available():
            visible = os.environ.get("CUDA_VISIBLE_DEVICES")
            hint = f" (CUDA_VISIBLE_DEVICES={visible!r})" if visible is not None else ""
            return f"torch {torch.__version__} sees no CUDA device{hint}"
        return None

    def device_count(self) -> int:
        import torch

        return torch.cuda.device_count()

    def prepare_process(self, device: str) -> None:
        import torch

        torch.cuda.set_device(torch.device(device))

    def synchronize(self, device: str) -> None:
        import torch

        torch.cuda.synchronize(torch.device(device))

    def flush(self, device: str) -> None:
        import torch

        buf = self._flush_buffers.get(device)
        if buf is None:
            buf = torch.empty(_FLUSH_BYTES // 4, dtype=torch.int32, device=device)
            self._flush_buffers[device] = buf
        buf.zero_()

    def measure(self, fn: Callable[[], Any], repetitions: int, device: str, flush_cache: bool) -> list[float]:
        import torch

        dev = torch.device(device)
        starts = [torch.cuda.Event(enable_timing=True) for _ in range(repetitions)]
        ends = [torch.cuda.Event(enable_timing=True) for _ in range(repetitions)]
        stream = torch.cuda.current_stream(dev)
        for i in range(repetitions):
            if flush_cache:
                self.flush(device)
            starts[i].record(stream)
            fn()
            # Work the call queued on other streams must finish inside the timed region: make the
            # timing stream wait for the whole device before the end event is recorded.
            _join_all_streams(dev, stream)
            ends[i].record(stream)
        torch.cuda.synchronize(dev)
        return [s.elapsed_time(e) for s, e in zip(starts, ends, strict=True)]

    def environment(self, device: str) -> dict[str, Any]:
        import torch

        env = super().environment(device)
        props = torch.cuda.get_device_properties(torch.device(device))
        env.update(
            device_name=props.name,
            compute_capability=f"{props.major}.{props.minor}",
            multiprocessors=props.multi_processor_count,
            memory_bytes=props.total_memory,
            cuda=torch.version.cuda,
            driver=_driver_version(),
            cuda_visible_devices=os.environ.get("CUDA_VISIBLE_DEVICES"),
        )
        return env


def _join_all_streams(dev: Any, stream: Any) -> None:
    """Block the host until every stream on ``dev`` is idle, then continue on ``stream``.

    A device-wide synchronize is the only join that also covers streams the candidate created
    itself; it costs a few microseconds of host latency, measured and documented in
    docs/measurement.md.
    """
    import torch

    torch.cuda.synchronize(dev)


def _driver_version() -> str | None:
    try:
        import pynvml  # type: ignore[import-not-found]

        pynvml.nvmlInit()
        return str(pynvml.nvmlSystemGetDriverVersion())
    except Exception:
        pass
    try:
        with open("/proc/driver/nvidia/version", encoding="utf-8") as fh:
            first = fh.readline()
        for token in first.split():
            if token.count(".") >= 1 and token.replace(".", "").isdigit():
                return token
    except OSError:
        pass
    return None


BACKEND = GpuBackend()
