"""`harness.timing`: repetition and warm-up plans, backend defaults, and the statistics of a series."""

from __future__ import annotations

import dataclasses
import math

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from harness.timing import (
    STABLE_CV,
    TimingConfig,
    TimingStats,
    for_backend,
    plan_repetitions,
    robust_cv,
    warmup_calls,
)

# --- plan_repetitions -------------------------------------------------------------------------------


def test_repetitions_fill_the_budget_for_the_estimated_call() -> None:
    config = TimingConfig(budget_ms=400.0, min_repetitions=10, max_repetitions=1000, rounds=10)
    assert plan_repetitions(2.0, config) == 200
    assert plan_repetitions(0.5, config) == 800


def test_repetitions_never_fall_below_the_minimum_for_a_slow_call() -> None:
    config = TimingConfig(budget_ms=100.0, min_repetitions=20, max_repetitions=1000, rounds=10)
    assert plan_repetitions(1000.0, config) == 20


def test_repetitions_never_exceed_the_maximum_for_a_fast_call() -> None:
    config = TimingConfig(budget_ms=100.0, min_repetitions=10, max_repetitions=300, rounds=10)
    assert plan_repetitions(1e-6, config) == 300


def test_repetitions_round_up_to_whole_rounds() -> None:
    config = TimingConfig(budget_ms=100.0, min_repetitions=10, max_repetitions=1000, rounds=10)
    assert plan_repetitions(3.0, config) == 40  # 34 calls fill the budget: four rounds of ten


def test_every_round_gets_a_sample_even_when_the_caps_allow_fewer() -> None:
    config = TimingConfig(budget_ms=10.0, min_repetitions=1, max_repetitions=5, rounds=8)
    assert plan_repetitions(100.0, config) == 8


def test_an_estimate_of_zero_or_less_plans_the_maximum() -> None:
    config = TimingConfig(max_repetitions=500, rounds=10)
    assert plan_repetitions(0.0, config) == 500
    assert plan_repetitions(-1.0, config) == 500


def test_an_estimate_of_zero_plans_whole_rounds_like_the_fastest_measurable_call() -> None:
    config = TimingConfig(max_repetitions=25, rounds=10)  # a cap that is not a whole number of rounds
    assert plan_repetitions(0.0, config) == plan_repetitions(1e-9, config) == 30


def test_an_estimate_too_small_to_divide_by_plans_the_maximum_instead_of_overflowing() -> None:
    assert plan_repetitions(5e-324, TimingConfig(budget_ms=400.0, max_repetitions=1000)) == 1000


@settings(max_examples=200, deadline=None)
@given(
    estimate=st.floats(-1.0, 1e4, allow_nan=False),
    budget=st.floats(1.0, 1e4),
    low=st.integers(1, 200),
    span=st.integers(0, 2000),
    rounds=st.integers(1, 30),
)
def test_repetitions_are_always_whole_rounds_within_the_caps_rounded_up(
    estimate: float, budget: float, low: int, span: int, rounds: int
) -> None:
    config = TimingConfig(budget_ms=budget, min_repetitions=low, max_repetitions=low + span, rounds=rounds)
    reps = plan_repetitions(estimate, config)
    assert reps % rounds == 0 and reps >= rounds
    assert reps >= config.min_repetitions
    assert reps < max(config.max_repetitions, rounds) + rounds  # the cap, at most rounded up to a whole round


# --- warmup_calls -----------------------------------------------------------------------------------


def test_warmup_fills_the_warmup_time() -> None:
    assert warmup_calls(0.5, TimingConfig(warmup_ms=25.0, min_warmup=2)) == 50
    assert warmup_calls(0.3, TimingConfig(warmup_ms=1.0, min_warmup=2)) == 4  # 3.33 calls, rounded up


def test_warmup_has_at_least_the_minimum_calls() -> None:
    assert warmup_calls(100.0, TimingConfig(warmup_ms=25.0, min_warmup=3)) == 3
    assert warmup_calls(0.0, TimingConfig(min_warmup=3)) == 3
    assert warmup_calls(-2.0, TimingConfig(min_warmup=3)) == 3


def test_warmup_is_capped_at_a_thousand_calls() -> None:
    assert warmup_calls(1e-6, TimingConfig(warmup_ms=25.0)) == 1000


# --- for_backend ------------------------------------------------------------------------------------


def test_a_backend_default_replaces_only_fields_left_at_the_generic_default() -> None:
    overrides = {"budget_ms": 1000.0, "rounds": 20, "min_warmup": 5}
    config = for_backend(TimingConfig(budget_ms=50.0, rounds=4), overrides)
    assert config == TimingConfig(budget_ms=50.0, rounds=4, min_warmup=5)


def test_every_field_at_the_generic_default_takes_the_backend_default() -> None:
    overrides = {"warmup_ms": 1.0, "max_repetitions": 9000, "flush_cache": True}
    assert for_backend(TimingConfig(), overrides) == TimingConfig(warmup_ms=1.0, max_repetitions=9000, flush_cache=True)


def test_no_backend_defaults_leave_the_config_as_it_is() -> None:
    config = TimingConfig(budget_ms=7.0)
    assert for_backend(config, {}) is config
    assert for_backend(config, {"budget_ms": 99.0}) is config


def test_a_timing_config_survives_its_json_form() -> None:
    config = TimingConfig(warmup_ms=3.0, min_warmup=4, budget_ms=5.0, min_repetitions=6, max_repetitions=70,
                          rounds=7, flush_cache=True)  # fmt: skip
    assert TimingConfig(**config.to_json()) == config
    assert set(config.to_json()) == {f.name for f in dataclasses.fields(TimingConfig)}


# --- TimingStats ------------------------------------------------------------------------------------


def test_stats_of_known_samples() -> None:
    stats = TimingStats.from_samples([4.0, 1.0, 100.0, 3.0, 2.0], warmup=7)
    assert stats.median_ms == 3.0
    assert stats.mean_ms == 22.0
    assert (stats.min_ms, stats.max_ms) == (1.0, 100.0)
    assert stats.iqr_ms == pytest.approx(2.0)
    assert stats.stdev_ms == pytest.approx(math.sqrt((21**2 + 20**2 + 19**2 + 18**2 + 78**2) / 4))  # sample stdev
    assert stats.cv == pytest.approx(stats.stdev_ms / 22.0)
    assert stats.stable is False
    assert (stats.repetitions, stats.warmup_calls) == (5, 7)


def test_stats_keep_the_samples_in_the_order_they_were_taken() -> None:
    assert TimingStats.from_samples([3.0, 1.0, 2.0]).samples_ms == [3.0, 1.0, 2.0]


def test_the_iqr_interpolates_between_samples() -> None:
    # inclusive quantiles (numpy's default "linear"): q1 = 2.75, q3 = 6.25
    assert TimingStats.from_samples([float(i) for i in range(1, 9)]).iqr_ms == pytest.approx(3.5)


def test_the_iqr_of_fewer_than_four_samples_is_their_range() -> None:
    assert TimingStats.from_samples([5.0, 1.0, 2.0]).iqr_ms == 4.0


def test_a_single_sample_has_no_spread_and_is_stable() -> None:
    stats = TimingStats.from_samples([2.5])
    assert (stats.median_ms, stats.stdev_ms, stats.iqr_ms, stats.cv, stats.stable) == (2.5, 0.0, 0.0, 0.0, True)


def test_a_series_is_stable_up_to_the_cv_threshold() -> None:
    assert TimingStats.from_samples([0.95, 1.05]).cv < STABLE_CV
    assert TimingStats.from_samples([0.95, 1.05]).stable
    assert TimingStats.from_samples([0.9, 1.1]).cv > STABLE_CV
    assert not TimingStats.from_samples([0.9, 1.1]).stable


def test_samples_of_zero_have_a_cv_of_zero_not_a_division_error() -> None:
    stats = TimingStats.from_samples([0.0, 0.0, 0.0])
    assert stats.cv == 0.0 and stats.stable


def test_no_samples_is_an_error() -> None:
    with pytest.raises(ValueError, match="no timing samples"):
        TimingStats.from_samples([])


def test_stats_survive_their_json_form() -> None:
    stats = TimingStats.from_samples([1.5, 1.25, 1.75, 1.0, 3.0], warmup=4)
    assert TimingStats.from_json(stats.to_json()) == stats


def test_stats_read_from_json_are_recomputed_from_the_samples() -> None:
    data = TimingStats.from_samples([1.0, 2.0, 3.0]).to_json()
    data.update(median_ms=0.001, stable=True, cv=0.0, repetitions=1000)  # figures that disagree with the samples
    stats = TimingStats.from_json(data)
    assert (stats.median_ms, stats.repetitions) == (2.0, 3)
    assert stats == TimingStats.from_samples([1.0, 2.0, 3.0])


def test_a_few_descheduled_calls_lift_the_cv_but_not_the_spread_that_stability_is_judged_on() -> None:
    samples = [1.0 + 0.01 * (i % 5) for i in range(49)] + [10.0]  # one call in fifty lost its core
    stats = TimingStats.from_samples(samples)
    assert stats.cv > STABLE_CV  # the plain CV, still recorded, is dominated by the one outlier
    assert stats.spread < 0.05 and stats.stable
    assert stats.spread == pytest.approx(robust_cv(samples))


def test_a_series_that_is_wide_all_through_is_unstable() -> None:
    samples = [1.0, 1.3, 0.8, 1.5, 0.7, 1.2, 0.9, 1.4] * 4
    stats = TimingStats.from_samples(samples)
    assert stats.spread > STABLE_CV and not stats.stable
    assert stats.to_json()["spread"] == stats.spread
