"""`--runtime docker|local|auto`: run a harness command inside the backend's image and stamp provenance.

The host process maps paths (suite and solutions read-only, out writable), starts the container
through `harness.containers`, streams its output, and afterwards rewrites the provenance of the
artifacts the container wrote (runtime, image name/id/digest, the suite's git commit, which the
container cannot see) — validating them again before the atomic rewrite.
"""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from harness.errors import BadInput, EnvironmentUnavailable

RUNTIMES = ("local", "docker", "auto")


@dataclass
class RuntimeChoice:
    runtime: str  # local | docker
    note: str | None = None  # why auto fell back to local


def choose_runtime(requested: str, backend: str, image: str | None) -> RuntimeChoice:
    """Docker when asked (error if impossible); for auto, docker when an engine answers and the image exists."""
    if requested == "local" or os.environ.get("HARNESS_IN_CONTAINER"):
        return RuntimeChoice("local")
    from harness import containers as container

    image = image or container.DEFAULT_IMAGES[backend]
    if requested == "docker":
        container.image_info(image)  # raises ContainerError (exit 3) naming the fix
        return RuntimeChoice("docker")
    if not container.engine_available():
        note = "runtime auto: no Docker engine answered; ran locally without container isolation"
        return RuntimeChoice("local", note)
    try:
        container.image_info(image)
    except EnvironmentUnavailable as exc:
        return RuntimeChoice("local", f"runtime auto: {exc}; ran locally without container isolation")
    return RuntimeChoice("docker")


def _remap_devices(args: list[str]) -> tuple[list[str], list[str] | None]:
    """Host device indices go to the container's device request; inside they are numbered from 0.

    Both `run --devices 2,3` and `eval --device 3` (what a Ray task passes: the device Ray assigned).
    """
    for i, arg in enumerate(args):
        value = None
        for flag in ("--devices", "--device"):
            if arg == flag and i + 1 < len(args):
                value, span = args[i + 1], 2
            elif arg.startswith(f"{flag}="):
                value, span = arg.split("=", 1)[1], 1
            if value is not None:
                host = [d.strip() for d in value.split(",") if d.strip()]
                inner = ",".join(str(n) for n in range(len(host)))
                return [*args[:i], flag, inner, *args[i + span :]], host
    return args, None


def run_in_container(
    command_args: Sequence[str],
    *,
    backend: str,
    image: str | None,
    suite: Path | None,
    solutions: Path | None,
    out: Path,
    build_cache: Path | None = None,
    echo: Any = None,
) -> tuple[int, dict[str, Any]]:
    """Run ``harness <command_args>`` in the backend's image; returns (exit code, image provenance).

    ``build_cache`` (a host folder) is bound read-write as the inner harness's build cache.
    """
    from harness import containers as container

    image = image or container.DEFAULT_IMAGES[backend]
    out.mkdir(parents=True, exist_ok=True)
    mounts = container.Mounts(suite=suite, solutions=solutions, out=out, build_cache=build_cache)
    args, host_devices = _remap_devices(list(command_args))  # run_harness maps the paths
    emit = echo or (lambda line: print(line, file=sys.stderr, flush=True))
    run = container.run_harness(
        image,
        args,
        backend=backend,
        mounts=mounts,
        gpus=host_devices if backend == "gpu" else None,
        npu_devices=[int(d) for d in host_devices] if backend == "npu" and host_devices else None,
        on_output=emit,
    )
    provenance = {"name": image, "id": run.image_id, "digest": run.image_digest}
    if run.oom_killed:
        emit(f"error: the container hit its memory limit and was killed (image {image})")
    return run.exit_code, provenance


def stamp_provenance(paths: Sequence[Path], image: dict[str, Any], suite: Path | None) -> None:
    """Record runtime docker, the image and the host-side suite commit in artifacts the container wrote."""
    from harness.artifacts.provenance import git_commit
    from harness.artifacts.writing import write_artifact

    commit = git_commit(suite) if suite else None
    for path in paths:
        if not path.is_file():
            continue
        try:
            payload = json.loads(path.read_text(encoding="utf-8"))
        except json.JSONDecodeError as exc:
            raise BadInput(f"{path}: the container wrote invalid JSON ({exc.msg})") from exc
        provenance = payload.setdefault("provenance", {})
        provenance["runtime"] = "docker"
        provenance["container_image"] = image
        if commit:
            provenance["suite_git_commit"] = commit
        write_artifact(path, payload)
