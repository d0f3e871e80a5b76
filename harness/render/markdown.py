"""Markdown for a pull-request comment or ``$GITHUB_STEP_SUMMARY``: a run result or a comparison.

GitHub-flavoured: pipe tables, ``<details>`` for long case lists, no HTML beyond that, so it reads
the same in a CI log. Cell text is escaped (pipes, newlines) and long reasons are cut.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from harness.analysis.speed_of_light import peak_fraction
from harness.render.table import SHAPE_HEADER, fmt_change, fmt_ci, fmt_p, fmt_speedup, shape_rows

FOLD_AFTER = 25  # case tables longer than this go inside <details>
REASON_CHARS = 240


def cell(value: Any) -> str:
    """Text safe inside a markdown table cell."""
    text = "" if value is None else str(value)
    return text.replace("\\", "\\\\").replace("|", "\\|").replace("\r", " ").replace("\n", " ").strip()


def _cut(text: str | None, limit: int = REASON_CHARS) -> str:
    text = (text or "").strip()
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _num(value: float | None, spec: str, suffix: str = "") -> str:
    return "-" if value is None else format(value, spec) + suffix


def _unstable(case: dict[str, Any]) -> bool:
    """Whether a timing series of the case, or of one of its shapes, is marked unstable."""
    blocks = [case.get("timing") or {}] + [s.get("timing") or {} for s in case.get("shapes") or []]
    series = [t for b in blocks for t in (b.get("reference"), b.get("solution")) if t is not None]
    return any(t.get("stable") is False for t in series)


def table(header: Sequence[str], rows: Sequence[Sequence[Any]], right: Sequence[int] = ()) -> list[str]:
    """A pipe table; columns listed in ``right`` are right-aligned."""
    align = ["---:" if i in right else "---" for i in range(len(header))]
    lines = ["| " + " | ".join(cell(h) for h in header) + " |", "| " + " | ".join(align) + " |"]
    lines += ["| " + " | ".join(cell(v) for v in row) + " |" for row in rows]
    return lines


def _fold(summary: str, lines: list[str], rows: int) -> list[str]:
    if rows <= FOLD_AFTER:
        return lines
    return ["<details>", f"<summary>{summary}</summary>", "", *lines, "", "</details>"]


def run_markdown(payload: dict[str, Any]) -> str:
    """Summary, per-tier table, per-case table and failures with reasons of a run result."""
    s, cases = payload["summary"], payload["cases"]
    st = s["statuses"]
    backends = ", ".join(sorted({c["backend"] for c in cases})) or "-"
    out = [f"## Kernel benchmark: `{cell(payload.get('solutions'))}` on {backends}", ""]
    if not payload.get("complete", True):
        out += ["> [!WARNING]", "> Incomplete run: it was interrupted or is still running.", ""]
    broken = s.get("broken_cases", sum(1 for c in cases if c.get("case_error")))
    unstable = s.get("unstable", sum(1 for c in cases if _unstable(c) and not c.get("case_error")))
    out += [
        f"**{s['cases']} cases**: {st.get('pass', 0)} pass, {st.get('fail', 0)} fail, "
        f"{st.get('error', 0) - broken} error, "
        f"{st.get('timeout', 0)} timeout, {st.get('skipped', 0)} skipped, {broken} broken case(s), "
        f"{unstable} with unstable timing. "
        f"Pass rate **{_num(s['pass_rate'], '.0%')}**, "
        f"geomean speedup **{_num(s['geomean_speedup'], '.3f', '×')}**, "
        f"weighted score **{s['total_weighted_score']:.1f}** / {s.get('max_weighted_score', 0):.1f}, "
        f"fast_1 {_num(s['fast_p'].get('1'), '.0%')}, fast_2 {_num(s['fast_p'].get('2'), '.0%')}.",
        "",
        "### Per tier",
        "",
    ]
    tier_rows = [
        [
            tier,
            t["cases"],
            t["passed"],
            _num(t["pass_rate"], ".0%"),
            _num(t.get("geomean_speedup"), ".3f", "×"),
            f"{t['weighted_score']:.1f} / {t.get('max_weighted_score', 0):.1f}",
        ]
        for tier, t in s["tiers"].items()
    ]
    out += table(
        ["tier", "cases", "passed", "pass rate", "geomean speedup", "weighted score"],
        tier_rows,
        (1, 2, 3, 4, 5),
    )
    case_rows = []
    for c in cases:
        ref, sol = (c.get("timing") or {}).get("reference"), (c.get("timing") or {}).get("solution")
        case_rows.append(
            [
                c["tier"],
                c["name"],
                "broken case" if c.get("case_error") else c["status"],
                _num(c.get("speedup"), ".2f", "×"),
                _num(ref["median_ms"] if ref else None, ".4g"),
                _num(sol["median_ms"] if sol else None, ".4g"),
                _num(sol.get("spread", sol["cv"]) if sol else None, ".0%") + (" unstable" if _unstable(c) else ""),
                _num(peak_fraction(c.get("speed_of_light")), ".0%"),
                f"{c['weighted_score']:.1f}",
                ", ".join(sorted({f["id"] for f in c.get("flags") or []})),
            ]
        )
    header = ["tier", "case", "status", "speedup", "ref ms", "new ms", "spread", "% of peak", "score", "flags"]
    out += ["", "### Cases", ""]
    out += _fold(f"All {len(cases)} cases", table(header, case_rows, (3, 4, 5, 6, 7, 8)), len(case_rows))
    shape_lines = shape_rows(cases)
    if shape_lines:
        several = sum(1 for c in cases if c.get("shapes"))
        out += ["", f"### Shapes ({several} cases of several shapes)", ""]
        out += ["A case of several shapes scores the geometric mean of its shapes' speedups; its times are here.", ""]
        out += _fold(f"{len(shape_lines)} shapes", table(SHAPE_HEADER, shape_lines, (4, 5, 6, 7)), len(shape_lines))
    failures = [c for c in cases if c["status"] in ("fail", "error", "timeout")]
    if failures:
        out += ["", f"### Failures ({len(failures)})", ""]
        out += [
            f"- `{c['tier']}/{c['name']}` on {c['backend']}: "
            f"**{'broken case' if c.get('case_error') else c['status']}** in {c.get('phase') or '-'}: "
            f"{cell(_cut(c.get('reason')))}"
            for c in failures
        ]
    flagged = [c for c in cases if c.get("flags")]
    if flagged:
        lines = [
            f"- `{c['tier']}/{c['name']}`: "
            + "; ".join(cell(f"{f['id']} (line {f.get('line') or '-'}: {f['message']})") for f in c["flags"])
            for c in flagged
        ]
        out += ["", f"### Static flags ({len(flagged)} cases)", ""]
        out += _fold(f"Flags of {len(flagged)} cases", lines, len(lines))
    return "\n".join(out) + "\n"


ATTENTION = ("broken", "regressed", "missing", "incomparable", "fixed", "improved", "new")


def comparison_markdown(payload: dict[str, Any]) -> str:
    """Verdict counts, the rule, the cases that need attention and every case (folded when long)."""
    s, m, cases = payload["summary"], payload["method"], payload["cases"]
    base, cand = payload["baseline"], payload["candidate"]
    counts = " · ".join(f"**{n}** {v}" for v, n in s["verdicts"].items() if n) or "no cases"
    geo = s.get("geomean_ratio")
    out = [
        f"## A/B comparison: `{cell(base.get('solutions'))}` → `{cell(cand.get('solutions'))}`",
        "",
        counts,
        "",
        f"Geometric-mean time ratio new/old: **{_num(geo, '.3f')}**"
        + (f" ({(geo - 1) * 100:+.1f}%) over {s['geomean_cases']} timed case(s)" if geo else ""),
        "",
        f"<sub>Rule: {cell(m['rule'])}. Test: {m['test']} on per-sample log(solution/reference), "
        f"{m['estimator']} estimate, {m['ci_level']:.0%} CI, Holm correction. "
        f"Baseline `{cell(base.get('path'))}`, "
        f"candidate `{cell(cand.get('path'))}`.</sub>",
    ]
    header = ["case", "verdict", "change", f"{m['ci_level']:.0%} CI", "p (Holm)", "old", "new", "why"]

    def row(c: dict[str, Any]) -> list[Any]:
        return [
            f"{c['tier']}/{c['name']}"
            + (f" ({c['backend']})" if len({x["backend"] for x in cases}) > 1 else ""),
            c["verdict"],
            fmt_change(c),
            fmt_ci(c),
            fmt_p(c.get("p_adjusted")),
            fmt_speedup(c.get("baseline")),
            fmt_speedup(c.get("candidate")),
            _cut(c.get("why"), 160),
        ]

    notable = sorted(
        (c for c in cases if c["verdict"] in ATTENTION), key=lambda c: ATTENTION.index(c["verdict"])
    )
    if notable:
        out += ["", "### Needs attention", ""]
        out += table(header, [row(c) for c in notable], (2, 3, 4, 5, 6))
    out += ["", "### All cases", ""]
    out += _fold(
        f"All {len(cases)} cases", table(header, [row(c) for c in cases], (2, 3, 4, 5, 6)), len(cases)
    )
    return "\n".join(out) + "\n"


def render_markdown(payload: dict[str, Any]) -> str:
    """Markdown for a run result or a comparison payload."""
    if payload["artifact_type"] == "comparison":
        return comparison_markdown(payload)
    return run_markdown(payload)
