"""When a conversation ends: turns used up, a correct candidate (``--until correct``), no progress,
or a broken case (the case file, not the candidate, failed: no answer of the model can fix it).

The rule is a function of the answered attempts alone, so a resumed run decides exactly as the
interrupted one would have: a conversation that was finished stays finished and asks for nothing.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from harness.agent.records import Attempt

UNTIL = ("correct", "max-turns")


@dataclass(frozen=True)
class StopRule:
    turns: int
    until: str = "max-turns"  # correct: stop at the first passing attempt
    patience: int | None = None  # stop after this many turns in a row without a better reward

    def __post_init__(self) -> None:
        if self.turns < 1 or self.until not in UNTIL or (self.patience is not None and self.patience < 1):
            raise ValueError(f"bad stop rule: turns={self.turns}, until={self.until!r}, patience={self.patience}")

    def reason(self, attempts: Sequence[Attempt]) -> str | None:
        """Why the conversation with these attempts is over (broken_case, solved, patience, max_turns), or None."""
        answered = sorted((a for a in attempts if a.answered), key=lambda a: a.turn)
        if any(a.result is not None and a.result.case_error for a in answered):
            return "broken_case"
        if self.until == "correct" and any(a.correct for a in answered):
            return "solved"
        if self.patience is not None and _turns_without_gain(answered) >= self.patience:
            return "patience"
        if len(answered) >= self.turns:
            return "max_turns"
        return None


def _turns_without_gain(answered: Sequence[Attempt]) -> int:
    """Turns since the reward last beat the best before it (the best starts at 0)."""
    best, since = 0.0, 0
    for attempt in answered:
        if attempt.reward > best:
            best, since = attempt.reward, 0
        else:
            since += 1
    return since
