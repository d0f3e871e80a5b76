"""attempts.jsonl: the agent run's durable record, and what `--resume` continues from.

Line 1 is a header (the run's settings, never the API key); every later line is one attempt,
flushed and fsynced before the loop goes on (by `harness.evaluation.journal.Journal`, the writer of
`harness run`), so a killed run loses at most the turns in flight and `--resume` never asks the
model again for a turn whose answer is on disk. A last line cut off by a crash is dropped on
reading (that turn is asked again); a bad line elsewhere is an error.
"""

from __future__ import annotations

import json
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from harness.agent.records import Attempt
from harness.agent.seams import BadInput, Journal, parse_lines

LOG_FORMAT = "kernel-harness-agent-attempts/1"


@dataclass
class LogState:
    header: dict[str, Any]
    attempts: list[Attempt] = field(default_factory=list)
    dropped_partial_line: bool = False


class AttemptLog:
    """Appends attempts durably with the harness's journal writer (which also puts back the file if
    anything else changed it); safe to call from several conversation threads."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._journal = Journal(path)
        self._lock = threading.Lock()

    @classmethod
    def create(cls, path: Path, header: dict[str, Any]) -> AttemptLog:
        Journal.create(path, {**header, "format": LOG_FORMAT}).close()
        return cls(path)

    def append(self, attempt: Attempt) -> None:
        with self._lock:
            self._journal.append(attempt)

    def close(self) -> None:
        with self._lock:
            self._journal.close()


def read_log(path: Path) -> LogState:
    """Header and attempts of an attempts.jsonl; BadInput naming the file and line when it is unusable."""
    if not path.is_file():
        raise BadInput(f"{path}: no attempts log here; --resume takes the --out folder of an earlier `harness agent`")
    lines = path.read_bytes().decode("utf-8", errors="replace").splitlines()
    if not lines:
        raise BadInput(f"{path}: the attempts log is empty; start the run again without --resume")
    try:
        header = json.loads(lines[0])
    except ValueError as exc:
        raise BadInput(f"{path}:1: header is not JSON ({str(exc)[:100]}); start the run again") from exc
    if not isinstance(header, dict) or header.get("format") != LOG_FORMAT:
        raise BadInput(f"{path}:1: not an attempts log of `harness agent` (format {LOG_FORMAT} expected)")
    fix = "delete that line to ask for that turn again"
    attempts, dropped = parse_lines(path, lines, _attempt, "attempt line", fix)
    return LogState(header=header, attempts=attempts, dropped_partial_line=dropped)


def _attempt(data: dict[str, Any]) -> Attempt:
    if data.get("kind") != "attempt":
        raise TypeError('a line is a JSON object with "kind": "attempt"')
    return Attempt.from_json(data)
