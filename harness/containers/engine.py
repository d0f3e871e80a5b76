"""Run the harness inside a container: the Docker engine, one container per run, always removed.

Why a container at all: a candidate kernel is untrusted code that we import and execute. Run in
the image, it gets no network (it cannot fetch answers or phone home), a read-only root file
system (it cannot patch the harness or the reference), read-only views of the suite and of the
solutions, one writable output folder, a tmpfs scratch, and memory / process / CPU limits, so a
runaway candidate is killed by the kernel instead of taking the machine down. The container also
pins the software stack (torch, triton, compiler) that the results were measured with; its image
id and digest go into the provenance of every result.

Everything here talks to the Docker engine through the docker SDK (``docker.from_env()``: honours
DOCKER_HOST, DOCKER_TLS_VERIFY, DOCKER_CERT_PATH). The ``docker`` package is an optional
dependency (extra ``docker``), imported lazily so that ``import harness.containers`` always works.

Host and container paths are never mixed implicitly: :class:`Mounts` binds host folders to the
fixed container paths ``/suite`` (read-only), ``/solutions`` (read-only) and ``/out`` (writable),
and :func:`map_harness_args` rewrites host paths in the harness arguments to those container paths.
:func:`container_spec` builds the exact keyword arguments for ``containers.create`` without an
engine, so that the isolation settings are unit-tested.
"""

from __future__ import annotations

import codecs
import os
import threading
import time
from collections import deque
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from harness.containers.client import MANAGED_LABEL, ContainerError, OutputCallback, _docker, get_client
from harness.containers.images import image_info
from harness.containers.spec import (
    CONTAINER_USER,
    Limits,
    Mounts,
    container_spec,
    map_harness_args,
)


@dataclass(frozen=True)
class ImageInfo:
    """What identifies the software stack a result was measured with."""

    id: str  # sha256:... content id of the local image
    tags: tuple[str, ...]
    labels: dict[str, str]
    repo_digests: tuple[str, ...] = ()  # name@sha256:... once pushed to / pulled from a registry

    @property
    def digest(self) -> str | None:
        """The first registry digest, or None for an image only ever built locally."""
        return self.repo_digests[0] if self.repo_digests else None


@dataclass(frozen=True)
class ContainerRun:
    """Outcome of one container run. The container is already removed when this is returned."""

    exit_code: int  # the container's exit status; 137 = SIGKILL (OOM or timeout kill)
    image_id: str
    image_digest: str | None
    container_id: str
    timed_out: bool  # the wall-clock limit was reached and the container was stopped
    logs_tail: str  # the last lines of combined stdout/stderr
    oom_killed: bool = False  # the kernel killed it at the memory limit
    duration_s: float = 0.0






def _prepare_out(mounts: Mounts, user: str | None) -> None:
    """Make the writable folders (out, build cache) exist and be writable by the container user.

    The container runs as uid 1000 (or ``user``). When we are root on the host, the folder is
    chowned to that uid so the unprivileged container can write into it; otherwise the caller
    passes ``user=f"{os.getuid()}:{os.getgid()}"`` (run_harness does) so files come out as theirs.
    """
    for folder in (mounts.out, mounts.build_cache):
        if folder is None:
            continue
        out = Path(folder).expanduser().resolve()
        out.mkdir(parents=True, exist_ok=True)
        if hasattr(os, "geteuid") and os.geteuid() == 0:
            uid, _, gid = (user or CONTAINER_USER).partition(":")
            if uid.isdigit():
                os.chown(out, int(uid), int(gid) if gid.isdigit() else int(uid))


def default_user() -> str:
    """uid:gid for the container: the caller's own ids, or 1000:1000 when the caller is root."""
    if hasattr(os, "geteuid") and os.geteuid() != 0:
        return f"{os.geteuid()}:{os.getegid()}"
    return CONTAINER_USER


def run_container(
    image: str,
    command: Sequence[str],
    *,
    backend: str = "cpu",
    mounts: Mounts | None = None,
    timeout_s: float | None = None,
    entrypoint: Sequence[str] | None = None,
    limits: Limits | None = None,
    gpus: Sequence[str] | None = None,
    npu_devices: Sequence[int] | None = None,
    env: Mapping[str, str] | None = None,
    user: str | None = None,
    labels: Mapping[str, str] | None = None,
    on_output: OutputCallback | None = None,
    stop_grace_s: float = 10.0,
    tail_lines: int = 50,
    client: Any = None,
) -> ContainerRun:
    """Run ``command`` in ``image`` under the isolation of :func:`container_spec`; always remove it.

    The lower-level form of :func:`run_harness`: any command, optional entrypoint override (tests
    use it to run plain Python in the image). Output (stdout and stderr, merged) is streamed line
    by line to ``on_output`` while it runs. At ``timeout_s`` the container gets SIGTERM (the
    harness then writes partial results) and SIGKILL ``stop_grace_s`` later. The container is
    removed in every case: normal exit, timeout, error, KeyboardInterrupt.
    """
    docker = _docker()
    client = client or get_client()
    info = image_info(image, client)
    mounts = mounts or Mounts()
    user = user or default_user()
    _prepare_out(mounts, user)
    spec = container_spec(
        image,
        command,
        backend=backend,
        mounts=mounts,
        limits=limits,
        entrypoint=entrypoint,
        gpus=gpus,
        npu_devices=npu_devices,
        env={
            "HARNESS_IMAGE_ID": info.id,
            **({"HARNESS_IMAGE_DIGEST": info.digest} if info.digest else {}),
            **(env or {}),
        },
        user=user,
        labels=labels,
    )
    emit = on_output or (lambda line: None)
    tail: deque[str] = deque(maxlen=tail_lines)
    container = None
    timed_out = False
    started = time.monotonic()
    try:
        try:
            container = client.containers.create(**spec)
        except docker.errors.APIError as exc:
            raise ContainerError(f"cannot create a container from {image}: {_explain(exc)}") from exc
        reader = threading.Thread(target=_pump_logs, args=(container, emit, tail), daemon=True)
        try:
            container.start()
        except docker.errors.APIError as exc:
            raise ContainerError(f"cannot start a container from {image}: {_explain(exc)}") from exc
        reader.start()
        exit_code = _wait(container, timeout_s)
        if exit_code is None:
            timed_out = True
            try:
                container.stop(timeout=max(0, int(stop_grace_s)))
            except docker.errors.APIError:
                container.kill()
            exit_code = _wait(container, stop_grace_s + 30)
            if exit_code is None:  # pragma: no cover - the engine failed to kill it
                exit_code = 137
        reader.join(timeout=10)
        container.reload()
        state = container.attrs.get("State") or {}
        return ContainerRun(
            exit_code=int(exit_code),
            image_id=info.id,
            image_digest=info.digest,
            container_id=container.id,
            timed_out=timed_out,
            logs_tail="\n".join(tail),
            oom_killed=bool(state.get("OOMKilled")),
            duration_s=round(time.monotonic() - started, 3),
        )
    finally:
        if container is not None:
            _remove(container)


def run_harness(
    image: str,
    harness_args: Sequence[str],
    *,
    backend: str,
    mounts: Mounts,
    cwd: Path | None = None,
    **kwargs: Any,
) -> ContainerRun:
    """Run ``harness <harness_args>`` in ``image`` with the suite, solutions and out folders bound.

    Host paths in ``harness_args`` are rewritten to /suite, /solutions and /out
    (:func:`map_harness_args`); everything else is :func:`run_container`.
    """
    args = map_harness_args(harness_args, mounts, cwd=cwd)
    return run_container(image, args, backend=backend, mounts=mounts, **kwargs)


def remove_leftovers(client: Any = None, label: str = MANAGED_LABEL) -> int:
    """Force-remove every container carrying our label (after a crash of the caller). Returns the count."""
    client = client or get_client()
    count = 0
    for container in client.containers.list(all=True, filters={"label": f"{label}=true"}):
        _remove(container)
        count += 1
    return count


def managed_containers(client: Any = None) -> list[Any]:
    """Containers, running or not, that carry the managed label."""
    client = client or get_client()
    return list(client.containers.list(all=True, filters={"label": f"{MANAGED_LABEL}=true"}))


# --- internals ---------------------------------------------------------------------------------------


def _explain(exc: Any) -> str:
    text = str(getattr(exc, "explanation", None) or exc).strip()
    if "could not select device driver" in text and "gpu" in text:
        return text + " (install the NVIDIA container toolkit and run: nvidia-ctk runtime configure --runtime=docker)"
    if "no such file or directory" in text.lower() and "/dev/" in text:
        return text + " (the device node is missing on this host: check npu-smi info / nvidia-smi)"
    return text.splitlines()[0] if text else type(exc).__name__


def _wait(container: Any, timeout_s: float | None) -> int | None:
    """The exit code, or None when ``timeout_s`` passed first."""
    import requests

    deadline = None if timeout_s is None else time.monotonic() + timeout_s
    while True:
        remaining = None if deadline is None else max(0.0, deadline - time.monotonic())
        if remaining is not None and remaining <= 0:
            return None
        try:
            # Wait in slices: the HTTP read timeout is what bounds this call.
            result = container.wait(timeout=min(remaining, 60) if remaining is not None else 60)
            return int(result.get("StatusCode", -1))
        except requests.exceptions.ReadTimeout:
            continue
        except requests.exceptions.ConnectionError as exc:
            # Over the unix socket a read timeout arrives as ConnectionError(ReadTimeoutError).
            if "timed out" in str(exc).lower():
                continue
            raise ContainerError(f"lost the Docker engine while waiting for the container: {exc}") from exc


def _pump_logs(container: Any, emit: OutputCallback, tail: deque[str]) -> None:
    """Stream the container's combined output, line by line, until it exits."""
    decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")
    pending = ""
    try:
        for chunk in container.logs(stream=True, follow=True, stdout=True, stderr=True):
            pending += decoder.decode(chunk)
            *lines, pending = pending.split("\n")
            for line in lines:
                _deliver(line.rstrip("\r"), emit, tail)
        pending += decoder.decode(b"", final=True)
        if pending:
            _deliver(pending.rstrip("\r"), emit, tail)
    except Exception:  # the container went away under us: the run's outcome says what happened
        return


def _deliver(line: str, emit: OutputCallback, tail: deque[str]) -> None:
    tail.append(line)
    try:
        emit(line)
    except Exception:  # a broken callback must not leave the container running
        pass


def _remove(container: Any) -> None:
    """Force-remove, retrying briefly: removal is the one step that must not be skipped."""
    for attempt in range(3):
        try:
            container.remove(force=True, v=True)
            return
        except Exception as exc:  # NotFound: already gone
            if type(exc).__name__ == "NotFound":
                return
            time.sleep(0.5 * (attempt + 1))


