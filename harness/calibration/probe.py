"""The device side of `harness calibrate`, run in a child process: the simple method, do_bench, the
profiler (CUPTI kernel durations) and the calibration of the known extra work.

``python -m harness.calibration.probe SPEC.json OUT.json``: the parent (`harness.calibration.study`)
never touches the device itself, so a wedged profiler costs a child, not the run.
"""

from __future__ import annotations

import json
import statistics
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any


def _now_ms() -> float:
    return time.perf_counter_ns() / 1e6


class _Device:
    """Synchronize, events and the lead/flush of one backend, for the probe's own timings."""

    def __init__(self, backend_name: str, device: str) -> None:
        from harness.backends import get_backend

        self.backend = get_backend(backend_name)
        self.name = backend_name
        self.device = device
        self.accelerated = backend_name in ("gpu", "npu") and not self.backend.simulated
        self.backend.prepare_process(device)

    def sync(self) -> None:
        self.backend.synchronize(self.device)

    def flush(self) -> None:
        flush = getattr(self.backend, "flush", None)
        if flush is not None:
            flush(self.device)
        else:
            self.backend.measure(lambda: None, 1, self.device, True)

    def interval(self) -> tuple[Callable[[], None], Callable[[], float]]:
        """A (mark start, read ms since start after the work queued so far) pair."""
        if self.name == "cpu" or not hasattr(self.backend, "runtime"):
            box = [0.0]

            def start() -> None:
                box[0] = _now_ms()

            return start, lambda: _now_ms() - box[0]
        rt = self.backend.runtime()
        s, e = rt.Event(enable_timing=True), rt.Event(enable_timing=True)

        def read() -> float:
            e.record()
            rt.synchronize(self.device)
            return float(s.elapsed_time(e))

        return lambda: s.record(), read


def simple_method(fn: Callable[[], Any], dev: _Device, trials: int = 3, launches: int = 100) -> float:
    """The common method: warm cache, ``trials`` × ``launches`` back-to-back calls, median of trial means."""
    for _ in range(10):
        fn()
    dev.sync()
    means = []
    for _ in range(trials):
        start, read = dev.interval()
        start()
        for _ in range(launches):
            fn()
        means.append(read() / launches)
    return statistics.median(means)


def do_bench_median(fn: Callable[[], Any], dev: _Device) -> float | None:
    """``triton.testing.do_bench`` with its defaults, median; None where it does not apply (CPU)."""
    if not dev.accelerated or dev.name != "gpu":
        return None
    from triton.testing import do_bench

    return float(do_bench(fn, return_mode="median"))


@dataclass
class CallProfile:
    """Device activities of one profiled call: count, summed duration, span, extra after the last-but-one."""

    kernels: int
    busy_ms: float
    span_ms: float
    tail_ms: float | None  # end of the last activity minus end of the one before it
    names: list[str]


def profile_calls(
    fn: Callable[[], Any], dev: _Device, calls: int, flush_cache: bool
) -> list[CallProfile] | None:
    """Per-call device activities from torch.profiler (CUPTI); None where there is no profiler (CPU)."""
    if not dev.accelerated or dev.name != "gpu":
        return None
    import torch
    from torch.profiler import ProfilerActivity, profile, record_function

    for _ in range(3):
        fn()
    dev.sync()
    with profile(activities=[ProfilerActivity.CPU, ProfilerActivity.CUDA]) as prof:
        for i in range(calls):
            if flush_cache:
                dev.flush()
            else:
                torch.cuda._sleep(200_000)  # the same lead as the harness's warm-cache mode
            with record_function(f"harness_call_{i}"):
                fn()
            dev.sync()
    with tempfile.TemporaryDirectory() as tmp:
        trace = Path(tmp) / "trace.json"
        prof.export_chrome_trace(str(trace))
        events = json.loads(trace.read_text()).get("traceEvents", [])
    return _calls_from_trace(events, calls)


def _calls_from_trace(events: list[dict[str, Any]], calls: int) -> list[CallProfile]:
    ranges: dict[int, tuple[float, float]] = {}
    launches: dict[Any, float] = {}
    device: list[dict[str, Any]] = []
    for ev in events:
        cat, name = ev.get("cat"), str(ev.get("name", ""))
        if cat == "user_annotation" and name.startswith("harness_call_"):
            ranges[int(name.rsplit("_", 1)[1])] = (float(ev["ts"]), float(ev["ts"]) + float(ev.get("dur", 0)))
        elif cat in ("cuda_runtime", "cuda_driver"):
            corr = (ev.get("args") or {}).get("correlation")
            if corr is not None:
                launches[corr] = float(ev["ts"])
        elif cat in ("kernel", "gpu_memcpy", "gpu_memset"):
            device.append(ev)
    per_call: dict[int, list[dict[str, Any]]] = {i: [] for i in range(calls)}
    for ev in device:
        launched = launches.get((ev.get("args") or {}).get("correlation"))
        if launched is None:
            continue
        for i, (lo, hi) in ranges.items():
            if lo <= launched <= hi:
                per_call[i].append(ev)
                break
    out = []
    for i in range(calls):
        evs = sorted(per_call[i], key=lambda e: float(e["ts"]))
        if not evs:
            continue
        ends = [float(e["ts"]) + float(e.get("dur", 0)) for e in evs]
        busy = sum(float(e.get("dur", 0)) for e in evs)
        tail = (ends[-1] - max(ends[:-1])) / 1000.0 if len(evs) > 1 else None
        out.append(
            CallProfile(
                kernels=len(evs),
                busy_ms=busy / 1000.0,
                span_ms=(max(ends) - float(evs[0]["ts"])) / 1000.0,
                tail_ms=tail,
                names=[str(e.get("name", ""))[:80] for e in evs],
            )
        )
    return out


def extra_work(dev: _Device, amount: float) -> Callable[[], None]:
    """A call that adds known extra work: GPU: spin ``amount`` cycles; CPU: busy-wait ``amount`` ms."""
    if dev.name == "gpu" and dev.accelerated:
        import torch

        cycles = int(amount)
        return lambda: torch.cuda._sleep(cycles)

    def busy() -> None:
        end = time.perf_counter_ns() + int(amount * 1e6)
        while time.perf_counter_ns() < end:
            pass

    return busy


def spin_cycles_per_ms(dev: _Device) -> float | None:
    """GPU clock cycles the spin kernel burns per millisecond (from the profiler); None on CPU."""
    profiles = profile_calls(extra_work(dev, 2_000_000), dev, 5, flush_cache=False)
    if not profiles:
        return None
    return 2_000_000 / statistics.median(p.busy_ms for p in profiles)


def _build(loaded: Any, dev: _Device, seed: int) -> tuple[Any, list[Any]]:
    import torch

    torch.manual_seed(seed)
    with torch.device(dev.device):
        model = loaded.model_class(*loaded.init_inputs())
        if hasattr(model, "to"):
            model = model.to(dev.device)
        torch.manual_seed(seed + 1)
        inputs = [x.to(dev.device) if isinstance(x, torch.Tensor) else x for x in loaded.inputs()]
    return model, inputs


def _forward(model: Any, inputs: list[Any]) -> Callable[[], Any]:
    import torch

    def call() -> Any:
        with torch.no_grad():
            return model(*inputs)

    return call


def probe_case(spec: dict[str, Any], dev: _Device, cycles_per_ms: float | None) -> dict[str, Any]:
    """Peers' methods, profiler durations and the known-effect calibration for one case."""
    from harness.suite.cases import Case, load_case

    case = Case(name=spec["name"], tier=spec["tier"], path=Path(spec["path"]))
    out: dict[str, Any] = {"name": case.name}
    loaded = load_case(case, dev.name, module_name=f"_harness_probe_{case.name}")
    model_a, inputs_a = _build(loaded, dev, 1234)
    model_b, inputs_b = _build(loaded, dev, 1234)  # the A/A twin: same function, its own tensors
    fa, fb = _forward(model_a, inputs_a), _forward(model_b, inputs_b)
    calls = int(spec.get("profile_calls", 30))
    for cache, flush in (("flush", True), ("warm", False)):
        profiles = profile_calls(fa, dev, calls, flush)
        if profiles:
            out[f"profiler_{cache}"] = {
                "kernels": statistics.median(p.kernels for p in profiles),
                "busy_ms": statistics.median(p.busy_ms for p in profiles),
                "span_ms": statistics.median(p.span_ms for p in profiles),
                "names": profiles[0].names[:8],
                "calls": len(profiles),
            }
    out["simple"] = {"a_ms": simple_method(fa, dev), "b_ms": simple_method(fb, dev)}
    bench_a = do_bench_median(fa, dev)
    if bench_a is not None:
        out["do_bench"] = {"a_ms": bench_a, "b_ms": do_bench_median(fb, dev)}
    effects = []
    for effect in spec.get("effects", []):
        amount_ms = float(effect["amount_ms"])
        amount = amount_ms * cycles_per_ms if cycles_per_ms else amount_ms
        extra = extra_work(dev, amount)

        def with_extra(f: Callable[[], Any] = fa, x: Callable[[], None] = extra) -> Any:
            result = f()
            x()
            return result

        row: dict[str, Any] = {
            "pct": effect["pct"],
            "amount": amount,
            "amount_unit": "cycles" if cycles_per_ms else "ms",
        }
        profiles = profile_calls(with_extra, dev, calls, True)
        if profiles:
            tails = [p.tail_ms for p in profiles if p.tail_ms is not None]
            row["extra_ms"] = statistics.median(tails) if tails else None
        else:
            started = _now_ms()
            for _ in range(20):
                extra()
            row["extra_ms"] = (_now_ms() - started) / 20
        row["simple"] = {"ref_ms": simple_method(fa, dev), "cand_ms": simple_method(with_extra, dev)}
        bench_ref = do_bench_median(fa, dev)
        if bench_ref is not None:
            row["do_bench"] = {"ref_ms": bench_ref, "cand_ms": do_bench_median(with_extra, dev)}
        effects.append(row)
    out["effects"] = effects
    return out


def probe_main(spec_path: str, out_path: str) -> int:
    """Entry of the probe child: read the spec, probe every case, write JSON (errors per case)."""
    spec = json.loads(Path(spec_path).read_text())
    dev = _Device(spec["backend"], spec["device"])
    result: dict[str, Any] = {"cases": {}, "cycles_per_ms": None}
    cycles = spin_cycles_per_ms(dev) if any(c.get("effects") for c in spec["cases"]) else None
    result["cycles_per_ms"] = cycles
    for case in spec["cases"]:
        try:
            result["cases"][case["name"]] = probe_case(case, dev, cycles)
        except Exception as exc:  # noqa: BLE001 - reported per case, the others still run
            result["cases"][case["name"]] = {
                "name": case["name"],
                "error": f"{type(exc).__name__}: {exc}"[:500],
            }
        Path(out_path).write_text(json.dumps(result))
        import gc

        gc.collect()
        if dev.name == "gpu":
            import torch

            torch.cuda.empty_cache()
    Path(out_path).write_text(json.dumps(result))
    return 0


def main(argv: Sequence[str]) -> int:
    if len(argv) == 2:
        return probe_main(argv[0], argv[1])
    print("usage: python -m harness.calibration.probe SPEC.json OUT.json", file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
