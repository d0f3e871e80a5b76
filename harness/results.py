"""The data that crosses boundaries: one case's result, as stored in journals and artifacts."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from typing import Any

from harness.analysis.speed_of_light import SpeedOfLight
from harness.analysis.static_flags import Flag
from harness.timing import TimingStats

STATUSES = ("pass", "fail", "error", "timeout", "skipped")
# The phases of an evaluation, in order; a failure reports the last one reached.
PHASE_LOADING = "loading_modules"
PHASE_INIT = "model_init"
PHASE_CORRECTNESS = "correctness_check"
PHASE_BASELINE = "measuring_baseline"
PHASE_SOLUTION = "measuring_solution"
PHASES = (PHASE_LOADING, PHASE_INIT, PHASE_CORRECTNESS, PHASE_BASELINE, PHASE_SOLUTION)


@dataclass
class CorrectnessReport:
    """How the candidate's outputs compared with the reference's over all checks."""

    trials: int = 0
    passed_trials: int = 0
    atol: float = 1e-2
    rtol: float = 1e-2
    max_abs_error: float | None = None
    max_rel_error: float | None = None
    mismatched_fraction: float | None = None
    inputs_unchanged: bool | None = None
    timed_output_ok: bool | None = None
    fresh_output_ok: bool | None = None
    first_failure: str | None = None
    output_fingerprint: str | None = None  # sha256 of trial 0's outputs rounded to atol (reference worker)
    staged_inputs: bool | None = None  # the candidate ran on inputs staged by the reference (harness.sandbox.exchange)
    # The second gate (harness.sandbox.correctness): worst scale-free errors over every comparison, their
    # tolerances, and the check that failed first (structure, non_finite, elementwise, normalized, constant).
    gate: str | None = None
    normalized_error: float | None = None
    normalized_tol: float | None = None
    centered_error: float | None = None
    centered_tol: float | None = None

    def record(self, verdict: dict[str, Any]) -> None:
        """Fold one comparison verdict (``OutputCheck`` as a dict, from the reference worker) into the
        report: worst errors, latest tolerances, and the gate of the first failure."""
        for name in ("max_abs_error", "max_rel_error", "normalized_error", "centered_error"):
            value = verdict.get(name)
            if isinstance(value, (int, float)):
                current = getattr(self, name)
                setattr(self, name, float(value) if current is None else max(current, float(value)))
        for name in ("mismatched_fraction", "normalized_tol", "centered_tol"):
            if verdict.get(name) is not None:
                setattr(self, name, verdict[name])
        if not verdict.get("ok", True) and self.gate is None:
            self.gate = verdict.get("gate")

    def to_json(self) -> dict[str, Any]:
        return dict(self.__dict__)

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> CorrectnessReport:
        return cls(**data)

    @classmethod
    def merged(cls, reports: list[CorrectnessReport]) -> CorrectnessReport:
        """One report for a case of several shapes: trials added up, the worst errors, a check true only
        where it held on every shape (None where a shape never reached it), and one fingerprint for
        all the shapes' outputs (two runs whose outputs agree on every shape share it)."""
        first = reports[0]
        merged = cls(
            trials=sum(r.trials for r in reports),
            passed_trials=sum(r.passed_trials for r in reports),
            atol=first.atol,
            rtol=first.rtol,
        )
        for name in ("max_abs_error", "max_rel_error", "normalized_error", "centered_error", "mismatched_fraction"):
            values = [getattr(r, name) for r in reports if getattr(r, name) is not None]
            setattr(merged, name, max(values) if values else None)
        for name in ("normalized_tol", "centered_tol"):
            setattr(merged, name, next((getattr(r, name) for r in reports if getattr(r, name) is not None), None))
        for name in ("inputs_unchanged", "timed_output_ok", "fresh_output_ok", "staged_inputs"):
            values = [getattr(r, name) for r in reports]
            setattr(merged, name, False if False in values else (None if None in values else True))
        merged.gate = next((r.gate for r in reports if r.gate), None)
        merged.first_failure = next((r.first_failure for r in reports if r.first_failure), None)
        prints = [r.output_fingerprint for r in reports]
        if all(prints):
            merged.output_fingerprint = hashlib.sha256(":".join(str(p) for p in prints).encode()).hexdigest()
        return merged


SHAPE_STATUSES = ("pass", "fail", "error", "timeout", "not_run")


def _timing_json(ref: TimingStats | None, sol: TimingStats | None) -> dict[str, Any]:
    return {"reference": ref.to_json() if ref else None, "solution": sol.to_json() if sol else None}


def _timing_from(data: dict[str, Any]) -> tuple[TimingStats | None, TimingStats | None]:
    timing = data.get("timing") or {}
    ref, sol = timing.get("reference"), timing.get("solution")
    return (TimingStats.from_json(ref) if ref else None), (TimingStats.from_json(sol) if sol else None)


@dataclass
class ShapeResult:
    """One shape of a case of several (``SHAPES``): its sizes, its checks and its timing.

    ``status`` is ``pass`` once every check of the shape passed and both sides were timed, the case's
    failing status for the shape the evaluation stopped on, and ``not_run`` for the shapes after it.
    """

    index: int
    sizes: dict[str, Any] = field(default_factory=dict)
    status: str = "not_run"
    reason: str | None = None
    correctness: CorrectnessReport | None = None
    reference_timing: TimingStats | None = None
    solution_timing: TimingStats | None = None
    speedup: float | None = None
    flops: int | None = None
    bytes_moved: int | None = None
    speed_of_light: SpeedOfLight | None = None
    timed_time_s: float = 0.0

    @property
    def unstable(self) -> bool:
        """Whether a timing series of this shape has a CV above the stability threshold."""
        return any(t is not None and not t.stable for t in (self.reference_timing, self.solution_timing))

    def to_json(self) -> dict[str, Any]:
        return {
            "index": self.index,
            "sizes": dict(self.sizes),
            "status": self.status,
            "reason": self.reason,
            "correctness": self.correctness.to_json() if self.correctness else None,
            "timing": _timing_json(self.reference_timing, self.solution_timing),
            "speedup": self.speedup,
            "roofline": {"flops": self.flops, "bytes_moved": self.bytes_moved},
            "speed_of_light": self.speed_of_light.to_json() if self.speed_of_light else None,
            "timed_time_s": self.timed_time_s,
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> ShapeResult:
        ref, sol = _timing_from(data)
        roofline = data.get("roofline") or {}
        return cls(
            index=int(data["index"]),
            sizes=dict(data.get("sizes") or {}),
            status=data.get("status", "not_run"),
            reason=data.get("reason"),
            correctness=CorrectnessReport.from_json(data["correctness"]) if data.get("correctness") else None,
            reference_timing=ref,
            solution_timing=sol,
            speedup=data.get("speedup"),
            flops=roofline.get("flops"),
            bytes_moved=roofline.get("bytes_moved"),
            speed_of_light=SpeedOfLight.from_json(data["speed_of_light"]) if data.get("speed_of_light") else None,
            timed_time_s=data.get("timed_time_s", 0.0),
        )


@dataclass
class CaseResult:
    """Everything known about one evaluation of one candidate on one case and backend.

    A case of one shape keeps its figures at the top level, as before there were shapes. A case of
    several (``shapes`` non-empty) keeps each shape's correctness figures, timing, roofline and speed
    of light in its `ShapeResult`; ``speedup`` is then the geometric mean of the shapes' speedups,
    ``correctness`` the worst over all shapes, and the top-level ``reference_timing``,
    ``solution_timing``, ``flops``, ``bytes_moved`` and ``speed_of_light`` stay empty: no single series
    stands for the case (docs/measurement.md, "Several shapes").
    """

    name: str
    tier: str
    backend: str
    status: str
    phase: str | None = None
    reason: str | None = None
    case_path: str = ""
    case_sha256: str | None = None
    solution_path: str | None = None
    solution_sha256: str | None = None
    device: str | None = None
    attempt: int = 0
    correctness: CorrectnessReport | None = None
    reference_timing: TimingStats | None = None
    solution_timing: TimingStats | None = None
    speedup: float | None = None
    score: float = 0.0
    tier_weight: float = 1.0
    weighted_score: float = 0.0
    flops: int | None = None
    bytes_moved: int | None = None
    stdout: str = ""
    stderr: str = ""
    output_truncated: bool = False
    exit_code: int | None = None
    signal: str | None = None
    wall_time_s: float = 0.0
    timed_time_s: float = 0.0
    warnings: list[str] = field(default_factory=list)
    attempts: list[dict[str, Any]] = field(default_factory=list)
    # Not saved: the evaluation ended because the reference worker died or hung (a device fault,
    # not the candidate's); a run with another device retries the case there (harness.evaluation.runner).
    reference_lost: bool = field(default=False, compare=False, repr=False)
    speed_of_light: SpeedOfLight | None = None
    flags: list[Flag] = field(default_factory=list)  # harness.analysis.static_flags findings on the solution file
    # The case file, not the candidate, is at fault (the reference could not load, build or run it): the
    # status is "error", the candidate is not scored, and `eval`/`run` exit 2 (bad input).
    case_error: bool = False
    shapes: list[ShapeResult] = field(default_factory=list)  # a case of several shapes: one entry each

    @property
    def correct(self) -> bool:
        return self.status == "pass"

    @property
    def unstable(self) -> bool:
        """Whether a timing series of this result (or of one of its shapes) has a CV above the stability threshold."""
        return any(s.unstable for s in self.shapes) or any(
            t is not None and not t.stable for t in (self.reference_timing, self.solution_timing)
        )

    @property
    def key(self) -> str:
        """Identity of this task inside a run (used by the journal to resume)."""
        return f"{self.backend}/{self.tier}/{self.name}"

    def to_json(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "tier": self.tier,
            "backend": self.backend,
            "device": self.device,
            "status": self.status,
            "phase": self.phase,
            "reason": self.reason,
            "case": {"path": self.case_path, "sha256": self.case_sha256},
            "solution": {"path": self.solution_path, "sha256": self.solution_sha256},
            "attempt": self.attempt,
            "correctness": self.correctness.to_json() if self.correctness else None,
            "timing": _timing_json(self.reference_timing, self.solution_timing),
            "speedup": self.speedup,
            "score": self.score,
            "tier_weight": self.tier_weight,
            "weighted_score": self.weighted_score,
            "roofline": {"flops": self.flops, "bytes_moved": self.bytes_moved},
            "output": {"stdout": self.stdout, "stderr": self.stderr, "truncated": self.output_truncated},
            "exit": {"code": self.exit_code, "signal": self.signal},
            "wall_time_s": self.wall_time_s,
            "timed_time_s": self.timed_time_s,
            "overhead_s": max(0.0, self.wall_time_s - self.timed_time_s),
            "warnings": list(self.warnings),
            "attempts": list(self.attempts),
            "speed_of_light": self.speed_of_light.to_json() if self.speed_of_light else None,
            "flags": [f.to_json() for f in self.flags],
            "case_error": self.case_error,
            **({"shapes": [s.to_json() for s in self.shapes]} if self.shapes else {}),
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> CaseResult:
        ref, sol = _timing_from(data)
        output = data.get("output") or {}
        exit_info = data.get("exit") or {}
        roofline = data.get("roofline") or {}
        return cls(
            name=data["name"],
            tier=data["tier"],
            backend=data["backend"],
            device=data.get("device"),
            status=data["status"],
            phase=data.get("phase"),
            reason=data.get("reason"),
            case_path=(data.get("case") or {}).get("path", ""),
            case_sha256=(data.get("case") or {}).get("sha256"),
            solution_path=(data.get("solution") or {}).get("path"),
            solution_sha256=(data.get("solution") or {}).get("sha256"),
            attempt=data.get("attempt", 0),
            correctness=CorrectnessReport.from_json(data["correctness"]) if data.get("correctness") else None,
            reference_timing=ref,
            solution_timing=sol,
            speedup=data.get("speedup"),
            score=data.get("score", 0.0),
            tier_weight=data.get("tier_weight", 1.0),
            weighted_score=data.get("weighted_score", 0.0),
            flops=roofline.get("flops"),
            bytes_moved=roofline.get("bytes_moved"),
            stdout=output.get("stdout", ""),
            stderr=output.get("stderr", ""),
            output_truncated=output.get("truncated", False),
            exit_code=exit_info.get("code"),
            signal=exit_info.get("signal"),
            wall_time_s=data.get("wall_time_s", 0.0),
            timed_time_s=data.get("timed_time_s", 0.0),
            warnings=list(data.get("warnings", [])),
            attempts=list(data.get("attempts", [])),
            speed_of_light=SpeedOfLight.from_json(data["speed_of_light"]) if data.get("speed_of_light") else None,
            flags=[Flag.from_json(f) for f in data.get("flags") or []],
            case_error=bool(data.get("case_error", False)),
            shapes=[ShapeResult.from_json(s) for s in data.get("shapes") or []],
        )
