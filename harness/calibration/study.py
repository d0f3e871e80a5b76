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
process (`harness.calibration.probe`) so this process never touches the device.
"""

from __future__ import annotations

import json
import math
import statistics
import subprocess
import sys
import tempfile
import textwrap
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from harness.results import CaseResult
    from harness.timing import TimingStats

METHODS = ("harness", "simple", "do_bench")
DEFAULT_EFFECTS = (5.0, 10.0, 20.0)



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


def _first_shape(result: CaseResult) -> tuple[TimingStats | None, TimingStats | None, float | None]:
    """Reference timing, candidate timing and speedup of a result's first shape: what the probe measures
    (it loads a case at its first shape), also for a case of several shapes."""
    if result.shapes:
        first = result.shapes[0]
        return first.reference_timing, first.solution_timing, first.speedup
    return result.reference_timing, result.solution_timing, result.speedup


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

        from harness.suite.cases import import_file

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
    from harness.evaluation.runner import Runner

    runner = Runner(eval_config, solutions=solutions, observer=observer, devices=[str(device_index)])
    outcome = runner.run([backend], cases)
    env = outcome.backends[0].environment if outcome.backends else {}
    return {"results": {r.name: r for r in outcome.results}, "environment": env}


def run_calibration(
    config: CalibrationConfig, eval_config: Any, observer: Any = None, probe_timeout_s: float = 3600.0
) -> tuple[list[CaseCalibration], dict[str, Any], dict[str, Any]]:
    """Run every part; returns the per-case figures, the summary and the device environment."""
    from harness.backends import get_backend
    from harness.errors import BadInput
    from harness.suite.cases import discover

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
            first, _, speedup = _first_shape(result)
            assert first is not None and speedup is not None
            row.ref_ms = first.median_ms
            row.times_ms["harness"] = row.ref_ms
            row.aa["harness"] = speedup - 1.0
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
                ref_timing, cand_timing, _ = _first_shape(result)
                assert ref_timing and cand_timing
                ref_ms, cand_ms = ref_timing.median_ms, cand_timing.median_ms
                effect["harness"] = {"ref_ms": ref_ms, "cand_ms": cand_ms}
                effect["error"]["harness"] = _ratio_error(ref_ms, cand_ms, effect.get("extra_ms"))
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
            [sys.executable, "-m", "harness.calibration.probe", str(spec_path), str(out_path)],
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
    from harness.artifacts.writing import envelope

    payload = envelope("calibration", provenance, environment)
    payload.update(
        backend=config.backend,
        config=config.to_json(),
        cases=[c.to_json() for c in cases],
        summary=summary,
    )
    return payload
