"""`harness list`: the cases of a suite, read without importing them."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import click

from harness.cli.common import BACKEND_CHOICES, case_option, console, filter_option, suite_option, tier_option


@click.command("list")
@suite_option
@tier_option
@case_option
@filter_option
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
    from harness.errors import BadInput
    from harness.suite.cases import discover

    cases = discover(suite, tiers, names, keyword)
    if not cases and not discover(suite):
        raise BadInput(
            f"no cases in {suite} ({suite.absolute()}): a suite holds case files in tier folders t1/, t2/, ...;"
            " pass --suite DIR (the default, benchmark, is relative to the current folder: the repository's root)"
        )
    rows: list[dict[str, Any]] = [
        {
            "tier": c.tier,
            "name": c.name,
            "path": str(c.path),
            "backends": list(c.backends),
            "skip_reason": c.skip_reason(backend) if backend else None,
            "summary": c.summary,
            "shapes": {b: c.shape_counts.get(b, 1) for b in c.backends},
        }
        for c in cases
    ]
    if as_json:
        click.echo(json.dumps(rows, indent=2))
        return
    from rich.markup import escape
    from rich.table import Table

    table = Table(title=f"{len(rows)} case(s) in {suite}")
    for column in ("tier", "case", "backends", "shapes", "summary"):
        table.add_column(column)
    for row in rows:
        summary = escape(row["summary"])
        if row["skip_reason"]:
            summary = f"[yellow]skipped: {escape(row['skip_reason'])}[/]"
        counts = row["shapes"]
        shapes = str(counts.get(backend, 1)) if backend else ",".join(sorted({str(n) for n in counts.values()}))
        table.add_row(row["tier"], row["name"], ",".join(row["backends"]), shapes, summary)
    console().print(table)


COMMANDS = [list_cmd]
