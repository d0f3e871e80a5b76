"""Run the harness inside a container: build images, map paths, isolate candidates.

Why a container at all: a candidate kernel is untrusted code that we import and execute. Run in
the image, it gets no network (it cannot fetch answers or phone home), a read-only root file
system (it cannot patch the harness or the reference), read-only views of the suite and of the
solutions, one writable output folder, a tmpfs scratch, and memory / process / CPU limits, so a
runaway candidate is killed by the kernel instead of taking the machine down. The container also
pins the software stack (torch, triton, compiler) that the results were measured with; its image
id and digest go into the provenance of every result.

Everything here talks to the Docker engine through the docker SDK (``docker.from_env()``: honours
DOCKER_HOST, DOCKER_TLS_VERIFY, DOCKER_CERT_PATH). The ``docker`` package is an optional
dependency (extra ``docker``), imported lazily so that ``import harness.container`` always works.

Host and container paths are never mixed implicitly: :class:`Mounts` binds host folders to the
fixed container paths ``/suite`` (read-only), ``/solutions`` (read-only) and ``/out`` (writable),
and :func:`map_harness_args` rewrites host paths in the harness arguments to those container paths.
:func:`container_spec` builds the exact keyword arguments for ``containers.create`` without an
engine, so that the isolation settings are unit-tested.
"""

from __future__ import annotations

import codecs
import datetime as dt
import os
import subprocess
import threading
import time
from collections import deque
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Any

from harness.errors import EnvironmentUnavailable

# --- constants ---------------------------------------------------------------------------------------

#: Label set on every container this module creates; tests and ``remove_leftovers`` find them by it.
MANAGED_LABEL = "dev.kernel-harness.managed"
BACKEND_LABEL = "dev.kernel-harness.backend"

#: Fixed container paths the host folders are bound to.
CONTAINER_SUITE = "/suite"
CONTAINER_SOLUTIONS = "/solutions"
CONTAINER_OUT = "/out"
CONTAINER_BUILD_CACHE = "/build-cache"  # the harness's build cache (harness/build_cache.py), writable

#: The non-root user the images create and run as (docker/*/Dockerfile).
CONTAINER_USER = "1000:1000"

#: Harness backend name -> folder under docker/ holding its Dockerfile (and wheelhouse name).
DOCKER_DIRS = {"cpu": "cpu", "gpu": "cuda", "npu": "ascend"}
_ALIASES = {"cuda": "gpu", "ascend": "npu"}

#: Default image tags, one per backend (the nox sessions image-cpu / image-gpu / image-npu build them).
DEFAULT_IMAGES = {
    "cpu": "kernel-harness/cpu:dev",
    "gpu": "kernel-harness/gpu:dev",
    "npu": "kernel-harness/npu:dev",
}

#: The nox session that builds each backend's image: named in "image missing" errors.
BUILD_SESSIONS = {"cpu": "image-cpu", "gpu": "image-gpu", "npu": "image-npu"}

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

OutputCallback = Callable[[str], None]


# --- errors and results -------------------------------------------------------------------------------


class ContainerError(EnvironmentUnavailable):
    """The container runtime cannot do what was asked. The message is one line and names the fix.

    A subclass of ``EnvironmentUnavailable`` so that the CLI maps it to exit code 3 (environment
    unavailable) like any other missing backend.
    """


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


# --- engine ---------------------------------------------------------------------------------------------


def normalize_backend(backend: str) -> str:
    """cpu / gpu / npu (the harness's names); cuda and ascend are accepted as aliases."""
    name = _ALIASES.get(backend, backend)
    if name not in DOCKER_DIRS:
        raise ContainerError(f"unknown backend {backend!r}: use one of cpu, gpu, npu")
    return name


def _docker() -> Any:
    try:
        import docker
    except ImportError as exc:  # pragma: no cover - depends on the environment
        raise ContainerError("the docker Python SDK is not installed: pip install 'kernel-harness[docker]'") from exc
    return docker


def get_client(timeout_s: float = 60.0) -> Any:
    """A connected ``docker.DockerClient``; raises ContainerError naming the fix when no engine answers."""
    docker = _docker()
    try:
        client = docker.from_env(timeout=int(max(1, timeout_s)))
        client.ping()
        return client
    except Exception as exc:
        raise ContainerError(
            f"no Docker engine answers ({type(exc).__name__}); start one"
            " (CI / root: bash docker/start-dockerd.sh,"
            " desktop: start Docker) or set DOCKER_HOST"
        ) from exc


def engine_available(timeout_s: float = 3.0) -> bool:
    """True when a Docker engine answers a ping within ``timeout_s``. Never raises.

    Used by ``--runtime auto`` and by the container tests' skip condition, so it must be cheap and
    quiet when there is no engine, no socket, or no docker SDK.
    """
    try:
        docker = _docker()
        client = docker.from_env(timeout=max(1, int(timeout_s)))
        try:
            return bool(client.ping())
        finally:
            client.close()
    except Exception:
        return False


def image_info(image: str, client: Any = None) -> ImageInfo:
    """Id, tags, labels and registry digests of a local image; ContainerError when it is missing."""
    docker = _docker()
    client = client or get_client()
    try:
        img = client.images.get(image)
    except docker.errors.ImageNotFound as exc:
        raise ContainerError(_missing_image_message(image)) from exc
    except docker.errors.APIError as exc:
        raise ContainerError(f"cannot inspect image {image}: {exc.explanation or exc}") from exc
    attrs = img.attrs
    return ImageInfo(
        id=img.id,
        tags=tuple(img.tags),
        labels=dict((attrs.get("Config") or {}).get("Labels") or {}),
        repo_digests=tuple(attrs.get("RepoDigests") or ()),
    )


def _missing_image_message(image: str) -> str:
    for backend, default in DEFAULT_IMAGES.items():
        if image == default:
            return f"image {image} is missing: build it with: nox -s {BUILD_SESSIONS[backend]}"
    return f"image {image} is missing: build it (docs/containers.md) or pass another --image"


# --- build --------------------------------------------------------------------------------------------


def project_root() -> Path:
    """The source checkout this module runs from (holds docker/); not meaningful in an installed wheel."""
    return Path(__file__).resolve().parent.parent


def default_dockerfile(backend: str) -> Path:
    """docker/<cpu|cuda|ascend>/Dockerfile of this checkout."""
    return project_root() / "docker" / DOCKER_DIRS[normalize_backend(backend)] / "Dockerfile"


def default_build_args(project_dir: Path | None = None) -> dict[str, str]:
    """VERSION, REVISION (git commit, "unknown" outside a checkout) and CREATED for the OCI labels."""
    from harness import __version__

    project_dir = project_dir or project_root()
    revision = "unknown"
    try:
        res = subprocess.run(
            ["git", "-C", str(project_dir), "rev-parse", "HEAD"], capture_output=True, text=True, timeout=10
        )
        if res.returncode == 0 and res.stdout.strip():
            revision = res.stdout.strip()
            dirty = subprocess.run(
                ["git", "-C", str(project_dir), "status", "--porcelain", "--untracked-files=no"],
                capture_output=True,
                text=True,
                timeout=10,
            )
            if dirty.returncode == 0 and dirty.stdout.strip():
                revision += "-dirty"
    except (OSError, subprocess.SubprocessError):
        pass
    created = dt.datetime.now(dt.timezone.utc).replace(microsecond=0).isoformat().replace("+00:00", "Z")
    return {"VERSION": __version__, "REVISION": revision, "CREATED": created}


def build_image(
    backend: str,
    tag: str,
    context_dir: Path | str,
    build_args: Mapping[str, str] | None = None,
    labels: Mapping[str, str] | None = None,
    *,
    dockerfile: Path | str | None = None,
    on_output: OutputCallback | None = None,
    nocache: bool = False,
    pull: bool = False,
    client: Any = None,
) -> ImageInfo:
    """Build docker/<backend>/Dockerfile with ``context_dir`` (a wheelhouse) as build context.

    ``build_args`` are merged over :func:`default_build_args`; ``labels`` are added to the image on
    top of the Dockerfile's OCI labels. Build output is streamed line by line to ``on_output``.
    ``pull=False`` by default: air-gapped hosts have no registry; BASE_IMAGE must then be local.
    """
    docker = _docker()
    backend = normalize_backend(backend)
    context = Path(context_dir).resolve()
    if not context.is_dir():
        raise ContainerError(
            f"build context {context} does not exist: fill it with: bash docker/wheelhouse.sh {DOCKER_DIRS[backend]}"
        )
    dockerfile_path = Path(dockerfile).resolve() if dockerfile else default_dockerfile(backend)
    if not dockerfile_path.is_file():
        raise ContainerError(f"no Dockerfile at {dockerfile_path}: pass dockerfile= (docker/<backend>/Dockerfile)")
    args = {**default_build_args(), **(build_args or {})}
    all_labels = {BACKEND_LABEL: backend, **(labels or {})}
    client = client or get_client(timeout_s=3600)
    emit = on_output or (lambda line: None)
    image_id: str | None = None
    try:
        stream = client.api.build(
            path=str(context),
            dockerfile=str(dockerfile_path),
            tag=tag,
            buildargs=args,
            labels=all_labels,
            rm=True,
            forcerm=True,
            nocache=nocache,
            pull=pull,
            decode=True,
        )
        for chunk in stream:
            if "error" in chunk:
                detail = (chunk.get("errorDetail") or {}).get("message") or chunk["error"]
                raise ContainerError(f"docker build of {tag} failed: {str(detail).strip().splitlines()[-1]}")
            if "stream" in chunk:
                for line in str(chunk["stream"]).splitlines():
                    if line.strip():
                        emit(line)
            aux = chunk.get("aux")
            if isinstance(aux, dict) and aux.get("ID"):
                image_id = aux["ID"]
    except docker.errors.APIError as exc:
        raise ContainerError(f"docker build of {tag} failed: {exc.explanation or exc}") from exc
    info = image_info(tag, client)
    if image_id and info.id != image_id:  # pragma: no cover - would mean the tag moved under us
        raise ContainerError(f"built image {image_id} but {tag} points to {info.id}")
    return info


# --- path mapping ----------------------------------------------------------------------------------------


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


def container_spec(
    image: str,
    command: Sequence[str],
    *,
    backend: str = "cpu",
    mounts: Mounts | None = None,
    entrypoint: Sequence[str] | None = None,
    memory: str | int = "8g",
    pids: int = 1024,
    cpus: float | None = None,
    cpuset: str | None = None,
    gpus: Sequence[str] | None = None,
    npu_devices: Sequence[int] | None = None,
    env: Mapping[str, str] | None = None,
    user: str | None = None,
    shm_size: str | None = None,
    ipc_host: bool = False,
    tmpfs: Mapping[str, str] | None = None,
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
        "tmpfs": dict(tmpfs or DEFAULT_TMPFS),
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
    if ipc_host:
        spec["ipc_mode"] = "host"
    else:
        spec["shm_size"] = shm_size or DEFAULT_SHM_SIZE
    return spec


def _host_gid(path: str) -> int | None:
    try:
        return os.stat(path).st_gid
    except OSError:
        return None


# --- run ----------------------------------------------------------------------------------------------


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
    memory: str | int = "8g",
    pids: int = 1024,
    cpus: float | None = None,
    cpuset: str | None = None,
    gpus: Sequence[str] | None = None,
    npu_devices: Sequence[int] | None = None,
    env: Mapping[str, str] | None = None,
    user: str | None = None,
    shm_size: str | None = None,
    ipc_host: bool = False,
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
        entrypoint=entrypoint,
        memory=memory,
        pids=pids,
        cpus=cpus,
        cpuset=cpuset,
        gpus=gpus,
        npu_devices=npu_devices,
        env={
            "HARNESS_IMAGE_ID": info.id,
            **({"HARNESS_IMAGE_DIGEST": info.digest} if info.digest else {}),
            **(env or {}),
        },
        user=user,
        shm_size=shm_size,
        ipc_host=ipc_host,
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
    timeout_s: float | None = None,
    memory: str | int = "8g",
    pids: int = 1024,
    cpus: float | None = None,
    cpuset: str | None = None,
    gpus: Sequence[str] | None = None,
    npu_devices: Sequence[int] | None = None,
    env: Mapping[str, str] | None = None,
    on_output: OutputCallback | None = None,
    cwd: Path | None = None,
    client: Any = None,
    **kwargs: Any,
) -> ContainerRun:
    """Run ``harness <harness_args>`` in ``image`` with the suite, solutions and out folders bound.

    Host paths in ``harness_args`` are rewritten to /suite, /solutions and /out
    (:func:`map_harness_args`); everything else is :func:`run_container`.
    """
    args = map_harness_args(harness_args, mounts, cwd=cwd)
    return run_container(
        image,
        args,
        backend=backend,
        mounts=mounts,
        timeout_s=timeout_s,
        memory=memory,
        pids=pids,
        cpus=cpus,
        cpuset=cpuset,
        gpus=gpus,
        npu_devices=npu_devices,
        env=env,
        on_output=on_output,
        client=client,
        **kwargs,
    )


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


def describe_isolation(spec: Mapping[str, Any]) -> list[str]:
    """Human-readable lines on what a spec enforces (for --dry-run style output and docs)."""
    lines = [
        f"network: {spec.get('network_mode')}",
        f"root fs read-only: {spec.get('read_only')}",
        "tmpfs: " + ", ".join(f"{k} ({v})" for k, v in (spec.get("tmpfs") or {}).items()),
        f"memory: {spec.get('mem_limit')} bytes, pids: {spec.get('pids_limit')}",
        f"user: {spec.get('user')}, capabilities dropped: {spec.get('cap_drop')}",
    ]
    lines += [f"mount: {host} -> {m['bind']} ({m['mode']})" for host, m in (spec.get("volumes") or {}).items()]
    return lines


__all__ = [
    "PATH_OPTIONS",
    "BACKEND_LABEL",
    "CONTAINER_OUT",
    "CONTAINER_SOLUTIONS",
    "CONTAINER_SUITE",
    "DEFAULT_IMAGES",
    "MANAGED_LABEL",
    "ContainerError",
    "ContainerRun",
    "ImageInfo",
    "Mounts",
    "build_image",
    "container_spec",
    "default_build_args",
    "engine_available",
    "get_client",
    "image_info",
    "managed_containers",
    "map_harness_args",
    "remove_leftovers",
    "run_container",
    "run_harness",
]
