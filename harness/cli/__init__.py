"""The `harness` command line: one module per command over the library; the only place that prints.

Exit codes (README, "Exit codes", and `harness --help`): 0 ok, 1 a candidate failed, 2 bad input
(a broken case, nothing to evaluate), 3 environment unavailable, 4 validation failed, 5 a
`compare --fail-on` verdict occurred, 70 internal error, 130 interrupted (partial results written).
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
@click.option(
    "--debug",
    is_flag=True,
    help="Also print the Python traceback of an error (same exit code); accepted after the command too.",
)
@click.pass_context
def cli(ctx: click.Context, debug: bool) -> None:
    """Check that candidate kernels compute the reference's function, measure their speedup, score them.

    Cases are KernelBench problem files (Model, get_inputs, get_init_inputs) in <suite>/t<N>/; a
    candidate is a file defining ModelNew. Every JSON file written is validated against the schemas
    in schemas/ first.

    \b
    Exit codes (README.md, "Exit codes"):
      0    ok: every evaluated candidate passed (validate: every file valid)
      1    a candidate failed, errored or timed out
      2    bad input: usage, a missing or malformed file, a broken case, nothing to evaluate
      3    environment unavailable: backend, device, Docker engine or image, unreadable folder
      4    an artifact does not match its schema
      5    compare --fail-on: one of those verdicts occurred
      70   internal error (a bug in the harness); --debug shows the traceback
      130  interrupted (Ctrl-C, SIGTERM); partial results written
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


def take_debug(argv: list[str]) -> tuple[list[str], bool]:
    """``argv`` with every ``--debug`` (before a ``--``) moved to the front, where the group takes it,
    and whether there was one: ``harness eval --debug A B`` means ``harness --debug eval A B``."""
    end = argv.index("--") if "--" in argv else len(argv)
    rest = [a for a in argv[:end] if a != "--debug"] + argv[end:]
    debug = len(rest) != len(argv)
    return (["--debug", *rest] if debug else rest), debug


def main(argv: list[str] | None = None) -> None:
    """Console entry point: maps HarnessError to its exit code and a one-line message.

    With ``--debug`` the traceback is printed on stderr too; the exit code stays the documented one.
    """
    _install_sigterm()
    args, debug = take_debug(list(argv if argv is not None else sys.argv[1:]))
    try:
        cli.main(args=args, prog_name="harness", standalone_mode=False)
    except click.exceptions.Abort:
        click.echo("interrupted", err=True)
        sys.exit(ExitCode.INTERRUPTED)
    except click.ClickException as exc:
        exc.show()
        sys.exit(ExitCode.BAD_INPUT if exc.exit_code == 2 else exc.exit_code)
    except HarnessError as exc:
        _traceback(debug)
        click.echo(f"error: {exc}", err=True)
        sys.exit(exc.exit_code)
    except KeyboardInterrupt:
        click.echo("interrupted", err=True)
        sys.exit(ExitCode.INTERRUPTED)
    except Exception as exc:  # a bug in the harness, not the user's input: one line, exit 70 (EX_SOFTWARE)
        _traceback(debug)
        text = str(exc).strip().splitlines()[0] if str(exc).strip() else "(no message)"
        hint = "the traceback is above" if debug else "rerun with --debug for the traceback"
        click.echo(f"internal error: {type(exc).__name__}: {text}; {hint}", err=True)
        sys.exit(ExitCode.INTERNAL)
    sys.exit(0)


def _traceback(debug: bool) -> None:
    if debug:
        import traceback

        traceback.print_exc(file=sys.stderr)


