"""The CUDA backend: device selection, backend timing defaults, event timing that catches side-stream work.

The timing logic is tested on the CPU through a fake runtime with a simulated device clock; tests
marked ``gpu`` run the real thing and are skipped without a CUDA device (studies/gpu_session.py
runs them on the lent H100).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from harness.backends.gpu import EventTimedBackend, GpuBackend
from harness.errors import EnvironmentUnavailable
from harness.timing import TimingConfig, for_backend
from tests.conftest import REPO, run_harness

# A candidate for benchmark/t2/cross_entropy.py that computes on a side stream and returns without
# making the calling stream wait for it: events on the calling stream alone would time almost nothing.
SIDE_STREAM_CASE = "benchmark/t2/cross_entropy.py"
HIDDEN_SIDE_STREAM = '''
"""Cheat attempt: the loss is computed on a side stream the calling stream never waits for."""
import torch
import torch.nn as nn
import torch.nn.functional as F


class ModelNew(nn.Module):
    def __init__(self):
        super().__init__()
        self.side = None

    def forward(self, logits, targets):
        if self.side is None:
            self.side = torch.cuda.Stream()
        self.side.wait_stream(torch.cuda.current_stream())
        with torch.cuda.stream(self.side):
            out = F.cross_entropy(logits, targets)
        return out  # not joined back
'''

# The honest way to use a second stream: the calling stream waits for it before returning.
JOINED_SIDE_STREAM = HIDDEN_SIDE_STREAM.replace(
    "Cheat attempt: the loss is computed on a side stream the calling stream never waits for.",
    "Side stream used properly: the calling stream waits for it before returning.",
).replace(
    "        return out  # not joined back",
    "        torch.cuda.current_stream().wait_stream(self.side)\n"
    "        out.record_stream(torch.cuda.current_stream())\n"
    "        return out",
)


def _has_cuda() -> bool:
    try:
        import torch

        return bool(torch.cuda.is_available())
    except ImportError:
        return False


needs_cuda = pytest.mark.skipif(not _has_cuda(), reason="needs a CUDA device")


# --- timing defaults --------------------------------------------------------------------------------


def test_gpu_timing_defaults_apply_only_to_fields_left_at_the_generic_default() -> None:
    overrides = GpuBackend.timing_overrides
    assert overrides["max_repetitions"] > TimingConfig().max_repetitions
    config = for_backend(TimingConfig(budget_ms=50.0), overrides)
    assert config.max_repetitions == overrides["max_repetitions"] and config.budget_ms == 50.0
    explicit = for_backend(TimingConfig(max_repetitions=40), overrides)
    assert explicit.max_repetitions == 40
    assert for_backend(TimingConfig(), {}) == TimingConfig()


# --- device selection -------------------------------------------------------------------------------


def test_missing_device_is_skipped_with_a_warning_and_none_left_is_an_error(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    backend = GpuBackend()
    monkeypatch.setattr(backend, "available", lambda: None)
    monkeypatch.setattr(backend, "device_count", lambda: 2)
    chosen, warnings = backend.select_devices(["1", "5"])
    assert chosen == ["cuda:1"]
    assert len(warnings) == 1 and "device 5 does not exist" in warnings[0] and "2 visible" in warnings[0]
    assert backend.select_devices(None) == (["cuda:0"], [])
    with pytest.raises(EnvironmentUnavailable, match="none of the requested devices 7,9 exist"):
        backend.select_devices(["7", "9"])


@pytest.mark.skipif(_has_cuda(), reason="checks the message on a machine without CUDA")
def test_gpu_backend_without_cuda_exits_3_naming_cuda_visible_devices(suite: Path, solutions: Path) -> None:
    proc = run_harness(
        "eval", str(suite / "t1/scale.py"), str(solutions / "t1/scale.py"), "--backend", "gpu",
        env={"CUDA_VISIBLE_DEVICES": ""},
    )  # fmt: skip
    assert proc.returncode == 3, proc.stderr
    assert "backend gpu is unavailable" in proc.stderr and "CUDA_VISIBLE_DEVICES=''" in proc.stderr


# --- event timing with a simulated device -----------------------------------------------------------


class FakeRuntime:
    """A device clock in ms: the calling stream's work advances ``now``; side work ends at ``pending``."""

    def __init__(self, wake_ms: float = 0.005, record_ms: float = 0.0) -> None:
        self.now = 0.0
        self.pending = 0.0
        self.wake_ms = wake_ms
        self.record_ms = record_ms  # what recording an event costs the stream
        self.jitter: list[float] = []  # extra host delay after the next synchronize calls

    class _Event:
        def __init__(self, rt: FakeRuntime) -> None:
            self.rt = rt
            self.t: float | None = None

        def record(self, stream: Any = None) -> None:
            self.t = self.rt.now
            self.rt.now += self.rt.record_ms

        def query(self) -> bool:
            return True  # the calling stream's work is done by the time the host polls

        def elapsed_time(self, end: FakeRuntime._Event) -> float:
            assert self.t is not None and end.t is not None
            return end.t - self.t

    def Event(self, enable_timing: bool = False) -> FakeRuntime._Event:  # noqa: N802 - mirrors torch.cuda.Event
        return FakeRuntime._Event(self)

    def current_stream(self, device: Any = None) -> object:
        return object()

    def synchronize(self, device: Any = None) -> None:
        # the host returns once every stream is idle, then needs wake_ms to queue the next event
        self.now = max(self.now, self.pending) + self.wake_ms + (self.jitter.pop(0) if self.jitter else 0.0)


class FakeBackend(EventTimedBackend):
    name = "gpu"
    device_type = "cuda"
    default_dsl = "triton_cuda"

    def __init__(self) -> None:
        super().__init__()
        self.rt = FakeRuntime()

    def runtime(self) -> FakeRuntime:
        return self.rt

    def flush(self, device: str) -> None:
        self.rt.now += 0.09  # the flush kernel

    def spin(self, device: str, cycles: int = 200_000) -> None:
        self.rt.now += cycles / 2e6  # a 2 GHz clock

    def available(self) -> str | None:
        return None

    def device_count(self) -> int:
        return 1


def _work(rt: FakeRuntime, main_ms: float, side_ms: float = 0.0) -> Callable[[], None]:
    def call() -> None:
        if side_ms:
            rt.pending = rt.now + side_ms  # launched first, on another stream, never joined
        rt.now += main_ms

    return call


@pytest.mark.parametrize("flush", [True, False])
def test_work_on_the_calling_stream_is_timed_exactly_without_host_latency(flush: bool) -> None:
    backend = FakeBackend()
    samples = backend.measure(_work(backend.rt, 0.25), 50, "cuda:0", flush)
    assert samples == pytest.approx([0.25] * 50)
    assert backend.timing_notes() == []
    assert backend.last_measure["late_samples"] == 0


def test_work_hidden_on_another_stream_is_included_and_reported() -> None:
    backend = FakeBackend()
    samples = backend.measure(_work(backend.rt, 0.01, side_ms=2.0), 40, "cuda:0", True)
    # everything up to the device-wide synchronize: the 2 ms side work plus the wake-up latency
    assert all(2.0 <= s <= 2.0 + 0.006 for s in samples), samples[:3]
    notes = backend.timing_notes()
    assert len(notes) == 1 and "side-stream work: 40 of 40" in notes[0]
    assert backend.timing_notes() == []  # reported once


def test_an_isolated_late_call_is_host_jitter_and_keeps_its_event_time() -> None:
    backend = FakeBackend()
    backend.calibration("cuda:0", True)
    backend.rt.jitter = [0.0] * 10 + [0.5]  # the 11th call's host thread was preempted
    samples = backend.measure(_work(backend.rt, 0.25), 100, "cuda:0", True)
    assert backend.last_measure["late_samples"] == 1 and not backend.last_measure["side_stream"]
    assert samples == pytest.approx([0.25] * 100)
    assert backend.timing_notes() == []


def test_side_work_in_a_few_calls_only_is_below_the_pattern_threshold() -> None:
    backend = FakeBackend()
    calls = iter(range(1000))
    honest, hidden = _work(backend.rt, 0.25), _work(backend.rt, 0.25, side_ms=1.0)
    samples = backend.measure(lambda: (hidden if next(calls) % 50 == 0 else honest)(), 100, "cuda:0", True)
    # two of 100 calls hid 1 ms: not a pattern, and the median cannot move by more than their share
    assert backend.last_measure["late_samples"] == 2 and not backend.last_measure["side_stream"]
    assert sorted(samples)[50] == pytest.approx(0.25)


def test_the_events_own_cost_is_subtracted() -> None:
    backend = FakeBackend()
    backend.rt.record_ms = 0.001
    samples = backend.measure(_work(backend.rt, 0.25), 20, "cuda:0", True)
    cost = backend.last_measure["event_cost_ms"]
    assert cost == pytest.approx(0.002)  # twice an empty call's start-to-end time
    assert samples == pytest.approx([0.25 + 0.001 - cost] * 20)


def test_rounds_are_corrected_with_the_constants_given_never_the_timed_process_own() -> None:
    # A candidate whose own calibration is skewed (a busy thread inflated its empty calls) must be
    # corrected with the reference's constants: the supervisor applies them to both sides.
    backend = FakeBackend()
    trusted = {"idle_ms": 0.005, "margin_ms": 0.1, "event_cost_ms": 0.002, "lead_base_ms": 0.09}
    rounds = [{"event_ms": [1.002] * 10, "join_ms": [1.01] * 10} for _ in range(3)]
    samples, notes = backend.finish_rounds(rounds, trusted, 10)
    assert samples == [[pytest.approx(1.0)] * 10] * 3 and notes == []


def test_side_stream_pattern_is_judged_over_the_whole_series_not_per_round() -> None:
    backend = FakeBackend()
    cal = {"idle_ms": 0.02, "margin_ms": 0.1, "event_cost_ms": 0.0}
    honest, late = (1.0, 1.03), (1.0, 1.5)
    # two late calls in one short round are jitter when the series has 100 calls
    jitter = [{"event_ms": [e for e, _ in r], "join_ms": [j for _, j in r]}
              for r in ([late, late] + [honest] * 8, *[[honest] * 10] * 9)]  # fmt: skip
    samples, notes = backend.finish_rounds(jitter, cal, 10)
    assert notes == [] and all(s == 1.0 for r in samples for s in r)
    # a fifth of the series late is a pattern: those calls are timed to the join
    pattern = [{"event_ms": [1.0] * 10, "join_ms": [1.5] * 2 + [1.03] * 8} for _ in range(10)]
    samples, notes = backend.finish_rounds(pattern, cal, 10)
    assert len(notes) == 1 and "side-stream work: 20 of 100" in notes[0]
    assert sorted(s for r in samples for s in r)[-20:] == [1.5] * 20


@pytest.mark.parametrize(
    "bad",
    [
        {"event_ms": [1.0] * 9, "join_ms": [1.0] * 9},  # fewer calls than asked
        {"event_ms": [float("nan")] + [1.0] * 9, "join_ms": [1.0] * 10},
        {"event_ms": [-1.0] + [1.0] * 9, "join_ms": [1.0] * 10},
        {"event_ms": ["1.0"] * 10, "join_ms": [1.0] * 10},
        {"samples_ms": [1.0] * 10},
        "not a dict",
    ],
)
def test_a_malformed_round_gives_no_samples(bad: Any) -> None:
    cal = {"idle_ms": 0.02, "margin_ms": 0.1, "event_cost_ms": 0.0}
    samples, _ = FakeBackend().finish_rounds([bad], cal, 10)
    assert samples == [[]]


def test_the_lead_outlasts_the_reference_host_time_and_both_sides_get_the_same_padding(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    backend = FakeBackend()
    cal = backend.timing_calibration("cuda:0", True)
    assert cal["lead_base_ms"] == pytest.approx(0.09) and cal["spin_cycles_per_ms"] == pytest.approx(2e6)
    assert backend.lead_for(0.01, True, cal) == pytest.approx(0.09)  # the flush alone covers it
    lead = backend.lead_for(0.3, True, cal)
    assert lead == pytest.approx(1.5 * 0.3 + 0.03)
    assert backend.lead_for(100.0, True, cal) == pytest.approx(2.0)  # capped
    assert backend.lead_for(0.3, True, {**cal, "spin_cycles_per_ms": None}) == pytest.approx(0.09)
    assert backend.lead_for(0.3, True, cal, call_ms=1.0) == pytest.approx(0.25)  # a quarter of the call
    monkeypatch.setenv("HARNESS_GPU_LEAD", "flush")
    assert backend.lead_for(0.3, True, cal) == pytest.approx(0.09)
    monkeypatch.delenv("HARNESS_GPU_LEAD")
    start = backend.rt.now
    raw = backend.series(_work(backend.rt, 0.25), 4, "cuda:0", True, lead, cal)
    assert raw["event_ms"] == pytest.approx([0.25] * 4)
    # per call: the padded lead, the work, the synchronize's wake-up; one more wake-up at the end
    assert backend.rt.now - start == pytest.approx(4 * (lead + 0.25 + backend.rt.wake_ms) + backend.rt.wake_ms)


def test_a_capped_series_reuses_its_events_chunk_by_chunk_and_times_every_call() -> None:
    backend = FakeBackend()
    backend.max_events_per_series = 9  # three calls per chunk: 50 calls take 17 chunks
    created = []
    make_event = backend.rt.Event
    backend.rt.Event = lambda enable_timing=False: created.append(1) or make_event(enable_timing)  # type: ignore[method-assign]
    backend.calibration("cuda:0", True)
    created.clear()
    samples = backend.measure(_work(backend.rt, 0.25), 50, "cuda:0", True)
    assert len(created) == 9
    assert samples == pytest.approx([0.25] * 50)
    assert backend.timing_facts("cuda:0")["max_events_per_series"] == 9


def test_side_stream_margin_and_event_cost_are_reported_in_the_environment_facts() -> None:
    backend = FakeBackend()
    facts = backend._measured_timing_facts("cuda:0")
    assert facts["flush_idle_turnaround_ms"] == pytest.approx(0.005)
    assert facts["flush_side_stream_margin_ms"] >= 0.010
    assert facts["flush_event_cost_ms"] == pytest.approx(0.0)
    assert facts["flush_bytes"] == 256 * 1024 * 1024


# --- on a real GPU ----------------------------------------------------------------------------------


@pytest.mark.gpu
@needs_cuda
def test_on_gpu_reference_eval_reports_device_and_versions(tmp_path: Path) -> None:
    out = tmp_path / "case.json"
    proc = run_harness(
        "eval", "benchmark/t1/relu.py", "benchmark/solutions/reference/t1/relu.py", "--backend", "gpu",
        "--budget-ms", "50", "--rounds", "4", "--out", str(out), cwd=REPO,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-2000:]
    payload = json.loads(out.read_text())
    env = next(iter(payload["environment"]["backends"]["gpu"].values()))
    for key in ("device_name", "driver", "cuda", "torch", "triton", "timing"):
        assert env.get(key), key
    result = payload["result"]
    assert result["status"] == "pass" and abs(result["speedup"] - 1) < 0.05
    assert result["timing"]["reference"]["repetitions"] == len(result["timing"]["reference"]["samples_ms"])


@pytest.mark.gpu
@needs_cuda
@pytest.mark.parametrize("source,hidden", [(HIDDEN_SIDE_STREAM, True), (JOINED_SIDE_STREAM, False)])
def test_on_gpu_side_stream_work_is_inside_the_timed_region(
    tmp_path: Path, source: str, hidden: bool
) -> None:
    candidate = tmp_path / "side_stream.py"
    candidate.write_text(source)
    proc = run_harness(
        "eval", SIDE_STREAM_CASE, str(candidate), "--backend", "gpu", "--budget-ms", "50", "--rounds", "4",
        "--json", cwd=REPO,
    )  # fmt: skip
    result = json.loads(proc.stdout)["result"]
    facts = {k: result[k] for k in ("status", "reason", "speedup", "warnings")}
    facts["medians_ms"] = [result["timing"][side]["median_ms"] for side in ("reference", "solution")]
    assert result["status"] == "pass", facts
    # the same loss on another stream: about as fast as the reference, never "free"
    assert 0.8 < result["speedup"] < 1.1, facts
    flagged = any("side-stream work" in w for w in result["warnings"])
    assert flagged == hidden, result["warnings"]


@pytest.mark.gpu
@needs_cuda
def test_on_gpu_inputs_are_staged_on_the_device_and_outputs_come_back_by_ipc(tmp_path: Path) -> None:
    proc = run_harness(
        "eval", "benchmark/t1/relu.py", "benchmark/solutions/reference/t1/relu.py", "--backend", "gpu",
        "--budget-ms", "100", "--json", cwd=REPO,
    )  # fmt: skip
    result = json.loads(proc.stdout)["result"]
    assert result["status"] == "pass", result["reason"]
    assert result["correctness"]["staged_inputs"] is True and result["warnings"] == []
    assert abs(result["speedup"] - 1) < 0.03, result["speedup"]


@pytest.mark.gpu
@needs_cuda
def test_on_gpu_a_candidate_writing_into_its_staged_inputs_fails(tmp_path: Path) -> None:
    candidate = tmp_path / "relu_in_place.py"
    candidate.write_text(
        "import torch.nn as nn\n\n\nclass ModelNew(nn.Module):\n"
        "    def forward(self, x):\n        return x.relu_()  # right values, written over its input\n"
    )
    proc = run_harness(
        "eval", "benchmark/t1/relu.py", str(candidate), "--backend", "gpu", "--budget-ms", "50", "--json", cwd=REPO,
    )  # fmt: skip
    result = json.loads(proc.stdout)["result"]
    assert result["status"] == "fail" and "modified its input" in result["reason"], result["reason"]
