"""`harness agent --resume` after a kill and after Ctrl-C: answered turns are never asked again, the
partial artifacts are valid, and endpoint errors do not use up turns.

No evaluation runs here (the scripted model never answers with code), so the test is about the loop
and its files alone.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

from harness.agent.extract import NO_CODE_FEEDBACK
from harness.artifacts.schemas import check, validate_file
from tests.agent_support import NEGATE_CASE, Hold, Reply, ScriptedServer, Status
from tests.conftest import REPO, load_json


def _start(*args: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "harness", "agent", *args, "--quiet"],
        cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=dict(os.environ),
    )  # fmt: skip


def _stop_when_held(proc: subprocess.Popen[str], server: ScriptedServer, sig: signal.Signals) -> int:
    """Send ``sig`` once the run's request is waiting at the server's Hold; the exit code."""
    assert server.held.wait(120), "the run never sent its request"
    proc.send_signal(sig)
    proc.communicate(timeout=120)
    return proc.returncode


def _attempts(out: Path) -> list[dict]:
    return [json.loads(line) for line in (out / "attempts.jsonl").read_text().splitlines()[1:]]


def test_resume_after_a_kill_and_after_ctrl_c_asks_only_for_unanswered_turns(tmp_path: Path) -> None:
    suite = tmp_path / "suite"
    (suite / "t1").mkdir(parents=True)
    (suite / "t1" / "negate.py").write_text(NEGATE_CASE)
    (suite / "t1" / "npu_only.py").write_text(NEGATE_CASE.replace("import torch\n", "import torch\nimport torch_npu\n"))
    out = tmp_path / "run"

    # 1. Turn 1 is answered (no code); killed (SIGKILL) while turn 2 waits for the model.
    with ScriptedServer({"negate": [Reply("first answer"), Hold()]}) as server:
        proc = _start("--suite", str(suite), "--base-url", server.base_url, "--model", "m", "--team", "t",
                      "--turns", "3", "--max-retries", "1", "--out", str(out))  # fmt: skip
        assert _stop_when_held(proc, server, signal.SIGKILL) == -signal.SIGKILL
    assert [a["turn"] for a in _attempts(out)] == [1]
    partial = load_json(out / "agent-run.json")
    assert check(partial).ok and partial["complete"] is False

    # 2. Resumed elsewhere: only turn 2 is asked (after turn 1's exchange); Ctrl-C while turn 3 waits.
    with ScriptedServer({"negate": [Reply("second answer"), Hold()]}) as server:
        proc = _start("--resume", str(out), "--base-url", server.base_url)
        assert _stop_when_held(proc, server, signal.SIGINT) == 130
        first, second = server.requests
        assert first.messages[2]["content"] == "first answer" and first.last_user == NO_CODE_FEEDBACK
        assert second.messages[2]["content"] == "second answer"
    interrupted = load_json(out / "agent-run.json")
    assert check(interrupted).ok and interrupted["complete"] is False and interrupted["interrupted"] is True
    assert [a["turn"] for a in _attempts(out)] == [1, 2]

    # 3. Resumed against a failing endpoint: turn 3 is tried twice, then recorded as an endpoint error
    #    that is not a turn (a later --resume asks for turn 3 again).
    with ScriptedServer({"negate": [Status(503), Status(503)]}) as server:
        proc = _start("--resume", str(out), "--base-url", server.base_url)
        proc.communicate(timeout=120)
        assert proc.returncode == 1
        assert [r.messages[2]["content"] for r in server.requests] == ["second answer", "second answer"]
    endpoint = _attempts(out)[-1]
    assert endpoint["turn"] == 3 and endpoint["status"] == "error" and endpoint["reason"].startswith("endpoint:")
    assert "HTTP 503" in endpoint["endpoint_error"] and endpoint["reply"] is None
    final = load_json(out / "agent-run.json")
    case, skipped = final["cases"]
    assert skipped["name"] == "npu_only" and skipped["status"] == "skipped" and skipped["attempts"] == 0
    assert final["complete"] is True and case["turns_used"] == 2 and case["endpoint_errors"] == 1
    assert case["rollouts"][0]["stop_reason"] == "endpoint" and case["status"] == "error"
    assert validate_file(out / "submissions" / "t" / "meta.json").ok  # what `harness validate` runs
