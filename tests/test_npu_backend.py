"""The Ascend NPU backend, run through the torch_npu stand-in in tests/stand_ins (no Ascend hardware here).

Every result produced through the stand-in must say so: ``simulated: true`` and the note
"NOT run on Ascend hardware" in the environment block. The stand-in is only ever put on the
PYTHONPATH of child processes, so this pytest process never grows a ``torch.npu``.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from harness.backends.npu import ASCEND_FOLDERS, STAND_IN_NOTE, NpuBackend, make_ascend_folders
from tests.conftest import FAST_ARGS, REPO, load_json, run_harness

STAND_IN = {"PYTHONPATH": f"{REPO / 'tests' / 'stand_ins'}:{REPO}"}


def _device_env(payload: dict) -> dict:
    devices = payload["environment"]["backends"]["npu"]
    assert len(devices) == 1
    return next(iter(devices.values()))


def test_eval_on_the_npu_backend_through_the_stand_in_is_marked_simulated(
    suite: Path, solutions: Path
) -> None:
    proc = run_harness(
        "eval", str(suite / "t1/scale.py"), str(solutions / "t1/scale.py"), "--backend", "npu", "--json",
        *FAST_ARGS, env=STAND_IN,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-2000:]
    payload = json.loads(proc.stdout)
    result = payload["result"]
    assert result["status"] == "pass" and result["backend"] == "npu"
    env = _device_env(payload)
    assert env["simulated"] is True
    assert env["note"] == STAND_IN_NOTE and "NOT run on Ascend hardware" in env["note"]
    assert env["torch_npu"].endswith("stand-in")
    assert env["timing"]["flush_bytes"] == 4 * 1024 * 1024  # the stand-in's own small cache flush
    assert result["timing"]["solution"]["repetitions"] == len(result["timing"]["solution"]["samples_ms"])


def test_a_case_that_imports_torch_npu_runs_on_the_npu_backend(suite: Path, write_candidate) -> None:  # type: ignore[no-untyped-def]
    candidate = write_candidate(
        "identity",
        """
        import torch.nn as nn
        class ModelNew(nn.Module):
            def forward(self, x):
                return x.clone()
        """,
    )
    proc = run_harness(
        "eval",
        str(suite / "t1/npu_only.py"),
        str(candidate),
        "--backend",
        "npu",
        "--json",
        *FAST_ARGS,
        env=STAND_IN,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert json.loads(proc.stdout)["result"]["status"] == "pass"


def test_run_on_npu_skips_a_missing_device_with_a_warning(
    suite: Path, solutions: Path, tmp_path: Path
) -> None:
    out = tmp_path / "run"
    proc = run_harness(
        "run", "--backend", "npu", "--suite", str(suite), "--solutions", str(solutions), "--case", "scale",
        "--devices", "0,5", "--out", str(out), "--quiet", *FAST_ARGS, env=STAND_IN,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-2000:]
    run = load_json(out / "result.json")
    backend = run["backends"][0]
    assert backend["devices"] == ["cpu"]
    assert any("device 5 does not exist on backend npu" in w for w in backend["warnings"])
    env = next(iter(run["environment"]["backends"]["npu"].values()))
    assert env["simulated"] is True and "NOT run on Ascend hardware" in env["note"]


def test_no_requested_npu_left_is_an_environment_error(suite: Path, solutions: Path) -> None:
    proc = run_harness(
        "eval", str(suite / "t1/scale.py"), str(solutions / "t1/scale.py"), "--backend", "npu",
        "--devices", "3", env=STAND_IN,
    )  # fmt: skip
    assert proc.returncode == 3
    assert "none of the requested devices 3 exist on backend npu (1 visible)" in proc.stderr


def test_ascend_rt_visible_devices_hiding_every_npu_is_reported(suite: Path, solutions: Path) -> None:
    proc = run_harness(
        "eval", str(suite / "t1/scale.py"), str(solutions / "t1/scale.py"), "--backend", "npu",
        env={**STAND_IN, "ASCEND_RT_VISIBLE_DEVICES": ""},
    )  # fmt: skip
    assert proc.returncode == 3
    assert "torch_npu sees no NPU (ASCEND_RT_VISIBLE_DEVICES='')" in proc.stderr


def test_without_torch_npu_the_npu_backend_is_unavailable(suite: Path, solutions: Path) -> None:
    proc = run_harness("eval", str(suite / "t1/scale.py"), str(solutions / "t1/scale.py"), "--backend", "npu")
    assert proc.returncode == 3
    assert "torch_npu is not installed" in proc.stderr


# --- what only an NPU run exercises ------------------------------------------------------------------

NPU_PATCHES = {
    "sync": "torch.npu.synchronize = lambda *a, **k: None",
    "elapsed": "torch.npu.Event.elapsed_time = lambda self, end: 1e-6",
    "module": "import types\ntorch.npu = types.ModuleType('torch.npu')",
}


def test_a_candidate_that_patches_torch_npu_is_caught_by_the_tamper_guard(suite: Path, tmp_path: Path) -> None:
    solutions = tmp_path / "patchers"
    (solutions / "t1").mkdir(parents=True)
    for name, patch in NPU_PATCHES.items():
        (suite / "t1" / f"{name}.py").write_text((suite / "t1" / "scale.py").read_text())
        (solutions / "t1" / f"{name}.py").write_text(
            f"import torch\nimport torch_npu\nimport torch.nn as nn\n{patch}\n\n"
            "class ModelNew(nn.Module):\n    def __init__(self, factor):\n        super().__init__()\n\n"
            "    def forward(self, x):\n        return x + x\n"
        )
    out = tmp_path / "run"
    proc = run_harness(
        "run", "--backend", "npu", "--suite", str(suite), "--solutions", str(solutions),
        *[a for name in NPU_PATCHES for a in ("--case", name)], "--out", str(out), "--quiet", *FAST_ARGS,
        env=STAND_IN,
    )  # fmt: skip
    assert proc.returncode == 1, proc.stderr[-2000:]
    results = {c["name"]: c for c in load_json(out / "result.json")["cases"]}
    replaced = {"sync": "torch.npu.synchronize", "elapsed": "torch.npu.Event.elapsed_time", "module": "torch.npu"}
    for name, what in replaced.items():
        assert results[name]["status"] == "error", results[name]
        assert f"the candidate replaced {what}" in json.dumps(results[name]), results[name]


MEASURE_MANY = """
import json, torch_npu
from harness.backends.npu import NpuBackend
backend = NpuBackend()
samples = backend.measure(lambda: None, 2000, "cpu", False)
facts = backend.timing_facts("cpu")
peak, cap = torch_npu._state["peak_events"], facts["max_events_per_series"]
print(json.dumps({"samples": len(samples), "peak": peak, "cap": cap}))
"""


def test_one_npu_timing_series_holds_few_device_events_however_many_calls_it_times() -> None:
    # The stand-in refuses a 1024th live event, as a 310P device has 1023; 2000 calls need 6000 events
    # when each call gets its own three, so the series must reuse a small set chunk by chunk.
    proc = subprocess.run(
        [sys.executable, "-c", MEASURE_MANY], env={**os.environ, **STAND_IN}, capture_output=True, text=True,
        timeout=300,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-2000:]
    got = json.loads(proc.stdout)
    assert got["samples"] == 2000
    assert got["peak"] <= got["cap"] == NpuBackend.max_events_per_series <= 1023 // 4


def test_cann_folders_are_created_before_torch_npu_starts(tmp_path: Path) -> None:
    environ = {name: str(tmp_path / "ascend" / name.lower()) for name in ASCEND_FOLDERS}
    made = make_ascend_folders(environ)
    assert sorted(made) == sorted(environ.values())
    assert all(Path(folder).is_dir() for folder in environ.values())
    assert make_ascend_folders(environ) == []  # already there: nothing to do
    assert make_ascend_folders({}) == []  # outside the image nothing is set and nothing is made
