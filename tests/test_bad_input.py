"""Bad input everywhere, through the real CLI: one line naming the file and the fix, the documented
exit code (2 bad input, 3 environment, 4 invalid artifact, 70 a bug), and no traceback unless --debug."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import FAST_ARGS, LINEAR_CASE, REPO, SCALE_CASE, load_json, run_harness

NO_MODEL_CASE = (
    "import torch\n\ndef get_inputs():\n    return [torch.randn(3)]\n\n"
    "def get_init_inputs():\n    return []\n"
)
RAISING_INPUTS_CASE = SCALE_CASE.replace("return [torch.randn(n)]", "raise ValueError('no inputs today')")
NON_LIST_INPUTS_CASE = SCALE_CASE.replace("return [torch.randn(n)]", "return 5")
RAISING_INIT_CASE = SCALE_CASE.replace("return [2.0]", "raise RuntimeError('init broke')")


def assert_one_line_error(proc: subprocess.CompletedProcess[str], code: int, *words: str) -> None:
    """The command failed with ``code`` and a single ``error: ...`` line holding ``words``."""
    assert proc.returncode == code, proc.stderr
    assert "Traceback" not in proc.stderr
    lines = [line for line in proc.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: "), proc.stderr
    for word in words:
        assert word in lines[0], lines[0]


def make_suite(
    root: Path, cases: dict[str, str], solutions: dict[str, str] | None = None
) -> tuple[Path, Path]:
    suite, sols = root / "suite", root / "solutions"
    for name, source in cases.items():
        path = suite / f"{name}.py" if "/" in name else suite / "t1" / f"{name}.py"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(source)
    (sols / "t1").mkdir(parents=True, exist_ok=True)
    for name, source in (solutions or {}).items():
        (sols / "t1" / f"{name}.py").write_text(source)
    return suite, sols


GOOD_SCALE_SOLUTION = "import torch.nn as nn\nclass ModelNew(nn.Module):\n    def __init__(self, f):\n" \
    "        super().__init__()\n    def forward(self, x):\n        return x + x\n"  # fmt: skip


# --- files that are missing or malformed -------------------------------------------------------------


def test_case_file_with_a_syntax_error_names_file_and_line(tmp_path: Path) -> None:
    case = tmp_path / "t1" / "broken.py"
    case.parent.mkdir()
    case.write_text("import torch\nclass Model(:\n")
    solution = tmp_path / "sol.py"
    solution.write_text(GOOD_SCALE_SOLUTION)
    proc = run_harness("eval", str(case), str(solution))
    assert_one_line_error(proc, 2, f"{case}:2", "syntax error", "fix the case file")


def test_suite_with_a_malformed_case_is_rejected_before_running(tmp_path: Path) -> None:
    suite, sols = make_suite(
        tmp_path, {"scale": SCALE_CASE, "broken": "def (:\n"}, {"scale": GOOD_SCALE_SOLUTION}
    )
    proc = run_harness("run", "--suite", str(suite), "--solutions", str(sols), "--out", str(tmp_path / "o"))
    assert_one_line_error(proc, 2, "broken.py", "syntax error")


def test_missing_solution_file_is_bad_input(tmp_path: Path, suite: Path) -> None:
    proc = run_harness("eval", str(suite / "t1/scale.py"), str(tmp_path / "nope.py"))
    assert_one_line_error(proc, 2, "nope.py", "does not exist")


def test_missing_suite_and_solutions_folders_are_bad_input(
    tmp_path: Path, suite: Path, solutions: Path
) -> None:
    proc = run_harness("run", "--suite", str(tmp_path / "nosuite"), "--solutions", str(solutions))
    assert_one_line_error(proc, 2, "nosuite", "--suite")
    proc = run_harness("run", "--suite", str(suite), "--solutions", str(tmp_path / "nosols"))
    assert_one_line_error(proc, 2, "nosols", "--solutions")
    proc = run_harness("run", "--suite", str(suite))
    assert_one_line_error(proc, 2, "--solutions DIR is required")


def test_duplicate_case_names_name_both_files(tmp_path: Path) -> None:
    suite, sols = make_suite(tmp_path, {"t1/same": SCALE_CASE, "t2/same": SCALE_CASE})
    proc = run_harness("run", "--suite", str(suite), "--solutions", str(sols))
    assert_one_line_error(proc, 2, "duplicate case name 'same'", "t1/same.py", "t2/same.py", "rename")


def test_unknown_backend_declared_by_a_case_is_bad_input(tmp_path: Path) -> None:
    suite, _ = make_suite(tmp_path, {"odd": SCALE_CASE + "\nBACKENDS = ('tpu',)\n"})
    proc = run_harness("list", "--suite", str(suite))
    assert_one_line_error(proc, 2, "odd.py", "BACKENDS", "tpu")


@pytest.mark.parametrize(
    ("case_source", "words"),
    [
        (RAISING_INPUTS_CASE, ("get_inputs() raised ValueError: no inputs today",)),
        (NON_LIST_INPUTS_CASE, ("get_inputs() must return a list, got int",)),
        (RAISING_INIT_CASE, ("get_init_inputs() raised RuntimeError: init broke",)),
        (NO_MODEL_CASE, ("missing Model",)),
    ],
    ids=["get_inputs_raises", "get_inputs_not_a_list", "get_init_inputs_raises", "no_model_class"],
)
def test_a_broken_case_is_a_case_error_naming_the_case_file_and_exit_2(
    tmp_path: Path, case_source: str, words: tuple[str, ...]
) -> None:
    suite, sols = make_suite(
        tmp_path, {"bad": case_source, "linear": LINEAR_CASE}, {"bad": GOOD_SCALE_SOLUTION}
    )
    (sols / "t1" / "linear.py").write_text(LINEAR_CASE.replace("class Model(", "class ModelNew("))
    out = tmp_path / "out"
    proc = run_harness("run", "--suite", str(suite), "--solutions", str(sols), "--out", str(out), *FAST_ARGS)
    assert proc.returncode == 2, proc.stderr  # the case is at fault, not the candidate
    assert "Traceback" not in proc.stderr
    cases = {c["name"]: c for c in load_json(out / "result.json")["cases"]}
    bad = cases["bad"]
    assert bad["status"] == "error" and bad["case_error"] is True
    assert bad["reason"].startswith("reference case failed: ")
    assert str(suite / "t1" / "bad.py") in bad["reason"]
    for word in words:
        assert word in bad["reason"]
    assert cases["linear"]["status"] == "pass"  # the run went on


def test_solution_without_model_new_and_with_a_raising_import_are_errors(tmp_path: Path, suite: Path) -> None:
    for source, words in (
        ("x = 1\n", "missing ModelNew"),
        ("raise ImportError('nope')\n", "ImportError: nope"),
    ):
        solution = tmp_path / "sol.py"
        solution.write_text(source)
        proc = run_harness("eval", str(suite / "t1/scale.py"), str(solution), "--json", *FAST_ARGS)
        assert proc.returncode == 1 and "Traceback" not in proc.stderr
        result = json.loads(proc.stdout)["result"]
        assert result["status"] == "error" and words in result["reason"] and str(solution) in result["reason"]


# --- options ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("args", "words"),
    [
        (("--tier", "x1"), ("--tier 'x1' is not a tier name", "t1")),
        (("--case", "nope"), ("--case nope", "harness list")),
        (("--filter", "zzzz-no-such-thing"), ("no case in",)),
    ],
    ids=["bad_tier", "unknown_case", "filter_matches_nothing"],
)
def test_invalid_filters_are_one_line_bad_input(
    suite: Path, solutions: Path, args: tuple[str, ...], words: tuple[str, ...]
) -> None:
    proc = run_harness("run", "--suite", str(suite), "--solutions", str(solutions), *args)
    assert_one_line_error(proc, 2, *words)


@pytest.mark.parametrize(
    "args",
    [
        ("--trials", "0"),
        ("--timeout", "0"),
        ("--budget-ms", "abc"),
        ("--backend", "tpu"),
        ("--isolation", "docker"),
    ],
    ids=["trials", "timeout", "budget", "backend", "isolation"],
)
def test_invalid_option_values_are_usage_errors_exit_2(
    suite: Path, solutions: Path, args: tuple[str, ...]
) -> None:
    proc = run_harness("run", "--suite", str(suite), "--solutions", str(solutions), *args)
    assert proc.returncode == 2
    assert "Traceback" not in proc.stderr
    assert args[0] in proc.stderr


def test_a_device_that_does_not_exist_is_environment_exit_3(suite: Path, solutions: Path) -> None:
    proc = run_harness("run", "--suite", str(suite), "--solutions", str(solutions), "--devices", "7")
    assert_one_line_error(proc, 3, "devices")


# --- journals and JSON files -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("content", "words"),
    [
        ("", ("journal is empty",)),
        ("{not json\n", ("journal.jsonl:1", "not JSON")),
        ('{"format": "something-else"}\n', ("journal.jsonl:1", "not a kernel-harness journal")),
        ('{"format": "kernel-harness-journal/1"}\n', ("journal.jsonl:1", "lacks the run's options")),
        (
            '{"format": "kernel-harness-journal/1", "options": {"suite": 1}, "run_seed": 3}\n',
            ("options.suite",),
        ),
        ('{"format": "kernel-harness-journal/1"}\n[1, 2]\n{"name": "x"}\n', ("journal.jsonl:2", "corrupt")),
    ],
    ids=["empty", "header_not_json", "wrong_format", "no_options", "bad_suite", "corrupt_line"],
)
def test_corrupt_journal_is_one_line_bad_input(tmp_path: Path, content: str, words: tuple[str, ...]) -> None:
    (tmp_path / "journal.jsonl").write_text(content)
    proc = run_harness("run", "--resume", str(tmp_path))
    assert_one_line_error(proc, 2, *words)


def test_resume_without_a_journal_says_what_resume_takes(tmp_path: Path) -> None:
    proc = run_harness("run", "--resume", str(tmp_path))
    assert_one_line_error(proc, 2, "no journal here", "--out folder")


@pytest.mark.parametrize(
    ("content", "code", "words"),
    [
        (b"{nope", 2, ("corrupt.json:1:2: invalid JSON",)),
        (b"\xff\xfe\x00garbage", 2, ("not a UTF-8 text file",)),
        (b"[1, 2, 3]", 4, ('no "$schema"',)),
        (b'{"$schema": "https://example.com/other.json"}', 4, ("unknown schema",)),
    ],
    ids=["not_json", "not_utf8", "array", "unknown_schema"],
)
def test_validate_reports_bad_json_files(
    tmp_path: Path, content: bytes, code: int, words: tuple[str, ...]
) -> None:
    path = tmp_path / "corrupt.json"
    path.write_bytes(content)
    proc = run_harness("validate", str(path))
    assert proc.returncode == code, proc.stderr
    assert "Traceback" not in proc.stderr
    for word in words:
        assert word in proc.stderr


def test_validate_of_a_missing_file_is_bad_input(tmp_path: Path) -> None:
    proc = run_harness("validate", str(tmp_path / "missing.json"))
    assert proc.returncode == 2 and "missing.json" in proc.stderr and "does not exist" in proc.stderr


# --- --debug and bugs --------------------------------------------------------------------------------


def test_debug_shows_the_traceback(tmp_path: Path) -> None:
    proc = run_harness("--debug", "run", "--resume", str(tmp_path))
    assert proc.returncode != 0
    assert "Traceback" in proc.stderr and "no journal here" in proc.stderr


def test_an_internal_error_is_one_line_and_exit_70(tmp_path: Path, suite: Path, solutions: Path) -> None:
    code = (
        "import harness.evaluation.run as rc\n"
        "def broken(*args, **kwargs):\n"
        "    raise ZeroDivisionError('simulated bug')\n"
        "rc.execute_run = broken\n"
        "from harness.cli import main\n"
        f"main(['run', '--suite', {str(suite)!r}, '--solutions', {str(solutions)!r}])\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO)
    assert proc.returncode == 70
    lines = proc.stderr.strip().splitlines()
    assert lines == ["internal error: ZeroDivisionError: simulated bug; rerun with --debug for the traceback"]
