"""`harness manifest`: write or check the suite manifest (benchmark/manifest.json)."""

from __future__ import annotations

import json
from pathlib import Path

import click

from harness.errors import BadInput


@click.command("manifest")
@click.option(
    "--suite",
    type=click.Path(path_type=Path, file_okay=False),
    default=Path("benchmark"),
    show_default=True,
    help="Suite folder to describe.",
)
@click.option(
    "--write", is_flag=True, help="Write <suite>/manifest.json (validated first) instead of printing it."
)
@click.option(
    "--check",
    is_flag=True,
    help="Exit 1 when <suite>/manifest.json differs from what the cases give now (for CI).",
)
def manifest(suite: Path, write: bool, check: bool) -> None:
    """Describe every case: tier, shapes, dtypes, parameters, FLOPs and bytes moved per backend size."""
    from harness.artifacts.provenance import host_environment
    from harness.artifacts.writing import dumps, envelope, write_artifact
    from harness.suite.manifest import build_manifest

    entries = build_manifest(suite)
    path = suite / "manifest.json"
    if check:
        if not path.is_file():
            raise BadInput(f"{path} does not exist; create it with: harness manifest --write")
        try:
            current = json.loads(path.read_text(encoding="utf-8"))
        except json.JSONDecodeError as exc:
            raise BadInput(f"{path}: invalid JSON ({exc.msg}); regenerate with: harness manifest --write") from exc
        if current.get("cases") != entries:
            stale = sorted(
                {e["name"] for e in entries} ^ {e.get("name") for e in current.get("cases", [])}
                | {e["name"] for e in entries if e not in current.get("cases", [])}
            )
            click.echo(f"{path} is stale for: {', '.join(stale)}; run: harness manifest --write", err=True)
            raise SystemExit(1)
        click.echo(f"{path}: up to date ({len(entries)} cases)")
        return
    # Stable content: no timestamps or hosts in a checked-in file, so regenerating changes nothing.
    host = host_environment()
    environment = {"python": host["python"].rsplit(".", 1)[0], "harness": host["harness"]}
    payload = envelope("manifest", {"command_line": ["harness", "manifest", "--write"], "config": {}}, environment)
    payload["created_at"] = "1970-01-01T00:00:00+00:00"
    payload.update(suite=suite.name, cases=entries)
    if write:
        write_artifact(path, payload)
        click.echo(f"wrote {path} ({len(entries)} cases)")
    else:
        click.echo(dumps(payload), nl=False)


COMMANDS = [manifest]
