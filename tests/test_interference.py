"""Nothing a candidate does off the clock may move the reference's figures.

Each candidate computes exactly what the reference computes, and in addition keeps something running
while it is not being called: a CPU thread, child processes, or (on a GPU) kernels queued from a
background thread or a child. Unchecked, that work would compete with the reference while the
reference is timed and make the candidate look faster. The candidate's whole process tree is
stopped while the reference is timed (CPU work cannot compete), and on an event-timed device the
reference's rounds are checked against its baseline, timed before any candidate code ran (queued
device work is caught): every such candidate ends as a non-pass or with a speedup within noise of 1.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from harness.evaluation.shape_pass import DISTURBANCE_SHARE, _disturbance
from harness.sandbox.protocol import BaselineReply
from tests.conftest import run_harness
from tests.test_gpu_backend import FakeBackend, needs_cuda

MATMUL_CASE = '''
"""Multiplies two square matrices on every CPU thread: any competing work shows in its time."""
import torch
import torch.nn as nn

n = 320
SIZES = {"gpu": {"n": 4096}}


class Model(nn.Module):
    def forward(self, a, b):
        return a @ b


def get_inputs():
    return [torch.randn(n, n), torch.randn(n, n)]


def get_init_inputs():
    return []
'''

# Every candidate below computes the reference's product and keeps work going only while it has been
# idle for a few milliseconds (whether a call runs, and when the last one ended, lie in a shared file
# in its scratch folder), so that the work never slows its own timed calls: the smart way to make the
# reference look slow.
_SAME_MODEL = '''
import collections
import mmap
import os
import struct
import subprocess
import sys
import threading
import time

import torch
import torch.nn as nn

_CLOCK = os.path.join(os.getcwd(), "last_call")
with open(_CLOCK, "wb") as _fh:
    _fh.write(struct.pack("d", time.monotonic()))
_MAP = mmap.mmap(os.open(_CLOCK, os.O_RDWR), 8)


def _mark(when):
    _MAP[:8] = struct.pack("d", when)


def _idle():
    last = struct.unpack("d", _MAP[:8])[0]  # -1 while a call runs, else when the last one ended
    return last > 0 and time.monotonic() - last > 0.005


class ModelNew(nn.Module):
    def __init__(self):
        super().__init__()
        _start()

    def forward(self, a, b):
        _mark(-1.0)
        out = a @ b
        _mark(time.monotonic())
        return out
'''

_CHILD_PRELUDE = """
import mmap, os, struct, sys, time
_MAP = mmap.mmap(os.open(sys.argv[1], os.O_RDONLY), 8, prot=mmap.PROT_READ)
def _idle():
    last = struct.unpack("d", _MAP[:8])[0]
    return last > 0 and time.monotonic() - last > 0.005
"""

THREAD_BURNS_CPU = _SAME_MODEL + '''

def _burn():
    while True:
        if _idle():
            sum(range(2000))
        else:
            time.sleep(0.001)


def _start():
    threading.Thread(target=_burn, daemon=True).start()
'''

_CPU_CHILD = _CHILD_PRELUDE + """
while True:
    if _idle():
        sum(range(2000))
    else:
        time.sleep(0.001)
"""

CHILDREN_BURN_CPU = _SAME_MODEL + f'''
CHILD = {_CPU_CHILD!r}


def _start():
    for _ in range(2):
        subprocess.Popen([sys.executable, "-c", CHILD, _CLOCK])
'''

THREAD_QUEUES_KERNELS = _SAME_MODEL + '''

def _queue():
    side = torch.cuda.Stream()
    pending = collections.deque()
    while True:
        while pending and pending[0].query():
            pending.popleft()
        if _idle() and len(pending) < 20:
            with torch.cuda.stream(side):
                torch.cuda._sleep(2_000_000)  # ~1 ms of spinning per launch, queued while idle
                pending.append(torch.cuda.Event())
                pending[-1].record(side)
        else:
            time.sleep(0.0005)


def _start():
    threading.Thread(target=_queue, daemon=True).start()
'''

_GPU_CHILD = _CHILD_PRELUDE + """
import collections, torch
pending = collections.deque()
while True:
    while pending and pending[0].query():
        pending.popleft()
    if _idle() and len(pending) < 20:
        torch.cuda._sleep(2_000_000)
        pending.append(torch.cuda.Event())
        pending[-1].record()
    else:
        time.sleep(0.0005)
"""

CHILD_QUEUES_KERNELS = _SAME_MODEL + f'''
CHILD = {_GPU_CHILD!r}


def _start():
    subprocess.Popen([sys.executable, "-c", CHILD, _CLOCK])
    time.sleep(5)  # the child imports torch and starts queueing before the evaluation goes on
'''


def _evaluate(tmp_path: Path, source: str, backend: str, *extra: str) -> dict[str, Any]:
    case = tmp_path / "t1" / "matmul_square.py"
    case.parent.mkdir(parents=True, exist_ok=True)
    case.write_text(MATMUL_CASE)
    candidate = tmp_path / "candidate.py"
    candidate.write_text(source)
    proc = run_harness(
        "eval", str(case), str(candidate), "--backend", backend, "--json", "--budget-ms", "300",
        "--rounds", "6", "--trials", "1", "--seed", "3", "--timeout", "120", *extra,
    )  # fmt: skip
    assert proc.stdout, proc.stderr[-2000:]
    result: dict[str, Any] = json.loads(proc.stdout)["result"]
    return result


@pytest.mark.slow
@pytest.mark.parametrize("source", [THREAD_BURNS_CPU, CHILDREN_BURN_CPU], ids=["thread", "children"])
def test_cpu_work_a_candidate_keeps_running_does_not_slow_the_reference(tmp_path: Path, source: str) -> None:
    # Unstopped, a thread or two processes spinning on a 2-core machine take a core each from the
    # reference's matrix product: it then reads about twice as slow (speedup near 2).
    result = _evaluate(tmp_path, source, "cpu")
    assert result["status"] == "pass", result["reason"]
    assert 0.7 < result["speedup"] < 1.35, result["speedup"]


@pytest.mark.gpu
@needs_cuda
@pytest.mark.parametrize("source", [THREAD_QUEUES_KERNELS, CHILD_QUEUES_KERNELS], ids=["thread", "child"])
def test_device_work_a_candidate_queues_off_the_clock_is_not_a_faster_pass(tmp_path: Path, source: str) -> None:
    result = _evaluate(tmp_path, source, "gpu")
    assert result["status"] != "pass" or 0.97 < result["speedup"] < 1.03, result
    if result["status"] != "pass":
        assert "disturbed" in (result["reason"] or "") or "timer" in (result["reason"] or ""), result["reason"]


# --- the disturbance check itself (supervisor side, fake device) --------------------------------------


def _base(samples: list[float]) -> BaselineReply:
    cal = {"idle_ms": 0.02, "margin_ms": 0.1, "event_cost_ms": 0.0}
    series = {"event_ms": samples, "join_ms": [s + 0.03 for s in samples]}
    return BaselineReply(estimate_ms=1.0, host_ms=0.0, lead_ms=0.0, calibration=cal, series=series)


def test_a_reference_slower_in_its_rounds_than_in_its_baseline_is_reported_as_disturbed() -> None:
    backend = FakeBackend()
    base = _base([1.0, 1.001, 0.999, 1.0, 1.002, 0.998] * 5)
    assert _disturbance(backend, base, [1.0 + DISTURBANCE_SHARE / 2] * 60) is None
    reason = _disturbance(backend, base, [1.10] * 60)
    assert reason is not None and "disturbed" in reason and "+10.0 %" in reason


def test_a_noisy_baseline_widens_the_tolerance_instead_of_failing_honest_candidates() -> None:
    backend = FakeBackend()
    noisy = _base([0.9, 1.1, 0.95, 1.05, 1.0, 0.92, 1.08, 1.0] * 4)  # interquartile spread ~10 %
    assert _disturbance(backend, noisy, [1.08] * 60) is None


def test_cpu_backends_have_no_baseline_check() -> None:
    series = {"samples_ms": [1.0] * 9}
    cpu_base = BaselineReply(estimate_ms=1.0, host_ms=0.0, lead_ms=0.0, calibration=None, series=series)
    assert _disturbance(FakeBackend(), cpu_base, [9.0]) is None
