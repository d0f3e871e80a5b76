"""The backend images: their names, Dockerfiles and build arguments, building one, and what is installed."""

from __future__ import annotations

import datetime as dt
import subprocess
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from harness.containers.client import BACKEND_LABEL, ContainerError, OutputCallback, _docker, get_client

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




def normalize_backend(backend: str) -> str:
    """cpu / gpu / npu (the harness's names); cuda and ascend are accepted as aliases."""
    name = _ALIASES.get(backend, backend)
    if name not in DOCKER_DIRS:
        raise ContainerError(f"unknown backend {backend!r}: use one of cpu, gpu, npu")
    return name








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





def project_root() -> Path:
    """The source checkout this module runs from (holds docker/); not meaningful in an installed wheel."""
    return Path(__file__).resolve().parents[2]


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

