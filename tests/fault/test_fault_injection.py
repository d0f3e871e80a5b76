"""Fault injection: one `harness run` over candidates that each misbehave in one way.

Every candidate must get its verdict, the run must finish, the well-behaved candidates' results must
be the same as in a run without the others, no process a candidate started may outlive the run, and
no file outside the candidates' scratch folders may change. A second run without Landlock checks the
fallback: writes outside scratch are detected, reported and undone where the harness can.
"""

from __future__ import annotations

import hashlib
import json
import os
import random
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from harness.sandbox.landlock import landlock_abi
from tests.conftest import run_harness
from tests.fault.candidates import FAULTS, FILE_WRITERS, GOOD_NAMES, HEAVY_CASE, TINY_CASE, Fault, render

FAULT_ARGS = ["--budget-ms", "5", "--rounds", "2", "--trials", "2", "--timeout", "15", "--seed", "7"]
MANAGED = {"journal.jsonl", "result.json", "leaderboard.json"}
BY_NAME = {f.name: f for f in FAULTS}


@dataclass
class FaultRun:
    """What one run left behind: its process, results by case, and the state of the files around it."""

    root: Path
    suite: Path
    out: Path
    home: Path
    marker: str
    returncode: int
    stderr: str
    result: dict[str, Any]
    cases: dict[str, dict[str, Any]]
    files_before: dict[str, str]
    files_after: dict[str, str]
    out_files: set[str]
    leftovers: list[int]
    values: dict[str, str]


def _file_hashes(*roots: Path, top_level: tuple[Path, ...] = ()) -> dict[str, str]:
    """sha256 of every file under ``roots`` and of the files directly in ``top_level``."""
    found = {}
    for root in roots:
        for path in sorted(root.rglob("*")):
            if path.is_file() and "__pycache__" not in path.parts:
                found[str(path)] = hashlib.sha256(path.read_bytes()).hexdigest()
    for folder in top_level:
        for path in sorted(folder.iterdir()):
            if path.is_file():
                found[str(path)] = hashlib.sha256(path.read_bytes()).hexdigest()
    return found


def _processes_with(marker: str) -> list[int]:
    """Pids of processes whose command line holds ``marker`` as an argument."""
    needle = marker.encode()
    found = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/cmdline", "rb") as fh:
                args = fh.read().split(b"\0")
        except OSError:
            continue
        if needle in args:
            found.append(int(entry))
    return found


def _run(root: Path, faults: list[Fault], env: dict[str, str] | None = None) -> FaultRun:
    suite, solutions, home, out = root / "suite", root / "solutions", root / "home", root / "out"
    for folder in (suite / "t1", solutions / "t1", home):
        folder.mkdir(parents=True)
    (home / "notes.txt").write_text("the user's own file\n")
    marker = str(random.randrange(10**8, 10**9))
    values = {
        "marker": marker,
        "victim_case": str(suite / "t1" / "zzz_good_last.py"),
        "out_file": str(out / "forged.json"),
        "home_file": str(home / "forged.txt"),
    }
    for fault in faults:
        (suite / "t1" / f"{fault.name}.py").write_text(HEAVY_CASE if fault.heavy else TINY_CASE)
        (solutions / "t1" / f"{fault.name}.py").write_text(render(fault.source, **values))
    before = _file_hashes(suite, solutions, top_level=(home,))
    proc = run_harness(
        "run", "--suite", str(suite), "--solutions", str(solutions), "--out", str(out), "--quiet",
        *FAULT_ARGS,
        env={"HOME": str(home), **(env or {})}, timeout=900,
    )  # fmt: skip
    result = json.loads((out / "result.json").read_text())
    return FaultRun(
        root=root,
        suite=suite,
        out=out,
        home=home,
        marker=marker,
        returncode=proc.returncode,
        stderr=proc.stderr,
        result=result,
        cases={c["name"]: c for c in result["cases"]},
        files_before=before,
        files_after=_file_hashes(suite, solutions, top_level=(home,)),
        out_files={p.name for p in out.iterdir()},
        leftovers=_processes_with(marker),
        values=values,
    )


@pytest.fixture(scope="module")
def fault_run(tmp_path_factory: pytest.TempPathFactory) -> FaultRun:
    return _run(tmp_path_factory.mktemp("faults"), FAULTS)


@pytest.fixture(scope="module")
def clean_run(tmp_path_factory: pytest.TempPathFactory) -> FaultRun:
    return _run(tmp_path_factory.mktemp("clean"), [BY_NAME[n] for n in GOOD_NAMES])


@pytest.fixture(scope="module")
def unsandboxed_run(tmp_path_factory: pytest.TempPathFactory) -> FaultRun:
    faults = [BY_NAME[n] for n in (GOOD_NAMES[0], *FILE_WRITERS, GOOD_NAMES[1])]
    return _run(tmp_path_factory.mktemp("unsandboxed"), faults, env={"HARNESS_SANDBOX": "off"})


def test_the_run_finishes_with_every_case_and_exit_1(fault_run: FaultRun) -> None:
    assert fault_run.returncode == 1, fault_run.stderr[-3000:]
    assert fault_run.result["complete"] is True
    assert set(fault_run.cases) == {f.name for f in FAULTS}
    assert "Traceback" not in fault_run.stderr


@pytest.mark.parametrize("fault", FAULTS, ids=[f.name for f in FAULTS])
def test_each_candidate_gets_its_verdict(fault_run: FaultRun, fault: Fault) -> None:
    if fault.name == "signals_its_keeper_and_fork_server" and landlock_abi() < 6:
        pytest.skip("signal scoping needs Landlock ABI 6 (Linux 6.12)")
    case = fault_run.cases[fault.name]
    assert case["status"] == fault.status, case["reason"]
    for words in fault.reason:
        assert render(words, **fault_run.values) in (case["reason"] or ""), case["reason"]
    if fault.status != "pass":
        assert case["speedup"] is None and case["score"] == 0
    if fault.exit_code is not None:
        assert case["exit"]["code"] == fault.exit_code
    if fault.signal is not None:
        assert case["exit"]["signal"] == fault.signal
    if fault.leaves_processes:
        assert any("left" in w and "killed" in w for w in case["warnings"]), case["warnings"]


def test_well_behaved_candidates_match_a_run_without_the_others(
    fault_run: FaultRun, clean_run: FaultRun
) -> None:
    for name in GOOD_NAMES:
        noisy, clean = fault_run.cases[name], clean_run.cases[name]
        assert noisy["status"] == clean["status"] == "pass"
        assert noisy["correctness"] == clean["correctness"]


def test_no_process_a_candidate_started_outlives_the_run(fault_run: FaultRun) -> None:
    assert fault_run.leftovers == []
    spawned = fault_run.cases["spawns_env_cleared_session_leader"]["output"]["stdout"]
    pid = int(spawned.split("SPAWNED", 1)[1].split()[0])
    assert (
        not Path(f"/proc/{pid}/cmdline").exists()
        or fault_run.marker.encode() not in Path(f"/proc/{pid}/cmdline").read_bytes()
    )


def test_no_file_outside_scratch_changes(fault_run: FaultRun) -> None:
    assert fault_run.files_after == fault_run.files_before
    assert fault_run.out_files <= MANAGED


def test_flooded_output_is_kept_as_a_bounded_tail(fault_run: FaultRun) -> None:
    case = fault_run.cases["floods_output"]
    assert case["output"]["truncated"] is True
    assert len(case["output"]["stdout"]) <= 16384 and len(case["output"]["stderr"]) <= 16384
    assert case["output"]["stdout"].endswith("FLOOD-END\n")
    assert case["wall_time_s"] < 60


def test_crash_output_and_phase_are_reported(fault_run: FaultRun) -> None:
    case = fault_run.cases["segfault_ctypes"]
    assert "about to crash" in case["output"]["stdout"]
    assert case["phase"] == "correctness_check"


@pytest.mark.skipif(landlock_abi() < 1, reason="this kernel has no Landlock")
def test_writes_outside_scratch_are_refused_under_landlock(fault_run: FaultRun) -> None:
    for name in FILE_WRITERS:
        assert "Permission denied" in fault_run.cases[name]["reason"]


def test_without_landlock_writes_are_detected_and_case_files_restored(unsandboxed_run: FaultRun) -> None:
    run = unsandboxed_run
    for name in FILE_WRITERS:
        case = run.cases[name]
        assert case["status"] == "error"
        assert "changed files outside its scratch folder" in case["reason"]
        assert render(BY_NAME[name].reason[0], **run.values) in case["reason"]
    # The forged case file was put back before its own case ran: that candidate still passes.
    assert run.cases["zzz_good_last"]["status"] == "pass"
    suite_files = {p: h for p, h in run.files_after.items() if p.startswith(str(run.suite))}
    assert suite_files == {p: h for p, h in run.files_before.items() if p.startswith(str(run.suite))}
