"""A self-contained HTML page for a run result or a comparison: inline CSS and inline SVG plots.

No script, no font, no stylesheet or image from elsewhere: the file can be attached to a CI run or
mailed and still shows everything. Plots come from `harness.render.svg`.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from html import escape
from typing import Any

from harness.analysis.speed_of_light import peak_fraction
from harness.render.svg import (
    BAD,
    FASTER,
    NEUTRAL,
    SLOWER,
    Bar,
    Interval,
    RooflinePoint,
    bar_chart,
    forest_plot,
    histogram,
    roofline,
)
from harness.render.table import SHAPE_HEADER, fmt_change, fmt_ci, fmt_p, fmt_speedup, shape_rows

CSS = """
body{font-family:system-ui,-apple-system,"Segoe UI",sans-serif;margin:24px auto;max-width:1000px;color:#222;
 background:#fff;line-height:1.4}
h1{font-size:22px;margin:0 0 4px} h2{font-size:17px;margin:28px 0 8px;border-bottom:1px solid #ddd}
.meta{color:#666;font-size:13px}
.cards{display:flex;flex-wrap:wrap;gap:10px;margin:14px 0}
.card{border:1px solid #ddd;border-radius:6px;padding:8px 12px;min-width:120px}
.card b{display:block;font-size:20px} .card span{color:#666;font-size:12px}
table{border-collapse:collapse;font-size:13px;width:100%} th,td{padding:3px 6px;border-bottom:1px solid #eee;
 text-align:left;vertical-align:top} th{background:#f6f6f6}
td.n{text-align:right;font-variant-numeric:tabular-nums;white-space:nowrap}
.pass,.improved,.fixed{color:#1e7a46} .fail,.error,.broken,.regressed{color:#c0392b;font-weight:600}
.timeout,.missing,.incomparable{color:#8e44ad} .skipped,.unchanged{color:#777} .inconclusive{color:#b7791f}
.new{color:#2471a3} .reason{color:#555;font-size:12px;max-width:420px;word-break:break-word}
.plot{margin:10px 0;overflow-x:auto}
"""
STATUS_COLOR = {"pass": FASTER, "fail": BAD, "error": BAD, "timeout": "#8e44ad", "skipped": NEUTRAL}
VERDICT_COLOR = {
    "improved": FASTER,
    "regressed": BAD,
    "broken": BAD,
    "fixed": FASTER,
    "unchanged": NEUTRAL,
    "inconclusive": "#b7791f",
    "incomparable": "#8e44ad",
    "new": "#2471a3",
    "missing": "#8e44ad",
}


def _num(value: float | None, spec: str, suffix: str = "") -> str:
    return "-" if value is None else format(value, spec) + suffix


def _page(title: str, meta: str, sections: Sequence[str]) -> str:
    return (
        '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<title>{escape(title)}</title><style>{CSS}</style></head><body>"
        f'<h1>{escape(title)}</h1><div class="meta">{meta}</div>' + "".join(sections) + "</body></html>\n"
    )


def _cards(items: Sequence[tuple[str, str]]) -> str:
    return (
        '<div class="cards">'
        + "".join(f'<div class="card"><b>{escape(v)}</b><span>{escape(k)}</span></div>' for k, v in items)
        + "</div>"
    )


def _table(header: Sequence[str], rows: Sequence[Sequence[tuple[str, str]]]) -> str:
    """``rows`` of (html, css class) cells; text must already be escaped."""
    head = "".join(f"<th>{escape(h)}</th>" for h in header)
    body = "".join("<tr>" + "".join(f'<td class="{c}">{v}</td>' for v, c in row) + "</tr>" for row in rows)
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def _meta(payload: dict[str, Any]) -> str:
    env = payload.get("environment") or {}
    packages = env.get("packages") or {}
    bits = [
        f"created {payload.get('created_at')}",
        f"harness {payload.get('harness_version')}",
        f"python {env.get('python')}",
        f"torch {packages.get('torch')}",
    ]
    return escape(" · ".join(str(b) for b in bits))


def run_html(payload: dict[str, Any]) -> str:
    """Summary cards, plots (speedup per case, per tier, distribution), tier and case tables, failures."""
    s, cases = payload["summary"], payload["cases"]
    st = s["statuses"]
    broken = s.get("broken_cases", sum(1 for c in cases if c.get("case_error")))  # not the candidates' errors
    several = len({c["backend"] for c in cases}) > 1
    label = lambda c: f"{c['backend']}/" * several + f"{c['tier']}/{c['name']}"  # noqa: E731
    sections = [
        _cards(
            [
                ("cases", str(s["cases"])),
                ("pass rate", _num(s["pass_rate"], ".0%")),
                ("geomean speedup", _num(s["geomean_speedup"], ".3f", "×")),
                ("weighted score", f"{s['total_weighted_score']:.1f} / {s.get('max_weighted_score', 0):.0f}"),
                (
                    "fail / error / timeout",
                    f"{st.get('fail', 0)} / {st.get('error', 0) - broken} / {st.get('timeout', 0)}",
                ),
                *([("broken cases", str(broken))] if broken else []),
                ("fast_1", _num(s["fast_p"].get("1"), ".0%")),
            ]
        )
    ]
    if not payload.get("complete", True):
        sections.append('<p class="fail">Incomplete run: interrupted or still running.</p>')
    bars = [
        Bar(
            label(c),
            c.get("speedup") if c["status"] == "pass" else None,
            (FASTER if (c.get("speedup") or 0) >= 1 else SLOWER)
            if c["status"] == "pass"
            else STATUS_COLOR.get(c["status"], NEUTRAL),
            "" if c["status"] == "pass" else ("broken case" if c.get("case_error") else c["status"]),
        )
        for c in cases
    ]
    tier_bars = [
        Bar(
            f"{tier} ({t['passed']}/{t['cases']} pass)",
            t.get("geomean_speedup"),
            FASTER if (t.get("geomean_speedup") or 0) >= 1 else SLOWER,
            "" if t.get("geomean_speedup") else "no pass",
        )
        for tier, t in s["tiers"].items()
    ]
    speedups = [c["speedup"] for c in cases if c["status"] == "pass" and c.get("speedup")]
    sections += [
        "<h2>Speedup per case</h2>",
        f'<div class="plot">{bar_chart(bars, "speedup per case (reference time / candidate time)")}</div>',
        "<h2>Per tier</h2>",
        f'<div class="plot">{bar_chart(tier_bars, "geometric-mean speedup of passing cases per tier")}</div>',
        _table(
            ["tier", "cases", "passed", "pass rate", "geomean speedup", "weighted score"],
            [
                [
                    (escape(tier), ""),
                    (str(t["cases"]), "n"),
                    (str(t["passed"]), "n"),
                    (_num(t["pass_rate"], ".0%"), "n"),
                    (_num(t.get("geomean_speedup"), ".3f", "×"), "n"),
                    (f"{t['weighted_score']:.1f} / {t.get('max_weighted_score', 0):.0f}", "n"),
                ]
                for tier, t in s["tiers"].items()
            ],
        ),
        "<h2>Distribution</h2>",
        f'<div class="plot">{histogram(speedups, "distribution of speedups (passing cases)")}</div>',
    ]
    sections += _roofline_sections(cases, label)
    rows = []
    for c in cases:
        ref, sol = (c.get("timing") or {}).get("reference"), (c.get("timing") or {}).get("solution")
        achieved = (c.get("speed_of_light") or {}).get("candidate") or {}
        flags = c.get("flags") or []
        rows.append(
            [
                (escape(label(c)), ""),
                (escape("broken case" if c.get("case_error") else c["status"]), c["status"]),
                (_num(c.get("speedup"), ".2f", "×"), "n"),
                (_num(ref["median_ms"] if ref else None, ".4g"), "n"),
                (_num(sol["median_ms"] if sol else None, ".4g"), "n"),
                (_num(sol.get("spread", sol["cv"]) if sol else None, ".0%"), "n"),
                (_num(achieved.get("gbps"), ".4g"), "n"),
                (_num(achieved.get("tflops"), ".3g"), "n"),
                (_num(peak_fraction(c.get("speed_of_light")), ".0%"), "n"),
                (f"{c['weighted_score']:.1f}", "n"),
                (
                    "<br>".join(
                        f'<span title="{escape(f["message"])}">{escape(f["id"])} (line {f.get("line") or "-"})</span>'
                        for f in flags
                    ),
                    "reason",
                ),
                (escape((c.get("reason") or "")[:400]) if c["status"] != "pass" else "", "reason"),
            ]
        )
    header = ["case", "status", "speedup", "ref ms", "new ms", "spread", "GB/s", "TFLOP/s", "% of peak", "score"]
    sections += ["<h2>Cases</h2>", _table([*header, "flags", "reason"], rows)]
    shape_lines = shape_rows(list(cases))
    if shape_lines:
        sections += [
            "<h2>Shapes</h2>",
            '<p class="meta">A case of several shapes scores the geometric mean of its shapes\' speedups.</p>',
            _table(
                list(SHAPE_HEADER),
                [[(escape(v), "n" if i >= 4 else (v if i == 3 else "")) for i, v in enumerate(r)] for r in shape_lines],
            ),
        ]
    title = f"Kernel benchmark: {payload.get('solutions')}"
    return _page(title, _meta(payload), sections)


def _roofline_sections(cases: Sequence[dict[str, Any]], label: Callable[[dict[str, Any]], str]) -> list[str]:
    """One roofline per device (the peaks the cases were measured against): each case's candidate as a
    filled point coloured by status, its reference as a hollow one; a case of several shapes has a
    point per shape (``case #2``). Nothing without speed-of-light data."""
    groups: dict[str, list[tuple[str, str, dict[str, Any]]]] = {}
    for c in cases:
        shapes = c.get("shapes") or []
        parts = [(f"{label(c)} #{s.get('index', 0) + 1}", s) for s in shapes] if shapes else [(label(c), c)]
        for name, part in parts:
            sol = part.get("speed_of_light")
            if sol and sol.get("flops") and sol.get("bytes_moved"):
                groups.setdefault(f"{c['backend']}: {sol['peaks']['name']}", []).append((name, part["status"], sol))
    sections = []
    for title, members in groups.items():
        peaks = members[0][2]["peaks"]
        points = []
        for name, status, sol in members:
            intensity = sol["flops"] / sol["bytes_moved"]
            for side, hollow in (("reference", True), ("candidate", False)):
                achieved = sol.get(side) or {}
                if achieved.get("tflops"):
                    color = NEUTRAL if hollow else STATUS_COLOR.get(status, NEUTRAL)
                    points.append(RooflinePoint(name, intensity, achieved["tflops"], color, hollow, side))
        plot = roofline(points, peaks.get("memory_gbps"), peaks.get("tflops") or {}, f"roofline, {title}")
        sections += [
            f"<h2>Roofline: {escape(title)}</h2>",
            f'<p class="meta">Peaks: {escape(peaks["source"])}. Filled: candidate (colour: status); '
            "hollow: reference. FLOPs and bytes from the case (bytes: every input, parameter and output once).</p>",
            f'<div class="plot">{plot}</div>',
        ]
    return sections


def comparison_html(payload: dict[str, Any]) -> str:
    """Verdict cards, the change per case with its interval (forest plot), and the case table."""
    s, m, cases = payload["summary"], payload["method"], payload["cases"]
    geo = s.get("geomean_ratio")
    cards = [(v, str(n)) for v, n in s["verdicts"].items() if n]
    cards.append(("geomean change, all timed cases", "-" if geo is None else f"{(geo - 1) * 100:+.1f}%"))
    several = len({c["backend"] for c in cases}) > 1
    rows = [
        Interval(
            f"{c['backend']}/" * several + f"{c['tier']}/{c['name']}",
            c.get("ratio"),
            c.get("ci_low"),
            c.get("ci_high"),
            VERDICT_COLOR.get(c["verdict"], NEUTRAL),
            c["verdict"],
        )
        for c in cases
    ]
    t = m["threshold_pct"] / 100.0
    band = (1 / (1 + t), 1 + t) if t > 0 else None
    plot = forest_plot(
        rows, f"change of normalised time per case, new/old, with {m['ci_level']:.0%} CI", band
    )
    table_rows = [
        [
            (escape(f"{c['tier']}/{c['name']}"), ""),
            (escape(c["verdict"]), c["verdict"]),
            (fmt_change(c), "n"),
            (escape(fmt_ci(c)), "n"),
            (fmt_p(c.get("p_adjusted")), "n"),
            (fmt_speedup(c.get("baseline")), "n"),
            (fmt_speedup(c.get("candidate")), "n"),
            (escape((c.get("why") or "")[:400]), "reason"),
        ]
        for c in cases
    ]
    sections = [
        _cards(cards),
        f'<p class="meta">Rule: {escape(m["rule"])}</p>',
        f'<p class="meta">{escape(m["quantity"])}; {escape(m["direction"])}.</p>',
        "<h2>Change per case</h2>",
        f'<div class="plot">{plot}</div>',
        "<h2>Cases</h2>",
        _table(
            ["case", "verdict", "change", f"{m['ci_level']:.0%} CI", "p (Holm)", "old", "new", "why"],
            table_rows,
        ),
    ]
    base, cand = payload["baseline"], payload["candidate"]
    title = f"A/B comparison: {base.get('solutions')} → {cand.get('solutions')}"
    meta = _meta(payload) + escape(f" · baseline {base.get('path')} · candidate {cand.get('path')}")
    return _page(title, meta, sections)


def render_html(payload: dict[str, Any]) -> str:
    """The HTML page for a run result or a comparison payload."""
    if payload["artifact_type"] == "comparison":
        return comparison_html(payload)
    return run_html(payload)
