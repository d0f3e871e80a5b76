"""The checked-in suite manifest matches the cases and its schema."""

from __future__ import annotations

from pathlib import Path

from harness.suite.cases import case_from_file
from harness.suite.manifest import build_manifest, profile
from tests.conftest import REPO, load_json, run_harness


def test_checked_in_manifest_is_current_and_valid() -> None:
    proc = run_harness("manifest", "--check")
    assert proc.returncode == 0, proc.stderr
    assert run_harness("validate", str(REPO / "benchmark" / "manifest.json")).returncode == 0
    manifest = load_json(REPO / "benchmark" / "manifest.json")
    names = {p.stem for p in (REPO / "benchmark").glob("t*/*.py")}
    assert {c["name"] for c in manifest["cases"]} == names
    for case in manifest["cases"]:
        assert case["sizes"]["cpu"]["flops"], f"{case['name']} has no get_flops()"


def test_profile_uses_backend_sizes_without_allocating(suite: Path) -> None:
    case = case_from_file(suite / "t1" / "scale.py")
    cpu, gpu = profile(case, "cpu"), profile(case, "gpu")
    assert cpu["inputs"] == [{"shape": [4096], "dtype": "float32"}]
    assert gpu["inputs"] == [{"shape": [1 << 20], "dtype": "float32"}]
    assert gpu["bytes_moved"] == 2 * 4 * (1 << 20)
    assert cpu["flops"] is None


def test_manifest_skips_backends_a_case_cannot_run_on(suite: Path) -> None:
    (suite / "t1" / "npu_only.py").unlink()
    entries = build_manifest(suite)
    assert [e["name"] for e in entries] == ["scale", "linear_relu"]
