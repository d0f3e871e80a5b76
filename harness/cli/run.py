"""`harness run`: a solution set on a suite, with a journal, resume and artifacts."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click

from harness.cli.common import (
    BACKEND_CHOICES,
    broken_case_message,
    build_cache_root,
    case_option,
    console,
    container_build_cache,
    debug_enabled,
    devices_option,
    eval_options,
    filter_option,
    now_stamp,
    provenance,
    runtime_options,
    strict_ids,
    suite_option,
    tier_option,
    to_argv,
)
from harness.errors import BadInput


@click.command("run")
@click.option(
    "--backend",
    type=click.Choice((*BACKEND_CHOICES, "all")),
    default="cpu",
    show_default=True,
    help="Backend to run on; 'all' runs every backend, listing unavailable ones as such.",
)
@click.option(
    "--solutions",
    type=click.Path(path_type=Path, file_okay=False),
    help="Folder of candidates: <solutions>/t<N>/<case>.py defining ModelNew (required unless --resume).",
)
@suite_option
@tier_option
@case_option
@filter_option
@click.option(
    "--out",
    type=click.Path(path_type=Path, file_okay=False),
    default=None,
    help="Folder for journal.jsonl, result.json and leaderboard.json (default: results/<time>).",
)
@devices_option(single=False)
@click.option(
    "--pass-n",
    type=click.IntRange(min=1),
    default=1,
    show_default=True,
    help="Attempts per case: the first N files in <solutions>/t<N>/<case>/, or N runs of a single file.",
)
@click.option(
    "--shard",
    metavar="I/N",
    default=None,
    help="Run part I of N (1..N) of the selected cases, split by expected cost; `harness merge` joins the"
    " parts' results (CI matrices, Slurm arrays, Kubernetes indexed jobs: docs/scaling.md).",
)
@click.option(
    "--resume",
    type=click.Path(path_type=Path, file_okay=False),
    default=None,
    help="Continue the interrupted run in this folder: its journal decides the cases and options (an option"
    " given again must agree with it; --devices may change).",
)
@click.option("--overwrite", is_flag=True, help="Start afresh in --out even if it holds an earlier run's journal.")
@click.option("--quiet", "-q", is_flag=True, help="No progress bar and no per-case lines; the table only.")
@click.option(
    "--baseline",
    type=click.Path(path_type=Path, dir_okay=False),
    default=None,
    help="An earlier result.json to compare this run with; writes the agent eval report (see --eval-report).",
)
@click.option(
    "--eval-report",
    type=click.Path(path_type=Path, dir_okay=False),
    default=None,
    help="Where to write the eval report when --baseline is given (default: <out>/eval-report.json).",
)
@click.option(
    "--threshold",
    type=click.FloatRange(min=0),
    default=5.0,
    show_default=True,
    help="With --baseline: smallest change in percent that counts as improved or regressed.",
)
@click.option(
    "--alpha",
    type=click.FloatRange(min=0, max=1, min_open=True),
    default=0.01,
    show_default=True,
    help="With --baseline: significance level of the per-case test (Holm-corrected across cases).",
)
@click.option(
    "--executor",
    type=click.Choice(["local", "ray"]),
    default="local",
    show_default=True,
    help="ray: one `harness eval` per case on a Ray cluster (needs kernel-harness[ray]; docs/scaling.md).",
)
@click.option("--ray-address", metavar="HOST:PORT", help="Ray cluster [default: $RAY_ADDRESS, else a local one].")
@click.option("--ray-ship-files", is_flag=True, help="Send case and solution files with each task (no shared FS).")
@click.option(
    "--ray-cpus", type=click.FloatRange(min=0, min_open=True), default=1.0, show_default=True, help="CPUs per Ray task."
)
@eval_options
@runtime_options
def run_cmd(**kw: Any) -> None:
    """Evaluate a solution set on a suite; write result.json and leaderboard.json under --out.

    Exit code 0 when every evaluated case passes, 1 when any fails, errors or times out, 2 when a
    case is broken (its file is at fault) or nothing is left to evaluate (no solution matches a case,
    every case is skipped), 3 when the backend or a device is unavailable (checked before anything is
    written).
    """
    from harness.containers.runtime import choose_runtime

    backend = kw["backend"] if kw["backend"] != "all" else "cpu"
    if kw["executor"] == "ray":  # each task runs `harness eval --runtime RUNTIME` on its node
        note = f"--executor ray: each case ran with --runtime {kw['runtime']} on its node"
        raise SystemExit(run_and_report(run_options(kw, runtime_note=note), quiet=kw["quiet"]))
    mounted = [(Path(kw["suite"]), None)] + ([(Path(kw["solutions"]), None)] if kw["solutions"] else [])
    choice = choose_runtime(kw["runtime"], backend, kw["image"], mounted)
    if choice.runtime == "docker":
        raise SystemExit(_run_in_container(kw, backend))
    code = run_and_report(run_options(kw, runtime_note=choice.note, runtime="local"), quiet=kw["quiet"])
    if code:
        raise SystemExit(code)


def run_options(kw: dict[str, Any], **changes: Any) -> Any:
    """The `RunOptions` of this command's parsed options (``changes`` override some)."""
    from harness.evaluation.run import RunOptions

    fields = {name: kw[name] for name in RunOptions.__dataclass_fields__ if name in kw and name != "SAVED"}
    fields["strict"] = strict_ids(kw.get("strict"))
    fields["build_cache"] = build_cache_root(kw.get("build_cache"), kw.get("no_build_cache", False))
    fields["given"] = frozenset(_given_options(RunOptions.SAVED))
    fields.update(changes)
    return RunOptions(**fields)


def _given_options(names: tuple[str, ...]) -> list[str]:
    """Which of these options the user gave (on the command line or in the environment), not defaulted."""
    from click.core import ParameterSource

    ctx = click.get_current_context(silent=True)
    if ctx is None:
        return []
    given = (ParameterSource.COMMANDLINE, ParameterSource.ENVIRONMENT)
    return [name for name in names if name in ctx.params and ctx.get_parameter_source(name) in given]


def run_and_report(options: Any, quiet: bool = False, allow_empty: bool = False) -> int:
    """Plan, run with a progress bar, and print the table, the summary and the warnings; the exit code.

    A run that would evaluate nothing is refused (BadInput, exit 2) before anything is written,
    unless ``allow_empty`` (re-scoring a team that submitted nothing usable: its result is all zeros).
    """
    from rich.markup import escape

    from harness.evaluation.run import execute_run, plan_run
    from harness.render.console import ProgressObserver

    plan = plan_run(options)
    err = console(stderr=True)
    for warning in plan.warnings:
        err.print(f"[yellow]warning:[/] {escape(warning)}", soft_wrap=True)
    if plan.nothing_to_evaluate and not allow_empty:
        raise BadInput(plan.nothing_to_evaluate)
    if plan.resumed:
        err.print(f"resuming {plan.out}: {len(plan.done)} case(s) already finished")
    observer = ProgressObserver(err, enabled=not quiet)
    with observer:
        report = execute_run(plan, provenance, observer)
    show_run_report(report)
    return int(report.exit_code)


def show_run_report(report: Any) -> None:
    """What a finished (or interrupted) run says to people."""
    from rich.markup import escape

    from harness.evaluation.journal import JOURNAL_NAME
    from harness.evaluation.run import LEADERBOARD_NAME, RESULT_NAME
    from harness.render.console import results_table, summary_lines
    from harness.render.table import eval_report_lines

    err, out = console(stderr=True), console()
    if report.journal_repairs:
        err.print(
            f"[yellow]warning:[/] {report.out / JOURNAL_NAME} was changed by another process during the run; "
            f"restored {report.journal_repairs} time(s)"
        )
    for backend in report.backends:
        for warning in backend.warnings:
            err.print(f"[yellow]warning:[/] {warning}")
    options = report.plan.options
    out.print(results_table(report.results, title=f"{options.solutions} on {options.backend}"))
    for line in summary_lines(report.payload):
        out.print(line)
    out.print(f"artifacts: {report.out / RESULT_NAME}, {report.out / LEADERBOARD_NAME}")
    if report.eval_report is not None:
        for line in eval_report_lines(report.eval_report):
            out.print(line)
        out.print(f"eval report: {report.eval_report_path}")
    if report.interrupted:
        err.print(f"[red]interrupted[/]: partial result written; continue with: harness run --resume {report.out}")
    for broken in report.broken_cases:
        err.print(escape(f"error: {broken_case_message(broken)}"), soft_wrap=True)


def _run_in_container(kw: dict[str, Any], backend: str) -> int:
    """`harness run` inside the image; the host stamps runtime and image into the artifacts."""
    from harness.containers.runtime import run_in_container, stamp_provenance

    if kw["backend"] == "all":
        raise BadInput("--runtime docker runs one backend per image; pass --backend cpu, gpu or npu")
    if kw["resume"] and not kw["solutions"]:
        raise BadInput("--resume with --runtime docker needs --solutions again (the host folder to mount)")
    if not kw["solutions"]:
        raise BadInput("--solutions DIR is required (e.g. --solutions benchmark/solutions/cpu)")
    out = Path(kw["resume"] or kw["out"] or Path("results") / now_stamp())
    args = to_argv(run_cmd, click.get_current_context().params, skip=("runtime", "image"))
    if not kw["out"] and not kw["resume"]:
        args += ["--out", str(out)]
    if not kw["resume"] and not any(a == "--suite" or a.startswith("--suite=") for a in args):
        args += ["--suite", str(kw["suite"])]  # the default suite is a host path: mount and name it
    code, image = run_in_container(
        [*(["--debug"] if debug_enabled() else []), "run", *args],
        backend=backend,
        image=kw["image"],
        suite=kw["suite"],
        solutions=kw["solutions"],
        out=out,
        build_cache=container_build_cache(kw),
    )
    stamp_provenance([out / "result.json", out / "leaderboard.json"], image, kw["suite"])
    console(stderr=True).print(f"ran in {image['name']} ({(image['id'] or '')[:19]}); artifacts in {out}")
    return code


COMMANDS = [run_cmd]
