"""The library API of `harness/__init__.py`: what people who use the harness as a library call."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import harness
from tests.conftest import REPO

FAST = {"trials": 1, "budget_ms": 5.0, "rounds": 2, "seed": 7}


def test_importing_harness_imports_neither_torch_nor_the_workers() -> None:
    code = "import sys, harness; print(sorted(m for m in ('torch', 'harness.evaluation.runner') if m in sys.modules))"
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO, check=True)
    assert proc.stdout.strip() == "[]"


def test_evaluate_run_validate_and_compare_through_the_library(tmp_path: Path, suite: Path, solutions: Path) -> None:
    result = harness.evaluate_case(suite / "t1/scale.py", solutions / "t1/scale.py", **FAST)
    assert result.status == "pass" and result.speedup and result.correctness and result.correctness.passed_trials == 1

    first = harness.run_suite(solutions, suite, names=["scale"], out=tmp_path / "a", **FAST)
    second = harness.run_suite(solutions, suite, names=["scale"], out=tmp_path / "b", **FAST)
    assert [r.status for r in first.results] == ["pass"] and first.exit_code == 0
    assert harness.validate_artifact(tmp_path / "a" / "result.json").ok

    comparison = harness.compare_results(tmp_path / "a" / "result.json", tmp_path / "b" / "result.json")
    assert sum(comparison.counts().values()) == 1
    del second
