"""The container a harness run gets: bound folders, host paths mapped into it, and every isolation
setting and limit, as the keyword arguments of ``containers.create`` (pure: unit-tested without an engine).
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Any

from harness.containers.client import BACKEND_LABEL, MANAGED_LABEL, ContainerError, _docker
from harness.containers.images import normalize_backend

#: Fixed container paths the host folders are bound to.
CONTAINER_SUITE = "/suite"
CONTAINER_SOLUTIONS = "/solutions"
CONTAINER_OUT = "/out"
CONTAINER_BUILD_CACHE = "/build-cache"  # the harness's build cache (harness/build_cache.py), writable

#: The non-root user the images create and run as (docker/*/Dockerfile).
CONTAINER_USER = "1000:1000"

#: Ascend: the control device nodes every NPU container needs besides /dev/davinci<N>.
ASCEND_CONTROL_DEVICES = ("/dev/davinci_manager", "/dev/devmm_svm", "/dev/hisi_hdc")
#: Ascend: host driver files bound read-only (the driver is the host's; CANN is in the image).
#: The first is required, the others are bound when the host has them.
ASCEND_DRIVER_MOUNTS = (
    "/usr/local/Ascend/driver",
    "/usr/local/dcmi",
    "/usr/local/bin/npu-smi",
    "/etc/ascend_install.info",
)

#: Scratch space: the only writable place besides /out. exec: torch/triton JIT-compile into it.
DEFAULT_TMPFS = {"/tmp": "rw,exec,nosuid,nodev,size=2g,mode=1777"}

#: /dev/shm size (Docker's default of 64 MB is too small for torch.multiprocessing).
DEFAULT_SHM_SIZE = "2g"



@dataclass(frozen=True)
class Mounts:
    """Host folders bound into the container: suite and solutions read-only, out writable.

    Any of them may be None. ``extra_ro`` binds further host paths read-only at the given
    container paths (e.g. a shared dataset).
    """

    suite: Path | None = None
    solutions: Path | None = None
    out: Path | None = None
    build_cache: Path | None = None  # kept between containers: candidates' compiled kernels
    extra_ro: Mapping[str, str] = field(default_factory=dict)  # host path -> container path

    def pairs(self) -> list[tuple[Path, str, str]]:
        """(resolved host path, container path, mode) for every bound folder.

        Solutions that live inside the suite (``<suite>/solutions/<set>``) get no mount of their
        own: they are reached read-only through /suite, which keeps suite-relative layouts
        working (``harness.solutions.reference_model`` finds the case from the solution's path).
        """
        out: list[tuple[Path, str, str]] = []
        suite = Path(self.suite).expanduser().resolve() if self.suite is not None else None
        for host, target, mode in (
            (self.suite, CONTAINER_SUITE, "ro"),
            (self.solutions, CONTAINER_SOLUTIONS, "ro"),
            (self.out, CONTAINER_OUT, "rw"),
            (self.build_cache, CONTAINER_BUILD_CACHE, "rw"),
        ):
            if host is None:
                continue
            resolved = Path(host).expanduser().resolve()
            if target == CONTAINER_SOLUTIONS and suite is not None and resolved.is_relative_to(suite):
                continue
            out.append((resolved, target, mode))
        for host_s, target in self.extra_ro.items():
            out.append((Path(host_s).expanduser().resolve(), target, "ro"))
        return out

    def volumes(self) -> dict[str, dict[str, str]]:
        """The docker SDK ``volumes=`` form: {host: {"bind": container, "mode": "ro"|"rw"}}."""
        return {str(host): {"bind": target, "mode": mode} for host, target, mode in self.pairs()}





#: Harness options whose value is always a path (mapped even without a "/" in it, e.g. --suite benchmark).
PATH_OPTIONS = frozenset({"--suite", "--solutions", "--out", "--resume", "--build-cache"})


def _looks_like_path(value: str) -> bool:
    return value.startswith(("/", "./", "../", "~")) or "/" in value or os.sep in value


def _host_path(value: str, cwd: Path | None) -> Path:
    host = Path(value).expanduser()
    if not host.is_absolute():
        host = (cwd or Path.cwd()) / host
    return Path(os.path.normpath(host))


def map_path(value: str, mounts: Mounts, cwd: Path | None = None, *, is_path: bool = False) -> str | None:
    """The container path for a host path inside one of the bound folders, else None.

    A value is taken for a path when ``is_path`` (it follows a path option) or when it looks like
    one (has a "/"): a bare word such as a case name is never rewritten, even if a folder of
    that name happens to exist.
    """
    if not value or not (is_path or _looks_like_path(value)):
        return None
    host = _host_path(value, cwd)
    resolved = host.resolve() if host.exists() else host
    # Longest host prefix wins (an out folder inside the suite maps to /out).
    for root, target, _mode in sorted(mounts.pairs(), key=lambda p: len(p[0].parts), reverse=True):
        for candidate in (resolved, host):
            try:
                rel = candidate.relative_to(root)
            except ValueError:
                continue
            return str(PurePosixPath(target, *rel.parts)) if rel.parts else target
    return None


def map_harness_args(
    args: Sequence[str],
    mounts: Mounts,
    *,
    cwd: Path | None = None,
    strict: bool = True,
    path_options: frozenset[str] = PATH_OPTIONS,
) -> list[str]:
    """Rewrite host paths in harness arguments (``--suite X`` and ``--suite=X`` alike) to container paths.

    Values of ``path_options`` are always treated as paths; other arguments when they look like a
    path (contain a "/"). With ``strict`` (default) such a path outside every bound
    folder raises ContainerError: the container could not see it, and passing it on would fail
    later with a confusing "no such file".
    """
    mapped: list[str] = []
    previous = ""
    for arg in args:
        prefix, value, option = "", arg, previous
        previous = arg
        if arg.startswith("--") and "=" in arg:
            option, value = arg.split("=", 1)
            prefix = option + "="
        elif arg.startswith("-"):
            mapped.append(arg)
            continue
        is_path = option in path_options
        target = map_path(value, mounts, cwd, is_path=is_path)
        if target is not None:
            mapped.append(prefix + target)
            continue
        if strict and (is_path or _looks_like_path(value)) and (is_path or _host_path(value, cwd).exists()):
            where = f"{option} {value}" if is_path else value
            raise ContainerError(
                f"{where} is not inside a folder bound into the container: pass it as the suite,"
                " solutions or out folder"
            )
        mapped.append(arg)
    return mapped


# --- the run spec -------------------------------------------------------------------------------------


def _parse_size(value: str | int) -> int:
    if isinstance(value, int):
        return value
    text = value.strip().lower().rstrip("b")
    units = {"k": 1 << 10, "m": 1 << 20, "g": 1 << 30, "t": 1 << 40}
    if text and text[-1] in units:
        return int(float(text[:-1]) * units[text[-1]])
    return int(text)


def _omp_threads(cpus: float | None, cpuset: str | None) -> int | None:
    if cpuset:
        count = 0
        for part in cpuset.split(","):
            lo, _, hi = part.partition("-")
            count += (int(hi) - int(lo) + 1) if hi else 1
        return max(1, count)
    if cpus:
        return max(1, int(cpus))
    return None


@dataclass(frozen=True)
class Limits:
    """What one container may use; `container_spec` turns it into the engine's settings.

    ``memory`` is also the swap limit (killed at the limit, never swapping); ``pids`` stops a fork
    bomb; ``cpus`` (a share of CPUs) and ``cpuset`` (which ones) bound the CPU, and set
    OMP_NUM_THREADS to match; ``shm_size`` is /dev/shm, or ``ipc_host`` shares the host's IPC
    namespace instead; ``tmpfs`` the scratch mounts (default: /tmp, 2 GB, exec for JIT builds).
    """

    memory: str | int = "8g"
    pids: int = 1024
    cpus: float | None = None
    cpuset: str | None = None
    shm_size: str | None = None
    ipc_host: bool = False
    tmpfs: Mapping[str, str] | None = None


def container_spec(
    image: str,
    command: Sequence[str],
    *,
    backend: str = "cpu",
    mounts: Mounts | None = None,
    limits: Limits | None = None,
    entrypoint: Sequence[str] | None = None,
    gpus: Sequence[str] | None = None,
    npu_devices: Sequence[int] | None = None,
    env: Mapping[str, str] | None = None,
    user: str | None = None,
    labels: Mapping[str, str] | None = None,
    exists: Callable[[str], bool] = os.path.exists,
    stat_gid: Callable[[str], int | None] | None = None,
) -> dict[str, Any]:
    """Keyword arguments for ``client.containers.create``: every isolation setting in one place.

    Pure (no engine needed) so that it is unit-tested. ``exists`` and ``stat_gid`` look at the
    host for optional Ascend driver files and device-node groups; tests pass stand-ins.

    - ``network_mode="none"``: a candidate can reach nothing, not even the host.
    - ``read_only=True`` with a tmpfs on /tmp: it cannot change the image; scratch dies with it.
    - ``mem_limit`` = ``memswap_limit``: killed at the limit (exit 137, OOMKilled) instead of swapping.
    - ``pids_limit``: a fork bomb stops at ``pids`` processes.
    - ``cap_drop=["ALL"]``, ``no-new-privileges``, non-root user: no privilege to regain.
    - ``init=True``: a real PID 1 forwards SIGTERM on timeout and reaps the candidate's children.
    - ``shm_size`` 2g: /dev/shm for torch.multiprocessing (64 MB default fails); counts as memory.
    - gpu: ``DeviceRequest`` (NVIDIA container toolkit) for the listed GPUs, or all with ["all"].
    - npu: /dev/davinci<N> plus the control nodes, the host driver read-only, the device nodes'
      group added so the non-root user may open them, ASCEND_RT_VISIBLE_DEVICES set to the
      logical ids 0..n-1 of the mapped devices (the runtime numbers what it sees from 0).
    """
    backend = normalize_backend(backend)
    mounts = mounts or Mounts()
    limits = limits or Limits()
    memory, pids, cpus, cpuset = limits.memory, limits.pids, limits.cpus, limits.cpuset
    volumes = mounts.volumes()
    environment: dict[str, str] = {
        "HARNESS_IN_CONTAINER": "1",
        "HARNESS_IMAGE": image,
        "USER": "harness",
        "LOGNAME": "harness",
    }
    threads = _omp_threads(cpus, cpuset)
    if threads is not None:
        environment["OMP_NUM_THREADS"] = str(threads)
    devices: list[str] = []
    device_requests: list[Any] = []
    group_add: list[str] = []

    if gpus is not None and npu_devices is not None:
        raise ContainerError("pass gpus or npu_devices, not both")
    if gpus is not None:
        if backend != "gpu":
            raise ContainerError(f"gpus= needs backend gpu, not {backend}")
        docker = _docker()
        ids = [str(g) for g in gpus]
        if not ids or ids == ["all"]:
            device_requests.append(docker.types.DeviceRequest(count=-1, capabilities=[["gpu"]]))
        else:
            device_requests.append(docker.types.DeviceRequest(device_ids=ids, capabilities=[["gpu"]]))
    if npu_devices is not None:
        if backend != "npu":
            raise ContainerError(f"npu_devices= needs backend npu, not {backend}")
        if not npu_devices:
            raise ContainerError("npu_devices is empty: name at least one NPU index, e.g. [0]")
        nodes = [f"/dev/davinci{int(n)}" for n in npu_devices] + list(ASCEND_CONTROL_DEVICES)
        devices = [f"{node}:{node}:rwm" for node in nodes]
        if not exists(ASCEND_DRIVER_MOUNTS[0]):
            raise ContainerError(
                f"{ASCEND_DRIVER_MOUNTS[0]} not found: install the Ascend driver on this host (npu-smi info must work)"
            )
        for path in ASCEND_DRIVER_MOUNTS:
            if exists(path):
                volumes[path] = {"bind": path, "mode": "ro"}
        gid_of = stat_gid or _host_gid
        for node in nodes:
            gid = gid_of(node)
            if gid and str(gid) not in group_add:
                group_add.append(str(gid))
        environment["ASCEND_RT_VISIBLE_DEVICES"] = ",".join(str(i) for i in range(len(npu_devices)))

    if mounts.build_cache is not None:
        environment["HARNESS_BUILD_CACHE"] = CONTAINER_BUILD_CACHE
    environment.update(env or {})
    spec: dict[str, Any] = {
        "image": image,
        "command": list(command),
        "detach": True,
        "user": user or CONTAINER_USER,
        "working_dir": "/work",
        "environment": environment,
        "volumes": volumes,
        "network_mode": "none",
        "read_only": True,
        "tmpfs": dict(limits.tmpfs or DEFAULT_TMPFS),
        "mem_limit": _parse_size(memory),
        "memswap_limit": _parse_size(memory),
        "pids_limit": int(pids),
        "cap_drop": ["ALL"],
        "security_opt": ["no-new-privileges"],
        "init": True,
        "labels": {MANAGED_LABEL: "true", BACKEND_LABEL: backend, **(labels or {})},
        "stop_signal": "SIGTERM",
    }
    if entrypoint is not None:
        spec["entrypoint"] = list(entrypoint)
    if cpus:
        spec["nano_cpus"] = int(float(cpus) * 1e9)
    if cpuset:
        spec["cpuset_cpus"] = cpuset
    if device_requests:
        spec["device_requests"] = device_requests
    if devices:
        spec["devices"] = devices
    if group_add:
        spec["group_add"] = group_add
    # The harness passes tensors between its processes through torch.multiprocessing, i.e. /dev/shm
    # (so do DataLoader workers and NCCL/HCCL); Docker's default of 64 MB fails with ENOSPC.
    # shm pages count against mem_limit. ipc_host shares the host's IPC namespace instead (weaker).
    if limits.ipc_host:
        spec["ipc_mode"] = "host"
    else:
        spec["shm_size"] = limits.shm_size or DEFAULT_SHM_SIZE
    return spec


def _host_gid(path: str) -> int | None:
    try:
        return os.stat(path).st_gid
    except OSError:
        return None


