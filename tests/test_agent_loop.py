"""The loop in-process: rollouts are independent conversations, numbered rollout-major, run concurrently.

The scripted model never answers with code here, so nothing is evaluated and the test stays fast.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from harness.agent.session import AgentSession
from harness.agent.settings import AgentSettings
from harness.artifacts.schemas import check
from harness.errors import BadInput
from tests.agent_support import NEGATE_CASE, Reply, ScriptedServer


def test_rollouts_are_independent_conversations_numbered_rollout_major(tmp_path: Path) -> None:
    suite = tmp_path / "suite"
    (suite / "t1").mkdir(parents=True)
    (suite / "t1" / "negate.py").write_text(NEGATE_CASE)
    replies = [Reply(f"answer {i}") for i in range(4)]
    with ScriptedServer({"negate": replies}) as server:
        settings = AgentSettings(
            suite=str(suite), team="t", model="m", base_url=server.base_url, turns=2, rollouts=2, concurrency=2,
            context="full", temperature=0.7,
        )  # fmt: skip
        outcome = AgentSession.start(settings, tmp_path / "out", overwrite=False, key_explicit=False).run()
    assert not outcome.interrupted and check(outcome.payload).ok
    assert len(server.requests) == 4 and all(r.body["temperature"] == 0.7 for r in server.requests)
    lines = (tmp_path / "out" / "attempts.jsonl").read_text().splitlines()[1:]
    attempts = [json.loads(line) for line in lines]
    assert sorted((a["rollout"], a["turn"], a["index"]) for a in attempts) == [
        (0, 1, 1),
        (0, 2, 2),
        (1, 1, 3),
        (1, 2, 4),
    ]
    for rollout in (0, 1):  # --context full: turn 2 carries its own rollout's turn 1, never the other's
        first, second = sorted((a for a in attempts if a["rollout"] == rollout), key=lambda a: a["turn"])
        request = next(
            r for r in server.requests if len(r.messages) == 4 and r.messages[2]["content"] == first["reply"]
        )
        assert request.messages[3]["role"] == "user" and second["messages_sha256"] != first["messages_sha256"]
    (case,) = outcome.payload["cases"]
    assert [r["turns_used"] for r in case["rollouts"]] == [2, 2]
    assert [r["stop_reason"] for r in case["rollouts"]] == ["max_turns", "max_turns"]
    assert outcome.payload["summary"]["pass_at_k"] == {"1": 0.0, "2": 0.0}
    assert outcome.exit_code == 1
    with pytest.raises(BadInput, match=r"already holds an agent run; continue it with --resume"):
        AgentSession.start(settings, tmp_path / "out", overwrite=False, key_explicit=False)
