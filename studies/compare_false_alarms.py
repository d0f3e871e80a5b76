"""A/A check of `harness compare`: run the reference solution set twice, compare, count false alarms.

Both runs evaluate the same candidates (the bundled reference set, each case against its own
reference), so every `improved` or `regressed` verdict is a false alarm. The issue's bar: at least
95 % of cases without one. Not a test (it takes minutes and measures the machine); run it by hand:

    python3 studies/compare_false_alarms.py                       # t1 and t2, two runs
    python3 studies/compare_false_alarms.py --budget-ms 400 --pairs 3 --tier t1

Prints the verdict counts per pair and in total, the false-alarm rate and the noise seen.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
from collections import Counter
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def run_once(out: Path, tiers: list[str], budget_ms: float, backend: str) -> Path:
    tier_args = [arg for tier in tiers for arg in ("--tier", tier)]
    command = [
        sys.executable,
        "-m",
        "harness",
        "run",
        "--backend",
        backend,
        "--solutions",
        str(REPO / "benchmark" / "solutions" / "reference"),
        "--suite",
        str(REPO / "benchmark"),
        *tier_args,
        "--out",
        str(out),
        "--overwrite",
        "--budget-ms",
        str(budget_ms),
        "--quiet",
    ]
    proc = subprocess.run(command, cwd=REPO, capture_output=True, text=True, check=False)
    if proc.returncode not in (0, 1):
        sys.exit(f"harness run failed ({proc.returncode}): {proc.stderr.strip()[-2000:]}")
    return out / "result.json"


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--tier", action="append", dest="tiers", help="tiers to run (default: t1 and t2)")
    parser.add_argument("--budget-ms", type=float, default=400.0, help="timed ms per model per case")
    parser.add_argument("--pairs", type=int, default=1, help="how many A/A pairs of runs")
    parser.add_argument("--backend", default="cpu", help="backend to run on")
    parser.add_argument("--threshold", type=float, default=5.0, help="compare --threshold (percent)")
    parser.add_argument("--alpha", type=float, default=0.01, help="compare --alpha")
    parser.add_argument("--keep", type=Path, default=None, help="keep the run folders here")
    args = parser.parse_args()
    tiers = args.tiers or ["t1", "t2"]

    import json

    from harness.analysis.compare import compare_runs

    total: Counter[str] = Counter()
    noise: list[float] = []
    root = args.keep or Path(tempfile.mkdtemp(prefix="aa-"))
    for pair in range(args.pairs):
        a = run_once(root / f"pair{pair}" / "a", tiers, args.budget_ms, args.backend)
        b = run_once(root / f"pair{pair}" / "b", tiers, args.budget_ms, args.backend)
        result = compare_runs(
            json.loads(a.read_text()),
            json.loads(b.read_text()),
            threshold_pct=args.threshold,
            alpha=args.alpha,
        )
        counts = Counter({k: v for k, v in result.counts().items() if v})
        alarms = [
            f"{c.key} {c.verdict} ({c.why})" for c in result.cases if c.verdict in ("improved", "regressed")
        ]
        print(f"pair {pair}: {dict(counts)}")
        for line in alarms:
            print(f"  false alarm: {line}")
        total.update(counts)
        noise += [c.noise for c in result.cases if c.noise is not None]
    cases = sum(total.values())
    alarms = total["improved"] + total["regressed"]
    print(f"total over {args.pairs} pair(s), {cases} case comparisons: {dict(total)}")
    print(f"false alarms: {alarms} ({alarms / cases:.1%} of cases; bar: <= 5%)" if cases else "no cases")
    if noise:
        noise.sort()
        print(
            f"largest robust CV per case: median {noise[len(noise) // 2]:.1%}, "
            f"max {noise[-1]:.1%}; share <= 10%: {sum(n <= 0.10 for n in noise) / len(noise):.0%}"
        )
    print(f"runs kept in {root}")


if __name__ == "__main__":
    main()
