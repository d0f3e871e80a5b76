"""`harness calibrate`: how precise and how accurate the measurement is, beside peers' methods.

Heavy imports stay inside the command (see harness/cli/__init__.py).
"""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Any

import click

from harness.cli.common import CALIBRATE_EVAL_OPTIONS, devices_option, some_eval_options


def _pct(value: float | None, digits: int = 2) -> str:
    return "-" if value is None else f"{value * 100:+.{digits}f}%"


def _abs_pct(value: float | None, digits: int = 2) -> str:
    return "-" if value is None else f"{value * 100:.{digits}f}%"


def _ms(value: float | None) -> str:
    return "-" if value is None else f"{value:.4f}"


def _tables(cases: list[Any], summary: dict[str, Any], effects: tuple[float, ...]) -> list[Any]:
    from rich.table import Table

    from harness.calibration.study import METHODS, _pct_key

    per_case = Table(
        title="calibration per case (A/A: speedup − 1; accuracy: reported / profiler − 1)",
        title_justify="left",
    )
    for column in ("tier", "case", "ref ms", "kernels"):
        per_case.add_column(column, justify="right" if column in ("ref ms", "kernels") else "left")
    for method in METHODS:
        per_case.add_column(f"A/A {method}", justify="right")
    for method in METHODS:
        per_case.add_column(f"acc {method}", justify="right")
    for pct in effects:
        per_case.add_column(f"{pct:g}% effect err (h/s/d)", justify="right")
    per_case.add_column("note")
    for c in cases:
        effect_cells = []
        for pct in effects:
            e = next((x for x in c.effects if x["pct"] == pct), None)
            effect_cells.append("-" if e is None else " / ".join(_pct(e["error"].get(m), 1) for m in METHODS))
        per_case.add_row(
            c.tier,
            c.name,
            _ms(c.ref_ms),
            "-" if c.kernels is None else f"{c.kernels:g}",
            *(_pct(c.aa.get(m)) for m in METHODS),
            *(_pct(c.accuracy.get(m), 1) if c.single_kernel else "-" for m in METHODS),
            *effect_cells,
            (c.reason or "")[:80],
        )
    totals = Table(
        title=f"summary over {summary['precision_cases']} case(s) whose reference takes >= the minimum time "
        "(absolute values: median / p95 / max)",
        title_justify="left",
    )
    totals.add_column("method")
    totals.add_column("A/A |speedup − 1|", justify="right")
    totals.add_column("accuracy |error| (single-kernel)", justify="right")
    for pct in effects:
        totals.add_column(f"known {pct:g}% effect |error|", justify="right")
    for method in METHODS:
        figures = summary["methods"][method]

        def cell(d: dict[str, Any]) -> str:
            if not d["n"]:
                return "n/a"
            return f"{_abs_pct(d['median'])} / {_abs_pct(d['p95'])} / {_abs_pct(d['max'])} (n={d['n']})"

        totals.add_row(
            method,
            cell(figures["aa"]),
            cell(figures["accuracy"]),
            *(cell(figures["effects"][_pct_key(p)]) for p in effects),
        )
    return [per_case, totals]


@click.command("calibrate")
@click.option(
    "--backend", type=click.Choice(("cpu", "gpu", "npu")), default="cpu", show_default=True,
    help="Backend whose measurement is calibrated.",
)  # fmt: skip
@click.option(
    "--suite", type=click.Path(path_type=Path, file_okay=False), default=Path("benchmark"), show_default=True,
    help="Folder holding the tier folders of reference cases.",
)  # fmt: skip
@click.option(
    "--solutions", type=click.Path(path_type=Path, file_okay=False), default=None,
    help="The A/A solution set: each case's reference as ModelNew (default: <suite>/solutions/reference).",
)  # fmt: skip
@click.option("--tier", "tiers", multiple=True, metavar="tN", help="Only cases of this tier (repeatable).")
@click.option("--case", "names", multiple=True, metavar="NAME", help="Only this case (repeatable).")
@click.option("--filter", "keyword", metavar="KW", help="Only cases whose name or summary contains KW.")
@click.option(
    "--effects", default="5,10,20", show_default=True,
    help="Known effects to plant, in percent of the reference's time (empty: skip the known-effect part).",
)  # fmt: skip
@click.option(
    "--effect-case", "effect_names", multiple=True, metavar="NAME",
    help="Cases for the known-effect part (repeatable; default: every selected case).",
)  # fmt: skip
@click.option(
    "--min-us", type=click.FloatRange(min=0), default=20.0, show_default=True,
    help="Summaries cover cases whose reference takes at least this many microseconds.",
)  # fmt: skip
@devices_option(single=True)
@click.option(
    "--out",
    type=click.Path(path_type=Path, dir_okay=False),
    default=Path("calibration.json"),
    show_default=True,
    help="Where to write the calibration artifact (schema v1/calibration).",
)
@click.option(
    "--trials",
    type=click.IntRange(min=1),
    default=1,
    show_default=True,
    help="Correctness trials per evaluation.",
)
@some_eval_options(*CALIBRATE_EVAL_OPTIONS)
@click.option(
    "--profile-calls", type=click.IntRange(min=3), default=30, show_default=True,
    help="Calls of each case's reference traced by the profiler (accuracy against its kernel durations).",
)  # fmt: skip
@click.option(
    "--peaks", is_flag=True,
    help="Only measure the device's memory bandwidth and matmul throughput (seconds), keep them for the "
    "speed-of-light figures of later runs on this host, and stop.",
)  # fmt: skip
def calibrate(**kw: Any) -> None:
    """Measure the measurement: A/A precision, known effects and accuracy against the profiler.

    Runs each case's reference against itself (A/A), plants known extra work (--effects) and, where a
    reference is one kernel, compares the reported time with the profiler's kernel duration; the same
    figures are given for the simple method (3 x 100 back-to-back calls, warm cache, median) and for
    triton.testing.do_bench (defaults, median). Writes a schema-validated artifact (--out).
    """
    from rich.console import Console

    if kw["peaks"]:
        _measure_peaks(kw["backend"], int(kw["devices"] or 0), Console(highlight=False))
        return

    from harness.artifacts.provenance import command_line, git_commit, host_environment
    from harness.artifacts.writing import write_artifact
    from harness.calibration.study import CalibrationConfig, calibration_payload, run_calibration
    from harness.errors import BadInput
    from harness.evaluation.evaluate import EvalConfig
    from harness.timing import TimingConfig

    try:
        effects = tuple(float(x) for x in kw["effects"].split(",") if x.strip())
    except ValueError as exc:
        raise BadInput(f"--effects {kw['effects']!r}: give percentages such as 5,10,20") from exc
    if any(e <= 0 for e in effects):
        raise BadInput("--effects: every effect must be above 0 %")
    config = CalibrationConfig(
        backend=kw["backend"],
        suite=kw["suite"],
        reference_solutions=kw["solutions"],
        tiers=tuple(kw["tiers"]),
        names=tuple(kw["names"]),
        keyword=kw["keyword"],
        effects=effects,
        effect_names=tuple(kw["effect_names"]),
        min_ms=kw["min_us"] / 1000.0,
        device_index=int(kw["devices"] or 0),
        profile_calls=kw["profile_calls"],
    )
    eval_config = EvalConfig(
        backend=kw["backend"],
        trials=kw["trials"],
        timeout_s=kw["timeout_s"],
        seed=kw["seed"],
        timing=TimingConfig(budget_ms=kw["budget_ms"], rounds=kw["rounds"], flush_cache=kw["flush_cache"]),
        isolation=kw["isolation"],
    )
    console = Console(highlight=False, width=None if sys.stdout.isatty() else 220)
    err = Console(stderr=True, highlight=False)
    observer = _Progress(err)
    cases, summary, device_env = run_calibration(config, eval_config, observer)
    environment = host_environment()
    environment["backends"] = {config.backend: device_env}
    provenance: dict[str, Any] = {
        "command_line": command_line(),
        "config": {"calibration": config.to_json(), "eval": eval_config.to_json()},
        "suite_git_commit": git_commit(config.suite),
        "runtime": "local",
        "runtime_note": None,
        "container_image": None,
    }
    image = os.environ.get("HARNESS_IMAGE")
    if image:
        provenance["container_image"] = {
            "name": image,
            "id": os.environ.get("HARNESS_IMAGE_ID"),
            "digest": None,
        }
    payload = calibration_payload(cases, summary, config, provenance, environment)
    write_artifact(kw["out"], payload)
    for table in _tables(cases, summary, effects):
        console.print(table)
    console.print(f"wrote {kw['out']}")
    if any(c.status != "ok" for c in cases):
        raise SystemExit(1)


def _measure_peaks(backend_name: str, device_index: int, console: Any) -> None:
    """Measure peaks in a child process (this one never touches the device) and store them."""
    import json
    import subprocess
    import tempfile

    from harness.backends import get_backend
    from harness.backends.peaks import DevicePeaks, known_peaks, store_measured
    from harness.errors import EnvironmentUnavailable

    device = get_backend(backend_name).select_devices([str(device_index)])[0][0]
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "peaks.json"
        proc = subprocess.run(
            [sys.executable, "-m", "harness.analysis.speed_of_light", "measure", device, str(out)],
            capture_output=True, text=True, timeout=600,
        )  # fmt: skip
        if proc.returncode != 0 or not out.is_file():
            raise EnvironmentUnavailable(f"measuring the peaks of {device} failed: {proc.stderr.strip()[-500:]}")
        peaks = DevicePeaks.from_json(json.loads(out.read_text()))
    where = store_measured(peaks)
    figures = ", ".join(f"{name} {value:.4g} TFLOP/s" for name, value in peaks.tflops.items())
    console.print(f"{peaks.name}: memory {peaks.memory_gbps:.4g} GB/s, {figures}; stored in {where}")
    datasheet = known_peaks(peaks.name)
    if datasheet is not None:
        console.print(f"speed-of-light figures of this device keep using the {datasheet.source}")


class _Progress:
    """One line on stderr per finished evaluation."""

    def __init__(self, console: Any) -> None:
        self.console = console

    def planned(self, total: int) -> None:
        self.console.print(f"calibrate: {total} evaluation(s)")

    def case_started(self, task: Any) -> None:
        return None

    def case_finished(self, result: Any) -> None:
        speed = f"{result.speedup:.4f}" if result.speedup else "-"
        self.console.print(f"  {result.tier}/{result.name}: {result.status} speedup {speed}")


COMMANDS = [calibrate]
