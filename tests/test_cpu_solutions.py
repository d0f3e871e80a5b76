"""The `cpu` example solutions (benchmark/solutions/cpu): each one passes `harness eval` on its case.

Cost: every solution compiles its C++ kernels with torch.utils.cpp_extension on first use, about 10 to
25 s each on a cold cache (so a first run of this file takes several minutes); the builds are cached
under $TORCH_EXTENSIONS_DIR or ~/.cache/kernel-harness/torch_extensions, and a warm rerun only pays the
harness's process start-up per case. Hence the `slow` mark and the generous timeouts.
"""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from tests.conftest import REPO, run_harness

SOLUTIONS = REPO / "benchmark" / "solutions" / "cpu"
SOLUTION_FILES = sorted(SOLUTIONS.glob("t*/*.py"))
FAST_EVAL = ["--json", "--budget-ms", "5", "--rounds", "2", "--trials", "2", "--timeout", "600"]


def _case_for(solution: Path) -> Path:
    return REPO / "benchmark" / solution.parent.name / solution.name


def test_every_cpu_solution_has_a_case() -> None:
    assert len(SOLUTION_FILES) >= 10
    missing = [str(p.relative_to(REPO)) for p in SOLUTION_FILES if not _case_for(p).is_file()]
    assert not missing, f"solutions without a case: {missing}"


@pytest.mark.slow
@pytest.mark.timeout(900)  # a cold compile of one solution is tens of seconds, more on a loaded machine
@pytest.mark.parametrize("solution", SOLUTION_FILES, ids=lambda p: f"{p.parent.name}/{p.stem}")
def test_cpu_solution_passes(solution: Path) -> None:
    proc = run_harness("eval", str(_case_for(solution)), str(solution), *FAST_EVAL, timeout=900)
    assert proc.stdout.strip(), proc.stderr
    result = json.loads(proc.stdout)["result"]
    assert result["status"] == "pass", (result["status"], result["phase"], result["reason"], result["output"])
    assert proc.returncode == 0, proc.stderr
    checks = result["correctness"]
    assert checks["inputs_unchanged"] and checks["timed_output_ok"] and checks["fresh_output_ok"]


_LOAD_TWICE = textwrap.dedent(
    """
    import importlib.util, json, sys, time
    spec = importlib.util.spec_from_file_location("solution", sys.argv[1])
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    start = time.perf_counter()
    ext = module._kernels()
    print(json.dumps({"seconds": time.perf_counter() - start, "library": ext.__file__}))
    """
)


@pytest.mark.slow
@pytest.mark.timeout(600)
def test_second_load_reuses_the_cached_build() -> None:
    """A fresh process finds the library built before and loads it without compiling."""
    solution = str(SOLUTIONS / "t1" / "gelu.py")

    def load() -> dict:
        command = [sys.executable, "-c", _LOAD_TWICE, solution]
        proc = subprocess.run(command, capture_output=True, text=True, timeout=550, check=True)
        return json.loads(proc.stdout.strip().splitlines()[-1])

    first = load()  # compiles only if no earlier test (or run) has
    built = Path(first["library"]).stat().st_mtime_ns
    second = load()
    assert second["library"] == first["library"]
    assert Path(second["library"]).stat().st_mtime_ns == built, "the cached library was rebuilt"
    assert second["seconds"] < 5.0, f"warm load took {second['seconds']:.2f} s"
