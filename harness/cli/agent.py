"""`harness agent` (the LLM kernel-writing loop) and `harness leaderboard` (ranking team submissions).

Thin click layers over `harness.agent`: `session` runs the loop, `leaderboard` re-scores and ranks.
Everything heavier than click is imported inside the commands, so `harness --help` stays fast.
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Any

import click
from click.core import ParameterSource

from harness.cli.common import console, devices_option

BACKENDS = ("cpu", "gpu", "npu")
# Options that may be given again with --resume (how the endpoint is reached), by parameter name.
_RESUME_OPTIONS = {
    "base_url": "base_url",
    "api_key_env": "api_key_env",
    "request_timeout": "request_timeout_s",
    "max_retries": "max_retries",
    "concurrency": "concurrency",
}
_EVAL_KEYS = ("timeout_s", "trials", "seed", "budget_ms", "rounds", "flush_cache", "isolation", "output_limit")
# The options of `harness run` both commands take: which cases, and how each candidate is evaluated.
_RUN_OPTIONS = ("suite", "tiers", "names", "keyword", *_EVAL_KEYS, "build_cache", "no_build_cache")


class _WithRunOptions(click.Command):
    """A command that also takes options of `harness run`, unchanged (same names, help and defaults).

    They are borrowed when the command is first parsed or asked for help, not at import time:
    harness.cli imports this module while it registers commands.
    """

    def __init__(self, *args: Any, borrowed: tuple[str, ...] = (), **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.borrowed = borrowed

    def get_params(self, ctx: click.Context) -> list[click.Parameter]:
        if self.borrowed:
            from harness.agent.seams import run_options

            self.params[:0] = run_options(self.borrowed)
            self.borrowed = ()
        return super().get_params(ctx)


_backend_option = click.option(
    "--backend", type=click.Choice(BACKENDS), default="cpu", show_default=True, help="Where candidates are evaluated."
)


def _eval_settings(kw: dict[str, Any]) -> dict[str, Any]:
    """The eval options as saved in the settings (the build cache resolved to a folder or None)."""
    from harness.agent.seams import default_build_cache

    settings = {key: kw[key] for key in _EVAL_KEYS}
    root = None if kw["no_build_cache"] else (kw["build_cache"] or default_build_cache())
    settings["build_cache"] = str(Path(root).expanduser().resolve()) if root else None
    return settings


@click.command("agent", cls=_WithRunOptions, borrowed=_RUN_OPTIONS)
@_backend_option
@devices_option(single=True)
@click.option(
    "--dsl",
    type=click.Choice(("triton", "cuda", "cpp", "ascendc", "torch")),
    default=None,
    help="What the kernels are written in [default: cpp on cpu, triton on gpu and npu].",
)
@click.option(
    "--base-url",
    default=None,
    metavar="URL",
    help="OpenAI-compatible endpoint, e.g. http://127.0.0.1:8000/v1 (vllm serve, llama-server, a hosted API).",
)
@click.option("--model", default=None, help="Model name the endpoint serves (e.g. Qwen/Qwen3-32B).")
@click.option(
    "--api-key-env",
    default="OPENAI_API_KEY",
    show_default=True,
    metavar="VAR",
    help="Environment variable holding the API key (unset: no key is sent). The key is never written.",
)
@click.option(
    "--temperature",
    type=click.FloatRange(min=0),
    default=None,
    help="Sampling temperature [default: the server's]; use > 0 with --rollouts > 1.",
)
@click.option(
    "--max-tokens", type=click.IntRange(min=1), default=None, help="Most tokens per reply [default: the server's]."
)
@click.option(
    "--request-timeout",
    type=click.FloatRange(min=0.1),
    default=600.0,
    show_default=True,
    help="Seconds to wait for one reply.",
)
@click.option(
    "--max-retries",
    type=click.IntRange(min=0, max=10),
    default=3,
    show_default=True,
    help="Further tries on 408/409/429/5xx, timeouts and refused connections (Retry-After honoured).",
)
@click.option("--team", default=None, help="Team name for the submission folder ([A-Za-z0-9_-]+).")
@click.option(
    "--turns",
    type=click.IntRange(min=1),
    default=3,
    show_default=True,
    help="Most turns (model replies) per conversation.",
)
@click.option(
    "--until",
    type=click.Choice(("correct", "max-turns")),
    default="max-turns",
    show_default=True,
    help="correct: end a conversation at its first passing candidate; max-turns: keep asking for faster.",
)
@click.option(
    "--patience",
    type=click.IntRange(min=1),
    default=None,
    help="End a conversation after this many turns in a row without a better reward.",
)
@click.option(
    "--rollouts",
    type=click.IntRange(min=1),
    default=1,
    show_default=True,
    help="Independent conversations per case (pass@k for k <= rollouts).",
)
@click.option(
    "--context",
    type=click.Choice(("last", "full")),
    default="last",
    show_default=True,
    help="last: send only the latest reply and its feedback; full: the whole conversation.",
)
@click.option(
    "--concurrency",
    type=click.IntRange(min=1),
    default=4,
    show_default=True,
    help="Conversations at once (requests overlap; evaluations still run one at a time).",
)
@click.option(
    "--prompt-template",
    type=click.Path(path_type=Path, dir_okay=False),
    default=None,
    help="Template file with '=== system ===' and '=== user ===' sections (docs/agent.md).",
)
@click.option(
    "--examples",
    type=click.Path(path_type=Path, file_okay=False),
    default=None,
    help="Solution set whose files are shown as worked examples [default: <suite>/solutions/<dsl folder>].",
)
@click.option(
    "--out", type=click.Path(path_type=Path, file_okay=False), default=None, help="Run folder [default: runs/<time>]."
)
@click.option(
    "--resume",
    type=click.Path(path_type=Path, file_okay=False),
    default=None,
    help="Continue the run in this folder; answered turns are not asked again.",
)
@click.option("--overwrite", is_flag=True, help="Start afresh in --out even if it holds an earlier run.")
@click.option("--quiet", "-q", is_flag=True, help="No live display and no per-attempt lines.")
@click.pass_context
def agent(ctx: click.Context, **kw: Any) -> None:
    """Ask an LLM for faster ModelNew candidates, evaluate each one, send feedback, keep the best.

    Every attempt is evaluated as `harness eval` evaluates it. Writes attempts.jsonl, every attempt's
    file, the best one per case as <out>/submissions/<team>/, and agent-run.json. Exit 0 when every
    case is solved, 1 when one is not, 3 when the endpoint never answered, 130 when interrupted.
    """
    from rich.markup import escape

    from harness.agent.display import AgentProgress, summary_lines, summary_table
    from harness.agent.seams import BadInput
    from harness.agent.session import AgentSession, default_dsl
    from harness.agent.settings import AgentSettings

    key_explicit = ctx.get_parameter_source("api_key_env") == ParameterSource.COMMANDLINE
    if kw["resume"]:
        overrides = {
            field: kw[name]
            for name, field in _RESUME_OPTIONS.items()
            if ctx.get_parameter_source(name) == ParameterSource.COMMANDLINE
        }
        session = AgentSession.resume(kw["resume"], overrides, key_explicit)
    else:
        missing = [f"--{n.replace('_', '-')}" for n in ("base_url", "model", "team") if not kw[n]]
        if missing:
            raise BadInput(f"{', '.join(missing)} required (or --resume DIR to continue a run)")
        settings = AgentSettings(
            suite=str(kw["suite"]),
            team=kw["team"],
            model=kw["model"],
            base_url=kw["base_url"],
            backend=kw["backend"],
            dsl=default_dsl(kw["backend"], kw["dsl"]),
            tiers=kw["tiers"],
            names=kw["names"],
            keyword=kw["keyword"],
            device=kw["devices"],
            api_key_env=kw["api_key_env"],
            temperature=kw["temperature"],
            max_tokens=kw["max_tokens"],
            request_timeout_s=kw["request_timeout"],
            max_retries=kw["max_retries"],
            turns=kw["turns"],
            until=kw["until"],
            patience=kw["patience"],
            rollouts=kw["rollouts"],
            context=kw["context"],
            concurrency=kw["concurrency"],
            prompt_template=str(kw["prompt_template"]) if kw["prompt_template"] else None,
            examples=str(kw["examples"]) if kw["examples"] else None,
            eval=_eval_settings(kw),
        )
        session = AgentSession.start(settings, kw["out"], kw["overwrite"], key_explicit)
    err = console(stderr=True)
    if session.resumed:
        err.print(f"resuming {session.out}: {len(session.resumed)} attempt(s) on record are not asked again")
    with AgentProgress(err, session.settings.turns, enabled=not kw["quiet"]) as progress:
        outcome = session.run(progress)
    screen = console()
    screen.print(summary_table(outcome.payload))
    for line in summary_lines(outcome.payload):
        screen.print(line)
    layout = session.layout
    screen.print(f"artifacts: {layout.run_artifact}, {layout.attempts_log}, {layout.submission_dir}/")
    if outcome.endpoint_error:
        err.print(
            f"[yellow]endpoint error[/] ({escape(outcome.endpoint_error[:300])}); ask again with: "
            + escape(f"harness agent --resume {outcome.out} [--base-url URL]")
        )
    if outcome.interrupted:
        err.print(f"[red]interrupted[/]: partial results written; continue with: harness agent --resume {outcome.out}")
    if outcome.exit_code:
        raise SystemExit(outcome.exit_code)


@click.command("leaderboard", cls=_WithRunOptions, borrowed=(*_RUN_OPTIONS, "devices"))
@click.argument("dirs", nargs=-1, required=True, type=click.Path(path_type=Path, file_okay=False))
@_backend_option
@click.option(
    "--out",
    type=click.Path(path_type=Path, file_okay=False),
    default=None,
    help="Folder for leaderboard.json, leaderboard.md and teams/<team>/result.json [default: leaderboards/<time>].",
)
@click.option("--quiet", "-q", is_flag=True, help="No progress bars while re-scoring.")
def leaderboard(dirs: tuple[Path, ...], **kw: Any) -> None:
    """Re-score every team submission in DIRS (e.g. runs/*/submissions) and rank the teams.

    Each team folder (with the meta.json `harness agent` writes) is run through `harness run` on this
    machine; teams are ranked by total weighted score. Writes leaderboard.json (schema v1/leaderboard)
    and leaderboard.md under --out and prints the table.
    """
    from rich.markup import escape
    from rich.table import Table

    from harness.agent.leaderboard import (
        COLUMNS,
        LEADERBOARD_JSON,
        LEADERBOARD_MD,
        find_submissions,
        leaderboard_markdown,
        leaderboard_rows,
        rescore,
        team_leaderboard,
    )
    from harness.agent.seams import write_artifact, write_atomic

    out = kw["out"] or Path("leaderboards") / dt.datetime.now().strftime("%Y%m%d-%H%M%S")
    submissions = find_submissions(dirs)
    options = {**kw, **_eval_settings(kw), "tiers": kw["tiers"], "devices": kw["devices"], "out": out}
    scored = rescore(submissions, options, out, console)
    config = {
        "dirs": [str(d) for d in dirs],
        "suite": str(kw["suite"]),
        "backend": kw["backend"],
        "eval": _eval_settings(kw),
    }
    payload = team_leaderboard(scored, config, kw["suite"])
    write_artifact(out / LEADERBOARD_JSON, payload)
    write_atomic(out / LEADERBOARD_MD, leaderboard_markdown(payload))
    table = Table(title=f"leaderboard: {len(payload['entries'])} team submission(s)", title_justify="left")
    for column in COLUMNS:
        table.add_column(column)
    for row in leaderboard_rows(payload):
        table.add_row(*(escape(cell) for cell in row))
    screen = console()
    screen.print(table)
    screen.print(f"artifacts: {out / LEADERBOARD_JSON}, {out / LEADERBOARD_MD}")


COMMANDS = [agent, leaderboard]
