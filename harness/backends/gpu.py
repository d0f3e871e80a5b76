"""CUDA backend: CUDA events around each call, L2 flush between calls, work on every stream included.

How one timed call is measured (docs/measurement.md has the study behind each choice):

1. A *lead* keeps the GPU busy while the host queues the call: the L2 flush (zeroing a 256 MiB
   buffer, ~60-90 us) or, with ``--warm-cache``, a clock spin that touches no memory, padded with a
   spin so that the lead outlasts the time the reference's host code takes to queue one call. The
   start event, the call's kernels and the end event are then queued before the GPU reaches them,
   so neither side's host speed (which differs between processes and CPU cores) leaks into a
   sample. Both sides get the same lead, sized from the trusted reference: host work a candidate
   does beyond it shows up in its samples as time the GPU waited.
2. Start and end events are recorded on the calling stream around the call; their difference, less
   the events' own cost, is the sample. The cost and every other correction constant are measured
   in the reference worker and applied by the supervisor to both sides alike: a candidate cannot
   skew its own correction (a busy thread during its own calibration once made it read 2x fast).
3. Work the call left running on *other* streams is caught after the fact: the host polls the end
   event until it has completed, then synchronizes the whole device and records a *join* event.
   With nothing pending elsewhere, join − end is the host's short turnaround; a call whose join −
   end exceeds the reference's idle turnaround by more than a margin (at least 0.1 ms) is late.
   When at least a fifth of the whole timed series (all rounds together, at least two calls) is
   late, the late calls are timed up to the join event (an upper bound that includes the other
   streams' work and the turnaround) and the result carries a warning. Host jitter makes a few
   isolated calls late, never a fifth of a series; a pattern below a fifth cannot move the median
   by more than its share of the distribution.
"""

from __future__ import annotations

import os
import statistics
from collections.abc import Callable, Sequence
from typing import Any

from harness.backends.base import Backend, _finite_list

# Zeroing a buffer larger than any current L2 (H100: 50 MB, H200: 60 MB, B200: 126 MB) evicts it.
_FLUSH_BYTES = 256 * 1024 * 1024
# Warm-cache lead: GPU clock cycles to spin before each timed call (~100 us at 2 GHz).
_SPIN_CYCLES = 200_000
# Empty calls used to learn the events' cost and the idle turnaround (join − end).
_IDLE_PROBES = 40
# Minimum margin above the idle turnaround before a call counts as having unjoined work. On an H100
# the turnaround after honest calls had medians of 13-38 us and 90th percentiles up to 55 us,
# depending on the workload (studies/gpu_timing_study.py); on an H200 up to 100 us at the 99th
# percentile (studies/gpu_diagnostics.py), so the margin sits well above that spread.
_MIN_MARGIN_MS = 0.100
# ... and at most this: a slow probe among the empty calls must not widen the margin past hidden work.
_MAX_MARGIN_MS = 0.300
# A pattern, not jitter: this share of a whole series (and at least two calls) must be late.
_LATE_SHARE = 0.20
# The lead outlasts the reference's host time per call (90th percentile) by this factor and margin.
_LEAD_FACTOR = 1.5
_LEAD_MARGIN_MS = 0.030
_MAX_LEAD_MS = 2.0
_MAX_LEAD_SHARE = 0.25


class EventTimedBackend(Backend):
    """Shared by the CUDA and Ascend backends: device events, lead kernel, side-stream detection."""

    flush_cache_by_default = True
    pin_workers = True
    needs_baseline = True
    # Most device events one series may hold at once (three per timed call); None: one set of events
    # per call. A backend whose device has few events sets it: the series is then timed in chunks
    # that reuse the same events, read back after each chunk.
    max_events_per_series: int | None = None

    def __init__(self) -> None:
        self._flush_buffers: dict[str, Any] = {}
        # (device, flush_cache) -> calibration dict (see `timing_calibration`)
        self._calibration: dict[tuple[str, bool], dict[str, Any]] = {}
        self._notes: list[str] = []
        self.last_measure: dict[str, Any] = {}

    # --- what a runtime must provide ------------------------------------------------------------

    def runtime(self) -> Any:
        """The torch device module (``torch.cuda``, ``torch.npu``)."""
        raise NotImplementedError

    def spin(self, device: str, cycles: int = _SPIN_CYCLES) -> None:
        """Keep the device busy for ``cycles`` clock cycles without touching memory; may do nothing."""

    def can_spin(self) -> bool:
        return type(self).spin is not EventTimedBackend.spin

    # --- shared machinery -------------------------------------------------------------------------

    def synchronize(self, device: str) -> None:
        self.runtime().synchronize(device)

    def flush_bytes(self) -> int:
        """Size of the buffer zeroed to evict the cache (larger than any current L2)."""
        return _FLUSH_BYTES

    def flush(self, device: str) -> None:
        import torch

        buf = self._flush_buffers.get(device)
        if buf is None:
            buf = torch.empty(self.flush_bytes() // 4, dtype=torch.int32, device=device)
            self._flush_buffers[device] = buf
        buf.zero_()

    def _lead(self, device: str, flush_cache: bool, pad_cycles: int = 0) -> None:
        if flush_cache:
            self.flush(device)
        else:
            self.spin(device)
        if pad_cycles > 0:
            self.spin(device, pad_cycles)

    def _raw(
        self, fn: Callable[[], Any], repetitions: int, device: str, flush_cache: bool, pad_cycles: int = 0
    ) -> list[tuple[float, float]]:
        """(end − start, join − start) in ms for each call."""
        rt = self.runtime()
        stream = rt.current_stream(device)
        chunk = repetitions if self.max_events_per_series is None else max(1, self.max_events_per_series // 3)
        events = [
            (rt.Event(enable_timing=True), rt.Event(enable_timing=True), rt.Event(enable_timing=True))
            for _ in range(min(chunk, repetitions))
        ]
        raw: list[tuple[float, float]] = []
        while len(raw) < repetitions:
            batch = events[: repetitions - len(raw)]
            for start, end, join in batch:
                self._lead(device, flush_cache, pad_cycles)
                start.record(stream)
                fn()
                end.record(stream)
                # Poll rather than block: the synchronize below then only waits for other streams, and
                # the host is awake when it returns, so join − end stays short and steady.
                while not end.query():
                    pass
                rt.synchronize(device)  # device-wide: also streams the call created itself
                join.record(stream)
            rt.synchronize(device)  # every event of the batch has completed: read them, then reuse them
            raw += [(float(s.elapsed_time(e)), float(s.elapsed_time(j))) for s, e, j in batch]
        return raw

    def _timed_ms(self, work: Callable[[], Any], device: str, times: int) -> float:
        """Median device time of ``work`` (a lead-like kernel) on the calling stream."""
        rt = self.runtime()
        stream = rt.current_stream(device)
        pairs = [(rt.Event(enable_timing=True), rt.Event(enable_timing=True)) for _ in range(times)]
        for start, end in pairs:
            start.record(stream)
            work()
            end.record(stream)
        rt.synchronize(device)
        return statistics.median(float(s.elapsed_time(e)) for s, e in pairs)

    def calibration(self, device: str, flush_cache: bool) -> tuple[float, float, float]:
        """(idle turnaround, margin, event cost) in ms, from empty calls; measured once per mode."""
        cal = self.timing_calibration(device, flush_cache)
        return cal["idle_ms"], cal["margin_ms"], cal["event_cost_ms"]

    def timing_calibration(self, device: str, flush_cache: bool) -> dict[str, Any]:
        """This process's timing constants for ``device`` and cache mode (measured once, then kept).

        In the reference worker these are the constants both sides are corrected with: the idle
        turnaround and side-stream margin, the events' own cost, how long the plain lead takes, and
        how many spin cycles make a millisecond (to pad the lead).
        """
        key = (device, flush_cache)
        if key not in self._calibration:
            self._raw(lambda: None, 5, device, flush_cache)  # first use: allocations, event pool
            raw = self._raw(lambda: None, _IDLE_PROBES, device, flush_cache)
            gaps = sorted(j - e for e, j in raw)
            idle = statistics.median(gaps)
            p90 = gaps[int(0.9 * (len(gaps) - 1))]
            spin_rate = None
            if self.can_spin():
                spin_ms = self._timed_ms(lambda: self.spin(device), device, 5)
                spin_rate = _SPIN_CYCLES / spin_ms if spin_ms > 0 else None
            base = self._timed_ms(lambda: self._lead(device, flush_cache), device, 5)
            self._calibration[key] = {
                "idle_ms": idle,
                "margin_ms": min(_MAX_MARGIN_MS, max(_MIN_MARGIN_MS, 4.0 * (p90 - idle))),
                # A kernel between the events adds two event-to-work transitions where an empty call has one.
                "event_cost_ms": 2.0 * statistics.median(e for e, _ in raw),
                "lead_base_ms": base,
                "spin_cycles_per_ms": spin_rate,
            }
        return dict(self._calibration[key])

    def lead_for(
        self, host_ms: float, flush_cache: bool, calibration: dict[str, Any] | None, call_ms: float = 0.0
    ) -> float:
        """A lead that outlasts the reference's host time per call, never shorter than the plain lead.

        Capped at a quarter of the reference's call (and 2 ms): host work a call does inside the lead
        is not seen by the events, so the lead must stay short next to the work being timed.
        ``HARNESS_GPU_LEAD=flush`` keeps the plain lead (to compare the two).
        """
        base = float((calibration or {}).get("lead_base_ms") or 0.0)
        if not (calibration or {}).get("spin_cycles_per_ms") or os.environ.get("HARNESS_GPU_LEAD") == "flush":
            return base
        cap = min(_MAX_LEAD_MS, _MAX_LEAD_SHARE * call_ms) if call_ms > 0 else _MAX_LEAD_MS
        return max(base, min(_LEAD_FACTOR * max(0.0, host_ms) + _LEAD_MARGIN_MS, cap))

    def _pad_cycles(self, lead_ms: float, calibration: dict[str, Any] | None) -> int:
        if not calibration:
            return 0
        rate = calibration.get("spin_cycles_per_ms")
        extra = lead_ms - float(calibration.get("lead_base_ms") or 0.0)
        if not rate or extra <= 0:
            return 0
        return int(extra * float(rate))

    def idle_latency(self, device: str) -> tuple[float, float]:
        """(median, margin) in ms of join − end for an empty call (flush lead)."""
        idle, margin, _ = self.calibration(device, True)
        return idle, margin

    def measure(self, fn: Callable[[], Any], repetitions: int, device: str, flush_cache: bool) -> list[float]:
        """Samples of one self-contained series, corrected with this process's own calibration.

        For estimates and studies; an evaluation's rounds go through `series` and `finish_rounds`.
        """
        cal = self.timing_calibration(device, flush_cache)
        raw = self._raw(fn, repetitions, device, flush_cache)
        (samples,), notes = self._decide([raw], cal)
        self._notes += notes
        return samples

    def series(
        self,
        fn: Callable[[], Any],
        repetitions: int,
        device: str,
        flush_cache: bool,
        lead_ms: float = 0.0,
        calibration: dict[str, Any] | None = None,
    ) -> dict[str, Any]:
        raw = self._raw(fn, repetitions, device, flush_cache, self._pad_cycles(lead_ms, calibration))
        return {"event_ms": [e for e, _ in raw], "join_ms": [j for _, j in raw]}

    def finish_rounds(
        self, rounds: Sequence[Any], calibration: dict[str, Any] | None, repetitions: int
    ) -> tuple[list[list[float]], list[str]]:
        cal = calibration or {}
        raws: list[list[tuple[float, float]]] = []
        for r in rounds:
            events = _finite_list(r.get("event_ms") if isinstance(r, dict) else None, repetitions)
            joins = _finite_list(r.get("join_ms") if isinstance(r, dict) else None, repetitions)
            raws.append(list(zip(events, joins, strict=True)) if events and joins else [])
        if any(not raw for raw in raws) or not all(k in cal for k in ("idle_ms", "margin_ms", "event_cost_ms")):
            return [[] for _ in raws], []
        return self._decide(raws, cal)

    def _decide(
        self, raws: list[list[tuple[float, float]]], cal: dict[str, Any]
    ) -> tuple[list[list[float]], list[str]]:
        """Samples per round from (event, join) pairs: the side-stream decision over the whole series."""
        idle, margin, cost = float(cal["idle_ms"]), float(cal["margin_ms"]), float(cal["event_cost_ms"])
        total = sum(len(raw) for raw in raws)
        late = [[j - e > idle + margin for e, j in raw] for raw in raws]
        count = sum(map(sum, late))
        pattern = count >= max(2, _LATE_SHARE * total)
        samples = [
            [j if (pattern and is_late) else max(e - cost, 0.5 * e) for (e, j), is_late in zip(raw, flags, strict=True)]
            for raw, flags in zip(raws, late, strict=True)
        ]
        self.last_measure = {
            "samples": total, "late_samples": count, "side_stream": pattern,
            "idle_ms": idle, "margin_ms": margin, "event_cost_ms": cost,
        }  # fmt: skip
        notes = []
        if pattern:
            notes.append(
                f"side-stream work: {count} of {total} timed calls left work running on another stream "
                f"after the calling stream finished; those calls were timed up to a device-wide "
                f"synchronize (upper bound, includes ~{idle * 1000:.0f} us of host turnaround)"
            )
        return samples, notes

    def timing_notes(self) -> list[str]:
        notes, self._notes = self._notes, []
        return notes

    def release_memory(self, device: str) -> None:
        self.synchronize(device)
        empty_cache = getattr(self.runtime(), "empty_cache", None)  # torch.cuda / torch.npu
        if callable(empty_cache):
            empty_cache()

    def _measured_timing_facts(self, device: str) -> dict[str, Any]:
        """Timing facts with this process's calibration for the default cache mode filled in."""
        self.timing_calibration(device, self.flush_cache_by_default)
        return self.timing_facts(device)

    def timing_facts(self, device: str) -> dict[str, Any]:
        facts: dict[str, Any] = {
            "method": "device events on the calling stream after a lead that outlasts the reference's host "
            "time per call, less the events' own cost; per call a device-wide synchronize after the end "
            "event detects unjoined work on other streams; correction constants from the reference worker",
            "flush_bytes": self.flush_bytes(),
            "warm_cache_lead": "clock spin" if self.can_spin() else None,
            "timing_defaults": dict(self.timing_overrides),  # applied where the run kept the generic default
        }
        if self.max_events_per_series is not None:
            facts["max_events_per_series"] = self.max_events_per_series
        for (dev, flush), cal in self._calibration.items():
            if dev == device:
                mode = "flush" if flush else "warm"
                facts[f"{mode}_idle_turnaround_ms"] = cal["idle_ms"]
                facts[f"{mode}_side_stream_margin_ms"] = cal["margin_ms"]
                facts[f"{mode}_event_cost_ms"] = cal["event_cost_ms"]
                facts[f"{mode}_lead_base_ms"] = cal["lead_base_ms"]
                if cal.get("spin_cycles_per_ms"):
                    facts["spin_cycles_per_ms"] = cal["spin_cycles_per_ms"]
        return facts


class GpuBackend(EventTimedBackend):
    name = "gpu"
    device_type = "cuda"
    default_dsl = "triton_cuda"
    flush_cache_by_default = True
    timing_overrides = {"max_repetitions": 5000, "warmup_ms": 50.0, "min_warmup": 3}

    def runtime(self) -> Any:
        import torch

        return torch.cuda

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

    staging = "cuda"

    def spin(self, device: str, cycles: int = _SPIN_CYCLES) -> None:
        import torch

        torch.cuda._sleep(int(cycles))

    def environment(self, device: str) -> dict[str, Any]:
        import torch

        env = super().environment(device)
        props = torch.cuda.get_device_properties(torch.device(device))
        env.update(
            device_name=props.name,
            compute_capability=f"{props.major}.{props.minor}",
            multiprocessors=props.multi_processor_count,
            memory_bytes=props.total_memory,
            l2_cache_bytes=getattr(props, "L2_cache_size", None),
            cuda=torch.version.cuda,
            driver=_driver_version(),
            cuda_visible_devices=os.environ.get("CUDA_VISIBLE_DEVICES"),
            timing=self._measured_timing_facts(device),
        )
        return env


def _driver_version() -> str | None:
    try:
        import pynvml

        pynvml.nvmlInit()
        version = pynvml.nvmlSystemGetDriverVersion()
        return version.decode() if isinstance(version, bytes) else str(version)
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
