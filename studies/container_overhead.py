"""Extra wall time of `--runtime docker` over `--runtime local` on the same suite, side by side.

Usage: python3 studies/container_overhead.py [--tier t1] [--repeat 2] [--image kernel-harness/cpu:dev]
Runs `harness run` alternately with each runtime (same seed, budget and cases) and prints the
median wall time of each and their difference, per run and per case. Needs a Docker engine and
the CPU image (nox -s image-cpu). A benchmark, not a test: it prints figures, asserts nothing.
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


def one_run(runtime: str, args: argparse.Namespace, out: Path) -> tuple[float, int]:
    cmd = [
        sys.executable, "-m", "harness", "run", "--runtime", runtime, "--image", args.image,
        "--solutions", "benchmark/solutions/reference", "--tier", args.tier, "--out", str(out),
        "--overwrite", "--seed", "1", "--budget-ms", str(args.budget_ms), "--quiet",
    ]  # fmt: skip
    start = time.perf_counter()
    proc = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True)
    wall = time.perf_counter() - start
    if proc.returncode not in (0, 1):
        sys.exit(f"{runtime} run failed ({proc.returncode}): {proc.stderr[-2000:]}")
    cases = len(json.loads((out / "result.json").read_text())["cases"])
    return wall, cases


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tier", default="t1")
    parser.add_argument("--repeat", type=int, default=2)
    parser.add_argument("--budget-ms", type=float, default=100.0)
    parser.add_argument("--image", default="kernel-harness/cpu:dev")
    args = parser.parse_args()
    walls: dict[str, list[float]] = {"local": [], "docker": []}
    cases = 0
    with tempfile.TemporaryDirectory() as tmp:
        for i in range(args.repeat):
            for runtime in ("local", "docker") if i % 2 == 0 else ("docker", "local"):
                wall, cases = one_run(runtime, args, Path(tmp) / f"{runtime}{i}")
                walls[runtime].append(wall)
                print(f"run {i} {runtime:6} {wall:6.1f} s", flush=True)
    local, docker = statistics.median(walls["local"]), statistics.median(walls["docker"])
    print(f"\n{cases} cases of {args.tier}, {args.repeat} run(s) each, medians:")
    print(f"  local  {local:6.1f} s")
    print(f"  docker {docker:6.1f} s")
    print(f"  extra  {docker - local:+6.1f} s per run, {(docker - local) / max(cases, 1):+.2f} s per case")


if __name__ == "__main__":
    main()
