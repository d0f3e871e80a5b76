"""The interface every backend implements: availability, devices, moving data, timing, environment."""

from __future__ import annotations

import abc
from collections.abc import Callable, Sequence
from typing import Any, ClassVar

from harness.errors import EnvironmentUnavailable


class Backend(abc.ABC):
    """One kind of device. Adding a backend means adding a module; the others stay untouched."""

    name: str  # command-line name: cpu, gpu, npu
    device_type: str  # torch device type: cpu, cuda, npu
    default_dsl: str  # cpp, triton_cuda, triton_ascend
    arch: str = ""  # label for results; override with --arch
    flush_cache_by_default: bool = False
    simulated: bool = False  # True when a stand-in runtime, not real hardware, answered
    # Timing defaults of this backend for TimingConfig fields left at their generic default
    # (harness.timing.for_backend); e.g. more repetitions where a call takes microseconds.
    timing_overrides: ClassVar[dict[str, Any]] = {}

    @abc.abstractmethod
    def available(self) -> str | None:
        """None when usable here, else a one-line reason naming what is missing."""

    @abc.abstractmethod
    def device_count(self) -> int:
        """How many devices this process can see."""

    def select_devices(self, requested: Sequence[str] | None) -> tuple[list[str], list[str]]:
        """Device strings to use and warnings for requested devices that do not exist.

        Raises EnvironmentUnavailable when the backend is unusable or no requested device is left.
        """
        reason = self.available()
        if reason:
            raise EnvironmentUnavailable(f"backend {self.name} is unavailable: {reason}")
        count = self.device_count()
        if not requested:
            return [self.device_string(0)], []
        chosen, warnings = [], []
        for item in requested:
            index = int(item) if str(item).isdigit() else -1
            if 0 <= index < count:
                chosen.append(self.device_string(index))
            else:
                warnings.append(f"device {item} does not exist on backend {self.name} ({count} visible); skipped")
        if not chosen:
            raise EnvironmentUnavailable(
                f"none of the requested devices {','.join(map(str, requested))} exist on backend {self.name} "
                f"({count} visible); pass --devices with indices below {count}"
            )
        return chosen, warnings

    def device_string(self, index: int) -> str:
        return f"{self.device_type}:{index}"

    def prepare_process(self, device: str) -> None:  # noqa: B027 - optional hook, no-op by default
        """Called once in a worker before anything touches the device (bind it, set threads)."""

    @abc.abstractmethod
    def synchronize(self, device: str) -> None:
        """Wait until all work queued on ``device``, on every stream, has finished."""

    @abc.abstractmethod
    def measure(self, fn: Callable[[], Any], repetitions: int, device: str, flush_cache: bool) -> list[float]:
        """Milliseconds of each of ``repetitions`` calls of ``fn``; each includes all work it started."""

    def timing_notes(self) -> list[str]:
        """What the timer noticed since the last call (e.g. work left on another stream); clears them."""
        return []

    def seed(self, seed: int) -> None:
        import torch

        torch.manual_seed(seed)

    def environment(self, device: str) -> dict[str, Any]:
        """Facts about the device and its software stack for the result's environment block."""
        return {"backend": self.name, "device": device, "simulated": self.simulated}
