"""The interface every backend implements: availability, devices, moving data, timing, environment."""

from __future__ import annotations

import abc
import math
from collections.abc import Callable, Sequence
from typing import Any, ClassVar

from harness.errors import EnvironmentUnavailable


def _finite_list(values: Any, length: int) -> list[float]:
    """``values`` as floats when it is a list of ``length`` finite non-negative numbers, else []."""
    if not isinstance(values, list) or len(values) != length:
        return []
    out = []
    for v in values:
        if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v) or v < 0:
            return []
        out.append(float(v))
    return out


class Backend(abc.ABC):
    """One kind of device. Adding a backend means adding a module; the others stay untouched."""

    name: str  # command-line name: cpu, gpu, npu
    device_type: str  # torch device type: cpu, cuda, npu
    default_dsl: str  # cpp, triton_cuda, triton_ascend
    arch: str = ""  # label for results; override with --arch
    flush_cache_by_default: bool = False
    simulated: bool = False  # True when a stand-in runtime, not real hardware, answered
    # Where the reference stages inputs for the candidate (harness.sandbox.exchange): "host" (a shared memfd),
    # "cuda" (device memory shared by IPC) or None (the candidate draws its own inputs from the seed).
    staging: str | None = None
    # Whether each device's reference and candidate workers run on one CPU set of their own
    # (harness.evaluation.forkserver.cpu_sets): where host speed reaches the samples (launches on a GPU).
    pin_workers: bool = False
    # Whether the reference is timed alone before any candidate code runs, and its rounds checked
    # against that (harness.evaluation.shape_pass._disturbance): where a stopped candidate's queued
    # work can still run (a device). On the CPU a stopped process does nothing, and the candidate's
    # load overlaps the reference's prepare instead.
    needs_baseline: bool = False
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

    def release_memory(self, device: str) -> None:  # noqa: B027 - optional hook, no-op by default
        """Give memory cached by this process's allocator back to the device (between cases)."""

    # --- the timed rounds of an evaluation: measured in the workers, decided in the supervisor ---------

    def series(
        self,
        fn: Callable[[], Any],
        repetitions: int,
        device: str,
        flush_cache: bool,
        lead_ms: float = 0.0,
        calibration: dict[str, Any] | None = None,
    ) -> dict[str, Any]:
        """One round's raw measurements of ``fn`` (JSON), to be turned into samples by `finish_rounds`."""
        return {"samples_ms": self.measure(fn, repetitions, device, flush_cache)}

    def timing_calibration(self, device: str, flush_cache: bool) -> dict[str, Any] | None:
        """Constants measured in the trusted reference worker that both sides' rounds are corrected with."""
        return None

    def lead_for(
        self, host_ms: float, flush_cache: bool, calibration: dict[str, Any] | None, call_ms: float = 0.0
    ) -> float:
        """How long (ms) the device should be kept busy before each timed call of this case (0: no lead)."""
        return 0.0

    def finish_rounds(
        self, rounds: Sequence[Any], calibration: dict[str, Any] | None, repetitions: int
    ) -> tuple[list[list[float]], list[str]]:
        """Per-round samples (ms) from the workers' raw rounds, and notes; runs in the supervisor.

        A round that is not a list of ``repetitions`` finite, non-negative numbers comes back empty
        (the caller treats that as a broken timer): a candidate's replies are not trusted to be well formed.
        """
        return [_finite_list(r.get("samples_ms") if isinstance(r, dict) else None, repetitions) for r in rounds], []

    def seed(self, seed: int) -> None:
        import torch

        torch.manual_seed(seed)

    def environment(self, device: str) -> dict[str, Any]:
        """Facts about the device and its software stack for the result's environment block."""
        return {"backend": self.name, "device": device, "simulated": self.simulated}
