"""harness.solutions: the helpers solution files import (reference model, C++ loader and snippets).

The C++ snippets are pasted into each solution's source, and the build name hashes that full text,
because the harness's build cache keys builds by the solution *file* alone: a snippet change must still
lead to a new build. The slow end-to-end check of that (through the build cache) is in
tests/test_cpu_solutions.py; these tests need no compiler, except the last one (a failing compile,
which fails in about a second).
"""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

import pytest

from harness.solutions import cpp_extension, cpp_source, reference_model, snippet_names
from tests.conftest import FAST_ARGS, REPO, run_harness

CPU_SET = REPO / "benchmark" / "solutions" / "cpu"
SNIPPETS = {path.stem: path.read_text() for path in cpp_extension.SNIPPET_DIR.glob("*.h")}


def test_reference_model_is_the_cases_model() -> None:
    model = reference_model(str(REPO / "benchmark" / "solutions" / "reference" / "t1" / "relu.py"))
    assert model.__name__ == "Model" and model.__module__.startswith("_harness_reference_for_t1_relu")


def test_cpp_source_pastes_each_snippet_once_after_what_it_needs_then_the_solutions_own() -> None:
    text = cpp_source("demo", "int own_code();\n", ["softmax", "exp"])
    labels = re.findall(r'^#line 1 "(.+)"$', text, re.M)
    assert labels == [
        "harness/solutions/cpp/bits.h",
        "harness/solutions/cpp/exp.h",
        "harness/solutions/cpp/softmax.h",
        "demo.cpp",
    ]
    assert text.endswith('#line 1 "demo.cpp"\nint own_code();\n')
    assert text.count("static inline float exp_nonpos(") == 1
    assert not re.search(r'^#include "', text, re.M), "a snippet include reached the compiler"


def test_snippet_lines_keep_their_numbers_for_compiler_messages() -> None:
    text = cpp_source("demo", "", ["exp"])
    pasted = text.split('#line 1 "harness/solutions/cpp/exp.h"\n', 1)[1].split("#line 1", 1)[0]
    assert len(pasted.splitlines()) == len(SNIPPETS["exp"].splitlines())


def test_an_unknown_snippet_is_an_error_that_lists_the_known_ones() -> None:
    with pytest.raises(ValueError, match=r"demo: no C\+\+ snippet 'gemm'.*known: .*linear"):
        cpp_source("demo", "", ["gemm"])


def test_the_build_name_changes_when_a_shared_snippet_changes(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A changed snippet names a new build, although the solution file (the build cache's key) is the same."""
    snippets = tmp_path / "cpp"
    shutil.copytree(cpp_extension.SNIPPET_DIR, snippets)
    monkeypatch.setattr(cpp_extension, "SNIPPET_DIR", snippets)
    flags = ["-O3"]

    def name() -> str:
        return cpp_extension.build_name("gelu", cpp_source("gelu", "own", ["erf"]), ["f"], flags)

    before = name()
    assert name() == before
    (snippets / "bits.h").write_text((snippets / "bits.h").read_text() + "// not used by erf\n")
    assert name() == before, "a snippet the solution does not use changed its build"
    (snippets / "erf.h").write_text((snippets / "erf.h").read_text() + "// edited\n")
    assert name() != before


def test_the_build_name_covers_the_bound_functions_and_the_flags() -> None:
    source = cpp_source("demo", "int f(); int g();", [])
    names = {
        cpp_extension.build_name("demo", source, ["f"], ["-O3"]),
        cpp_extension.build_name("demo", source, ["f", "g"], ["-O3"]),
        cpp_extension.build_name("demo", source, ["f"], ["-O3", "-march=x86-64-v3"]),
    }
    assert len(names) == 3


def _definitions(snippet: str) -> list[str]:
    """The first line of every function definition in a snippet (``static inline float erf_f(float x) {``)."""
    return [line for line in snippet.splitlines() if re.match(r"^(static|at::Tensor)\b.*\b\w+\(.*[{,}]$", line)]


def test_no_cpu_solution_carries_its_own_copy_of_the_loader_or_of_a_snippet() -> None:
    """The drift guard: shared code lives once, in harness/solutions; a pasted copy would drift."""
    assert snippet_names() == sorted(SNIPPETS)
    signatures = {line: name for name, text in SNIPPETS.items() for line in _definitions(text)}
    assert "static inline float erf_f(float x) {" in signatures
    found = []
    for path in sorted(CPU_SET.glob("t*/*.py")):
        text = path.read_text()
        assert "load_cpp_extension(" in text and "load_inline" not in text, path
        found += [f"{path.name}: {signatures[line.strip()]}.h" for line in text.splitlines() if line in signatures]
    assert not found, found


def test_every_snippet_is_used_by_a_cpu_solution() -> None:
    used: set[str] = set()
    for path in CPU_SET.glob("t*/*.py"):
        match = re.search(r"snippets=(\[[^\]]*\])", path.read_text())
        if match:
            used.update(json.loads(match.group(1)))
    pasted = set(re.findall(r'^#line 1 "harness/solutions/cpp/(\w+)\.h"$', cpp_source("x", "", sorted(used)), re.M))
    assert pasted == set(SNIPPETS)


def test_a_solution_whose_cpp_does_not_compile_is_an_error_result(tmp_path: Path) -> None:
    solution = tmp_path / "t1" / "gelu.py"
    solution.parent.mkdir()
    solution.write_text(
        "import torch.nn as nn\n"
        "from harness.solutions import load_cpp_extension\n\n"
        "class ModelNew(nn.Module):\n"
        "    def __init__(self):\n"
        "        super().__init__()\n"
        f'        self.k = load_cpp_extension("broken_{tmp_path.name}", "int broken( {{\\n", ["broken"])\n'
    )
    proc = run_harness("eval", str(REPO / "benchmark" / "t1" / "gelu.py"), str(solution), "--json", *FAST_ARGS)
    assert proc.returncode == 1, proc.stderr
    result = json.loads(proc.stdout)["result"]
    assert (result["status"], result["phase"]) == ("error", "model_init")
    assert "Error building extension 'kh_broken_" in result["reason"], result["reason"]
