"""The artifact payloads: a case result, a run result and a leaderboard, with their envelopes."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from harness.artifacts.writing import envelope
from harness.results import CaseResult
from harness.scoring import summarize


def case_payload(result: CaseResult, provenance: dict[str, Any], environment: dict[str, Any]) -> dict[str, Any]:
    payload = envelope("case_result", provenance, environment)
    payload["result"] = result.to_json()
    return payload


def run_payload(
    results: Sequence[CaseResult],
    provenance: dict[str, Any],
    environment: dict[str, Any],
    *,
    complete: bool,
    interrupted: bool,
    suite: str,
    solutions: str,
    backends: Sequence[dict[str, Any]],
) -> dict[str, Any]:
    payload = envelope("run_result", provenance, environment)
    by_backend = sorted({r.backend for r in results})
    payload.update(
        complete=complete,
        interrupted=interrupted,
        suite=suite,
        solutions=solutions,
        backends=list(backends),
        cases=[r.to_json() for r in results],
        summary=summarize(results),
        summaries={b: summarize([r for r in results if r.backend == b]) for b in by_backend},
    )
    return payload


def leaderboard_payload(run: dict[str, Any]) -> dict[str, Any]:
    """Ranked entries, one per backend of the run, from a run payload."""
    payload = envelope("leaderboard", run["provenance"], run["environment"])
    entries = []
    for backend, summary in run["summaries"].items():
        devices = (run["environment"].get("backends") or {}).get(backend) or {}
        device_name = next((d.get("device_name") for d in devices.values() if isinstance(d, dict)), None)
        entries.append(
            {
                "solutions": run["solutions"],
                "backend": backend,
                "device_name": device_name,
                "total_weighted_score": summary["total_weighted_score"],
                "normalized_score": summary["normalized_score"],
                "pass_rate": summary["pass_rate"],
                "geomean_speedup": summary["geomean_speedup"],
                "fast_p": summary["fast_p"],
                "cases": [
                    {
                        "name": c["name"],
                        "tier": c["tier"],
                        "status": c["status"],
                        "speedup": c["speedup"],
                        "weighted_score": c["weighted_score"],
                    }
                    for c in run["cases"]
                    if c["backend"] == backend
                ],
            }
        )
    entries.sort(key=lambda e: -e["total_weighted_score"])
    for rank, entry in enumerate(entries, start=1):
        entry["rank"] = rank
    payload.update(entries=entries, complete=run["complete"])
    return payload


def case_as_run(payload: dict[str, Any]) -> dict[str, Any]:
    """A case-result artifact (`harness eval --out`) as a one-case run result, for `harness report`."""
    result = CaseResult.from_json(payload["result"])
    run = run_payload(
        [result], payload["provenance"], payload["environment"], complete=True, interrupted=False,
        suite=str(result.case_path), solutions=str(result.solution_path or "-"), backends=[],
    )  # fmt: skip
    run["created_at"] = payload.get("created_at", run["created_at"])
    return run
