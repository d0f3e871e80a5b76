"""Building artifact payloads, validating them, and writing them atomically.

An artifact that fails validation is never silently dropped: it is kept next to the intended file
as ``<name>.invalid.json`` with the errors in ``<name>.invalid.errors.txt``, and ValidationFailed is
raised so the CLI exits non-zero.
"""

from __future__ import annotations

import datetime as dt
import json
import math
import os
import tempfile
from pathlib import Path
from typing import Any

from harness import __version__
from harness.artifacts.schemas import SCHEMA_VERSION, check, schema_id
from harness.errors import ValidationFailed


def envelope(artifact_type: str, provenance: dict[str, Any], environment: dict[str, Any]) -> dict[str, Any]:
    """The fields every artifact starts with."""
    return {
        "$schema": schema_id(artifact_type),
        "artifact_type": artifact_type,
        "schema_version": SCHEMA_VERSION,
        "harness_version": __version__,
        "created_at": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
        "provenance": provenance,
        "environment": environment,
    }


def json_safe(value: Any) -> Any:
    """NaN and infinities become null: they are not JSON."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: json_safe(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [json_safe(v) for v in value]
    return value


def dumps(payload: dict[str, Any]) -> str:
    return json.dumps(json_safe(payload), indent=2, allow_nan=False) + "\n"


def file_mode() -> int:
    """The mode of every file the harness writes: 0666 less the umask, as for any file a program
    creates (0644 under the usual 022, 0600 under 077). Atomic writes go through a private temporary
    file, which is given this mode before it replaces the artifact; journals are opened normally."""
    mask = None
    try:
        with open("/proc/self/status", encoding="ascii") as fh:
            for line in fh:
                if line.startswith("Umask:"):
                    mask = int(line.split()[1], 8)
    except (OSError, ValueError):
        pass
    if mask is None:  # no /proc: read it by setting it (briefly, and back)
        mask = os.umask(0o022)
        os.umask(mask)
    return 0o666 & ~mask


def write_atomic(path: Path, text: str) -> None:
    """Replace ``path`` with ``text`` so that readers see the old file or the new one, never half."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        os.fchmod(fd, file_mode())
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write(text)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def write_artifact(path: Path, payload: dict[str, Any]) -> Path:
    """Validate ``payload`` and write it to ``path``; on failure keep it aside and raise."""
    payload = json_safe(payload)
    result = check(payload)
    if not result.ok:
        invalid = path.with_name(path.stem + ".invalid.json")
        write_atomic(invalid, dumps(payload))
        write_atomic(path.with_name(path.stem + ".invalid.errors.txt"), "\n".join(result.errors) + "\n")
        raise ValidationFailed(
            f"{path.name} does not match {result.schema_id} ({len(result.errors)} error(s), first: "
            f"{result.errors[0]}); the payload is kept in {invalid}",
            result.errors,
        )
    write_atomic(path, dumps(payload))
    return path
