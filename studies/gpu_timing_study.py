"""Timing micro-study on a CUDA GPU: candidate timing methods against the profiler's kernel durations.

Run on the device: ``python3 studies/gpu_timing_study.py OUT.json``. For each workload it records
the harness's method (events on the calling stream + per-call join check, flush and warm lead), the
previous method (device-wide synchronize before the end event), the simple method (3 x 100
back-to-back, warm), triton's do_bench (median), the profiler's per-call kernel time (flush and warm)
and an in-process A/A (two instances alternating in rounds). It also records the idle join latency,
a candidate that hides work on a side stream, and one that joins its side stream properly.
docs/measurement.md quotes the results.
"""

from __future__ import annotations

import json
import platform
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from typing import Any

import torch

from harness.backends.gpu import BACKEND
from harness.calibration.study import _Device, do_bench_median, profile_calls, simple_method

DEV = "cuda:0"


def pct(values: list[float], q: float) -> float:
    data = sorted(values)
    return data[min(len(data) - 1, int(q * (len(data) - 1) + 0.5))]


def old_method(fn: Callable[[], Any], n: int) -> list[float]:
    """The harness's previous protocol: flush, start, call, device synchronize, end."""
    starts = [torch.cuda.Event(enable_timing=True) for _ in range(n)]
    ends = [torch.cuda.Event(enable_timing=True) for _ in range(n)]
    for i in range(n):
        BACKEND.flush(DEV)
        starts[i].record()
        fn()
        torch.cuda.synchronize()
        ends[i].record()
    torch.cuda.synchronize()
    return [s.elapsed_time(e) for s, e in zip(starts, ends, strict=True)]


def aa_rounds(fa: Callable[[], Any], fb: Callable[[], Any], rounds: int, per_round: int) -> dict[str, float]:
    a: list[float] = []
    b: list[float] = []
    ra, rb = [], []
    for _ in range(rounds):
        sa = BACKEND.measure(fa, per_round, DEV, True)
        sb = BACKEND.measure(fb, per_round, DEV, True)
        a += sa
        b += sb
        ra.append(statistics.median(sa))
        rb.append(statistics.median(sb))
    return {
        "ratio_of_medians": statistics.median(a) / statistics.median(b),
        "ratio_of_round_medians": statistics.median(ra) / statistics.median(rb),
        "cv_a": statistics.stdev(a) / statistics.mean(a),
        "n": len(a),
    }


def workloads() -> dict[str, Callable[[], tuple[Callable[[], Any], Callable[[], Any]]]]:
    def mul(n: int) -> Callable[[], tuple[Callable[[], Any], Callable[[], Any]]]:
        def make() -> tuple[Callable[[], Any], Callable[[], Any]]:
            xa, xb = torch.randn(n, device=DEV), torch.randn(n, device=DEV)
            return (lambda: xa * 2.0), (lambda: xb * 2.0)

        return make

    def softmax() -> tuple[Callable[[], Any], Callable[[], Any]]:
        xa, xb = torch.randn(8192, 8192, device=DEV), torch.randn(8192, 8192, device=DEV)
        return (lambda: torch.softmax(xa, -1)), (lambda: torch.softmax(xb, -1))

    def matmul_bf16() -> tuple[Callable[[], Any], Callable[[], Any]]:
        a = [torch.randn(4096, 4096, device=DEV, dtype=torch.bfloat16) for _ in range(4)]
        return (lambda: a[0] @ a[1]), (lambda: a[2] @ a[3])

    def mlp() -> tuple[Callable[[], Any], Callable[[], Any]]:
        torch.manual_seed(0)
        ma = torch.nn.Sequential(
            torch.nn.Linear(1024, 4096), torch.nn.GELU(), torch.nn.Linear(4096, 1024)
        ).to(DEV)
        torch.manual_seed(0)
        mb = torch.nn.Sequential(
            torch.nn.Linear(1024, 4096), torch.nn.GELU(), torch.nn.Linear(4096, 1024)
        ).to(DEV)
        xa, xb = torch.randn(512, 1024, device=DEV), torch.randn(512, 1024, device=DEV)

        def fa() -> Any:
            with torch.no_grad():
                return ma(xa)

        def fb() -> Any:
            with torch.no_grad():
                return mb(xb)

        return fa, fb

    found: dict[str, Callable[[], tuple[Callable[[], Any], Callable[[], Any]]]] = {
        f"mul_2^{k}": mul(1 << k) for k in (18, 20, 22, 23, 24, 26, 28)
    }
    found.update(softmax_8192=softmax, matmul_bf16_4096=matmul_bf16, mlp_512x1024x4096=mlp)
    return found


def side_stream(joined: bool) -> Callable[[], Any]:
    side = torch.cuda.Stream()
    x = torch.randn(1 << 22, device=DEV)
    a = torch.randn(2048, 2048, device=DEV)

    def call() -> Any:
        out = x * 2.0  # ~10 us on the calling stream
        side.wait_stream(torch.cuda.current_stream())
        with torch.cuda.stream(side):
            hidden = a @ a  # ~0.2 ms on the side stream
            hidden = hidden @ a
        if joined:
            torch.cuda.current_stream().wait_stream(side)
        return out

    return call


def main(out_path: str) -> None:
    t0 = time.time()
    BACKEND.prepare_process(DEV)
    dev = _Device("gpu", DEV)
    report: dict[str, Any] = {"env": BACKEND.environment(DEV)}
    report["env"].update(torch=torch.__version__, python=platform.python_version())
    try:
        import triton

        report["env"]["triton"] = triton.__version__
    except ImportError:
        pass
    try:
        report["nvidia_smi"] = subprocess.run(
            [
                "nvidia-smi",
                "--query-gpu=name,driver_version,clocks.sm,clocks.max.sm,clocks.mem,power.draw,temperature.gpu",
                "--format=csv",
            ],
            capture_output=True,
            text=True,
            timeout=30,
        ).stdout
    except Exception as exc:  # noqa: BLE001
        report["nvidia_smi"] = str(exc)
    idle, margin = BACKEND.idle_latency(DEV)
    KEYS = ("idle_turnaround_ms", "margin_ms", "event_cost_ms")
    report["calibration"] = {
        mode: dict(zip(KEYS, BACKEND.calibration(DEV, flush), strict=True))
        for mode, flush in (("flush", True), ("warm", False))
    }
    gaps = [j - e for e, j in BACKEND._raw(lambda: None, 300, DEV, True)]
    report["idle_join_gap_ms"] = {
        "median": statistics.median(gaps),
        "p90": pct(gaps, 0.9),
        "p99": pct(gaps, 0.99),
        "max": max(gaps),
        "threshold_idle": idle,
        "threshold_margin": margin,
    }
    empty = BACKEND.measure(lambda: None, 300, DEV, True)
    report["empty_region_ms"] = {"median": statistics.median(empty), "p90": pct(empty, 0.9)}
    rows = {}
    for name, make in workloads().items():
        fa, fb = make()
        for _ in range(20):
            fa(), fb()
        torch.cuda.synchronize()
        row: dict[str, Any] = {}
        raw = BACKEND._raw(fa, 300, DEV, True)
        row["events_flush_raw"] = statistics.median(e for e, _ in raw)
        row["harness_flush_gap_median"] = statistics.median(j - e for e, j in raw)
        row["harness_flush_gap_p90"] = pct([j - e for e, j in raw], 0.9)
        row["harness_flush"] = statistics.median(BACKEND.measure(fa, 300, DEV, True))
        row["harness_flush_late"] = BACKEND.last_measure["late_samples"]
        row["harness_warm"] = statistics.median(BACKEND.measure(fa, 300, DEV, False))
        row["harness_warm_late"] = BACKEND.last_measure["late_samples"]
        BACKEND.timing_notes()
        row["old_sync_flush"] = statistics.median(old_method(fa, 300))
        row["simple_warm"] = simple_method(fa, dev)
        row["do_bench_median"] = do_bench_median(fa, dev)
        for cache, flush in (("flush", True), ("warm", False)):
            prof = profile_calls(fa, dev, 30, flush)
            if prof:
                row[f"profiler_{cache}"] = {
                    "kernels": statistics.median(p.kernels for p in prof),
                    "busy_ms": statistics.median(p.busy_ms for p in prof),
                    "span_ms": statistics.median(p.span_ms for p in prof),
                    "names": prof[0].names[:6],
                }
        row["aa"] = aa_rounds(fa, fb, 10, 100)
        rows[name] = row
        pf = row.get("profiler_flush", {}).get("busy_ms")
        late = f"{row['harness_flush_late']}/{row['harness_warm_late']}"
        gap = f"{row['harness_flush_gap_median']:.4f}/{row['harness_flush_gap_p90']:.4f}"
        print(
            f"{name:18} harness {row['harness_flush']:.4f} (raw {row['events_flush_raw']:.4f}, late {late}) "
            f"profiler {pf} simple {row['simple_warm']:.4f} do_bench {row['do_bench_median']:.4f} "
            f"gap {gap} A/A {row['aa']['ratio_of_medians']:.5f}",
            flush=True,
        )
        del fa, fb
        torch.cuda.empty_cache()
    report["workloads"] = rows
    for joined in (False, True):
        fn = side_stream(joined)
        for _ in range(10):
            fn()
        torch.cuda.synchronize()
        samples = BACKEND.measure(fn, 200, DEV, True)
        notes = BACKEND.timing_notes()
        prof = profile_calls(fn, dev, 20, True)
        report[f"side_stream_{'joined' if joined else 'unjoined'}"] = {
            "harness_median": statistics.median(samples),
            "late": BACKEND.last_measure,
            "notes": notes,
            "profiler_span_ms": statistics.median(p.span_ms for p in prof) if prof else None,
            "profiler_busy_ms": statistics.median(p.busy_ms for p in prof) if prof else None,
            "events_only_median": statistics.median(e for e, _ in BACKEND._raw(fn, 200, DEV, True)),
        }
    from harness.calibration.study import spin_cycles_per_ms

    report["spin_cycles_per_ms"] = spin_cycles_per_ms(dev)
    report["elapsed_s"] = time.time() - t0
    with open(out_path, "w") as fh:
        json.dump(report, fh, indent=1)
    short = {k: v for k, v in report.items() if k not in ("workloads", "env")}
    for key in ("side_stream_unjoined", "side_stream_joined"):
        short[key] = {k: v for k, v in short[key].items() if k != "notes"}
    print(json.dumps(short, indent=1))


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else "gpu_timing_study.json")
