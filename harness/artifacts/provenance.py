"""Facts about the machine and software stack recorded in every artifact."""

from __future__ import annotations

import getpass
import importlib.metadata
import os
import platform
import socket
import subprocess
import sys
from pathlib import Path
from typing import Any

from harness import __version__


def package_version(name: str) -> str | None:
    try:
        return importlib.metadata.version(name)
    except importlib.metadata.PackageNotFoundError:
        return None


def host_environment() -> dict[str, Any]:
    """Python, OS, CPU and library versions; never imports torch (cheap, works without it)."""
    return {
        "python": platform.python_version(),
        "implementation": platform.python_implementation(),
        "platform": platform.platform(),
        "machine": platform.machine(),
        "hostname": socket.gethostname(),
        "user": _safe_user(),
        "cpu_count": os.cpu_count(),
        "harness": __version__,
        "packages": {
            name: package_version(name)
            for name in ("torch", "triton", "numpy", "scipy", "jsonschema", "torch_npu", "triton-ascend")
        },
        "omp_num_threads": os.environ.get("OMP_NUM_THREADS"),
        "in_container": Path("/.dockerenv").exists() or bool(os.environ.get("HARNESS_IN_CONTAINER")),
        "container_image": os.environ.get("HARNESS_IMAGE"),
    }


def _safe_user() -> str | None:
    try:
        return getpass.getuser()
    except Exception:
        return None


def git_commit(path: Path) -> str | None:
    """The commit of the git checkout holding ``path`` (the suite), when there is one."""
    try:
        out = subprocess.run(
            ["git", "-C", str(path), "rev-parse", "HEAD"], capture_output=True, text=True, timeout=5, check=False
        )
    except (OSError, subprocess.SubprocessError):
        return None
    return out.stdout.strip() or None if out.returncode == 0 else None


def command_line() -> list[str]:
    return [Path(sys.argv[0]).name, *sys.argv[1:]]
