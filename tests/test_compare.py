"""`harness compare`: verdicts, the statistics behind them, the issue's bars, the CLI and its files."""

from __future__ import annotations

import copy
import json
import math
import time
from pathlib import Path

import numpy as np
import pytest

from harness.analysis.compare import VERDICTS, compare_runs, parse_fail_on
from harness.analysis.statistics import holm, relative_log_times, shift_test
from harness.timing import robust_cv
from tests.analysis_support import REAL_A, REAL_B, make_run, stock_validate, write_json
from tests.conftest import load_json, run_harness

FALSE_ALARMS = ("improved", "regressed")


def verdicts(comparison) -> dict[str, str]:
    return {c.name: c.verdict for c in comparison.cases}


# --- the bars --------------------------------------------------------------------------------


@pytest.mark.parametrize("pair", range(5))
def test_two_runs_of_the_same_candidates_raise_no_false_alarm_on_95_percent_of_cases(pair: int) -> None:
    baseline, candidate = make_run(48, seed=2 * pair), make_run(48, seed=2 * pair + 1)
    counts = compare_runs(baseline, candidate).counts()
    alarms = sum(counts[v] for v in FALSE_ALARMS)
    assert alarms <= 0.05 * 48, counts


def test_a_candidate_made_20_percent_slower_is_exactly_the_one_case_regressed() -> None:
    baseline = make_run(48, seed=10)
    candidate = make_run(48, seed=11, slower={7: 1.2})
    result = compare_runs(baseline, candidate)
    flagged = {c.name: c.verdict for c in result.cases if c.verdict in FALSE_ALARMS}
    assert flagged == {"case_07": "regressed"}
    case = next(c for c in result.cases if c.name == "case_07")
    assert case.ratio is not None and 1.1 < case.ratio < 1.3
    assert case.test is not None and math.exp(case.test.ci_low) > 1.05


def test_a_20_percent_regression_is_found_with_twenty_samples_per_series() -> None:
    # With 10 samples at 5 % CV the 99 % interval is about ±20 %: such a case is honestly inconclusive.
    result = compare_runs(
        make_run(48, seed=12, samples=20), make_run(48, seed=13, samples=20, slower={3: 1.2})
    )
    assert {c.name for c in result.cases if c.verdict in FALSE_ALARMS} == {"case_03"}


def test_a_machine_10_percent_slower_for_reference_and_candidate_alike_is_no_regression() -> None:
    result = compare_runs(make_run(48, seed=20), make_run(48, seed=21, machine=1.1))
    assert not [c.name for c in result.cases if c.verdict in FALSE_ALARMS]


def test_a_faster_candidate_is_improved_and_swapping_the_runs_swaps_the_verdict() -> None:
    old, new = make_run(24, seed=30), make_run(24, seed=31, slower={4: 0.7})
    forward, backward = verdicts(compare_runs(old, new)), verdicts(compare_runs(new, old))
    assert forward["case_04"] == "improved" and backward["case_04"] == "regressed"
    assert [n for n, v in forward.items() if v in FALSE_ALARMS] == ["case_04"]


def test_a_small_real_change_below_the_threshold_is_unchanged_not_regressed() -> None:
    result = compare_runs(make_run(24, seed=40, cv=0.01), make_run(24, seed=41, cv=0.01, slower={2: 1.02}))
    assert verdicts(result)["case_02"] == "unchanged"


def test_noisy_timings_are_inconclusive_even_when_the_change_looks_large() -> None:
    result = compare_runs(make_run(12, seed=50, cv=0.4), make_run(12, seed=51, cv=0.4, slower={1: 1.5}))
    case = next(c for c in result.cases if c.name == "case_01")
    assert case.verdict == "inconclusive" and "noisy" in case.why


def test_the_real_noisy_runs_of_this_repo_raise_no_false_alarm() -> None:
    result = compare_runs(load_json(REAL_A), load_json(REAL_B))
    assert not [c.name for c in result.cases if c.verdict in FALSE_ALARMS]
    assert all(c.test is not None for c in result.cases)


# --- the other verdicts ------------------------------------------------------------------------------


def test_correctness_transitions_new_and_missing_cases_get_their_own_verdicts() -> None:
    old = make_run(
        8, seed=60, statuses={1: ("fail", "correctness_check", "trial 0: values differ")}, skip={6}
    )
    new = make_run(
        8, seed=61, statuses={2: ("error", "model_init", "ModelNew() raised ValueError: bad")}, skip={7}
    )  # case 1 passes now, case 2 fails now, case 6 is new, case 7 went missing
    found = verdicts(compare_runs(old, new))
    assert found["case_01"] == "fixed"
    assert found["case_02"] == "broken"
    assert found["case_06"] == "new"
    assert found["case_07"] == "missing"


def test_a_case_file_broken_in_the_candidate_run_is_broken_and_says_the_case_is_at_fault() -> None:
    new = make_run(4, seed=66, statuses={1: ("error", "loading_modules", "reference case failed: no get_inputs")})
    new["cases"][1]["case_error"] = True
    found = {c.name: c for c in compare_runs(make_run(4, seed=67), new).cases}
    assert found["case_01"].verdict == "broken" and found["case_01"].why.startswith("broken case, the case file")
    assert not found["case_02"].why.startswith("broken case")


def test_a_case_failing_in_both_runs_is_not_reported_as_broken() -> None:
    fail = {3: ("fail", "correctness_check", "trial 0: values differ")}
    found = verdicts(compare_runs(make_run(6, seed=62, statuses=fail), make_run(6, seed=63, statuses=fail)))
    assert found["case_03"] == "unchanged"


def test_a_changed_case_source_or_environment_is_incomparable_and_only_the_environment_can_be_ignored() -> (
    None
):
    old, new = make_run(6, seed=64), make_run(6, seed=65)
    new["cases"][0]["case"]["sha256"] = "0" * 64
    new["environment"] = copy.deepcopy(new["environment"])
    new["environment"]["packages"]["torch"] = "9.9.9"
    result = compare_runs(old, new)
    assert {c.verdict for c in result.cases} == {"incomparable"}
    first = result.cases[0]
    assert any("case source" in d for d in first.differences) and any("torch" in d for d in first.differences)
    relaxed = verdicts(compare_runs(old, new, ignore_environment=True))
    assert relaxed.pop("case_00") == "incomparable"  # a changed case stays incomparable
    assert "incomparable" not in relaxed.values()


def test_a_different_device_makes_cases_incomparable() -> None:
    old, new = make_run(4, seed=66), make_run(4, seed=67)
    for devices in new["environment"]["backends"]["cpu"].values():
        devices["device_name"] = "Some Other CPU"
    assert {c.verdict for c in compare_runs(old, new).cases} == {"incomparable"}


def test_summary_counts_every_verdict_and_records_rule_direction_and_threshold() -> None:
    result = compare_runs(make_run(12, seed=68), make_run(12, seed=69, slower={0: 1.3}), threshold_pct=7.5)
    summary, method = result.summary(), result.method()
    assert set(summary["verdicts"]) == set(VERDICTS) and sum(summary["verdicts"].values()) == 12
    assert summary["geomean_ratio"] is not None
    assert method["threshold_pct"] == 7.5 and "1.075" in method["rule"] and "faster" in method["direction"]


def test_fail_on_is_parsed_and_unknown_verdicts_are_refused() -> None:
    assert parse_fail_on("regressed, broken") == ["regressed", "broken"]
    with pytest.raises(ValueError, match="slower"):
        parse_fail_on("regressed,slower")


# --- the statistics ----------------------------------------------------------------------------------


def test_holm_adjusts_like_the_textbook_example() -> None:
    adjusted = holm([0.01, 0.04, 0.03, 0.005])
    assert adjusted == pytest.approx([0.03, 0.06, 0.06, 0.02])


def test_shift_test_estimates_a_known_shift_and_its_interval_covers_it() -> None:
    rng = np.random.default_rng(0)
    a, b = rng.normal(0, 0.05, 200), rng.normal(0.1, 0.05, 200)
    t = shift_test(a, b, 0.99)
    assert t.ci_low < 0.1 < t.ci_high and abs(t.log_ratio - 0.1) < 0.02 and t.p_value < 1e-10


def test_the_interval_has_its_nominal_coverage_under_no_change() -> None:
    rng = np.random.default_rng(1)
    covered = sum(
        (lambda t: t.ci_low <= 0 <= t.ci_high)(
            shift_test(rng.normal(0, 0.1, 12), rng.normal(0, 0.1, 12), 0.95)
        )
        for _ in range(400)
    )
    assert 0.92 <= covered / 400 <= 0.99


def test_samples_are_paired_by_round_when_both_series_have_the_same_length() -> None:
    d = relative_log_times([1.0, 2.0, 4.0], [2.0, 4.0, 8.0])
    assert d == pytest.approx([math.log(2)] * 3)
    unpaired = relative_log_times([1.0, 2.0, 4.0, 8.0], [2.0, 4.0])
    middle = math.sqrt(2.0 * 4.0)  # the median of the log reference times, back on the ms scale
    assert unpaired == pytest.approx([math.log(2 / middle), math.log(4 / middle)])


def test_robust_cv_ignores_a_few_outliers() -> None:
    samples = list(np.random.default_rng(2).lognormal(0, 0.03, 100)) + [50.0, 80.0]
    assert robust_cv(samples) < 0.05


def test_one_case_takes_well_under_50_ms_even_with_1000_samples_per_series() -> None:
    rng = np.random.default_rng(3)
    a, b = rng.normal(0, 0.05, 1000), rng.normal(0, 0.05, 1000)
    shift_test(a, b, 0.99)
    started = time.perf_counter()
    for _ in range(5):
        shift_test(a, b, 0.99)
    assert (time.perf_counter() - started) / 5 < 0.05


# --- the command -------------------------------------------------------------------------------------


@pytest.fixture
def runs(tmp_path: Path) -> tuple[Path, Path]:
    old = write_json(tmp_path / "old.json", make_run(12, seed=80))
    new = write_json(
        tmp_path / "new.json",
        make_run(
            12,
            seed=81,
            slower={5: 1.25},
            statuses={9: ("fail", "correctness_check", "trial 1: max abs err 3")},
        ),
    )
    return old, new


def test_compare_writes_a_comparison_and_an_eval_report_that_validate_everywhere(
    runs: tuple[Path, Path], tmp_path: Path
) -> None:
    out, report = tmp_path / "cmp.json", tmp_path / "eval.json"
    proc = run_harness("compare", str(runs[0]), str(runs[1]), "--out", str(out), "--eval-report", str(report))
    assert proc.returncode == 0, proc.stderr
    assert "regressed" in proc.stdout and "broken" in proc.stdout
    check = run_harness("validate", str(out), str(report))
    assert check.returncode == 0, check.stderr
    for path in (out, report):
        assert stock_validate(load_json(path)) == []
    comparison = load_json(out)
    assert comparison["artifact_type"] == "comparison"
    by_name = {c["name"]: c for c in comparison["cases"]}
    assert by_name["case_05"]["verdict"] == "regressed" and by_name["case_09"]["verdict"] == "broken"
    assert by_name["case_05"]["test"] == "mann-whitney-u" and by_name["case_05"]["ci_low"] > 1.05


def test_fail_on_exits_5_naming_the_cases(runs: tuple[Path, Path]) -> None:
    proc = run_harness("compare", str(runs[0]), str(runs[1]), "--fail-on", "regressed,broken", "-q")
    assert proc.returncode == 5
    assert "case_05" in proc.stderr and "case_09" in proc.stderr
    same = run_harness("compare", str(runs[0]), str(runs[0]), "--fail-on", "regressed,broken", "-q")
    assert same.returncode == 0, same.stderr


@pytest.mark.parametrize(
    "content, expected",
    [
        (None, "does not exist"),
        ("{not json", "invalid JSON"),
        (json.dumps({"artifact_type": "leaderboard"}), "expected 'run_result'"),
        ("schema-invalid", "does not match"),
    ],
)
def test_bad_input_is_one_line_naming_the_file_and_exit_2(
    runs: tuple[Path, Path], tmp_path: Path, content: str | None, expected: str
) -> None:
    bad = tmp_path / "bad.json"
    if content == "schema-invalid":
        payload = load_json(runs[0])
        payload["cases"][0]["status"] = "great"
        bad.write_text(json.dumps(payload))
    elif content is not None:
        bad.write_text(content)
    proc = run_harness("compare", str(runs[0]), str(bad))
    assert proc.returncode == 2
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and str(bad) in lines[0] and expected in lines[0]


def test_unknown_fail_on_verdict_is_bad_input(runs: tuple[Path, Path]) -> None:
    proc = run_harness("compare", str(runs[0]), str(runs[1]), "--fail-on", "slower")
    assert proc.returncode == 2 and "slower" in proc.stderr


def test_every_option_is_documented_in_help() -> None:
    proc = run_harness("compare", "--help")
    for option in (
        "--threshold",
        "--alpha",
        "--max-noise",
        "--ignore-env",
        "--out",
        "--eval-report",
        "--fail-on",
    ):
        assert option in proc.stdout


def test_two_real_runs_of_a_tiny_suite_compare_report_and_merge(
    suite: Path, solutions: Path, tmp_path: Path
) -> None:
    from tests.conftest import FAST_ARGS

    results = []
    for name in ("a", "b"):
        out = tmp_path / name
        proc = run_harness(
            "run", "--suite", str(suite), "--solutions", str(solutions), "--out", str(out), "-q", *FAST_ARGS
        )
        assert proc.returncode == 0, proc.stderr
        results.append(out / "result.json")
    cmp_path, eval_path = tmp_path / "cmp.json", tmp_path / "eval.json"
    proc = run_harness(
        "compare",
        *map(str, results),
        "--out",
        str(cmp_path),
        "--eval-report",
        str(eval_path),
        "--fail-on",
        "broken,missing,new",
    )
    assert proc.returncode == 0, proc.stderr
    found = {c["name"]: c["verdict"] for c in load_json(cmp_path)["cases"]}
    assert found["npu_only"] == "unchanged"  # skipped in both runs
    assert set(found.values()) <= {"unchanged", "inconclusive", "improved", "regressed"}
    merged = tmp_path / "merged.json"
    assert run_harness("merge", str(results[0]), "--out", str(merged)).returncode == 0
    html = tmp_path / "cmp.html"
    assert run_harness("report", str(cmp_path), "--format", "html", "--out", str(html)).returncode == 0
    check = run_harness("validate", str(cmp_path), str(eval_path), str(merged))
    assert check.returncode == 0, check.stderr
    for path in (cmp_path, eval_path, merged):
        assert stock_validate(load_json(path)) == []
