"""The `harness` command line: thin click commands over the library; the only place that prints.

Exit codes (README, "Exit codes"): 0 ok, 1 a candidate failed, 2 bad input, 3 environment
unavailable, 4 validation failed, 130 interrupted (partial results written).
"""

from __future__ import annotations

import datetime as dt
import json
import signal
import sys
from pathlib import Path
from typing import Any

import click

from harness import __version__
from harness.errors import BadInput, ExitCode, HarnessError

BACKEND_CHOICES = ("cpu", "gpu", "npu")


class Context:
    def __init__(self, debug: bool) -> None:
        self.debug = debug


def _console(stderr: bool = False) -> Any:
    from rich.console import Console

    stream = sys.stderr if stderr else sys.stdout
    # Pipes and CI logs get wide lines instead of rich's 80-column default: nothing is folded.
    width = None if stream.isatty() else 200
    return Console(stderr=stderr, highlight=False, width=width)


@click.group(context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 110})
@click.version_option(__version__, prog_name="harness")
@click.option("--debug", is_flag=True, help="Show Python tracebacks for errors instead of one-line messages.")
@click.pass_context
def cli(ctx: click.Context, debug: bool) -> None:
    """Check that candidate kernels compute the reference's function, measure their speedup, score them.

    Cases are KernelBench problem files (Model, get_inputs, get_init_inputs) in <suite>/t<N>/; a
    candidate is a file defining ModelNew. Every JSON file written is validated against the schemas
    in schemas/ first. Exit codes: 0 ok, 1 a candidate failed, 2 bad input, 3 environment unavailable,
    4 validation failed, 130 interrupted.
    """
    ctx.obj = Context(debug)


# --- list -------------------------------------------------------------------------------------------

_suite_option = click.option(
    "--suite",
    type=click.Path(path_type=Path, file_okay=False),
    default=Path("benchmark"),
    show_default=True,
    help="Folder holding the tier folders t1/, t2/, ... of reference cases.",
)
_tier_option = click.option(
    "--tier", "tiers", multiple=True, metavar="tN", help="Only cases of this tier (repeatable: --tier t1 --tier t2)."
)
_case_option = click.option("--case", "names", multiple=True, metavar="NAME", help="Only this case (repeatable).")
_filter_option = click.option(
    "--filter", "keyword", metavar="KW", help="Only cases whose name or docstring summary contains KW."
)


@cli.command("list")
@_suite_option
@_tier_option
@_case_option
@_filter_option
@click.option(
    "--backend",
    type=click.Choice(BACKEND_CHOICES),
    default=None,
    help="Show which cases would be skipped on this backend and why.",
)
@click.option("--json", "as_json", is_flag=True, help="Print the case list as JSON on stdout.")
def list_cmd(
    suite: Path, tiers: tuple[str, ...], names: tuple[str, ...], keyword: str | None, backend: str | None, as_json: bool
) -> None:
    """List the cases of a suite (tier, name, backends, summary); reads files without importing them."""
    from harness.cases import discover

    cases = discover(suite, tiers, names, keyword)
    rows: list[dict[str, Any]] = [
        {
            "tier": c.tier,
            "name": c.name,
            "path": str(c.path),
            "backends": list(c.backends),
            "skip_reason": c.skip_reason(backend) if backend else None,
            "summary": c.summary,
        }
        for c in cases
    ]
    if as_json:
        click.echo(json.dumps(rows, indent=2))
        return
    from rich.markup import escape
    from rich.table import Table

    table = Table(title=f"{len(rows)} case(s) in {suite}")
    for column in ("tier", "case", "backends", "summary"):
        table.add_column(column)
    for row in rows:
        summary = escape(row["summary"])
        if row["skip_reason"]:
            summary = f"[yellow]skipped: {escape(row['skip_reason'])}[/]"
        table.add_row(row["tier"], row["name"], ",".join(row["backends"]), summary)
    _console().print(table)


# --- eval and run shared options ---------------------------------------------------------------------


def _eval_options(fn: Any) -> Any:
    options = [
        click.option(
            "--timeout",
            "timeout_s",
            type=click.FloatRange(min=1),
            default=300.0,
            show_default=True,
            help="Seconds one case may take in all; the candidate's processes are killed after that.",
        ),
        click.option(
            "--trials",
            type=click.IntRange(min=1),
            default=3,
            show_default=True,
            help="Correctness trials, each with fresh random inputs.",
        ),
        click.option(
            "--seed",
            type=int,
            default=None,
            help="Seed for inputs and weights (default: a fresh secret seed each run, so outputs can't be cached).",
        ),
        click.option(
            "--budget-ms",
            type=click.FloatRange(min=1),
            default=400.0,
            show_default=True,
            help="Target timed milliseconds per model per case (repetitions adapt to it, 10..1000).",
        ),
        click.option(
            "--rounds",
            type=click.IntRange(min=1),
            default=10,
            show_default=True,
            help="Reference and candidate timing alternate in this many rounds.",
        ),
        click.option(
            "--flush-cache/--warm-cache",
            default=None,
            help="Flush the cache between timed calls (default: on for gpu/npu, off for cpu).",
        ),
        click.option(
            "--isolation",
            type=click.Choice(["process", "none"]),
            default="process",
            show_default=True,
            help="process: each candidate in its own killable process (safe). none: in-process, for debugging only.",
        ),
        click.option(
            "--output-limit",
            type=click.IntRange(min=0),
            default=16384,
            show_default=True,
            help="Bytes of the candidate's stdout and of its stderr kept in the result (the last ones).",
        ),
        click.option(
            "--build-cache",
            type=click.Path(file_okay=False, path_type=Path),
            default=None,
            help="Folder that keeps each solution file's compiled kernels (C++ extensions, Triton) for its"
            " next run, keyed by the file's SHA-256 [default: $HARNESS_BUILD_CACHE, else"
            " ~/.cache/kernel-harness/builds].",
        ),
        click.option(
            "--no-build-cache",
            is_flag=True,
            default=False,
            help="Build every candidate from scratch (nothing is read from or kept in the build cache).",
        ),
        click.option(
            "--strict",
            metavar="IDS",
            default=None,
            help="Static flags of the candidate's source that fail it instead of only being reported, e.g."
            " stream,thread,subprocess (or all); see docs/correctness.md for the flag ids.",
        ),
    ]
    for option in reversed(options):
        fn = option(fn)
    return fn


def _strict_ids(text: str | None) -> tuple[str, ...]:
    """The flag ids of ``--strict`` (a usage error names unknown ones)."""
    if not text:
        return ()
    from harness.static_flags import parse_strict

    try:
        return tuple(sorted(parse_strict(text)))
    except ValueError as exc:
        raise click.BadParameter(str(exc), param_hint="--strict") from exc


def _eval_config(backend: str, **kw: Any) -> Any:
    from harness.evaluate import EvalConfig
    from harness.timing import TimingConfig

    timing = TimingConfig(budget_ms=kw["budget_ms"], rounds=kw["rounds"], flush_cache=kw["flush_cache"])
    return EvalConfig(
        backend=backend,
        trials=kw["trials"],
        timeout_s=kw["timeout_s"],
        seed=kw["seed"],
        timing=timing,
        output_limit_bytes=kw["output_limit"],
        isolation=kw["isolation"],
        build_cache=_build_cache_root(kw.get("build_cache"), kw.get("no_build_cache", False)),
        strict=_strict_ids(kw.get("strict")),
    )


def _build_cache_root(option: str | Path | None, disabled: bool) -> str | None:
    """The build cache folder the options ask for (None: no cache)."""
    from harness.build_cache import default_root

    if disabled:
        return None
    root = Path(option).expanduser() if option else default_root()
    return str(root.resolve()) if root is not None else None


def _container_build_cache(kw: dict[str, Any]) -> Path | None:
    """The host folder bound as a container's build cache: the one the options name, else a
    ``container`` folder in the default cache (the image's torch is not the host's)."""
    if kw.get("build_cache") or kw.get("no_build_cache"):
        root = _build_cache_root(kw.get("build_cache"), kw.get("no_build_cache", False))
        return Path(root) if root else None
    default = _build_cache_root(None, False)
    return Path(default) / "container" if default else None


def _provenance(config: dict[str, Any], suite: Path | None, note: str | None = None) -> dict[str, Any]:
    import os

    from harness.environment import command_line, git_commit

    image = os.environ.get("HARNESS_IMAGE")
    return {
        "command_line": command_line(),
        "config": config,
        "suite_git_commit": git_commit(suite) if suite else None,
        "runtime": "docker" if image else "local",
        "runtime_note": note,
        "container_image": {
            "name": image,
            "id": os.environ.get("HARNESS_IMAGE_ID"),
            "digest": os.environ.get("HARNESS_IMAGE_DIGEST") or None,
        }
        if image
        else None,
    }


def _runtime_options(fn: Any) -> Any:
    fn = click.option(
        "--image",
        default=None,
        metavar="NAME",
        help="Image for --runtime docker (default: kernel-harness/<backend>:dev, built by nox -s image-<backend>).",
    )(fn)
    return click.option(
        "--runtime",
        type=click.Choice(["local", "docker", "auto"]),
        default="local",
        show_default=True,
        help="docker: run inside the backend's image (no network, read-only root, limits); "
        "auto: docker when an engine answers and the image exists, else local (noted in the result).",
    )(fn)


def _command_args(command: str) -> list[str]:
    """This process's arguments after the command name (what a container re-runs)."""
    argv = sys.argv[1:]
    return argv[argv.index(command) + 1 :] if command in argv else argv


# --- eval -------------------------------------------------------------------------------------------


@cli.command("eval")
@click.argument("case_file", type=click.Path(path_type=Path, dir_okay=False))
@click.argument("solution_file", type=click.Path(path_type=Path, dir_okay=False))
@click.option("--backend", type=click.Choice(BACKEND_CHOICES), default="cpu", show_default=True, help="Where to run.")
@click.option("--device", "device_index", default=None, help="Device index on the backend (default 0).")
@click.option("--json", "as_json", is_flag=True, help="Print exactly one JSON object (the case result) on stdout.")
@click.option("--out", type=click.Path(path_type=Path, dir_okay=False), help="Also write the case result to this file.")
@click.option(
    "--feedback", is_flag=True, help="Print the feedback `harness agent` sends a model (for external agents)."
)
@_eval_options
@_runtime_options
def eval_cmd(
    case_file: Path,
    solution_file: Path,
    backend: str,
    device_index: str | None,
    as_json: bool,
    out: Path | None,
    feedback: bool,
    runtime: str,
    image: str | None,
    **kw: Any,
) -> None:
    """Evaluate one candidate (SOLUTION_FILE, defining ModelNew) against one case (CASE_FILE).

    Exit code 0 when the candidate passes, 1 when it fails, errors or times out.
    """
    from harness.artifacts import write_artifact
    from harness.backends import get_backend
    from harness.cases import case_from_file
    from harness.environment import host_environment
    from harness.evaluate import Task
    from harness.payloads import case_payload
    from harness.runner import evaluate_single
    from harness.schemas import require_valid

    case = case_from_file(case_file)
    if not solution_file.is_file():
        raise BadInput(f"solution file {solution_file} does not exist")
    if feedback and as_json:
        raise BadInput("--feedback and --json both choose what is printed; pass one of them")
    from harness.container_runtime import choose_runtime

    choice = choose_runtime(runtime, backend, image)
    if choice.runtime == "docker":
        show = "feedback" if feedback else "json" if as_json else "panel"
        _eval_in_container(case_file, solution_file, backend, image, show, out, _container_build_cache(kw))
        return
    config = _eval_config(backend, **kw)
    device = None
    if device_index is not None:
        devices, _ = get_backend(backend).select_devices([device_index])
        device = devices[0]
    result, device_env = evaluate_single(Task(case, solution_file, backend), config, device)
    environment = host_environment()
    environment["backends"] = {backend: device_env}
    payload = case_payload(result, _provenance(config.to_json(), case_file.parent, choice.note), environment)
    if out:
        write_artifact(out, payload)
    else:
        require_valid(payload)
    if as_json:
        from harness.artifacts import dumps

        sys.stdout.write(dumps(payload))
    else:
        _show_result(result, "feedback" if feedback else "panel")
    if result.status != "pass":
        raise SystemExit(ExitCode.CANDIDATE_FAILED)


def _show_result(result: Any, show: str) -> None:
    """A case result for people (``panel``) or as the feedback an LLM agent gets (``feedback``)."""
    if show == "feedback":
        from harness.agent.feedback import feedback_text

        click.echo(feedback_text(result), nl=False)
    else:
        from harness.report import case_panel

        _console().print(case_panel(result))


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

    from harness.artifacts import write_atomic
    from harness.container_runtime import run_in_container, stamp_provenance, strip_runtime_args
    from harness.results import CaseResult

    tier_dir = case_file.resolve().parent
    suite = tier_dir.parent if tier_dir.name[:1] == "t" and tier_dir.name[1:].isdigit() else tier_dir
    args = strip_runtime_args(_command_args("eval"))
    args = [a for a in args if a not in ("--json", "--feedback")]
    if "--out" in args:
        i = args.index("--out")
        del args[i : i + 2]
    with tempfile.TemporaryDirectory(prefix="harness-eval-") as tmp:
        inner_out = Path(tmp) / "case.json"
        code, provenance = run_in_container(
            ["eval", *args, "--out", str(inner_out)],
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
    if show == "json":
        sys.stdout.write(text)
    else:
        _show_result(CaseResult.from_json(json.loads(text)["result"]), show)
    if code:
        raise SystemExit(code)


# --- run --------------------------------------------------------------------------------------------


@cli.command("run")
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
@_suite_option
@_tier_option
@_case_option
@_filter_option
@click.option(
    "--out",
    type=click.Path(path_type=Path, file_okay=False),
    default=None,
    help="Folder for journal.jsonl, result.json and leaderboard.json (default: results/<time>).",
)
@click.option("--devices", default=None, metavar="0,1", help="Device indices to use, one worker each (default: 0).")
@click.option(
    "--pass-n",
    type=click.IntRange(min=1),
    default=1,
    show_default=True,
    help="Attempts per case: the first N files in <solutions>/t<N>/<case>/, or N runs of a single file.",
)
@click.option(
    "--resume",
    type=click.Path(path_type=Path, file_okay=False),
    default=None,
    help="Continue the interrupted run in this folder (its journal decides configuration and cases).",
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
@_eval_options
@_runtime_options
def run_cmd(**kw: Any) -> None:
    """Evaluate a solution set on a suite; write result.json and leaderboard.json under --out.

    Exit code 0 when every evaluated case passes, 1 when any fails, errors or times out.
    """
    from harness.container_runtime import choose_runtime

    backend = kw["backend"] if kw["backend"] != "all" else "cpu"
    choice = choose_runtime(kw.pop("runtime"), backend, kw["image"])
    if choice.runtime == "docker":
        raise SystemExit(_run_in_container(kw, backend))
    kw["runtime_note"] = choice.note
    from harness.run_command import run_suite

    code = run_suite(kw, _eval_config, _provenance, _console)
    if code:
        raise SystemExit(code)


def _run_in_container(kw: dict[str, Any], backend: str) -> int:
    """`harness run` inside the image; the host stamps runtime and image into the artifacts."""
    from harness.container_runtime import run_in_container, stamp_provenance, strip_runtime_args

    if kw["backend"] == "all":
        raise BadInput("--runtime docker runs one backend per image; pass --backend cpu, gpu or npu")
    if kw["resume"] and not kw["solutions"]:
        raise BadInput("--resume with --runtime docker needs --solutions again (the host folder to mount)")
    if not kw["solutions"]:
        raise BadInput("--solutions DIR is required (e.g. --solutions benchmark/solutions/cpu)")
    out = Path(kw["resume"] or kw["out"] or Path("results") / _now_stamp())
    args = strip_runtime_args(_command_args("run"))
    if not kw["out"] and not kw["resume"]:
        args += ["--out", str(out)]
    if not kw["resume"] and not any(a == "--suite" or a.startswith("--suite=") for a in args):
        args += ["--suite", str(kw["suite"])]  # the default suite is a host path: mount and name it
    code, image = run_in_container(
        ["run", *args],
        backend=backend,
        image=kw["image"],
        suite=kw["suite"],
        solutions=kw["solutions"],
        out=out,
        build_cache=_container_build_cache(kw),
    )
    stamp_provenance([out / "result.json", out / "leaderboard.json"], image, kw["suite"])
    _console(stderr=True).print(f"ran in {image['name']} ({(image['id'] or '')[:19]}); artifacts in {out}")
    return code


# --- validate and schema ----------------------------------------------------------------------------


@cli.command("validate")
@click.argument("files", nargs=-1, required=True, type=click.Path(path_type=Path))
@click.option("--quiet", "-q", is_flag=True, help="Print only failures.")
def validate_cmd(files: tuple[Path, ...], quiet: bool) -> None:
    """Validate artifacts against the schema each one names in "$schema" (needs only jsonschema)."""
    from harness.schemas import validate_file

    worst = ExitCode.OK
    for path in files:
        try:
            result = validate_file(path)
        except BadInput as exc:
            click.echo(f"{path}: ERROR {exc}", err=True)
            worst = max(worst, ExitCode.BAD_INPUT)
            continue
        if result.ok:
            if not quiet:
                click.echo(f"{path}: ok ({result.schema_id})")
        else:
            click.echo(f"{path}: INVALID against {result.schema_id or 'no schema'}", err=True)
            for error in result.errors[:20]:
                click.echo(f"  {error}", err=True)
            if len(result.errors) > 20:
                click.echo(f"  ... and {len(result.errors) - 20} more", err=True)
            worst = max(worst, ExitCode.VALIDATION) if worst != ExitCode.BAD_INPUT else worst
    if worst:
        raise SystemExit(worst)


@cli.command("schema")
@click.argument("name", required=False)
def schema_cmd(name: str | None) -> None:
    """List the bundled schemas, or print the one called NAME (e.g. v1/run-result or run-result)."""
    from harness.schemas import get_schema, schema_names

    if name is None:
        for short, sid in schema_names().items():
            click.echo(f"{short:28} {sid}")
        return
    click.echo(json.dumps(get_schema(name), indent=2))


def _add_extension_commands() -> None:
    """Register the commands of every module in harness/commands/ (each exports COMMANDS)."""
    import importlib
    import pkgutil

    import harness.commands

    for info in sorted(pkgutil.iter_modules(harness.commands.__path__), key=lambda i: i.name):
        module = importlib.import_module(f"harness.commands.{info.name}")
        for command in getattr(module, "COMMANDS", ()):
            cli.add_command(command)


_add_extension_commands()


def _install_sigterm() -> None:
    def handler(signum: int, frame: Any) -> None:
        raise KeyboardInterrupt

    try:
        signal.signal(signal.SIGTERM, handler)
    except ValueError:
        pass


def main(argv: list[str] | None = None) -> None:
    """Console entry point: maps HarnessError to its exit code and a one-line message."""
    _install_sigterm()
    debug = "--debug" in (argv if argv is not None else sys.argv[1:])
    try:
        cli.main(args=argv, prog_name="harness", standalone_mode=False)
    except click.exceptions.Abort:
        click.echo("interrupted", err=True)
        sys.exit(ExitCode.INTERRUPTED)
    except click.ClickException as exc:
        exc.show()
        sys.exit(ExitCode.BAD_INPUT if exc.exit_code == 2 else exc.exit_code)
    except HarnessError as exc:
        if debug:
            raise
        click.echo(f"error: {exc}", err=True)
        sys.exit(exc.exit_code)
    except KeyboardInterrupt:
        click.echo("interrupted", err=True)
        sys.exit(ExitCode.INTERRUPTED)
    except Exception as exc:  # a bug in the harness, not the user's input: one line, exit 70 (EX_SOFTWARE)
        if debug:
            raise
        text = str(exc).strip().splitlines()[0] if str(exc).strip() else "(no message)"
        hint = "rerun with --debug for the traceback"
        click.echo(f"internal error: {type(exc).__name__}: {text}; {hint}", err=True)
        sys.exit(ExitCode.INTERNAL)
    sys.exit(0)


def _now_stamp() -> str:
    return dt.datetime.now().strftime("%Y%m%d-%H%M%S")
