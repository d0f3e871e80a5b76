"""Speed of light: achieved bandwidth and throughput against the device's peaks, and the physical floor.

From a case's FLOPs and bytes moved (the manifest's traffic floor: every input and parameter read
once, every output written once) and a measured time, this module gives the achieved GB/s and
TFLOP/s, their fractions of the device's peak, and the shortest time the hardware allows. A time
below that floor is not a fast kernel but a broken measurement (a forged or misread timer), and
fails with "faster than the hardware allows" (``too_fast``).

Peaks (``DevicePeaks``) come from `harness.backends.peaks`.

The floor (docs/measurement.md, "Speed of light") is conservative by construction, because a false
"faster than the hardware allows" would fail an honest kernel:

- bandwidth: only the bytes that cannot sit in the last-level cache count,
  ``max(0, bytes - cache_bytes) / peak_bandwidth``: with a warm cache (the CPU's default) or outputs
  held in a write-back L2, up to the cache's size of the traffic may never reach DRAM;
- compute: ``flops / the highest peak of any dtype class`` (a float32 case may legally run on TF32
  or bf16 tensor cores when its tolerance allows);
- a margin: the candidate fails only below ``floor / margin``. Datasheet peaks are upper bounds
  already (real kernels reach 80-93 % of them), so 2x covers timer error on short kernels and
  traffic the manifest over-counts. Measured peaks are what a copy or a matmul *achieved*, not the
  limit (a read-only kernel beats a copy's bandwidth by up to 1.5x): 4x when measured on purpose
  (``harness calibrate --peaks``, on a quiet machine), 10x when measured in passing at the start of
  a run, where other work on a shared machine made a copy 3x slower in our tests;
- measured peaks are raised to what the trusted reference achieved in the same run (the hardware
  demonstrably allows that much), so a measurement taken while the machine was busy cannot make an
  honest candidate look impossible;
- datasheet peaks are not raised: if the case's own reference is "faster than the hardware", the
  case's bytes or FLOPs overstate its work and the check is skipped (with a note).
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from harness.backends.peaks import DevicePeaks, measure_peaks

TOO_FAST = "faster than the hardware allows"

# --- one case ---------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Achieved:
    """What one side's median time means in bandwidth and throughput, and as fractions of the peaks."""

    time_ms: float
    gbps: float | None
    tflops: float | None
    bandwidth_fraction: float | None
    throughput_fraction: float | None

    def to_json(self) -> dict[str, Any]:
        return dict(self.__dict__)

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Achieved:
        return cls(
            float(data["time_ms"]),
            data.get("gbps"),
            data.get("tflops"),
            data.get("bandwidth_fraction"),
            data.get("throughput_fraction"),
        )


@dataclass(frozen=True)
class SpeedOfLight:
    """Speed-of-light figures of one case result (schema: case_result.speed_of_light)."""

    dtype_class: str
    flops: int | None
    bytes_moved: int | None
    peaks: DevicePeaks
    floor_ms: float | None  # the hardware's shortest time for this work; None when nothing is known
    bound: str | None  # "memory" or "compute": which floor is the larger (the roofline's side)
    candidate: Achieved | None = None
    reference: Achieved | None = None
    floor_applied: bool = False  # whether too_fast() judges the candidate against floor_ms / margin
    note: str | None = None

    def to_json(self) -> dict[str, Any]:
        return {
            "dtype_class": self.dtype_class,
            "flops": self.flops,
            "bytes_moved": self.bytes_moved,
            "peaks": self.peaks.to_json(),
            "floor_ms": self.floor_ms,
            "bound": self.bound,
            "candidate": self.candidate.to_json() if self.candidate else None,
            "reference": self.reference.to_json() if self.reference else None,
            "floor_applied": self.floor_applied,
            "note": self.note,
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> SpeedOfLight:
        return cls(
            dtype_class=str(data["dtype_class"]),
            flops=data.get("flops"),
            bytes_moved=data.get("bytes_moved"),
            peaks=DevicePeaks.from_json(data["peaks"]),
            floor_ms=data.get("floor_ms"),
            bound=data.get("bound"),
            candidate=Achieved.from_json(data["candidate"]) if data.get("candidate") else None,
            reference=Achieved.from_json(data["reference"]) if data.get("reference") else None,
            floor_applied=bool(data.get("floor_applied", False)),
            note=data.get("note"),
        )


def _finite_positive(value: float | None) -> bool:
    return value is not None and math.isfinite(value) and value > 0


def achieved(flops: int | None, bytes_moved: int | None, dtype: str, peaks: DevicePeaks, time_ms: float) -> Achieved:
    """GB/s and TFLOP/s of work done in ``time_ms``, and their fractions of ``peaks``."""
    seconds = time_ms / 1e3
    gbps = bytes_moved / seconds / 1e9 if bytes_moved and seconds > 0 else None
    tflops = flops / seconds / 1e12 if flops and seconds > 0 else None
    peak_tflops = peaks.peak_tflops(dtype)
    return Achieved(time_ms, gbps, tflops, _fraction(gbps, peaks.memory_gbps), _fraction(tflops, peak_tflops))


def _fraction(value: float | None, peak: float | None) -> float | None:
    return value / peak if value is not None and peak is not None and _finite_positive(peak) else None


def floor_ms(flops: int | None, bytes_moved: int | None, peaks: DevicePeaks) -> tuple[float | None, str | None]:
    """(the shortest time the hardware allows, which side bounds it), before the margin (module docstring)."""
    memory = compute = None
    if bytes_moved and _finite_positive(peaks.memory_gbps):
        assert peaks.memory_gbps is not None
        beyond_cache = max(0, bytes_moved - (peaks.cache_bytes or 0))
        memory = beyond_cache / (peaks.memory_gbps * 1e9) * 1e3
    top = peaks.max_tflops()
    if flops and _finite_positive(top):
        assert top is not None
        compute = flops / (top * 1e12) * 1e3
    if memory is None and compute is None:
        return None, None
    if compute is None or (memory is not None and memory >= compute):
        return memory, "memory"
    return compute, "compute"


def assess(
    flops: int | None,
    bytes_moved: int | None,
    dtype: str,
    peaks: DevicePeaks,
    candidate_ms: float | None,
    reference_ms: float | None,
) -> SpeedOfLight:
    """Speed-of-light figures for one case; ``too_fast`` on the result says whether the candidate fails."""
    note = None
    if peaks.measured and _finite_positive(reference_ms):
        assert reference_ms is not None
        peaks, note = _raised_to(peaks, flops, bytes_moved, dtype, reference_ms)
    floor, bound = floor_ms(flops, bytes_moved, peaks)
    side = lambda ms: achieved(flops, bytes_moved, dtype, peaks, ms) if _finite_positive(ms) else None  # noqa: E731
    applied = bool(floor) and _finite_positive(candidate_ms)
    if floor == 0.0:
        note = "all the data fits in the cache: no bandwidth floor"
    elif applied and _finite_positive(reference_ms) and reference_ms < floor / peaks.margin:  # type: ignore[operator]
        applied = False
        note = (
            f"the reference itself ran below the floor ({reference_ms:.4g} ms < {floor:.4g} ms / {peaks.margin:g}): "
            "the case's bytes or FLOPs overstate its work, so the floor is not applied"
        )
    return SpeedOfLight(
        dtype, flops, bytes_moved, peaks, floor, bound, side(candidate_ms), side(reference_ms), applied, note
    )


def _raised_to(
    peaks: DevicePeaks, flops: int | None, bytes_moved: int | None, dtype: str, reference_ms: float
) -> tuple[DevicePeaks, str | None]:
    """Measured peaks raised to what the reference achieved (beyond the cache), and a note when they were."""
    seconds = reference_ms / 1e3
    memory, tflops = peaks.memory_gbps, dict(peaks.tflops)
    raised = []
    if bytes_moved:
        shown = max(0, bytes_moved - (peaks.cache_bytes or 0)) / seconds / 1e9
        if memory is None or shown > memory:
            memory = shown
            raised.append("bandwidth")
    if flops:
        shown = flops / seconds / 1e12
        if shown > (peaks.max_tflops() or 0.0):
            tflops[dtype] = shown
            raised.append("throughput")
    if not raised:
        return peaks, None
    note = f"measured {' and '.join(raised)} raised to what the reference achieved in this run"
    return replace(peaks, memory_gbps=memory, tflops=tflops), note


def too_fast(sol: SpeedOfLight) -> str | None:
    """The failure reason when the candidate's time is below the floor by more than the margin, else None."""
    if not sol.floor_applied or sol.floor_ms is None or sol.candidate is None:
        return None
    limit = sol.floor_ms / sol.peaks.margin
    if sol.candidate.time_ms >= limit:
        return None
    what = (
        f"{sol.bytes_moved} bytes, less a {sol.peaks.cache_bytes or 0}-byte cache, at {sol.peaks.memory_gbps:g} GB/s"
        if sol.bound == "memory"
        else f"{sol.flops} FLOPs at {sol.peaks.max_tflops():g} TFLOP/s"
    )
    return (
        f"{TOO_FAST}: {sol.candidate.time_ms:.4g} ms is below the floor of {sol.floor_ms:.4g} ms ({what}; "
        f"{sol.peaks.source}) divided by the safety margin {sol.peaks.margin:g}"
    )


def peak_fraction(sol: dict[str, Any] | None, side: str = "candidate") -> float | None:
    """The fraction of peak that bounds ``side`` of a ``speed_of_light`` JSON block: bandwidth for a
    memory-bound case, throughput for a compute-bound one (the roofline's side); None when unknown."""
    achieved_side = (sol or {}).get(side) or {}
    first, second = ("bandwidth_fraction", "throughput_fraction")
    if (sol or {}).get("bound") == "compute":
        first, second = second, first
    value = achieved_side.get(first)
    return value if value is not None else achieved_side.get(second)


def describe(sol: dict[str, Any]) -> str:
    """One line for people: the candidate's GB/s and TFLOP/s with their fractions, the floor and its source."""
    peaks = sol["peaks"]
    cand = sol.get("candidate") or {}
    parts = []
    if cand.get("gbps") is not None:
        frac = cand.get("bandwidth_fraction")
        parts.append(f"{cand['gbps']:.4g} GB/s" + (f" ({frac:.0%} of {peaks['memory_gbps']:.4g})" if frac else ""))
    if cand.get("tflops") is not None:
        frac = cand.get("throughput_fraction")
        parts.append(f"{cand['tflops']:.4g} TFLOP/s" + (f" ({frac:.0%} of {sol['dtype_class']} peak)" if frac else ""))
    floor = sol.get("floor_ms")
    if floor is not None:
        applied = "" if sol.get("floor_applied") else ", not applied"
        parts.append(f"floor {floor:.4g} ms ({sol.get('bound') or '-'}-bound{applied})")
    text = "; ".join(parts) or "no FLOPs or bytes known"
    return f"{text} [{peaks['source']}]" + (f"; {sol['note']}" if sol.get("note") else "")


def main(argv: list[str]) -> int:
    """``python -m harness.analysis.speed_of_light measure DEVICE OUT.json``: measure peaks in this process."""
    if len(argv) != 3 or argv[0] != "measure":
        print("usage: python -m harness.analysis.speed_of_light measure DEVICE OUT.json")
        return 2
    device = argv[1]
    if device.startswith("npu"):
        import torch_npu  # noqa: F401 - registers the npu device type
    Path(argv[2]).write_text(json.dumps(measure_peaks(device).to_json()))
    return 0


if __name__ == "__main__":
    import sys

    sys.exit(main(sys.argv[1:]))
