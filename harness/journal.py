"""Append-only JSONL journal of finished cases: what `harness run --resume` continues from.

Line 1 is a header (the run's configuration and its task keys); every later line is one finished
case result, flushed and fsynced as the case ends, so a killed supervisor loses at most the case
in flight.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from harness.errors import BadInput
from harness.results import CaseResult

JOURNAL_NAME = "journal.jsonl"
JOURNAL_FORMAT = "kernel-harness-journal/1"


@dataclass
class JournalState:
    header: dict[str, Any]
    results: list[CaseResult] = field(default_factory=list)
    dropped_partial_line: bool = False


class Journal:
    """Writer for a run's journal file."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._fh = path.open("a", encoding="utf-8")

    @classmethod
    def create(cls, path: Path, header: dict[str, Any]) -> Journal:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps({"format": JOURNAL_FORMAT, **header}) + "\n", encoding="utf-8")
        return cls(path)

    def append(self, result: CaseResult) -> None:
        self._fh.write(json.dumps(result.to_json(), allow_nan=False) + "\n")
        self._fh.flush()
        os.fsync(self._fh.fileno())

    def close(self) -> None:
        self._fh.close()


def read_journal(path: Path) -> JournalState:
    """The header and finished results of a journal; BadInput naming the line when it is corrupt.

    A last line cut off by a crash is dropped (and reported); a bad line elsewhere is an error.
    """
    if not path.is_file():
        raise BadInput(f"{path}: no journal here; --resume takes the --out folder of an earlier run")
    lines = path.read_text(encoding="utf-8", errors="replace").splitlines()
    if not lines:
        raise BadInput(f"{path}: journal is empty; start the run again without --resume")
    try:
        header = json.loads(lines[0])
    except ValueError as exc:
        raise BadInput(f"{path}:1: journal header is not JSON ({exc}); start the run again") from exc
    if not isinstance(header, dict) or header.get("format") != JOURNAL_FORMAT:
        raise BadInput(f"{path}:1: not a kernel-harness journal (format {JOURNAL_FORMAT} expected)")
    state = JournalState(header=header)
    for number, line in enumerate(lines[1:], start=2):
        if not line.strip():
            continue
        try:
            state.results.append(CaseResult.from_json(json.loads(line)))
        except (ValueError, KeyError, TypeError) as exc:
            if number == len(lines):
                state.dropped_partial_line = True
                break
            raise BadInput(
                f"{path}:{number}: corrupt journal line ({type(exc).__name__}: {exc}); "
                "delete that line to re-run its case, or start the run again"
            ) from exc
    return state
