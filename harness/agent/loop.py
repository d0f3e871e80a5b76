"""The loop: ask the model, take the code out, evaluate it, tell the model how it did, repeat.

Every case gets ``rollouts`` independent conversations; ``concurrency`` of them run at once, each in
its own thread, so requests to the model overlap while evaluations queue for the device (see
`dispatch`). A conversation ends by its `StopRule`, or on an endpoint error once the client's
retries are used up (the endpoint is down: asking again at once would not help, and `--resume`
asks again later), or when the run is interrupted.
"""

from __future__ import annotations

import datetime as dt
import queue
import threading
from collections.abc import Sequence
from typing import Protocol

from harness.agent.client import ChatClient, EndpointError
from harness.agent.conversation import history_of, messages_for, messages_sha256
from harness.agent.dispatch import EvaluationQueue, Interrupted
from harness.agent.evaluation import AttemptEvaluator
from harness.agent.extract import extract_code, no_code_feedback
from harness.agent.feedback import feedback_text
from harness.agent.metrics import reward
from harness.agent.prompts import PromptBuilder
from harness.agent.recorder import RunRecorder
from harness.agent.records import ENDPOINT_REASON, Attempt
from harness.agent.seams import Case
from harness.agent.stop import StopRule


class Observer(Protocol):
    """What a front end (the progress display) hears; called from conversation threads."""

    def planned(self, conversations: Sequence[tuple[Case, int, int]]) -> None: ...
    def turn_started(self, case: Case, rollout: int, turn: int) -> None: ...
    def evaluating(self, case: Case, rollout: int, turn: int) -> None: ...
    def attempt_finished(self, attempt: Attempt) -> None: ...
    def conversation_ended(self, case: Case, rollout: int, reason: str) -> None: ...


class _Silent:
    def planned(self, conversations: Sequence[tuple[Case, int, int]]) -> None: ...
    def turn_started(self, case: Case, rollout: int, turn: int) -> None: ...
    def evaluating(self, case: Case, rollout: int, turn: int) -> None: ...
    def attempt_finished(self, attempt: Attempt) -> None: ...
    def conversation_ended(self, case: Case, rollout: int, reason: str) -> None: ...


def _now() -> str:
    return dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds")


class AgentLoop:
    """Runs every unfinished conversation of a run; `run` returns whether it was interrupted."""

    def __init__(
        self,
        client: ChatClient,
        prompts: PromptBuilder,
        evaluator: AttemptEvaluator,
        recorder: RunRecorder,
        rule: StopRule,
        *,
        rollouts: int = 1,
        context: str = "last",
        concurrency: int = 1,
        observer: Observer | None = None,
    ) -> None:
        self.client = client
        self.prompts = prompts
        self.evaluator = evaluator
        self.recorder = recorder
        self.rule = rule
        self.rollouts = rollouts
        self.context = context
        self.concurrency = max(1, concurrency)
        self.observer = observer or _Silent()
        self.evaluations = EvaluationQueue()
        self._stop = threading.Event()
        self._failures: list[BaseException] = []

    def conversations(self) -> list[tuple[Case, int]]:
        """Every conversation of the run (skipped cases have none)."""
        return [(c, r) for c in self.recorder.cases if not self.recorder.skip_reason(c) for r in range(self.rollouts)]

    def _attempts(self, case: Case, rollout: int) -> list[Attempt]:
        return [a for a in self.recorder.attempts.get(case.name, []) if a.rollout == rollout]

    def run(self) -> bool:
        """Run until every conversation has ended; True when interrupted (Ctrl-C)."""
        pending: queue.Queue[tuple[Case, int]] = queue.Queue()
        finished: list[tuple[Case, int, str]] = []
        plan = []
        for case, rollout in self.conversations():
            attempts = self._attempts(case, rollout)
            plan.append((case, rollout, sum(1 for a in attempts if a.answered)))
            reason = self.rule.reason(attempts)
            if reason:  # finished before a --resume: nothing to ask
                finished.append((case, rollout, reason))
            else:
                pending.put((case, rollout))
        self.observer.planned(plan)
        for case, rollout, reason in finished:
            self.recorder.conversation_ended(case, rollout, reason)
            self.observer.conversation_ended(case, rollout, reason)
        threads = [
            threading.Thread(target=self._worker, args=(pending,), name=f"agent-conversation-{i}", daemon=True)
            for i in range(min(self.concurrency, pending.qsize()))
        ]
        for thread in threads:
            thread.start()
        try:
            self.evaluations.serve(finished=lambda: self._stop.is_set() or not any(t.is_alive() for t in threads))
        except KeyboardInterrupt:
            self._stop.set()
            return True
        if self._failures:
            raise self._failures[0]
        return self._stop.is_set()

    def _worker(self, pending: queue.Queue[tuple[Case, int]]) -> None:
        while not self._stop.is_set():
            try:
                case, rollout = pending.get_nowait()
            except queue.Empty:
                return
            try:
                reason = self._converse(case, rollout)
            except Interrupted:
                reason = "interrupted"
            except BaseException as exc:  # noqa: BLE001 - raised again in the main thread by run()
                self._failures.append(exc)
                self._stop.set()
                self.evaluations.close()
                return
            self.recorder.conversation_ended(case, rollout, reason)
            self.observer.conversation_ended(case, rollout, reason)

    def _converse(self, case: Case, rollout: int) -> str:
        """One conversation, from where its recorded attempts left it; returns why it ended."""
        system, user = self.prompts.build(case)
        attempts = self._attempts(case, rollout)
        while not self._stop.is_set():
            reason = self.rule.reason(attempts)
            if reason:
                return reason
            turn = 1 + sum(1 for a in attempts if a.answered)
            attempt = self._turn(case, rollout, turn, system, user, attempts)
            if attempt is None:
                break
            self.recorder.record(case, attempt)
            attempts.append(attempt)
            self.observer.attempt_finished(attempt)
            if not attempt.answered:
                return ENDPOINT_REASON
        return "interrupted"

    def _turn(
        self, case: Case, rollout: int, turn: int, system: str, user: str, attempts: list[Attempt]
    ) -> Attempt | None:
        """Ask, extract, evaluate: the attempt of this turn (None when the run stopped meanwhile)."""
        messages = messages_for(system, user, history_of(attempts), self.context)
        attempt = Attempt(
            case=case.name,
            tier=case.tier,
            rollout=rollout,
            turn=turn,
            index=self.recorder.attempt_index(rollout, turn),
            messages_sha256=messages_sha256(messages),
            message_count=len(messages),
            time=_now(),
        )
        self.observer.turn_started(case, rollout, turn)
        try:
            completion = self.client.complete(messages)
        except EndpointError as exc:
            attempt.endpoint_error = str(exc)
            attempt.reason = f"{ENDPOINT_REASON}: {exc}"
            attempt.endpoint_retries = max(0, exc.tries - 1)
            attempt.latency_s = exc.latency_s
            return None if self._stop.is_set() else attempt
        if self._stop.is_set():
            return None
        attempt.reply = completion.text
        attempt.finish_reason = completion.finish_reason
        attempt.usage = completion.usage
        attempt.latency_s = completion.latency_s
        attempt.endpoint_retries = completion.retries
        extraction = extract_code(completion.text, completion.finish_reason)
        if extraction.code is None:
            attempt.extraction_error = extraction.error
            attempt.reason = extraction.error
            attempt.feedback = no_code_feedback(completion.finish_reason)
            return attempt
        attempt.code_path, attempt.code_sha256 = self.recorder.write_code(case, rollout, turn, extraction.code)
        self.observer.evaluating(case, rollout, turn)
        path = self.recorder.layout.out / attempt.code_path
        result = self.evaluations.submit(lambda: self.evaluator.evaluate(case, path, attempt.index))
        attempt.result = result
        attempt.status = result.status
        attempt.reason = result.reason
        attempt.reward = reward(result)
        attempt.feedback = feedback_text(result)
        return attempt
