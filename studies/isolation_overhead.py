"""What process isolation costs per case: the bundled CPU suite run with and without it.

Runs ``harness run`` on the same suite, solutions and options with ``--isolation process`` (every
candidate in a fresh sandboxed keeper + worker; the reference in a reused trusted worker) and with
``--isolation none`` (everything in the supervisor's process), alternating the two ``--repeat``
times so that changes in the machine's load hit both alike. For each case it takes the harness
overhead -- wall time of the case minus the time spent inside timed calls (loading, reference
outputs, correctness trials, warm-up, process start, transfers, cleanup) -- as the median over the
repeats, and prints the median and mean over cases for both modes and their difference: the cost
of isolation.

This is a benchmark, not a test: run it on a quiet machine.

    python3 studies/isolation_overhead.py                       # whole bundled suite
    python3 studies/isolation_overhead.py --tier t1 --tier t2   # a subset
"""

from __future__ import annotations

import argparse
import json
import os
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
        "--isolation", isolation, "--quiet", "--overwrite", *extra,
    ]  # fmt: skip
    started = time.monotonic()
    proc = subprocess.run(command, cwd=REPO, capture_output=True, text=True)
    elapsed = time.monotonic() - started
    if proc.returncode not in (0, 1):
        raise SystemExit(
            f"harness run --isolation {isolation} exited {proc.returncode}:\n{proc.stderr[-3000:]}"
        )
    cases = json.loads((out / "result.json").read_text())["cases"]
    evaluated = [c for c in cases if c["status"] != "skipped"]
    return {c["name"]: c["wall_time_s"] - c["timed_time_s"] for c in evaluated}, elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--tier", action="append", default=[], help="only this tier (repeatable)")
    parser.add_argument("--repeat", type=int, default=2, help="runs of each mode, alternating")
    parser.add_argument("--budget-ms", default="100", help="timed milliseconds per model per case")
    parser.add_argument("--rounds", default="4")
    parser.add_argument("--trials", default="3")
    parser.add_argument("--seed", default="1")
    args = parser.parse_args()
    extra = [
        "--budget-ms",
        args.budget_ms,
        "--rounds",
        args.rounds,
        "--trials",
        args.trials,
        "--seed",
        args.seed,
    ]
    for tier in args.tier:
        extra += ["--tier", tier]
    overheads: dict[str, list[dict[str, float]]] = {"process": [], "none": []}
    walls: dict[str, list[float]] = {"process": [], "none": []}
    load_before = os.getloadavg()[0]
    with tempfile.TemporaryDirectory(prefix="harness-overhead-") as tmp:
        for repeat in range(args.repeat):
            for isolation in ("process", "none") if repeat % 2 == 0 else ("none", "process"):
                cases, wall = run_once(isolation, Path(tmp) / isolation, extra)
                overheads[isolation].append(cases)
                walls[isolation].append(wall)
    names = [
        n for n in overheads["process"][0] if all(n in run for runs in overheads.values() for run in runs)
    ]
    per_case = {
        mode: {n: statistics.median(run[n] for run in runs) for n in names}
        for mode, runs in overheads.items()
    }
    print(f"{'case':28} {'process s':>10} {'none s':>10} {'isolation s':>12}")
    for name in names:
        p, n = per_case["process"][name], per_case["none"][name]
        print(f"{name:28} {p:10.3f} {n:10.3f} {p - n:12.3f}")
    print()
    print(f"{'per case (n=' + str(len(names)) + ')':28} {'process':>10} {'none':>10} {'isolation':>12}")
    for label, fn in (("median overhead s", statistics.median), ("mean overhead s", statistics.fmean)):
        p = fn(list(per_case["process"].values()))
        n = fn(list(per_case["none"].values()))
        diff = fn([per_case["process"][k] - per_case["none"][k] for k in names])
        print(f"{label:28} {p:10.3f} {n:10.3f} {diff:12.3f}")
    p_wall, n_wall = statistics.median(walls["process"]), statistics.median(walls["none"])
    print(f"{'run wall time s (median)':28} {p_wall:10.1f} {n_wall:10.1f} {p_wall - n_wall:12.1f}")
    print(f"options: {' '.join(extra)}; repeats: {args.repeat}; cores: {os.cpu_count()}; "
          f"load average before/after: {load_before:.2f}/{os.getloadavg()[0]:.2f}")  # fmt: skip


if __name__ == "__main__":
    main()
