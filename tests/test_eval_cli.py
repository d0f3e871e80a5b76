"""`harness eval`: pass, fail, error verdicts, exit codes, and the --json contract."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

from tests.conftest import FAST_ARGS, run_harness


def test_correct_candidate_passes_with_a_speedup(suite: Path, solutions: Path) -> None:
    proc = run_harness("eval", str(suite / "t1/scale.py"), str(solutions / "t1/scale.py"), "--json", *FAST_ARGS)
    assert proc.returncode == 0, proc.stderr
    payload = json.loads(proc.stdout)  # exactly one JSON object on stdout
    result = payload["result"]
    assert payload["artifact_type"] == "case_result"
    assert result["status"] == "pass" and result["speedup"] > 0
    assert result["correctness"]["passed_trials"] == 2
    assert len(result["timing"]["solution"]["samples_ms"]) == result["timing"]["solution"]["repetitions"]


def test_wrong_candidate_fails_with_error_sizes(suite: Path, write_candidate: Callable[[str, str], Path]) -> None:
    wrong = write_candidate(
        "wrong",
        """
        import torch.nn as nn
        class ModelNew(nn.Module):
            def __init__(self, factor):
                super().__init__()
            def forward(self, x):
                return x * 2.5
        """,
    )
    proc = run_harness("eval", str(suite / "t1/scale.py"), str(wrong), "--json", *FAST_ARGS)
    assert proc.returncode == 1
    result = json.loads(proc.stdout)["result"]
    assert result["status"] == "fail"
    assert result["phase"] == "correctness_check"
    assert result["correctness"]["max_abs_error"] > 0.1
    assert "differ beyond" in result["reason"]


def test_broken_candidate_is_an_error_naming_the_file(suite: Path, write_candidate: Callable[[str, str], Path]) -> None:
    broken = write_candidate("broken", "class ModelNew(:\n")
    proc = run_harness("eval", str(suite / "t1/scale.py"), str(broken), "--json", *FAST_ARGS)
    assert proc.returncode == 1
    result = json.loads(proc.stdout)["result"]
    assert result["status"] == "error"
    assert result["phase"] == "loading_modules"
    assert str(broken) in result["reason"] and "syntax error" in result["reason"]
    assert "\n" not in result["reason"]


def test_missing_model_new_is_reported(suite: Path, write_candidate: Callable[[str, str], Path]) -> None:
    empty = write_candidate("empty", "x = 1\n")
    proc = run_harness("eval", str(suite / "t1/scale.py"), str(empty), "--json", *FAST_ARGS)
    result = json.loads(proc.stdout)["result"]
    assert result["status"] == "error" and "missing ModelNew" in result["reason"]


def test_constructor_error_reports_model_init_phase(suite: Path, write_candidate: Callable[[str, str], Path]) -> None:
    bad_init = write_candidate(
        "bad_init",
        """
        import torch.nn as nn
        class ModelNew(nn.Module):
            def __init__(self):
                super().__init__()
        """,
    )
    proc = run_harness("eval", str(suite / "t1/scale.py"), str(bad_init), "--json", *FAST_ARGS)
    result = json.loads(proc.stdout)["result"]
    assert result["status"] == "error" and result["phase"] == "model_init"


def test_missing_case_file_is_bad_input_exit_2(tmp_path: Path) -> None:
    proc = run_harness("eval", str(tmp_path / "nope.py"), str(tmp_path / "x.py"))
    assert proc.returncode == 2
    assert proc.stderr.strip().startswith("error:") and "nope.py" in proc.stderr
    assert "Traceback" not in proc.stderr


def test_unknown_option_is_a_usage_error_exit_2() -> None:
    proc = run_harness("run", "--backend", "tpu")
    assert proc.returncode == 2
    assert "tpu" in proc.stderr


def test_unavailable_backend_is_exit_3(suite: Path, solutions: Path) -> None:
    proc = run_harness("eval", str(suite / "t1/scale.py"), str(solutions / "t1/scale.py"), "--backend", "npu")
    assert proc.returncode == 3
    assert "backend npu is unavailable" in proc.stderr


def test_eval_out_writes_a_valid_artifact(suite: Path, solutions: Path, tmp_path: Path) -> None:
    out = tmp_path / "case.json"
    proc = run_harness(
        "eval", str(suite / "t2/linear_relu.py"), str(solutions / "t2/linear_relu.py"), "--out", str(out), *FAST_ARGS
    )
    assert proc.returncode == 0, proc.stderr
    assert run_harness("validate", str(out)).returncode == 0
