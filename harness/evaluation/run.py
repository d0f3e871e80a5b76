"""`harness run` as three steps: plan (check everything, write nothing), execute (journal and
checkpoints as cases finish), write (the final artifacts and the eval report).

Every finished case is appended to the journal and result.json is rewritten (marked incomplete)
after it, so a killed run still leaves a valid partial result. Nothing here prints: the caller
gets a `RunReport` and an observer hears the progress (the CLI draws both).
"""

from __future__ import annotations

import dataclasses
import datetime as dt
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from harness.artifacts.payloads import leaderboard_payload, run_payload
from harness.artifacts.provenance import host_environment
from harness.artifacts.writing import write_artifact
from harness.errors import BadInput, ExitCode
from harness.evaluation.evaluate import EvalConfig
from harness.evaluation.journal import JOURNAL_NAME, Journal, read_journal, resume_settings
from harness.evaluation.runner import BackendRun, Observer
from harness.results import CaseResult
from harness.suite.cases import Case, discover
from harness.timing import TimingConfig

RESULT_NAME = "result.json"
LEADERBOARD_NAME = "leaderboard.json"
BACKENDS = ("cpu", "gpu", "npu")


@dataclass(frozen=True)
class RunOptions:
    """What a run was asked for. The options that define it (`SAVED`) go into the journal's header,
    and ``--resume`` rebuilds the run from them."""

    solutions: Path | None = None
    suite: Path = Path("benchmark")
    backend: str = "cpu"  # cpu | gpu | npu | all
    tiers: tuple[str, ...] = ()
    names: tuple[str, ...] = ()
    keyword: str | None = None
    devices: str | None = None  # "0,1"
    pass_n: int = 1
    shard: str | None = None  # "I/N": part I of N of the selected cases (harness.suite.shards)
    timeout_s: float = 300.0
    trials: int = 3
    seed: int | None = None
    budget_ms: float = 400.0
    rounds: int = 10
    flush_cache: bool | None = None
    isolation: str = "process"
    output_limit: int = 16384
    strict: tuple[str, ...] = ()
    build_cache: str | None = None  # resolved folder, or None for no cache (not saved: a host path)
    out: Path | None = None
    resume: Path | None = None
    overwrite: bool = False
    baseline: Path | None = None
    eval_report: Path | None = None
    threshold: float = 5.0
    alpha: float = 0.01
    runtime_note: str | None = None
    # Where the cases run: this machine's devices, or one `harness eval` per case on a Ray cluster
    # (harness.evaluation.ray_executor, docs/scaling.md); not saved, so a run can resume either way.
    executor: str = "local"  # local | ray
    ray_address: str | None = None
    ray_ship_files: bool = False
    ray_cpus: float = 1.0
    runtime: str = "local"  # what each Ray task passes to its `harness eval --runtime`
    image: str | None = None

    SAVED = (
        "backend", "solutions", "suite", "tiers", "names", "keyword", "devices", "pass_n", "shard", "timeout_s",
        "trials", "seed", "budget_ms", "rounds", "flush_cache", "isolation", "output_limit", "strict",
    )  # fmt: skip

    def saved(self) -> dict[str, Any]:
        """The options that define the run, as JSON (the journal's header and the provenance)."""
        out: dict[str, Any] = {}
        for key in self.SAVED:
            value = getattr(self, key)
            out[key] = str(value) if isinstance(value, Path) else list(value) if isinstance(value, tuple) else value
        return out

    def restored(self, saved: dict[str, Any], path: Path) -> RunOptions:
        """These options with the run-defining ones taken from a journal's header (``--resume``)."""
        changes: dict[str, Any] = {}
        for key in self.SAVED:
            if key not in saved:
                continue
            value = saved[key]
            if key in ("suite", "solutions"):
                value = Path(value)
            elif isinstance(value, list):
                value = tuple(value)
            changes[key] = value
        try:
            return dataclasses.replace(self, **changes)
        except (TypeError, ValueError) as exc:
            raise BadInput(f"{path}: the run's saved options are unusable ({exc}); start the run again") from exc

    def eval_config(self) -> EvalConfig:
        """How each case is evaluated (the first backend's view for ``all``)."""
        timing = TimingConfig(budget_ms=self.budget_ms, rounds=self.rounds, flush_cache=self.flush_cache)
        return EvalConfig(
            backend=self.backend if self.backend != "all" else "cpu",
            trials=self.trials,
            timeout_s=self.timeout_s,
            seed=self.seed,
            timing=timing,
            output_limit_bytes=self.output_limit,
            isolation=self.isolation,
            build_cache=self.build_cache,
            strict=tuple(self.strict),
        )


@dataclass
class RunPlan:
    """A checked run: where it writes, what it runs, what a resumed run already has."""

    options: RunOptions
    out: Path
    cases: list[Case]
    backends: list[str]
    config: EvalConfig
    devices: list[str] | None
    done: list[CaseResult] = field(default_factory=list)
    run_seed: int | None = None
    resumed: bool = False


@dataclass
class RunReport:
    """What a run did, for the caller to show: results, the final payload, what to warn about."""

    plan: RunPlan
    results: list[CaseResult]
    payload: dict[str, Any]
    backends: list[BackendRun]
    interrupted: bool
    journal_repairs: int = 0
    eval_report: dict[str, Any] | None = None
    eval_report_path: Path | None = None

    @property
    def out(self) -> Path:
        return self.plan.out

    @property
    def exit_code(self) -> int:
        if self.interrupted:
            return ExitCode.INTERRUPTED
        if any(r.status in ("fail", "error", "timeout") for r in self.results):
            return ExitCode.CANDIDATE_FAILED
        return ExitCode.OK


def plan_run(options: RunOptions) -> RunPlan:
    """Check the options, the suite, the solutions and the devices; nothing is written yet."""
    if options.baseline:
        from harness.artifacts.reading import load_artifact

        load_artifact(Path(options.baseline), ["run_result"])  # bad input fails before any case runs
    elif options.eval_report:
        raise BadInput("--eval-report needs --baseline OLD_RESULT.json to compare against")
    done: list[CaseResult] = []
    run_seed = None
    if options.resume:
        out = Path(options.resume)
        state = read_journal(out / JOURNAL_NAME)
        saved, run_seed = resume_settings(state, out / JOURNAL_NAME)
        options = dataclasses.replace(options.restored(saved, out / JOURNAL_NAME), out=out)
        done = state.results
    else:
        if not options.solutions:
            raise BadInput("--solutions DIR is required (e.g. --solutions benchmark/solutions/cpu)")
        out = Path(options.out or Path("results") / dt.datetime.now().strftime("%Y%m%d-%H%M%S"))
        if (out / JOURNAL_NAME).exists() and not options.overwrite:
            raise BadInput(
                f"{out} already holds a run; continue it with --resume {out}, or pass --overwrite to start afresh"
            )
    assert options.solutions is not None
    if not options.solutions.is_dir():
        raise BadInput(f"solutions folder {options.solutions} does not exist; pass --solutions DIR")
    backends = list(BACKENDS) if options.backend == "all" else [options.backend]
    cases = discover(options.suite, options.tiers, options.names, options.keyword)
    if not cases:
        raise BadInput(f"no case in {options.suite} matches the filters given")
    if options.shard:
        from harness.suite.shards import select_shard

        cases = select_shard(cases, options.shard, options.suite, options.backend)
    devices = [d.strip() for d in options.devices.split(",")] if options.devices else None
    return RunPlan(
        options=options,
        out=out,
        cases=cases,
        backends=backends,
        config=options.eval_config(),
        devices=devices,
        done=done,
        run_seed=run_seed,
        resumed=bool(options.resume),
    )


def execute_run(
    plan: RunPlan,
    make_provenance: Callable[[dict[str, Any], Path | None, str | None], dict[str, Any]],
    observer: Observer | None = None,
) -> RunReport:
    """Run the plan: journal every finished case, rewrite the partial result after each, write the
    final artifacts (and the eval report against ``--baseline``)."""
    from harness.evaluation.file_watch import FileWatch, default_watch_roots
    from harness.evaluation.runner import Runner, needs_file_watch

    options, out = plan.options, plan.out
    assert options.solutions is not None
    if plan.config.isolation == "process" and options.executor != "ray":
        from harness.evaluation.forkserver import start_forkserver

        start_forkserver()  # it imports torch while this process checks backends and devices
    runner = Runner(plan.config, options.solutions, pass_n=options.pass_n, devices=plan.devices, observer=observer)
    if plan.run_seed is not None:
        runner.run_seed = plan.run_seed
    journal = (
        Journal(out / JOURNAL_NAME)
        if plan.resumed
        else Journal.create(
            out / JOURNAL_NAME,
            {"options": options.saved(), "run_seed": runner.run_seed, "cases": [c.name for c in plan.cases]},
        )
    )
    if needs_file_watch(plan.config.isolation):
        # No Landlock here: writes outside scratch folders can only be detected (and partly undone).
        runner.watch = FileWatch(default_watch_roots(options.suite, options.solutions, out))
    provenance = make_provenance(
        {**plan.config.to_json(), **options.saved(), "run_seed": runner.run_seed},
        options.suite,
        options.runtime_note,
    )
    environment = host_environment()
    finished: list[CaseResult] = list(plan.done)

    def checkpoint(result: CaseResult) -> None:
        journal.append(result)
        finished.append(result)
        _write(out, finished, provenance, environment, options, [], complete=False, interrupted=False)

    runner.on_result = checkpoint
    interrupted = False
    backend_runs: list[BackendRun] = []
    try:
        if options.executor == "ray":
            from harness.evaluation.ray_executor import run_runner_on_ray

            fields = dataclasses.asdict(options)
            strict = options.backend != "all"
            outcome = run_runner_on_ray(runner, plan.backends, plan.cases, plan.done, fields, strict)
        else:
            outcome = runner.run(plan.backends, plan.cases, done=plan.done, strict_backend=options.backend != "all")
        interrupted = outcome.interrupted
        backend_runs = outcome.backends
    except KeyboardInterrupt:
        runner.stop()
        interrupted = True
    journal.close()
    environment["backends"] = {b.backend: b.environment for b in backend_runs}
    order = {(c.tier, c.name): i for i, c in enumerate(plan.cases)}
    finished.sort(key=lambda r: (r.backend, order.get((r.tier, r.name), 0)))
    payload = _write(
        out, finished, provenance, environment, options, [b.to_json() for b in backend_runs],
        complete=not interrupted, interrupted=interrupted,
    )  # fmt: skip
    report = RunReport(plan, finished, payload, backend_runs, interrupted, journal.repairs)
    if options.baseline and not interrupted:
        from harness.analysis.eval_report import write_eval_report

        report.eval_report_path = Path(options.eval_report or out / "eval-report.json")
        report.eval_report = write_eval_report(
            Path(options.baseline), payload, report.eval_report_path, options.threshold, options.alpha
        )
    return report


def _write(
    out: Path,
    results: list[CaseResult],
    provenance: dict[str, Any],
    environment: dict[str, Any],
    options: RunOptions,
    backends: list[dict[str, Any]],
    *,
    complete: bool,
    interrupted: bool,
) -> dict[str, Any]:
    payload = run_payload(
        results, provenance, environment, complete=complete, interrupted=interrupted,
        suite=str(options.suite), solutions=str(options.solutions), backends=backends,
    )  # fmt: skip
    write_artifact(out / RESULT_NAME, payload)
    write_artifact(out / LEADERBOARD_NAME, leaderboard_payload(payload))
    return payload
