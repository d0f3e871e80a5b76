"""`harness run --executor ray`: the same statuses and inputs as a local run, a killed worker costs one retry,
an interrupted run resumes from its journal, failures become `error` with the reason, and a missing Ray
or cluster is a one-line exit 3.

The cluster tests start their own one-node cluster (`ray start --head --block` in a temp dir, token
authentication on, 2 CPUs) and stop it by its process id. Without Ray installed they skip, unless
HARNESS_REQUIRE_RAY=1 (set by .ci/run), where they fail instead.
"""

from __future__ import annotations

import contextlib
import importlib.util
import json
import os
import re
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from harness.evaluation.journal import read_journal
from tests.conftest import FAST_ARGS, GOOD_LINEAR, GOOD_SCALE, REPO, load_json, run_harness

REQUIRED = os.environ.get("HARNESS_REQUIRE_RAY") == "1"
BENCH_CASES = ("relu", "clamp", "softmax")  # quick bundled cases; the reference set finds them by __file__
SLEEPY = """
import time

time.sleep(600)  # at import: the evaluation is mid-case until something kills it
import torch.nn as nn


class ModelNew(nn.Module):
    pass
"""


def _ray_cli() -> str | None:
    """The `ray` command of this interpreter's Ray (the one beside it, else the one on PATH)."""
    beside = Path(sys.executable).parent / "ray"
    return str(beside) if beside.is_file() else shutil.which("ray")


def _ray_missing() -> str | None:
    """Why Ray can't be used here (None: it can); without importing it, which would fix its auth mode."""
    if importlib.util.find_spec("ray") is None or _ray_cli() is None:
        return "Ray is not installed"
    return None


def _ray_or_skip() -> None:
    reason = _ray_missing()
    if reason and REQUIRED:
        pytest.fail(f"{reason}, and HARNESS_REQUIRE_RAY=1", pytrace=False)
    if reason:
        pytest.skip(f"{reason}; pip install 'kernel-harness[ray]' (CI sets HARNESS_REQUIRE_RAY=1)")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _end(proc: subprocess.Popen[bytes] | subprocess.Popen[str], wait_s: float = 30) -> None:
    """Stop a process this module started in a session of its own: SIGTERM, then SIGKILL of its group."""
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=wait_s)
        except subprocess.TimeoutExpired:
            pass
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(proc.pid, signal.SIGKILL)  # whatever of its group outlived it
    with contextlib.suppress(subprocess.TimeoutExpired):
        proc.wait(timeout=10)


class RayHead:
    """A one-node Ray cluster of 2 CPUs on this machine (`ray start --head --block` in a temp dir, token
    authentication on), started as soon as the module's first test runs so that it comes up while the
    tests that need no cluster run."""

    def __init__(self) -> None:
        self.temp = Path(tempfile.mkdtemp(prefix="ray", dir="/tmp"))  # short: socket paths must fit 107 bytes
        env = {
            **os.environ,
            "RAY_AUTH_MODE": "token",  # what recent Ray does by default; the token stays out of ~/.ray
            "RAY_AUTH_TOKEN": secrets.token_hex(16),
            "PYTHONPATH": os.pathsep.join([str(REPO), *filter(None, [os.environ.get("PYTHONPATH")])]),
            "RAY_USAGE_STATS_ENABLED": "0",
        }
        env.pop("RAY_ADDRESS", None)
        self.env = {k: env[k] for k in ("RAY_AUTH_MODE", "RAY_AUTH_TOKEN", "PYTHONPATH")}
        self.log = self.temp / "start.log"
        cmd = [str(_ray_cli()), "start", "--head", "--block", "--num-cpus", "2", "--num-gpus", "0"]
        cmd += ["--temp-dir", str(self.temp)]
        cmd += ["--port", str(_free_port()), "--dashboard-port", str(_free_port()), "--include-dashboard", "false"]
        cmd += ["--dashboard-agent-listen-port", str(_free_port()), "--disable-usage-stats"]
        with self.log.open("w") as log:
            self.proc = subprocess.Popen(
                cmd, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True, cwd=self.temp
            )
        self._address: str | None = None

    @property
    def address(self) -> str:
        """The head's HOST:PORT, once it is up (waits for it)."""
        deadline = time.monotonic() + 90
        while self._address is None and time.monotonic() < deadline and self.proc.poll() is None:
            found = re.search(r"ray start --address='([^']+)'", self.log.read_text())
            self._address = found.group(1) if found else None
            if self._address is None:
                time.sleep(0.2)
        if self._address is None:
            pytest.fail(f"ray start --head did not come up:\n{self.log.read_text()[-3000:]}")
        return self._address

    def stop(self) -> None:
        with contextlib.suppress(BaseException):
            self.address  # noqa: B018 - a head stopped while it starts would leave its children behind
        _end(self.proc)
        shutil.rmtree(self.temp, ignore_errors=True)


@pytest.fixture(scope="module", autouse=True)
def _ray_head() -> Iterator[RayHead | None]:
    head = None if _ray_missing() else RayHead()
    yield head
    if head is not None:
        head.stop()


@pytest.fixture
def cluster(_ray_head: RayHead | None) -> RayHead:
    _ray_or_skip()
    assert _ray_head is not None
    return _ray_head


def _processes() -> list[tuple[int, int, str]]:
    """(pid, parent pid, command line) of every process that can be read."""
    out = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            cmdline = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
            ppid = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
        except (OSError, ValueError, IndexError):
            continue
        out.append((int(entry.name), ppid, cmdline))
    return out


def _evaluations_of(solution: Path) -> list[tuple[int, int]]:
    """(pid, Ray worker pid) of each `harness eval` of ``solution`` that a Ray worker runs."""
    procs = _processes()
    names = {pid: cmd for pid, _, cmd in procs}
    return [
        (pid, ppid)
        for pid, ppid, cmd in procs
        if " eval " in cmd and str(solution) in cmd and names.get(ppid, "").startswith("ray::")
    ]


def _wait_for(what: Callable[[], object], timeout: float, proc: subprocess.Popen[str]) -> object:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = what()
        if value:
            return value
        if proc.poll() is not None:
            out, err = proc.communicate()
            pytest.fail(f"the run ended ({proc.returncode}) before that happened:\n{out[-2000:]}\n{err[-3000:]}")
        time.sleep(0.1)
    pytest.fail(f"timed out after {timeout} s")


def _start_run(*args: str, env: dict[str, str]) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "harness", "run", *args],
        cwd=REPO,
        env={**os.environ, **env},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )


def _statuses(out: Path) -> dict[str, str]:
    return {c["name"]: c["status"] for c in load_json(out / "result.json")["cases"]}


# --- without Ray ------------------------------------------------------------------------------------


def test_without_ray_the_ray_executor_is_exit_3_and_local_runs_are_untouched(
    suite: Path, solutions: Path, tmp_path: Path
) -> None:
    blocker = tmp_path / "no-ray"
    (blocker / "ray").mkdir(parents=True)
    (blocker / "ray" / "__init__.py").write_text("raise ImportError('ray is blocked for this test')\n")
    env = {"PYTHONPATH": os.pathsep.join([str(blocker), str(REPO)])}
    proc = run_harness("run", "--suite", str(suite), "--solutions", str(solutions), "--executor", "ray", env=env)
    assert proc.returncode == 3, proc.stderr[-2000:]
    assert "pip install 'kernel-harness[ray]'" in proc.stderr
    helped = run_harness("run", "--help", env=env)
    assert helped.returncode == 0 and "--executor" in helped.stdout


# --- pieces that need no cluster ---------------------------------------------------------------------


def test_task_command_hands_ray_assigned_devices_to_the_evaluation() -> None:
    from harness.evaluation.ray_executor import node_command

    spec = {"backend": "gpu", "case": "/s/t1/a.py", "solution": "/x/t1/a.py", "eval_args": ["--trials", "1"]}
    spec |= {"seed": 9, "attempt": 1, "runtime": "local", "image": None}
    args, env = node_command(spec, {"GPU": ["3"]}, {"CUDA_VISIBLE_DEVICES": "3", "HOME": "/h"})
    assert args[:4] == ["eval", "/s/t1/a.py", "/x/t1/a.py", "--json"]
    assert args[args.index("--device") + 1] == "0" and env["CUDA_VISIBLE_DEVICES"] == "3"
    assert args[-4:] == ["--seed", "9", "--attempt", "1"]
    # A container is handed the host's device: the variable goes, the host index is passed.
    args, env = node_command(
        {**spec, "runtime": "docker", "image": "img"}, {"GPU": ["3"]}, {"CUDA_VISIBLE_DEVICES": "3"}
    )
    assert args[args.index("--device") + 1] == "3" and "CUDA_VISIBLE_DEVICES" not in env
    assert args[-4:] == ["--runtime", "docker", "--image", "img"]
    args, env = node_command({**spec, "backend": "npu"}, {"NPU": ["5"]}, {})
    assert env["ASCEND_RT_VISIBLE_DEVICES"] == "5" and args[args.index("--device") + 1] == "0"


def test_shipped_files_keep_the_layout_that_reference_model_needs(tmp_path: Path) -> None:
    from harness.evaluation.evaluate import Task
    from harness.evaluation.ray_executor import RayOptions, RemoteTask, _spec, node_command
    from harness.solutions import reference_model
    from harness.suite.cases import discover

    case = next(c for c in discover(REPO / "benchmark", (), ("relu",), None))
    solution = REPO / "benchmark" / "solutions" / "reference" / "t1" / "relu.py"
    spec = _spec(RemoteTask(Task(case, solution, "cpu"), "t1/relu.py"), RayOptions(ship_files=True))
    node = tmp_path / "node"
    args, _ = node_command(spec, {}, {}, node)
    case_copy, solution_copy = Path(args[1]), Path(args[2])
    assert case_copy.read_bytes() == case.path.read_bytes() and solution_copy.is_relative_to(node)
    assert reference_model(str(solution_copy)).__module__.startswith("_harness_reference_for_t1")


def test_eval_arguments_carry_the_runs_evaluation_options() -> None:
    from harness.evaluation.ray_executor import eval_arguments

    base = {"timeout_s": 60.0, "trials": 2, "budget_ms": 5.0, "rounds": 2, "isolation": "process", "output_limit": 10}
    assert "--warm-cache" not in eval_arguments({**base, "flush_cache": None})
    args = eval_arguments({**base, "flush_cache": False, "strict": ("stream", "thread"), "build_cache": "/c"})
    assert args[:4] == ("--timeout", "60.0", "--trials", "2")
    assert "--warm-cache" in args and args[args.index("--strict") + 1] == "stream,thread"
    assert "--build-cache" not in args  # a path of the driver's: each node keeps its own cache
    assert "--no-build-cache" in eval_arguments({**base, "build_cache": None})


def test_container_gets_the_host_device_of_eval_device() -> None:
    from harness.containers.runtime import _remap_devices

    assert _remap_devices(["eval", "a.py", "b.py", "--device", "3"]) == (
        ["eval", "a.py", "b.py", "--device", "0"],
        ["3"],
    )
    assert _remap_devices(["run", "--devices", "2,3"]) == (["run", "--devices", "0,1"], ["2", "3"])


def test_failed_reply_reasons() -> None:
    from harness.evaluation.ray_executor import _parse

    assert _parse({"returncode": 3, "stdout": "", "stderr": "x\nerror: backend gpu is unavailable\n"}) == (
        None,
        "harness eval exited 3: error: backend gpu is unavailable",
    )
    assert _parse({"returncode": -9, "stdout": "", "stderr": ""})[1] == "harness eval was killed"
    assert _parse({"returncode": 1, "stdout": "not json", "stderr": ""})[1].startswith("harness eval exited 1 without")
    payload = {"result": {"name": "x"}}
    assert _parse({"returncode": 1, "stdout": json.dumps(payload), "stderr": ""}) == (payload, "")


def test_unreachable_cluster_is_exit_3_naming_the_address(suite: Path, solutions: Path) -> None:
    _ray_or_skip()
    address = f"127.0.0.1:{_free_port()}"
    proc = run_harness(
        "run", "--suite", str(suite), "--solutions", str(solutions), "--executor", "ray", "--ray-address", address,
        timeout=60,
    )  # fmt: skip
    assert proc.returncode == 3, proc.stderr[-2000:]
    lines = [line for line in proc.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and address in lines[0] and "ray start --head" in lines[0]


# --- with the cluster (last: it comes up while the tests above run) ------------------------------------


def test_ray_run_of_bundled_cases_gives_the_local_statuses_and_inputs(cluster: RayHead, tmp_path: Path) -> None:
    """Bar of issue 14: the same statuses as a local run; the same output fingerprints show that each task
    drew the inputs a local run with the same seed draws. Files are shipped, so the reference set's
    `reference_model(__file__)` must find its case in the node's copy of the suite layout."""
    common = ["--solutions", "benchmark/solutions/reference", "--seed", "11", "--budget-ms", "5", "--rounds", "2"]
    common += ["--trials", "1", *[arg for name in BENCH_CASES for arg in ("--case", name)]]
    local = run_harness("run", *common, "--out", str(tmp_path / "local"), "-q")
    assert local.returncode == 0, local.stderr[-3000:]
    address, env = cluster.address, cluster.env
    remote = run_harness(
        "run", *common, "--out", str(tmp_path / "ray"), "--executor", "ray", "--ray-address", address,
        "--ray-ship-files", env=env,
    )  # fmt: skip
    assert remote.returncode == 0, remote.stdout[-2000:] + remote.stderr[-3000:]
    assert _statuses(tmp_path / "ray") == _statuses(tmp_path / "local") == dict.fromkeys(BENCH_CASES, "pass")
    cases = {c["name"]: c for c in load_json(tmp_path / "ray" / "result.json")["cases"]}
    for case in load_json(tmp_path / "local" / "result.json")["cases"]:
        mine = cases[case["name"]]
        assert mine["correctness"]["output_fingerprint"] == case["correctness"]["output_fingerprint"]
        assert (mine["case"], mine["solution"]) == (case["case"], case["solution"])  # the driver's paths
    assert sorted(r.name for r in read_journal(tmp_path / "ray" / "journal.jsonl").results) == sorted(BENCH_CASES)


def test_killed_ray_worker_costs_one_retry_and_every_case_is_reported(
    cluster: RayHead, suite: Path, solutions: Path, tmp_path: Path
) -> None:
    """The Ray worker running a case is killed mid-case: the case is retried (same node here, the only one)
    and passes, the other cases are unaffected, and the killed evaluation did not outlive its worker."""
    address, env = cluster.address, cluster.env
    scale = solutions / "t1" / "scale.py"
    scale.write_text(SLEEPY)
    out = tmp_path / "out"
    run = _start_run(
        "--suite", str(suite), "--solutions", str(solutions), "--out", str(out), "--executor", "ray",
        "--ray-address", address, "--seed", "5", *FAST_ARGS, env=env,
    )  # fmt: skip
    try:
        evals = _wait_for(lambda: _evaluations_of(scale), 60, run)
        assert isinstance(evals, list)
        scale.write_text(GOOD_SCALE)  # what the retry reads: it passes if and only if it runs again
        first_eval, worker = evals[0]
        os.kill(worker, signal.SIGKILL)
        stdout, stderr = run.communicate(timeout=120)
    finally:
        _end(run)
    assert run.returncode == 0, stdout[-2000:] + stderr[-3000:]
    result = load_json(out / "result.json")
    assert {c["name"]: c["status"] for c in result["cases"]} == {
        "scale": "pass",
        "linear_relu": "pass",
        "npu_only": "skipped",
    }
    scale_result = next(c for c in result["cases"] if c["name"] == "scale")
    assert any(w.startswith("ray: retried after") and "Worker" in w for w in scale_result["warnings"])
    assert sorted(r.name for r in read_journal(out / "journal.jsonl").results) == ["linear_relu", "npu_only", "scale"]
    assert _gone(first_eval) and not _evaluations_of(scale)


def _gone(pid: int, wait_s: float = 10) -> bool:
    """Whether process ``pid`` has ended (a zombie counts) within ``wait_s``."""
    deadline = time.monotonic() + wait_s
    while time.monotonic() < deadline:
        try:
            if Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] == "Z":
                return True
        except (OSError, IndexError):
            return True
        time.sleep(0.1)
    return False


def test_interrupted_ray_run_resumes_from_its_journal(
    cluster: RayHead, suite: Path, solutions: Path, tmp_path: Path
) -> None:
    """Ctrl-C while a case runs on the cluster: exit 130 with the finished cases journaled and the task
    cancelled; --resume (on Ray again) runs only what is missing."""
    address, env = cluster.address, cluster.env
    linear = solutions / "t2" / "linear_relu.py"
    linear.write_text(SLEEPY)
    out = tmp_path / "out"
    ray_args = ("--executor", "ray", "--ray-address", address)
    run = _start_run(
        "--suite", str(suite), "--solutions", str(solutions), "--out", str(out), "--seed", "3", *FAST_ARGS,
        *ray_args, env=env,
    )  # fmt: skip
    journal = out / "journal.jsonl"
    try:
        _wait_for(
            lambda: journal.exists() and len(read_journal(journal).results) == 2 and _evaluations_of(linear), 90, run
        )
        run.send_signal(signal.SIGINT)
        stdout, stderr = run.communicate(timeout=60)
    finally:
        _end(run)
    assert run.returncode == 130, stdout[-2000:] + stderr[-3000:]
    assert "--resume" in stderr
    assert sorted(r.name for r in read_journal(journal).results) == ["npu_only", "scale"]
    assert load_json(out / "result.json")["complete"] is False
    linear.write_text(GOOD_LINEAR)
    resumed = run_harness("run", "--resume", str(out), *ray_args, env=env)
    assert resumed.returncode == 0, resumed.stdout[-2000:] + resumed.stderr[-3000:]
    assert "2 case(s) already finished" in resumed.stderr
    assert sorted(r.name for r in read_journal(journal).results) == ["linear_relu", "npu_only", "scale"]
    assert _statuses(out) == {"scale": "pass", "linear_relu": "pass", "npu_only": "skipped"}
    assert not _evaluations_of(linear)


def test_failed_tries_become_one_error_with_the_reason(
    cluster: RayHead, suite: Path, solutions: Path, tmp_path: Path
) -> None:
    """An evaluation that cannot run on its node (here: `--runtime docker` with an image the node lacks, or
    no engine at all) is tried twice, then reported once, as an error saying what each try said."""
    address, env = cluster.address, cluster.env
    out = tmp_path / "out"
    proc = run_harness(
        "run", "--suite", str(suite), "--solutions", str(solutions), "--case", "scale", "--out", str(out),
        "--executor", "ray", "--ray-address", address, "--runtime", "docker", "--image", "kernel-harness/absent:none",
        *FAST_ARGS, env=env,
    )  # fmt: skip
    assert proc.returncode == 1, proc.stdout[-2000:] + proc.stderr[-3000:]
    (error,) = load_json(out / "result.json")["cases"]
    assert (error["name"], error["status"]) == ("scale", "error")
    assert error["reason"].startswith("ray: the evaluation failed 2 time(s)")
    assert error["reason"].count("harness eval exited 3: error:") == 2
    assert [r.name for r in read_journal(out / "journal.jsonl").results] == ["scale"]
