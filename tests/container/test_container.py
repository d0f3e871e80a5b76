"""Real containers from the CPU image: the isolation a candidate runs under actually holds.

Needs a Docker engine and the CPU image (tag from HARNESS_TEST_IMAGE, default
kernel-harness/cpu:dev): `bash docker/start-dockerd.sh` and `nox -s image-cpu`. Skipped, with the
reason, when either is missing. Every test also checks that no container it created is left.
"""

from __future__ import annotations

import json
import os
import socket
import textwrap
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

import harness.containers as c
from harness.containers import engine

pytestmark = pytest.mark.container

IMAGE = os.environ.get("HARNESS_TEST_IMAGE", c.DEFAULT_IMAGES["cpu"])


#: CI sets HARNESS_REQUIRE_CONTAINER=1 so that a missing engine or image fails instead of skipping.
REQUIRED = os.environ.get("HARNESS_REQUIRE_CONTAINER") == "1"


def _unavailable(reason: str) -> None:
    if REQUIRED:
        pytest.fail(f"{reason} and HARNESS_REQUIRE_CONTAINER=1", pytrace=False)
    pytest.skip(reason)


@pytest.fixture(scope="module")
def client() -> Iterator[Any]:
    if not c.engine_available(timeout_s=5):
        _unavailable("no Docker engine answers (start one: bash docker/start-dockerd.sh)")
    client = c.get_client()
    try:
        client.images.get(IMAGE)
    except Exception:
        _unavailable(f"image {IMAGE} is missing (build it: nox -s image-cpu, or set HARNESS_TEST_IMAGE)")
    yield client
    client.close()


@pytest.fixture(autouse=True)
def no_leftovers(request: pytest.FixtureRequest) -> Iterator[None]:
    """(f) Every test leaves no container with our label behind, whatever happened inside."""
    yield
    if "client" not in request.fixturenames:
        return
    client = request.getfixturevalue("client")
    left = c.managed_containers(client)
    if left:
        c.remove_leftovers(client)
    assert not left, f"containers left behind: {[x.short_id for x in left]}"


def python_in_image(client: Any, code: str, **kwargs: Any) -> c.ContainerRun:
    """Run a Python snippet in the image instead of the harness (entrypoint override)."""
    lines: list[str] = []
    run = c.run_container(
        IMAGE,
        ["-c", textwrap.dedent(code)],
        entrypoint=["python"],
        client=client,
        on_output=lines.append,
        **kwargs,
    )
    assert run.logs_tail.splitlines() == lines[-50:]  # streamed lines and the kept tail agree
    return run


# --- (a) the harness runs ----------------------------------------------------------------------------


def test_harness_version_runs_in_container(client: Any) -> None:
    from harness import __version__

    lines: list[str] = []
    run = c.run_harness(IMAGE, ["--version"], backend="cpu", mounts=c.Mounts(), client=client, on_output=lines.append)
    assert run.exit_code == 0, run.logs_tail
    assert not run.timed_out and not run.oom_killed
    assert any("harness" in line and __version__ in line for line in lines), lines
    assert run.image_id.startswith("sha256:")
    assert run.image_id == c.image_info(IMAGE, client).id
    assert run.image_digest is None or "@sha256:" in run.image_digest


def test_container_runs_non_root_with_no_capabilities(client: Any) -> None:
    run = python_in_image(
        client,
        """
        import os
        status = dict(line.split(":", 1) for line in open("/proc/self/status") if ":" in line)
        print("uid", os.getuid(), "capeff", status["CapEff"].strip(), "nnp", status["NoNewPrivs"].strip())
        """,
    )
    assert run.exit_code == 0, run.logs_tail
    assert "uid 1000 capeff 0000000000000000 nnp 1" in run.logs_tail


# --- (b) no network -------------------------------------------------------------------------------------


def test_no_network(client: Any) -> None:
    # A listener on the host's loopback: a container sharing the host network would reach it.
    listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    listener.bind(("127.0.0.1", 0))
    listener.listen(1)
    listener.settimeout(0.1)
    port = listener.getsockname()[1]
    try:
        run = python_in_image(
            client,
            f"""
            import errno, os, socket, sys
            ifaces = sorted(os.listdir("/sys/class/net"))
            routes = [l for l in open("/proc/net/route").read().splitlines()[1:] if l.strip()]
            print("ifaces", ifaces, "routes", len(routes))
            if ifaces != ["lo"] or routes:
                sys.exit(3)  # not isolated: do not try to send anything
            try:
                socket.create_connection(("127.0.0.1", {port}), timeout=2)
                print("host loopback reached")
                sys.exit(4)
            except ConnectionRefusedError:
                print("host loopback refused")
            # With no route at all the kernel refuses before any packet exists.
            # 192.0.2.1 is TEST-NET-1 (RFC 5737): documentation only, never routed.
            try:
                socket.create_connection(("192.0.2.1", 80), timeout=2)
                sys.exit(5)
            except OSError as exc:
                print("outside unreachable", errno.errorcode.get(exc.errno, exc.errno))
            """,
        )
        with pytest.raises(socket.timeout):
            listener.accept()
    finally:
        listener.close()
    assert run.exit_code == 0, run.logs_tail
    assert "ifaces ['lo'] routes 0" in run.logs_tail
    assert "host loopback refused" in run.logs_tail
    assert "outside unreachable ENETUNREACH" in run.logs_tail


# --- (c) read-only suite, read-only root, writable out and tmp -----------------------------------------


def test_filesystem_permissions(client: Any, tmp_path: Path) -> None:
    suite, solutions, out = tmp_path / "suite", tmp_path / "solutions", tmp_path / "out"
    (suite / "t1").mkdir(parents=True)
    (suite / "t1" / "case.py").write_text("REFERENCE = 1\n")
    solutions.mkdir()
    # World-writable on the host: only the read-only bind mount can stop the writes (EROFS, not EACCES).
    os.chmod(suite, 0o777)
    os.chmod(suite / "t1", 0o777)
    os.chmod(suite / "t1" / "case.py", 0o666)
    os.chmod(solutions, 0o777)
    run = python_in_image(
        client,
        """
        import errno
        def attempt(path):
            try:
                with open(path, "a") as f:
                    f.write("tampered\\n")
                return "written"
            except OSError as exc:
                return errno.errorcode[exc.errno]
        print("suite", attempt("/suite/t1/case.py"))
        print("suite-new", attempt("/suite/new.py"))
        print("solutions", attempt("/solutions/x.py"))
        # /work belongs to uid 1000: only the read-only root stops this one
        print("root", attempt("/work/owned-by-harness-user"))
        print("venv", attempt("/opt/venv/lib/python3.11/site-packages/harness/__init__.py"))
        print("etc", attempt("/etc/passwd"))
        print("tmp", attempt("/tmp/scratch"))
        print("out", attempt("/out/result.txt"))
        print("read", open("/suite/t1/case.py").read().strip())
        """,
        mounts=c.Mounts(suite=suite, solutions=solutions, out=out),
    )
    assert run.exit_code == 0, run.logs_tail
    log = run.logs_tail
    for name in ("suite", "suite-new", "solutions", "root"):
        assert f"{name} EROFS" in log, log
    assert "etc EROFS" in log or "etc EACCES" in log
    assert "venv EROFS" in log or "venv EACCES" in log
    assert "tmp written" in log and "out written" in log
    assert "read REFERENCE = 1" in log
    assert (suite / "t1" / "case.py").read_text() == "REFERENCE = 1\n"
    assert not (suite / "new.py").exists()
    assert (out / "result.txt").read_text() == "tampered\n"


def test_tmp_is_fresh_each_run(client: Any) -> None:
    first = python_in_image(client, "open('/tmp/marker', 'w').write('x'); print('wrote')")
    second = python_in_image(client, "import os; print('exists', os.path.exists('/tmp/marker'))")
    assert first.exit_code == 0 and second.exit_code == 0
    assert "exists False" in second.logs_tail


# --- (d) memory limit ---------------------------------------------------------------------------------


def test_oom_killed_at_memory_limit(client: Any) -> None:
    run = python_in_image(
        client,
        """
        chunks = []
        for i in range(64):                       # up to 1 GiB, pages touched
            chunks.append(b"\\x01" * (16 << 20))
            print("allocated", (i + 1) * 16, "MiB", flush=True)
        print("survived")
        """,
        limits=c.Limits(memory="128m"),
        timeout_s=120,
    )
    assert run.exit_code == 137, run.logs_tail
    assert run.oom_killed
    assert not run.timed_out
    assert "survived" not in run.logs_tail


def test_pids_limit_stops_fork_bomb(client: Any) -> None:
    run = python_in_image(
        client,
        """
        import os, time
        made = 0
        try:
            for _ in range(200):
                if os.fork() == 0:
                    time.sleep(30)
                    os._exit(0)
                made += 1
        except OSError as exc:
            print("fork refused after", made, exc.strerror, flush=True)
        os._exit(0)
        """,
        limits=c.Limits(pids=32),
        timeout_s=60,
    )
    assert run.exit_code == 0, run.logs_tail
    assert "fork refused after" in run.logs_tail
    made = int(run.logs_tail.split("fork refused after")[1].split()[0])
    assert made < 32


# --- (e) timeout ----------------------------------------------------------------------------------------


def test_stopped_at_timeout(client: Any) -> None:
    started = time.monotonic()
    run = python_in_image(
        client,
        "import time; print('sleeping', flush=True); time.sleep(120); print('woke')",
        timeout_s=3,
        stop_grace_s=2,
    )
    elapsed = time.monotonic() - started
    assert run.timed_out
    assert run.exit_code in (137, 143), run.exit_code  # SIGKILL or SIGTERM
    assert "sleeping" in run.logs_tail and "woke" not in run.logs_tail
    assert elapsed < 30


def test_sigterm_ignored_then_killed(client: Any) -> None:
    run = python_in_image(
        client,
        """
        import signal, time
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        print("up", flush=True)
        time.sleep(120)
        """,
        timeout_s=2,
        stop_grace_s=1,
    )
    assert run.timed_out and run.exit_code == 137


# --- (f) removal in every case ------------------------------------------------------------------------


def test_removed_on_keyboard_interrupt(client: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    seen: list[str] = []

    def interrupted_wait(container: Any, timeout_s: float | None) -> int | None:
        seen.append(container.id)
        raise KeyboardInterrupt

    monkeypatch.setattr(engine, "_wait", interrupted_wait)
    with pytest.raises(KeyboardInterrupt):
        c.run_container(IMAGE, ["-c", "import time; time.sleep(60)"], entrypoint=["python"], client=client)
    assert seen
    import docker

    with pytest.raises(docker.errors.NotFound):
        client.containers.get(seen[0])


def test_failing_command_reports_exit_code(client: Any) -> None:
    run = python_in_image(client, "import sys; print('bye'); sys.exit(7)")
    assert run.exit_code == 7 and not run.timed_out


def test_missing_image_is_a_container_error(client: Any) -> None:
    with pytest.raises(c.ContainerError, match="missing"):
        c.run_container("kernel-harness/no-such-image:none", ["--version"], client=client)


# --- the image can compile and JIT under the read-only root ---------------------------------------------


def test_triton_interpreter_under_read_only_root(client: Any) -> None:
    run = python_in_image(
        client,
        """
        import os
        os.environ["TRITON_INTERPRET"] = "1"
        import torch, triton, triton.language as tl

        @triton.jit
        def scale(x, o, n, B: tl.constexpr):
            i = tl.program_id(0) * B + tl.arange(0, B)
            tl.store(o + i, tl.load(x + i, mask=i < n) * 2, mask=i < n)

        x = torch.randn(1000)
        o = torch.empty_like(x)
        scale[(triton.cdiv(1000, 256),)](x, o, 1000, B=256)
        assert torch.equal(o, x * 2)
        print("triton ok", os.environ["TRITON_CACHE_DIR"])
        """,
        timeout_s=300,
    )
    assert run.exit_code == 0, run.logs_tail
    assert "triton ok /tmp/" in run.logs_tail


@pytest.mark.slow
def test_cpp_extension_builds_in_tmpfs(client: Any) -> None:
    run = python_in_image(
        client,
        """
        import os, torch
        from torch.utils.cpp_extension import load_inline
        src = "torch::Tensor twice(torch::Tensor x) { return x * 2; }"
        mod = load_inline("twice_ext", cpp_sources=src, functions=["twice"], verbose=False)
        x = torch.arange(4.0)
        assert torch.equal(mod.twice(x), x * 2)
        print("cpp ok", os.environ["TORCH_EXTENSIONS_DIR"])
        """,
        timeout_s=600,
        limits=c.Limits(cpus=2),
    )
    assert run.exit_code == 0, run.logs_tail
    assert "cpp ok /tmp/" in run.logs_tail


# --- building ---------------------------------------------------------------------------------------------


def test_build_image_streams_output_and_labels(client: Any, tmp_path: Path) -> None:
    (tmp_path / "hello.txt").write_text("hi\n")
    dockerfile = tmp_path / "Dockerfile"
    dockerfile.write_text(
        f"FROM {IMAGE}\nARG REVISION=unknown\nLABEL test.revision=$REVISION\nCOPY hello.txt /hello.txt\n"
    )
    tag = "kernel-harness/build-test:tmp"
    lines: list[str] = []
    try:
        info = c.build_image(
            "cpu",
            tag,
            tmp_path,
            build_args={"REVISION": "abc123"},
            labels={"test.extra": "yes"},
            dockerfile=dockerfile,
            on_output=lines.append,
            client=client,
        )
        assert tag in info.tags
        assert info.labels["test.revision"] == "abc123"
        assert info.labels["test.extra"] == "yes"
        assert info.labels[c.BACKEND_LABEL] == "cpu"
        assert info.labels["dev.kernel-harness.backend"] == "cpu"
        assert any("COPY hello.txt" in line for line in lines), lines
        with pytest.raises(c.ContainerError, match="failed"):
            bad = tmp_path / "Bad.Dockerfile"
            bad.write_text(f"FROM {IMAGE}\nCOPY does-not-exist /x\n")
            c.build_image("cpu", "kernel-harness/build-test:bad", tmp_path, dockerfile=bad, client=client)
    finally:
        for t in (tag, "kernel-harness/build-test:bad"):
            try:
                client.images.remove(t, force=True)
            except Exception:
                pass


def test_image_labels(client: Any) -> None:
    labels = c.image_info(IMAGE, client).labels
    assert labels.get("dev.kernel-harness.backend") == "cpu"
    for key in (
        "org.opencontainers.image.version",
        "org.opencontainers.image.revision",
        "org.opencontainers.image.title",
    ):
        assert labels.get(key), key


# --- the real thing: harness run on a bundled case ----------------------------------------------------


def test_harness_run_on_bundled_case(client: Any, tmp_path: Path) -> None:
    suite = c.project_root() / "benchmark"
    solutions = suite / "solutions" / "reference"
    if not (solutions / "t1" / "relu.py").is_file():
        pytest.skip("the bundled suite has no benchmark/solutions/reference/t1/relu.py")
    out = tmp_path / "out"
    lines: list[str] = []
    run = c.run_harness(
        IMAGE,
        ["run", "--backend", "cpu", "--suite", str(suite), "--solutions", str(solutions), "--out", str(out)]
        + ["--case", "relu", "--trials", "1", "--rounds", "1", "--budget-ms", "20", "--quiet"],
        backend="cpu",
        mounts=c.Mounts(suite=suite, solutions=solutions, out=out),
        timeout_s=300,
        limits=c.Limits(memory="4g", cpus=1),
        client=client,
        on_output=lines.append,
    )
    assert run.exit_code == 0, run.logs_tail
    result = json.loads((out / "result.json").read_text())
    assert result["provenance"]["container_image"]["id"] == run.image_id
    assert result["environment"]["in_container"] is True
    assert result["environment"]["omp_num_threads"] == "1"
