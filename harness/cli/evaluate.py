"""`harness eval`: one candidate against one case, locally or in the backend's image."""

from __future__ import annotations

import contextlib
import json
import sys
from pathlib import Path
from typing import Any

import click

from harness.cli.common import (
    BACKEND_CHOICES,
    broken_case_message,
    console,
    container_build_cache,
    debug_enabled,
    devices_option,
    eval_config,
    eval_options,
    provenance,
    runtime_options,
    to_argv,
)
from harness.errors import BadInput, ExitCode


@click.command("eval")
@click.argument("case_file", type=click.Path(path_type=Path, dir_okay=False))
@click.argument("solution_file", type=click.Path(path_type=Path, dir_okay=False))
@click.option("--backend", type=click.Choice(BACKEND_CHOICES), default="cpu", show_default=True, help="Where to run.")
@devices_option(single=True)
@click.option(
    "--json",
    "as_json",
    is_flag=True,
    help="Print exactly one JSON object (the case result) on stdout; the candidate's output is in it.",
)
@click.option("--out", type=click.Path(path_type=Path, dir_okay=False), help="Also write the case result to this file.")
@click.option(
    "--feedback", is_flag=True, help="Print the feedback `harness agent` sends a model (for external agents)."
)
# Hidden: which pass@N attempt of a run this is; with --seed RUN_SEED it draws that attempt's inputs
# (harness.evaluation.evaluate.seeds_for), as `harness run --executor ray` needs for its tasks.
@click.option("--attempt", type=click.IntRange(min=0), default=0, hidden=True)
@eval_options
@runtime_options
def eval_cmd(
    case_file: Path,
    solution_file: Path,
    backend: str,
    devices: str | None,
    as_json: bool,
    out: Path | None,
    feedback: bool,
    attempt: int,
    runtime: str,
    image: str | None,
    **kw: Any,
) -> None:
    """Evaluate one candidate (SOLUTION_FILE, defining ModelNew) against one case (CASE_FILE).

    Exit code 0 when the candidate passes, 1 when it fails, errors or times out, 2 when the case is
    at fault (a broken case: one line names the case file and the fix) or does not run on --backend
    (skipped: nothing was evaluated), 3 when the backend or device is unavailable.
    """
    from harness.artifacts.payloads import case_payload
    from harness.artifacts.provenance import host_environment
    from harness.artifacts.schemas import require_valid
    from harness.artifacts.writing import write_artifact
    from harness.backends import get_backend
    from harness.evaluation.evaluate import Task
    from harness.evaluation.runner import evaluate_single
    from harness.suite.cases import case_from_file

    case = case_from_file(case_file)
    if not solution_file.is_file():
        raise BadInput(f"solution file {solution_file} does not exist")
    if feedback and as_json:
        raise BadInput("--feedback and --json both choose what is printed; pass one of them")
    from harness.containers.runtime import choose_runtime

    suite = _suite_of(case_file)
    mounted = [(suite, [case_file]), (solution_file.resolve().parent, [solution_file])]
    choice = choose_runtime(runtime, backend, image, mounted)
    if choice.runtime == "docker":
        show = "feedback" if feedback else "json" if as_json else "panel"
        _eval_in_container(case_file, solution_file, backend, image, show, out, container_build_cache(kw))
        return
    from harness.evaluation.capture import stdout_to_stderr

    config = eval_config(backend, **kw)
    device = None
    if devices is not None:
        device = get_backend(backend).select_devices([devices])[0][0]
    # With --json nothing but the one JSON object goes to stdout, whatever the case or candidate prints.
    with stdout_to_stderr() if as_json else contextlib.nullcontext():
        result, device_env = evaluate_single(Task(case, solution_file, backend, attempt), config, device)
    environment = host_environment()
    environment["backends"] = {backend: device_env}
    payload = case_payload(result, provenance(config.to_json(), case_file.parent, choice.note), environment)
    if out:
        write_artifact(out, payload)
    else:
        require_valid(payload)
    if as_json:
        from harness.artifacts.writing import dumps

        sys.stdout.write(dumps(payload))
        sys.stdout.flush()
    elif not (result.case_error or result.status == "skipped"):
        _show_result(result, "feedback" if feedback else "panel")
    _exit_for(result)


def _exit_for(result: Any) -> None:
    """The exit code of a finished evaluation; a broken or skipped case is one line on stderr, exit 2."""
    if result.case_error:
        raise BadInput(broken_case_message(result))
    if result.status == "skipped":
        raise BadInput(f"{result.case_path} was not evaluated: {result.reason}; pass a --backend it runs on")
    if result.status != "pass":
        raise SystemExit(ExitCode.CANDIDATE_FAILED)


def _suite_of(case_file: Path) -> Path:
    """The folder a container mounts as /suite for one case: the parent of its tier folder, else its own."""
    tier_dir = case_file.resolve().parent
    return tier_dir.parent if tier_dir.name[:1] == "t" and tier_dir.name[1:].isdigit() else tier_dir


def _show_result(result: Any, show: str) -> None:
    """A case result for people (``panel``) or as the feedback an LLM agent gets (``feedback``)."""
    if show == "feedback":
        from harness.agent.feedback import feedback_text

        click.echo(feedback_text(result), nl=False)
    else:
        from harness.render.console import case_panel

        console().print(case_panel(result))


def _eval_in_container(
    case_file: Path,
    solution_file: Path,
    backend: str,
    image: str | None,
    show: str,
    out: Path | None,
    build_cache: Path | None,
) -> None:
    """`harness eval` inside the image: the container writes the case result, the host prints it."""
    import tempfile

    from harness.artifacts.writing import write_atomic
    from harness.containers.runtime import run_in_container, stamp_provenance
    from harness.results import CaseResult

    suite = _suite_of(case_file)
    values = click.get_current_context().params
    args = [str(case_file), str(solution_file)]
    args += to_argv(eval_cmd, values, skip=("runtime", "image", "as_json", "feedback", "out"))
    with tempfile.TemporaryDirectory(prefix="harness-eval-") as tmp:
        inner_out = Path(tmp) / "case.json"
        code, provenance = run_in_container(
            [*(["--debug"] if debug_enabled() else []), "eval", *args, "--out", str(inner_out)],
            backend=backend,
            image=image,
            suite=suite,
            solutions=solution_file.resolve().parent,
            out=Path(tmp),
            build_cache=build_cache,
            echo=lambda line: None if show == "json" else click.echo(line, err=True),
        )
        if not inner_out.is_file():
            raise SystemExit(code or ExitCode.ENVIRONMENT)
        stamp_provenance([inner_out], provenance, suite)
        text = inner_out.read_text(encoding="utf-8")
    if out:
        write_atomic(out, text)
    result = CaseResult.from_json(json.loads(text)["result"])
    if show == "json":
        sys.stdout.write(text)
    elif not (result.case_error or result.status == "skipped"):
        _show_result(result, show)
    _exit_for(result)
    if code:
        raise SystemExit(code)


COMMANDS = [eval_cmd]
