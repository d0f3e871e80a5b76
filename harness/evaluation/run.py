"""`harness run`: plan, journal, resume, progress, artifacts — the flow behind the command.

Kept apart from cli.py so the click layer stays declarative. Every finished case is appended to
the journal and result.json is rewritten (marked incomplete) after it, so a killed run still leaves
a valid partial result.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from pathlib import Path
from typing import Any

from harness.artifacts.payloads import leaderboard_payload, run_payload
from harness.artifacts.provenance import host_environment
from harness.artifacts.writing import write_artifact
from harness.errors import BadInput, ExitCode
from harness.evaluation.journal import JOURNAL_NAME, Journal, read_journal, resume_settings
from harness.results import CaseResult
from harness.suite.cases import discover

RESULT_NAME = "result.json"
LEADERBOARD_NAME = "leaderboard.json"
# Options that define a run and are restored from the journal on --resume.
_RUN_KEYS = (
    "backend", "solutions", "suite", "tiers", "names", "keyword", "devices", "pass_n", "timeout_s", "trials",
    "seed", "budget_ms", "rounds", "flush_cache", "isolation", "output_limit", "strict",
)  # fmt: skip


def _jsonable(options: dict[str, Any]) -> dict[str, Any]:
    out = {}
    for key in _RUN_KEYS:
        value = options.get(key)
        if isinstance(value, Path):
            value = str(value)
        elif isinstance(value, tuple):
            value = list(value)
        out[key] = value
    return out


def run_suite(
    options: dict[str, Any],
    make_config: Callable[..., Any],
    make_provenance: Callable[..., dict[str, Any]],
    console: Callable[..., Any],
) -> int:
    """Run the suite described by the CLI ``options``; returns the exit code."""
    from harness.evaluation.runner import Runner, needs_file_watch
    from harness.render.console import ProgressObserver, results_table, summary_lines

    baseline = options.get("baseline")
    if baseline:
        from harness.artifacts.reading import load_artifact

        load_artifact(Path(baseline), ["run_result"])  # bad input fails before any case runs
    elif options.get("eval_report"):
        raise BadInput("--eval-report needs --baseline OLD_RESULT.json to compare against")
    from harness.evaluation.file_watch import FileWatch, default_watch_roots

    done: list[CaseResult] = []
    if options.get("resume"):
        out = Path(options["resume"])
        state = read_journal(out / JOURNAL_NAME)
        saved, run_seed = resume_settings(state, out / JOURNAL_NAME)
        options = {**options, **saved, "resume": out, "out": out}
        options["suite"], options["solutions"] = Path(saved["suite"]), Path(saved["solutions"])
        done = state.results
        journal = Journal(out / JOURNAL_NAME)
    else:
        if not options.get("solutions"):
            raise BadInput("--solutions DIR is required (e.g. --solutions benchmark/solutions/cpu)")
        out = Path(options["out"] or Path("results") / dt.datetime.now().strftime("%Y%m%d-%H%M%S"))
        if (out / JOURNAL_NAME).exists() and not options.get("overwrite"):
            raise BadInput(
                f"{out} already holds a run; continue it with --resume {out}, "
                "or pass --overwrite to start afresh"
            )
        run_seed = None
        journal = None
    solutions: Path = options["solutions"]
    if not solutions.is_dir():
        raise BadInput(f"solutions folder {solutions} does not exist; pass --solutions DIR")
    backends = ["cpu", "gpu", "npu"] if options["backend"] == "all" else [options["backend"]]
    cases = discover(options["suite"], options["tiers"], options["names"], options["keyword"])
    if not cases:
        raise BadInput(f"no case in {options['suite']} matches the filters given")
    try:
        config = make_config(
            **{**options, "backend": options["backend"] if options["backend"] != "all" else "cpu"}
        )
    except (TypeError, ValueError, KeyError) as exc:
        raise BadInput(
            f"{out / JOURNAL_NAME}: the run's saved options are unusable ({exc}); start the run again"
        ) from exc
    devices = [d.strip() for d in options["devices"].split(",")] if options.get("devices") else None
    if config.isolation == "process":
        from harness.evaluation.forkserver import start_forkserver

        start_forkserver()  # it imports torch while this process checks backends and devices

    runner = Runner(config, solutions, pass_n=options["pass_n"], devices=devices)
    if run_seed is not None:
        runner.run_seed = run_seed
    if journal is None:
        journal = Journal.create(
            out / JOURNAL_NAME,
            {"options": _jsonable(options), "run_seed": runner.run_seed, "cases": [c.name for c in cases]},
        )
    if needs_file_watch(config.isolation):
        # No Landlock here: writes outside scratch folders can only be detected (and partly undone).
        runner.watch = FileWatch(default_watch_roots(options["suite"], solutions, out))
    provenance = make_provenance(
        {**config.to_json(), **_jsonable(options), "run_seed": runner.run_seed},
        options["suite"],
        options.get("runtime_note"),
    )
    environment = host_environment()
    finished: list[CaseResult] = list(done)

    def checkpoint(result: CaseResult) -> None:
        journal.append(result)
        finished.append(result)
        _write(out, finished, provenance, environment, options, [], complete=False, interrupted=False)

    show = not options.get("quiet")
    observer = ProgressObserver(console(stderr=True), enabled=show)
    runner.observer = observer
    runner.on_result = checkpoint
    err = console(stderr=True)
    if done:
        err.print(f"resuming {out}: {len(done)} case(s) already finished")
    interrupted = False
    with observer:
        try:
            outcome = runner.run(backends, cases, done=done, strict_backend=options["backend"] != "all")
            interrupted = outcome.interrupted
            backend_runs = outcome.backends
        except KeyboardInterrupt:
            runner.stop()
            interrupted = True
            backend_runs = []
    journal.close()
    if journal.repairs:
        console(stderr=True).print(
            f"[yellow]warning:[/] {out / JOURNAL_NAME} was changed by another process during the run; "
            f"restored {journal.repairs} time(s)"
        )
    environment["backends"] = {b.backend: b.environment for b in backend_runs}
    for b in backend_runs:
        for warning in b.warnings:
            err.print(f"[yellow]warning:[/] {warning}")
    order = {(c.tier, c.name): i for i, c in enumerate(cases)}
    finished.sort(key=lambda r: (r.backend, order.get((r.tier, r.name), 0)))
    payload = _write(
        out, finished, provenance, environment, options, [b.to_json() for b in backend_runs],
        complete=not interrupted, interrupted=interrupted,
    )  # fmt: skip
    con = console()
    con.print(results_table(finished, title=f"{solutions} on {options['backend']}"))
    for line in summary_lines(payload):
        con.print(line)
    con.print(f"artifacts: {out / RESULT_NAME}, {out / LEADERBOARD_NAME}")
    if baseline and not interrupted:
        from harness.analysis.eval_report import write_eval_report
        from harness.render.table import eval_report_lines

        report_path = Path(options.get("eval_report") or out / "eval-report.json")
        report = write_eval_report(
            Path(baseline), payload, report_path, options["threshold"], options["alpha"]
        )
        for line in eval_report_lines(report):
            con.print(line)
        con.print(f"eval report: {report_path}")
    if interrupted:
        err.print(f"[red]interrupted[/]: partial result written; continue with: harness run --resume {out}")
        return ExitCode.INTERRUPTED
    if any(r.status in ("fail", "error", "timeout") for r in finished):
        return ExitCode.CANDIDATE_FAILED
    return ExitCode.OK


def _write(
    out: Path,
    results: list[CaseResult],
    provenance: dict[str, Any],
    environment: dict[str, Any],
    options: dict[str, Any],
    backends: list[dict[str, Any]],
    *,
    complete: bool,
    interrupted: bool,
) -> dict[str, Any]:
    payload = run_payload(
        results, provenance, environment, complete=complete, interrupted=interrupted,
        suite=str(options["suite"]), solutions=str(options["solutions"]), backends=backends,
    )  # fmt: skip
    write_artifact(out / RESULT_NAME, payload)
    write_artifact(out / LEADERBOARD_NAME, leaderboard_payload(payload))
    return payload
