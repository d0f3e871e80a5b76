"""The `cpu` example solutions (benchmark/solutions/cpu): each one passes `harness eval` on its case.

Cost: every solution compiles its C++ kernels with torch.utils.cpp_extension, 8 to 30 s each on a cold
cache. Inside the harness a build lands in the candidate's scratch folder and is kept by the harness's
build cache (harness/build_cache.py) for the next run of the same file; here the kernels are first
built outside the harness, two at a time, into ~/.cache/kernel-harness/torch_extensions
(`benchmarks/cpu_solutions.py --build-only`, about two minutes cold, 15 s warm), which is faster than
compiling one case after another, and the candidates load those builds read-only. A warm rerun of
this file pays mostly the harness's process start-up per case. Hence the `slow` mark and the
generous timeouts.
"""

from __future__ import annotations

import json
import os
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


@pytest.fixture(scope="module")
def built() -> None:
    """Every solution's kernels compiled into the account's cache (a no-op when they are)."""
    command = [sys.executable, str(REPO / "benchmarks" / "cpu_solutions.py"), "--build-only"]
    proc = subprocess.run(command, capture_output=True, text=True, timeout=1500)
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_every_cpu_solution_has_a_case() -> None:
    assert len(SOLUTION_FILES) >= 10
    missing = [str(p.relative_to(REPO)) for p in SOLUTION_FILES if not _case_for(p).is_file()]
    assert not missing, f"solutions without a case: {missing}"


@pytest.mark.slow
@pytest.mark.timeout(1800)  # the first test also waits for the cold builds of all solutions
@pytest.mark.parametrize("solution", SOLUTION_FILES, ids=lambda p: f"{p.parent.name}/{p.stem}")
def test_cpu_solution_passes(solution: Path, built: None) -> None:
    proc = run_harness("eval", str(_case_for(solution)), str(solution), *FAST_EVAL, timeout=900)
    assert proc.stdout.strip(), proc.stderr
    result = json.loads(proc.stdout)["result"]
    assert result["status"] == "pass", (result["status"], result["phase"], result["reason"], result["output"])
    assert proc.returncode == 0, proc.stderr
    checks = result["correctness"]
    assert checks["inputs_unchanged"] and checks["timed_output_ok"] and checks["fresh_output_ok"]


_LOAD = textwrap.dedent(
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


def _load(solution: Path, env: dict[str, str] | None = None) -> dict:
    command = [sys.executable, "-c", _LOAD, str(solution)]
    proc = subprocess.run(command, capture_output=True, text=True, timeout=550, env=env, check=True)
    return json.loads(proc.stdout.strip().splitlines()[-1])


@pytest.mark.slow
@pytest.mark.timeout(600)
def test_second_load_reuses_the_cached_build() -> None:
    """A fresh process finds the library built before and loads it without compiling."""
    solution = SOLUTIONS / "t1" / "gelu.py"
    first = _load(solution)  # compiles only if no earlier test (or run) has
    built = Path(first["library"]).stat().st_mtime_ns
    second = _load(solution)
    assert second["library"] == first["library"]
    assert Path(second["library"]).stat().st_mtime_ns == built, "the cached library was rebuilt"
    assert second["seconds"] < 5.0, f"warm load took {second['seconds']:.2f} s"


@pytest.mark.slow
@pytest.mark.timeout(600)
def test_a_confined_candidate_reads_the_accounts_build(tmp_path: Path) -> None:
    """With HOME and TORCH_EXTENSIONS_DIR in a scratch folder (as the harness sets them), the build
    made outside is found and loaded as it is: nothing is compiled or written in the scratch folder."""
    solution = SOLUTIONS / "t1" / "gelu.py"
    outside = _load(solution, {k: v for k, v in os.environ.items() if k != "TORCH_EXTENSIONS_DIR"})
    scratch_ext = tmp_path / ".cache" / "torch_extensions"
    confined = _load(solution, {**os.environ, "HOME": str(tmp_path), "TORCH_EXTENSIONS_DIR": str(scratch_ext)})
    assert confined["library"] == outside["library"]
    assert not scratch_ext.exists() or not any(scratch_ext.iterdir())
    assert confined["seconds"] < 5.0, f"load took {confined['seconds']:.2f} s"


@pytest.mark.slow
@pytest.mark.timeout(900)
def test_the_harness_keeps_a_candidates_build_for_its_next_run(tmp_path: Path) -> None:
    """`make bench` twice: the second run of an unchanged solution loads its kernels, compiles nothing.

    A copy of a solution with a changed C++ source (so no build of it exists anywhere) that says on
    stdout when it compiles; the harness keeps that stdout in the case result.
    """
    source = (SOLUTIONS / "t1" / "gelu.py").read_text()
    marker = "    from torch.utils.cpp_extension import load_inline  # a tenth of a second: only when building"
    assert marker in source and "#include" in source
    copy = tmp_path / "t1" / "gelu.py"
    copy.parent.mkdir()
    copy.write_text(
        source.replace("#include", f"// build-cache test {tmp_path.name}\n#include", 1).replace(
            marker, '    print("COMPILING")\n' + marker
        )
    )
    cache = tmp_path / "build-cache"
    outputs = []
    for _ in range(2):
        proc = run_harness(
            "eval",
            str(_case_for(SOLUTIONS / "t1" / "gelu.py")),
            str(copy),
            *FAST_EVAL,
            "--build-cache",
            str(cache),
            timeout=900,
        )
        result = json.loads(proc.stdout)["result"]
        assert result["status"] == "pass", (result["reason"], result["output"])
        outputs.append(result["output"]["stdout"])
    assert "COMPILING" in outputs[0]
    assert "COMPILING" not in outputs[1], "the second run compiled again"
