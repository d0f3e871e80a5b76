"""One worker per device (`--devices 0,1`), on stand-in devices: the CPU backend told it has two.

What the multi-device runner promises whatever the device (issue 12; the GPU figures need two
GPUs): every case runs once, each result names the device it ran on, the environment has every
device, a case that hangs on one device does not stop the other, and a device that disappears
mid-run costs only its in-flight case, which is retried once on another device.
"""

from __future__ import annotations

import os
import signal
from pathlib import Path
from typing import Any

import pytest

from harness.backends.cpu import CpuBackend
from harness.evaluation.evaluate import EvalConfig
from harness.evaluation.runner import Runner
from harness.suite.cases import discover
from harness.timing import TimingConfig

CASE = '''
"""Scales a vector by {factor}."""
import torch
import torch.nn as nn

n = 2048


class Model(nn.Module):
    def forward(self, x):
        return x * {factor}


def get_inputs():
    return [torch.randn(n)]


def get_init_inputs():
    return []
'''
SOLUTION = "import torch.nn as nn\n\n\nclass ModelNew(nn.Module):\n    def forward(self, x):\n        return {body}\n"


@pytest.fixture
def two_devices(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(CpuBackend, "device_count", lambda self: 2)
    monkeypatch.setattr(CpuBackend, "device_string", lambda self, index: f"cpu:{index}")


def _suite(root: Path, bodies: dict[str, str]) -> tuple[Path, Path]:
    suite, solutions = root / "suite" / "t1", root / "solutions" / "t1"
    suite.mkdir(parents=True)
    solutions.mkdir(parents=True)
    for i, (name, body) in enumerate(bodies.items()):
        (suite / f"{name}.py").write_text(CASE.format(factor=i + 2))
        (solutions / f"{name}.py").write_text(SOLUTION.format(body=body.format(factor=i + 2)))
    return suite.parent, solutions.parent


def _config(timeout_s: float = 60.0) -> EvalConfig:
    return EvalConfig(backend="cpu", trials=1, seed=5, timeout_s=timeout_s, timing=TimingConfig(budget_ms=5, rounds=2))


def test_each_case_runs_once_on_one_of_the_devices_and_every_device_reports_its_environment(
    tmp_path: Path, two_devices: None
) -> None:
    suite, solutions = _suite(tmp_path, {f"c{i}": "x * {factor}" for i in range(6)})
    outcome = Runner(_config(), solutions, devices=["0", "1"]).run(["cpu"], discover(suite))
    assert sorted(r.name for r in outcome.results) == [f"c{i}" for i in range(6)]
    assert all(r.status == "pass" for r in outcome.results)
    assert {r.device for r in outcome.results} == {"cpu:0", "cpu:1"}
    assert set(outcome.backends[0].environment) == {"cpu:0", "cpu:1"}


def test_a_case_that_hangs_on_one_device_does_not_stop_the_other(tmp_path: Path, two_devices: None) -> None:
    bodies = {"a_hangs": "__import__('time').sleep(1000) or x", **{f"c{i}": "x * {factor}" for i in range(4)}}
    suite, solutions = _suite(tmp_path, bodies)
    outcome = Runner(_config(timeout_s=8.0), solutions, devices=["0", "1"]).run(["cpu"], discover(suite))
    by_name = {r.name: r for r in outcome.results}
    assert by_name["a_hangs"].status == "timeout"
    assert all(by_name[f"c{i}"].status == "pass" for i in range(4))
    other = {r.device for r in outcome.results if r.name != "a_hangs"} - {by_name["a_hangs"].device}
    assert other, "the other device ran the other cases while one device waited for the hanging case"


class _DeviceGoesAway(Runner):
    """Device cpu:1's first reference worker dies as its first case starts; a new one never starts."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.references_on_1 = 0
        self.lost_case: str | None = None

    def _new_worker(self, role: str, backend: str, device: str, scratch: Path | None = None) -> Any:
        if role == "reference" and device == "cpu:1":
            self.references_on_1 += 1
            if self.references_on_1 > 1:
                raise RuntimeError("no such device (it went away)")
            worker = super()._new_worker(role, backend, device, scratch)
            begin = worker.begin

            def begin_then_die(method: str, **kwargs: Any) -> None:
                begin(method, **kwargs)
                if method == "prepare" and self.lost_case is None:
                    self.lost_case = kwargs["case"]["name"]
                    os.kill(worker.process.pid, signal.SIGKILL)

            worker.begin = begin_then_die
            return worker
        return super()._new_worker(role, backend, device, scratch)


def test_a_device_that_disappears_costs_only_its_in_flight_case_which_runs_again_on_the_other(
    tmp_path: Path, two_devices: None
) -> None:
    suite, solutions = _suite(tmp_path, {f"c{i}": "x * {factor}" for i in range(5)})
    runner = _DeviceGoesAway(_config(), solutions, devices=["0", "1"])
    outcome = runner.run(["cpu"], discover(suite))
    by_name = {r.name: r for r in outcome.results}
    assert sorted(by_name) == [f"c{i}" for i in range(5)]
    assert runner.lost_case is not None
    assert all(r.status == "pass" for r in outcome.results), [(r.name, r.reason) for r in outcome.results]
    assert by_name[runner.lost_case].device == "cpu:0"  # retried on the device that was left
    retried = [w for w in by_name[runner.lost_case].warnings if w.startswith("retried on device cpu:0")]
    assert retried and "reference worker on device cpu:1 was lost" in retried[0]
    assert not any(w.startswith("retried") for r in outcome.results if r.name != runner.lost_case for w in r.warnings)
    assert {r.device for r in outcome.results} == {"cpu:0"}
    assert any("device cpu:1 was lost mid-run" in w for w in outcome.backends[0].warnings)
