"""Synthetic run results for the compare/eval-report/render/merge tests, built on a real result.json.

`analysis_data/real_t1_a.json` is a real `harness run` (t1, reference set, CPU); `make_run` keeps its
envelope, environment and case structure and replaces the cases with generated ones whose timing
samples are drawn with numpy at a controlled noise level. A case's true times depend only on its
index, so two runs made with different seeds are two measurements of the same candidates.
"""

from __future__ import annotations

import copy
import hashlib
import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from harness.results import CaseResult
from harness.scoring import case_score, summarize, tier_weight
from harness.timing import TimingStats

DATA = Path(__file__).resolve().parent / "analysis_data"
REAL_A = DATA / "real_t1_a.json"
REAL_B = DATA / "real_t1_b.json"
TIERS = ("t1", "t2", "t3")


def template() -> dict[str, Any]:
    return json.loads(REAL_A.read_text())


def case_name(index: int) -> str:
    return f"case_{index:02d}"


def _sha(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


def _samples(rng: np.random.Generator, median_ms: float, cv: float, n: int, outliers: float) -> list[float]:
    values = median_ms * rng.lognormal(0.0, cv, n)
    hit = rng.random(n) < outliers  # occasional interrupts: 1.5x to 3x slower calls
    values[hit] *= rng.uniform(1.5, 3.0, int(hit.sum()))
    return [float(v) for v in values]


def make_case(
    proto: dict[str, Any],
    index: int,
    rng: np.random.Generator,
    *,
    cv: float,
    samples: int,
    outliers: float,
    slower: float = 1.0,
    machine: float = 1.0,
    status: tuple[str, str, str] | None = None,
) -> dict[str, Any]:
    """Case ``index``: true times fixed by the index; ``slower`` scales the candidate, ``machine`` both."""
    truth = np.random.default_rng(1000 + index)
    ref_ms = float(0.05 * 1.6 ** (index % 12) * truth.uniform(0.8, 1.25))
    sol_ms = ref_ms * float(truth.uniform(0.4, 1.6)) * slower
    tier = TIERS[index % len(TIERS)]
    case = copy.deepcopy(proto)
    name = case_name(index)
    case.update(
        name=name, tier=tier, device="cpu", reason=None, phase="measuring_solution", warnings=[], attempts=[]
    )
    case["case"] = {"path": f"benchmark/{tier}/{name}.py", "sha256": _sha(f"case {name}")}
    case["solution"] = {"path": f"solutions/{tier}/{name}.py", "sha256": _sha(f"solution {name} {slower}")}
    if status is not None:
        kind, phase, reason = status
        case.update(status=kind, phase=phase, reason=reason, speedup=None, score=0.0, weighted_score=0.0)
        case["timing"] = {"reference": None, "solution": None}
        if case.get("correctness"):
            case["correctness"] = {**case["correctness"], "passed_trials": 0, "first_failure": reason}
        case["tier_weight"] = tier_weight(tier)
        return case
    ref = TimingStats.from_samples(_samples(rng, ref_ms * machine, cv, samples, outliers), 3)
    sol = TimingStats.from_samples(_samples(rng, sol_ms * machine, cv, samples, outliers), 3)
    speedup = ref.median_ms / sol.median_ms
    score = case_score(speedup, True)
    case.update(status="pass", speedup=speedup, score=score, tier_weight=tier_weight(tier))
    case["weighted_score"] = score * tier_weight(tier)
    case["timing"] = {"reference": ref.to_json(), "solution": sol.to_json()}
    return case


def make_run(
    n_cases: int = 48,
    *,
    seed: int = 0,
    cv: float = 0.05,
    samples: int = 60,
    outliers: float = 0.02,
    slower: Mapping[int, float] | None = None,
    machine: float = 1.0,
    statuses: Mapping[int, tuple[str, str, str]] | None = None,
    skip: set[int] | frozenset[int] = frozenset(),
    solutions: str = "solutions/synthetic",
) -> dict[str, Any]:
    """A valid run-result payload of ``n_cases`` generated cases (indices in ``skip`` left out)."""
    run = template()
    proto = run["cases"][0]
    rng = np.random.default_rng(seed)
    slower, statuses = slower or {}, statuses or {}
    run["cases"] = [
        make_case(
            proto,
            i,
            rng,
            cv=cv,
            samples=samples,
            outliers=outliers,
            slower=slower.get(i, 1.0),
            machine=machine,
            status=statuses.get(i),
        )
        for i in range(n_cases)
        if i not in skip
    ]
    run["solutions"] = solutions
    return resummarize(run)


def resummarize(run: dict[str, Any]) -> dict[str, Any]:
    results = [CaseResult.from_json(c) for c in run["cases"]]
    run["summary"] = summarize(results)
    run["summaries"] = {
        b: summarize([r for r in results if r.backend == b]) for b in sorted({r.backend for r in results})
    }
    return run


def write_json(path: Path, payload: dict[str, Any]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(payload, indent=1))
    return path


def stock_validate(instance: dict[str, Any]) -> list[str]:
    """Errors from a plain jsonschema validator over the schema files (not harness.artifacts.schemas)."""
    from jsonschema import Draft202012Validator
    from referencing import Registry, Resource

    root = Path(__file__).resolve().parents[1] / "schemas" / "v1"
    docs = [json.loads(p.read_text()) for p in sorted(root.glob("*.schema.json"))]
    registry = Registry().with_resources((d["$id"], Resource.from_contents(d)) for d in docs)
    schema = next(d for d in docs if d["$id"] == instance["$schema"])
    validator = Draft202012Validator(
        schema, registry=registry, format_checker=Draft202012Validator.FORMAT_CHECKER
    )
    return [e.message for e in validator.iter_errors(instance)]
