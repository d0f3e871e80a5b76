"""One attempt of the loop as it is stored: a line of attempts.jsonl.

An attempt is one turn of one conversation (case, rollout): what was sent (a hash of the messages),
what came back (raw reply, finish reason, tokens, latency), the code taken from it (file and
sha256) or why there was none, the case result of its evaluation, its reward, and the feedback text.
An attempt with ``endpoint_error`` got no reply: it is kept for the record, but it is not a turn.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from harness.agent.seams import CaseResult

ENDPOINT_REASON = "endpoint"


@dataclass
class Attempt:
    case: str
    tier: str
    rollout: int
    turn: int  # 1-based
    index: int  # 1-based number of the attempt file (attempt_NN.py) within the case
    messages_sha256: str
    message_count: int
    time: str
    reply: str | None = None
    finish_reason: str | None = None
    usage: dict[str, int] = field(default_factory=dict)
    latency_s: float = 0.0
    endpoint_retries: int = 0
    endpoint_error: str | None = None
    code_path: str | None = None
    code_sha256: str | None = None
    extraction_error: str | None = None
    status: str = "error"
    reason: str | None = None
    result: CaseResult | None = None
    reward: float = 0.0
    feedback: str | None = None

    @property
    def answered(self) -> bool:
        """Whether the model replied (an endpoint error is not a turn and is asked again on --resume)."""
        return self.endpoint_error is None

    @property
    def correct(self) -> bool:
        return self.status == "pass"

    @property
    def key(self) -> tuple[str, int]:
        """The conversation this attempt belongs to."""
        return (self.case, self.rollout)

    def to_json(self) -> dict[str, Any]:
        data = {k: v for k, v in self.__dict__.items() if k != "result"}
        data["kind"] = "attempt"
        data["result"] = self.result.to_json() if self.result else None
        return data

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Attempt:
        fields = {k: v for k, v in data.items() if k in cls.__dataclass_fields__ and k != "result"}
        result = data.get("result")
        return cls(**fields, result=CaseResult.from_json(result) if result else None)
