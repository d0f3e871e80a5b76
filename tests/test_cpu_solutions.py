"""The `cpu` example solutions (benchmark/solutions/cpu): each one passes `harness eval` on its case.

Cost: every solution compiles its C++ kernels with torch.utils.cpp_extension, 8 to 30 s each on a cold
cache. Inside the harness a build lands in the candidate's scratch folder and is kept by the harness's
build cache (harness/build_cache.py) for the next run of the same file; here the kernels are first
built outside the harness, two at a time, into ~/.cache/kernel-harness/torch_extensions
(`studies/cpu_solutions.py --build-only`, about two minutes cold, 15 s warm), which is faster than
compiling one case after another, and the candidates load those builds read-only. A warm rerun of
this file pays mostly the harness's process start-up per case. Hence the `slow` mark and the
generous timeouts.
"""

from __future__ import annotations

import json
import os
import shutil
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
    command = [sys.executable, str(REPO / "studies" / "cpu_solutions.py"), "--build-only"]
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


# Builds ModelNew (whose constructor loads the kernels) in a fresh process; prints how long that took
# and which library it loaded. The checkout is the working directory, so its harness is imported.
_LOAD = textwrap.dedent(
    """
    import json, sys, time
    from pathlib import Path
    from harness.suite.cases import case_from_file, import_file, load_case
    init = load_case(case_from_file(Path(sys.argv[2])), "cpu", module_name="case").init_inputs()
    new_class = import_file(Path(sys.argv[1]), "solution").ModelNew
    start = time.perf_counter()
    ext = new_class(*init).kernels
    print(json.dumps({"seconds": time.perf_counter() - start, "library": ext.__file__}))
    """
)


def _load(solution: Path, env: dict[str, str] | None = None) -> dict:
    command = [sys.executable, "-c", _LOAD, str(solution), str(_case_for(solution))]
    proc = subprocess.run(command, cwd=REPO, capture_output=True, text=True, timeout=550, env=env, check=True)
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


# Appended to a copy of a solution: says on stdout whether its kernels were compiled in this process (the
# library is newer than the import) or found built (the harness's build cache restores files with their
# modification times). The harness keeps the candidate's stdout in the case result.
_REPORT_BUILD = """

import os as _os
import time as _time

_STARTED = _time.time()
_load_cpp_extension = load_cpp_extension


def load_cpp_extension(*args, **kwargs):
    kernels = _load_cpp_extension(*args, **kwargs)
    print("COMPILED" if _os.path.getmtime(kernels.__file__) >= _STARTED else "LOADED", flush=True)
    return kernels
"""


def _reporting_copy(tmp_path: Path) -> Path:
    """A copy of t1/gelu whose C++ differs (so no build of it exists anywhere) and that reports builds."""
    source = (SOLUTIONS / "t1" / "gelu.py").read_text()
    assert "#include" in source
    copy = tmp_path / "t1" / "gelu.py"
    copy.parent.mkdir()
    copy.write_text(source.replace("#include", f"// build-cache test {tmp_path.name}\n#include", 1) + _REPORT_BUILD)
    return copy


def _eval_stdout(solution: Path, cache: Path, cwd: Path = REPO) -> str:
    proc = run_harness(
        "eval", str(_case_for(SOLUTIONS / "t1" / "gelu.py")), str(solution), *FAST_EVAL, "--build-cache", str(cache),
        cwd=cwd, timeout=900,
    )  # fmt: skip
    result = json.loads(proc.stdout)["result"]
    assert result["status"] == "pass", (result["reason"], result["output"])
    stdout: str = result["output"]["stdout"]
    return stdout


@pytest.mark.slow
@pytest.mark.timeout(900)
def test_the_harness_keeps_a_candidates_build_for_its_next_run(tmp_path: Path) -> None:
    """`make bench` twice: the second run of an unchanged solution loads its kernels, compiles nothing."""
    copy = _reporting_copy(tmp_path)
    cache = tmp_path / "build-cache"
    assert "COMPILED" in _eval_stdout(copy, cache)
    assert "LOADED" in _eval_stdout(copy, cache), "the second run compiled again"


@pytest.mark.slow
@pytest.mark.timeout(900)
def test_a_changed_shared_snippet_is_compiled_although_the_old_build_is_restored(tmp_path: Path) -> None:
    """The build cache keys builds by the solution file; the C++ snippets of harness.solutions are not in
    it. After a snippet changes, the harness restores the old build, and the loader must not use it."""
    checkout = tmp_path / "checkout"  # a harness whose snippet this test may edit
    shutil.copytree(REPO / "harness", checkout / "harness", ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copytree(REPO / "schemas", checkout / "schemas")
    copy = _reporting_copy(tmp_path)
    cache = tmp_path / "build-cache"
    assert "COMPILED" in _eval_stdout(copy, cache, cwd=checkout)
    erf = checkout / "harness" / "solutions" / "cpp" / "erf.h"
    erf.write_text(erf.read_text() + "// changed after the first run\n")
    assert "COMPILED" in _eval_stdout(copy, cache, cwd=checkout), "the build of the old snippet was used"
    (entry,) = cache.iterdir()
    builds = [p.name for p in (entry / ".cache" / "torch_extensions").iterdir()]
    assert len(builds) == 2 and all(b.startswith("kh_gelu_") for b in builds), builds  # the old one was there
    assert "LOADED" in _eval_stdout(copy, cache, cwd=checkout), "the build of the new snippet was not kept"
