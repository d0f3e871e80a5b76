"""Append-only JSONL journal of finished cases: what `harness run --resume` continues from.

Line 1 is a header (the run's configuration and its task keys); every later line is one finished
case result, flushed and fsynced as the case ends, so a killed supervisor loses at most the case
in flight. The writer remembers every line it wrote: if anyone else changes the file during the
run (a candidate, where nothing forbade it), it is put back before the next line is appended.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol, TypeVar

from harness.errors import BadInput
from harness.results import CaseResult

T = TypeVar("T")
JOURNAL_NAME = "journal.jsonl"
JOURNAL_FORMAT = "kernel-harness-journal/1"


class JournalRecord(Protocol):
    """What a line is made from: a case result here; `harness agent` journals its attempts the same way."""

    def to_json(self) -> dict[str, Any]: ...


@dataclass
class JournalState:
    header: dict[str, Any]
    results: list[CaseResult] = field(default_factory=list)
    dropped_partial_line: bool = False


class Journal:
    """Writer for a run's journal file."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._data = path.read_bytes() if path.exists() else b""
        if self._data and not self._data.endswith(b"\n"):
            # A line cut off by a crash: drop it, so the next line starts on a line of its own.
            self._data = self._data[: self._data.rfind(b"\n") + 1]
            path.write_bytes(self._data)
        self._fh = path.open("ab")
        self._signature = self._stat()
        self.repairs = 0

    @classmethod
    def create(cls, path: Path, header: dict[str, Any]) -> Journal:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps({"format": JOURNAL_FORMAT, **header}) + "\n", encoding="utf-8")
        return cls(path)

    def append(self, result: JournalRecord) -> None:
        """Add one finished case, durably (fsync), after putting back anything changed behind our back."""
        if self._stat() != self._signature:
            self._repair()
        line = (json.dumps(result.to_json(), allow_nan=False) + "\n").encode("utf-8")
        self._fh.write(line)
        self._fh.flush()
        os.fsync(self._fh.fileno())
        self._data += line
        self._signature = self._stat()

    def _stat(self) -> tuple[int, int, int, int] | None:
        try:
            st = os.stat(self.path)
        except OSError:
            return None
        return (st.st_size, st.st_mtime_ns, st.st_ctime_ns, st.st_ino)

    def _repair(self) -> None:
        """Rewrite the file from what this writer wrote, if its bytes differ (ctime moved, say)."""
        try:
            if self.path.read_bytes() == self._data:
                return
        except OSError:
            pass
        self.repairs += 1
        self._fh.close()
        tmp = self.path.with_name(f".{self.path.name}.repair")
        tmp.write_bytes(self._data)
        os.replace(tmp, self.path)
        self._fh = self.path.open("ab")

    def close(self) -> None:
        self._fh.close()


def read_journal(path: Path) -> JournalState:
    """The header and finished results of a journal; BadInput naming the line when it is corrupt.

    A last line cut off by a crash is dropped (and reported); a bad line elsewhere is an error.
    """
    if not path.is_file():
        raise BadInput(f"{path}: no journal here; --resume takes the --out folder of an earlier run")
    try:
        lines = path.read_bytes().decode("utf-8", errors="replace").splitlines()
    except OSError as exc:
        raise BadInput(f"{path}: cannot read the journal ({exc.strerror})") from exc
    if not lines:
        raise BadInput(f"{path}: journal is empty; start the run again without --resume")
    header = _parse_header(path, lines[0])
    results, dropped = parse_lines(
        path, lines, CaseResult.from_json, "journal line", "delete that line to re-run its case, or start the run again"
    )
    return JournalState(header=header, results=results, dropped_partial_line=dropped)


def parse_lines(
    path: Path, lines: list[str], parse: Callable[[dict[str, Any]], T], what: str, fix: str
) -> tuple[list[T], bool]:
    """The records of a JSONL log after its header line, and whether a torn last line was dropped.

    A last line cut off by a crash is dropped; a bad line elsewhere is BadInput naming the file, the
    line and ``fix``. ``parse`` may raise ValueError, KeyError, TypeError or AttributeError.
    """
    records: list[T] = []
    for number, line in enumerate(lines[1:], start=2):
        if not line.strip():
            continue
        try:
            data = json.loads(line)
            if not isinstance(data, dict):
                raise TypeError(f"a line is a JSON object, not {type(data).__name__}")
            records.append(parse(data))
        except (ValueError, KeyError, TypeError, AttributeError, RecursionError) as exc:
            if number == len(lines):
                return records, True
            raise BadInput(f"{path}:{number}: corrupt {what} ({type(exc).__name__}: {str(exc)[:200]}); {fix}") from exc
    return records, False


def _parse_header(path: Path, line: str) -> dict[str, Any]:
    """The journal's first line, checked for what `--resume` needs from it."""
    try:
        header = json.loads(line)
    except (ValueError, RecursionError) as exc:
        raise BadInput(
            f"{path}:1: journal header is not JSON ({str(exc)[:200]}); start the run again"
        ) from exc
    if not isinstance(header, dict) or header.get("format") != JOURNAL_FORMAT:
        raise BadInput(f"{path}:1: not a kernel-harness journal (format {JOURNAL_FORMAT} expected)")
    return header


def resume_settings(state: JournalState, path: Path) -> tuple[dict[str, Any], int]:
    """The saved options and run seed that ``--resume`` continues with; BadInput when they are missing."""
    options, seed = state.header.get("options"), state.header.get("run_seed")
    if not isinstance(options, dict) or type(seed) is not int:
        raise BadInput(f"{path}:1: journal header lacks the run's options and seed; start the run again")
    for key in ("suite", "solutions"):
        if not isinstance(options.get(key), str):
            raise BadInput(f"{path}:1: journal header lacks options.{key}; start the run again")
    return options, seed
