"""The second correctness gate (harness.sandbox.correctness): scale-free errors that no trivial output passes.

The elementwise rule |new - ref| <= atol + rtol*|ref| lets a constant pass whenever the reference is
small next to atol; these tests build exactly such references and check that zeros, constants,
scaled copies and noise beyond the tolerance fail with the gate and figures reported, while
rounding-level differences pass.
"""

from __future__ import annotations

import math

import pytest

torch = pytest.importorskip("torch")

from harness.results import CorrectnessReport  # noqa: E402
from harness.sandbox.correctness import (  # noqa: E402
    _CPU_CHUNK,
    CENTERED_TOL,
    NORMALIZED_TOL,
    _chunk_figures,
    _PairMoments,
    _to_host,
    compare_outputs,
)

ATOL = RTOL = 1e-2  # KernelBench's and the harness's default


def _gen(seed: int = 0) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def small_probabilities() -> torch.Tensor:
    """Softmax over a wide axis: every value is far below atol, so zeros pass the elementwise rule."""
    return torch.softmax(torch.randn(64, 32768, generator=_gen()), dim=-1)


def test_all_zeros_pass_the_elementwise_rule_but_fail_the_normalized_gate() -> None:
    ref = small_probabilities()
    assert bool(((torch.zeros_like(ref) - ref).abs() <= ATOL + RTOL * ref.abs()).all())  # the old hole
    result = compare_outputs([ref], [torch.zeros_like(ref)], ATOL, RTOL)
    assert not result.ok and result.gate == "normalized"
    assert result.normalized_error == pytest.approx(1.0)
    assert result.normalized_tol == NORMALIZED_TOL
    assert "normalized error" in (result.reason or "")


def test_a_constant_equal_to_the_mean_of_a_mean_dominated_reference_fails_the_constant_gate() -> None:
    ref = 0.5 + 0.002 * torch.randn(200_000, generator=_gen(1))  # spread far below atol + rtol*|ref|
    constant = torch.full_like(ref, float(ref.double().mean()))
    result = compare_outputs([ref], [constant], ATOL, RTOL)
    assert result.normalized_error is not None and result.normalized_error < NORMALIZED_TOL  # passes that one
    assert not result.ok and result.gate == "constant"
    assert result.centered_error == pytest.approx(1.0, abs=1e-4)
    assert "does not follow the reference's variation" in (result.reason or "")


@pytest.mark.parametrize("factor", [0.0, 0.5, 0.9, 1.1, 2.0])
def test_a_scaled_copy_of_a_small_reference_fails(factor: float) -> None:
    ref = small_probabilities()
    result = compare_outputs([ref], [ref * factor], ATOL, RTOL)
    assert not result.ok and result.gate == "normalized"
    assert result.normalized_error == pytest.approx(abs(factor - 1.0), rel=1e-3)


@pytest.mark.parametrize(("share", "passes"), [(0.8, True), (1.2, False)])
def test_noise_just_below_the_tolerance_passes_and_just_above_fails(share: float, passes: bool) -> None:
    ref = 1e-3 * torch.randn(300_000, generator=_gen(2))  # mean ~0: normalized and centred errors agree
    noise = torch.randn(ref.shape, generator=_gen(3))
    noise *= share * NORMALIZED_TOL * ref.norm() / noise.norm()
    result = compare_outputs([ref], [ref + noise], ATOL, RTOL)
    assert result.ok is passes
    assert result.normalized_error == pytest.approx(share * NORMALIZED_TOL, rel=1e-2)
    if not passes:
        assert result.gate == "normalized"


def test_rounding_level_errors_pass_with_figures_reported() -> None:
    ref = small_probabilities()
    out = (ref.double() * (1 + 1e-7 * torch.randn(ref.shape, generator=_gen(4), dtype=torch.float64))).float()
    result = compare_outputs([ref], [out], ATOL, RTOL)
    assert result.ok and result.gate is None
    assert result.normalized_error is not None and result.normalized_error < 1e-6
    assert result.centered_error is not None and result.centered_error < 1e-6
    assert result.centered_tol == pytest.approx(CENTERED_TOL, rel=1e-3)


def test_one_ulp_rounding_differences_of_a_bfloat16_output_dominated_by_its_mean_pass() -> None:
    """An honest bf16 kernel may round differently; next to a spread of a few ulps that is a large
    centred error, which the rounding allowance forgives."""
    exact = 10.0 + 0.05 * torch.randn(100_000, generator=_gen(5))
    ref = exact.to(torch.bfloat16)
    out = (exact + 0.03 * torch.rand(exact.shape, generator=_gen(6))).to(torch.bfloat16)  # ~half a ulp up
    result = compare_outputs([ref], [out], ATOL, RTOL)
    assert result.centered_error is not None and result.centered_error > CENTERED_TOL
    assert result.ok, result.reason


def test_a_constant_or_all_zero_reference_leaves_the_decision_to_the_elementwise_rule() -> None:
    zero = torch.zeros(1000)
    same = compare_outputs([zero], [torch.zeros(1000)], ATOL, RTOL)
    assert same.ok and same.normalized_error is None and same.centered_error is None
    level = torch.full((1000,), 1e-3)
    assert compare_outputs([level], [level.clone()], ATOL, RTOL).ok  # centred error undefined: skipped
    zeros = compare_outputs([level], [torch.zeros(1000)], ATOL, RTOL)
    assert not zeros.ok and zeros.gate == "normalized"  # zeros are not that constant


def test_the_elementwise_gate_is_reported_first_with_the_scale_free_figures() -> None:
    ref = torch.randn(1000, generator=_gen(7))
    result = compare_outputs([ref], [torch.zeros_like(ref)], ATOL, RTOL)
    assert not result.ok and result.gate == "elementwise"
    assert result.normalized_error == pytest.approx(1.0)


def test_structural_and_non_finite_failures_name_their_gate() -> None:
    assert compare_outputs([torch.zeros(3)], [torch.zeros(4)], ATOL, RTOL).gate == "structure"
    assert compare_outputs([torch.zeros(3)], [], ATOL, RTOL).gate == "structure"
    nan = torch.tensor([1.0, float("nan"), 2.0])
    assert compare_outputs([torch.ones(3)], [nan], ATOL, RTOL).gate == "non_finite"


def test_matching_non_finite_positions_are_left_out_of_the_scale_free_errors() -> None:
    ref = torch.randn(5000, generator=_gen(8))
    ref[::7] = float("nan")
    ref[3] = float("inf")
    result = compare_outputs([ref], [ref.clone()], ATOL, RTOL)
    assert result.ok and result.normalized_error == 0.0 and result.centered_error == 0.0


def test_the_output_that_fails_is_named_among_several() -> None:
    good = torch.randn(100, generator=_gen(9))
    small = small_probabilities()[:4]
    result = compare_outputs([good, small], [good.clone(), torch.zeros_like(small)], ATOL, RTOL)
    assert not result.ok and result.gate == "normalized" and "output 1" in (result.reason or "")


def test_chunked_moments_agree_with_float64_on_whole_tensors() -> None:
    """Several chunks, a mean 1000 times the spread (the sums must not cancel), a small offset."""
    gen = _gen(10)
    ref = 1000.0 + torch.randn(3 * _CPU_CHUNK + 12_345, generator=gen)
    out = ref + 0.5 + 0.01 * torch.randn(ref.shape, generator=gen)
    r, d = ref.double(), (out - ref).double()
    normalized = float(d.norm() / r.norm())
    centered = float((d - d.mean()).norm() / (r - r.mean()).norm())
    result = compare_outputs([ref], [out], ATOL, RTOL)
    assert result.normalized_error == pytest.approx(normalized, rel=1e-3)
    assert result.centered_error == pytest.approx(centered, rel=1e-2)
    constant = compare_outputs([ref], [torch.full_like(ref, 1000.0)], 10.0, 0.0)
    assert constant.gate == "constant" and constant.centered_error == pytest.approx(1.0, rel=1e-3)


def test_integer_outputs_are_compared_exactly_by_both_gates() -> None:
    ref = torch.arange(100)
    assert compare_outputs([ref], [ref.clone()], 0.0, 0.0).ok
    assert not compare_outputs([ref], [torch.zeros_like(ref)], 0.0, 0.0).ok


def test_figures_are_finite_or_none_for_strict_json() -> None:
    huge = torch.full((10,), 3e38)
    huge[0] = -3e38
    result = compare_outputs([huge], [huge.clone()], ATOL, RTOL)
    for value in (result.normalized_error, result.centered_error, result.normalized_tol, result.centered_tol):
        assert value is None or math.isfinite(value)


def test_the_correctness_report_keeps_the_worst_figures_and_the_first_failing_gate() -> None:
    report = CorrectnessReport()
    report.record({"ok": True, "normalized_error": 1e-6, "centered_error": 2e-6, "normalized_tol": 0.05})
    report.record({"ok": False, "gate": "normalized", "normalized_error": 0.7, "centered_error": 1e-3})
    report.record({"ok": False, "gate": "constant", "normalized_error": 0.1, "centered_error": 1.0})
    assert report.gate == "normalized"
    assert report.normalized_error == 0.7 and report.centered_error == 1.0
    assert report.normalized_tol == 0.05
    assert CorrectnessReport.from_json(report.to_json()) == report
    old = {"trials": 3, "passed_trials": 3, "atol": 0.01, "rtol": 0.01}  # a result written before the gate
    assert CorrectnessReport.from_json(old).gate is None


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64, torch.complex64])
def test_the_accelerator_path_var_mean_gives_the_same_moments_as_the_cpu_path(dtype: torch.dtype) -> None:
    """On CUDA/NPU tensors the moments come from one fused var_mean per tensor (no temporaries, no
    copy to the host); forced here on CPU tensors, it must agree with the chunked CPU path."""
    gen = _gen(11)
    ref = (50.0 + torch.randn(20_000, generator=gen)).to(dtype)
    delta = (0.3 + 0.01 * torch.randn(20_000, generator=gen)).to(dtype)
    results = []
    for fused in (False, True):
        moments = _PairMoments()
        moments.add(delta.numel(), _to_host(_chunk_figures(delta, ref, fused=fused)))
        results.append((moments.normalized_error(), moments.centered_error()))
    (n_cpu, c_cpu), (n_fused, c_fused) = results
    assert n_fused == pytest.approx(n_cpu, rel=1e-4) and c_fused == pytest.approx(c_cpu, rel=1e-3)
