"""Reading artifacts given on the command line: JSON, of the expected type, valid against its schema.

Every analysis command (compare, report, merge, and `run --baseline`) reads earlier artifacts; each
problem becomes one BadInput line that names the file, so the CLI exits 2 with a usable message.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from harness.artifacts.schemas import check
from harness.errors import BadInput


@dataclass(frozen=True)
class LoadedArtifact:
    """A validated artifact with where it came from (path and sha256 of its bytes)."""

    path: Path
    sha256: str
    payload: dict[str, Any]

    @property
    def artifact_type(self) -> str:
        return str(self.payload["artifact_type"])


def load_artifact(path: Path, allowed: Sequence[str]) -> LoadedArtifact:
    """The artifact at ``path``; BadInput when missing, not JSON, of another type or schema-invalid."""
    if not path.is_file():
        raise BadInput(f"{path}: file does not exist")
    raw = path.read_bytes()
    try:
        payload = json.loads(raw.decode("utf-8"))
    except UnicodeDecodeError as exc:
        raise BadInput(f"{path}: not a UTF-8 text file ({exc.reason})") from exc
    except json.JSONDecodeError as exc:
        raise BadInput(f"{path}:{exc.lineno}:{exc.colno}: invalid JSON: {exc.msg}") from exc
    kind = payload.get("artifact_type") if isinstance(payload, dict) else None
    if kind not in allowed:
        found = f"a {kind!r} artifact" if kind else "not a kernel-harness artifact (no artifact_type)"
        raise BadInput(f"{path}: {found}; expected {' or '.join(repr(a) for a in allowed)}")
    validation = check(payload)
    if not validation.ok:
        raise BadInput(
            f"{path}: does not match {validation.schema_id} ({len(validation.errors)} error(s), first: "
            f"{validation.errors[0]}); `harness validate {path}` lists them all"
        )
    return LoadedArtifact(path=path, sha256=hashlib.sha256(raw).hexdigest(), payload=payload)


def describe_run(loaded: LoadedArtifact) -> dict[str, Any]:
    """What a comparison or merge records about an input run result (not its cases)."""
    return describe_payload(loaded.payload, str(loaded.path), loaded.sha256)


def describe_payload(run: dict[str, Any], path: str | None, sha256: str | None) -> dict[str, Any]:
    """`describe_run` for a payload held in memory (``run --baseline`` has no file for it yet)."""
    return {
        "path": path,
        "sha256": sha256,
        "created_at": run.get("created_at"),
        "harness_version": run.get("harness_version"),
        "solutions": run.get("solutions"),
        "suite": run.get("suite"),
        "complete": run.get("complete"),
        "cases": len(run.get("cases", [])),
    }
