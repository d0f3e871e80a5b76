"""The one place where an attempt is evaluated: the same isolated evaluation as `harness eval`.

Every attempt goes through `evaluate_single` (fresh reference and candidate worker processes,
Landlock or file watch, tamper guard, the supervisor's clock checks), so a model's code gets no
path around the checks a person's code gets. The file is evaluated from a private copy: where
Landlock is missing the harness watches the solution's folder for writes, and other conversations
write their attempt files next to it. Paths of the copy in the result are put back to the attempt's.

Evaluations are serialized here (one lock per evaluator, one evaluator per device), so two timings
never overlap whatever thread asks.
"""

from __future__ import annotations

import shutil
import tempfile
import threading
from pathlib import Path
from typing import Any

from harness.agent.seams import Case, CaseResult, EvalConfig, Task, evaluate_single, get_backend


class AttemptEvaluator:
    """Evaluates attempt files on one backend and device, one at a time."""

    def __init__(self, config: EvalConfig, backend: str, device_index: str | None = None) -> None:
        self.config = config
        self.backend = backend
        self.device: str | None = None
        if device_index is not None:
            self.device = get_backend(backend).select_devices([device_index])[0][0]
        self.environment: dict[str, Any] = {}  # the device's environment, from the first evaluation
        self._lock = threading.Lock()

    def check_backend(self) -> None:
        """EnvironmentUnavailable now, before any model is asked, when the backend cannot run."""
        get_backend(self.backend).select_devices(None)

    def evaluate(self, case: Case, solution: Path, attempt: int = 0) -> CaseResult:
        """The case result of ``solution`` on ``case``, as `harness eval CASE SOLUTION` computes it."""
        with self._lock, tempfile.TemporaryDirectory(prefix="harness-agent-") as tmp:
            staged = Path(tmp) / f"{case.name}.py"
            shutil.copyfile(solution, staged)
            result, environment = evaluate_single(Task(case, staged, self.backend, attempt), self.config, self.device)
        self.environment.update(environment)
        _repoint(result, str(staged), str(solution))
        return result


def _repoint(result: CaseResult, staged: str, real: str) -> None:
    """Name the attempt file, not its private copy, in the result and the messages it carries."""
    result.solution_path = real
    result.reason = result.reason.replace(staged, real) if result.reason else result.reason
    result.stdout = result.stdout.replace(staged, real)
    result.stderr = result.stderr.replace(staged, real)
    if result.correctness and result.correctness.first_failure:
        result.correctness.first_failure = result.correctness.first_failure.replace(staged, real)
