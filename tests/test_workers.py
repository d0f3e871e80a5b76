"""The supervisor's side of the workers: `harness.evaluation.workers`, `buffers`, `forkserver`, `cleanup`.

The request protocol is tested on a `_PipeWorker` whose far end of the pipe is held by the test (no
process); a real reference worker (one process per test, from the fork server) shows what only a process
can: file descriptors passed to it, and its death.
"""

from __future__ import annotations

import mmap
import multiprocessing
import os
import secrets
import signal
import stat
import subprocess
from collections.abc import Iterator
from multiprocessing import reduction
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from harness.evaluation.buffers import ReplyBuffer, SharedReply, StagingBuffer
from harness.evaluation.cleanup import (
    kill_marked_processes,
    make_scratch,
    marked_processes,
    read_tail,
    remove_scratch,
)
from harness.evaluation.forkserver import context, cpu_sets
from harness.evaluation.workers import (
    InProcessWorker,
    ReferenceProcess,
    WorkerCrashed,
    WorkerFailure,
    WorkerTimeout,
    _PipeWorker,
    _unwrap,
)
from harness.results import PHASE_CORRECTNESS
from harness.sandbox import wire
from harness.sandbox.entry import TOKEN_ENV
from tests.conftest import SCALE_CASE

# --- _unwrap ----------------------------------------------------------------------------------------


def test_an_ok_reply_unwraps_to_its_value() -> None:
    assert _unwrap({"ok": True, "value": {"a": 1}, "seq": 3}) == {"a": 1}
    assert _unwrap({"ok": True}) is None


def test_an_error_reply_unwraps_to_a_worker_failure_with_its_fields() -> None:
    error = {"type": "SessionError", "message": "forward raised", "phase": PHASE_CORRECTNESS, "traceback": "tb"}
    with pytest.raises(WorkerFailure, match="forward raised") as caught:
        _unwrap({"ok": False, "error": error})
    assert (caught.value.kind, caught.value.phase, caught.value.traceback_text) == (
        "SessionError",
        PHASE_CORRECTNESS,
        "tb",
    )


@pytest.mark.parametrize("reply", [None, [], "ok", {"value": 1}, {"seq": 1, "shared": 64}])
def test_a_reply_without_status_is_a_protocol_failure(reply: Any) -> None:
    with pytest.raises(WorkerFailure, match="without status") as caught:
        _unwrap(reply)
    assert caught.value.kind == "ProtocolError"


def test_a_malformed_error_reply_becomes_a_bounded_failure_of_unknown_kind() -> None:
    with pytest.raises(WorkerFailure, match="unknown error") as caught:
        _unwrap({"ok": False, "error": "not a dict"})
    assert (caught.value.kind, caught.value.phase, caught.value.traceback_text) == ("Error", None, None)
    with pytest.raises(WorkerFailure) as caught:
        _unwrap({"ok": False, "error": {"message": "m" * 10_000, "type": "T" * 1000, "phase": 3}})
    assert (len(str(caught.value)), len(caught.value.kind), caught.value.phase) == (4000, 200, None)


def test_a_crash_names_the_role_and_how_the_process_ended() -> None:
    assert "killed by SIGKILL" in str(WorkerCrashed(-9, role="reference"))
    assert str(WorkerCrashed(3)) == "candidate worker process exited with code 3 without delivering a result"
    assert "vanished" in str(WorkerCrashed(None))
    assert WorkerCrashed(None, signal_name="SIGXCPU").signal_name == "SIGXCPU"


# --- the request protocol, on a pipe the test holds the far end of -----------------------------------


class Loopback(_PipeWorker):
    """A `_PipeWorker` whose worker is the test: replies are queued on ``far`` before each call."""

    role = "loopback"

    def __init__(self) -> None:
        super().__init__()
        self._conn, self.far = multiprocessing.Pipe(duplex=True)
        self.process = SimpleNamespace(pid=os.getpid(), is_alive=lambda: True)

    def _crashed(self) -> WorkerCrashed:
        return WorkerCrashed(None, role=self.role)

    def answer(self, reply: dict[str, Any]) -> None:
        self.far.send_bytes(wire.encode(reply))

    def requests(self) -> list[Any]:
        found = []
        while self.far.poll(0):
            found.append(self.far.recv())
        return found


@pytest.fixture
def loopback() -> Iterator[Loopback]:
    worker = Loopback()
    yield worker
    worker._conn.close()
    worker.far.close()


def test_a_reply_that_echoes_its_request_number_returns_its_value(loopback: Loopback) -> None:
    loopback.answer({"ok": True, "value": "first", "seq": 1})
    assert loopback.call("ping", 5) == "first"
    loopback.answer({"ok": True, "value": "second", "seq": 2})
    assert loopback.call("stage", 5, key="0") == "second"
    assert loopback.requests() == [(1, "ping", {}, None), (2, "stage", {"key": "0"}, None)]
    assert loopback.alive


def test_a_reply_with_the_wrong_seq_puts_the_worker_out_of_step(loopback: Loopback) -> None:
    loopback.answer({"ok": True, "value": "late", "seq": 0})
    with pytest.raises(WorkerFailure, match="out of step") as caught:
        loopback.call("ping", 5)
    assert caught.value.kind == "ProtocolError"
    assert loopback.desynced and not loopback.alive


def test_a_worker_out_of_step_refuses_further_calls_without_sending_them(loopback: Loopback) -> None:
    loopback.answer({"ok": True, "value": None, "seq": 7})
    with pytest.raises(WorkerFailure):
        loopback.call("ping", 5)
    loopback.requests()
    loopback.answer({"ok": True, "value": None, "seq": 2})  # even a reply that would match is not read
    with pytest.raises(WorkerFailure, match="out of step with the supervisor"):
        loopback.call("ping", 5)
    with pytest.raises(WorkerFailure, match="out of step with the supervisor"):
        loopback.begin("ping")
    assert loopback.requests() == []


def test_a_timeout_raises_worker_timeout_and_puts_the_worker_out_of_step(loopback: Loopback) -> None:
    with pytest.raises(WorkerTimeout, match="loopback worker gave no answer in time"):
        loopback.call("ping", 0)
    assert loopback.desynced
    loopback.answer({"ok": True, "value": None, "seq": 1})  # the late answer never counts
    with pytest.raises(WorkerFailure, match="out of step"):
        loopback.call("ping", 5)


def test_a_malformed_reply_is_a_wire_failure_and_puts_the_worker_out_of_step(loopback: Loopback) -> None:
    loopback.far.send_bytes(b"\x05\x00\x00\x00\x00\x00\x00\x00{...}")
    with pytest.raises(WorkerFailure, match="malformed reply") as caught:
        loopback.call("ping", 5)
    assert caught.value.kind == "WireError" and loopback.desynced


def test_a_worker_that_closed_its_pipe_has_crashed_and_is_out_of_step(loopback: Loopback) -> None:
    loopback.far.close()
    with pytest.raises(WorkerCrashed):
        loopback.call("ping", 5)
    assert loopback.desynced


def test_an_error_reply_is_a_failure_but_keeps_the_worker_in_step(loopback: Loopback) -> None:
    loopback.answer({"ok": False, "seq": 1, "error": {"type": "SessionError", "message": "no", "phase": "x"}})
    with pytest.raises(WorkerFailure, match="no"):
        loopback.call("stage", 5)
    assert not loopback.desynced
    loopback.answer({"ok": True, "value": 2, "seq": 2})
    assert loopback.call("ping", 5) == 2


def test_begin_sends_a_request_that_finish_collects(loopback: Loopback) -> None:
    loopback.begin("prepare", case={"name": "a"})
    assert loopback.requests() == [(1, "prepare", {"case": {"name": "a"}}, None)]
    loopback.answer({"ok": True, "value": "prepared", "seq": 1})
    assert loopback.finish(5) == "prepared"


def test_forwarded_bytes_follow_the_request_raw_never_inside_it(loopback: Loopback) -> None:
    reply = bytes(wire.encode({"ok": True, "seq": 1, "value": {"outputs": []}}))
    loopback.answer({"ok": True, "value": "compared", "seq": 1})
    assert loopback.call("compare", 5, key="0", forward=reply) == "compared"
    assert loopback.far.recv() == (1, "compare", {"key": "0"}, "bytes")
    assert loopback.far.recv_bytes() == reply


def test_call_forwarding_returns_the_raw_reply_to_pass_on(loopback: Loopback) -> None:
    reply = {"ok": True, "seq": 1, "value": {"outputs": [torch.ones(3)]}}
    loopback.answer(reply)
    value, data = loopback.call_forwarding("run_trial", 5, index=0)
    assert value == {"outputs": [{"__tensor__": 0}]}
    assert bytes(data) == bytes(wire.encode(reply))


def _attached(loopback: Loopback, buffer: ReplyBuffer) -> mmap.mmap:
    """Attach ``buffer`` to the loopback worker; the worker's writable mapping of it."""
    loopback.answer({"ok": True, "value": {}, "seq": 1})
    loopback.attach(buffer, 5)
    assert loopback.far.recv() == (1, "attach_buffer", {}, ("fd", buffer.size))
    fd = reduction.recv_handle(loopback.far)
    try:
        return wire.map_shared(fd, buffer.size, writable=True)
    finally:
        os.close(fd)


def test_a_reply_in_the_shared_buffer_is_read_from_it(loopback: Loopback) -> None:
    buffer = ReplyBuffer(1 << 16)
    writable = _attached(loopback, buffer)
    outputs = [torch.arange(16, dtype=torch.float32)]
    length = wire.encode_into({"ok": True, "seq": 2, "value": {"outputs": outputs}}, writable)
    loopback.answer({"seq": 2, "shared": length})
    assert torch.equal(loopback.call("run_trial", 5)["outputs"][0], outputs[0])
    length = wire.encode_into({"ok": True, "seq": 3, "value": {"outputs": outputs}}, writable)
    loopback.answer({"seq": 3, "shared": length})
    value, data = loopback.call_forwarding("run_trial", 5)
    assert value == {"outputs": [{"__tensor__": 0}]}
    assert isinstance(data, SharedReply) and (data.buffer, data.length) == (buffer, length)
    writable.close()
    buffer.close()


def test_a_buffer_is_attached_once(loopback: Loopback) -> None:
    buffer = ReplyBuffer(4096)
    _attached(loopback, buffer).close()
    loopback.attach(buffer, 5)
    loopback.attach(None, 5)
    assert loopback.requests() == []
    buffer.close()


def test_a_shared_reply_without_an_attached_buffer_is_malformed(loopback: Loopback) -> None:
    loopback.answer({"seq": 1, "shared": 64})
    with pytest.raises(WorkerFailure, match="never attached") as caught:
        loopback.call("run_trial", 5)
    assert caught.value.kind == "WireError" and loopback.desynced


def test_a_shared_reply_notice_with_the_wrong_seq_puts_the_worker_out_of_step(loopback: Loopback) -> None:
    buffer = ReplyBuffer(4096)
    writable = _attached(loopback, buffer)
    length = wire.encode_into({"ok": True, "seq": 2, "value": 1}, writable)
    loopback.answer({"seq": 5, "shared": length})
    with pytest.raises(WorkerFailure, match="out of step"):
        loopback.call("run_trial", 5)
    assert loopback.desynced
    writable.close()
    buffer.close()


def test_a_shared_reply_is_decoded_from_a_copy_of_the_buffer() -> None:
    buffer = ReplyBuffer(4096)
    writable = wire.map_shared(buffer.fd, buffer.size, writable=True)
    length = wire.encode_into({"t": torch.arange(16, dtype=torch.float32)}, writable)
    decoded = SharedReply(buffer, length).decode()["t"]
    writable[:length] = bytes(length)  # the candidate scribbles over its reply afterwards
    assert torch.equal(decoded, torch.arange(16, dtype=torch.float32))
    writable.close()
    buffer.close()


def test_a_staging_buffer_is_a_memfd_of_its_size() -> None:
    buffer = StagingBuffer(8192)
    assert os.fstat(buffer.fd).st_size == 8192
    buffer.close()
    buffer.close()  # twice is harmless


# --- the in-process worker ------------------------------------------------------------------------


def test_the_in_process_worker_calls_the_session_and_unwraps_its_replies() -> None:
    worker = InProcessWorker("reference", "cpu", "cpu")
    assert worker.call("ping", 5) == {}
    worker.begin("ping")
    assert worker.finish(5) == {}
    with pytest.raises(WorkerFailure, match="cannot be staged") as caught:
        worker.call("stage", 5, key="0")
    assert caught.value.phase == PHASE_CORRECTNESS
    with pytest.raises(WorkerFailure, match="no method _region"):
        worker.call("_region", 5, nbytes=1)


# --- a real reference worker ------------------------------------------------------------------------


@pytest.fixture
def reference() -> Iterator[ReferenceProcess]:
    worker = ReferenceProcess("cpu", "cpu")
    yield worker
    worker.close()


def test_a_reference_process_stages_inputs_into_the_buffer_the_supervisor_passed_it(
    reference: ReferenceProcess, tmp_path: Path
) -> None:
    case = tmp_path / "scale.py"
    case.write_text(SCALE_CASE)  # 4096 float32 values drawn by torch.randn
    assert reference.call("ping", 60) == {}
    seeds = {"init_seed": 1, "trial_seeds": [2], "timing_seed": 3, "fresh_seed": 4}
    reference.call("prepare", 60, case={"name": "scale", "tier": "t1", "path": str(case)}, **seeds)
    staging = reference.staging_buffer(1 << 14, 60)
    assert staging is not None and reference.staging_buffer(1 << 14, 60) is staging  # attached once, kept
    reference.call("stage", 60, key="0")
    torch.manual_seed(2)
    with mmap.mmap(staging.fd, staging.size, prot=mmap.PROT_READ) as view:
        assert bytes(view[: 1 << 14]) == torch.randn(4096).numpy().tobytes()


def test_a_killed_reference_process_is_reported_as_crashed_by_its_signal(reference: ReferenceProcess) -> None:
    assert reference.call("ping", 60) == {}
    os.kill(reference.process.pid, signal.SIGKILL)
    with pytest.raises(WorkerCrashed, match="reference worker process killed by SIGKILL") as caught:
        reference.call("ping", 60)
    assert caught.value.signal_name == "SIGKILL" and caught.value.role == "reference"
    assert reference.desynced and not reference.alive


# --- fork server and CPU sets ---------------------------------------------------------------------


def test_workers_come_from_one_fork_server_context() -> None:
    assert context() is context()
    assert context().get_start_method() == "forkserver"


def test_each_device_gets_its_own_cpus_and_cpu_0_is_left_alone() -> None:
    assert cpu_sets(2, range(16)) == [[1, 2, 3, 4], [5, 6, 7, 8]]
    assert cpu_sets(1, range(16), per_device=2) == [[1, 2]]
    assert cpu_sets(8, range(4)) == [[1]] * 1 + [[2], [3], [1], [2], [3], [1], [2]]  # fewer CPUs than devices
    assert cpu_sets(1, [0, 1]) == [[0, 1]]


def test_cpu_sets_take_cpus_in_order_whatever_order_they_are_given_in() -> None:
    assert cpu_sets(2, [9, 3, 7, 5, 1]) == [[3, 5], [7, 9]]


def test_cpu_sets_keep_cpu_0_where_there_are_only_two() -> None:
    assert cpu_sets(2, [0, 1]) == [[0], [1]]
    assert cpu_sets(1, [0, 1, 2]) == [[1, 2]]


def test_cpu_sets_give_one_set_for_no_devices() -> None:
    assert cpu_sets(0, range(8)) == [[1, 2, 3, 4]]


@settings(max_examples=100, deadline=None)
@given(
    available=st.sets(st.integers(0, 255), min_size=1, max_size=64),
    devices=st.integers(0, 16),
    per_device=st.integers(1, 8),
)
def test_cpu_sets_are_one_per_device_of_given_cpus_and_disjoint_while_there_are_enough(
    available: set[int], devices: int, per_device: int
) -> None:
    sets = cpu_sets(devices, sorted(available, reverse=True), per_device)
    assert len(sets) == max(1, devices)
    assert all(1 <= len(s) <= per_device and set(s) <= available for s in sets)
    assert len({len(s) for s in sets}) == 1
    usable = len(available) - (1 if len(available) > 2 else 0)
    if usable >= max(1, devices):
        assert sum(len(s) for s in sets) == len({cpu for s in sets for cpu in s})
    if len(available) > 2:
        assert min(available) not in {cpu for s in sets for cpu in s}


# --- cleanup ----------------------------------------------------------------------------------------


def test_make_scratch_makes_a_fresh_private_folder_each_time(tmp_path: Path) -> None:
    first, second = make_scratch(tmp_path), make_scratch(tmp_path)
    assert first != second and first.parent == tmp_path == second.parent
    assert first.name.startswith("harness-scratch-") and first.is_dir() and not any(first.iterdir())
    assert stat.S_IMODE(first.stat().st_mode) == 0o700


def test_remove_scratch_removes_the_folder_with_everything_in_it(tmp_path: Path) -> None:
    scratch = make_scratch(tmp_path)
    (scratch / "build" / "deep").mkdir(parents=True)
    (scratch / "build" / "deep" / "lib.so").write_bytes(b"\0" * 10)
    (scratch / "read_only").write_text("x")
    (scratch / "read_only").chmod(0o400)
    remove_scratch(scratch)
    assert not scratch.exists()
    remove_scratch(scratch)  # a folder already gone is no error


def test_read_tail_returns_the_last_bytes_and_whether_anything_was_cut(tmp_path: Path) -> None:
    path = tmp_path / "out.txt"
    path.write_bytes(b"0123456789")
    assert read_tail(path, 4) == ("6789", True)
    assert read_tail(path, 10) == ("0123456789", False)
    path.write_bytes(b"ok \xff")
    assert read_tail(path, 100) == ("ok \ufffd", False)
    assert read_tail(tmp_path / "missing", 10) == ("", False)


def test_kill_marked_processes_kills_the_processes_carrying_the_token_and_no_other() -> None:
    token = secrets.token_hex(8)
    marked = subprocess.Popen(["sleep", "600"], env={**os.environ, TOKEN_ENV: token})
    longer = subprocess.Popen(["sleep", "600"], env={**os.environ, TOKEN_ENV: token + "0"})  # another token
    try:
        assert marked_processes(f"{TOKEN_ENV}={token}".encode()) == [marked.pid]
        assert kill_marked_processes(token) == 1
        assert marked.wait(timeout=30) == -signal.SIGKILL
        assert longer.poll() is None
    finally:
        for process in (marked, longer):
            process.kill()
            process.wait()


def test_kill_marked_processes_with_no_token_kills_nothing() -> None:
    unmarked = subprocess.Popen(["sleep", "600"], env={**os.environ, TOKEN_ENV: ""})  # e.g. in-process workers
    try:
        assert kill_marked_processes("") == 0
        assert unmarked.poll() is None
    finally:
        unmarked.kill()
        unmarked.wait()
