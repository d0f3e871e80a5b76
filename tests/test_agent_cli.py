"""`harness agent` end to end against a scripted endpoint: feedback, stop rules, cheats, files, artifacts,
re-scoring, the leaderboard, and `harness eval --feedback`.

One agent run (3 cases, 3 turns, --until correct) is shared by the module; each test reads a part of it.
"""

from __future__ import annotations

import hashlib
import json
import shutil
from dataclasses import dataclass
from pathlib import Path
from subprocess import CompletedProcess

import pytest

from harness.agent.extract import NO_CODE_FEEDBACK
from harness.artifacts.schemas import get_schema, validate_file
from tests.agent_support import (
    NEGATE_CASE,
    NEGATE_OK,
    NEGATE_WRONG,
    SCALE_CASE,
    SCALE_INIT_ERROR,
    SCALE_OK,
    SQUARE_CACHES,
    SQUARE_CASE,
    SQUARE_PATCHES_TIMER,
    Reply,
    ScriptedServer,
    code_reply,
)
from tests.conftest import load_json, run_harness

FAST = ["--trials", "1", "--budget-ms", "5", "--rounds", "2", "--timeout", "120"]
SECRET = "sk-agent-test-5f1e0c9d"
TEAM = "team_a"


@dataclass
class AgentRun:
    proc: CompletedProcess[str]
    suite: Path
    out: Path
    server: ScriptedServer

    @property
    def attempts(self) -> list[dict]:
        return [json.loads(line) for line in (self.out / "attempts.jsonl").read_text().splitlines()[1:]]

    def attempts_of(self, case: str) -> list[dict]:
        return sorted((a for a in self.attempts if a["case"] == case), key=lambda a: a["turn"])

    @property
    def payload(self) -> dict:
        return load_json(self.out / "agent-run.json")


def write_suite(root: Path) -> Path:
    for tier, name, source in (
        ("t1", "scale", SCALE_CASE),
        ("t1", "square", SQUARE_CASE),
        ("t2", "negate", NEGATE_CASE),
    ):
        (root / tier).mkdir(parents=True, exist_ok=True)
        (root / tier / f"{name}.py").write_text(source)
    return root


@pytest.fixture(scope="module")
def run(tmp_path_factory: pytest.TempPathFactory) -> AgentRun:
    root = tmp_path_factory.mktemp("agent")
    suite = write_suite(root / "suite")
    out = root / "run"
    script = {
        # no code block -> constructor raises (model_init) -> correct
        "scale": [
            Reply("I would fuse the multiply into one loop."),
            code_reply(SCALE_INIT_ERROR),
            code_reply(SCALE_OK),
        ],
        # wrong output -> the fix (then --until correct stops it: no third request)
        "negate": [code_reply(NEGATE_WRONG), code_reply(NEGATE_OK), Reply("never asked")],
        # caches outputs -> patches the timer -> no code: never a reward
        "square": [code_reply(SQUARE_CACHES), code_reply(SQUARE_PATCHES_TIMER), Reply("I give up.")],
    }
    with ScriptedServer(script) as server:
        proc = run_harness(
            "agent", "--suite", str(suite), "--base-url", server.base_url, "--model", "scripted/model",
            "--api-key-env", "AGENT_TEST_KEY", "--team", TEAM, "--turns", "3", "--until", "correct",
            "--out", str(out), "--quiet", *FAST, env={"AGENT_TEST_KEY": SECRET},
        )  # fmt: skip
    return AgentRun(proc, suite, out, server)


def test_the_run_ends_with_exit_1_when_a_case_is_unsolved(run: AgentRun) -> None:
    assert run.proc.returncode == 1, run.proc.stderr
    assert "solved 2 of 3 case(s)" in run.proc.stdout


def test_the_model_is_told_what_went_wrong_each_turn(run: AgentRun) -> None:
    scale = run.server.for_case("scale")
    assert [len(r.messages) for r in scale] == [2, 4, 4]  # --context last: prompt + latest reply + feedback
    assert scale[1].last_user == NO_CODE_FEEDBACK
    assert scale[1].messages[2] == {"role": "assistant", "content": "I would fuse the multiply into one loop."}
    assert scale[2].last_user.startswith("Result: ERROR (phase reached: model_init)")
    assert "ValueError: BLOCK must be a power of two" in scale[2].last_user
    negate = run.server.for_case("negate")
    assert negate[1].last_user.startswith("Result: FAIL (phase reached: correctness_check)")
    assert "Max absolute error:" in negate[1].last_user
    square = run.server.for_case("square")
    assert "cached result?" in square[1].last_user
    assert "time.perf_counter" in square[2].last_user


def test_a_pass_ends_the_conversation_under_until_correct(run: AgentRun) -> None:
    assert len(run.server.for_case("negate")) == 2
    assert [a["status"] for a in run.attempts_of("negate")] == ["fail", "pass"]
    cases = {c["name"]: c for c in run.payload["cases"]}
    assert cases["negate"]["rollouts"][0]["stop_reason"] == "solved" and cases["negate"]["first_pass_turn"] == 2
    assert cases["scale"]["first_pass_turn"] == 3 and cases["square"]["rollouts"][0]["stop_reason"] == "max_turns"


def test_cheating_candidates_get_reward_zero(run: AgentRun) -> None:
    square = run.attempts_of("square")
    assert [(a["status"], a["reward"]) for a in square] == [("fail", 0.0), ("error", 0.0), ("error", 0.0)]
    assert "cached result" in square[0]["reason"] and "time.perf_counter" in square[1]["reason"]
    assert all(a["reward"] > 0 for a in run.attempts if a["status"] == "pass")


def test_every_attempt_is_recorded_with_its_code_and_result(run: AgentRun) -> None:
    header = json.loads((run.out / "attempts.jsonl").read_text().splitlines()[0])
    assert header["settings"]["api_key_env"] == "AGENT_TEST_KEY" and header["settings"]["team"] == TEAM
    attempts = run.attempts
    assert len(attempts) == 8
    for a in attempts:
        assert len(a["messages_sha256"]) == 64 and a["reply"] and a["finish_reason"] == "stop"
        assert a["usage"]["total_tokens"] == 150 and a["latency_s"] >= 0 and a["feedback"]
        if a["code_path"]:
            code = (run.out / a["code_path"]).read_bytes()
            assert hashlib.sha256(code).hexdigest() == a["code_sha256"]
            assert a["result"]["status"] == a["status"] and a["extraction_error"] is None
        else:
            assert a["result"] is None and "no fenced python code block" in a["extraction_error"]
    files = sorted(p.relative_to(run.out).as_posix() for p in (run.out / "attempts").rglob("*.py"))
    assert files == [
        f"attempts/{TEAM}/t1/scale/attempt_02.py", f"attempts/{TEAM}/t1/scale/attempt_03.py",
        f"attempts/{TEAM}/t1/square/attempt_01.py", f"attempts/{TEAM}/t1/square/attempt_02.py",
        f"attempts/{TEAM}/t2/negate/attempt_01.py", f"attempts/{TEAM}/t2/negate/attempt_02.py",
    ]  # fmt: skip


def test_the_best_attempt_per_case_is_the_team_submission(run: AgentRun) -> None:
    team = run.out / "submissions" / TEAM
    assert (team / "t1" / "scale.py").read_text().strip() == SCALE_OK.strip()
    assert (team / "t2" / "negate.py").read_text().strip() == NEGATE_OK.strip()
    assert (team / "t1" / "square.py").read_text().strip() == SQUARE_CACHES.strip()  # a fail beats an error
    meta = load_json(team / "meta.json")
    assert meta["team"] == TEAM and meta["model"] == "scripted/model" and meta["endpoint_host"].startswith("127.0.0.1:")
    assert {c["name"]: c["status"] for c in meta["cases"]} == {"scale": "pass", "negate": "pass", "square": "fail"}


def test_the_artifacts_are_schema_valid_with_the_run_figures(run: AgentRun) -> None:
    for artifact in (run.out / "agent-run.json", run.out / "submissions" / TEAM / "meta.json"):
        assert validate_file(artifact).errors == []  # what `harness validate` runs
    assert get_schema("agent-run")["title"].startswith("kernel-harness agent run")
    payload = run.payload
    assert payload["complete"] is True and payload["team"] == TEAM
    summary = payload["summary"]
    assert (
        summary["solved"] == 2
        and summary["evaluated_cases"] == 3
        and summary["pass_at_k"] == {"1": pytest.approx(2 / 3)}
    )
    assert summary["solved_within_turns"] == {"1": 0.0, "2": pytest.approx(1 / 3), "3": pytest.approx(2 / 3)}
    assert (
        summary["attempts"] == 8 and summary["extraction_failures"] == 2 and summary["tokens"]["total_tokens"] == 1200
    )
    assert summary["scores"]["statuses"] == {"pass": 2, "fail": 1, "error": 0, "timeout": 0, "skipped": 0}


def test_the_api_key_is_sent_but_never_written(run: AgentRun) -> None:
    assert {r.headers["authorization"] for r in run.server.requests} == {f"Bearer {SECRET}"}
    for path in run.out.rglob("*"):
        if path.is_file():
            assert SECRET not in path.read_text(errors="replace"), path


def test_rescoring_the_submission_with_harness_run_reproduces_the_recorded_statuses(
    run: AgentRun, tmp_path: Path
) -> None:
    proc = run_harness(
        "run", "--solutions", str(run.out / "submissions" / TEAM), "--suite", str(run.suite),
        "--out", str(tmp_path / "rescored"), "--quiet", *FAST,
    )  # fmt: skip
    assert proc.returncode == 1, proc.stderr
    rescored = {c["name"]: c["status"] for c in load_json(tmp_path / "rescored" / "result.json")["cases"]}
    assert rescored == {c["name"]: c["status"] for c in run.payload["cases"]}


def test_eval_feedback_prints_the_feedback_the_agent_sent(run: AgentRun) -> None:
    attempt = run.attempts_of("scale")[1]
    proc = run_harness(
        "eval", str(run.suite / "t1" / "scale.py"), str(run.out / attempt["code_path"]), "--feedback", *FAST
    )
    assert proc.returncode == 1
    assert proc.stdout == attempt["feedback"]


def test_the_leaderboard_ranks_teams_by_their_rescored_score(run: AgentRun, tmp_path: Path) -> None:
    other = tmp_path / "other" / "team_b"
    shutil.copytree(run.out / "submissions" / TEAM, other)
    (other / "t1" / "scale.py").write_text(SCALE_INIT_ERROR)
    meta = load_json(other / "meta.json")
    meta["team"] = "team_b"
    (other / "meta.json").write_text(json.dumps(meta))
    out = tmp_path / "board"
    proc = run_harness(
        "leaderboard", str(run.out / "submissions"), str(tmp_path / "other"), "--suite", str(run.suite),
        "--case", "scale", "--out", str(out), "--quiet", *FAST,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    board = load_json(out / "leaderboard.json")
    assert [(e["rank"], e["team"]) for e in board["entries"]] == [(1, TEAM), (2, "team_b")]
    assert [[c["status"] for c in e["cases"]] for e in board["entries"]] == [["pass"], ["error"]]
    assert board["entries"][0]["total_weighted_score"] > 0 == board["entries"][1]["total_weighted_score"]
    assert validate_file(out / "leaderboard.json").ok
    markdown = (out / "leaderboard.md").read_text()
    assert "| 1 | team_a | scripted/model |" in markdown and "| 2 | team_b |" in markdown


def test_a_team_name_that_leaves_the_folder_is_exit_2(tmp_path: Path) -> None:
    proc = run_harness(
        "agent", "--suite", str(write_suite(tmp_path / "suite")), "--base-url", "http://127.0.0.1:9/v1",
        "--model", "m", "--team", "../x", "--out", str(tmp_path / "out"),
    )  # fmt: skip
    assert proc.returncode == 2 and "--team '../x'" in proc.stderr
    assert not (tmp_path / "out").exists() and not (tmp_path / "x").exists()
