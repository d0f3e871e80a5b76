#!/usr/bin/env python3
"""Benchmark the `cpu` example solutions with the harness and print a speedup table.

First compiles every solution's C++ kernels outside the harness, two at a time, into the account's
cache (~/.cache/kernel-harness/torch_extensions), which candidates can read: faster on two cores than
the harness compiling one candidate after another in its scratch folder (where the harness's build
cache would keep each build for the next run, README "Build cache"). Then runs ``harness run --backend cpu
--solutions benchmark/solutions/cpu`` in a subprocess (so the numbers are exactly what the harness
measures: interleaved reference/candidate rounds in isolated workers), reads ``result.json`` and
prints one row per evaluated case (reference and candidate median milliseconds, speedup, status) and
the geometric mean of the speedups of the passing cases.

    python studies/cpu_solutions.py                         # build, run, then print the table
    python studies/cpu_solutions.py --out /tmp/cpu-run      # keep the artifacts there
    python studies/cpu_solutions.py --no-run --out DIR      # only print the table of an earlier run
    python studies/cpu_solutions.py --build-only            # only compile (what the tests do first)
    python studies/cpu_solutions.py -- --case gelu --rounds 20   # extra `harness run` options

Exit status: the harness's (0 when every case passed), or 2 when there is no result to read.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
SOLUTIONS = REPO / "benchmark" / "solutions" / "cpu"

# Builds (or finds) one solution's kernels as the harness would: ModelNew(*get_init_inputs()) of its case
# (a cpu solution builds its kernels in its constructor, through harness.solutions.load_cpp_extension).
# Run with the checkout as the working directory, so that its harness is the one imported.
_BUILD_ONE = """
import sys
from pathlib import Path
from harness.suite.cases import case_from_file, import_file, load_case
loaded = load_case(case_from_file(Path(sys.argv[2])), "cpu", module_name="_build_case")
import_file(Path(sys.argv[1]), "_build_solution").ModelNew(*loaded.init_inputs())
"""


def build_all(jobs: int = 2) -> bool:
    """Compile every solution's kernels into the account's cache; False if any build failed."""
    env = {k: v for k, v in os.environ.items() if k != "TORCH_EXTENSIONS_DIR"}  # the account's cache
    files = sorted(SOLUTIONS.glob("t*/*.py"))

    def build(path: Path) -> tuple[Path, float, subprocess.CompletedProcess[str]]:
        start = time.perf_counter()
        case = REPO / "benchmark" / path.parent.name / path.name
        proc = subprocess.run(
            [sys.executable, "-c", _BUILD_ONE, str(path), str(case)], cwd=REPO, env=env, capture_output=True, text=True
        )
        return path, time.perf_counter() - start, proc

    start = time.perf_counter()
    with ThreadPoolExecutor(jobs) as pool:
        results = list(pool.map(build, files))
    failed = [(p, proc) for p, _, proc in results if proc.returncode != 0]
    slowest = max((seconds, p) for p, seconds, _ in results) if results else (0.0, None)
    print(
        f"built {len(files) - len(failed)}/{len(files)} solutions in {time.perf_counter() - start:.1f} s"
        + (f" (slowest {slowest[1].relative_to(SOLUTIONS)}: {slowest[0]:.1f} s)" if slowest[1] else ""),
        flush=True,
    )
    for path, proc in failed:
        print(f"build failed: {path.relative_to(REPO)}\n{proc.stderr[-2000:]}", file=sys.stderr)
    return not failed


def run_harness(out: Path, extra: list[str]) -> int:
    command = [
        sys.executable,
        "-m",
        "harness",
        "run",
        "--backend",
        "cpu",
        "--solutions",
        str(SOLUTIONS),
        "--out",
        str(out),
        "--overwrite",
        "--quiet",
        *extra,
    ]
    print("$", " ".join(command[2:]).replace(str(REPO) + "/", ""), flush=True)
    return subprocess.run(command, cwd=REPO, stdout=subprocess.DEVNULL).returncode


def geometric_mean(values: list[float]) -> float | None:
    return math.exp(sum(math.log(v) for v in values) / len(values)) if values else None


def table(result: dict[str, Any]) -> str:
    """The per-case table and the summary lines, as plain text."""
    rows = []
    for case in result["cases"]:
        if case["status"] == "skipped":
            continue
        timing = case.get("timing") or {}
        ref = (timing.get("reference") or {}).get("median_ms")
        new = (timing.get("solution") or {}).get("median_ms")
        speedup = case.get("speedup")
        rows.append(
            (
                f"{case['tier']}/{case['name']}",
                f"{ref:.3f}" if ref is not None else "-",
                f"{new:.3f}" if new is not None else "-",
                f"{speedup:.2f}x" if speedup else "-",
                case["status"]
                if case["status"] == "pass"
                else f"{case['status']} ({case.get('reason') or '-'})",
            )
        )
    header = ("case", "reference ms", "candidate ms", "speedup", "status")
    widths = [max(len(r[i]) for r in [header, *rows]) for i in range(len(header))]
    right = {1, 2, 3}

    def line(cells: tuple[str, ...]) -> str:
        padded = (
            c.rjust(w) if i in right else c.ljust(w)
            for i, (c, w) in enumerate(zip(cells, widths, strict=True))
        )
        return "  ".join(padded).rstrip()

    lines = [line(header), line(tuple("-" * w for w in widths)), *(line(r) for r in rows)]
    passed = [c["speedup"] for c in result["cases"] if c["status"] == "pass" and c.get("speedup")]
    summary = result["summary"]
    geomean = geometric_mean(passed)
    lines.append("")
    lines.append(
        f"{len(rows)} cases, {len(passed)} passed; geomean speedup of the passing cases: "
        + (f"{geomean:.2f}x" if geomean else "-")
    )
    lines.append(
        f"harness summary: pass rate {summary['pass_rate']:.0%}, "
        f"weighted score {summary['total_weighted_score']:.1f} / {summary['max_weighted_score']:.1f}"
    )
    return "\n".join(lines)


def machine(result: dict[str, Any]) -> str:
    env = result.get("environment") or {}
    cpu = ((env.get("backends") or {}).get("cpu") or {}).get("cpu") or {}
    return (
        f"{cpu.get('device_name', '?')}, {cpu.get('logical_cores', '?')} logical cores, "
        f"{cpu.get('torch_threads', '?')} torch threads, torch {cpu.get('torch', '?')}"
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, help="artifact folder (default: a fresh temporary folder)")
    parser.add_argument("--no-run", action="store_true", help="only print the table of the run in --out")
    parser.add_argument("--build-only", action="store_true", help="only compile the solutions' kernels")
    parser.add_argument("--no-build", action="store_true", help="skip compiling ahead of the harness")
    parser.add_argument("extra", nargs="*", help="options passed to `harness run` (after --)")
    args = parser.parse_args(argv)
    if args.no_run and args.out is None:
        parser.error("--no-run needs --out")
    if args.build_only:
        return 0 if build_all() else 1
    if not (args.no_run or args.no_build):
        build_all()  # a failed build shows up again, with the compiler's message, in the harness result
    out = args.out or Path(tempfile.mkdtemp(prefix="cpu-solutions-"))
    code = 0 if args.no_run else run_harness(out, args.extra)
    result_file = out / "result.json"
    if not result_file.is_file():
        print(f"error: {result_file} does not exist", file=sys.stderr)
        return 2
    result = json.loads(result_file.read_text())
    print(f"machine: {machine(result)}")
    print(table(result))
    print(f"artifacts: {out}")
    return code


if __name__ == "__main__":
    sys.exit(main())
