from __future__ import annotations

import pytest
import torch

from harness.results import CaseResult
from harness.sandbox.correctness import compare_outputs, output_fingerprint
from harness.scoring import case_score, geometric_mean, summarize, tier_weight


def test_matching_outputs_pass_and_report_error_sizes() -> None:
    ref = torch.ones(10)
    result = compare_outputs([ref], [ref + 1e-4], 1e-2, 1e-2)
    assert result.ok and result.max_abs_error == pytest.approx(1e-4, rel=1e-2)


def test_outputs_beyond_tolerance_fail_with_counts() -> None:
    ref = torch.zeros(100)
    out = ref.clone()
    out[:3] = 1.0
    result = compare_outputs([ref], [out], 1e-2, 1e-2)
    assert not result.ok
    assert "3 of 100 elements" in (result.reason or "")
    assert result.max_abs_error == 1.0


@pytest.mark.parametrize(
    ("candidate", "message"),
    [
        (torch.zeros(3, 2), "shape"),
        (torch.zeros(2, 3, dtype=torch.float64), "dtype"),
        (torch.full((2, 3), float("nan")), "NaN/Inf"),
        ([1, 2], "plain torch.Tensor"),
    ],
)
def test_structural_mismatches_fail(candidate: object, message: str) -> None:
    result = compare_outputs([torch.zeros(2, 3)], [candidate], 1e-2, 1e-2)
    assert not result.ok and message in (result.reason or "")


def test_tensor_subclass_is_rejected() -> None:
    class Sneaky(torch.Tensor):
        pass

    out = torch.zeros(3).as_subclass(Sneaky)
    assert not compare_outputs([torch.zeros(3)], [out], 1e-2, 1e-2).ok


def test_matching_nan_positions_in_reference_are_accepted() -> None:
    ref = torch.tensor([1.0, float("nan"), float("inf")])
    assert compare_outputs([ref], [ref.clone()], 1e-2, 1e-2).ok
    assert not compare_outputs([ref], [torch.tensor([1.0, 0.0, float("inf")])], 1e-2, 1e-2).ok


@pytest.mark.parametrize("bad_elements", [0, 7])
def test_chunked_comparison_agrees_with_the_plain_formula(bad_elements: int) -> None:
    """Over several chunks, with tiny reference values and a few misses: the same counts and maxima
    as the textbook formula on whole tensors."""
    gen = torch.Generator().manual_seed(3)
    ref = torch.randn(700_001, generator=gen)
    ref[::1000] = 1e-6  # tiny: their relative error counts only where the check fails
    out = ref + 2e-3 * torch.randn(ref.shape, generator=gen)
    out[torch.randperm(ref.numel(), generator=gen)[:bad_elements]] += 5.0
    atol = rtol = 1e-2
    diff = (out - ref).abs()
    bad = diff > atol + rtol * ref.abs()
    counted = bad | (ref.abs() > atol)
    result = compare_outputs([ref], [out], atol, rtol)
    assert result.ok == (bad_elements == 0)
    assert result.max_abs_error == pytest.approx(float(diff.max()))
    assert result.max_rel_error == pytest.approx(float((diff / ref.abs().clamp_min(1e-12))[counted].max()))
    if bad_elements:
        assert f"{bad_elements} of {ref.numel()} elements" in (result.reason or "")


def test_infinity_where_the_reference_is_finite_fails() -> None:
    ref = torch.ones(5)
    out = ref.clone()
    out[2] = float("inf")
    result = compare_outputs([ref], [out], 1e-2, 1e-2)
    assert not result.ok and "1 NaN/Inf" in (result.reason or "")


def test_output_fingerprint_ignores_noise_below_the_tolerance_and_sees_changes() -> None:
    gen = torch.Generator().manual_seed(5)
    x = torch.randn(300_000, generator=gen).round(decimals=2)  # on the rounding grid: a jitter can't flip it
    jitter = x + 1e-4 * torch.rand(x.shape, generator=gen)
    assert output_fingerprint([x], 1e-2) == output_fingerprint([jitter], 1e-2)
    assert output_fingerprint([x], 1e-2) != output_fingerprint([x + 0.05], 1e-2)
    assert output_fingerprint([torch.tensor([0.0])], 1e-2) == output_fingerprint([torch.tensor([-0.0])], 1e-2)
    nan = torch.tensor([1.0, float("nan")])
    assert output_fingerprint([nan], 1e-2) == output_fingerprint([nan.clone()], 1e-2)
    assert output_fingerprint([nan], 1e-2) != output_fingerprint([torch.tensor([1.0, 0.0])], 1e-2)
    assert output_fingerprint([x], 1e-2) != output_fingerprint([x.to(torch.bfloat16)], 1e-2)  # dtype counts
    assert output_fingerprint([torch.arange(5)], 1e-2) != output_fingerprint([torch.arange(5) + 1], 1e-2)


def test_wrong_number_of_outputs_fails() -> None:
    assert not compare_outputs([torch.zeros(1)], [torch.zeros(1), torch.zeros(1)], 1e-2, 1e-2).ok


def test_score_curve_and_tier_weights() -> None:
    assert case_score(0.5, True) == 30.0
    assert case_score(1.0, True) == 60.0
    assert case_score(3.0, True) == 80.0
    assert case_score(9.0, True) == 100.0
    assert case_score(3.0, False) == 0.0
    assert [tier_weight(f"t{i}") for i in range(1, 7)] == [1.0, 1.5, 2.0, 2.5, 3.0, 3.5]


def test_summary_counts_statuses_fast_p_and_geomean() -> None:
    def r(name: str, status: str, speedup: float | None) -> CaseResult:
        res = CaseResult(name=name, tier="t1", backend="cpu", status=status, speedup=speedup)
        res.weighted_score = case_score(speedup, status == "pass")
        return res

    summary = summarize([r("a", "pass", 2.0), r("b", "pass", 0.5), r("c", "fail", None), r("d", "skipped", None)])
    assert summary["statuses"] == {"pass": 2, "fail": 1, "error": 0, "timeout": 0, "skipped": 1}
    assert summary["pass_rate"] == pytest.approx(2 / 3)
    assert summary["geomean_speedup"] == pytest.approx(1.0)
    assert summary["fast_p"]["1"] == pytest.approx(1 / 3)
    assert summary["fast_p"]["0"] == pytest.approx(2 / 3)
    assert geometric_mean([]) is None


def test_input_mutation_check_handles_nan_and_integers() -> None:
    from harness.sandbox.session import _same

    x = torch.tensor([1.0, float("nan"), 3.0])
    assert _same([x, 7], [x.clone(), 7])
    assert not _same([x], [torch.tensor([1.0, float("nan"), 3.5])])
    assert not _same([x], [torch.tensor([1.0, 2.0, 3.0])])  # a NaN overwritten
    assert not _same([x], [torch.tensor([float("nan"), 1.0, 3.0])])  # a NaN moved
    assert not _same([torch.arange(4)], [torch.arange(4).flip(0)])
    assert not _same([x], [x.double()])
