"""`harness validate` and `harness schema`: artifacts against the bundled schemas (no torch needed)."""

from __future__ import annotations

import json
from pathlib import Path

import click

from harness.errors import BadInput, ExitCode


@click.command("validate")
@click.argument("paths", nargs=-1, required=True, type=click.Path(path_type=Path))
@click.option("--quiet", "-q", is_flag=True, help="Print only failures.")
@click.option(
    "--deep",
    is_flag=True,
    help="Also recompute every timing statistic, speedup, score and the run's summary from the raw samples"
    " the file keeps, and report what disagrees (no torch needed).",
)
def validate_cmd(paths: tuple[Path, ...], quiet: bool, deep: bool) -> None:
    """Validate artifacts (files, or folders: every *.json in them) against the schema each names in "$schema".

    Exit 0 when every file is valid, 4 when one is not, 2 when one is missing or not JSON.
    """
    from harness.artifacts.recheck import recheck
    from harness.artifacts.schemas import validate_file

    files = _artifact_files(paths)
    worst = ExitCode.OK
    for path in files:
        try:
            result = validate_file(path)
        except BadInput as exc:
            click.echo(f"{path}: ERROR {exc}", err=True)
            worst = ExitCode.BAD_INPUT
            continue
        errors = list(result.errors)
        if result.ok and deep:
            errors = recheck(json.loads(path.read_text(encoding="utf-8")))
        if not errors:
            if not quiet:
                click.echo(f"{path}: ok ({result.schema_id}{', figures recomputed' if deep else ''})")
            continue
        what = "INVALID against " + (result.schema_id or "no schema") if not result.ok else "figures disagree"
        click.echo(f"{path}: {what}", err=True)
        for error in errors[:20]:
            click.echo(f"  {error}", err=True)
        if len(errors) > 20:
            click.echo(f"  ... and {len(errors) - 20} more", err=True)
        worst = max(worst, ExitCode.VALIDATION) if worst != ExitCode.BAD_INPUT else worst
    if worst:
        raise SystemExit(worst)


def _artifact_files(paths: tuple[Path, ...]) -> list[Path]:
    """The files to validate: each file given, and every ``*.json`` under each folder given."""
    files: list[Path] = []
    for path in paths:
        if path.is_dir():
            found = sorted(p for p in path.rglob("*.json") if not p.name.endswith(".invalid.json"))
            if not found:
                raise BadInput(f"{path}: a folder with no *.json artifact in it; pass artifact files or their folder")
            files += found
        else:
            files.append(path)
    return files


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
