"""`harness compare`, `harness report` and `harness merge`: commands over results already written.

Thin click layers over `harness.analysis` (compare, eval_report, merge) and `harness.render`.
scipy and the renderers are imported inside the commands so `harness --help` stays fast.
"""

from __future__ import annotations

import io
import sys
from pathlib import Path
from typing import Any

import click

from harness.cli.common import console, provenance
from harness.errors import BadInput, ExitCode

_FILE = click.Path(path_type=Path, dir_okay=False)


@click.command("compare")
@click.argument("baseline", type=_FILE)
@click.argument("candidate", type=_FILE)
@click.option(
    "--threshold",
    "threshold_pct",
    type=click.FloatRange(min=0),
    default=5.0,
    show_default=True,
    help="Smallest change in percent that counts: improved/regressed need the whole confidence interval "
    "beyond it.",
)
@click.option(
    "--alpha",
    type=click.FloatRange(min=0, max=1, min_open=True, max_open=True),
    default=0.01,
    show_default=True,
    help="Significance level of the Mann-Whitney test after Holm's correction; the CI level is 1 - alpha.",
)
@click.option(
    "--max-noise",
    "max_noise_pct",
    type=click.FloatRange(min=0),
    default=10.0,
    show_default=True,
    help="A case whose timing series has a robust CV above this percent is inconclusive, whatever the "
    "test says.",
)
@click.option(
    "--ignore-env",
    is_flag=True,
    help="Compare timings even when device or torch/triton versions differ (else such cases are "
    "incomparable).",
)
@click.option(
    "--out", type=_FILE, default=None, help="Write the comparison (schema v1/comparison) to this file."
)
@click.option(
    "--eval-report",
    "eval_report_path",
    type=_FILE,
    default=None,
    help="Also write the eval report for optimisation agents (schema v1/eval-report) to this file.",
)
@click.option(
    "--fail-on",
    default="",
    metavar="VERDICTS",
    help="Comma-separated verdicts (e.g. regressed,broken) that make the command exit 5, for CI gates.",
)
@click.option("--quiet", "-q", is_flag=True, help="Print only the summary lines, not the per-case table.")
def compare(
    baseline: Path,
    candidate: Path,
    threshold_pct: float,
    alpha: float,
    max_noise_pct: float,
    ignore_env: bool,
    out: Path | None,
    eval_report_path: Path | None,
    fail_on: str,
    quiet: bool,
) -> None:
    """Compare two run results (BASELINE then CANDIDATE result.json) case by case.

    Verdicts: improved, regressed, unchanged, inconclusive, incomparable, broken, fixed, new, missing.
    The quantity is each run's candidate time relative to its own reference (the inverse speedup), so
    a slower machine does not read as a regression. Exit 5 when a --fail-on verdict occurs.
    """
    from harness.analysis.compare import compare_runs, comparison_payload, parse_fail_on
    from harness.analysis.eval_report import eval_report_payload
    from harness.artifacts.provenance import host_environment
    from harness.artifacts.reading import describe_run, load_artifact
    from harness.artifacts.writing import write_artifact
    from harness.render.table import comparison_lines, comparison_table, eval_report_lines

    try:
        gates = parse_fail_on(fail_on)
    except ValueError as exc:
        raise BadInput(f"--fail-on: {exc}") from exc
    old = load_artifact(baseline, ["run_result"])
    new = load_artifact(candidate, ["run_result"])
    result = compare_runs(old.payload, new.payload, threshold_pct, alpha, max_noise_pct, ignore_env)
    config = {
        "baseline": str(baseline),
        "candidate": str(candidate),
        "threshold_pct": threshold_pct,
        "alpha": alpha,
        "max_noise_pct": max_noise_pct,
        "ignore_env": ignore_env,
        "fail_on": gates,
    }
    environment = host_environment()
    payload = comparison_payload(
        result, provenance(config, None), environment, describe_run(old), describe_run(new)
    )
    if out:
        write_artifact(out, payload)
    report = None
    if eval_report_path:
        report = eval_report_payload(
            result, provenance(config, None), environment, describe_run(old), describe_run(new)
        )
        write_artifact(eval_report_path, report)
    screen = console()
    if not quiet:
        screen.print(comparison_table(payload, title=f"{baseline} -> {candidate}"))
    for line in comparison_lines(payload):
        screen.print(line)
    if report is not None:
        for line in eval_report_lines(report):
            screen.print(line)
    tripped = result.tripped(gates)
    if tripped:
        keys = ", ".join(f"{c.key} ({c.verdict})" for c in tripped[:10])
        more = f" and {len(tripped) - 10} more" if len(tripped) > 10 else ""
        click.echo(f"gate: {len(tripped)} case(s) with a --fail-on verdict: {keys}{more}", err=True)
        raise SystemExit(ExitCode.GATE)


@click.command("report")
@click.argument("file", type=_FILE)
@click.option(
    "--format",
    "fmt",
    type=click.Choice(["table", "markdown", "html"]),
    default="table",
    show_default=True,
    help="table: rich table for a terminal; markdown: for a PR comment or $GITHUB_STEP_SUMMARY; "
    "html: one self-contained page with plots.",
)
@click.option("--out", type=_FILE, default=None, help="Write the report to this file instead of stdout.")
def report(file: Path, fmt: str, out: Path | None) -> None:
    """Render a run result (result.json), a case result (`eval --out`, as a one-case report) or a
    comparison (comparison.json) for people to read."""
    from harness.artifacts.reading import load_artifact
    from harness.artifacts.writing import write_atomic

    payload = load_artifact(file, ["run_result", "case_result", "comparison"]).payload
    if payload["artifact_type"] == "case_result":
        from harness.artifacts.payloads import case_as_run

        payload = case_as_run(payload)
    if fmt == "markdown":
        from harness.render.markdown import render_markdown

        text = render_markdown(payload)
    elif fmt == "html":
        from harness.render.html import render_html

        text = render_html(payload)
    else:
        text = _table_text(payload, color=out is None and sys.stdout.isatty())
    if out:
        write_atomic(out, text)
        click.echo(f"wrote {out}", err=True)
    else:
        click.echo(text, nl=False)


def _table_text(payload: dict[str, Any], color: bool) -> str:
    from rich.console import Console

    buffer = io.StringIO()
    screen = Console(
        file=buffer, width=200, highlight=False, force_terminal=color, color_system="auto" if color else None
    )
    if payload["artifact_type"] == "comparison":
        from harness.render.table import comparison_lines, comparison_table

        screen.print(comparison_table(payload))
        lines = comparison_lines(payload)
    else:
        from harness.render.console import results_table, summary_lines
        from harness.results import CaseResult

        results = [CaseResult.from_json(c) for c in payload["cases"]]
        screen.print(results_table(results, title=f"{payload.get('solutions')}"))
        lines = summary_lines(payload)
    for line in lines:
        screen.print(line)
    return buffer.getvalue()


@click.command("merge")
@click.argument("parts", nargs=-1, required=True, type=_FILE)
@click.option(
    "--out", type=_FILE, required=True, help="Where to write the merged run result (schema v1/run-result)."
)
def merge(parts: tuple[Path, ...], out: Path) -> None:
    """Merge run results of one suite run made in parts (by tier or shard) into one result.

    Refused (exit 2, with the reason) when the parts come from different solution sets or suites,
    ran a backend on different devices or software, or report one case twice with different content.
    """
    from harness.analysis.merge import merge_runs
    from harness.artifacts.provenance import command_line
    from harness.artifacts.reading import load_artifact
    from harness.artifacts.writing import write_artifact
    from harness.render.console import summary_lines

    loaded = [load_artifact(p, ["run_result"]) for p in parts]
    payload = merge_runs(loaded, command_line())
    write_artifact(out, payload)
    screen = console()
    screen.print(f"merged {len(parts)} part(s), {len(payload['cases'])} case(s) into {out}")
    for line in summary_lines(payload):
        screen.print(line)


COMMANDS = [compare, report, merge]
