"""The data that crosses boundaries: one case's result, as stored in journals and artifacts."""

from __future__ import annotations

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


@dataclass
class CaseResult:
    """Everything known about one evaluation of one candidate on one case and backend."""

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

    @property
    def correct(self) -> bool:
        return self.status == "pass"

    @property
    def unstable(self) -> bool:
        """Whether a timing series of this result has a CV above the stability threshold."""
        return any(t is not None and not t.stable for t in (self.reference_timing, self.solution_timing))

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
            "timing": {
                "reference": self.reference_timing.to_json() if self.reference_timing else None,
                "solution": self.solution_timing.to_json() if self.solution_timing else None,
            },
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
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> CaseResult:
        timing = data.get("timing") or {}
        ref, sol = timing.get("reference"), timing.get("solution")
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
            reference_timing=TimingStats.from_json(ref) if ref else None,
            solution_timing=TimingStats.from_json(sol) if sol else None,
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
        )
