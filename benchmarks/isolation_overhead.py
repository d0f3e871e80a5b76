"""What process isolation costs per case: the bundled CPU suite run with and without it.

Runs ``harness run`` twice on the same suite, solutions and options -- once with ``--isolation
process`` (every candidate in a fresh, sandboxed worker; the reference in a reused trusted worker)
and once with ``--isolation none`` (everything in the supervisor's process) -- and prints, for each,
the per-case harness overhead: wall time of the case minus the time spent inside timed calls
(loading, reference outputs, correctness trials, warm-up, process start, pipes, cleanup).

This is a benchmark, not a test: run it on a quiet machine.

    python3 benchmarks/isolation_overhead.py                       # whole bundled suite
    python3 benchmarks/isolation_overhead.py --tier t1 --tier t2   # a subset
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def run_once(isolation: str, out: Path, extra: list[str]) -> tuple[dict[str, float], float]:
    """Per-case overhead in seconds (name -> wall - timed) of one run, and the run's wall time."""
    command = [
        sys.executable, "-m", "harness", "run", "--backend", "cpu", "--suite", str(REPO / "benchmark"),
        "--solutions", str(REPO / "benchmark" / "solutions" / "reference"), "--out", str(out),
        "--isolation", isolation, "--quiet", *extra,
    ]  # fmt: skip
    started = time.monotonic()
    proc = subprocess.run(command, cwd=REPO, capture_output=True, text=True)
    elapsed = time.monotonic() - started
    if proc.returncode not in (0, 1):
        raise SystemExit(f"harness run --isolation {isolation} exited {proc.returncode}:\n{proc.stderr[-3000:]}")
    cases = json.loads((out / "result.json").read_text())["cases"]
    evaluated = [c for c in cases if c["status"] != "skipped"]
    return {c["name"]: c["wall_time_s"] - c["timed_time_s"] for c in evaluated}, elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tier", action="append", default=[], help="only this tier (repeatable)")
    parser.add_argument("--budget-ms", default="100", help="timed milliseconds per model per case")
    parser.add_argument("--rounds", default="4")
    parser.add_argument("--trials", default="3")
    parser.add_argument("--seed", default="1")
    args = parser.parse_args()
    extra = ["--budget-ms", args.budget_ms, "--rounds", args.rounds, "--trials", args.trials, "--seed", args.seed]
    for tier in args.tier:
        extra += ["--tier", tier]
    with tempfile.TemporaryDirectory(prefix="harness-overhead-") as tmp:
        runs = {}
        for isolation in ("process", "none"):
            runs[isolation] = run_once(isolation, Path(tmp) / isolation, extra)
    (proc_cases, proc_wall), (none_cases, none_wall) = runs["process"], runs["none"]
    names = [n for n in proc_cases if n in none_cases]
    print(f"{'case':28} {'process s':>10} {'none s':>10} {'isolation s':>12}")
    for name in names:
        p, n = proc_cases[name], none_cases[name]
        print(f"{name:28} {p:10.3f} {n:10.3f} {p - n:12.3f}")
    print()
    print(f"{'per case (n=' + str(len(names)) + ')':28} {'process':>10} {'none':>10} {'isolation':>12}")
    for label, fn in (("median overhead s", statistics.median), ("mean overhead s", statistics.fmean)):
        p = fn([proc_cases[n] for n in names])
        n = fn([none_cases[n] for n in names])
        diff = fn([proc_cases[k] - none_cases[k] for k in names])
        print(f"{label:28} {p:10.3f} {n:10.3f} {diff:12.3f}")
    print(f"{'run wall time s':28} {proc_wall:10.1f} {none_wall:10.1f} {proc_wall - none_wall:12.1f}")
    print("options:", " ".join(extra))


if __name__ == "__main__":
    main()
