"""The artifacts of an agent run: the run (schema v1/agent-run) and each team's meta.json (v1/agent-submission).

Both carry the usual envelope (schema, harness version, time, provenance, environment) and are
validated before they are written. Neither ever holds the API key: the settings name only the
variable that holds it, and URLs in the command line lose user info and query strings.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from harness.agent.client import endpoint_host, public_url
from harness.agent.figures import CaseOutcome, best_attempt, case_figures, run_figures
from harness.agent.seams import command_line, envelope, git_commit
from harness.agent.settings import AgentSettings

_URL = re.compile(r"^(?P<prefix>--[\w-]+=)?(?P<url>https?://\S+)$")


def redacted_command_line() -> list[str]:
    """This process's command line with every URL reduced to scheme, host, port and path."""
    out = []
    for arg in command_line():
        match = _URL.match(arg)
        out.append((match.group("prefix") or "") + public_url(match.group("url")) if match else arg)
    return out


def provenance(config: dict[str, Any], suite: Path | None, note: str | None = None) -> dict[str, Any]:
    """The provenance block of an artifact made by `harness agent` or `harness leaderboard`."""
    return {
        "command_line": redacted_command_line(),
        "config": config,
        "suite_git_commit": git_commit(suite) if suite else None,
        "runtime": "local",
        "runtime_note": note,
        "container_image": None,
    }


def agent_run_payload(
    settings: AgentSettings,
    outcomes: Sequence[CaseOutcome],
    provenance_: dict[str, Any],
    environment: dict[str, Any],
    paths: dict[str, str],
    *,
    complete: bool,
    interrupted: bool,
) -> dict[str, Any]:
    payload = envelope("agent_run", provenance_, environment)
    payload.update(
        complete=complete,
        interrupted=interrupted,
        team=settings.team,
        model=settings.model,
        endpoint={"base_url": public_url(settings.base_url), "host": endpoint_host(settings.base_url)},
        suite=settings.suite,
        backend=settings.backend,
        dsl=settings.dsl,
        settings=settings.to_json(),
        paths=paths,
        cases=[case_figures(o, settings.rollouts) for o in outcomes],
        summary=run_figures(outcomes, settings.rollouts, settings.turns),
    )
    return payload


def submission_meta_payload(
    settings: AgentSettings,
    outcomes: Sequence[CaseOutcome],
    provenance_: dict[str, Any],
    environment: dict[str, Any],
    *,
    complete: bool,
) -> dict[str, Any]:
    """meta.json of a team's submission folder: who, with which model and endpoint, and the rewards."""
    payload = envelope("agent_submission", provenance_, environment)
    cases = []
    for o in outcomes:
        best = best_attempt(o.attempts)
        if o.submission is None or best is None:
            continue
        cases.append(
            {
                "name": o.case.name,
                "tier": o.case.tier,
                "file": f"{o.case.tier}/{o.case.name}.py",
                "sha256": best.code_sha256,
                "status": best.status,
                "reward": best.reward,
                "speedup": o.result.speedup,
                "rollout": best.rollout,
                "turn": best.turn,
            }
        )
    payload.update(
        complete=complete,
        team=settings.team,
        model=settings.model,
        endpoint_host=endpoint_host(settings.base_url),
        backend=settings.backend,
        dsl=settings.dsl,
        suite=settings.suite,
        turns=settings.turns,
        rollouts=settings.rollouts,
        until=settings.until,
        cases=cases,
        total_reward=sum(float(c["reward"] or 0.0) for c in cases),
    )
    return payload
