"""`harness calibrate`: measuring the measurement, beside the methods peers use.

For each case of a suite it reports:

- A/A precision: the case's reference against itself as candidate (the ``reference`` solution set),
  |speedup − 1| per case; summarised as median, p95 and max over cases whose reference takes at
  least ``min_ms`` (20 us by default).
- Known effect: a candidate that runs the reference's forward and then a fixed amount of extra
  device work (GPU: a clock spin kernel; CPU: a host busy-wait). The extra time it adds to a call is
  measured independently (GPU: torch.profiler/CUPTI, the spin kernel's end minus the end of the
  kernel before it, so the launch gap it adds counts too; CPU: the host clock around the busy-wait).
  Expected candidate/reference ratio = (T_ref + extra) / T_ref; the error is measured/expected − 1.
- Accuracy: for cases whose reference is one kernel, the reported time against that kernel's
  duration from the profiler under the same cache condition.
- The same figures for the simple method (3 trials × 100 back-to-back calls timed with events,
  warm cache, median of the trials) and for ``triton.testing.do_bench`` (its defaults, median),
  measured in the same run on the same cases.

The harness's own figures come from real `harness` evaluations (process isolation, interleaved
rounds). The other methods, the profiler and the calibration of the extra work run in a child
process (``python -m harness.calibrate probe SPEC OUT``) so this process never touches the device.
"""

from __future__ import annotations

import json
import math
import statistics
import subprocess
import sys
import tempfile
import textwrap
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

METHODS = ("harness", "simple", "do_bench")
DEFAULT_EFFECTS = (5.0, 10.0, 20.0)

# --------------------------------------------------------------------------------------------------
# Child-process side: the device work (imports torch)
# --------------------------------------------------------------------------------------------------


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
    from harness.cases import Case, load_case

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


# --------------------------------------------------------------------------------------------------
# CLI-process side: orchestration and the report (never imports torch)
# --------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class CalibrationConfig:
    backend: str = "cpu"
    suite: Path = Path("benchmark")
    reference_solutions: Path | None = None  # default: <suite>/solutions/reference
    tiers: tuple[str, ...] = ()
    names: tuple[str, ...] = ()
    keyword: str | None = None
    effects: tuple[float, ...] = DEFAULT_EFFECTS
    effect_names: tuple[str, ...] = ()  # cases for the known-effect runs (default: all selected)
    min_ms: float = 0.020  # precision and accuracy summaries use cases at least this long
    device_index: int = 0
    profile_calls: int = 30

    def to_json(self) -> dict[str, Any]:
        return {
            "backend": self.backend,
            "suite": str(self.suite),
            "reference_solutions": str(self.solutions_dir),
            "tiers": list(self.tiers),
            "names": list(self.names),
            "keyword": self.keyword,
            "effects_pct": list(self.effects),
            "effect_cases": list(self.effect_names),
            "min_ms": self.min_ms,
            "device_index": self.device_index,
            "profile_calls": self.profile_calls,
        }

    @property
    def solutions_dir(self) -> Path:
        return self.reference_solutions or self.suite / "solutions" / "reference"


@dataclass
class CaseCalibration:
    """All figures for one case."""

    name: str
    tier: str
    status: str = "ok"  # ok | error
    reason: str | None = None
    ref_ms: float | None = None  # the harness's reference median
    single_kernel: bool | None = None
    kernels: float | None = None
    profiler_ms: dict[str, float | None] = field(default_factory=dict)  # cache condition -> kernel ms
    aa: dict[str, float | None] = field(default_factory=dict)  # method -> speedup − 1 (A/A)
    times_ms: dict[str, float | None] = field(default_factory=dict)  # method -> reported time
    accuracy: dict[str, float | None] = field(default_factory=dict)  # method -> reported/profiler − 1
    effects: list[dict[str, Any]] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        return dict(self.__dict__)


def _stats(values: Sequence[float]) -> dict[str, Any]:
    data = sorted(abs(v) for v in values if v is not None and math.isfinite(v))
    if not data:
        return {"n": 0, "median": None, "p95": None, "max": None}
    p95 = data[min(len(data) - 1, math.ceil(0.95 * len(data)) - 1)]
    return {"n": len(data), "median": statistics.median(data), "p95": p95, "max": data[-1]}


def summarize(cases: Sequence[CaseCalibration], effects: Sequence[float], min_ms: float) -> dict[str, Any]:
    """Per method: A/A |speedup − 1|, accuracy |error| and known-effect |error| distributions."""
    long_enough = [c for c in cases if c.status == "ok" and c.ref_ms is not None and c.ref_ms >= min_ms]
    summary: dict[str, Any] = {"precision_cases": len(long_enough), "methods": {}}
    for method in METHODS:
        aa = [c.aa.get(method) for c in long_enough if c.aa.get(method) is not None]
        acc = [
            c.accuracy.get(method)
            for c in long_enough
            if c.single_kernel and c.accuracy.get(method) is not None
        ]
        per_effect = {}
        for pct in effects:
            errors = [
                e["error"][method]
                for c in cases
                for e in c.effects
                if e["pct"] == pct and e.get("error", {}).get(method) is not None
            ]
            per_effect[_pct_key(pct)] = _stats(errors)
        summary["methods"][method] = {"aa": _stats(aa), "accuracy": _stats(acc), "effects": per_effect}  # type: ignore[arg-type]
    return summary


def _pct_key(pct: float) -> str:
    return f"{pct:g}"


def _ratio_error(ref: float | None, cand: float | None, extra: float | None) -> float | None:
    """(measured cand/ref) / (expected (ref + extra)/ref) − 1."""
    if not ref or not cand or extra is None or ref <= 0:
        return None
    return (cand / ref) / ((ref + extra) / ref) - 1.0


def effect_candidate_source(case_path: Path, name: str, pct: float, backend: str, amount: float) -> str:
    """A solution file: the case's own Model, then a fixed extra amount of work after each forward."""
    if backend == "gpu":
        extra = f"torch.cuda._sleep({int(amount)})  # clock spin on the calling stream"
    else:
        extra = f"_busy_wait_ns({int(amount * 1e6)})  # host busy-wait"
    return textwrap.dedent(
        f'''\
        """Calibration candidate (known effect {pct:g} %): {name}'s reference plus fixed extra work."""
        import time
        from pathlib import Path

        import torch

        from harness.cases import import_file

        _case = import_file(Path({str(case_path.resolve())!r}), "_harness_effect_case_{name}")


        def _busy_wait_ns(ns):
            end = time.perf_counter_ns() + ns
            while time.perf_counter_ns() < end:
                pass


        class ModelNew(_case.Model):
            def forward(self, *args):
                out = super().forward(*args)
                {extra}
                return out
        '''
    )


def _run_harness(
    backend: str, cases: Sequence[Any], solutions: Path, eval_config: Any, device_index: int, observer: Any
) -> dict[str, Any]:
    from harness.runner import Runner

    runner = Runner(eval_config, solutions=solutions, observer=observer, devices=[str(device_index)])
    outcome = runner.run([backend], cases)
    env = outcome.backends[0].environment if outcome.backends else {}
    return {"results": {r.name: r for r in outcome.results}, "environment": env}


def run_calibration(
    config: CalibrationConfig, eval_config: Any, observer: Any = None, probe_timeout_s: float = 3600.0
) -> tuple[list[CaseCalibration], dict[str, Any], dict[str, Any]]:
    """Run every part; returns the per-case figures, the summary and the device environment."""
    from harness.backends import get_backend
    from harness.cases import discover
    from harness.errors import BadInput

    backend = get_backend(config.backend)
    devices, _ = backend.select_devices([str(config.device_index)])
    device = devices[0]
    cases = [
        c
        for c in discover(config.suite, config.tiers, config.names, config.keyword)
        if not c.skip_reason(config.backend)
    ]
    if not cases:
        raise BadInput(f"no case in {config.suite} matches the filters given for backend {config.backend}")
    if not config.solutions_dir.is_dir():
        raise BadInput(f"reference solution set {config.solutions_dir} does not exist; pass --solutions DIR")

    aa_run = _run_harness(
        config.backend, cases, config.solutions_dir, eval_config, config.device_index, observer
    )
    rows: dict[str, CaseCalibration] = {}
    for case in cases:
        row = CaseCalibration(name=case.name, tier=case.tier)
        result = aa_run["results"].get(case.name)
        if result is None or result.status != "pass" or not result.speedup:
            row.status = "error"
            row.reason = (
                f"A/A run: {result.status if result else 'missing'}: {result.reason if result else ''}"
            )
        else:
            assert result.reference_timing is not None
            row.ref_ms = result.reference_timing.median_ms
            row.times_ms["harness"] = row.ref_ms
            row.aa["harness"] = result.speedup - 1.0
        rows[case.name] = row

    effect_names = set(config.effect_names) if config.effect_names else {c.name for c in cases}
    spec = {
        "backend": config.backend,
        "device": device,
        "cases": [
            {
                "name": c.name,
                "tier": c.tier,
                "path": str(c.path.resolve()),
                "profile_calls": config.profile_calls,
                "effects": [
                    {"pct": pct, "amount_ms": rows[c.name].ref_ms * pct / 100.0}  # type: ignore[operator]
                    for pct in config.effects
                ]
                if c.name in effect_names and rows[c.name].ref_ms
                else [],
            }
            for c in cases
            if rows[c.name].status == "ok"
        ],
    }
    probe = _run_probe(spec, probe_timeout_s)
    for name, data in probe.get("cases", {}).items():
        row = rows[name]
        if "error" in data:
            row.status, row.reason = "error", f"probe: {data['error']}"
            continue
        _fill_from_probe(row, data)

    # Known effect through the harness itself: candidates written with the probe's amounts.
    with tempfile.TemporaryDirectory(prefix="harness-calibrate-") as tmp:
        for pct in config.effects:
            folder = Path(tmp) / f"effect_{_pct_key(pct).replace('.', '_')}"
            todo = []
            for case in cases:
                row = rows[case.name]
                effect = next((e for e in row.effects if e["pct"] == pct), None)
                if row.status != "ok" or effect is None:
                    continue
                path = folder / case.tier / f"{case.name}.py"
                path.parent.mkdir(parents=True, exist_ok=True)
                path.write_text(
                    effect_candidate_source(case.path, case.name, pct, config.backend, effect["amount"])
                )
                todo.append(case)
            if not todo:
                continue
            run = _run_harness(config.backend, todo, folder, eval_config, config.device_index, observer)
            for case in todo:
                row = rows[case.name]
                effect = next(e for e in row.effects if e["pct"] == pct)
                result = run["results"].get(case.name)
                if result is None or result.status != "pass" or not result.speedup:
                    effect["harness"] = {"status": result.status if result else "missing"}
                    continue
                assert result.reference_timing and result.solution_timing
                ref, cand = result.reference_timing.median_ms, result.solution_timing.median_ms
                effect["harness"] = {"ref_ms": ref, "cand_ms": cand}
                effect["error"]["harness"] = _ratio_error(ref, cand, effect.get("extra_ms"))
    ordered = [rows[c.name] for c in cases]
    environment = aa_run["environment"]
    summary = summarize(ordered, config.effects, config.min_ms)
    summary["cycles_per_ms"] = probe.get("cycles_per_ms")
    return ordered, summary, environment


def _fill_from_probe(row: CaseCalibration, data: dict[str, Any]) -> None:
    for cache in ("flush", "warm"):
        prof = data.get(f"profiler_{cache}")
        row.profiler_ms[cache] = prof["busy_ms"] if prof else None
        if prof and cache == "flush":
            row.kernels = prof["kernels"]
            row.single_kernel = prof["kernels"] == 1
    simple = data.get("simple")
    if simple:
        row.times_ms["simple"] = simple["a_ms"]
        row.aa["simple"] = simple["a_ms"] / simple["b_ms"] - 1.0
    bench = data.get("do_bench")
    if bench and bench.get("a_ms") and bench.get("b_ms"):
        row.times_ms["do_bench"] = bench["a_ms"]
        row.aa["do_bench"] = bench["a_ms"] / bench["b_ms"] - 1.0
    # accuracy: each method against the profiler under its own cache condition
    conditions = {"harness": "flush", "do_bench": "flush", "simple": "warm"}
    for method, cache in conditions.items():
        reported, truth = row.times_ms.get(method), row.profiler_ms.get(cache)
        row.accuracy[method] = reported / truth - 1.0 if reported and truth else None
    for effect in data.get("effects", []):
        extra = effect.get("extra_ms")
        entry = {
            "pct": effect["pct"],
            "amount": effect["amount"],
            "amount_unit": effect["amount_unit"],
            "extra_ms": extra,
            "expected_effect": extra / row.ref_ms if extra is not None and row.ref_ms else None,
            "simple": effect.get("simple"),
            "do_bench": effect.get("do_bench"),
            "error": {},
        }
        for method in ("simple", "do_bench"):
            m = effect.get(method)
            if m:
                entry["error"][method] = _ratio_error(m.get("ref_ms"), m.get("cand_ms"), extra)
        row.effects.append(entry)


def _run_probe(spec: dict[str, Any], timeout_s: float) -> dict[str, Any]:
    from harness.errors import HarnessError

    with tempfile.TemporaryDirectory(prefix="harness-probe-") as tmp:
        spec_path, out_path = Path(tmp) / "spec.json", Path(tmp) / "probe.json"
        spec_path.write_text(json.dumps(spec))
        proc = subprocess.run(
            [sys.executable, "-m", "harness.calibrate", "probe", str(spec_path), str(out_path)],
            capture_output=True,
            text=True,
            timeout=timeout_s,
            check=False,
        )
        if out_path.is_file():
            data: dict[str, Any] = json.loads(out_path.read_text())
            done = set(data.get("cases", {}))
            for case in spec["cases"]:
                if case["name"] not in done:
                    data.setdefault("cases", {})[case["name"]] = {
                        "error": f"probe process ended (code {proc.returncode}) before this case: "
                        f"{proc.stderr.strip().splitlines()[-1] if proc.stderr.strip() else ''}"
                    }
            return data
        raise HarnessError(f"calibration probe failed (exit {proc.returncode}): {proc.stderr.strip()[-800:]}")


def calibration_payload(
    cases: Sequence[CaseCalibration],
    summary: dict[str, Any],
    config: CalibrationConfig,
    provenance: dict[str, Any],
    environment: dict[str, Any],
) -> dict[str, Any]:
    from harness.artifacts import envelope

    payload = envelope("calibration", provenance, environment)
    payload.update(
        backend=config.backend,
        config=config.to_json(),
        cases=[c.to_json() for c in cases],
        summary=summary,
    )
    return payload


def main(argv: Sequence[str]) -> int:
    if len(argv) == 3 and argv[0] == "probe":
        return probe_main(argv[1], argv[2])
    print("usage: python -m harness.calibrate probe SPEC.json OUT.json", file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
