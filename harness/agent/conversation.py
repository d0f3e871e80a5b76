"""The messages of each request: the prompts, then earlier replies and the feedback on them.

``--context last`` sends only the latest reply and its feedback (requests stay small however many
turns there are); ``full`` sends the whole conversation. Replies go back without their thinking
(``<think>...</think>``), as reasoning models expect. Only answered turns are part of a
conversation: an endpoint error left nothing to answer to. The hash of the messages is recorded, so
two runs can be compared request by request without storing every prompt again.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence

from harness.agent.client import Message
from harness.agent.extract import strip_thinking
from harness.agent.records import Attempt

CONTEXTS = ("last", "full")


def history_of(attempts: Sequence[Attempt]) -> list[tuple[str, str]]:
    """``(reply, feedback)`` of the answered attempts of one conversation, in turn order."""
    return [
        (a.reply or "", a.feedback or "")
        for a in sorted(attempts, key=lambda a: a.turn)
        if a.answered and a.feedback is not None
    ]


def messages_for(system: str, user: str, history: Sequence[tuple[str, str]], context: str) -> list[Message]:
    """The request for the next turn after ``history``."""
    if context not in CONTEXTS:
        raise ValueError(f"context must be one of {CONTEXTS}, not {context!r}")
    messages: list[Message] = [{"role": "system", "content": system}, {"role": "user", "content": user}]
    for reply, feedback in history if context == "full" else history[-1:]:
        messages.append({"role": "assistant", "content": strip_thinking(reply).strip()})
        messages.append({"role": "user", "content": feedback})
    return messages


def messages_sha256(messages: Sequence[Message]) -> str:
    """sha256 of the messages as canonical JSON (sorted keys, no spaces)."""
    text = json.dumps(list(messages), sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(text.encode("utf-8")).hexdigest()
