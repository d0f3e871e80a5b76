"""Speed of light (harness.analysis.speed_of_light): achieved GB/s and TFLOP/s, fractions of peak, the physical
floor that rejects forged fast times, and how results, schemas and reports carry them."""

from __future__ import annotations

import copy
import json
from pathlib import Path

import pytest

from harness.analysis import speed_of_light as sol
from harness.analysis.speed_of_light import TOO_FAST, SpeedOfLight, assess, too_fast
from harness.analysis.static_flags import Flag
from harness.backends import peaks as peak_table
from harness.backends.peaks import DATASHEET_MARGIN, DevicePeaks, dtype_class, known_peaks, peaks_for
from harness.render.html import render_html
from harness.render.markdown import render_markdown
from harness.results import CaseResult
from tests.analysis_support import make_run, resummarize, stock_validate

H100 = known_peaks("NVIDIA H100 80GB HBM3")
GIB = 1 << 30


@pytest.mark.parametrize(
    ("reported", "label"),
    [
        ("NVIDIA H100 80GB HBM3", "NVIDIA H100 SXM5 80GB"),
        ("NVIDIA H100 PCIe", "NVIDIA H100 PCIe 80GB"),
        ("NVIDIA H100 NVL", "NVIDIA H100 NVL 94GB"),
        ("NVIDIA H200", "NVIDIA H200 SXM 141GB"),
        ("NVIDIA H200 NVL", "NVIDIA H200 NVL"),
        ("NVIDIA A100-SXM4-40GB", "NVIDIA A100 40GB"),
        ("NVIDIA A100-PCIE-40GB", "NVIDIA A100 40GB"),
        ("NVIDIA A100-SXM4-80GB", "NVIDIA A100 SXM4 80GB"),
        ("NVIDIA A100 80GB PCIe", "NVIDIA A100 PCIe 80GB"),
        ("Ascend910B3", "Huawei Ascend 910B"),
    ],
)
def test_known_devices_are_matched_by_the_name_the_backend_reports(reported: str, label: str) -> None:
    peaks = known_peaks(reported)
    assert peaks is not None and peaks.name == label and peaks.source == f"datasheet: {label}"
    assert peaks.memory_gbps and peaks.tflops["bf16"] > peaks.tflops["fp32"] and not peaks.measured


def test_unknown_devices_have_no_datasheet_and_a_reported_cache_size_wins() -> None:
    assert known_peaks("Tesla V100-SXM2-16GB") is None and known_peaks(None) is None
    peaks = known_peaks("NVIDIA H100 80GB HBM3", cache_bytes=60 << 20)
    assert peaks is not None and peaks.cache_bytes == 60 << 20
    assert H100 is not None and H100.tflops == {"fp64": 67, "fp32": 67, "tf32": 494.7, "bf16": 989.4, "fp8": 1978.9}


def test_the_dtype_class_is_the_narrowest_float_of_the_case() -> None:
    assert dtype_class(["float32"]) == "fp32"
    assert dtype_class(["torch.float32", "torch.bfloat16"]) == "bf16"
    assert dtype_class(["float16", "int64"]) == "bf16"
    assert dtype_class(["float64"]) == "fp64"
    assert dtype_class(["float8_e4m3fn", "float32"]) == "fp8"
    assert dtype_class(["int64"]) == "fp32"


def test_achieved_bandwidth_throughput_and_fractions_of_peak() -> None:
    assert H100 is not None
    result = assess(flops=10**12, bytes_moved=10**9, dtype="fp32", peaks=H100, candidate_ms=1.0, reference_ms=2.0)
    assert result.candidate is not None and result.reference is not None
    assert result.candidate.gbps == pytest.approx(1000.0) and result.candidate.tflops == pytest.approx(1000.0)
    assert result.candidate.bandwidth_fraction == pytest.approx(1000.0 / 3350)
    assert result.candidate.throughput_fraction == pytest.approx(1000.0 / 67)
    assert result.reference.gbps == pytest.approx(500.0)


def test_the_bandwidth_floor_counts_only_the_bytes_beyond_the_cache() -> None:
    assert H100 is not None and H100.cache_bytes is not None
    floor, bound = sol.floor_ms(None, 2 * GIB, H100)
    assert bound == "memory" and floor == pytest.approx((2 * GIB - H100.cache_bytes) / 3350e9 * 1e3)
    small = assess(None, H100.cache_bytes // 2, "fp32", H100, candidate_ms=1e-6, reference_ms=1.0)
    assert small.floor_ms == 0.0 and not small.floor_applied and too_fast(small) is None
    assert "fits in the cache" in (small.note or "")


def test_the_compute_floor_uses_the_fastest_dtype_class_the_device_has() -> None:
    """A float32 matmul may legally run on TF32 or bf16 tensor cores when its tolerance allows."""
    assert H100 is not None
    floor, bound = sol.floor_ms(2 * 8192**3, 3 * 8192 * 8192 * 4, H100)
    assert bound == "compute" and floor == pytest.approx(2 * 8192**3 / 1978.9e12 * 1e3)


def elementwise_on_h100(candidate_ms: float) -> SpeedOfLight:
    """A 16384 x 16384 float32 ReLU on an H100: 2 GiB moved, reference at ~80 % of peak bandwidth."""
    assert H100 is not None
    bytes_moved = 2 * 16384 * 16384 * 4
    return assess(16384 * 16384, bytes_moved, "fp32", H100, candidate_ms, reference_ms=0.80)


def test_a_forged_fast_time_is_faster_than_the_hardware_allows() -> None:
    forged = elementwise_on_h100(0.001)
    reason = too_fast(forged)
    assert forged.floor_applied and reason is not None and reason.startswith(TOO_FAST)
    assert "0.001 ms is below the floor" in reason and "datasheet: NVIDIA H100 SXM5 80GB" in reason


@pytest.mark.parametrize(("candidate_ms", "fails"), [(0.70, False), (0.45, False), (0.33, False), (0.30, True)])
def test_only_times_beyond_the_safety_margin_fail(candidate_ms: float, fails: bool) -> None:
    """The floor here is 0.625 ms; with the datasheet margin of 2 the limit is 0.3125 ms."""
    result = elementwise_on_h100(candidate_ms)
    assert result.floor_ms == pytest.approx(0.6254, rel=1e-3) and DATASHEET_MARGIN == 2.0
    assert (too_fast(result) is not None) is fails


def test_a_reference_below_the_floor_means_the_case_overstates_its_work_and_the_floor_is_not_applied() -> None:
    assert H100 is not None
    result = assess(None, 8 * GIB, "fp32", H100, candidate_ms=0.001, reference_ms=0.01)
    assert not result.floor_applied and too_fast(result) is None
    assert "overstate" in (result.note or "")


def test_measured_peaks_are_raised_to_what_the_reference_achieved() -> None:
    """A measurement taken while the machine was busy cannot make an honest candidate look impossible."""
    busy = DevicePeaks("cpu", memory_gbps=5.0, tflops={"fp32": 0.01}, cache_bytes=0, source="measured", margin=4.0,
                       measured=True)  # fmt: skip
    result = assess(10**9, 10**9, "fp32", busy, candidate_ms=30.0, reference_ms=50.0)  # reference: 20 GB/s
    assert result.peaks.memory_gbps == pytest.approx(20.0) and result.peaks.tflops["fp32"] == pytest.approx(0.02)
    assert "raised" in (result.note or "") and too_fast(result) is None
    assert too_fast(assess(10**9, 10**9, "fp32", busy, candidate_ms=20.0, reference_ms=50.0)) is None
    assert too_fast(assess(10**9, 10**9, "fp32", busy, candidate_ms=1.0, reference_ms=50.0)) is not None


def test_peaks_for_prefers_the_datasheet_then_a_stored_measurement(tmp_path: Path) -> None:
    store = tmp_path / "peaks.json"
    gpu = {"backend": "gpu", "device_name": "NVIDIA H100 80GB HBM3", "l2_cache_bytes": 52428800}
    peaks = peaks_for(gpu, store)
    assert peaks is not None and peaks.source.startswith("datasheet")
    assert peaks_for({"backend": "gpu", "device_name": "Tesla V100"}, store) is None
    measured = DevicePeaks("Tesla V100", 800.0, {"fp32": 14.0}, 6 << 20, "measured on here", 4.0, True)
    peak_table.store_measured(measured, store)
    assert peaks_for({"backend": "gpu", "device_name": "Tesla V100"}, store) == measured
    assert peak_table.load_measured("Tesla V100", store) == measured
    assert peaks_for({"backend": "npu", "device_name": "Ascend910B2", "simulated": True}, store) is not None


def test_the_last_level_cache_size_comes_from_sysfs(tmp_path: Path) -> None:
    for index, size in enumerate(("32K", "512K", "32768K")):
        (tmp_path / f"index{index}").mkdir()
        (tmp_path / f"index{index}" / "size").write_text(size + "\n")
    assert peak_table.cpu_cache_bytes(tmp_path) == 32 << 20
    assert peak_table.cpu_cache_bytes(tmp_path / "missing") is None


def test_measuring_peaks_gives_positive_figures_for_this_cpu() -> None:
    pytest.importorskip("torch")
    peaks = peak_table.measure_peaks("cpu", copy_bytes=1 << 20, matmul_n=64, repeats=1)
    assert peaks.measured and peaks.margin == peak_table.MEASURED_MARGIN
    assert peaks.memory_gbps is not None and peaks.memory_gbps > 0 and peaks.tflops["fp32"] > 0


def sample_speed_of_light() -> SpeedOfLight:
    return elementwise_on_h100(0.75)


def test_speed_of_light_and_flags_round_trip_through_the_case_result() -> None:
    result = CaseResult(name="relu", tier="t1", backend="gpu", status="pass", speedup=1.07)
    result.speed_of_light = sample_speed_of_light()
    result.flags = [Flag("thread", "imports threading", 2)]
    back = CaseResult.from_json(json.loads(json.dumps(result.to_json())))
    assert back.speed_of_light == result.speed_of_light and back.flags == result.flags
    assert CaseResult.from_json({k: v for k, v in result.to_json().items() if k not in ("speed_of_light", "flags")})


def run_with_speed_of_light() -> dict:
    run = make_run(6, seed=4)
    forged = copy.deepcopy(run["cases"][2])
    for i, c in enumerate(run["cases"]):
        c["speed_of_light"] = elementwise_on_h100(0.7 + 0.05 * i).to_json()
        c["flags"] = [Flag("torch_fallback", "ModelNew.forward calls relu", 12).to_json()] if i == 1 else []
    forged.update(status="error", phase="measuring_solution", reason=too_fast(elementwise_on_h100(0.001)))
    forged.update(speedup=None, score=0.0, weighted_score=0.0)
    forged["name"] = "forged"
    run["cases"].append(forged)
    return resummarize(run)


def test_results_with_and_without_the_new_fields_validate_against_the_schemas() -> None:
    assert stock_validate(make_run(3, seed=5)) == []  # results written before these fields existed
    run = run_with_speed_of_light()
    run["cases"][0]["correctness"].update(
        gate="normalized", normalized_error=1.0, normalized_tol=0.05, centered_error=1.0, centered_tol=0.05
    )
    assert stock_validate(run) == []
    run["cases"][1]["flags"][0]["id"] = "no_such_flag"
    assert stock_validate(run)


def test_reports_show_fractions_of_peak_flags_and_a_roofline() -> None:
    run = run_with_speed_of_light()
    text = render_markdown(run)
    assert "% of peak" in text and "### Static flags (1 cases)" in text and "torch_fallback (line 12" in text
    page = render_html(run)
    assert page.count("<svg") == 4 and f"roofline, {run['cases'][0]['backend']}: NVIDIA H100 SXM5 80GB" in page
    assert "3350 GB/s" in page and "fp32 67" in page  # the memory roof and a compute roof are labelled
    assert TOO_FAST in page


def test_a_cpu_without_stored_peaks_is_measured_in_passing_with_the_widest_margin(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    taken = DevicePeaks("AMD EPYC", 20.0, {"fp32": 0.1}, 32 << 20, "measured", peak_table.MEASURED_MARGIN, True)
    monkeypatch.setattr(peak_table, "measure_peaks", lambda device, repeats=5: taken)
    monkeypatch.setattr(peak_table, "cpu_model", lambda: "AMD EPYC")
    monkeypatch.setenv("HARNESS_PEAKS_FILE", str(tmp_path / "none.json"))
    peak_table.cpu_peaks.cache_clear()
    try:
        peaks = peaks_for({"backend": "cpu", "device_name": "AMD EPYC"})
        assert peaks is not None and peaks.margin == peak_table.IN_PASSING_MARGIN and "(in passing)" in peaks.source
        assert peaks_for({"backend": "cpu", "device_name": "AMD EPYC"}) is peaks  # once per process
    finally:
        peak_table.cpu_peaks.cache_clear()
