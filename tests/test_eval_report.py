"""The eval report for agents: scores, vetoes, acceptability, reason codes, fingerprints, the files."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import pytest

from harness.analysis.compare import compare_runs
from harness.analysis.eval_report import build_report, eval_report_payload, write_eval_report
from harness.artifacts.schemas import check
from harness.errors import BadInput
from tests.analysis_support import make_run, stock_validate, write_json
from tests.conftest import load_json, run_harness

N = 24
PROVENANCE = {"command_line": ["test"], "config": {}}
ENVIRONMENT = {"python": "3.11", "harness": "0.1.0"}
RUN_REF = {"path": None, "sha256": None, "solutions": "s", "complete": True}


def report_for(old: dict[str, Any], new: dict[str, Any]) -> dict[str, Any]:
    payload = eval_report_payload(compare_runs(old, new), PROVENANCE, ENVIRONMENT, RUN_REF, RUN_REF)
    assert check(payload).errors == []
    return payload


def by_name(payload: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {c["name"]: c for c in payload["cases"]}


def test_breaking_one_case_is_not_acceptable_even_when_every_other_case_got_faster() -> None:
    faster = {i: 0.7 for i in range(N)}
    broken = {5: ("fail", "correctness_check", "trial 0: max abs error 0.5 > atol 0.01")}
    payload = report_for(make_run(N, seed=1), make_run(N, seed=2, slower=faster, statuses=broken))
    assert payload["is_acceptable"] is False
    case = by_name(payload)["case_05"]
    assert case["veto"] is True and case["score"] == 0 and case["reason_code"] == "OUTPUT_MISMATCH"
    assert "max abs error 0.5" in case["message"]
    assert payload["aggregate_score"] == 0.0  # the veto, not the others' gains
    assert payload["summary"]["blocking"] == ["cpu/t3/case_05"]
    assert payload["summary"]["improved"] == N - 1


def test_every_case_faster_is_acceptable_with_the_geometric_mean_gain() -> None:
    payload = report_for(make_run(N, seed=3), make_run(N, seed=4, slower={i: 0.8 for i in range(N)}))
    assert payload["is_acceptable"] is True
    scores = [c["score"] for c in payload["cases"]]
    assert all(0.15 < s < 0.35 for s in scores)  # 1/0.8 - 1 = 0.25
    expected = math.exp(sum(math.log1p(s) for s in scores) / len(scores)) - 1
    assert payload["aggregate_score"] == pytest.approx(expected)


def test_noise_never_counts_as_a_gain_and_nothing_improved_is_not_acceptable() -> None:
    payload = report_for(make_run(N, seed=5, cv=0.3), make_run(N, seed=6, cv=0.3, slower={0: 0.8}))
    assert {c["reason_code"] for c in payload["cases"]} <= {"NOISE", "UNCHANGED"}
    assert all(c["score"] == 0 for c in payload["cases"])
    assert payload["is_acceptable"] is False and payload["aggregate_score"] == 0.0


def test_a_regression_makes_the_change_unacceptable_and_the_aggregate_its_loss() -> None:
    payload = report_for(make_run(N, seed=7), make_run(N, seed=8, slower={2: 1.3, 3: 0.7}))
    cases = by_name(payload)
    assert cases["case_02"]["reason_code"] == "REGRESSED" and cases["case_02"]["score"] < -0.15
    assert cases["case_03"]["reason_code"] == "IMPROVED" and cases["case_03"]["score"] > 0.3
    assert payload["is_acceptable"] is False
    assert payload["aggregate_score"] == pytest.approx(cases["case_02"]["score"])


def test_one_improvement_and_the_rest_unchanged_is_acceptable() -> None:
    payload = report_for(make_run(N, seed=9, cv=0.02), make_run(N, seed=10, cv=0.02, slower={4: 0.5}))
    assert payload["is_acceptable"] is True
    gain = by_name(payload)["case_04"]["score"]
    assert payload["aggregate_score"] == pytest.approx((1 + gain) ** (1 / N) - 1)


def test_unknown_cases_have_null_scores_and_block_acceptance() -> None:
    payload = report_for(make_run(N, seed=11, skip={0}), make_run(N, seed=12, slower={1: 0.6}, skip={2}))
    cases = by_name(payload)
    assert cases["case_00"]["score"] is None and cases["case_00"]["reason_code"] == "NO_BASELINE"
    assert cases["case_02"]["score"] is None and cases["case_02"]["reason_code"] == "MISSING"
    assert payload["is_acceptable"] is False and payload["summary"]["unknown"] == 2
    assert payload["aggregate_score"] == 0.0


@pytest.mark.parametrize(
    "status, code",
    [
        (("fail", "correctness_check", "trial 0: output shape (4,) != (8,)"), "OUTPUT_MISMATCH"),
        (
            ("fail", "correctness_check", "trial 1: the candidate modified its input tensors"),
            "INPUTS_MODIFIED",
        ),
        (
            (
                "fail",
                "measuring_solution",
                "the output for fresh values in the same input tensors (cached result?) "
                "is wrong: values differ",
            ),
            "STALE_OUTPUT",
        ),
        (("error", "loading_modules", "SyntaxError: invalid syntax (candidate.py, line 3)"), "LOAD_ERROR"),
        (("error", "correctness_check", "RuntimeError: shape mismatch in forward"), "RUNTIME_ERROR"),
        (
            (
                "error",
                "correctness_check",
                "candidate worker process killed by SIGSEGV without delivering a result "
                "(phase correctness_check)",
            ),
            "CRASHED",
        ),
        (
            ("error", "measuring_solution", "candidate's timer is not trustworthy: its timed calls took 3 s"),
            "TIMER_UNTRUSTED",
        ),
        (
            ("error", "measuring_solution", "faster than the hardware allows: 0.001 ms is below the floor of 0.6 ms"),
            "FASTER_THAN_HARDWARE",
        ),
        (("fail", "loading_modules", "static flags made failures by --strict: thread (line 3: ...)"), "STRICT_FLAG"),
        (
            (
                "timeout",
                "measuring_solution",
                "no result within the 300 s timeout (phase measuring_solution)",
            ),
            "TIMEOUT",
        ),
        (
            ("error", "loading_modules", "no solution file for relu (expected <solutions>/t1/relu.py)"),
            "NO_SOLUTION",
        ),
    ],
)
def test_wrong_outputs_get_an_actionable_code_and_the_failure_reason(
    status: tuple[str, str, str], code: str
) -> None:
    payload = report_for(make_run(6, seed=13), make_run(6, seed=14, statuses={1: status}))
    case = by_name(payload)["case_01"]
    assert case["reason_code"] == code and case["veto"] is True and case["score"] == 0
    assert status[2][:40] in case["message"] and "case_01" in case["message"]


def test_environment_and_case_changes_are_unknown_with_their_own_codes() -> None:
    old, new = make_run(4, seed=15), make_run(4, seed=16)
    new["cases"][0]["case"]["sha256"] = "f" * 64
    new["environment"]["packages"]["torch"] = "3.0.0"
    cases = by_name(report_for(old, new))
    assert cases["case_00"]["reason_code"] == "CASE_CHANGED" and cases["case_00"]["score"] is None
    assert cases["case_01"]["reason_code"] == "ENVIRONMENT_CHANGED" and "torch" in cases["case_01"]["message"]


def test_the_output_fingerprint_is_used_when_results_carry_one() -> None:
    old, new = make_run(3, seed=17), make_run(3, seed=18)
    for run, prints in ((old, ("a", "b", None)), (new, ("a", "c", None))):
        for case, fingerprint in zip(run["cases"], prints, strict=True):
            if fingerprint:
                case["correctness"]["output_fingerprint"] = fingerprint * 64
    cases = by_name(report_for(old, new))
    assert cases["case_00"]["output_fingerprint"]["changed"] is False
    assert cases["case_01"]["output_fingerprint"] == {
        "baseline": "b" * 64,
        "candidate": "c" * 64,
        "source": "output",
        "changed": True,
    }
    fallback = cases["case_02"]["output_fingerprint"]
    assert (
        fallback["source"] == "solution_sha256"
        and fallback["baseline"] == old["cases"][2]["solution"]["sha256"]
    )


def test_build_report_keeps_one_verdict_per_case() -> None:
    report = build_report(compare_runs(make_run(5, seed=19), make_run(5, seed=20)))
    assert [v.comparison.name for v in report.cases] == [f"case_{i:02d}" for i in range(5)]


def test_write_eval_report_for_run_with_a_baseline_writes_a_valid_file(tmp_path: Path) -> None:
    baseline = write_json(tmp_path / "old" / "result.json", make_run(8, seed=21))
    out = tmp_path / "eval-report.json"
    payload = write_eval_report(baseline, make_run(8, seed=22, slower={1: 0.6}), out, 5.0, 0.01)
    assert out.is_file() and load_json(out)["is_acceptable"] == payload["is_acceptable"] is True
    assert stock_validate(load_json(out)) == []
    assert run_harness("validate", str(out)).returncode == 0
    assert payload["provenance"]["config"]["baseline"] == str(baseline)


def test_write_eval_report_refuses_a_missing_baseline(tmp_path: Path) -> None:
    with pytest.raises(BadInput, match="does not exist"):
        write_eval_report(tmp_path / "nope.json", make_run(2, seed=23), tmp_path / "e.json", 5.0, 0.01)
