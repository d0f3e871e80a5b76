"""The command line keeps its documented contract (issue 17): exit codes, errors and outputs as README.md says.

One test per behaviour; each runs the real CLI (`python -m harness`) where the behaviour is the CLI's, and
keeps to tiny cases and FAST_ARGS.
"""

from __future__ import annotations

import json
import os
import re
import stat
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

from tests.conftest import FAST_ARGS, GOOD_SCALE, REPO, SCALE_CASE, load_json, run_harness

README = REPO / "README.md"

# Three ways a case file breaks its contract (the candidate is not at fault in any of them).
NO_GET_INPUTS_CASE = SCALE_CASE.replace("def get_inputs():\n    return [torch.randn(n)]\n", "")
TENSOR_INPUTS_CASE = SCALE_CASE.replace("return [torch.randn(n)]", "return torch.randn(n)")
UNKNOWN_SIZE_CASE = SCALE_CASE.replace('SIZES = {"gpu": {"n": 1 << 20}}', 'SIZES = {"cpu": {"length": 8}}')

PRINTING_SCALE = GOOD_SCALE.replace("        return x + x", "        print('candidate says hi')\n        return x + x")
WRONG_SCALE = GOOD_SCALE.replace("return x + x", "return x * 3")


def error_lines(proc: subprocess.CompletedProcess[str]) -> list[str]:
    return [line for line in proc.stderr.splitlines() if line.startswith("error: ")]


def one_case(root: Path, name: str, source: str, tier: str = "t1") -> Path:
    path = root / tier / f"{name}.py"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(source)
    return path


# --- a broken case is the case's fault -----------------------------------------------------------------


def test_a_broken_case_exits_2_naming_the_case_file_and_is_reported_as_a_broken_case(tmp_path: Path) -> None:
    suite, sols = tmp_path / "suite", tmp_path / "sols"
    broken = {
        "no_inputs": (NO_GET_INPUTS_CASE, "missing get_inputs"),
        "tensor_inputs": (TENSOR_INPUTS_CASE, "get_inputs() must return a list, got Tensor; return a list"),
        "unknown_size": (UNKNOWN_SIZE_CASE, "overrides undefined name(s) ['length']; define them"),
    }
    for name, (source, _) in broken.items():
        one_case(suite, name, source)
        one_case(sols, name, GOOD_SCALE)
    one_case(suite, "scale", SCALE_CASE)
    one_case(sols, "scale", GOOD_SCALE)

    # eval: exit 2, one error line naming the case file and the fix; --json still prints the one result.
    case = suite / "t1" / "tensor_inputs.py"
    proc = run_harness("eval", str(case), str(sols / "t1" / "tensor_inputs.py"), "--json", *FAST_ARGS)
    assert proc.returncode == 2, proc.stderr
    assert "Traceback" not in proc.stderr
    (line,) = error_lines(proc)
    assert str(case) in line and "return a list such as [x]" in line and "not the candidate" in line
    result = json.loads(proc.stdout)["result"]
    assert result["status"] == "error" and result["case_error"] is True and result["score"] == 0

    # run: the good case still runs; each broken one is reported as a broken case, apart in the summary.
    out = tmp_path / "out"
    proc = run_harness("run", "--suite", str(suite), "--solutions", str(sols), "--out", str(out), *FAST_ARGS)
    assert proc.returncode == 2, proc.stdout[-2000:] + proc.stderr[-2000:]
    run = load_json(out / "result.json")
    by_name = {c["name"]: c for c in run["cases"]}
    assert by_name["scale"]["status"] == "pass" and by_name["scale"]["case_error"] is False
    for name, (_, words) in broken.items():
        assert by_name[name]["case_error"] is True, by_name[name]["reason"]
        assert words in by_name[name]["reason"]
        assert any(str(suite / "t1" / f"{name}.py") in line for line in error_lines(proc)), proc.stderr
    summary = run["summary"]
    assert summary["broken_cases"] == 3 and summary["evaluated"] == 1 and summary["pass_rate"] == 1.0
    assert "broken case 3" in proc.stdout and proc.stdout.count("broken case") >= 4  # the rows and the summary


# --- --debug ------------------------------------------------------------------------------------------


def test_debug_keeps_the_exit_code_prints_the_traceback_and_works_after_the_command(
    tmp_path: Path, suite: Path, solutions: Path
) -> None:
    missing = tmp_path / "nosuch.py"
    for args in (("--debug", "eval", str(missing), "sol.py"), ("eval", "--debug", str(missing), "sol.py")):
        proc = run_harness(*args)
        assert proc.returncode == 2, proc.stderr
        assert "Traceback" in proc.stderr and f"error: case file {missing} does not exist" in proc.stderr
    gpu = run_harness("eval", str(suite / "t1/scale.py"), str(solutions / "t1/scale.py"), "--backend", "gpu", "--debug")
    assert gpu.returncode == 3, gpu.stderr
    assert "Traceback" in gpu.stderr and "error: backend gpu is unavailable" in gpu.stderr


# --- nothing is written before the backend and devices are checked ------------------------------------


def test_a_run_refused_for_its_backend_or_devices_leaves_no_folder_behind(
    tmp_path: Path, suite: Path, solutions: Path
) -> None:
    out = tmp_path / "r1"
    run = ("run", "--suite", str(suite), "--solutions", str(solutions), "--out", str(out))
    for _ in range(2):  # the second try meets the same check, not "already holds a run"
        proc = run_harness(*run, "--backend", "gpu")
        assert proc.returncode == 3, proc.stderr
        assert not out.exists()
    proc = run_harness(*run, "--devices", "7")
    assert proc.returncode == 3, proc.stderr
    assert not out.exists()


# --- a run that would evaluate nothing -----------------------------------------------------------------


def test_a_run_with_nothing_to_evaluate_exits_2_and_a_solution_matching_no_case_is_named(
    tmp_path: Path, suite: Path
) -> None:
    empty = tmp_path / "empty"
    empty.mkdir()
    proc = run_harness("run", "--suite", str(suite), "--solutions", str(empty), "--out", str(tmp_path / "o1"))
    assert proc.returncode == 2, proc.stderr
    (line,) = error_lines(proc)
    assert "nothing to evaluate" in line and str(empty) in line
    assert not (tmp_path / "o1").exists()

    misspelled = tmp_path / "typo"
    one_case(misspelled, "scael", GOOD_SCALE)
    proc = run_harness("run", "--suite", str(suite), "--solutions", str(misspelled), "--out", str(tmp_path / "o2"))
    assert proc.returncode == 2, proc.stderr
    assert f"warning: {misspelled / 't1' / 'scael.py'} matches no case (did you mean scale?)" in proc.stderr
    assert "nothing to evaluate" in error_lines(proc)[0]

    # Every case with a solution is skipped on the backend: nothing to evaluate either.
    npu = tmp_path / "npu"
    one_case(npu, "npu_only", GOOD_SCALE)
    proc = run_harness("run", "--suite", str(suite), "--solutions", str(npu), "--out", str(tmp_path / "o3"))
    assert proc.returncode == 2 and "nothing to evaluate" in error_lines(proc)[0], proc.stderr

    # eval of a case that does not run on the backend: documented exit 2, one line saying so.
    proc = run_harness("eval", str(suite / "t1" / "npu_only.py"), str(npu / "t1" / "npu_only.py"))
    assert proc.returncode == 2, proc.stderr
    (line,) = error_lines(proc)
    assert "was not evaluated" in line and "case runs only on backend(s) npu" in line


# --- --json ----------------------------------------------------------------------------------------------


@pytest.mark.parametrize("isolation", ["none", "process"])
def test_eval_json_is_one_object_on_stdout_with_the_candidates_prints_inside(
    tmp_path: Path, suite: Path, isolation: str
) -> None:
    candidate = tmp_path / "printing.py"
    candidate.write_text(PRINTING_SCALE)
    case = str(suite / "t1/scale.py")
    proc = run_harness("eval", case, str(candidate), "--json", "--isolation", isolation, *FAST_ARGS)
    assert proc.returncode == 0, proc.stderr
    payload = json.loads(proc.stdout)  # one JSON object and nothing else: a stray print would break this
    assert "candidate says hi" in payload["result"]["output"]["stdout"]


# --- --runtime docker and folders the container cannot read -----------------------------------------


def test_docker_runtime_refuses_a_folder_its_user_cannot_read_before_starting_a_container(tmp_path: Path) -> None:
    from harness.containers import ContainerError
    from harness.containers.runtime import check_readable

    private = Path(tempfile.mkdtemp(dir=tmp_path))  # mode 0700, like `mktemp -d`
    case = one_case(private, "scale", SCALE_CASE)
    solution = private / "sol.py"
    solution.write_text(GOOD_SCALE)
    with pytest.raises(ContainerError, match=re.escape(f"chmod -R a+rX {private.resolve()}")):
        check_readable([(private, [case])], user="4242:4242")
    check_readable([(private, [case])], user=f"{os.getuid()}:{os.getgid()}")  # its owner may
    if os.geteuid() != 0:
        return  # the container runs as the caller, who owns the folder: nothing to refuse
    # Run by root, the container runs as uid 1000: refused with exit 3 before any engine is asked.
    proc = run_harness("eval", str(case), str(solution), "--runtime", "docker", env={"DOCKER_HOST": "tcp://0.0.0.0:9"})
    assert proc.returncode == 3, proc.stderr
    (line,) = error_lines(proc)
    assert "uid 1000" in line and str(private.resolve()) in line and "chmod -R a+rX" in line


# --- --resume with other options ------------------------------------------------------------------------


def test_resume_refuses_options_that_differ_from_the_journal(tmp_path: Path, suite: Path, solutions: Path) -> None:
    run = tmp_path / "run"
    run.mkdir()
    options = {"suite": str(suite), "solutions": str(solutions), "backend": "cpu", "trials": 2}
    header = {"format": "kernel-harness-journal/1", "options": options, "run_seed": 5, "cases": []}
    (run / "journal.jsonl").write_text(json.dumps(header) + "\n")
    other = tmp_path / "other"
    other.mkdir()
    for args, flag in (
        (("--solutions", str(other)), "--solutions"),
        (("--backend", "gpu"), "--backend"),
        (("--trials", "5"), "--trials"),
        (("--out", str(tmp_path / "elsewhere")), "--out"),
    ):
        proc = run_harness("run", "--resume", str(run), *args)
        assert proc.returncode == 2, proc.stderr
        (line,) = error_lines(proc)
        assert flag in line and "Traceback" not in proc.stderr


# --- one device option -------------------------------------------------------------------------------------


def test_every_command_spells_the_device_option_devices_and_a_malformed_value_is_a_usage_error(
    suite: Path, solutions: Path
) -> None:
    case, solution = str(suite / "t1/scale.py"), str(solutions / "t1/scale.py")
    for command in ("eval", "run", "calibrate", "agent"):
        text = run_harness(command, "--help").stdout
        assert "--devices" in text and not re.search(r"--device\b(?!s)", text), command
    for args in (
        ("eval", case, solution, "--devices", "abc"),
        ("eval", case, solution, "--devices", "0,1"),  # eval runs on one device
        ("run", "--suite", str(suite), "--solutions", str(solutions), "--devices", "0,x"),
        ("calibrate", "--devices", "-1"),
    ):
        proc = run_harness(*args)
        assert proc.returncode == 2, (args, proc.stderr)
        assert "--devices" in proc.stderr and "Traceback" not in proc.stderr


# --- report of an eval --out file ---------------------------------------------------------------------------


def test_report_accepts_the_case_result_written_by_eval_out(tmp_path: Path) -> None:
    from harness.artifacts.payloads import case_payload
    from harness.artifacts.writing import write_artifact
    from harness.results import CaseResult
    from tests.analysis_support import make_run

    run = make_run(1)
    result = CaseResult.from_json(run["cases"][0])
    path = write_artifact(tmp_path / "case.json", case_payload(result, run["provenance"], run["environment"]))
    for fmt in ("table", "markdown", "html"):
        proc = run_harness("report", str(path), "--format", fmt)
        assert proc.returncode == 0, proc.stderr
        assert result.name in proc.stdout


# --- unstable timing ----------------------------------------------------------------------------------------


def test_unstable_timing_is_marked_in_the_table_and_counted_in_the_summary_line(tmp_path: Path) -> None:
    from tests.analysis_support import make_run, write_json

    run = make_run(3, cv=0.3)  # every series far above the 10 % threshold
    assert all(c["timing"]["solution"]["stable"] is False for c in run["cases"])
    for key in ("unstable", "broken_cases"):
        run["summary"].pop(key, None)  # as an older file has it
    path = write_json(tmp_path / "result.json", run)
    proc = run_harness("report", str(path))
    assert proc.returncode == 0, proc.stderr
    rows = [line for line in proc.stdout.splitlines() if "case_0" in line]
    assert len(rows) == 3 and all("unstable" in row for row in rows)
    assert "unstable timing (spread > 10%) 3" in proc.stdout


# --- help texts and the exit-code table -------------------------------------------------------------------


def test_every_option_of_every_command_is_explained_in_its_help() -> None:
    import click

    from harness.cli import cli

    unexplained = []
    for name, command in sorted(cli.commands.items()):
        ctx = click.Context(command, info_name=name, parent=click.Context(cli))
        unexplained += [
            f"{name} {param.opts[0]}"
            for param in command.get_params(ctx)
            if isinstance(param, click.Option) and not param.hidden and not param.help
        ]
    assert unexplained == []


def _readme_exit_codes() -> dict[int, str]:
    section = README.read_text().split("### Exit codes", 1)[1].split("\n#", 1)[0]
    return {int(code): meaning for code, meaning in re.findall(r"^\| (\d+) \| (.+) \|$", section, re.MULTILINE)}


def test_readme_exit_codes_are_listed_by_help_and_each_is_produced_by_a_command(
    tmp_path: Path, suite: Path, solutions: Path
) -> None:
    from tests.analysis_support import make_run, write_json

    documented = _readme_exit_codes()
    assert set(documented) >= {0, 1, 2, 3, 4, 5, 70, 130}
    help_text = run_harness("--help").stdout
    listed = {int(code) for code in re.findall(r"^\s+(\d+)\s{2,}\S", help_text, re.MULTILINE)}
    assert listed == set(documented), help_text

    case = str(suite / "t1/scale.py")
    wrong = tmp_path / "wrong.py"
    wrong.write_text(WRONG_SCALE)
    invalid = tmp_path / "invalid.json"
    invalid.write_text(json.dumps({**make_run(1), "cases": "not a list"}))
    old = write_json(tmp_path / "old.json", make_run(2, seed=1))
    new = write_json(tmp_path / "new.json", make_run(2, seed=2, statuses={1: ("fail", "correctness_check", "no")}))

    def patched(module: str, name: str, exc: str, *args: str) -> list[str]:
        code = (
            f"import {module} as m\ndef boom(*a, **k):\n    raise {exc}\nm.{name} = boom\n"
            f"from harness.cli import main\nmain({list(args)!r})\n"
        )
        return [sys.executable, "-c", code]

    commands: dict[int, list[str]] = {
        0: ["schema"],
        1: ["eval", case, str(wrong), *FAST_ARGS],
        2: ["eval", str(tmp_path / "nosuch.py"), str(wrong)],
        3: ["eval", case, str(wrong), "--backend", "gpu"],
        4: ["validate", str(invalid)],
        5: ["compare", str(old), str(new), "--fail-on", "broken", "-q"],
    }
    plan_args = ("run", "--suite", str(suite), "--solutions", str(solutions))
    raw = {
        70: patched("harness.evaluation.run", "execute_run", "ZeroDivisionError('bug')", *plan_args),
        130: patched("harness.evaluation.run", "plan_run", "KeyboardInterrupt", *plan_args),
    }
    produced = {}
    for code in documented:
        if code in commands:
            proc = run_harness(*commands[code])
        else:
            proc = subprocess.run(raw[code], capture_output=True, text=True, cwd=REPO, timeout=600)
        produced[code] = proc.returncode
    assert produced == {code: code for code in documented}


# --- harness list away from the repository ---------------------------------------------------------------


def test_list_outside_the_repository_says_where_it_looked_and_how_to_point_it_at_a_suite(tmp_path: Path) -> None:
    proc = run_harness("list", cwd=tmp_path, env={"PYTHONPATH": str(REPO)})
    assert proc.returncode == 2, proc.stderr
    (line,) = error_lines(proc)
    assert str(tmp_path / "benchmark") in line and "--suite DIR" in line
    (tmp_path / "notasuite").mkdir()
    proc = run_harness("list", "--suite", "notasuite", cwd=tmp_path, env={"PYTHONPATH": str(REPO)})
    assert proc.returncode == 2, proc.stderr
    (line,) = error_lines(proc)
    assert str(tmp_path / "notasuite") in line and "t1/" in line and "--suite DIR" in line


# --- file modes ------------------------------------------------------------------------------------------


def test_every_artifact_and_the_journal_get_one_file_mode_from_the_umask(tmp_path: Path) -> None:
    from harness.artifacts.writing import write_artifact
    from harness.evaluation.journal import Journal
    from tests.analysis_support import make_run

    previous = os.umask(0o027)
    try:
        write_artifact(tmp_path / "result.json", make_run(1))
        Journal.create(tmp_path / "journal.jsonl", {"options": {}}).close()
    finally:
        os.umask(previous)
    modes = {p.name: stat.S_IMODE(p.stat().st_mode) for p in tmp_path.iterdir()}
    assert modes == {"result.json": 0o640, "journal.jsonl": 0o640}


# --- the README's one-minute example ------------------------------------------------------------------------


def test_the_readme_one_minute_example_evaluates_as_shown(tmp_path: Path) -> None:
    section = README.read_text().split("## Evaluate your own kernel in one minute", 1)[1].split("\n## ", 1)[0]
    blocks = re.findall(r"```python\n(.*?)```", section, re.DOTALL)
    assert len(blocks) == 2, "the section shows the case, then the ModelNew file"
    names = re.findall(r"^# (\S+\.py)$", section, re.MULTILINE)[:2]
    for name, source in zip(names, blocks, strict=True):
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_text(source)
    proc = run_harness("eval", *(str(tmp_path / n) for n in names), "--json", *FAST_ARGS)
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout)["result"]["status"] == "pass"


def test_readme_documents_validate_of_folders_and_the_file_mode_policy() -> None:
    text = README.read_text()
    assert "harness validate results/cpu/" in text and "--deep" in text
    assert "0666 less the umask" in text

