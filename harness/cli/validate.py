"""`harness validate` and `harness schema`: artifacts against the bundled schemas (no torch needed)."""

from __future__ import annotations

import json
from pathlib import Path

import click

from harness.errors import BadInput, ExitCode


@click.command("validate")
@click.argument("files", nargs=-1, required=True, type=click.Path(path_type=Path))
@click.option("--quiet", "-q", is_flag=True, help="Print only failures.")
def validate_cmd(files: tuple[Path, ...], quiet: bool) -> None:
    """Validate artifacts against the schema each one names in "$schema" (needs only jsonschema)."""
    from harness.artifacts.schemas import validate_file

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


@click.command("schema")
@click.argument("name", required=False)
def schema_cmd(name: str | None) -> None:
    """List the bundled schemas, or print the one called NAME (e.g. v1/run-result or run-result)."""
    from harness.artifacts.schemas import get_schema, schema_names

    if name is None:
        for short, sid in schema_names().items():
            click.echo(f"{short:28} {sid}")
        return
    click.echo(json.dumps(get_schema(name), indent=2))


COMMANDS = [validate_cmd, schema_cmd]
