"""`harness merge`: parts of one suite run (by tier, by shard) become one valid run result."""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import pytest

from harness.analysis.merge import merge_runs
from harness.artifacts.reading import load_artifact
from harness.artifacts.writing import write_artifact
from harness.errors import BadInput
from tests.analysis_support import make_run, resummarize, stock_validate
from tests.conftest import load_json, run_harness


def split(run: dict[str, Any], folder: Path, by: str = "tier") -> list[Path]:
    """Write ``run`` as parts, one per tier (or two shards), each a valid run result."""
    groups: dict[str, list[dict[str, Any]]] = {}
    for index, case in enumerate(run["cases"]):
        groups.setdefault(case["tier"] if by == "tier" else f"shard{index % 2}", []).append(case)
    paths = []
    for name, cases in sorted(groups.items()):
        part = copy.deepcopy(run)
        part["cases"] = cases
        part["provenance"] = {**part["provenance"], "command_line": ["harness", "run", "--tier", name]}
        paths.append(write_artifact(folder / f"{name}.json", resummarize(part)))
    return paths


@pytest.fixture
def whole() -> dict[str, Any]:
    return make_run(15, seed=1, statuses={4: ("fail", "correctness_check", "trial 0: wrong")})


@pytest.mark.parametrize("by", ["tier", "shard"])
def test_parts_merge_into_the_whole_run_with_its_summary(
    whole: dict[str, Any], tmp_path: Path, by: str
) -> None:
    parts = split(whole, tmp_path, by)
    out = tmp_path / "merged.json"
    proc = run_harness("merge", *map(str, parts), "--out", str(out))
    assert proc.returncode == 0, proc.stderr
    merged = load_json(out)
    assert sorted(c["name"] for c in merged["cases"]) == sorted(c["name"] for c in whole["cases"])
    assert merged["summary"]["statuses"] == whole["summary"]["statuses"]
    assert merged["summary"]["total_weighted_score"] == pytest.approx(
        whole["summary"]["total_weighted_score"]
    )
    assert merged["summary"]["geomean_speedup"] == pytest.approx(whole["summary"]["geomean_speedup"])
    assert [p["path"] for p in merged["provenance"]["parts"]] == [str(p) for p in parts]
    assert run_harness("validate", str(out)).returncode == 0
    assert stock_validate(merged) == []


def test_cases_keep_their_content_verbatim(whole: dict[str, Any], tmp_path: Path) -> None:
    merged = merge_runs([load_artifact(p, ["run_result"]) for p in split(whole, tmp_path)], ["t"])
    original = {c["name"]: c for c in whole["cases"]}
    assert all(
        json.dumps(c, sort_keys=True) == json.dumps(original[c["name"]], sort_keys=True)
        for c in merged["cases"]
    )


def test_the_same_part_twice_is_kept_once(whole: dict[str, Any], tmp_path: Path) -> None:
    parts = split(whole, tmp_path)
    merged = merge_runs([load_artifact(p, ["run_result"]) for p in [*parts, parts[0]]], ["t"])
    assert len(merged["cases"]) == 15


def test_an_overlapping_case_with_different_results_is_refused_naming_it(
    whole: dict[str, Any], tmp_path: Path
) -> None:
    parts = split(whole, tmp_path)
    other = make_run(15, seed=2)  # the same cases measured again: different samples
    other["cases"] = [c for c in other["cases"] if c["tier"] == "t1"][:1]
    clash = write_artifact(tmp_path / "clash.json", resummarize(other))
    proc = run_harness("merge", *map(str, parts), str(clash), "--out", str(tmp_path / "m.json"))
    assert proc.returncode == 2
    assert "cpu/t1/case_00" in proc.stderr and "different results" in proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1
    assert not (tmp_path / "m.json").exists()


def test_parts_of_different_solution_sets_are_refused(whole: dict[str, Any], tmp_path: Path) -> None:
    parts = split(whole, tmp_path)
    changed = load_json(parts[1])
    changed["solutions"] = "solutions/other"
    parts[1].write_text(json.dumps(changed))
    with pytest.raises(BadInput, match="different solutions"):
        merge_runs([load_artifact(p, ["run_result"]) for p in parts], ["t"])


def test_a_backend_on_different_hardware_is_refused(whole: dict[str, Any], tmp_path: Path) -> None:
    parts = split(whole, tmp_path)
    changed = load_json(parts[2])
    for device in changed["environment"]["backends"]["cpu"].values():
        device["device_name"] = "Another CPU"
    parts[2].write_text(json.dumps(changed))
    proc = run_harness("merge", *map(str, parts), "--out", str(tmp_path / "m.json"))
    assert proc.returncode == 2 and "device_name" in proc.stderr and str(parts[2]) in proc.stderr


def test_merge_rejects_bad_input_files_with_exit_2(whole: dict[str, Any], tmp_path: Path) -> None:
    parts = split(whole, tmp_path)
    missing = tmp_path / "missing.json"
    proc = run_harness("merge", str(parts[0]), str(missing), "--out", str(tmp_path / "m.json"))
    assert proc.returncode == 2 and str(missing) in proc.stderr


def test_an_incomplete_part_makes_the_merged_run_incomplete(whole: dict[str, Any], tmp_path: Path) -> None:
    parts = split(whole, tmp_path)
    changed = load_json(parts[0])
    changed["complete"] = False
    parts[0].write_text(json.dumps(changed))
    merged = merge_runs([load_artifact(p, ["run_result"]) for p in parts], ["t"])
    assert merged["complete"] is False
