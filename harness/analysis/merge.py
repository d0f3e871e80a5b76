"""Merging run results of one suite run in parts (by tier, by shard, on several machines) into one.

The merged file is an ordinary run result: the parts' case results unchanged, the summary
recomputed by `harness.scoring.summarize`, and the parts listed in ``provenance.parts``. Parts that
cannot belong to one run are refused with a one-line reason (BadInput): different solution sets or
suites, a backend measured on different hardware or software, or one case key reported twice with
different content (an identical duplicate, such as the same part given twice, is kept once).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

from harness.analysis.compare import ENV_PACKAGES
from harness.artifacts.payloads import run_payload
from harness.artifacts.reading import LoadedArtifact, describe_run
from harness.errors import BadInput
from harness.results import CaseResult


def _key(case: dict[str, Any]) -> str:
    return f"{case['backend']}/{case['tier']}/{case['name']}"


def _canonical(case: dict[str, Any]) -> str:
    return json.dumps(case, sort_keys=True)


def _backend_facts(run: dict[str, Any], backend: str) -> dict[str, Any]:
    """Device names, arch and package versions that a backend's timings depend on."""
    env = run.get("environment") or {}
    devices = (env.get("backends") or {}).get(backend) or {}
    names = sorted({str(d.get("device_name")) for d in devices.values() if isinstance(d, dict)})
    arches = sorted({str(d.get("arch")) for d in devices.values() if isinstance(d, dict)})
    packages = env.get("packages") or {}
    return {"device_name": names, "arch": arches, **{p: packages.get(p) for p in ENV_PACKAGES}}


def _check_same(parts: Sequence[LoadedArtifact], field: str) -> None:
    values = {str(p.payload.get(field)) for p in parts}
    if len(values) > 1:
        raise BadInput(f"cannot merge: the parts come from different {field} ({', '.join(sorted(values))})")


def _check_environments(parts: Sequence[LoadedArtifact]) -> None:
    seen: dict[str, tuple[LoadedArtifact, dict[str, Any]]] = {}
    for part in parts:
        for backend in sorted({c["backend"] for c in part.payload["cases"]}):
            facts = _backend_facts(part.payload, backend)
            if backend not in seen:
                seen[backend] = (part, facts)
                continue
            first, expected = seen[backend]
            for name, value in facts.items():
                if expected[name] and value and expected[name] != value:
                    raise BadInput(
                        f"cannot merge: backend {backend} ran with {name} {expected[name]} in {first.path} "
                        f"but {value} in {part.path}"
                    )


# Settings that may differ between the parts of one run: which part, where and on what it ran, its seed.
_PART_SETTINGS = frozenset({"shard", "devices", "run_seed", "seed", "merged_parts", "build_cache"})


def _check_configs(parts: Sequence[LoadedArtifact]) -> None:
    """Parts of one run were written by one harness version with one evaluation configuration."""
    versions = {str(p.payload.get("harness_version")) for p in parts}
    if len(versions) > 1:
        shown = ", ".join(sorted(versions))
        raise BadInput(f"cannot merge: the parts were written by different harness versions ({shown})")
    first = parts[0]
    expected = {k: v for k, v in (first.payload["provenance"].get("config") or {}).items() if k not in _PART_SETTINGS}
    for part in parts[1:]:
        config = {k: v for k, v in (part.payload["provenance"].get("config") or {}).items() if k not in _PART_SETTINGS}
        differing = sorted(k for k in expected.keys() | config.keys() if expected.get(k) != config.get(k))
        if differing:
            key = differing[0]
            raise BadInput(
                f"cannot merge: {first.path} and {part.path} ran with different configurations "
                f"({key}: {expected.get(key)!r} vs {config.get(key)!r}); merge parts of one run only"
            )


def _missing_shards(parts: Sequence[LoadedArtifact]) -> list[str]:
    """Parts named "I/N" that are not among ``parts`` (the merged run is then incomplete)."""
    shards = [(p.payload["provenance"].get("config") or {}).get("shard") for p in parts]
    named = [s for s in shards if isinstance(s, str) and "/" in s]
    if not named:
        return []
    counts = {s.split("/")[1].strip() for s in named}
    if len(counts) > 1:
        raise BadInput(f"cannot merge: the parts split the run differently ({', '.join(sorted(named))})")
    count = int(counts.pop())
    present = {int(s.split("/")[0]) for s in named}
    return [f"{i}/{count}" for i in range(1, count + 1) if i not in present]


def _missing_note(missing: list[str]) -> str | None:
    return f"missing shard(s) {', '.join(missing)}: the merged run is incomplete" if missing else None


def _merge_cases(parts: Sequence[LoadedArtifact]) -> list[dict[str, Any]]:
    chosen: dict[str, tuple[LoadedArtifact, dict[str, Any]]] = {}
    for part in parts:
        for case in part.payload["cases"]:
            key = _key(case)
            if key in chosen:
                other, kept = chosen[key]
                if _canonical(kept) != _canonical(case):
                    raise BadInput(
                        f"cannot merge: case {key} is in both {other.path} and {part.path} "
                        "with different results"
                    )
                continue
            chosen[key] = (part, case)
    cases = [case for _, case in chosen.values()]
    return sorted(cases, key=lambda c: (c["backend"], int(c["tier"][1:]), c["name"]))


def _merge_backends(parts: Sequence[LoadedArtifact]) -> list[dict[str, Any]]:
    merged: dict[str, dict[str, Any]] = {}
    for part in parts:
        for entry in part.payload.get("backends", []):
            into = merged.setdefault(entry["backend"], {**entry, "devices": [], "warnings": []})
            if entry.get("status") == "ran":
                into["status"], into["reason"] = "ran", None
            into["devices"] += [d for d in entry.get("devices", []) if d not in into["devices"]]
            into["warnings"] += [w for w in entry.get("warnings", []) if w not in into["warnings"]]
    return [merged[b] for b in sorted(merged)]


def _merge_environment(parts: Sequence[LoadedArtifact]) -> dict[str, Any]:
    environment = dict(parts[0].payload["environment"])
    backends: dict[str, dict[str, Any]] = {}
    for part in parts:
        for backend, devices in ((part.payload["environment"].get("backends")) or {}).items():
            backends.setdefault(backend, {}).update(devices or {})
    environment["backends"] = backends
    hosts = sorted({str(p.payload["environment"].get("hostname")) for p in parts})
    if len(hosts) > 1:
        environment["hostname"] = ",".join(hosts)
    return environment


def merge_runs(parts: Sequence[LoadedArtifact], command_line: list[str]) -> dict[str, Any]:
    """One run-result payload from ``parts`` (validated run results); BadInput when they do not fit."""
    if not parts:
        raise BadInput("nothing to merge: give at least one PART.json")
    _check_same(parts, "solutions")
    _check_same(parts, "suite")
    _check_configs(parts)
    _check_environments(parts)
    missing = _missing_shards(parts)
    cases = _merge_cases(parts)
    commits = {p.payload["provenance"].get("suite_git_commit") for p in parts}
    first = parts[0].payload["provenance"]
    provenance = {
        "command_line": command_line,
        "config": {**first.get("config", {}), "merged_parts": len(parts)},
        "suite_git_commit": commits.pop() if len(commits) == 1 else None,
        "runtime": first.get("runtime"),
        "runtime_note": "; ".join(
            n
            for n in ("merged from parts" if len(parts) > 1 else first.get("runtime_note"), _missing_note(missing))
            if n
        )
        or None,
        "container_image": first.get("container_image"),
        "parts": [
            {**describe_run(p), "command_line": p.payload["provenance"].get("command_line", [])}
            for p in parts
        ],
    }
    results = [CaseResult.from_json(c) for c in cases]
    payload = run_payload(
        results,
        provenance,
        _merge_environment(parts),
        complete=all(p.payload.get("complete", False) for p in parts) and not missing,
        interrupted=any(p.payload.get("interrupted", False) for p in parts),
        suite=str(parts[0].payload.get("suite", "")),
        solutions=str(parts[0].payload.get("solutions", "")),
        backends=_merge_backends(parts),
    )
    payload["cases"] = cases  # the parts' results verbatim, not re-serialised through CaseResult
    return payload
