"""The Docker engine client: the optional `docker` package, loaded lazily, and whether an engine answers."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from harness.errors import EnvironmentUnavailable

#: Label set on every container this module creates; tests and ``remove_leftovers`` find them by it.
MANAGED_LABEL = "dev.kernel-harness.managed"
BACKEND_LABEL = "dev.kernel-harness.backend"

OutputCallback = Callable[[str], None]

class ContainerError(EnvironmentUnavailable):
    """The container runtime cannot do what was asked. The message is one line and names the fix.

    A subclass of ``EnvironmentUnavailable`` so that the CLI maps it to exit code 3 (environment
    unavailable) like any other missing backend.
    """


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
