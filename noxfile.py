"""Nox sessions: tests, lint, images per backend, and the suite run inside them.

Sessions run in the current interpreter (venv_backend="none"): `scripts/setup.sh` has installed the
pinned CPU torch build there, and a fresh virtualenv would have to install it again. Image sessions
build from a wheelhouse made on the host (`docker/wheelhouse.sh`), so `docker build` never needs a
package index — the same path an air-gapped GPU/NPU site uses.
"""

from __future__ import annotations

import datetime as dt
import os
import subprocess
from pathlib import Path

import nox

# One list of image names and Dockerfile folders: the harness's own (the runtime finds images by them).
from harness.containers.images import DEFAULT_IMAGES as IMAGES
from harness.containers.images import DOCKER_DIRS  # backend -> docker/<dir>/Dockerfile

nox.options.sessions = ["tests", "lint"]
nox.options.default_venv_backend = "none"

ROOT = Path(__file__).resolve().parent
CPU_BASE = os.environ.get("HARNESS_BASE_IMAGE", "kernel-harness/base:bookworm")  # or python:3.11-slim-bookworm
DEFAULT_SOLUTIONS = {
    "cpu": "benchmark/solutions/cpu",
    "gpu": "benchmark/solutions/triton",
    "npu": "benchmark/solutions/reference",
}


@nox.session(name="tests")
def tests(session: nox.Session) -> None:
    """The test suite (container tests skip themselves when no Docker engine or image is there)."""
    session.run("python", "-m", "pytest", "-q", *session.posargs, env={"TRITON_INTERPRET": "1"})


@nox.session(name="tests-container")
def tests_container(session: nox.Session) -> None:
    """Only the container integration tests; they fail instead of skipping when Docker is missing."""
    session.run(
        "python", "-m", "pytest", "-q", "-m", "container", "tests/container", *session.posargs,
        env={"HARNESS_REQUIRE_CONTAINER": "1"},
    )  # fmt: skip


@nox.session(name="lint")
def lint(session: nox.Session) -> None:
    """ruff (style, imports, bugbear) and mypy (types) over the package."""
    session.run("python", "-m", "ruff", "check", "harness", "tests", "noxfile.py")
    session.run("python", "-m", "mypy", "harness")


def _git_revision() -> str:
    res = subprocess.run(["git", "-C", str(ROOT), "rev-parse", "HEAD"], capture_output=True, text=True, check=False)
    return res.stdout.strip() if res.returncode == 0 else "unknown"


def _image(session: nox.Session, backend: str, base_image: str | None = None) -> None:
    folder = DOCKER_DIRS[backend]
    session.run("bash", "docker/wheelhouse.sh", folder, external=True)
    version = session.run(
        "python", "-c", "import harness; print(harness.__version__)", silent=True, external=True
    )
    created = dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
    cmd = ["docker", "build", "-f", f"docker/{folder}/Dockerfile", "-t", IMAGES[backend]]
    cmd += ["--build-arg", f"VERSION={str(version).strip()}", "--build-arg", f"REVISION={_git_revision()}"]
    cmd += ["--build-arg", f"CREATED={created}"]
    if base_image:
        cmd += ["--build-arg", f"BASE_IMAGE={base_image}"]
    session.run(*cmd, *session.posargs, f".cache/wheelhouse/{folder}", external=True)


@nox.session(name="base-image")
def base_image(session: nox.Session) -> None:
    """A minimal Debian bookworm base image from Debian packages (debootstrap + docker import)."""
    session.run("bash", "docker/base/build-base.sh", *session.posargs, external=True)


@nox.session(name="image-cpu")
def image_cpu(session: nox.Session) -> None:
    """The CPU image (on the debootstrap base unless HARNESS_BASE_IMAGE names another)."""
    if CPU_BASE == "kernel-harness/base:bookworm":
        session.run("bash", "docker/base/build-base.sh", external=True)
    _image(session, "cpu", CPU_BASE)


@nox.session(name="image-gpu")
def image_gpu(session: nox.Session) -> None:
    """The CUDA image (FROM a PyTorch CUDA devel image; build on a host that can pull or has it)."""
    _image(session, "gpu")


@nox.session(name="image-npu")
def image_npu(session: nox.Session) -> None:
    """The Ascend image (FROM a CANN image with torch_npu and triton-ascend)."""
    _image(session, "npu")


def _bench(session: nox.Session, backend: str) -> None:
    args = session.posargs or [
        "--solutions", DEFAULT_SOLUTIONS[backend], "--out", f"results/{backend}-docker", "--overwrite",
    ]  # fmt: skip
    session.run("python", "-m", "harness", "run", "--runtime", "docker", "--backend", backend, *args)


@nox.session(name="bench-cpu")
def bench_cpu(session: nox.Session) -> None:
    """The bundled suite inside the CPU image (posargs replace the default `harness run` arguments)."""
    _bench(session, "cpu")


@nox.session(name="bench-gpu")
def bench_gpu(session: nox.Session) -> None:
    """The bundled suite inside the CUDA image on this host's GPUs."""
    _bench(session, "gpu")


@nox.session(name="bench-npu")
def bench_npu(session: nox.Session) -> None:
    """The bundled suite inside the Ascend image on this host's NPUs."""
    _bench(session, "npu")


@nox.session(name="bench-local")
def bench_local(session: nox.Session) -> None:
    """The bundled suite on the CPU backend in this interpreter, no container (posargs go to `harness run`)."""
    args = session.posargs or ["--solutions", "benchmark/solutions/cpu", "--out", "results/cpu", "--overwrite"]
    session.run("python", "-m", "harness", "run", "--backend", "cpu", *args)
