"""The agent loop's pure parts: extraction, feedback, rewards, pass@k, stop rules, prompts, paths, retries."""

from __future__ import annotations

import datetime as dt
import math
from pathlib import Path

import pytest

from harness.agent.conversation import messages_for, messages_sha256
from harness.agent.extract import NO_CODE_FEEDBACK, extract_code, no_code_feedback
from harness.agent.feedback import OUTPUT_BUDGET, PASS_REQUEST, REASON_BUDGET, compact, feedback_text
from harness.agent.layout import RunLayout, check_team, inside
from harness.agent.metrics import pass_at_k, reward
from harness.agent.prompts import PromptBuilder, load_template, parse_template
from harness.agent.records import Attempt
from harness.agent.retry import RetryPolicy, parse_retry_after, retryable_status
from harness.agent.stop import StopRule
from harness.errors import BadInput
from harness.results import CaseResult, CorrectnessReport
from harness.scoring import apply_score
from harness.suite.cases import discover
from harness.timing import TimingStats

# --- extraction -------------------------------------------------------------------------------------


def test_the_first_python_block_is_extracted_and_thinking_is_ignored() -> None:
    reply = (
        "<think>maybe\n```python\nclass ModelNew: pass  # draft\n```\n</think>\n"
        "Plan first:\n```text\nnot code\n```\n```python\nclass ModelNew:\n    x = 1\n```\n```python\nsecond = 2\n```"
    )
    assert extract_code(reply).code == "class ModelNew:\n    x = 1\n"


def test_an_untagged_block_defining_model_new_is_accepted_but_prose_is_not() -> None:
    assert extract_code("```\nclass ModelNew: pass\n```").code == "class ModelNew: pass\n"
    none = extract_code("I would write a kernel that tiles the loop.")
    assert none.code is None and "no fenced python code block" in (none.error or "")


def test_a_reply_cut_off_inside_its_block_has_no_code_and_says_so() -> None:
    cut = extract_code("```python\nclass ModelNew:\n    def forward(", finish_reason="length")
    assert cut.code is None and "token limit" in (cut.error or "")
    assert no_code_feedback("length").startswith(NO_CODE_FEEDBACK) and "cut off" in no_code_feedback("length")
    assert no_code_feedback("stop") == NO_CODE_FEEDBACK


# --- feedback ---------------------------------------------------------------------------------------


def _result(status: str, **kw: object) -> CaseResult:
    return apply_score(CaseResult(name="relu", tier="t1", backend="cpu", status=status, **kw))  # type: ignore[arg-type]


def test_failure_feedback_has_status_phase_reason_and_errors() -> None:
    correctness = CorrectnessReport(trials=3, passed_trials=0, max_abs_error=2.5, max_rel_error=0.75)
    text = feedback_text(
        _result("fail", phase="correctness_check", reason="trial 0: 10 of 16 differ", correctness=correctness)
    )
    assert text.startswith("Result: FAIL (phase reached: correctness_check)\n")
    assert "trial 0: 10 of 16 differ" in text
    assert "Max absolute error: 2.5; max relative error: 0.75" in text
    assert "Fix the problem" in text


def test_long_repetitive_output_is_deduplicated_and_cut_to_head_and_tail() -> None:
    noisy = "\n".join(
        ["error: first problem"] + ["warning: same line"] * 5000 + [f"line {i}" for i in range(3000)] + ["LAST"]
    )
    text = feedback_text(_result("error", phase="loading_modules", reason=noisy, stderr=noisy))
    assert text.count("warning: same line") == 2  # once in the reason, once in stderr
    assert "repeated line(s) removed" in text and "characters cut" in text
    assert text.count("error: first problem") == 2 and text.count("LAST") == 2  # head and tail kept
    assert "line 1500\n" not in text  # the middle is cut
    assert len(text) < REASON_BUDGET + OUTPUT_BUDGET + 500
    assert len(compact("x\n" * 10, 5)) <= 5 + 40


def test_pass_feedback_has_times_speedup_score_and_asks_for_faster() -> None:
    ref = TimingStats.from_samples([2.0] * 10, 3)
    sol = TimingStats.from_samples([1.0] * 10, 3)
    correctness = CorrectnessReport(trials=3, passed_trials=3, max_abs_error=0.0, max_rel_error=0.0)
    result = _result("pass", reference_timing=ref, solution_timing=sol, speedup=2.0, correctness=correctness)
    text = feedback_text(result)
    assert text.startswith("Result: PASS\n")
    assert "reference 2 ms, yours 1 ms" in text and "Speedup: 2.000x; score 70.0 of 100" in text
    assert text.rstrip().endswith(PASS_REQUEST)


# --- rewards and pass@k -----------------------------------------------------------------------------


def test_reward_is_score_over_100_capped_and_zero_unless_correct() -> None:
    assert reward(_result("pass", speedup=2.0)) == pytest.approx(0.7)
    assert reward(_result("pass", speedup=1e9)) == 1.0  # an implausible speedup cannot dominate
    assert reward(_result("fail", speedup=3.0)) == 0.0
    assert reward(None) == 0.0


def test_pass_at_k_is_the_unbiased_estimator() -> None:
    for n in range(1, 7):
        for c in range(n + 1):
            for k in range(1, n + 1):
                expected = 1.0 - math.comb(n - c, k) / math.comb(n, k)
                assert pass_at_k(n, c, k) == pytest.approx(expected)
    assert pass_at_k(4, 1, 1) == pytest.approx(0.25) and pass_at_k(4, 1, 2) == pytest.approx(0.5)
    with pytest.raises(ValueError):
        pass_at_k(2, 1, 3)


# --- stop rules -------------------------------------------------------------------------------------


def _attempt(turn: int, status: str = "fail", reward_: float = 0.0, endpoint: bool = False) -> Attempt:
    return Attempt(
        case="c", tier="t1", rollout=0, turn=turn, index=turn, messages_sha256="0" * 64, message_count=2, time="",
        status=status, reward=reward_, endpoint_error="down" if endpoint else None,
    )  # fmt: skip


def test_a_broken_case_ends_the_conversation_whatever_turns_are_left() -> None:
    from harness.results import CaseResult

    broken = _attempt(1, "error")
    broken.result = CaseResult(name="c", tier="t1", backend="cpu", status="error", case_error=True)
    assert StopRule(turns=5).reason([broken]) == "broken_case"
    assert StopRule(turns=5).reason([_attempt(1, "error")]) is None  # the candidate's own error: go on


def test_stop_rules_turns_until_correct_and_patience() -> None:
    assert StopRule(turns=2).reason([_attempt(1)]) is None
    assert StopRule(turns=2).reason([_attempt(1), _attempt(2)]) == "max_turns"
    assert StopRule(turns=5, until="correct").reason([_attempt(1, "pass", 0.6)]) == "solved"
    assert StopRule(turns=5).reason([_attempt(1, "pass", 0.6)]) is None
    climbing = [_attempt(1, "pass", 0.6), _attempt(2, "pass", 0.5), _attempt(3, "pass", 0.7), _attempt(4, "pass", 0.7)]
    assert StopRule(turns=9, patience=2).reason(climbing) is None
    assert StopRule(turns=9, patience=2).reason([*climbing, _attempt(5)]) == "patience"


def test_endpoint_errors_do_not_use_up_turns() -> None:
    assert StopRule(turns=2).reason([_attempt(1), _attempt(2, endpoint=True), _attempt(2, endpoint=True)]) is None


# --- conversation -----------------------------------------------------------------------------------


def test_context_last_sends_only_the_latest_exchange_without_thinking() -> None:
    history = [("<think>hmm</think>reply 1", "feedback 1"), ("reply 2", "feedback 2")]
    last = messages_for("S", "U", history, "last")
    assert [m["content"] for m in last] == ["S", "U", "reply 2", "feedback 2"]
    full = messages_for("S", "U", history, "full")
    assert [m["content"] for m in full] == ["S", "U", "reply 1", "feedback 1", "reply 2", "feedback 2"]
    assert messages_sha256(last) != messages_sha256(full) and len(messages_sha256(last)) == 64


# --- prompts ----------------------------------------------------------------------------------------


def test_a_template_without_both_sections_or_with_an_unknown_placeholder_is_bad_input(tmp_path: Path) -> None:
    with pytest.raises(BadInput, match="lacks the section"):
        parse_template("=== user ===\nhi", "t.txt")
    with pytest.raises(BadInput, match=r"unknown placeholder \$nope"):
        parse_template("=== system ===\nS\n=== user ===\n$nope", "t.txt")
    with pytest.raises(BadInput, match="--prompt-template"):
        load_template(tmp_path / "missing.txt")


def test_the_default_prompt_states_the_contract_with_an_example_from_another_case(suite: Path, solutions: Path) -> None:
    cases = discover(suite)
    builder = PromptBuilder(load_template(None), "gpu", "triton", cases, solutions)
    scale = next(c for c in cases if c.name == "scale")
    system, user = builder.build(scale)
    assert "expert" in system
    assert "case `scale`" in user and "ModelNew(*get_init_inputs())" in user and "Triton" in user
    assert "an NVIDIA GPU" in user and scale.path.read_text().strip() in user
    example = builder.example_for(scale)
    assert example is not None and example[0].name == "linear_relu"  # never the case itself
    assert (solutions / "t2" / "linear_relu.py").read_text().strip() in user


# --- paths and team names ---------------------------------------------------------------------------


@pytest.mark.parametrize("team", ["../x", "a/b", "", ".", "team name", "x\n"])
def test_team_names_outside_the_pattern_are_refused(team: str) -> None:
    with pytest.raises(BadInput, match="--team"):
        check_team(team)


def test_a_team_folder_resolving_outside_the_run_folder_is_refused(tmp_path: Path) -> None:
    (tmp_path / "out" / "submissions").mkdir(parents=True)
    (tmp_path / "out" / "submissions" / "evil").symlink_to(tmp_path)
    with pytest.raises(BadInput, match="outside"):
        RunLayout(tmp_path / "out", "evil")
    assert inside(tmp_path, "a", "b") == tmp_path / "a" / "b"


def test_urls_lose_credentials_and_queries_before_they_are_written(monkeypatch: pytest.MonkeyPatch) -> None:
    from harness.agent.artifact import redacted_command_line
    from harness.agent.client import endpoint_host, public_url

    url = "https://user:pw@api.example.com:8443/v1?key=sk-123#frag"
    assert public_url(url) == "https://api.example.com:8443/v1" and endpoint_host(url) == "api.example.com:8443"
    monkeypatch.setattr("sys.argv", ["harness", "agent", "--base-url", url, f"--base-url={url}", "--team", "t"])
    line = redacted_command_line()
    assert "sk-123" not in " ".join(line) and "pw@" not in " ".join(line)
    assert line[3] == "https://api.example.com:8443/v1" and line[4] == "--base-url=https://api.example.com:8443/v1"


# --- retries ----------------------------------------------------------------------------------------


def test_retry_after_in_seconds_or_as_a_date_and_which_statuses_are_retried() -> None:
    now = dt.datetime(2026, 1, 1, tzinfo=dt.timezone.utc)
    assert parse_retry_after("7") == 7.0
    assert parse_retry_after("Thu, 01 Jan 2026 00:00:30 GMT", now) == 30.0
    assert parse_retry_after("soon") is None and parse_retry_after(None) is None
    assert RetryPolicy(retry_after_cap_s=60).delay(0, 600.0) == 60.0
    assert 0.5 <= RetryPolicy(base_delay_s=1).delay(0, None) <= 1.0
    assert [s for s in (400, 401, 404, 408, 409, 429, 500, 503) if retryable_status(s)] == [408, 409, 429, 500, 503]


# --- figures ----------------------------------------------------------------------------------------


def test_run_figures_pass_at_k_over_rollouts_and_solved_within_turns(suite: Path) -> None:
    from harness.agent.figures import CaseOutcome, best_attempt, best_result, run_figures

    cases = {c.name: c for c in discover(suite)}

    def attempt(case: str, rollout: int, turn: int, status: str, reward_: float) -> Attempt:
        result = _result(status, speedup=1.5 if status == "pass" else None)
        result.name = case
        return Attempt(
            case=case, tier=cases[case].tier, rollout=rollout, turn=turn, index=rollout * 3 + turn,
            messages_sha256="0" * 64, message_count=2, time="", code_path=f"{case}_{rollout}_{turn}.py",
            status=status, reward=reward_, result=result,
        )  # fmt: skip

    scale = [
        attempt("scale", 0, 1, "fail", 0),
        attempt("scale", 0, 2, "pass", 0.65),
        attempt("scale", 1, 1, "error", 0),
    ]
    linear = [attempt("linear_relu", 0, 1, "fail", 0), attempt("linear_relu", 1, 1, "fail", 0)]
    assert best_attempt(scale) is scale[1]
    outcomes = [
        CaseOutcome(cases["scale"], scale, best_result(cases["scale"], "cpu", scale, None), None, {}, None),
        CaseOutcome(
            cases["linear_relu"], linear, best_result(cases["linear_relu"], "cpu", linear, None), None, {}, None
        ),
        CaseOutcome(cases["npu_only"], [], best_result(cases["npu_only"], "cpu", [], "npu only"), "npu only", {}, None),
    ]
    figures = run_figures(outcomes, rollouts=2, turns=3)
    assert figures["evaluated_cases"] == 2 and figures["solved"] == 1
    assert figures["pass_at_k"] == {"1": pytest.approx(0.25), "2": pytest.approx(0.5)}
    assert figures["solved_within_turns"] == {"1": 0.0, "2": 0.5, "3": 0.5}
    assert figures["scores"]["statuses"] == {"pass": 1, "fail": 1, "error": 0, "timeout": 0, "skipped": 1}
