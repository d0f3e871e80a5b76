"""Lay KernelBench problem files out as a harness suite, with the A/A (reference as candidate) solutions.

Usage::

    python3 studies/kernelbench_suite.py SRC_DIR DEST [--tier t1]

SRC_DIR holds KernelBench problem files (e.g. KernelBench/level1/*.py of a checkout of
ScalingIntelligence/KernelBench); they are copied unchanged to DEST/<tier>/ and each gets an A/A
solution in DEST/solutions/reference/<tier>/. The files are test data for measuring the harness:
they are not part of this project. Then::

    harness run --suite DEST --solutions DEST/solutions/reference --backend gpu --out runs/kb-aa
"""

from __future__ import annotations

import argparse
import shutil
from pathlib import Path

AA_SOLUTION = '''"""A/A control: the problem's own Model as ModelNew."""
from harness.solutions import reference_model

ModelNew = reference_model(__file__)
'''


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("src", type=Path)
    parser.add_argument("dest", type=Path)
    parser.add_argument("--tier", default="t1")
    args = parser.parse_args()
    cases = args.dest / args.tier
    solutions = args.dest / "solutions" / "reference" / args.tier
    cases.mkdir(parents=True, exist_ok=True)
    solutions.mkdir(parents=True, exist_ok=True)
    files = sorted(p for p in args.src.glob("*.py") if not p.name.startswith("_"))
    for path in files:
        shutil.copyfile(path, cases / path.name)
        (solutions / path.name).write_text(AA_SOLUTION)
    print(f"{len(files)} problem(s) in {cases}, A/A solutions in {solutions}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
