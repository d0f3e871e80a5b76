"""`harness run` as three steps: plan (check everything, write nothing), execute (journal and
checkpoints as cases finish), write (the final artifacts and the eval report).

Every finished case is appended to the journal and result.json is rewritten (marked incomplete)
after it, so a killed run still leaves a valid partial result. Nothing here prints: the caller
gets a `RunReport` and an observer hears the progress (the CLI draws both).
"""

from __future__ import annotations

import contextlib
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
from harness.evaluation.runner import BackendRun, Observer, Runner, needs_file_watch, select_backends
from harness.results import CaseResult
from harness.suite.cases import TIER_PATTERN, Case, discover, solution_paths
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
    # The options the user gave (not defaulted): with ``--resume`` a saved one given anew must agree
    # with the journal (``devices`` may change: the same run on another machine's devices).
    given: frozenset[str] = frozenset()

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
        """These options with the run-defining ones taken from a journal's header (``--resume``).

        An option given anew that differs from the journal's is refused (never silently dropped);
        ``devices`` given anew is kept.
        """
        changes: dict[str, Any] = {}
        for key in self.SAVED:
            if key not in saved or (key == "devices" and key in self.given):
                continue
            value = saved[key]
            if key in ("suite", "solutions") and value is not None:
                value = Path(value)
            elif isinstance(value, list):
                value = tuple(value)
            if key in self.given and not _same(key, getattr(self, key), value):
                flag = OPTION_FLAGS.get(key, "--" + key.replace("_", "-"))
                raise BadInput(
                    f"--resume {path.parent}: {flag} {_shown(getattr(self, key))} differs from the run's "
                    f"{_shown(value)} (a resumed run keeps its journal's options); drop {flag}, or start a new "
                    f"run with --out DIR"
                )
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


# The command-line flag of each saved option whose name differs from its flag.
OPTION_FLAGS = {
    "tiers": "--tier", "names": "--case", "keyword": "--filter", "timeout_s": "--timeout",
    "flush_cache": "--flush-cache/--warm-cache",
}  # fmt: skip


def _same(key: str, given: Any, saved: Any) -> bool:
    if key in ("suite", "solutions") and given is not None and saved is not None:
        return Path(given).expanduser().resolve() == Path(saved).expanduser().resolve()
    if isinstance(given, (tuple, list)) or isinstance(saved, (tuple, list)):
        return sorted(map(str, given or ())) == sorted(map(str, saved or ()))
    return bool(given == saved)


def _shown(value: Any) -> str:
    if isinstance(value, (tuple, list)):
        return ",".join(map(str, value)) or "(none)"
    return "(default)" if value is None else str(value)


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
    # Each backend with its devices (or why it is unavailable), checked before anything is written;
    # None with --executor ray, where the cluster decides.
    selected: list[BackendRun] | None = None
    warnings: list[str] = field(default_factory=list)  # e.g. solution files that match no case
    # Why the run would evaluate nothing (every case without a solution, or skipped), or None; the CLI
    # refuses such a run (exit 2) before anything is written, `harness leaderboard` scores it as zeros.
    nothing_to_evaluate: str | None = None


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
    def broken_cases(self) -> list[CaseResult]:
        """Results whose case file, not the candidate, is at fault."""
        return [r for r in self.results if r.case_error]

    @property
    def exit_code(self) -> int:
        if self.interrupted:
            return ExitCode.INTERRUPTED
        if self.broken_cases:
            return ExitCode.BAD_INPUT
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
        if options.out is not None and Path(options.out).resolve() != out.resolve():
            raise BadInput(f"--resume {out} continues the run in {out}; drop --out {options.out}")
        if options.overwrite:
            raise BadInput(f"--resume {out} continues a run and --overwrite starts afresh; pass one of them")
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
    devices = [d.strip() for d in options.devices.split(",")] if options.devices else None
    selected = None
    if options.executor != "ray":  # the backend and devices are checked before anything is written
        selected = select_backends(backends, devices, strict=options.backend != "all")
    warnings = unmatched_solutions(options.solutions, options.suite)
    # Judged on the whole selection: a shard whose part happens to hold only skipped cases still
    # writes its (empty) part, so that the merge of all parts is the whole run.
    nothing = None if options.resume else nothing_to_evaluate(options, cases, selected)
    if options.shard:
        from harness.suite.shards import select_shard

        cases = select_shard(cases, options.shard, options.suite, options.backend)
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
        selected=selected,
        warnings=warnings,
        nothing_to_evaluate=nothing,
    )


def nothing_to_evaluate(options: RunOptions, cases: list[Case], selected: list[BackendRun] | None) -> str | None:
    """Why no selected case has a candidate that could run on an available backend, or None."""
    assert options.solutions is not None
    with_candidate = [c for c in cases if solution_paths(options.solutions, c)]
    if not with_candidate:
        example = f"{options.solutions}/{cases[0].tier}/{cases[0].name}.py"
        return (
            f"nothing to evaluate: no file in {options.solutions} is a solution for the {len(cases)} selected "
            f"case(s) of {options.suite} (a solution is <solutions>/t<N>/<case>.py, e.g. {example})"
        )
    ran = [r.backend for r in selected if r.status == "ran"] if selected is not None else None
    if ran is not None and not any(c.skip_reason(b) is None for c in with_candidate for b in ran):
        reason = with_candidate[0].skip_reason(ran[0]) if ran else "no backend is available"
        return (
            f"nothing to evaluate: every selected case with a solution is skipped on {', '.join(ran) or 'any backend'}"
            f" ({with_candidate[0].name}: {reason}); pick a backend the cases run on (--backend)"
        )
    return None


def unmatched_solutions(solutions: Path, suite: Path) -> list[str]:
    """A warning for each solution file (or pass@N folder) of ``solutions`` that no case of ``suite`` uses."""
    import difflib

    tiers: dict[str, set[str]] = {}
    for tier_dir in suite.iterdir() if suite.is_dir() else ():
        if tier_dir.is_dir() and TIER_PATTERN.match(tier_dir.name):
            tiers[tier_dir.name] = {p.stem for p in tier_dir.glob("*.py") if not p.name.startswith("_")}
    every = {name: tier for tier, names in tiers.items() for name in names}
    warnings: list[str] = []

    def check(entry: Path, tier: str | None) -> None:
        name = entry.stem if entry.is_file() else entry.name
        if (name in tiers.get(tier, ()) if tier else name in every) or name.startswith(("_", ".")):
            return
        if name in every:
            hint = f"{name} is a case of {every[name]}: move it to {solutions / every[name] / entry.name}"
        else:
            close = difflib.get_close_matches(name, list(every), n=1)
            hint = f"did you mean {close[0]}?" if close else f"no case of {suite} is called {name}"
        warnings.append(f"{entry} matches no case ({hint}); it is not evaluated")

    for entry in sorted(solutions.iterdir()):
        if entry.is_dir() and TIER_PATTERN.match(entry.name):
            for inner in sorted(entry.iterdir()):
                if (inner.is_file() and inner.suffix == ".py") or (inner.is_dir() and any(inner.glob("*.py"))):
                    check(inner, entry.name)
        elif (entry.is_file() and entry.suffix == ".py") or (entry.is_dir() and any(entry.glob("[!_]*.py"))):
            check(entry, None)
    return warnings


def execute_run(
    plan: RunPlan,
    make_provenance: Callable[[dict[str, Any], Path | None, str | None], dict[str, Any]],
    observer: Observer | None = None,
) -> RunReport:
    """Run the plan: journal every finished case, rewrite the partial result after each, write the
    final artifacts (and the eval report against ``--baseline``)."""
    options, out = plan.options, plan.out
    assert options.solutions is not None
    if plan.config.isolation == "process" and options.executor != "ray":
        from harness.evaluation.forkserver import start_forkserver

        start_forkserver()  # it imports torch while this process checks backends and devices
    runner = Runner(plan.config, options.solutions, pass_n=options.pass_n, devices=plan.devices, observer=observer)
    if plan.run_seed is not None:
        runner.run_seed = plan.run_seed
    created = not out.exists()
    journal = (
        Journal(out / JOURNAL_NAME)
        if plan.resumed
        else Journal.create(
            out / JOURNAL_NAME,
            {"options": options.saved(), "run_seed": runner.run_seed, "cases": [c.name for c in plan.cases]},
        )
    )
    try:
        return _execute(plan, runner, journal, make_provenance)
    except BaseException:
        journal.close()
        if not plan.resumed and not (out / RESULT_NAME).exists():
            # Nothing but the journal's header was written: leave no run behind to block the next one.
            (out / JOURNAL_NAME).unlink(missing_ok=True)
            if created:
                with contextlib.suppress(OSError):
                    out.rmdir()
        raise


def _execute(
    plan: RunPlan,
    runner: Runner,
    journal: Journal,
    make_provenance: Callable[[dict[str, Any], Path | None, str | None], dict[str, Any]],
) -> RunReport:
    from harness.evaluation.file_watch import FileWatch, default_watch_roots

    options, out = plan.options, plan.out
    assert options.solutions is not None
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
            outcome = runner.run(
                plan.backends, plan.cases, done=plan.done, strict_backend=options.backend != "all",
                selected=plan.selected,
            )  # fmt: skip
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
