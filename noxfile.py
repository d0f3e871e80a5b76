"""Nox sessions: tests, lint, benchmarks, and (see docker/) images and in-container runs.

Sessions run in the current interpreter (venv_backend="none"): `scripts/setup.sh` has installed the
pinned CPU torch build there, and a fresh virtualenv would have to install it again.
"""

from __future__ import annotations

import nox

nox.options.sessions = ["tests", "lint"]
nox.options.default_venv_backend = "none"


@nox.session(name="tests")
def tests(session: nox.Session) -> None:
    """The test suite (container tests skip themselves when no Docker engine answers)."""
    session.run("python", "-m", "pytest", "-q", *session.posargs, env={"TRITON_INTERPRET": "1"})


@nox.session(name="lint")
def lint(session: nox.Session) -> None:
    """ruff (style, imports, bugbear) and mypy (types) over the package."""
    session.run("python", "-m", "ruff", "check", "harness", "tests", "noxfile.py")
    session.run("python", "-m", "mypy", "harness")


@nox.session(name="bench-local")
def bench_local(session: nox.Session) -> None:
    """The bundled suite on the CPU backend in this interpreter (posargs go to `harness run`)."""
    args = session.posargs or ["--solutions", "benchmark/solutions/cpu", "--out", "results/cpu", "--overwrite"]
    session.run("python", "-m", "harness", "run", "--backend", "cpu", *args)
