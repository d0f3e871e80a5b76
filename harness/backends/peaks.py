"""The device's peaks (memory bandwidth, throughput per dtype class) for the speed of light.

From the datasheet table ``KNOWN_DEVICES`` for known accelerators, matched by the device name the
backend reports, and otherwise from a measurement on this machine: ``harness calibrate --peaks``
stores one per host and device (``store_measured``), and a CPU with none stored is measured once per
process (``cpu_peaks``: a STREAM-like copy and an fp32 matmul), since CPUs, their memory and the
share of them a machine gives a run vary too much for a table. The reference worker reports them in
its environment block; `harness.analysis.speed_of_light` judges times against them.
"""

from __future__ import annotations

import functools
import json
import os
import re
import socket
import time
from collections.abc import Iterable
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

DTYPE_CLASSES = ("fp64", "fp32", "tf32", "bf16", "fp8")  # bf16 stands for any 16-bit float (fp16 too)
DATASHEET_MARGIN = 2.0
MEASURED_MARGIN = 4.0  # harness calibrate --peaks
IN_PASSING_MARGIN = 10.0  # measured at the start of a run (cpu_peaks without a stored measurement)

_MIB = 1 << 20


@dataclass(frozen=True)
class DevicePeaks:
    """Peak memory bandwidth (GB/s, 1e9 bytes), dense peak TFLOP/s per dtype class, the cache the data
    may sit in, where the figures come from, and the floor check's safety margin for them."""

    name: str
    memory_gbps: float | None
    tflops: dict[str, float] = field(default_factory=dict)
    cache_bytes: int | None = None
    source: str = "datasheet"
    margin: float = DATASHEET_MARGIN
    measured: bool = False  # achieved by a copy and a matmul here, not a datasheet's limit

    def peak_tflops(self, dtype_class: str) -> float | None:
        """The class's peak; a 16-bit or TF32 class without its own figure has no peak here."""
        return self.tflops.get(dtype_class)

    def max_tflops(self) -> float | None:
        return max(self.tflops.values()) if self.tflops else None

    def to_json(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "memory_gbps": self.memory_gbps,
            "tflops": dict(self.tflops),
            "cache_bytes": self.cache_bytes,
            "source": self.source,
            "margin": self.margin,
            "measured": self.measured,
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> DevicePeaks:
        return cls(
            name=str(data["name"]),
            memory_gbps=data.get("memory_gbps"),
            tflops={str(k): float(v) for k, v in (data.get("tflops") or {}).items()},
            cache_bytes=data.get("cache_bytes"),
            source=str(data.get("source", "datasheet")),
            margin=float(data.get("margin", DATASHEET_MARGIN)),
            measured=bool(data.get("measured", False)),
        )


@dataclass(frozen=True)
class KnownDevice:
    """One row of the datasheet table: a pattern on the reported device name and its peaks."""

    pattern: re.Pattern[str]
    label: str
    memory_gbps: float
    tflops: dict[str, float]
    cache_bytes: int


def _row(pattern: str, label: str, gbps: float, cache_mib: int, **tflops: float) -> KnownDevice:
    return KnownDevice(re.compile(pattern, re.I), label, gbps, tflops, cache_mib * _MIB)


# Matched in order, so the more specific names come first. NVIDIA: the H100, H200, GH200 and A100
# datasheets, dense figures (the "with sparsity" ones halved), fp64 as the FP64 tensor-core figure;
# the A100 has no fp8. Ascend 910B: public figures for the 910B1-910B4 variants differ between
# sources (280-414 TFLOP/s fp16, 0.8-1.6 TB/s); the highest are used, so its floor errs low.
KNOWN_DEVICES: tuple[KnownDevice, ...] = (
    _row(r"GH200", "NVIDIA GH200", 4900, 50, fp64=67, fp32=67, tf32=494.7, bf16=989.4, fp8=1978.9),
    _row(r"H200 NVL", "NVIDIA H200 NVL", 4800, 50, fp64=60, fp32=60, tf32=417.5, bf16=835, fp8=1670.5),
    _row(r"H200", "NVIDIA H200 SXM 141GB", 4800, 50, fp64=67, fp32=67, tf32=494.7, bf16=989.4, fp8=1978.9),
    _row(r"H100 NVL", "NVIDIA H100 NVL 94GB", 3900, 50, fp64=60, fp32=60, tf32=417.5, bf16=835, fp8=1670.5),
    _row(r"H100.*PCIe", "NVIDIA H100 PCIe 80GB", 2000, 50, fp64=51.2, fp32=51.2, tf32=378, bf16=756, fp8=1513),
    _row(r"H100", "NVIDIA H100 SXM5 80GB", 3350, 50, fp64=67, fp32=67, tf32=494.7, bf16=989.4, fp8=1978.9),
    _row(r"A100.*80GB.*PCIe|A100.*PCIe.*80GB", "NVIDIA A100 PCIe 80GB", 1935, 40, fp64=19.5, fp32=19.5, tf32=156,
         bf16=312),
    _row(r"A100.*SXM.*80GB", "NVIDIA A100 SXM4 80GB", 2039, 40, fp64=19.5, fp32=19.5, tf32=156, bf16=312),
    _row(r"A100", "NVIDIA A100 40GB", 1555, 40, fp64=19.5, fp32=19.5, tf32=156, bf16=312),
    _row(r"Ascend\s*910B", "Huawei Ascend 910B", 1600, 192, fp32=94, bf16=414),
)  # fmt: skip


def known_peaks(device_name: str | None, cache_bytes: int | None = None) -> DevicePeaks | None:
    """Datasheet peaks of the device the backend reported (``environment()["device_name"]``), or None.

    ``cache_bytes``, when the backend reports it (the GPU's ``l2_cache_bytes``), replaces the table's.
    """
    if not device_name:
        return None
    for row in KNOWN_DEVICES:
        if row.pattern.search(device_name):
            return DevicePeaks(
                row.label, row.memory_gbps, dict(row.tflops), cache_bytes or row.cache_bytes, f"datasheet: {row.label}"
            )
    return None


def dtype_class(dtypes: Iterable[str]) -> str:
    """The dtype class of a case from its tensors' dtypes (``float32``, ``torch.bfloat16``...): the
    narrowest float among them, since that is what its main work may run at."""
    names = {str(d).removeprefix("torch.") for d in dtypes}
    if any(n.startswith("float8") for n in names):
        return "fp8"
    if names & {"bfloat16", "float16", "half"}:
        return "bf16"
    if names & {"float32", "float", "complex64"}:
        return "fp32"
    if names & {"float64", "double", "complex128"}:
        return "fp64"
    return "fp32"


# --- measured peaks ---------------------------------------------------------------------------------


def measure_peaks(
    device: str = "cpu", copy_bytes: int | None = None, matmul_n: int | None = None, repeats: int = 5
) -> DevicePeaks:
    """Peaks measured on ``device``: the best of ``repeats`` copies of ``copy_bytes`` (counted as read
    plus write, STREAM's convention; default 4x the CPU's last-level cache and at least 64 MiB, 1 GiB on
    an accelerator) or read-only sums of it, whichever streams faster, and of fp32 ``matmul_n``-cubed
    products (512 on a CPU; 8192 on an accelerator, with tf32 and bf16 too). Best-of, because the
    question is what the hardware can do, not what it did while shared. Imports torch; a few tenths
    of a second on a CPU."""
    import torch

    dev = torch.device(device)
    runtime = getattr(torch, dev.type, None) if dev.type != "cpu" else None
    cache = cpu_cache_bytes() if runtime is None else None
    copy_bytes = copy_bytes or (max(64 * _MIB, 4 * (cache or 0)) if runtime is None else 1024 * _MIB)
    matmul_n = matmul_n or (512 if runtime is None else 8192)

    def sync() -> None:
        if runtime is not None:
            runtime.synchronize(dev)

    def best(fn: Any) -> float:
        fn()
        sync()
        times = []
        for _ in range(repeats):
            start = time.perf_counter()
            fn()
            sync()
            times.append(time.perf_counter() - start)
        return min(times)

    buffers = [torch.ones(copy_bytes // 4, dtype=torch.float32, device=dev) for _ in range(2)]
    # The better of a copy (read + write) and a read-only sum: kernels that stream with fewer writes
    # (or stores that skip the read for ownership) beat the copy, and the peak must bound them too.
    copy = 2 * copy_bytes / best(lambda: buffers[1].copy_(buffers[0]))
    read = copy_bytes / best(lambda: buffers[0].sum())
    gbps = max(copy, read) / 1e9
    buffers.clear()
    tflops: dict[str, float] = {}
    classes = [("fp32", torch.float32, False)]
    if runtime is not None:
        classes += [("tf32", torch.float32, True), ("bf16", torch.bfloat16, False)]
    previous_tf32 = torch.backends.cuda.matmul.allow_tf32
    try:
        for name, dtype, tf32 in classes:
            torch.backends.cuda.matmul.allow_tf32 = tf32
            a = torch.randn(matmul_n, matmul_n, device=dev).to(dtype)
            b = torch.randn(matmul_n, matmul_n, device=dev).to(dtype)
            tflops[name] = 2 * matmul_n**3 / best(lambda a=a, b=b: torch.mm(a, b)) / 1e12
    finally:
        torch.backends.cuda.matmul.allow_tf32 = previous_tf32
    return DevicePeaks(
        name=_device_name(dev),
        memory_gbps=gbps,
        tflops=tflops,
        cache_bytes=cache,
        source=f"measured on {socket.gethostname()} at {time.strftime('%Y-%m-%dT%H:%M:%S')}",
        margin=MEASURED_MARGIN,
        measured=True,
    )


def cpu_model() -> str:
    """The CPU's name exactly as the CPU backend reports it (its ``device_name``): stored peaks are
    looked up by that name."""
    from harness.backends.cpu import _cpu_model

    return _cpu_model()


def _device_name(dev: Any) -> str:
    import torch

    if dev.type == "cpu":
        return cpu_model()
    runtime = getattr(torch, dev.type)
    return str(runtime.get_device_name(dev))


def cpu_cache_bytes(root: Path = Path("/sys/devices/system/cpu/cpu0/cache")) -> int | None:
    """Size of the CPU's largest cache level (its last-level cache), from sysfs; None when unknown."""
    sizes = []
    for index in root.glob("index*"):
        try:
            text = (index / "size").read_text().strip().upper()
        except OSError:
            continue
        match = re.fullmatch(r"(\d+)([KMG]?)", text)
        if match:
            sizes.append(int(match.group(1)) * {"": 1, "K": 1 << 10, "M": 1 << 20, "G": 1 << 30}[match.group(2)])
    return max(sizes) if sizes else None


@functools.cache
def cpu_peaks() -> DevicePeaks:
    """This machine's CPU peaks: stored by ``harness calibrate --peaks``, else measured once per process."""
    stored = load_measured(cpu_model())
    if stored is not None:
        return stored
    peaks = measure_peaks("cpu", repeats=3)
    return replace(peaks, source=peaks.source + " (in passing)", margin=IN_PASSING_MARGIN)


def peaks_file() -> Path:
    """Where measured peaks are kept: $HARNESS_PEAKS_FILE, else ~/.cache/kernel-harness/peaks.json."""
    env = os.environ.get("HARNESS_PEAKS_FILE")
    return Path(env) if env else Path.home() / ".cache" / "kernel-harness" / "peaks.json"


def _key(device_name: str) -> str:
    return f"{socket.gethostname()}|{device_name}"


def store_measured(peaks: DevicePeaks, path: Path | None = None) -> Path:
    """Keep ``peaks`` for this host and device (replacing an earlier measurement); returns the file."""
    path = path or peaks_file()
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError):
        data = {}
    data[_key(peaks.name)] = peaks.to_json()
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(data, indent=1, sort_keys=True))
    tmp.replace(path)
    return path


def load_measured(device_name: str, path: Path | None = None) -> DevicePeaks | None:
    """Peaks stored for this host and device, or None."""
    try:
        data = json.loads((path or peaks_file()).read_text())
        return DevicePeaks.from_json(data[_key(device_name)])
    except (OSError, ValueError, KeyError, TypeError):
        return None


def peaks_for(environment: dict[str, Any], path: Path | None = None) -> DevicePeaks | None:
    """The peaks for a device's environment block (``Backend.environment``): the datasheet for a known
    accelerator, else a measurement stored for this host and device, else (CPU) one taken now."""
    name = environment.get("device_name")
    cache = environment.get("l2_cache_bytes")
    known = known_peaks(name, int(cache) if isinstance(cache, int) and cache > 0 else None)
    if known is not None:
        return known
    if name:
        stored = load_measured(str(name), path)
        if stored is not None:
            return stored
    if environment.get("backend") == "cpu" and not environment.get("simulated"):
        return cpu_peaks()
    return None


