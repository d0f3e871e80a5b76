"""Human output: the results table, the summary lines, a case panel and the progress bar."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from rich.console import Console
from rich.markup import escape
from rich.panel import Panel
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from harness.analysis.speed_of_light import describe, peak_fraction
from harness.results import CaseResult, ShapeResult
from harness.suite.shapes import describe as describe_sizes
from harness.suite.shapes import shape_label
from harness.timing import STABLE_CV

STATUS_STYLE = {"pass": "green", "fail": "red", "error": "red", "timeout": "magenta", "skipped": "dim"}


def _fmt(value: float | None, spec: str) -> str:
    return "-" if value is None else format(value, spec)


def _timing_cells(r: CaseResult | ShapeResult) -> list[str]:
    """Speedup, both medians, the candidate's CV and its share of the peak: a case's or a shape's."""
    return [
        f"{r.speedup:.2f}x" if r.speedup else "-",
        _fmt(r.reference_timing.median_ms if r.reference_timing else None, ".3f"),
        _fmt(r.solution_timing.median_ms if r.solution_timing else None, ".3f"),
        spread_text(r),
        _fmt(peak_fraction(r.speed_of_light.to_json() if r.speed_of_light else None), ".0%"),
    ]


def results_table(results: Sequence[CaseResult], title: str = "results") -> Table:
    table = Table(title=title, title_justify="left")
    several = len({r.backend for r in results}) > 1
    columns = [("backend", "left")] if several else []
    columns += [
        ("tier", "left"), ("case", "left"), ("status", "left"), ("speedup", "right"), ("ref ms", "right"),
        ("new ms", "right"), ("spread", "right"), ("peak", "right"), ("score", "right"), ("flags", "left"),
        ("reason", "left"),
    ]  # fmt: skip
    for column, justify in columns:
        table.add_column(column, justify=justify, no_wrap=column != "reason")  # type: ignore[arg-type]
    for r in results:
        table.add_row(
            *([r.backend] if several else []),
            r.tier,
            r.name,
            status_text(r),
            *_timing_cells(r),
            _fmt(r.weighted_score, ".1f"),
            escape(",".join(sorted({f.id for f in r.flags}))),
            escape((r.reason or "")[:200]) if r.status != "pass" else "",
        )
        for shape in r.shapes:  # a case of several shapes: what its geometric-mean speedup is made of
            shape_style = STATUS_STYLE.get(shape.status, "dim")
            table.add_row(
                *([""] if several else []),
                "",
                f"  #{shape.index + 1} {escape(describe_sizes(shape.sizes))}",
                f"[{shape_style}]{shape.status}[/]",
                *_timing_cells(shape),
                "",
                "",
                "",
            )
    return table


def status_text(r: CaseResult) -> str:
    """The status cell: a broken case (the case file is at fault) is told apart from a candidate's error."""
    if r.case_error:
        return "[red]broken case[/]"
    return f"[{STATUS_STYLE.get(r.status, '')}]{r.status}[/]"


def spread_text(r: CaseResult | ShapeResult) -> str:
    """The larger spread (robust CV) of the two timing series, marked when above the stability threshold."""
    series = [t for t in (r.reference_timing, r.solution_timing) if t is not None]
    if not series:
        return "-"
    worst = max(series, key=lambda t: t.spread)
    return f"[yellow]{worst.spread:.1%} unstable[/]" if r.unstable else f"{worst.spread:.1%}"


def summary_lines(payload: dict[str, Any]) -> list[str]:
    s = payload["summary"]
    st = s["statuses"]
    geo = s["geomean_speedup"]
    cases = [CaseResult.from_json(c) for c in payload.get("cases") or []]
    broken = s.get("broken_cases", sum(1 for c in cases if c.case_error))
    unstable = s.get("unstable", sum(1 for c in cases if c.unstable and not c.case_error))
    lines = [
        f"cases: {s['cases']} (pass {st['pass']}, fail {st['fail']}, error {st['error'] - broken}, "
        f"timeout {st['timeout']}, skipped {st['skipped']}, broken case {broken}); "
        f"pass rate {_fmt(s['pass_rate'], '.0%')}; unstable timing (spread > {STABLE_CV:.0%}) {unstable}",
        f"weighted score {s['total_weighted_score']:.1f} / {s.get('max_weighted_score', 0):.1f}; "
        f"geomean speedup {_fmt(geo, '.3f')}x; fast_1 {_fmt(s['fast_p'].get('1'), '.0%')}, "
        f"fast_1.5 {_fmt(s['fast_p'].get('1.5'), '.0%')}, fast_2 {_fmt(s['fast_p'].get('2'), '.0%')}",
        f"wall time {s.get('wall_time_s', 0):.1f} s, inside timed calls {s.get('timed_time_s', 0):.1f} s; "
        f"harness overhead per evaluated case {_fmt(s.get('overhead_per_case_s'), '.2f')} s",
    ]
    if not payload.get("complete", True):
        lines.append("[red]INCOMPLETE[/]: the run was interrupted")
    return lines


def case_panel(result: CaseResult) -> Panel:
    style = STATUS_STYLE.get(result.status, "")
    lines = [f"status: [{style}]{result.status}[/]  (phase {result.phase or '-'})"]
    if result.reason:
        lines.append(f"reason: {escape(result.reason)}")
    c = result.correctness
    if c:
        lines.append(
            f"correctness: {c.passed_trials}/{c.trials} trials; max abs error {_fmt(c.max_abs_error, '.3g')}, "
            f"max rel error {_fmt(c.max_rel_error, '.3g')} (atol {c.atol:g}, rtol {c.rtol:g})"
        )
        if c.normalized_error is not None or c.centered_error is not None or c.gate:
            lines.append(
                f"scale-free: normalized error {_fmt(c.normalized_error, '.3g')} "
                f"(tol {_fmt(c.normalized_tol, '.3g')}), centred error {_fmt(c.centered_error, '.3g')} "
                f"(tol {_fmt(c.centered_tol, '.3g')})"
                + (f"; failed gate: {c.gate}" if c.gate else "")
            )
    if result.reference_timing and result.solution_timing:
        ref, sol = result.reference_timing, result.solution_timing
        lines.append(
            f"reference {ref.median_ms:.4f} ms (IQR {ref.iqr_ms:.4f}, spread {ref.spread:.1%}); "
            f"candidate {sol.median_ms:.4f} ms (IQR {sol.iqr_ms:.4f}, spread {sol.spread:.1%}); n={sol.repetitions}"
        )
    for shape in result.shapes:
        shape_ref, shape_sol = shape.reference_timing, shape.solution_timing
        timing = (
            f"reference {shape_ref.median_ms:.4f} ms, candidate {shape_sol.median_ms:.4f} ms "
            f"(spread {shape_sol.spread:.1%}, n={shape_sol.repetitions})"
            if shape_ref and shape_sol
            else (shape.reason or "")
        )
        speed = f"{shape.speedup:.3f}x; " if shape.speedup else ""
        label = escape(shape_label(shape.index, len(result.shapes), shape.sizes))
        lines.append(f"{label}: {shape.status}; {speed}{escape(timing)}")
    if result.unstable:
        lines.append(
            f"[yellow]unstable timing[/]: a spread (robust CV) above {STABLE_CV:.0%}; the speedup is noisy, run again"
        )
    if result.speedup:
        mean = f" (geometric mean over {len(result.shapes)} shapes)" if result.shapes else ""
        lines.append(
            f"speedup {result.speedup:.3f}x{mean}, score {result.score:.1f} (weighted {result.weighted_score:.1f})"
        )
    if result.speed_of_light:
        lines.append(f"speed of light: {escape(describe(result.speed_of_light.to_json()))}")
    for flag in result.flags:
        lines.append(f"[yellow]flag[/] {escape(str(flag))}")
    if result.stderr.strip():
        tail = result.stderr.strip().splitlines()[-5:]
        lines.append("candidate stderr (last lines):\n  " + escape("\n  ".join(tail)))
    return Panel("\n".join(lines), title=f"{result.tier}/{result.name} on {result.backend}", expand=False)


class ProgressObserver:
    """A rich progress bar on stderr plus one line per finished case."""

    def __init__(self, console: Console, enabled: bool = True) -> None:
        self.console = console
        self.enabled = enabled
        self.progress = Progress(
            TextColumn("[bold]{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TimeElapsedColumn(),
            TextColumn("{task.fields[current]}"),
            console=console,
            transient=True,
            disable=not enabled,
        )
        self.task_id: Any = None

    def __enter__(self) -> ProgressObserver:
        self.progress.__enter__()
        return self

    def __exit__(self, *exc: Any) -> None:
        self.progress.__exit__(*exc)

    def planned(self, total: int) -> None:
        self.task_id = self.progress.add_task("evaluating", total=total, current="")

    def case_started(self, task: Any) -> None:
        if self.task_id is not None:
            self.progress.update(self.task_id, current=f"{task.case.tier}/{task.case.name}")

    def case_finished(self, result: CaseResult) -> None:
        if self.task_id is not None:
            self.progress.advance(self.task_id)
        if self.enabled:
            style = STATUS_STYLE.get(result.status, "")
            status = "broken case" if result.case_error else f"{result.status:7}"
            speed = f" {result.speedup:.2f}x" if result.speedup else ""
            unstable = " [yellow](unstable timing)[/]" if result.unstable else ""
            why = f" - {escape(result.reason)}" if result.reason and result.status != "pass" else ""
            where = f"{result.backend} {result.tier}/{result.name}"
            self.console.print(f"  [{style}]{status}[/] {where}{speed}{unstable}{why}")
