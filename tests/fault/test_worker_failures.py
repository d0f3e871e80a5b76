"""A case that kills or hangs the trusted reference worker: the case is an error or a timeout naming
the reference, the worker is replaced, and the run goes on with the next case unharmed."""

from __future__ import annotations

import json
from pathlib import Path

from tests.conftest import run_harness
from tests.fault.candidates import GOOD, TINY_CASE

CRASHING_CASE = TINY_CASE.replace(
    "def get_inputs():\n    return [torch.randn(n)]",
    "def get_inputs():\n    import ctypes\n    ctypes.string_at(0)",
)
HANGING_CASE = TINY_CASE.replace(
    "def get_inputs():\n    return [torch.randn(n)]",
    "def get_inputs():\n    import time\n    time.sleep(100000)",
)


def test_reference_worker_crash_and_hang_are_reported_and_the_worker_replaced(tmp_path: Path) -> None:
    suite, solutions, out = tmp_path / "suite", tmp_path / "solutions", tmp_path / "out"
    cases = {
        "a_crashes": CRASHING_CASE,
        "b_after_crash": TINY_CASE,
        "c_hangs": HANGING_CASE,
        "d_after_hang": TINY_CASE,
    }
    for folder in (suite / "t1", solutions / "t1"):
        folder.mkdir(parents=True)
    for name, source in cases.items():
        (suite / "t1" / f"{name}.py").write_text(source)
        (solutions / "t1" / f"{name}.py").write_text(GOOD)
    proc = run_harness(
        "run", "--suite", str(suite), "--solutions", str(solutions), "--out", str(out), "--quiet",
        "--budget-ms", "5", "--rounds", "2", "--trials", "2", "--timeout", "10",
    )  # fmt: skip
    assert proc.returncode == 1, proc.stderr[-2000:]
    assert "Traceback" not in proc.stderr
    results = {c["name"]: c for c in json.loads((out / "result.json").read_text())["cases"]}
    crashed = results["a_crashes"]
    assert crashed["status"] == "error"
    assert "reference worker process killed by SIGSEGV" in crashed["reason"]
    assert "replaced" in crashed["reason"]
    hung = results["c_hangs"]
    assert hung["status"] == "timeout" and "waiting for the reference worker" in hung["reason"]
    assert results["b_after_crash"]["status"] == "pass"
    assert results["d_after_hang"]["status"] == "pass"


def test_a_keeper_killed_before_it_could_report_is_not_waited_for() -> None:
    """SIGTERM right after start kills the keeper before its handler exists: no report will ever come,
    so `kill` must not sit out its 10 s wait for one (this made every broken case cost 10 s once the
    candidate started loading while the reference prepared)."""
    import time

    from harness.evaluation.cleanup import make_scratch, remove_scratch
    from harness.evaluation.workers import _OUTCOME_WAIT_S, CandidateProcess

    scratch = make_scratch()
    try:
        candidate = CandidateProcess("cpu", "cpu", scratch)
        started = time.monotonic()
        candidate.kill()
        assert time.monotonic() - started < _OUTCOME_WAIT_S / 2
        assert not candidate.process.is_alive()
    finally:
        remove_scratch(scratch)
