"""Nothing lost: a supervisor killed mid-run (SIGKILL) or interrupted (Ctrl-C) leaves a valid partial
result marked incomplete and no worker behind, and `--resume` ends where an uninterrupted run ends."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from harness.sandbox.process import descendants, process_parents
from tests.conftest import REPO, run_harness
from tests.fault.candidates import TINY_CASE
from tests.test_run_and_artifacts import stock_validator_errors

ARGS = ["--budget-ms", "5", "--rounds", "2", "--trials", "2", "--timeout", "60", "--seed", "11", "--quiet"]

# Each candidate takes a moment per call, so that the supervisor can be killed between cases.
_SLOW_GOOD = """
import time
import torch.nn as nn


class ModelNew(nn.Module):
    def __init__(self, factor):
        super().__init__()

    def forward(self, x):
        time.sleep(0.02)
        return x + x
"""
_WRONG = _SLOW_GOOD.replace("return x + x", "return x * 3")
_BROKEN = "class ModelNew(:\n"
SOLUTIONS = {
    "c1": _SLOW_GOOD,
    "c2": _WRONG,
    "c3": _SLOW_GOOD,
    "c4": _BROKEN,
    "c5": _SLOW_GOOD,
    "c6": _SLOW_GOOD,
}


def _suite(root: Path) -> tuple[Path, Path]:
    suite, solutions = root / "suite", root / "solutions"
    (suite / "t1").mkdir(parents=True)
    (solutions / "t1").mkdir(parents=True)
    for name, source in SOLUTIONS.items():
        (suite / "t1" / f"{name}.py").write_text(TINY_CASE)
        (solutions / "t1" / f"{name}.py").write_text(source)
    return suite, solutions


def _verdicts(result: dict[str, Any]) -> dict[str, tuple[str, Any]]:
    return {c["name"]: (c["status"], c["correctness"]) for c in result["cases"]}


def _start(suite: Path, solutions: Path, out: Path, args: list[str] = ARGS) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "harness", "run", "--suite", str(suite), "--solutions", str(solutions),
         "--out", str(out), *args],
        cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip


def _kill_when(proc: subprocess.Popen[str], ready: Any) -> list[int]:
    """SIGKILL the supervisor once ``ready()`` returns; returns the worker pids it had then."""
    try:
        ready()
        workers = descendants(proc.pid)
        assert workers, "the supervisor has no worker processes"
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
    return workers


def _wait_for_cases(proc: subprocess.Popen[str], journal: Path, count: int, timeout_s: float = 300) -> None:
    """Wait until the journal holds ``count`` finished cases (its header is line 1)."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if journal.exists() and len(journal.read_text().splitlines()) >= count + 1:
            return
        assert proc.poll() is None, "the run ended before it could be interrupted"
        time.sleep(0.05)
    raise AssertionError(f"no {count} cases in {journal} after {timeout_s} s")


def _all_gone(pids: list[int], timeout_s: float = 20) -> list[int]:
    """The pids still alive (not zombies) after waiting up to ``timeout_s``."""
    deadline = time.monotonic() + timeout_s
    alive = pids
    while time.monotonic() < deadline:
        alive = [p for p in pids if _running(p)]
        if not alive:
            break
        time.sleep(0.1)
    return alive


def _running(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat", "rb") as fh:
            state = fh.read().rsplit(b")", 1)[1].split()[0]
    except OSError:
        return False
    return state not in (b"Z", b"X")


@pytest.fixture(scope="module")
def uninterrupted(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    suite, solutions = _suite(tmp_path_factory.mktemp("whole"))
    out = suite.parent / "out"
    proc = run_harness("run", "--suite", str(suite), "--solutions", str(solutions), "--out", str(out), *ARGS)
    assert proc.returncode == 1, proc.stderr[-2000:]
    return json.loads((out / "result.json").read_text())


def test_killed_supervisor_leaves_partial_result_and_resume_matches_uninterrupted_run(
    tmp_path: Path, uninterrupted: dict[str, Any]
) -> None:
    suite, solutions = _suite(tmp_path)
    out = tmp_path / "out"
    proc = _start(suite, solutions, out)
    workers = _kill_when(proc, lambda: _wait_for_cases(proc, out / "journal.jsonl", 2))
    assert _all_gone(workers) == [], "worker processes outlived the killed supervisor"

    partial = json.loads((out / "result.json").read_text())
    assert stock_validator_errors(partial) == []
    assert partial["complete"] is False
    # result.json is rewritten right after each journal line: it may lag the journal by one case.
    journaled = [json.loads(line)["name"] for line in (out / "journal.jsonl").read_text().splitlines()[1:]]
    assert len(journaled) - 1 <= len(partial["cases"]) <= len(journaled) < len(SOLUTIONS)
    assert {c["name"] for c in partial["cases"]} <= set(journaled)

    resumed = run_harness("run", "--resume", str(out))
    assert resumed.returncode == 1, resumed.stderr[-2000:]
    assert "already finished" in resumed.stderr
    final = json.loads((out / "result.json").read_text())
    assert stock_validator_errors(final) == []
    assert final["complete"] is True
    assert _verdicts(final) == _verdicts(uninterrupted)
    journal_names = [json.loads(line)["name"] for line in (out / "journal.jsonl").read_text().splitlines()[1:]]
    assert sorted(journal_names) == sorted(SOLUTIONS)  # each case journaled exactly once


def test_ctrl_c_exits_130_with_a_valid_result_marked_interrupted(tmp_path: Path, uninterrupted: dict[str, Any]) -> None:
    suite, solutions = _suite(tmp_path)
    out = tmp_path / "out"
    proc = _start(suite, solutions, out)
    try:
        _wait_for_cases(proc, out / "journal.jsonl", 1)
        workers = descendants(proc.pid)
        proc.send_signal(signal.SIGINT)
        _, stderr = proc.communicate(timeout=120)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 130, stderr[-2000:]
    assert "Traceback" not in stderr
    assert "--resume" in stderr
    partial = json.loads((out / "result.json").read_text())
    assert stock_validator_errors(partial) == []
    assert partial["complete"] is False and partial["interrupted"] is True
    assert _all_gone(workers) == []

    resumed = run_harness("run", "--resume", str(out))
    assert resumed.returncode == 1, resumed.stderr[-2000:]
    assert _verdicts(json.loads((out / "result.json").read_text())) == _verdicts(uninterrupted)


def test_sigterm_is_handled_like_ctrl_c(tmp_path: Path) -> None:
    suite, solutions = _suite(tmp_path)
    out = tmp_path / "out"
    proc = _start(suite, solutions, out)
    try:
        _wait_for_cases(proc, out / "journal.jsonl", 1)
        proc.send_signal(signal.SIGTERM)
        _, stderr = proc.communicate(timeout=120)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 130, stderr[-2000:]
    assert json.loads((out / "result.json").read_text())["interrupted"] is True


def test_artifacts_are_written_atomically_and_journal_survives_a_cut_line(tmp_path: Path) -> None:
    from harness.evaluation.journal import Journal, read_journal
    from harness.results import CaseResult

    journal = Journal.create(tmp_path / "journal.jsonl", {"options": {}, "run_seed": 1, "cases": []})
    journal.append(CaseResult(name="a", tier="t1", backend="cpu", status="pass"))
    journal.close()
    with (tmp_path / "journal.jsonl").open("a") as fh:
        fh.write('{"name": "b", "tier"')  # the supervisor died while writing this line
    state = read_journal(tmp_path / "journal.jsonl")
    assert [r.name for r in state.results] == ["a"] and state.dropped_partial_line
    # Appending after the cut line starts a fresh line rather than gluing onto the fragment.
    again = Journal(tmp_path / "journal.jsonl")
    again.append(CaseResult(name="c", tier="t1", backend="cpu", status="fail"))
    again.close()
    assert [r.name for r in read_journal(tmp_path / "journal.jsonl").results] == ["a", "c"]
    leftovers = [p.name for p in tmp_path.iterdir() if p.name.endswith(".tmp")]
    assert leftovers == []
    assert os.access(tmp_path / "journal.jsonl", os.R_OK)


def test_journal_changed_behind_the_writers_back_is_restored(tmp_path: Path) -> None:
    from harness.evaluation.journal import Journal, read_journal
    from harness.results import CaseResult

    path = tmp_path / "journal.jsonl"
    journal = Journal.create(path, {"options": {}, "run_seed": 1, "cases": []})
    journal.append(CaseResult(name="a", tier="t1", backend="cpu", status="fail"))
    path.write_text(path.read_text().replace('"fail"', '"pass"'))  # a forged verdict
    journal.append(CaseResult(name="b", tier="t1", backend="cpu", status="pass"))
    journal.close()
    assert journal.repairs == 1
    assert [r.status for r in read_journal(path).results] == ["fail", "pass"]


def _stopped_worker(pid: int, role: str) -> int | None:
    """A stopped worker below the supervisor ``pid``: the reference (a child of the fork server, frozen
    while the candidate is timed) or a candidate worker (a child of its keeper, one level deeper, frozen
    while the reference is timed)."""
    table = process_parents()
    want = 2 if role == "reference" else 3
    for child in descendants(pid, table):
        depth, up = 1, table[child][0]
        while up != pid and up in table:
            depth, up = depth + 1, table[up][0]
        if table[child][1] == "T" and depth == want:
            return child
    return None


def _when_stopped(proc: subprocess.Popen[str], role: str) -> Any:
    def ready() -> None:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline and proc.poll() is None:
            if _stopped_worker(proc.pid, role) is not None:
                return
            time.sleep(0.02)
        raise AssertionError(f"never saw the {role} stopped")

    return ready


@pytest.mark.parametrize("frozen", ["reference", "candidate"])
def test_a_supervisor_killed_while_a_worker_is_stopped_leaves_no_process(tmp_path: Path, frozen: str) -> None:
    """Each worker is SIGSTOPped while the other is timed; both must still end with a killed run."""
    suite, solutions = _suite(tmp_path)
    # The side that is timed while the other is stopped is the slow one.
    (suite / "t1" / "c1.py").write_text(
        TINY_CASE.replace("return x * self.factor", "__import__('time').sleep(0.02)\n        return x * self.factor")
        if frozen == "candidate"
        else TINY_CASE
    )
    (solutions / "t1" / "c1.py").write_text(
        _SLOW_GOOD if frozen == "reference" else _SLOW_GOOD.replace("time.sleep(0.02)", "pass")
    )
    slow = ["--budget-ms", "4000", "--rounds", "4", "--trials", "1", "--timeout", "120", "--case", "c1", "--quiet"]
    proc = _start(suite, solutions, tmp_path / "out", slow)
    workers = _kill_when(proc, _when_stopped(proc, frozen))
    assert _all_gone(workers) == [], "worker processes outlived the killed supervisor"
