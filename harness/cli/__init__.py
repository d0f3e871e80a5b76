"""The `harness` command line: one module per command over the library; the only place that prints.

Exit codes (README, "Exit codes"): 0 ok, 1 a candidate failed, 2 bad input, 3 environment
unavailable, 4 validation failed, 5 a `compare --fail-on` verdict occurred, 70 internal error,
130 interrupted (partial results written).
"""

from __future__ import annotations

import signal
import sys
from typing import Any

import click

from harness import __version__
from harness.cli import agent, analysis, calibrate, evaluate, listing, manifest, run, validate
from harness.cli.common import Context
from harness.errors import ExitCode, HarnessError


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


for _module in (listing, evaluate, run, validate, analysis, calibrate, manifest, agent):
    for _command in _module.COMMANDS:
        cli.add_command(_command)


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


