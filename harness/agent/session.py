"""The flow behind `harness agent`: settings, resume, checks before the first request, the loop, artifacts.

Everything that can be wrong with the input (team name, URL, suite, template, backend, a log to
resume) is found before the model is asked anything, so a typo never costs tokens. Kept apart from
the click command so that the command stays declarative and this flow can be driven from Python.
"""

from __future__ import annotations

import datetime as dt
import os
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from harness.agent.artifact import provenance
from harness.agent.attempt_log import AttemptLog, read_log
from harness.agent.client import ChatClient, check_base_url
from harness.agent.evaluation import AttemptEvaluator
from harness.agent.layout import ATTEMPTS_LOG, RunLayout, check_team
from harness.agent.loop import AgentLoop, Observer
from harness.agent.prompts import DEFAULT_DSL, PromptBuilder, default_examples, load_template
from harness.agent.recorder import RunRecorder
from harness.agent.records import Attempt
from harness.agent.seams import BadInput, Case, ExitCode, discover, host_environment
from harness.agent.settings import AgentSettings

# DSLs that only make sense on one backend.
DSL_BACKENDS = {"cuda": ("gpu",), "ascendc": ("npu",)}


@dataclass
class RunOutcome:
    payload: dict[str, Any]
    interrupted: bool
    resumed_attempts: int
    out: Path
    endpoint_error: str | None = None  # the first endpoint error of the run, if any

    @property
    def exit_code(self) -> int:
        """130 interrupted; 3 when the endpoint never answered; 1 when a case is not solved; else 0."""
        summary = self.payload["summary"]
        if self.interrupted:
            return ExitCode.INTERRUPTED
        if summary["attempts"] and not summary["answered"]:
            return ExitCode.ENVIRONMENT
        if summary["solved"] < summary["evaluated_cases"]:
            return ExitCode.CANDIDATE_FAILED
        return ExitCode.OK


def default_dsl(backend: str, dsl: str | None) -> str:
    chosen = dsl or DEFAULT_DSL[backend]
    allowed = DSL_BACKENDS.get(chosen)
    if allowed and backend not in allowed:
        raise BadInput(f"--dsl {chosen} needs --backend {' or '.join(allowed)}, not {backend}")
    return chosen


def api_key(settings: AgentSettings, explicit: bool) -> str | None:
    """The key from the environment variable the settings name; BadInput when asked for and missing."""
    value = os.environ.get(settings.api_key_env) or None
    if value is None and explicit:
        raise BadInput(f"--api-key-env {settings.api_key_env}: that environment variable is not set")
    return value


class AgentSession:
    """One `harness agent` run, prepared and checked; `run` asks the model."""

    def __init__(
        self,
        settings: AgentSettings,
        out: Path,
        attempts: list[Attempt],
        log: AttemptLog | None,
        key: str | None,
        clear: bool = False,
    ) -> None:
        self.settings = settings
        self.out = out
        self.layout = RunLayout(out, settings.team)
        self.resumed = list(attempts)
        suite = Path(settings.suite)
        self.cases: list[Case] = discover(suite, settings.tiers, settings.names, settings.keyword)
        if not self.cases:
            raise BadInput(f"no case in {suite} matches the filters given")
        template = load_template(Path(settings.prompt_template) if settings.prompt_template else None)
        examples = Path(settings.examples) if settings.examples else default_examples(suite, settings.dsl)
        if examples is not None and not examples.is_dir():
            raise BadInput(f"--examples {examples}: no such folder (a solution set: <dir>/t<N>/<case>.py)")
        self.prompts = PromptBuilder(template, settings.backend, settings.dsl, discover(suite), examples)
        self.evaluator = AttemptEvaluator(settings.eval_config(), settings.backend, settings.device)
        self.evaluator.check_backend()
        self.key = key
        if clear:  # --overwrite, once everything has been checked: the earlier run's files go
            shutil.rmtree(self.layout.attempts_dir, ignore_errors=True)
            shutil.rmtree(self.layout.submission_dir, ignore_errors=True)
            self.layout.run_artifact.unlink(missing_ok=True)
        self.log = log or AttemptLog.create(
            self.layout.attempts_log, {"settings": settings.to_json(), "cases": [c.name for c in self.cases]}
        )
        environment = host_environment()

        def current_environment() -> dict[str, Any]:
            return {**environment, "backends": {settings.backend: dict(self.evaluator.environment)}}

        self.recorder = RunRecorder(
            self.layout,
            self.log,
            settings,
            self.cases,
            attempts,
            provenance(settings.to_json(), suite),
            current_environment,
        )

    @classmethod
    def start(cls, settings: AgentSettings, out: Path | None, overwrite: bool, key_explicit: bool) -> AgentSession:
        """A new run in ``out`` (default runs/<time>); BadInput when ``out`` holds one and not ``overwrite``."""
        check_team(settings.team)
        check_base_url(settings.base_url)
        settings.stop_rule()
        out = out or Path("runs") / dt.datetime.now().strftime("%Y%m%d-%H%M%S")
        earlier = RunLayout(out, settings.team).attempts_log.exists()
        if earlier and not overwrite:
            raise BadInput(f"{out} already holds an agent run; continue it with --resume {out}, or pass --overwrite")
        key = api_key(settings, key_explicit)
        return cls(settings, out, [], None, key, clear=earlier)

    @classmethod
    def resume(cls, out: Path, overrides: dict[str, Any], key_explicit: bool) -> AgentSession:
        """Continue the run in ``out`` from its attempts.jsonl; endpoint options may be given again."""
        path = out / ATTEMPTS_LOG
        state = read_log(path)
        settings = AgentSettings.from_json(state.header.get("settings"), str(path)).with_overrides(overrides)
        check_base_url(settings.base_url)
        key = api_key(settings, key_explicit)
        return cls(settings, out, state.attempts, AttemptLog(path), key)

    def run(self, observer: Observer | None = None) -> RunOutcome:
        """Ask, evaluate and record until every conversation has ended (or Ctrl-C)."""
        settings = self.settings
        client = ChatClient(settings.endpoint(self.key))
        loop = AgentLoop(
            client,
            self.prompts,
            self.evaluator,
            self.recorder,
            settings.stop_rule(),
            rollouts=settings.rollouts,
            context=settings.context,
            concurrency=settings.concurrency,
            observer=observer,
        )
        interrupted = False
        try:
            interrupted = loop.run()
        except KeyboardInterrupt:
            interrupted = True
        payload = self.recorder.finish(interrupted)
        if not interrupted:
            self.log.close()
            client.close()
        errors = [a.endpoint_error for found in self.recorder.attempts.values() for a in found if a.endpoint_error]
        return RunOutcome(
            payload=payload,
            interrupted=interrupted,
            resumed_attempts=len(self.resumed),
            out=self.out,
            endpoint_error=errors[0] if errors else None,
        )
