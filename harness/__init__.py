"""kernel-harness: checks that a candidate kernel computes the reference's function and measures its speedup.

The library API (the `harness` command line is built on the same functions)::

    from harness import evaluate_case, run_suite, validate_artifact, compare_results

    result = evaluate_case("benchmark/t1/relu.py", "my_relu.py", backend="cpu")
    result.status, result.speedup, result.score          # a harness.results.CaseResult

    report = run_suite("benchmark/solutions/cpu", out="results/cpu")  # journal, result.json, leaderboard.json
    report.results, report.payload["summary"]

    validate_artifact("results/cpu/result.json").ok      # needs only jsonschema
    compare_results("main/result.json", "pr/result.json").counts()   # verdict -> number of cases

Importing `harness` is cheap: everything heavy (torch, the workers) is imported when a function runs.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

if TYPE_CHECKING:
    from harness.analysis.compare import Comparison
    from harness.artifacts.schemas import Validation
    from harness.evaluation.run import RunReport
    from harness.results import CaseResult

__all__ = ["__version__", "compare_results", "evaluate_case", "run_suite", "validate_artifact"]


def evaluate_case(
    case_file: str | Path,
    solution_file: str | Path,
    backend: str = "cpu",
    *,
    device: str | None = None,
    **options: Any,
) -> CaseResult:
    """Evaluate one candidate file (defining ``ModelNew``) against one case file, as `harness eval` does.

    ``options`` are `harness.evaluation.evaluate.EvalConfig` fields (``trials``, ``timeout_s``,
    ``seed``, ``isolation``, ...); ``budget_ms``, ``rounds`` and ``flush_cache`` set the timing.
    """
    import dataclasses

    from harness.errors import BadInput
    from harness.evaluation.evaluate import EvalConfig, Task
    from harness.evaluation.runner import evaluate_single
    from harness.suite.cases import case_from_file
    from harness.timing import TimingConfig

    timing_keys = {f.name for f in dataclasses.fields(TimingConfig)}
    timing = TimingConfig(**{k: options.pop(k) for k in list(options) if k in timing_keys})
    config = EvalConfig(backend=backend, timing=timing, **options)
    solution = Path(solution_file)
    if not solution.is_file():
        raise BadInput(f"solution file {solution} does not exist")
    result, _ = evaluate_single(Task(case_from_file(Path(case_file)), solution, backend), config, device)
    return result


def run_suite(solutions: str | Path, suite: str | Path = "benchmark", **options: Any) -> RunReport:
    """Evaluate a solution set on a suite, as `harness run` does (journal, result.json, leaderboard.json).

    ``options`` are `harness.evaluation.run.RunOptions` fields (``backend``, ``tiers``, ``names``,
    ``out``, ``trials``, ``budget_ms``, ...). Returns the `RunReport` (results, payload, warnings).
    """
    from harness.cli.common import provenance
    from harness.evaluation.run import RunOptions, execute_run, plan_run

    for key in ("tiers", "names", "strict"):
        if key in options:
            options[key] = tuple(options[key])
    run = RunOptions(solutions=Path(solutions), suite=Path(suite), **options)
    return execute_run(plan_run(run), provenance)


def validate_artifact(path: str | Path) -> Validation:
    """Check one artifact file against the schema it names in ``"$schema"`` (needs only jsonschema)."""
    from harness.artifacts.schemas import validate_file

    return validate_file(Path(path))


def compare_results(baseline: str | Path, candidate: str | Path, **options: Any) -> Comparison:
    """Per-case A/B verdicts of two run results (``threshold_pct``, ``alpha``, ... as `harness compare`)."""
    from harness.analysis.compare import compare_runs
    from harness.artifacts.reading import load_artifact

    old = load_artifact(Path(baseline), ["run_result"])
    new = load_artifact(Path(candidate), ["run_result"])
    return compare_runs(old.payload, new.payload, **options)
