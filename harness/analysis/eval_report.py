"""The eval report: what an optimisation agent needs to decide whether to keep a change.

Built on a `Comparison`. Per case a score (the speed gain when the output is correct and the change
is a real improvement; 0 for noise; the loss for a regression; 0 with a veto when the output is
wrong; null when unknown), one reason code the agent can act on with a one-line message, and an
output fingerprint so two runs can tell whether the output changed. ``is_acceptable`` is true only
when nothing is wrong, regressed or unknown and at least one case improved; one broken case vetoes
the whole change however much faster the rest got.
"""

from __future__ import annotations

import math
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from harness.analysis.compare import CaseComparison, Comparison, compare_runs
from harness.analysis.speed_of_light import TOO_FAST
from harness.analysis.static_flags import STRICT_PREFIX

SCORE_RULE = (
    "score = old/new speed ratio - 1 when the output is correct and the verdict is improved or regressed; "
    "0 when unchanged, inconclusive, fixed or skipped; 0 with veto when the candidate's output is wrong "
    "(fail, error, timeout); null when unknown (new, missing, incomparable)"
)
AGGREGATE_RULE = (
    "acceptable: geometric mean of (1 + score) over all cases, minus 1; otherwise min(0, worst known "
    "score), a veto counting as 0; null when no case has a known score"
)
REASON_CODES = {
    "IMPROVED": "faster beyond the threshold, significantly; keep it",
    "REGRESSED": "slower beyond the threshold, significantly",
    "UNCHANGED": "same speed within the threshold",
    "NOISE": "timings too noisy to tell; a gain here does not count (rerun with a larger --budget-ms)",
    "FIXED": "passes now and did not before",
    "SKIPPED": "skipped in both runs",
    "OUTPUT_MISMATCH": "wrong output (shape, dtype, NaN/Inf or values beyond tolerance)",
    "INPUTS_MODIFIED": "the candidate wrote into its input tensors",
    "STALE_OUTPUT": "the timed call or fresh inputs gave a wrong output (cached results?)",
    "LOAD_ERROR": "the solution file could not be imported or ModelNew not built",
    "RUNTIME_ERROR": "the candidate raised an error while running",
    "CRASHED": "the candidate process died (signal or exit)",
    "TIMEOUT": "no result within the timeout",
    "TIMER_UNTRUSTED": "the candidate's reported times contradict the supervisor's clock",
    "FASTER_THAN_HARDWARE": "the candidate's time is below the device's physical floor (speed of light)",
    "STRICT_FLAG": "--strict made a static flag of the solution's source (stream, thread, ...) a failure",
    "NO_SOLUTION": "no solution file for the case",
    "NO_BASELINE": "the baseline has no result for the case",
    "MISSING": "the candidate run has no result for the case",
    "CASE_CHANGED": "the case source differs between the runs",
    "ENVIRONMENT_CHANGED": "device or software versions differ between the runs",
}
FINGERPRINT_RULE = "correctness.output_fingerprint when the results carry it, else the solution file's sha256"
WRONG = ("fail", "error", "timeout")


@dataclass(frozen=True)
class CaseVerdict:
    """One case of the eval report."""

    comparison: CaseComparison
    score: float | None
    veto: bool
    code: str
    message: str

    def to_json(self) -> dict[str, Any]:
        c = self.comparison
        b, n = c.baseline or {}, c.candidate or {}
        old_fp, new_fp = b.get("output_fingerprint"), n.get("output_fingerprint")
        same_source = b.get("fingerprint_source") == n.get("fingerprint_source")
        return {
            "key": c.key,
            "backend": c.backend,
            "tier": c.tier,
            "name": c.name,
            "verdict": c.verdict,
            "score": self.score,
            "veto": self.veto,
            "reason_code": self.code,
            "message": self.message,
            "speed_ratio": 1.0 / c.ratio if c.ratio else None,
            "baseline_status": b.get("status"),
            "candidate_status": n.get("status"),
            "candidate_speedup": n.get("speedup"),
            "output_fingerprint": {
                "baseline": old_fp,
                "candidate": new_fp,
                "source": n.get("fingerprint_source") or b.get("fingerprint_source"),
                "changed": (old_fp != new_fp) if old_fp and new_fp and same_source else None,
            },
        }


def _wrong_code(side: dict[str, Any]) -> str:
    status, phase, reason = side["status"], side.get("phase"), side.get("reason") or ""
    if status == "timeout":
        return "TIMEOUT"
    if reason.startswith(STRICT_PREFIX):
        return "STRICT_FLAG"
    if reason.startswith(TOO_FAST):
        return "FASTER_THAN_HARDWARE"
    if status == "fail":
        if "modified its input" in reason:
            return "INPUTS_MODIFIED"
        if reason.startswith(("the output of the last timed call", "the output for fresh values")):
            return "STALE_OUTPUT"
        return "OUTPUT_MISMATCH"
    if reason.startswith("no solution file"):
        return "NO_SOLUTION"
    if "timer" in reason or ("reported" in reason and "wall time" in reason):
        return "TIMER_UNTRUSTED"
    if (
        side.get("exit_code") is not None
        or side.get("exit_signal")
        or "without delivering a result" in reason
    ):
        return "CRASHED"
    if phase in ("loading_modules", "model_init"):
        return "LOAD_ERROR"
    return "RUNTIME_ERROR"


def judge(case: CaseComparison) -> CaseVerdict:
    """Score, veto, reason code and message of one compared case."""
    key, new = f"{case.tier}/{case.name}", case.candidate
    if new is not None and new["status"] in WRONG:
        code = _wrong_code(new)
        where = f" in {new['phase']}" if new.get("phase") else ""
        return CaseVerdict(
            case, 0.0, True, code, f"{key}: {new['status']}{where}: {new.get('reason') or '-'}"
        )
    verdict, why = case.verdict, case.why
    if verdict in ("improved", "regressed"):
        assert case.ratio is not None
        gain = 1.0 / case.ratio - 1.0
        code = "IMPROVED" if verdict == "improved" else "REGRESSED"
        return CaseVerdict(case, gain, False, code, f"{key}: {gain:+.1%} speed vs the baseline ({why})")
    simple = {
        "unchanged": (0.0, "SKIPPED" if new and new["status"] == "skipped" else "UNCHANGED"),
        "inconclusive": (0.0, "NOISE"),
        "fixed": (0.0, "FIXED"),
        "new": (None, "NO_BASELINE"),
        "missing": (None, "MISSING"),
    }
    if verdict == "incomparable":
        code = (
            "CASE_CHANGED"
            if any(d.startswith("case source") for d in case.differences)
            else "ENVIRONMENT_CHANGED"
        )
        return CaseVerdict(case, None, False, code, f"{key}: not comparable: {why}")
    score, code = simple[verdict]
    return CaseVerdict(case, score, False, code, f"{key}: {verdict}: {why}")


@dataclass(frozen=True)
class EvalReport:
    """Per-case verdicts and the decision over all of them."""

    cases: list[CaseVerdict]

    @property
    def blocking(self) -> list[CaseVerdict]:
        """Cases that make the change unacceptable: wrong output, regression, or unknown."""
        return [v for v in self.cases if v.veto or v.score is None or v.code == "REGRESSED"]

    @property
    def is_acceptable(self) -> bool:
        return not self.blocking and any(v.code in ("IMPROVED", "FIXED") for v in self.cases)

    @property
    def aggregate_score(self) -> float | None:
        if self.is_acceptable:
            scores = [v.score for v in self.cases if v.score is not None]
            return math.exp(sum(math.log1p(s) for s in scores) / len(scores)) - 1.0
        known = [v.score for v in self.cases if v.score is not None]
        return min(0.0, *known) if known else None

    def summary(self) -> dict[str, Any]:
        codes = Counter(v.code for v in self.cases)
        return {
            "cases": len(self.cases),
            "improved": sum(1 for v in self.cases if v.code == "IMPROVED"),
            "regressed": sum(1 for v in self.cases if v.code == "REGRESSED"),
            "vetoed": sum(1 for v in self.cases if v.veto),
            "unknown": sum(1 for v in self.cases if v.score is None),
            "reason_codes": dict(sorted(codes.items())),
            "blocking": [v.comparison.key for v in self.blocking],
        }


def build_report(comparison: Comparison) -> EvalReport:
    return EvalReport([judge(c) for c in comparison.cases])


def eval_report_payload(
    comparison: Comparison,
    provenance: dict[str, Any],
    environment: dict[str, Any],
    baseline_info: dict[str, Any],
    candidate_info: dict[str, Any],
) -> dict[str, Any]:
    """The `eval_report` artifact (schema v1/eval-report)."""
    from harness.artifacts.writing import envelope

    report = build_report(comparison)
    payload = envelope("eval_report", provenance, environment)
    payload.update(
        baseline=baseline_info,
        candidate=candidate_info,
        method={
            **comparison.method(),
            "score_rule": SCORE_RULE,
            "aggregate_rule": AGGREGATE_RULE,
            "fingerprint": FINGERPRINT_RULE,
        },
        is_acceptable=report.is_acceptable,
        aggregate_score=report.aggregate_score,
        summary=report.summary(),
        reason_codes=REASON_CODES,
        cases=[v.to_json() for v in report.cases],
    )
    return payload


def write_eval_report(
    baseline_path: Path,
    result_payload: dict[str, Any],
    out_path: Path,
    threshold: float,
    alpha: float,
) -> dict[str, Any]:
    """Compare a finished run (``result_payload``) with the run result at ``baseline_path`` and write
    the eval report to ``out_path`` (validated first); returns the written payload.

    For ``harness run --baseline OLD_RESULT.json --eval-report FILE``: ``threshold`` in percent,
    ``alpha`` the significance level. BadInput when the baseline is unusable.
    """
    from harness.artifacts.reading import describe_payload, describe_run, load_artifact
    from harness.artifacts.writing import write_artifact

    baseline = load_artifact(Path(baseline_path), ["run_result"])
    comparison = compare_runs(baseline.payload, result_payload, threshold_pct=threshold, alpha=alpha)
    provenance = dict(result_payload["provenance"])
    provenance["config"] = {
        **provenance.get("config", {}),
        "baseline": str(baseline_path),
        "threshold_pct": threshold,
        "alpha": alpha,
    }
    payload = eval_report_payload(
        comparison,
        provenance,
        result_payload["environment"],
        describe_run(baseline),
        describe_payload(result_payload, None, None),
    )
    write_artifact(Path(out_path), payload)
    return payload
