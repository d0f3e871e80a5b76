"""A/B comparison of two run results, case by case: a verdict, the change and the evidence behind it.

Cases are matched by key ``backend/tier/name``. Correctness transitions come first (``broken``,
``fixed``), then comparability (``incomparable`` when the case source, device or software stack
differs), then the timing verdict from `harness.analysis.statistics`. The timing quantity is the
candidate's time relative to the reference measured side by side in the same run (the inverse
speedup), so a run on a slower or busier machine does not read as a regression: see
docs/compare.md for the statistics and the rule.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from harness.analysis.statistics import (
    ESTIMATOR_NAME,
    TEST_NAME,
    ShiftTest,
    geometric_mean,
    holm,
    relative_log_times,
    shift_test,
)
from harness.timing import robust_cv

VERDICTS = (
    "improved",
    "regressed",
    "unchanged",
    "inconclusive",
    "incomparable",
    "broken",
    "fixed",
    "new",
    "missing",
)
WRONG_STATUSES = ("fail", "error", "timeout")
TIMED_VERDICTS = ("improved", "regressed", "unchanged", "inconclusive")
ENV_PACKAGES = ("torch", "triton", "torch_npu", "triton-ascend")
DEFAULT_THRESHOLD_PCT = 5.0
DEFAULT_ALPHA = 0.01
DEFAULT_MAX_NOISE_PCT = 10.0  # the run result's own "stable" limit (CV <= 10 %), measured robustly
QUANTITY = (
    "normalised time ratio new/old: the candidate run's solution time relative to its own reference, "
    "divided by the same in the baseline run (= baseline speedup / candidate speedup)"
)
DIRECTION = "ratio < 1 (change_pct < 0) means the candidate is faster; ratio > 1 means slower"


def rule_text(threshold_pct: float, alpha: float, max_noise_pct: float) -> str:
    """The decision rule in words, recorded in every comparison."""
    up, down = 1 + threshold_pct / 100, 1 / (1 + threshold_pct / 100)
    return (
        f"inconclusive when any of the four timing series has a robust CV > {max_noise_pct:g}%; otherwise "
        f"regressed: Holm-adjusted p < {alpha:g} and the whole {1 - alpha:.0%} CI of the ratio >= {up:.4g}; "
        f"improved: Holm-adjusted p < {alpha:g} and the whole CI <= {down:.4g}; "
        f"unchanged: the whole CI inside ({down:.4g}, {up:.4g}); inconclusive: anything else"
    )


def case_fingerprint(case: dict[str, Any]) -> tuple[str | None, str | None]:
    """(fingerprint, source): the outputs' fingerprint when the result has one, else the solution's sha256."""
    fingerprint = (case.get("correctness") or {}).get("output_fingerprint")
    if fingerprint:
        return str(fingerprint), "output"
    sha = (case.get("solution") or {}).get("sha256")
    return (str(sha), "solution_sha256") if sha else (None, None)


def environment_facts(run: dict[str, Any], backend: str, device: str | None) -> dict[str, Any]:
    """Software versions and the device name/arch that a case's timing depends on."""
    env = run.get("environment") or {}
    packages = env.get("packages") or {}
    facts: dict[str, Any] = {name: packages.get(name) for name in ENV_PACKAGES}
    devices = (env.get("backends") or {}).get(backend) or {}
    info = devices.get(device) if isinstance(devices.get(device), dict) else None
    if info is None:
        info = next((d for d in devices.values() if isinstance(d, dict)), {})
    facts["device_name"] = info.get("device_name")
    facts["arch"] = info.get("arch")
    return facts


def _timing(case: dict[str, Any], which: str) -> dict[str, Any] | None:
    return ((case.get("timing") or {}).get(which)) or None


def _timed_parts(case: dict[str, Any]) -> list[dict[str, Any]]:
    """Where a case's timing series are: the case itself, or each of its shapes (a case of several)."""
    shapes = case.get("shapes") or []
    return [s for s in shapes if isinstance(s, dict)] if shapes else [case]


def side_summary(case: dict[str, Any], run: dict[str, Any]) -> dict[str, Any]:
    """One run's view of a case, as recorded in the comparison (a case of several shapes has no single
    pair of medians: they stay null, and ``samples`` counts every shape's)."""
    ref, sol = _timing(case, "reference"), _timing(case, "solution")
    fingerprint, source = case_fingerprint(case)
    solution_series = [t for part in _timed_parts(case) if (t := _timing(part, "solution"))]
    return {
        "status": case["status"],
        "phase": case.get("phase"),
        "reason": case.get("reason"),
        "speedup": case.get("speedup"),
        "reference_median_ms": ref["median_ms"] if ref else None,
        "solution_median_ms": sol["median_ms"] if sol else None,
        "solution_cv": sol.get("cv") if sol else None,
        "samples": sum(len(t["samples_ms"]) for t in solution_series),
        "shapes": len(case.get("shapes") or []) or 1,
        "case_sha256": (case.get("case") or {}).get("sha256"),
        "solution_sha256": (case.get("solution") or {}).get("sha256"),
        "output_fingerprint": fingerprint,
        "fingerprint_source": source,
        "device": case.get("device"),
        "exit_code": (case.get("exit") or {}).get("code"),
        "exit_signal": (case.get("exit") or {}).get("signal"),
        "environment": environment_facts(run, case["backend"], case.get("device")),
    }


@dataclass
class CaseComparison:
    """The verdict on one case key and the evidence for it."""

    backend: str
    tier: str
    name: str
    verdict: str
    why: str
    baseline: dict[str, Any] | None
    candidate: dict[str, Any] | None
    test: ShiftTest | None = None
    p_adjusted: float | None = None
    noise: float | None = None  # largest robust CV of the four timing series
    differences: list[str] = field(default_factory=list)

    @property
    def key(self) -> str:
        return f"{self.backend}/{self.tier}/{self.name}"

    @property
    def ratio(self) -> float | None:
        return self.test.ratio if self.test else None

    def to_json(self) -> dict[str, Any]:
        t = self.test
        return {
            "key": self.key,
            "backend": self.backend,
            "tier": self.tier,
            "name": self.name,
            "verdict": self.verdict,
            "why": self.why,
            "ratio": t.ratio if t else None,
            "change_pct": (t.ratio - 1.0) * 100.0 if t else None,
            "ci_low": math.exp(t.ci_low) if t else None,
            "ci_high": math.exp(t.ci_high) if t else None,
            "ci_level": t.confidence if t else None,
            "test": TEST_NAME if t else None,
            "estimator": ESTIMATOR_NAME if t else None,
            "p_value": t.p_value if t else None,
            "p_adjusted": self.p_adjusted,
            "noise_pct": self.noise * 100.0 if self.noise is not None else None,
            "n_baseline": t.n_baseline if t else None,
            "n_candidate": t.n_candidate if t else None,
            "differences": list(self.differences),
            "baseline": self.baseline,
            "candidate": self.candidate,
        }


@dataclass
class Comparison:
    """Every case's comparison plus the settings that decided the verdicts."""

    cases: list[CaseComparison]
    threshold_pct: float
    alpha: float
    max_noise_pct: float = DEFAULT_MAX_NOISE_PCT
    ignore_environment: bool = False

    def counts(self) -> dict[str, int]:
        return {v: sum(1 for c in self.cases if c.verdict == v) for v in VERDICTS}

    def geomean_ratio(self) -> float | None:
        return geometric_mean([c.ratio for c in self.cases if c.verdict in TIMED_VERDICTS and c.ratio])

    def tripped(self, fail_on: Iterable[str]) -> list[CaseComparison]:
        """Cases whose verdict is one of ``fail_on`` (what a CI gate stops on)."""
        wanted = set(fail_on)
        return [c for c in self.cases if c.verdict in wanted]

    def method(self) -> dict[str, Any]:
        return {
            "quantity": QUANTITY,
            "direction": DIRECTION,
            "test": TEST_NAME,
            "estimator": ESTIMATOR_NAME,
            "samples": (
                "per-sample log(solution/reference), paired by timing round within each run; "
                "a case of several shapes pools its shapes' samples"
            ),
            "ci_level": 1.0 - self.alpha,
            "alpha": self.alpha,
            "correction": "holm",
            "threshold_pct": self.threshold_pct,
            "max_noise_pct": self.max_noise_pct,
            "rule": rule_text(self.threshold_pct, self.alpha, self.max_noise_pct),
            "ignore_environment": self.ignore_environment,
        }

    def summary(self) -> dict[str, Any]:
        timed = [c for c in self.cases if c.verdict in TIMED_VERDICTS and c.ratio]
        geo = self.geomean_ratio()
        return {
            "cases": len(self.cases),
            "verdicts": self.counts(),
            "geomean_ratio": geo,
            "geomean_change_pct": (geo - 1.0) * 100.0 if geo else None,
            "geomean_cases": len(timed),
        }


def _index(run: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {f"{c['backend']}/{c['tier']}/{c['name']}": c for c in run.get("cases", [])}


def _fmt_pct(ratio: float) -> str:
    return f"{(ratio - 1.0) * 100.0:+.1f}%"


def _samples(case: dict[str, Any]) -> Any:
    """Per-sample log(solution/reference) of a case; for several shapes each shape's, pooled (each
    shape paired within itself), so a change on any shape moves the case."""
    pooled = []
    for part in _timed_parts(case):
        ref, sol = _timing(part, "reference"), _timing(part, "solution")
        if not ref or not sol or len(ref["samples_ms"]) < 2 or len(sol["samples_ms"]) < 2:
            return None
        pooled.append(relative_log_times(ref["samples_ms"], sol["samples_ms"]))
    return pooled[0] if len(pooled) == 1 else np.concatenate(pooled)


def _noise(*cases: dict[str, Any]) -> float:
    series = [_timing(p, w) for c in cases for p in _timed_parts(c) for w in ("reference", "solution")]
    return max(robust_cv(s["samples_ms"]) for s in series if s)


def _differences(b: dict[str, Any], c: dict[str, Any], ignore_environment: bool) -> list[str]:
    """What makes the two timings incomparable; a changed case source counts even with ignore_environment."""
    found = []
    if b["case_sha256"] and c["case_sha256"] and b["case_sha256"] != c["case_sha256"]:
        found.append("case source (sha256) differs")
    if b.get("shapes", 1) != c.get("shapes", 1):
        found.append(f"shapes: {b.get('shapes', 1)} -> {c.get('shapes', 1)}")
    if not ignore_environment:
        for fact, old in b["environment"].items():
            new = c["environment"].get(fact)
            if old != new:
                found.append(f"{fact}: {old} -> {new}")
    return found


def _classify(
    key: str,
    old: dict[str, Any] | None,
    new: dict[str, Any] | None,
    baseline: dict[str, Any],
    candidate: dict[str, Any],
    confidence: float,
    ignore_environment: bool,
) -> CaseComparison:
    """Every verdict except the timing ones (left as 'inconclusive' with a test attached)."""
    backend, tier, name = key.split("/", 2)
    b = side_summary(old, baseline) if old else None
    c = side_summary(new, candidate) if new else None
    made = lambda verdict, why: CaseComparison(backend, tier, name, verdict, why, b, c)  # noqa: E731
    if b is None or (b["status"] == "skipped" and c is not None and c["status"] != "skipped"):
        return made("new", "no baseline result" if b is None else f"skipped in the baseline: {b['reason']}")
    if c is None or c["status"] == "skipped":
        if c is not None and b["status"] == "skipped":
            return made("unchanged", f"skipped in both runs: {c['reason']}")
        return made(
            "missing", "not in the candidate run" if c is None else f"skipped in the candidate: {c['reason']}"
        )
    was_ok, is_ok = b["status"] == "pass", c["status"] == "pass"
    if was_ok and not is_ok:
        # A case file that no longer loads breaks the run as surely as a wrong kernel; the line says whose fault.
        culprit = "broken case, the case file is at fault: " if (new or {}).get("case_error") else ""
        return made("broken", f"{culprit}{c['status']} now ({c['phase']}): {c['reason']}")
    if is_ok and not was_ok:
        return made("fixed", f"passes now; was {b['status']}: {b['reason']}")
    if not is_ok:
        return made("unchanged", f"{c['status']} in both runs; now: {c['reason']}")
    differences = _differences(b, c, ignore_environment)
    result = made("inconclusive", "")
    result.differences = differences
    sa, sb = _samples(old or {}), _samples(new or {})
    if sa is not None and sb is not None and old and new:
        result.test = shift_test(sa, sb, confidence)
        result.noise = _noise(old, new)
    if differences:
        result.verdict = "incomparable"
        result.why = "; ".join(differences)
    elif result.test is None:
        result.why = "too few timing samples to test"
    return result


def _evidence(case: CaseComparison) -> str:
    t = case.test
    assert t is not None
    ci = f"{_fmt_pct(math.exp(t.ci_low))}..{_fmt_pct(math.exp(t.ci_high))}"
    p = f"p_holm={case.p_adjusted:.2g}" if case.p_adjusted is not None else f"p={t.p_value:.2g}"
    return f"change {_fmt_pct(t.ratio)}, {t.confidence:.0%} CI {ci}, {p}"


def _decide(case: CaseComparison, alpha: float, threshold_pct: float) -> None:
    t = case.test
    assert t is not None and case.p_adjusted is not None
    bound = math.log1p(threshold_pct / 100.0)
    evidence = _evidence(case)
    significant = case.p_adjusted < alpha
    if significant and t.ci_low >= bound:
        case.verdict, case.why = "regressed", f"slower: {evidence}"
    elif significant and t.ci_high <= -bound:
        case.verdict, case.why = "improved", f"faster: {evidence}"
    elif -bound < t.ci_low and t.ci_high < bound:
        case.verdict, case.why = "unchanged", f"within ±{threshold_pct:g}%: {evidence}"
    else:
        case.verdict, case.why = "inconclusive", f"too noisy to tell at ±{threshold_pct:g}%: {evidence}"


def compare_runs(
    baseline: dict[str, Any],
    candidate: dict[str, Any],
    threshold_pct: float = DEFAULT_THRESHOLD_PCT,
    alpha: float = DEFAULT_ALPHA,
    max_noise_pct: float = DEFAULT_MAX_NOISE_PCT,
    ignore_environment: bool = False,
) -> Comparison:
    """Compare two run-result payloads case by case (keys: backend/tier/name)."""
    if not 0 < alpha < 1:
        raise ValueError("alpha must be between 0 and 1")
    if threshold_pct < 0:
        raise ValueError("the threshold must be >= 0 percent")
    old, new = _index(baseline), _index(candidate)
    keys = list(old) + [k for k in new if k not in old]
    cases = [
        _classify(k, old.get(k), new.get(k), baseline, candidate, 1.0 - alpha, ignore_environment)
        for k in keys
    ]
    open_cases = [c for c in cases if c.test is not None and c.verdict == "inconclusive"]
    family = []  # Holm's family: the cases that can still get a timing verdict (comparable, both pass, quiet)
    for c in open_cases:
        if (c.noise or 0.0) * 100.0 > max_noise_pct:
            noise = f"robust CV {(c.noise or 0) * 100:.0f}% > {max_noise_pct:g}%"
            c.why = f"timing too noisy to tell ({noise}): {_evidence(c)}"
        else:
            family.append(c)
    for c, p in zip(family, holm([c.test.p_value for c in family if c.test]), strict=True):
        c.p_adjusted = p
        _decide(c, alpha, threshold_pct)
    return Comparison(cases, threshold_pct, alpha, max_noise_pct, ignore_environment)


def comparison_payload(
    comparison: Comparison,
    provenance: dict[str, Any],
    environment: dict[str, Any],
    baseline_info: dict[str, Any],
    candidate_info: dict[str, Any],
) -> dict[str, Any]:
    """The `comparison` artifact (schema v1/comparison)."""
    from harness.artifacts.writing import envelope

    payload = envelope("comparison", provenance, environment)
    payload.update(
        baseline=baseline_info,
        candidate=candidate_info,
        method=comparison.method(),
        summary=comparison.summary(),
        cases=[c.to_json() for c in comparison.cases],
    )
    return payload


def parse_fail_on(text: str | None) -> list[str]:
    """``regressed,broken`` → ['regressed', 'broken']; ValueError naming an unknown verdict."""
    if not text:
        return []
    wanted = [v.strip() for v in text.split(",") if v.strip()]
    unknown = [v for v in wanted if v not in VERDICTS]
    if unknown:
        raise ValueError(f"unknown verdict(s) {', '.join(unknown)}; choose from {', '.join(VERDICTS)}")
    return wanted


def sorted_keys(cases: Sequence[CaseComparison]) -> list[CaseComparison]:
    """Cases ordered by backend, tier number and name (what tables show)."""
    return sorted(cases, key=lambda c: (c.backend, int(c.tier[1:]) if c.tier[1:].isdigit() else 0, c.name))
