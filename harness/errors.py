"""Typed errors and the exit codes the CLI maps them to.

Library code raises these; only `harness.cli` prints them and chooses the exit code, so that every
entry point (CLI, tests, an agent importing the library) sees the same one-line messages.
"""

from __future__ import annotations

from enum import IntEnum


class ExitCode(IntEnum):
    """Documented process exit codes (README, "Exit codes")."""

    OK = 0
    CANDIDATE_FAILED = 1  # the command ran; at least one candidate is not `pass` (or a gate tripped)
    BAD_INPUT = 2  # usage error, malformed case/solution/journal/JSON file, missing path
    ENVIRONMENT = 3  # backend, device, Docker engine or image unavailable
    VALIDATION = 4  # an artifact does not match its schema
    GATE = 5  # `harness compare --fail-on`: a verdict named there occurred
    INTERNAL = 70  # a bug in the harness itself (EX_SOFTWARE); rerun with --debug for the traceback
    INTERRUPTED = 130  # Ctrl-C / SIGTERM: partial results were written and marked incomplete


class HarnessError(Exception):
    """Base class: a one-line message that says what is wrong and how to fix it."""

    exit_code: ExitCode = ExitCode.BAD_INPUT


class BadInput(HarnessError):
    """The user gave something unusable: a path, a case file, an option value, a JSON file."""

    exit_code = ExitCode.BAD_INPUT


class CaseLoadError(BadInput):
    """A case or solution file cannot be imported or does not follow the contract."""


class EnvironmentUnavailable(HarnessError):
    """The requested backend, device or container engine is not usable on this machine."""

    exit_code = ExitCode.ENVIRONMENT


class ValidationFailed(HarnessError):
    """An artifact does not match its JSON Schema."""

    exit_code = ExitCode.VALIDATION

    def __init__(self, message: str, errors: list[str] | None = None) -> None:
        super().__init__(message)
        self.errors = errors or []
