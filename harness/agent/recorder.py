"""Puts every finished attempt on disk at once, so that a run stopped at any point leaves valid files.

For each attempt: its line in attempts.jsonl (fsynced), the case's submission file when the attempt
is the case's new best, the team's meta.json and the run artifact (``complete: false`` until the
run ends). Each file is replaced atomically, so a reader (or a Ctrl-C) sees the old file or the
new one. Conversations call `record` from their own threads; one lock orders the writes.
"""

from __future__ import annotations

import hashlib
import threading
from collections.abc import Callable, Sequence
from typing import Any

from harness.agent.artifact import agent_run_payload, submission_meta_payload
from harness.agent.attempt_log import AttemptLog
from harness.agent.figures import CaseOutcome, best_attempt, best_result
from harness.agent.layout import RunLayout
from harness.agent.records import Attempt
from harness.agent.seams import BadInput, Case, write_artifact, write_atomic
from harness.agent.settings import AgentSettings


class RunRecorder:
    def __init__(
        self,
        layout: RunLayout,
        log: AttemptLog,
        settings: AgentSettings,
        cases: Sequence[Case],
        attempts: Sequence[Attempt],
        provenance: dict[str, Any],
        environment: Callable[[], dict[str, Any]],
    ) -> None:
        self.layout = layout
        self.log = log
        self.settings = settings
        self.cases = list(cases)
        self.provenance = provenance
        self.environment = environment
        self.attempts: dict[str, list[Attempt]] = {c.name: [] for c in self.cases}
        for attempt in attempts:
            self.attempts.setdefault(attempt.case, []).append(attempt)
        self.stop_reasons: dict[str, dict[int, str]] = {c.name: {} for c in self.cases}
        self._submitted: dict[str, tuple[int, int]] = {}
        self._lock = threading.Lock()
        self._closed = False
        width = max(2, len(str(settings.rollouts * settings.turns)))
        self._index_width = width
        for case in self.cases:
            self._sync_submission(case)

    def skip_reason(self, case: Case) -> str | None:
        return case.skip_reason(self.settings.backend)

    def attempt_index(self, rollout: int, turn: int) -> int:
        """The number of an attempt file: rollout-major, so files sort in conversation order."""
        return rollout * self.settings.turns + turn

    def write_code(self, case: Case, rollout: int, turn: int, code: str) -> tuple[str, str]:
        """Write an attempt's code as ``attempt_NN.py``; returns its path (relative to the run) and sha256."""
        path = self.layout.attempt_file(case.tier, case.name, self.attempt_index(rollout, turn), self._index_width)
        write_atomic(path, code)
        return self.layout.relative(path), hashlib.sha256(code.encode("utf-8")).hexdigest()

    def record(self, case: Case, attempt: Attempt) -> None:
        """Keep one finished attempt: the log line first, then everything derived from it."""
        with self._lock:
            self.log.append(attempt)
            self.attempts.setdefault(case.name, []).append(attempt)
            if self._closed:
                return  # a reply that came in after the run ended: on disk for --resume, nothing more
            self._sync_submission(case)
            self._write(complete=False, interrupted=False)

    def conversation_ended(self, case: Case, rollout: int, reason: str) -> None:
        with self._lock:
            self.stop_reasons.setdefault(case.name, {})[rollout] = reason

    def finish(self, interrupted: bool) -> dict[str, Any]:
        """Write the final artifacts; returns the run payload."""
        with self._lock:
            self._closed = True
            return self._write(complete=not interrupted, interrupted=interrupted)

    def outcomes(self) -> list[CaseOutcome]:
        outcomes = []
        for case in self.cases:
            attempts = self.attempts.get(case.name, [])
            reason = self.skip_reason(case)
            outcomes.append(
                CaseOutcome(
                    case=case,
                    attempts=attempts,
                    result=best_result(case, self.settings.backend, attempts, reason),
                    skip_reason=reason,
                    stop_reasons=self.stop_reasons.get(case.name, {}),
                    submission=self.layout.relative(self.layout.submission_file(case.tier, case.name))
                    if case.name in self._submitted
                    else None,
                )
            )
        return outcomes

    def _sync_submission(self, case: Case) -> None:
        """Make the case's submission file the code of its best attempt."""
        best = best_attempt(self.attempts.get(case.name, []))
        if best is None or best.code_path is None or self._submitted.get(case.name) == (best.rollout, best.turn):
            return
        source = self.layout.out / best.code_path
        try:
            code = source.read_text(encoding="utf-8")
        except OSError as exc:
            raise BadInput(
                f"{source}: cannot read the attempt file ({exc.strerror}); it is listed in {self.layout.attempts_log}"
            ) from exc
        write_atomic(self.layout.submission_file(case.tier, case.name), code)
        self._submitted[case.name] = (best.rollout, best.turn)

    def _write(self, *, complete: bool, interrupted: bool) -> dict[str, Any]:
        outcomes = self.outcomes()
        environment = self.environment()
        layout = self.layout
        paths = {
            "attempts_log": layout.relative(layout.attempts_log),
            "attempts": layout.relative(layout.attempts_dir),
            "submission": layout.relative(layout.submission_dir),
            "meta": layout.relative(layout.meta),
        }
        meta = submission_meta_payload(self.settings, outcomes, self.provenance, environment, complete=complete)
        write_artifact(layout.meta, meta)
        payload = agent_run_payload(
            self.settings, outcomes, self.provenance, environment, paths, complete=complete, interrupted=interrupted
        )
        write_artifact(layout.run_artifact, payload)
        return payload
