"""The worker side in-process on the CPU: `harness.sandbox.reference`, `candidate`, `session`, `serve`, `guard`.

The sessions are called directly, as `harness.sandbox.entry` calls them in a worker; the staging region
the supervisor would create as a memfd is an anonymous mapping both sessions attach.
"""

from __future__ import annotations

import mmap
import multiprocessing
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import torch

import harness.timing
from harness.results import PHASE_CORRECTNESS, PHASE_LOADING
from harness.sandbox import wire
from harness.sandbox.candidate import CandidateSession
from harness.sandbox.guard import Guard
from harness.sandbox.protocol import PrepareReply
from harness.sandbox.reference import ReferenceSession
from harness.sandbox.serve import dispatch, serve
from harness.sandbox.session import SessionError

CASE = '''
"""A learned scale and a shift: weights, a scalar input and tolerances of its own."""
import torch
import torch.nn as nn

n = 1000
ATOL = 1e-3
RTOL = 2e-3


class Model(nn.Module):
    def __init__(self, n):
        super().__init__()
        self.scale = nn.Parameter(torch.randn(n))

    def forward(self, x, shift):
        return x * self.scale + shift


def get_inputs():
    return [torch.randn(n), 0.5]


def get_init_inputs():
    return [n]


def get_flops():
    return 2 * n
'''

SOLUTION = """
import torch
import torch.nn as nn


class ModelNew(nn.Module):
    def __init__(self, n):
        super().__init__()
        self.scale = nn.Parameter(torch.zeros(n))  # the reference's weights are adopted after init
        self.last_input = None

    def forward(self, x, shift):
        self.last_input = x
        return torch.addcmul(torch.full_like(x, shift), x, self.scale)
"""

SEEDS: dict[str, Any] = {"init_seed": 1, "trial_seeds": [2, 3], "timing_seed": 4, "fresh_seed": 5}
STAGE_BYTES = 4096  # 1000 float32 values, rounded up to the staging alignment (256)


def _case(tmp_path: Path, source: str = CASE, name: str = "scale_shift") -> dict[str, Any]:
    path = tmp_path / "suite" / "t1" / f"{name}.py"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(source)
    return {"name": name, "tier": "t1", "path": str(path)}


@dataclass
class Pair:
    """A prepared reference and a loaded candidate sharing one host staging region."""

    reference: ReferenceSession
    candidate: CandidateSession
    region: mmap.mmap
    prepared: dict[str, Any]

    def staged_bytes(self) -> bytes:
        return bytes(self.region[:4000])


@pytest.fixture
def pair(tmp_path: Path) -> Iterator[Pair]:
    case = _case(tmp_path)
    solution = tmp_path / "solution.py"
    solution.write_text(SOLUTION)
    reference = ReferenceSession("cpu", "cpu")
    prepared = reference.prepare(case, **SEEDS)
    region = mmap.mmap(-1, prepared["stage_bytes"])
    reference.attach_staging(region)
    candidate = CandidateSession("cpu", "cpu")
    candidate.attach_staging(region)
    candidate.load(case, str(solution), **SEEDS, timed=reference.stage("timed"))
    yield Pair(reference, candidate, region, prepared)
    reference.finish()


# --- the reference: prepare -------------------------------------------------------------------------


def test_prepare_reports_the_figures_of_the_case(pair: Pair) -> None:
    expected = PrepareReply(
        atol=1e-3, rtol=2e-3, flops=2000, input_bytes=4000, output_bytes=4000, outputs=1, staging="host",
        stage_bytes=STAGE_BYTES, param_bytes=4000, dtypes=("torch.float32",),
    )  # fmt: skip
    assert pair.prepared == expected.to_json()
    assert PrepareReply.from_json(pair.prepared) == expected


def test_prepare_draws_each_input_set_from_its_own_seed(pair: Pair) -> None:
    inputs = pair.reference.inputs
    assert set(inputs) == {"0", "1", "timed", "fresh"}
    torch.manual_seed(3)
    assert torch.equal(inputs["1"][0], torch.randn(1000)) and inputs["1"][1] == 0.5
    assert not torch.equal(inputs["0"][0], inputs["1"][0])


def test_input_sets_of_different_shapes_are_not_staged(tmp_path: Path) -> None:
    growing = CASE.replace("return [torch.randn(n), 0.5]", "global n\n    n += 1\n    return [torch.randn(n), 0.5]")
    growing = growing.replace("return x * self.scale + shift", "return x * 2 + shift")
    reply = ReferenceSession("cpu", "cpu").prepare(_case(tmp_path, growing), **SEEDS)
    assert (reply["staging"], reply["stage_bytes"]) == (None, 0)


@pytest.mark.parametrize(
    "broken,step",
    [
        ("return [torch.randn(n), 0.5]", "get_inputs"),
        ("return x * self.scale + shift", "Model.forward"),
        ("return 2 * n", "get_flops()"),
    ],
)
def test_a_case_that_raises_in_prepare_is_a_loading_error_naming_the_file_and_the_step(
    tmp_path: Path, broken: str, step: str
) -> None:
    case = _case(tmp_path, CASE.replace(broken, "raise RuntimeError('broken on purpose')"))
    with pytest.raises(SessionError) as caught:
        ReferenceSession("cpu", "cpu").prepare(case, **SEEDS)
    assert caught.value.phase == PHASE_LOADING
    assert case["path"] in str(caught.value) and step in str(caught.value) and "broken on purpose" in str(caught.value)


# --- staging and comparing --------------------------------------------------------------------------


def test_stage_copies_the_input_set_into_the_region_and_describes_it(pair: Pair) -> None:
    staged = pair.reference.stage("1")
    assert staged == {
        "region": {"kind": "host", "bytes": STAGE_BYTES},
        "layout": [{"tensor": {"dtype": "float32", "shape": [1000], "offset": 0}}, {"value": 0.5}],
    }
    assert pair.staged_bytes() == pair.reference.inputs["1"][0].numpy().tobytes()


def test_the_candidate_runs_on_views_of_the_staged_region(pair: Pair) -> None:
    reply = pair.candidate.run_trial(0, pair.reference.stage("0"))
    seen = pair.candidate.model.last_input
    start = pair.candidate.host_staging.data_ptr()
    assert start <= seen.data_ptr() < start + STAGE_BYTES
    assert torch.equal(seen, pair.reference.inputs["0"][0])
    assert reply["inputs_unchanged"] is None  # the reference checks the region, not the candidate


def test_the_reference_passes_right_outputs_on_unchanged_inputs(pair: Pair) -> None:
    reply = pair.candidate.run_trial(0, pair.reference.stage("0"))
    verdict = pair.reference.compare("0", reply)
    assert verdict["ok"] and verdict["reason"] is None
    assert verdict["inputs_unchanged"] is True
    assert isinstance(verdict["output_fingerprint"], str)  # the first trial's outputs are fingerprinted


def test_the_reference_reads_a_reply_forwarded_as_wire_bytes(pair: Pair) -> None:
    reply = pair.candidate.run_trial(1, pair.reference.stage("1"))
    data = wire.encode({"ok": True, "seq": 5, "value": reply})
    verdict = pair.reference.compare("1", data)
    assert verdict["ok"] and verdict["inputs_unchanged"] is True


def test_a_write_into_the_staged_region_is_reported_as_changed_inputs(pair: Pair) -> None:
    reply = pair.candidate.run_trial(0, pair.reference.stage("0"))
    pair.region[0:4] = b"\x00\x00\xc0\x7f"  # a NaN over the first input value
    verdict = pair.reference.compare("0", reply)
    assert verdict["ok"] and verdict["inputs_unchanged"] is False


def test_the_reference_fails_wrong_outputs(pair: Pair) -> None:
    pair.reference.stage("0")
    verdict = pair.reference.compare("0", {"outputs": [torch.zeros(1000)]})
    assert not verdict["ok"] and verdict["reason"] and verdict["gate"] is not None
    assert "output_fingerprint" not in verdict


@pytest.mark.parametrize(
    "reply",
    [
        {"no": "outputs"},
        None,
        wire.encode({"ok": False, "seq": 1, "error": {"type": "X"}}),
        wire.encode({"ok": True, "seq": 1, "value": [1]}),
    ],
)
def test_a_reply_without_outputs_is_a_correctness_error(pair: Pair, reply: Any) -> None:
    with pytest.raises(SessionError) as caught:
        pair.reference.compare("0", reply)
    assert caught.value.phase == PHASE_CORRECTNESS


def test_the_candidate_times_on_a_copy_of_the_staged_timing_set(pair: Pair) -> None:
    timing = pair.candidate.timing_inputs
    assert timing is not None and torch.equal(timing[0], pair.reference.inputs["timed"][0]) and timing[1] == 0.5
    pair.reference.stage("0")  # the region now holds another set
    assert torch.equal(timing[0], pair.reference.inputs["timed"][0])


def test_the_timed_and_fresh_outputs_pass_the_reference(pair: Pair) -> None:
    series = pair.candidate.time(3, flush_cache=False)
    assert len(series["samples_ms"]) == 3
    assert pair.reference.compare("timed", pair.candidate.timed_output())["ok"]
    fresh = pair.candidate.fresh_output(pair.reference.stage("fresh"))
    assert pair.reference.compare("fresh", fresh)["ok"]


def test_a_candidate_that_hands_back_a_cached_output_fails_the_fresh_check(pair: Pair, tmp_path: Path) -> None:
    cached = SOLUTION.replace(
        "        self.last_input = x\n",
        "        self.last_input = x\n        if getattr(self, 'memo', None) is not None:\n"
        "            return self.memo\n",
    ).replace("return torch.addcmul", "self.memo = torch.addcmul")
    cached += "        return self.memo\n"
    (tmp_path / "cached.py").write_text(cached)
    candidate = CandidateSession("cpu", "cpu")
    candidate.attach_staging(pair.region)
    candidate.load(_case(tmp_path), str(tmp_path / "cached.py"), **SEEDS, timed=pair.reference.stage("timed"))
    candidate.time(2, flush_cache=False)
    assert not pair.reference.compare("fresh", candidate.fresh_output(pair.reference.stage("fresh")))["ok"]


def test_staging_without_an_attached_region_is_a_correctness_error(tmp_path: Path) -> None:
    reference = ReferenceSession("cpu", "cpu")
    reference.prepare(_case(tmp_path), **SEEDS)
    with pytest.raises(SessionError, match="no staging region") as caught:
        reference.stage("0")
    assert caught.value.phase == PHASE_CORRECTNESS


def test_finish_drops_the_case(pair: Pair) -> None:
    pair.reference.finish()
    assert (pair.reference.inputs, pair.reference.expected, pair.reference.model) == ({}, {}, None)
    with pytest.raises(SessionError, match="cannot be staged"):
        pair.reference.stage("0")


# --- dispatch ---------------------------------------------------------------------------------------


def test_dispatch_returns_a_methods_value() -> None:
    assert dispatch(ReferenceSession("cpu", "cpu"), "ping", {}) == {"ok": True, "value": {}}


def test_dispatch_turns_a_session_error_into_an_error_reply_with_its_phase() -> None:
    reply = dispatch(ReferenceSession("cpu", "cpu"), "stage", {"key": "0"})
    assert reply == {
        "ok": False,
        "error": {"type": "SessionError", "message": "input set 0 cannot be staged", "phase": PHASE_CORRECTNESS},
    }


def test_dispatch_turns_any_other_exception_into_an_error_reply_with_its_traceback() -> None:
    reply = dispatch(ReferenceSession("cpu", "cpu"), "compare", {"key": "0", "forward": {}})
    assert reply["ok"] is False
    error = reply["error"]
    assert error["type"] == "AssertionError" and error["phase"] is None
    assert error["message"].startswith("AssertionError") and "compare" in error["traceback"]


@pytest.mark.parametrize("method", ["_region", "_load_case", "__init__", "__class__", "no_such_method"])
def test_dispatch_refuses_private_and_unknown_method_names(method: str) -> None:
    reply = dispatch(ReferenceSession("cpu", "cpu"), method, {})
    assert reply == {"ok": False, "error": {"type": "ProtocolError", "message": f"no method {method}", "phase": None}}


# --- the guard --------------------------------------------------------------------------------------


def test_a_fresh_guard_finds_nothing_replaced() -> None:
    assert Guard.capture(CandidateSession("cpu", "cpu")).violations() == []


def _caught(guard: Guard, monkeypatch: pytest.MonkeyPatch, target: Any, name: str, value: Any) -> list[str]:
    """What ``guard`` reports while ``target.name`` is ``value``; it must find nothing once that is undone."""
    with monkeypatch.context() as patch:
        patch.setattr(target, name, value, raising=False)
        found = guard.violations()
    assert guard.violations() == []
    return found


def test_the_guard_catches_a_replaced_clock(monkeypatch: pytest.MonkeyPatch) -> None:
    found = _caught(Guard.capture(), monkeypatch, time, "perf_counter", lambda: 0.0)
    assert found == ["time.perf_counter"]


def test_the_guard_catches_a_replaced_torch_function(monkeypatch: pytest.MonkeyPatch) -> None:
    assert _caught(Guard.capture(), monkeypatch, torch, "allclose", lambda *a, **k: True) == ["torch.allclose"]


def test_the_guard_catches_a_replaced_tensor_method(monkeypatch: pytest.MonkeyPatch) -> None:
    assert "torch.Tensor.__eq__" in _caught(Guard.capture(), monkeypatch, torch.Tensor, "__eq__", lambda *a: True)


def test_the_guard_catches_a_replaced_harness_function(monkeypatch: pytest.MonkeyPatch) -> None:
    found = _caught(Guard.capture(), monkeypatch, harness.timing, "plan_repetitions", lambda *a: 1)
    assert found == ["harness.timing.plan_repetitions"]


def test_the_guard_catches_a_harness_function_whose_code_was_swapped(monkeypatch: pytest.MonkeyPatch) -> None:
    found = _caught(
        Guard.capture(), monkeypatch, harness.timing.warmup_calls, "__code__", (lambda estimate_ms, config: 0).__code__
    )
    assert "harness.timing.warmup_calls" in found  # (and under every name a module imported it by)


def test_the_guard_catches_an_instance_attribute_shadowing_a_method() -> None:
    session = CandidateSession("cpu", "cpu")
    guard = Guard.capture(session)
    session.time = lambda *a, **k: {"samples_ms": [0.0]}  # type: ignore[method-assign]
    assert guard.violations() == ["CandidateSession.time"]
    del session.time
    assert guard.violations() == []


def test_the_guard_allows_new_attributes_that_shadow_no_method() -> None:
    session = CandidateSession("cpu", "cpu")
    guard = Guard.capture(session)
    session.model = object()
    session.scratch_notes = "fine"
    assert guard.violations() == []


def test_the_guard_catches_a_new_attribute_on_a_closed_class(monkeypatch: pytest.MonkeyPatch) -> None:
    guard = Guard.capture()
    assert _caught(guard, monkeypatch, torch.Tensor, "fast_path", lambda self: self) == ["torch.Tensor.fast_path"]
    found = _caught(guard, monkeypatch, harness.timing.TimingStats, "from_fake", classmethod(lambda cls: None))
    assert found == ["harness.timing.TimingStats.from_fake"]


# --- serve ------------------------------------------------------------------------------------------


class Served:
    """`serve` answering on one end of a pipe in a thread; requests go in through the other."""

    def __init__(self, session: Any, guard: Guard | None = None) -> None:
        self.conn, worker_end = multiprocessing.Pipe(duplex=True)
        self.thread = threading.Thread(target=serve, args=(worker_end, session, guard), daemon=True)
        self.thread.start()

    def ask(self, seq: int, method: str, blob: Any = None, **kwargs: Any) -> Any:
        self.conn.send((seq, method, kwargs, blob))
        return wire.decode(self.conn.recv_bytes())

    def stopped(self) -> bool:
        self.thread.join(timeout=30)
        return not self.thread.is_alive()


@pytest.fixture
def served() -> Iterator[Callable[..., Served]]:
    started: list[Served] = []

    def start(session: Any, guard: Guard | None = None) -> Served:
        started.append(Served(session, guard))
        return started[-1]

    yield start
    for s in started:
        s.conn.close()
        s.thread.join(timeout=30)


def test_serve_answers_each_request_with_its_seq_and_stops_on_stop(
    served: Callable[..., Served], tmp_path: Path
) -> None:
    server = served(ReferenceSession("cpu", "cpu"))
    assert server.ask(1, "ping") == {"ok": True, "value": {}, "seq": 1}
    prepared = server.ask(2, "prepare", case=_case(tmp_path), **SEEDS)
    assert prepared["seq"] == 2 and prepared["value"]["flops"] == 2000
    assert server.ask(40, "_region", nbytes=1)["error"]["type"] == "ProtocolError"
    failed = server.ask(41, "stage", key="0")  # no region attached
    assert (failed["seq"], failed["ok"], failed["error"]["phase"]) == (41, False, PHASE_CORRECTNESS)
    assert server.ask(42, "stop") == {"ok": True, "value": {}, "seq": 42}
    assert server.stopped()


def test_serve_passes_forwarded_bytes_to_the_method(served: Callable[..., Served], tmp_path: Path) -> None:
    server = served(ReferenceSession("cpu", "cpu"))
    server.ask(1, "prepare", case=_case(tmp_path), **SEEDS)
    outputs = ReferenceSession("cpu", "cpu")
    outputs.prepare(_case(tmp_path, name="again"), **SEEDS)
    forwarded = wire.encode({"ok": True, "seq": 9, "value": {"outputs": outputs.expected["0"]}})
    server.conn.send((2, "compare", {"key": "0"}, "bytes"))
    server.conn.send_bytes(forwarded)
    verdict = wire.decode(server.conn.recv_bytes())
    assert verdict["seq"] == 2 and verdict["value"]["ok"]


def test_serve_answers_a_reply_in_a_buffer_never_attached_with_a_wire_error(served: Callable[..., Served]) -> None:
    server = served(ReferenceSession("cpu", "cpu"))
    reply = server.ask(3, "compare", ("shared", 64), key="0")
    assert (reply["seq"], reply["ok"], reply["error"]["type"]) == (3, False, "WireError")
    assert server.ask(4, "ping") == {"ok": True, "value": {}, "seq": 4}  # and goes on


def test_serve_ends_when_the_supervisor_closes_the_pipe(served: Callable[..., Served]) -> None:
    server = served(ReferenceSession("cpu", "cpu"))
    server.conn.close()
    assert server.stopped()


def test_serve_with_a_guard_answers_a_tampered_request_with_the_replacement_named(
    served: Callable[..., Served], monkeypatch: pytest.MonkeyPatch
) -> None:
    session = CandidateSession("cpu", "cpu")
    server = served(session, Guard.capture(session))
    assert server.ask(1, "ping") == {"ok": True, "value": {}, "seq": 1}
    monkeypatch.setattr(time, "perf_counter", lambda: 0.0)
    reply = server.ask(2, "ping")
    assert (reply["seq"], reply["ok"], reply["error"]["type"]) == (2, False, "TamperError")
    assert "time.perf_counter" in reply["error"]["message"]
