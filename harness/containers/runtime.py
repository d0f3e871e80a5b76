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


def choose_runtime(
    requested: str, backend: str, image: str | None, mounted: Sequence[tuple[Path, Sequence[Path] | None]] = ()
) -> RuntimeChoice:
    """Docker when asked (error if impossible); for auto, docker when an engine answers and the image exists.

    ``mounted`` lists the host folders the container will read (each with the files in it it needs, or
    None for all of them): for docker they are checked first, before the engine is asked anything.
    """
    if requested == "local" or os.environ.get("HARNESS_IN_CONTAINER"):
        return RuntimeChoice("local")
    from harness import containers as container

    image = image or container.DEFAULT_IMAGES[backend]
    if requested == "docker":
        check_readable(mounted)  # raises ContainerError (exit 3) naming the folder and the fix
        container.image_info(image)  # raises ContainerError (exit 3) naming the fix
        return RuntimeChoice("docker")
    if not container.engine_available():
        note = "runtime auto: no Docker engine answered; ran locally without container isolation"
        return RuntimeChoice("local", note)
    try:
        container.image_info(image)
        check_readable(mounted)
    except EnvironmentUnavailable as exc:
        return RuntimeChoice("local", f"runtime auto: {exc}; ran locally without container isolation")
    return RuntimeChoice("docker")


# A walk of a mounted folder stops after this many entries (a suite holds a few hundred files).
_WALK_LIMIT = 20000


def _can_read(st: os.stat_result, uid: int, gid: int, directory: bool) -> bool:
    """Whether ``uid:gid`` may read (and, for a folder, enter) what ``st`` describes, by its mode bits."""
    if uid == 0:
        return True
    shift = 6 if st.st_uid == uid else 3 if st.st_gid == gid else 0
    need = 0o5 if directory else 0o4
    return (st.st_mode >> shift) & need == need


def check_readable(mounted: Sequence[tuple[Path, Sequence[Path] | None]], user: str | None = None) -> None:
    """ContainerError (exit 3) naming the first folder or file of ``mounted`` the container's user cannot read.

    The container runs as the caller, or as uid 1000 when the caller is root (`default_user`); a
    folder made by ``mktemp -d`` or under a umask of 077 is then closed to it, and the run would end
    in a PermissionError inside the container. Each root is checked with the files named for it (and
    the folders between), or walked (its folders and ``*.py`` files) when none are named.
    """
    from harness.containers.engine import default_user

    user = user or default_user()
    uid_text, _, gid_text = user.partition(":")
    if not uid_text.isdigit():
        return
    uid, gid = int(uid_text), int(gid_text) if gid_text.isdigit() else int(uid_text)
    for root, files in mounted:
        root = Path(root).expanduser().resolve()
        if not root.exists():
            continue
        for path, directory in _entries(root, files):
            try:
                st = path.stat()
            except OSError:
                continue
            if _can_read(st, uid, gid, directory):
                continue
            folder = path if directory else path.parent
            what = "folder" if directory else f"file {path.name} in the folder"
            from harness.containers.client import ContainerError

            raise ContainerError(
                f"the container runs as uid {uid} and cannot read the {what} {folder} (mode "
                f"{st.st_mode & 0o777:04o}, owner uid {st.st_uid}); make it readable (chmod -R a+rX {root}), "
                f"or use a folder others can read, or --runtime local"
            )


def _entries(root: Path, files: Sequence[Path] | None) -> list[tuple[Path, bool]]:
    """(path, is a folder) for everything the container reads under ``root``."""
    if files is not None:
        out: list[tuple[Path, bool]] = [(root, True)]
        for file in files:
            file = Path(file).expanduser().resolve()
            if not file.is_relative_to(root):
                continue
            parts = file.relative_to(root).parts
            out += [(root.joinpath(*parts[:i]), True) for i in range(1, len(parts))]
            out.append((file, False))
        return out
    out = []
    for folder, dirs, names in os.walk(root):
        dirs[:] = [d for d in dirs if not d.startswith(".")]
        out.append((Path(folder), True))
        out += [(Path(folder) / name, False) for name in names if name.endswith(".py")]
        if len(out) > _WALK_LIMIT:
            break
    return out


def _remap_devices(args: list[str]) -> tuple[list[str], list[str] | None]:
    """Host device indices go to the container's device request; inside they are numbered from 0.

    Both `run --devices 2,3` and `eval --devices 3` (what a Ray task passes: the device Ray assigned).
    """
    for i, arg in enumerate(args):
        value = None
        for flag in ("--devices",):
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
