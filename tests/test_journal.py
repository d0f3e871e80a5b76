"""`harness.evaluation.journal`: the append-only record `harness run --resume` continues from."""

from __future__ import annotations

import json
import math
import os
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from harness.errors import BadInput
from harness.evaluation.journal import JOURNAL_FORMAT, Journal, JournalState, read_journal, resume_settings
from harness.results import CaseResult
from harness.timing import TimingStats

HEADER: dict[str, Any] = {"options": {"suite": "suite", "solutions": "solutions"}, "run_seed": 7, "cases": ["a"]}


def _result(name: str, status: str = "pass") -> CaseResult:
    return CaseResult(name=name, tier="t1", backend="cpu", status=status)


def _journal_with(path: Path, *names: str) -> Journal:
    journal = Journal.create(path, HEADER)
    for name in names:
        journal.append(_result(name))
    return journal


def test_what_was_appended_is_read_back_with_its_header(tmp_path: Path) -> None:
    path = tmp_path / "run" / "journal.jsonl"  # create makes the folder
    timed = _result("b", "fail")
    timed.reference_timing = TimingStats.from_samples([1.0, 2.0, 3.0], warmup=2)
    journal = _journal_with(path, "a")
    journal.append(timed)
    journal.close()
    state = read_journal(path)
    assert state.header == {"format": JOURNAL_FORMAT, **HEADER}
    assert state.results == [_result("a"), timed]
    assert not state.dropped_partial_line


def test_each_case_is_one_line_after_the_header(tmp_path: Path) -> None:
    journal = _journal_with(tmp_path / "journal.jsonl", "a", "b", "c")
    journal.close()
    lines = (tmp_path / "journal.jsonl").read_text().splitlines()
    assert [json.loads(line).get("name") for line in lines] == [None, "a", "b", "c"]


def test_a_journal_reopened_after_a_restart_appends_after_its_lines(tmp_path: Path) -> None:
    path = tmp_path / "journal.jsonl"
    _journal_with(path, "a").close()
    again = Journal(path)
    again.append(_result("b"))
    again.close()
    assert [r.name for r in read_journal(path).results] == ["a", "b"]


def test_a_torn_last_line_is_cut_off_when_the_journal_is_reopened(tmp_path: Path) -> None:
    path = tmp_path / "journal.jsonl"
    _journal_with(path, "a").close()
    whole = path.read_bytes()
    path.write_bytes(whole + b'{"name": "b", "ti')  # the supervisor died while writing this line
    Journal(path).close()
    assert path.read_bytes() == whole


def test_a_torn_last_line_is_dropped_and_reported_by_the_reader(tmp_path: Path) -> None:
    path = tmp_path / "journal.jsonl"
    _journal_with(path, "a").close()
    with path.open("a") as fh:
        fh.write('{"name": "b", "ti')
    state = read_journal(path)
    assert [r.name for r in state.results] == ["a"] and state.dropped_partial_line


def test_a_corrupt_line_before_the_last_is_an_error_naming_its_line(tmp_path: Path) -> None:
    path = tmp_path / "journal.jsonl"
    _journal_with(path, "a").close()
    with path.open("a") as fh:
        fh.write("[1, 2]\n" + json.dumps(_result("c").to_json()) + "\n")
    with pytest.raises(BadInput, match=re.escape(f"{path}:3: corrupt journal line")):
        read_journal(path)


def _forge_a_verdict(path: Path) -> None:
    path.write_text(path.read_text().replace('"pass"', '"error"'))


def _delete(path: Path) -> None:
    path.unlink()


def _replace_with_the_header_alone(path: Path) -> None:
    forged = path.with_name("forged.jsonl")
    forged.write_text(json.dumps({"format": JOURNAL_FORMAT, **HEADER}) + "\n")
    os.replace(forged, path)


@pytest.mark.parametrize("tamper", [_forge_a_verdict, _delete, _replace_with_the_header_alone])
def test_a_journal_changed_behind_the_writers_back_is_put_back_before_the_next_append(
    tmp_path: Path, tamper: Callable[[Path], None]
) -> None:
    path = tmp_path / "journal.jsonl"
    journal = _journal_with(path, "a")
    tamper(path)
    journal.append(_result("b"))
    journal.append(_result("c"))
    journal.close()
    assert journal.repairs == 1
    assert [(r.name, r.status) for r in read_journal(path).results] == [("a", "pass"), ("b", "pass"), ("c", "pass")]


def test_a_file_touched_but_not_changed_is_not_counted_as_a_repair(tmp_path: Path) -> None:
    path = tmp_path / "journal.jsonl"
    journal = _journal_with(path, "a")
    os.utime(path, ns=(1, 1))
    journal.append(_result("b"))
    journal.append(_result("c"))
    journal.close()
    assert journal.repairs == 0
    assert [r.name for r in read_journal(path).results] == ["a", "b", "c"]


def test_a_result_that_cannot_be_written_as_json_leaves_the_journal_as_it_was(tmp_path: Path) -> None:
    path = tmp_path / "journal.jsonl"
    journal = _journal_with(path, "a")
    before = path.read_bytes()
    bad = _result("b")
    bad.speedup = math.nan
    with pytest.raises(ValueError):
        journal.append(bad)
    journal.append(_result("c"))
    journal.close()
    assert path.read_bytes().startswith(before)
    assert [r.name for r in read_journal(path).results] == ["a", "c"]


# --- reading the header -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    "first_line",
    [
        json.dumps({"format": "kernel-harness-journal/0", **HEADER}),
        json.dumps({**HEADER}),
        json.dumps([JOURNAL_FORMAT]),
    ],
    ids=["another-format", "no-format", "not-an-object"],
)
def test_a_header_of_another_format_is_refused(tmp_path: Path, first_line: str) -> None:
    path = tmp_path / "journal.jsonl"
    path.write_text(first_line + "\n")
    with pytest.raises(BadInput, match=re.escape(f"{path}:1: not a kernel-harness journal")):
        read_journal(path)


def test_a_header_that_is_not_json_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "journal.jsonl"
    path.write_text("format: kernel-harness-journal/1\n")
    with pytest.raises(BadInput, match=re.escape(f"{path}:1: journal header is not JSON")):
        read_journal(path)


def test_a_missing_or_empty_journal_is_bad_input_naming_it(tmp_path: Path) -> None:
    path = tmp_path / "journal.jsonl"
    with pytest.raises(BadInput, match=re.escape(f"{path}: no journal here")):
        read_journal(path)
    path.write_text("")
    with pytest.raises(BadInput, match=re.escape(f"{path}: journal is empty")):
        read_journal(path)


# --- resume_settings --------------------------------------------------------------------------------


def test_resume_settings_are_the_saved_options_and_seed() -> None:
    state = JournalState(header={"format": JOURNAL_FORMAT, **HEADER})
    assert resume_settings(state, Path("j.jsonl")) == (HEADER["options"], 7)


@pytest.mark.parametrize(
    "header,missing",
    [
        ({"run_seed": 7}, "options and seed"),
        ({"options": {"suite": "s", "solutions": "x"}}, "options and seed"),
        ({"options": {"suite": "s", "solutions": "x"}, "run_seed": "7"}, "options and seed"),
        ({"options": {"suite": "s", "solutions": "x"}, "run_seed": True}, "options and seed"),
        ({"options": ["suite"], "run_seed": 7}, "options and seed"),
        ({"options": {"solutions": "x"}, "run_seed": 7}, "options.suite"),
        ({"options": {"suite": "s", "solutions": None}, "run_seed": 7}, "options.solutions"),
    ],
)
def test_resume_settings_name_the_file_and_what_its_header_lacks(
    tmp_path: Path, header: dict[str, Any], missing: str
) -> None:
    path = tmp_path / "journal.jsonl"
    with pytest.raises(BadInput, match=re.escape(f"{path}:1: journal header lacks")) as caught:
        resume_settings(JournalState(header={"format": JOURNAL_FORMAT, **header}), path)
    assert missing in str(caught.value)


def test_resume_settings_of_a_journal_written_by_create(tmp_path: Path) -> None:
    path = tmp_path / "journal.jsonl"
    _journal_with(path, "a").close()
    assert resume_settings(read_journal(path), path) == (HEADER["options"], 7)
