"""Every contact of `harness.agent` with the rest of the package, in one place.

The agent loop builds on the evaluation path, the scores and the artifact writers of the harness,
and nothing else: every other module of `harness.agent` imports what it needs from here. When the
package is reorganised (harness/evaluation/, harness/artifacts/, ...), only the imports below move.
None of these imports torch, so `harness --help` stays fast.

Seams (what is used, and why):
- ``evaluate_single``: one isolated evaluation, exactly what `harness eval` runs for a candidate.
- ``EvalConfig``, ``Task``, ``TimingConfig``: how an evaluation is configured.
- ``skipped``: the result of a case that cannot run on a backend.
- ``get_backend``: picks the device an index names.
- ``default_build_cache``: where compiled kernels of a solution file are kept between runs.
- ``Case``, ``discover``, ``solution_paths``: the suite and its solution sets.
- ``CaseResult``, ``apply_score``, ``summarize``: one result, its score, the run summary (fast_p, geomean).
- ``shape_label``: how a result names one shape of a case of several (feedback lists each one's times).
- ``envelope``, ``write_artifact``, ``write_atomic``, ``dumps``: validated, atomic artifact writes.
- ``Journal``, ``parse_lines``: the fsynced, tamper-repairing line writer of `harness run` and its
  reader, for attempts.jsonl.
- ``run_payload``, ``leaderboard_payload``, ``load_artifact``: run results and leaderboards.
- `harness.cli.run.run_and_report` (imported where used, the CLI imports this package): `harness run`
  itself, used to re-score team submissions for the leaderboard.
- ``host_environment``, ``command_line``, ``git_commit``, ``__version__``: provenance.
- ``ProgressObserver``: the progress bar of `harness run`, whose bar `harness agent` shows per case.
- ``run_options``: the click options of `harness run` (suite filters, evaluation options) that
  `harness agent` and `harness leaderboard` take unchanged.
- ``BadInput``, ``EnvironmentUnavailable``, ``HarnessError``, ``ExitCode``: typed errors and exit codes.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from harness import __version__
from harness.artifacts.payloads import leaderboard_payload, run_payload
from harness.artifacts.provenance import command_line, git_commit, host_environment
from harness.artifacts.reading import load_artifact
from harness.artifacts.writing import dumps, envelope, write_artifact, write_atomic
from harness.backends import get_backend
from harness.errors import BadInput, EnvironmentUnavailable, ExitCode, HarnessError
from harness.evaluation.build_cache import default_root as default_build_cache
from harness.evaluation.evaluate import EvalConfig, Task
from harness.evaluation.journal import Journal, parse_lines
from harness.evaluation.runner import evaluate_single, skipped
from harness.render.console import ProgressObserver
from harness.results import CaseResult
from harness.scoring import apply_score, summarize
from harness.suite.cases import Case, discover, solution_paths
from harness.suite.shapes import shape_label
from harness.timing import TimingConfig

__all__ = [
    "BadInput",
    "Case",
    "CaseResult",
    "EnvironmentUnavailable",
    "EvalConfig",
    "ExitCode",
    "HarnessError",
    "Journal",
    "parse_lines",
    "ProgressObserver",
    "Task",
    "TimingConfig",
    "__version__",
    "apply_score",
    "command_line",
    "default_build_cache",
    "discover",
    "dumps",
    "envelope",
    "evaluate_single",
    "get_backend",
    "git_commit",
    "host_environment",
    "leaderboard_payload",
    "load_artifact",
    "run_options",
    "run_payload",
    "shape_label",
    "skipped",
    "solution_paths",
    "summarize",
    "write_artifact",
    "write_atomic",
]


def run_options(names: Sequence[str]) -> list[Any]:
    """The click options of `harness run` called ``names``, in that order.

    Imported here, late (when a command is parsed): harness.cli imports the command modules while
    it registers them, so they cannot import it at import time.
    """
    from harness.cli.run import run_cmd

    params = {p.name: p for p in run_cmd.params}
    return [params[name] for name in names]
