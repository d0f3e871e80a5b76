"""`harness calibrate` on the CPU with a tiny suite: A/A, known effect, peers' methods, artifact."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from harness.artifacts.schemas import check
from harness.calibration.study import CaseCalibration, _ratio_error, _stats, effect_candidate_source, summarize
from harness.suite.cases import import_file
from tests.conftest import REPO, load_json, run_harness

AA_SOLUTION = "from harness.solutions import reference_model\n\nModelNew = reference_model(__file__)\n"


@pytest.fixture
def calib_suite(suite: Path) -> Path:
    """The conftest suite plus its A/A solution set at <suite>/solutions/reference."""
    for rel in ("t1/scale.py", "t2/linear_relu.py", "t1/npu_only.py"):
        path = suite / "solutions" / "reference" / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(AA_SOLUTION)
    return suite


def test_calibrate_on_cpu_writes_a_valid_artifact_with_every_part(calib_suite: Path, tmp_path: Path) -> None:
    out = tmp_path / "calibration.json"
    proc = run_harness(
        "calibrate", "--suite", str(calib_suite), "--effects", "10,20", "--effect-case", "linear_relu",
        "--budget-ms", "5", "--rounds", "2", "--min-us", "0", "--out", str(out), cwd=REPO,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-3000:]
    payload = load_json(out)
    assert check(payload).ok and payload["artifact_type"] == "calibration"
    cases = {c["name"]: c for c in payload["cases"]}
    assert set(cases) == {"scale", "linear_relu"}  # npu_only is skipped on cpu
    for case in cases.values():
        assert case["status"] == "ok" and case["ref_ms"] > 0
        assert case["aa"]["harness"] is not None and case["aa"]["simple"] is not None
        assert case["aa"].get("do_bench") is None and case["profiler_ms"]["flush"] is None  # not applicable
    effects = cases["linear_relu"]["effects"]
    assert [e["pct"] for e in effects] == [10.0, 20.0] and cases["scale"]["effects"] == []
    for effect in effects:
        assert effect["amount_unit"] == "ms" and effect["extra_ms"] > 0
        assert effect["error"]["harness"] is not None and effect["error"]["simple"] is not None
    summary = payload["summary"]["methods"]
    assert summary["harness"]["aa"]["n"] == 2 and summary["do_bench"]["aa"]["n"] == 0
    assert summary["harness"]["effects"]["10"]["n"] == 1
    validate = run_harness("validate", str(out))
    assert validate.returncode == 0, validate.stderr
    assert "A/A |speedup − 1|" in proc.stdout and "known 10% effect" in proc.stdout


def test_calibrate_rejects_bad_effects(calib_suite: Path) -> None:
    proc = run_harness("calibrate", "--suite", str(calib_suite), "--effects", "five")
    assert proc.returncode == 2 and "--effects" in proc.stderr
    proc = run_harness("calibrate", "--suite", str(calib_suite), "--effects", "0")
    assert proc.returncode == 2


def test_statistics_are_over_absolute_values() -> None:
    stats = _stats([0.001, -0.002, 0.003, -0.004, None, float("nan")])  # type: ignore[list-item]
    assert stats == {"n": 4, "median": pytest.approx(0.0025), "p95": 0.004, "max": 0.004}
    assert _stats([]) == {"n": 0, "median": None, "p95": None, "max": None}


def test_known_effect_error_compares_measured_and_expected_ratios() -> None:
    assert _ratio_error(1.0, 1.1, 0.1) == pytest.approx(0.0)
    assert _ratio_error(1.0, 1.111, 0.1) == pytest.approx(0.01)
    assert _ratio_error(None, 1.0, 0.1) is None


def test_summary_keeps_only_cases_at_least_the_minimum_time_for_precision() -> None:
    fast = CaseCalibration(name="fast", tier="t1", ref_ms=0.005, aa={"harness": 0.5})
    slow = CaseCalibration(name="slow", tier="t1", ref_ms=0.5, aa={"harness": -0.001}, single_kernel=True,
                           accuracy={"harness": 0.02})  # fmt: skip
    summary = summarize([fast, slow], (5.0,), min_ms=0.02)
    assert summary["precision_cases"] == 1
    assert summary["methods"]["harness"]["aa"]["max"] == pytest.approx(0.001)
    assert summary["methods"]["harness"]["accuracy"]["median"] == pytest.approx(0.02)
    assert summary["methods"]["harness"]["effects"]["5"]["n"] == 0


def test_cpu_effect_candidate_adds_its_busy_wait_after_the_reference_forward(
    suite: Path, tmp_path: Path
) -> None:
    import torch

    source = effect_candidate_source(suite / "t1" / "scale.py", "scale", 10.0, "cpu", 3.0)
    path = tmp_path / "t1" / "scale.py"
    path.parent.mkdir(parents=True)
    path.write_text(source)
    model = import_file(path, "_effect_candidate_test").ModelNew(2.0)
    x = torch.randn(16)
    started = time.perf_counter()
    out = model(x)
    assert time.perf_counter() - started >= 0.003
    assert torch.equal(out, x * 2.0)
