"""CPU backend: host clock timing, optional last-level-cache flush, OpenMP thread settings."""

from __future__ import annotations

import os
import platform
import time
from collections.abc import Callable
from typing import Any

from harness.backends.base import Backend

# Larger than any common last-level cache, so writing it evicts the previous call's data.
_FLUSH_BYTES = 64 * 1024 * 1024


class CpuBackend(Backend):
    name = "cpu"
    device_type = "cpu"
    default_dsl = "cpp"
    flush_cache_by_default = False
    staging = "host"

    def __init__(self) -> None:
        self._flush_buffer: Any = None
        self.arch = platform.machine()

    def available(self) -> str | None:
        return None

    def device_count(self) -> int:
        return 1

    def device_string(self, index: int) -> str:
        return "cpu"

    def synchronize(self, device: str) -> None:
        return None

    def _flush(self) -> None:
        import torch

        if self._flush_buffer is None:
            self._flush_buffer = torch.empty(_FLUSH_BYTES // 4, dtype=torch.float32)
        self._flush_buffer.fill_(1.0)

    def measure(self, fn: Callable[[], Any], repetitions: int, device: str, flush_cache: bool) -> list[float]:
        clock = time.perf_counter_ns
        samples = []
        for _ in range(repetitions):
            if flush_cache:
                self._flush()
            start = clock()
            fn()
            samples.append((clock() - start) / 1e6)
        return samples

    def environment(self, device: str) -> dict[str, Any]:
        import torch

        env = super().environment(device)
        env.update(
            device_name=_cpu_model(),
            logical_cores=os.cpu_count(),
            torch_threads=torch.get_num_threads(),
            arch=self.arch,
        )
        return env


def _cpu_model() -> str:
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as fh:
            for line in fh:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


BACKEND = CpuBackend()
