"""Loading the versioned JSON Schemas and validating artifacts against them, offline.

Never imports torch: third parties validate result files with only jsonschema installed. All
schemas go into one `referencing.Registry`, so a ``$ref`` never reaches the network.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from functools import lru_cache
from importlib import resources
from pathlib import Path
from typing import Any

from harness.errors import BadInput, ValidationFailed

SCHEMA_BASE = "https://kernel-harness.dev/schemas/"
# 1.1: correctness gates, speed_of_light, flags; 1.2: case_error, broken_cases, unstable, shapes (all optional)
SCHEMA_VERSION = "1.2.0"
ARTIFACT_SCHEMAS = {
    "case_result": "v1/case-result.schema.json",
    "run_result": "v1/run-result.schema.json",
    "leaderboard": "v1/leaderboard.schema.json",
    "manifest": "v1/manifest.schema.json",
    "comparison": "v1/comparison.schema.json",
    "eval_report": "v1/eval-report.schema.json",
    "calibration": "v1/calibration.schema.json",
    "agent_run": "v1/agent-run.schema.json",
    "agent_submission": "v1/agent-submission.schema.json",
}


def schema_dir() -> Path:
    """The folder holding ``v1/…``: the checkout's ``schemas/`` or the copy inside the wheel."""
    checkout = Path(__file__).resolve().parents[2] / "schemas"
    if (checkout / "v1").is_dir():
        return checkout
    return Path(str(resources.files("harness.schemadata")))


@lru_cache(maxsize=1)
def _all_schemas() -> dict[str, dict[str, Any]]:
    found = {}
    for path in sorted(schema_dir().glob("v*/*.schema.json")):
        document = json.loads(path.read_text(encoding="utf-8"))
        found[document["$id"]] = document
    return found


def schema_names() -> dict[str, str]:
    """Short name (``v1/run-result``) → ``$id`` of every bundled schema."""
    return {
        sid.removeprefix(SCHEMA_BASE).removesuffix(".schema.json"): sid for sid in sorted(_all_schemas())
    }


def schema_id(artifact_type: str) -> str:
    return SCHEMA_BASE + ARTIFACT_SCHEMAS[artifact_type]


def get_schema(name_or_id: str) -> dict[str, Any]:
    """A schema by ``$id`` or short name (``v1/run-result``, ``run-result``)."""
    schemas = _all_schemas()
    if name_or_id in schemas:
        return schemas[name_or_id]
    names = schema_names()
    for short, sid in names.items():
        if name_or_id in (short, short.split("/", 1)[1]):
            return schemas[sid]
    raise BadInput(f"no schema named {name_or_id!r}; known: {', '.join(names)}")


@lru_cache(maxsize=1)
def _registry() -> Any:
    from referencing import Registry, Resource

    return Registry().with_resources(
        (sid, Resource.from_contents(doc)) for sid, doc in _all_schemas().items()
    )


@dataclass
class Validation:
    schema_id: str
    errors: list[str]

    @property
    def ok(self) -> bool:
        return not self.errors


def _jsonschema_validator() -> Any:
    """jsonschema's Draft 2020-12 validator, imported without the IRI syntax checker.

    When `rfc3987_syntax` is installed (jsonschema's format extras pull it in), jsonschema imports
    it to check the "iri" format, and it builds a grammar at import: 1.3 s of every command that
    writes an artifact. These schemas use only "date-time" and "uri", checked by other packages, so
    its import is declined (a None entry in sys.modules makes `import` raise ImportError, which
    jsonschema expects for any optional checker), unless something has imported it already.
    """
    import sys

    if "jsonschema" not in sys.modules:
        sys.modules.setdefault("rfc3987_syntax", None)  # type: ignore[arg-type]
    from jsonschema import Draft202012Validator

    return Draft202012Validator


def check(instance: Any, schema_id_: str | None = None) -> Validation:
    """Errors of ``instance`` against its schema (named by its own ``$schema`` unless given)."""
    Draft202012Validator = _jsonschema_validator()  # noqa: N806 - the library's class name

    if schema_id_ is None:
        if not isinstance(instance, dict) or not isinstance(instance.get("$schema"), str):
            return Validation("", ["the file has no \"$schema\" naming a kernel-harness schema"])
        schema_id_ = instance["$schema"]
    schemas = _all_schemas()
    if schema_id_ not in schemas:
        return Validation(schema_id_, [f"unknown schema {schema_id_!r}; this harness knows {', '.join(schemas)}"])
    validator = Draft202012Validator(
        schemas[schema_id_], registry=_registry(), format_checker=Draft202012Validator.FORMAT_CHECKER
    )
    errors = sorted(validator.iter_errors(instance), key=lambda e: list(e.absolute_path))
    return Validation(schema_id_, [_describe(e) for e in errors])


def _describe(error: Any) -> str:
    where = "/".join(str(p) for p in error.absolute_path) or "(root)"
    return f"{where}: {error.message[:300]}"


def validate_file(path: Path) -> Validation:
    """Validate one JSON file; BadInput when it is missing or not JSON."""
    if not path.is_file():
        raise BadInput(f"{path}: file does not exist")
    try:
        instance = json.loads(path.read_text(encoding="utf-8"))
    except UnicodeDecodeError as exc:
        raise BadInput(f"{path}: not a UTF-8 text file ({exc.reason})") from exc
    except json.JSONDecodeError as exc:
        raise BadInput(f"{path}:{exc.lineno}:{exc.colno}: invalid JSON: {exc.msg}") from exc
    except RecursionError as exc:
        raise BadInput(f"{path}: JSON nested too deeply to be an artifact") from exc
    try:
        return check(instance)
    except RecursionError as exc:
        raise BadInput(f"{path}: JSON nested too deeply to be an artifact") from exc


def require_valid(instance: dict[str, Any]) -> None:
    """Raise ValidationFailed listing the errors when ``instance`` does not match its schema."""
    result = check(instance)
    if not result.ok:
        raise ValidationFailed(
            f"{instance.get('artifact_type', 'artifact')} does not match {result.schema_id}: {result.errors[0]}",
            result.errors,
        )
