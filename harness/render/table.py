"""Rich tables for comparisons and eval reports (the run-result table lives in `harness.render.console`).

Functions take artifact payloads (dicts), so the same code renders a comparison just computed and
one read back from comparison.json.
"""

from __future__ import annotations

from typing import Any

from rich.table import Table

VERDICT_STYLE = {
    "improved": "green",
    "regressed": "red",
    "broken": "bold red",
    "fixed": "green",
    "unchanged": "",
    "inconclusive": "yellow",
    "incomparable": "magenta",
    "new": "cyan",
    "missing": "magenta",
}


def fmt_change(case: dict[str, Any]) -> str:
    """``+12.3%`` from a comparison case's ratio, ``-`` when there is none."""
    ratio = case.get("ratio")
    return "-" if ratio is None else f"{(ratio - 1.0) * 100.0:+.1f}%"


def fmt_ci(case: dict[str, Any]) -> str:
    low, high = case.get("ci_low"), case.get("ci_high")
    if low is None or high is None:
        return "-"
    return f"{(low - 1.0) * 100.0:+.1f}% .. {(high - 1.0) * 100.0:+.1f}%"


def fmt_p(value: float | None) -> str:
    return "-" if value is None else f"{value:.2g}"


def fmt_speedup(side: dict[str, Any] | None) -> str:
    value = (side or {}).get("speedup")
    return "-" if value is None else f"{value:.2f}x"


SHAPE_HEADER = ("case", "shape", "sizes", "status", "speedup", "ref ms", "new ms", "spread")


def shape_rows(cases: list[dict[str, Any]]) -> list[list[str]]:
    """One row per shape of every case of several shapes (``SHAPE_HEADER``'s columns, as plain text):
    the case rows show their geometric-mean speedup, these show what it is made of."""
    rows = []
    for c in cases:
        shapes = c.get("shapes") or []
        for shape in shapes:
            timing = shape.get("timing") or {}
            ref, sol = timing.get("reference") or {}, timing.get("solution") or {}
            sizes = ", ".join(f"{k}={v}" for k, v in (shape.get("sizes") or {}).items())
            speedup = shape.get("speedup")
            rows.append(
                [
                    f"{c['tier']}/{c['name']}",
                    f"{shape.get('index', 0) + 1} of {len(shapes)}",
                    sizes,
                    str(shape.get("status")),
                    "-" if speedup is None else f"{speedup:.2f}x",
                    "-" if ref.get("median_ms") is None else f"{ref['median_ms']:.4g}",
                    "-" if sol.get("median_ms") is None else f"{sol['median_ms']:.4g}",
                    "-" if sol.get("cv") is None else f"{sol.get('spread', sol['cv']):.0%}",
                ]
            )
    return rows


def comparison_table(payload: dict[str, Any], title: str | None = None) -> Table:
    """Per case: verdict, change, CI, p-values, both speedups and why."""
    method = payload["method"]
    table = Table(
        title=title or f"comparison (threshold ±{method['threshold_pct']:g}%)", title_justify="left"
    )
    several = len({c["backend"] for c in payload["cases"]}) > 1
    columns = [("backend", "left")] if several else []
    columns += [
        ("tier", "left"),
        ("case", "left"),
        ("verdict", "left"),
        ("change", "right"),
        (f"{method['ci_level']:.0%} CI", "right"),
        ("p holm", "right"),
        ("old", "right"),
        ("new", "right"),
        ("why", "left"),
    ]
    for column, justify in columns:
        table.add_column(column, justify=justify, no_wrap=column != "why")  # type: ignore[arg-type]
    for c in payload["cases"]:
        style = VERDICT_STYLE.get(c["verdict"], "")
        verdict = f"[{style}]{c['verdict']}[/]" if style else c["verdict"]
        table.add_row(
            *([c["backend"]] if several else []),
            c["tier"],
            c["name"],
            verdict,
            fmt_change(c),
            fmt_ci(c),
            fmt_p(c.get("p_adjusted")),
            fmt_speedup(c.get("baseline")),
            fmt_speedup(c.get("candidate")),
            (c.get("why") or "")[:160],
        )
    return table


def comparison_lines(payload: dict[str, Any]) -> list[str]:
    """Summary lines under the table: verdict counts, geometric-mean change, the rule."""
    s = payload["summary"]
    counts = ", ".join(f"{v} {n}" for v, n in s["verdicts"].items() if n)
    geo = s.get("geomean_ratio")
    geo_text = (
        "-" if geo is None else f"{geo:.3f} ({(geo - 1) * 100:+.1f}%) over {s['geomean_cases']} timed case(s)"
    )
    return [
        f"cases: {s['cases']} ({counts or 'none'})",
        f"geometric-mean ratio new/old: {geo_text}",
        f"rule: {payload['method']['rule']}",
    ]


def eval_report_lines(payload: dict[str, Any]) -> list[str]:
    """The decision and the blocking cases of an eval report, one line each."""
    verdict = "[green]ACCEPTABLE[/]" if payload["is_acceptable"] else "[red]NOT ACCEPTABLE[/]"
    score = payload["aggregate_score"]
    lines = [f"eval report: {verdict}; aggregate score {'-' if score is None else f'{score:+.4f}'}"]
    blocking = set(payload["summary"]["blocking"])
    lines += [f"  {c['reason_code']}: {c['message']}" for c in payload["cases"] if c["key"] in blocking][:20]
    return lines
