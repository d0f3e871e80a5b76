"""`harness run`: artifacts, schema validity with a stock validator, journal and resume."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import jsonschema
from referencing import Registry, Resource

from harness.evaluation.journal import read_journal
from tests.conftest import FAST_ARGS, REPO, load_json, run_harness


def stock_validator_errors(instance: dict) -> list[str]:
    """Validate with plain jsonschema and the schema files on disk (none of the harness's code)."""
    schemas = [json.loads(p.read_text()) for p in (REPO / "schemas" / "v1").glob("*.schema.json")]
    registry = Registry().with_resources((s["$id"], Resource.from_contents(s)) for s in schemas)
    schema = next(s for s in schemas if s["$id"] == instance["$schema"])
    validator = jsonschema.Draft202012Validator(
        schema, registry=registry, format_checker=jsonschema.Draft202012Validator.FORMAT_CHECKER
    )
    return [e.message for e in validator.iter_errors(instance)]


def test_run_writes_valid_result_and_leaderboard(suite: Path, solutions: Path, tmp_path: Path) -> None:
    out = tmp_path / "out"
    proc = run_harness("run", "--suite", str(suite), "--solutions", str(solutions), "--out", str(out), *FAST_ARGS)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    result = load_json(out / "result.json")
    board = load_json(out / "leaderboard.json")
    for artifact in (result, board):
        assert stock_validator_errors(artifact) == []
        assert artifact["provenance"]["command_line"][0] in ("harness", "__main__.py", "-m")
        assert artifact["environment"]["harness"]
    statuses = {c["name"]: c["status"] for c in result["cases"]}
    assert statuses == {"npu_only": "skipped", "scale": "pass", "linear_relu": "pass"}
    assert result["complete"] is True
    assert result["summary"]["pass_rate"] == 1.0
    assert result["summary"]["overhead_per_case_s"] is not None
    assert board["entries"][0]["rank"] == 1
    assert "harness overhead per evaluated case" in proc.stdout
    assert run_harness("validate", str(out / "result.json"), str(out / "leaderboard.json")).returncode == 0


def test_journal_holds_one_line_per_case_and_resume_finishes_the_run(
    suite: Path, solutions: Path, tmp_path: Path
) -> None:
    out = tmp_path / "out"
    first = run_harness(
        "run", "--suite", str(suite), "--solutions", str(solutions), "--out", str(out), "--case", "scale",
        "--seed", "7", *FAST_ARGS,
    )  # fmt: skip
    assert first.returncode == 0, first.stderr
    state = read_journal(out / "journal.jsonl")
    assert [r.name for r in state.results] == ["scale"]
    # Simulate an interruption after the first case: widen the planned cases and resume.
    header = json.loads((out / "journal.jsonl").read_text().splitlines()[0])
    header["options"]["names"] = []
    lines = (out / "journal.jsonl").read_text().splitlines()
    (out / "journal.jsonl").write_text("\n".join([json.dumps(header), *lines[1:]]) + "\n")
    resumed = run_harness("run", "--resume", str(out))
    assert resumed.returncode == 0, resumed.stderr
    assert "1 case(s) already finished" in resumed.stderr
    names = sorted(c["name"] for c in load_json(out / "result.json")["cases"])
    assert names == ["linear_relu", "npu_only", "scale"]


def test_existing_run_folder_is_not_overwritten_silently(suite: Path, solutions: Path, tmp_path: Path) -> None:
    out = tmp_path / "out"
    args = ("run", "--suite", str(suite), "--solutions", str(solutions), "--out", str(out), "--case", "scale")
    assert run_harness(*args, *FAST_ARGS).returncode == 0
    again = run_harness(*args, *FAST_ARGS)
    assert again.returncode == 2 and "--resume" in again.stderr


def test_corrupt_journal_line_is_named(tmp_path: Path) -> None:
    journal = tmp_path / "journal.jsonl"
    journal.write_text('{"format": "kernel-harness-journal/1", "options": {}}\n{not json\n{"name": 1}\n')
    proc = run_harness("run", "--resume", str(tmp_path))
    assert proc.returncode == 2
    assert "journal.jsonl:2: corrupt journal line" in proc.stderr


def test_failing_candidate_makes_run_exit_1_and_keeps_other_results(
    suite: Path, solutions: Path, tmp_path: Path
) -> None:
    (solutions / "t1" / "scale.py").write_text("import torch.nn as nn\nclass ModelNew(nn.Module):\n    pass\n")
    out = tmp_path / "out"
    proc = run_harness("run", "--suite", str(suite), "--solutions", str(solutions), "--out", str(out), *FAST_ARGS)
    assert proc.returncode == 1
    cases = {c["name"]: c for c in load_json(out / "result.json")["cases"]}
    assert cases["scale"]["status"] == "error" and cases["linear_relu"]["status"] == "pass"


def test_validate_never_imports_torch(suite: Path, solutions: Path, tmp_path: Path) -> None:
    out = tmp_path / "case.json"
    assert run_harness(
        "eval", str(suite / "t1/scale.py"), str(solutions / "t1/scale.py"), "--out", str(out), *FAST_ARGS
    ).returncode == 0
    code = (
        "import sys; sys.modules['torch'] = None\n"
        "from harness.cli import main\n"
        f"main(['validate', {str(out)!r}])\n"
    )
    import subprocess

    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO)
    assert proc.returncode == 0, proc.stderr
    assert "ok" in proc.stdout


def test_validate_reports_invalid_and_corrupt_files(tmp_path: Path) -> None:
    corrupt = tmp_path / "corrupt.json"
    corrupt.write_text("{nope")
    proc = run_harness("validate", str(corrupt))
    assert proc.returncode == 2 and "invalid JSON" in proc.stderr
    wrong = tmp_path / "wrong.json"
    wrong.write_text(json.dumps({"$schema": "https://kernel-harness.dev/schemas/v1/run-result.schema.json"}))
    proc = run_harness("validate", str(wrong))
    assert proc.returncode == 4 and "INVALID" in proc.stderr


def test_invalid_payload_is_kept_aside_with_errors(tmp_path: Path) -> None:
    import pytest

    from harness.artifacts.writing import envelope, write_artifact
    from harness.errors import ValidationFailed

    payload = envelope("run_result", {"command_line": [], "config": {}}, {"python": "3", "harness": "0"})
    with pytest.raises(ValidationFailed):
        write_artifact(tmp_path / "result.json", payload)
    assert not (tmp_path / "result.json").exists()
    assert (tmp_path / "result.invalid.json").exists()
    assert "required property" in (tmp_path / "result.invalid.errors.txt").read_text()


def test_list_and_schema_commands() -> None:
    proc = run_harness("list", "--suite", str(REPO / "benchmark"), "--json")
    assert proc.returncode == 0
    assert len(json.loads(proc.stdout)) >= 1
    proc = run_harness("schema")
    assert "v1/run-result" in proc.stdout
    proc = run_harness("schema", "case-result")
    assert json.loads(proc.stdout)["$id"].endswith("case-result.schema.json")


def test_run_with_baseline_writes_a_valid_eval_report(suite: Path, solutions: Path, tmp_path: Path) -> None:
    base = tmp_path / "base"
    args = ("run", "--suite", str(suite), "--solutions", str(solutions), "--seed", "3", *FAST_ARGS)
    assert run_harness(*args, "--out", str(base)).returncode == 0
    new = tmp_path / "new"
    report = tmp_path / "eval.json"
    proc = run_harness(
        *args, "--out", str(new), "--baseline", str(base / "result.json"), "--eval-report", str(report)
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    payload = load_json(report)
    assert payload["artifact_type"] == "eval_report"
    assert stock_validator_errors(payload) == []
    assert "eval report:" in proc.stdout


def test_eval_report_without_baseline_is_bad_input(suite: Path, solutions: Path, tmp_path: Path) -> None:
    proc = run_harness(
        "run", "--suite", str(suite), "--solutions", str(solutions), "--out", str(tmp_path / "o"),
        "--eval-report", str(tmp_path / "e.json"),
    )  # fmt: skip
    assert proc.returncode == 2 and "--baseline" in proc.stderr


def test_validate_deep_recomputes_the_figures_and_catches_an_edited_one(
    tmp_path: Path, suite: Path, solutions: Path
) -> None:
    out = tmp_path / "run"
    proc = run_harness("run", "--suite", str(suite), "--solutions", str(solutions), "--out", str(out), *FAST_ARGS)
    assert proc.returncode in (0, 1), proc.stderr
    deep = run_harness("validate", "--deep", str(out))  # a folder: every artifact in it
    assert deep.returncode == 0, deep.stderr
    assert "figures recomputed" in deep.stdout and "leaderboard.json" in deep.stdout
    payload = json.loads((out / "result.json").read_text())
    case = next(c for c in payload["cases"] if c["status"] == "pass")
    case["speedup"] *= 2  # schema-valid, but not what the samples say
    edited = tmp_path / "edited.json"
    edited.write_text(json.dumps(payload))
    assert run_harness("validate", str(edited)).returncode == 0
    proc = run_harness("validate", "--deep", str(edited))
    assert proc.returncode == 4 and "speedup is" in proc.stderr and "the medians give" in proc.stderr
    empty = tmp_path / "empty"
    empty.mkdir()
    proc = run_harness("validate", str(empty))
    assert proc.returncode == 2 and "no *.json artifact" in proc.stderr


def test_validate_deep_judges_stability_by_the_rule_of_the_file_it_reads() -> None:
    from harness.artifacts.recheck import recheck_case
    from harness.timing import STABLE_CV
    from tests.analysis_support import make_run

    case = make_run(1, cv=0.12)["cases"][0]
    assert recheck_case(case) == []
    series = case["timing"]["solution"]
    series["stable"] = not series["stable"]  # forged
    assert any("solution stable is" in p for p in recheck_case(case))
    # a file from before schema 1.2 has no spread: its `stable` was judged on the plain CV
    for side in ("reference", "solution"):
        old = case["timing"][side]
        del old["spread"]
        old["stable"] = old["cv"] <= STABLE_CV
    assert recheck_case(case) == []
