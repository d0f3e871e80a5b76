"""`harness run --shard I/N` and `harness merge`: parts that run anywhere and join into the whole run."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from harness.errors import BadInput
from harness.suite.cases import Case
from harness.suite.shards import parse_shard, split
from tests.conftest import run_harness

SEED = ["--seed", "11", "--budget-ms", "5", "--rounds", "2", "--trials", "1", "--timeout", "120"]


def _cases(n: int) -> list[Case]:
    return [Case(name=f"c{i:02d}", tier="t1", path=Path(f"t1/c{i:02d}.py")) for i in range(n)]


@given(st.lists(st.floats(min_value=0.1, max_value=50.0), min_size=1, max_size=40), st.integers(1, 8))
def test_the_parts_cover_every_case_once_and_stay_within_one_case_of_each_other(costs: list[float], count: int) -> None:
    cases = _cases(len(costs))
    cost = {c.name: x for c, x in zip(cases, costs, strict=True)}
    parts = split(cases, count, cost)
    names = [c.name for part in parts for c in part]
    assert sorted(names) == [c.name for c in cases] and len(names) == len(set(names))
    loads = [sum(cost[c.name] for c in part) for part in parts]
    assert max(loads) - min(loads) <= max(costs) + 1e-9
    assert split(cases, count, cost) == parts  # the same split in every process


@pytest.mark.parametrize("text", ["0/3", "4/3", "3", "a/b", "1/0", ""])
def test_a_malformed_shard_is_bad_input(text: str) -> None:
    with pytest.raises(BadInput, match="--shard"):
        parse_shard(text)


def _suite(root: Path) -> tuple[Path, Path]:
    suite, solutions = root / "suite", root / "solutions"
    for i, factor in enumerate((2.0, 3.0, 4.0, 5.0)):
        case = f'''
"""Scales a vector by {factor}."""
import torch
import torch.nn as nn

n = {1024 * (i + 1)}


class Model(nn.Module):
    def forward(self, x):
        return x * {factor}


def get_inputs():
    return [torch.randn(n)]


def get_init_inputs():
    return []
'''
        (suite / "t1").mkdir(parents=True, exist_ok=True)
        (solutions / "t1").mkdir(parents=True, exist_ok=True)
        (suite / "t1" / f"scale{i}.py").write_text(case)
        wrong = "x * 0" if i == 2 else f"x * {factor}"  # one candidate fails, so statuses differ by case
        body = f"class ModelNew(nn.Module):\n    def forward(self, x):\n        return {wrong}\n"
        (solutions / "t1" / f"scale{i}.py").write_text("import torch.nn as nn\n\n\n" + body)
    return suite, solutions


def _statuses(result: Path) -> dict[str, tuple[str, str | None]]:
    payload = json.loads(result.read_text())
    return {c["name"]: (c["status"], (c["correctness"] or {}).get("output_fingerprint")) for c in payload["cases"]}


def test_three_shards_merged_equal_the_unsharded_run(tmp_path: Path) -> None:
    suite, solutions = _suite(tmp_path)
    common = ["run", "--suite", str(suite), "--solutions", str(solutions), "--quiet", *SEED]
    whole = run_harness(*common, "--out", str(tmp_path / "whole"))
    assert whole.returncode == 1, whole.stderr  # one candidate fails
    parts = []
    for i in (1, 2, 3):
        out = tmp_path / f"shard{i}"
        run_harness(*common, "--shard", f"{i}/3", "--out", str(out))
        parts.append(str(out / "result.json"))
    merged = tmp_path / "merged.json"
    proc = run_harness("merge", *parts, "--out", str(merged))
    assert proc.returncode == 0, proc.stderr
    assert _statuses(merged) == _statuses(tmp_path / "whole" / "result.json")  # same inputs, same verdicts
    payload, reference = json.loads(merged.read_text()), json.loads((tmp_path / "whole" / "result.json").read_text())
    assert payload["complete"] is True
    assert payload["summary"]["statuses"] == reference["summary"]["statuses"]
    assert payload["summary"]["pass_rate"] == reference["summary"]["pass_rate"]
    # two of three parts: merged, but marked incomplete and saying which part is missing
    proc = run_harness("merge", parts[0], parts[2], "--out", str(tmp_path / "partial.json"))
    partial = json.loads((tmp_path / "partial.json").read_text())
    assert proc.returncode == 0 and partial["complete"] is False
    assert "missing shard(s) 2/3" in partial["provenance"]["runtime_note"]


def test_merge_refuses_parts_of_different_configurations(tmp_path: Path) -> None:
    suite, solutions = _suite(tmp_path)
    common = ["run", "--suite", str(suite), "--solutions", str(solutions), "--quiet", *SEED]
    common += ["--case", "scale0", "--case", "scale1"]
    run_harness(*common, "--shard", "1/2", "--out", str(tmp_path / "a"))
    run_harness(*common, "--shard", "2/2", "--trials", "2", "--out", str(tmp_path / "b"))
    proc = run_harness("merge", str(tmp_path / "a" / "result.json"), str(tmp_path / "b" / "result.json"),
                       "--out", str(tmp_path / "m.json"))  # fmt: skip
    assert proc.returncode == 2
    assert "different configurations (trials: 1 vs 2)" in proc.stderr
    forged = json.loads((tmp_path / "b" / "result.json").read_text())
    forged["harness_version"], forged["provenance"]["config"]["trials"] = "0.0.1", 1
    (tmp_path / "c.json").write_text(json.dumps(forged))
    proc = run_harness("merge", str(tmp_path / "a" / "result.json"), str(tmp_path / "c.json"), "--out",
                       str(tmp_path / "m.json"))  # fmt: skip
    assert proc.returncode == 2 and "different harness versions" in proc.stderr


def test_a_shard_whose_part_has_nothing_to_evaluate_still_writes_its_part(tmp_path: Path) -> None:
    suite, solutions = _suite(tmp_path)
    for i in (1, 2, 3):
        (solutions / "t1" / f"scale{i}.py").unlink()  # only scale0 has a candidate
    common = ["run", "--suite", str(suite), "--solutions", str(solutions), "--quiet", *SEED]
    parts, codes = [], []
    for i in (1, 2):
        out = tmp_path / f"shard{i}"
        proc = run_harness(*common, "--shard", f"{i}/2", "--out", str(out))
        codes.append(proc.returncode)
        parts.append(str(out / "result.json"))
        assert proc.returncode == 0, proc.stderr  # a part of skipped cases is not a run of nothing
    merged = tmp_path / "merged.json"
    assert run_harness("merge", *parts, "--out", str(merged)).returncode == 0
    payload = json.loads(merged.read_text())
    assert payload["complete"] is True and payload["summary"]["statuses"]["pass"] == 1
    assert payload["summary"]["statuses"]["skipped"] == 3
    # the whole selection with nothing to evaluate is still refused, shard or not
    (solutions / "t1" / "scale0.py").unlink()
    proc = run_harness(*common, "--shard", "1/2", "--out", str(tmp_path / "none"))
    assert proc.returncode == 2 and "nothing to evaluate" in proc.stderr
