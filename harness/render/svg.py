"""Small inline-SVG plots for the HTML report: no JavaScript, no external files, no plotting library.

Speedups and time ratios are multiplicative, so every axis is logarithmic (base 2 ticks) and
centred on parity, where "faster" and "slower" look equally large.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from html import escape

WIDTH = 960
LABEL_W = 230
RIGHT_PAD = 70
ROW_H = 18
FASTER, SLOWER, NEUTRAL, BAD = "#2e8b57", "#d2691e", "#808080", "#c0392b"
_NICE = (0.25, 1 / 3, 0.5, 2 / 3, 0.8, 0.9, 0.95, 1.0, 1.05, 1.1, 1.25, 1.5, 2.0, 3.0, 4.0)


@dataclass(frozen=True)
class Bar:
    """One row of a bar chart: a value (None: no value, the note says why) and its colour."""

    label: str
    value: float | None
    color: str
    note: str = ""


@dataclass(frozen=True)
class Interval:
    """One row of a forest plot: estimate and interval (None: not tested, the note says why)."""

    label: str
    estimate: float | None
    low: float | None
    high: float | None
    color: str
    note: str = ""


class LogAxis:
    """Maps positive values to x pixels on a log2 scale that always contains 1."""

    def __init__(self, values: Sequence[float], x0: float, x1: float, pad: float = 1.15) -> None:
        finite = [v for v in values if v and v > 0 and math.isfinite(v)] or [1.0]
        lo, hi = min(min(finite), 1.0) / pad, max(max(finite), 1.0) * pad
        self.lo, self.hi = math.log2(lo), math.log2(hi)
        if self.hi - self.lo < 0.5:  # at least ~±20 % around parity
            mid = (self.hi + self.lo) / 2
            self.lo, self.hi = mid - 0.25, mid + 0.25
        self.x0, self.x1 = x0, x1

    def x(self, value: float) -> float:
        v = min(max(math.log2(max(value, 1e-12)), self.lo), self.hi)
        return self.x0 + (v - self.lo) / (self.hi - self.lo) * (self.x1 - self.x0)

    def ticks(self) -> list[float]:
        span = self.hi - self.lo
        step = 1.0 if span <= 8 else 2.0 if span <= 16 else 4.0
        if span < 2:  # less than a factor of 4 in view: round ratios read better than powers of two
            inside = [v for v in _NICE if self.lo <= math.log2(v) <= self.hi]
            return inside if len(inside) <= 7 else [v for v in inside if v not in (0.95, 1.05)]
        candidates = [k * step for k in range(math.floor(self.lo / step), math.ceil(self.hi / step) + 1)]
        return [2.0**t for t in candidates if self.lo <= t <= self.hi]


def _fmt_tick(value: float, as_change: bool) -> str:
    if as_change:
        return f"{(value - 1) * 100:+.0f}%"
    return f"{value:.3g}×"


def _svg(height: float, body: list[str], title: str) -> str:
    return (
        f'<svg xmlns="http://www.w3.org/2000/svg" role="img" width="{WIDTH}" height="{height:.0f}" '
        f'viewBox="0 0 {WIDTH} {height:.0f}" font-family="system-ui, sans-serif" font-size="12">'
        f"<title>{escape(title)}</title>" + "".join(body) + "</svg>"
    )


def _axis(axis: LogAxis, top: float, bottom: float, as_change: bool, parity_label: str) -> list[str]:
    out = []
    for tick in axis.ticks():
        x = axis.x(tick)
        out.append(f'<line x1="{x:.1f}" y1="{top}" x2="{x:.1f}" y2="{bottom}" stroke="#e5e5e5"/>')
        out.append(
            f'<text x="{x:.1f}" y="{bottom + 14}" text-anchor="middle" fill="#555">'
            f"{escape(_fmt_tick(tick, as_change))}</text>"
        )
    x1 = axis.x(1.0)
    out.append(
        f'<line x1="{x1:.1f}" y1="{top - 4}" x2="{x1:.1f}" y2="{bottom}" stroke="#333" stroke-width="1.5"/>'
    )
    out.append(
        f'<text x="{x1:.1f}" y="{top - 8}" text-anchor="middle" fill="#333">{escape(parity_label)}</text>'
    )
    return out


def bar_chart(bars: Sequence[Bar], title: str, as_change: bool = False, parity_label: str = "parity") -> str:
    """Horizontal bars from parity (1) to each value on a log axis; rows without a value show a note."""
    top = 44
    height = top + ROW_H * max(1, len(bars)) + 30
    axis = LogAxis([b.value for b in bars if b.value], LABEL_W, WIDTH - RIGHT_PAD)
    body = [f'<text x="8" y="18" font-size="14" font-weight="600">{escape(title)}</text>']
    body += _axis(axis, top, height - 26, as_change, parity_label)
    x1 = axis.x(1.0)
    for i, bar in enumerate(bars):
        y = top + i * ROW_H
        body.append(f'<text x="{LABEL_W - 6}" y="{y + 13}" text-anchor="end">{escape(bar.label)}</text>')
        if bar.value is None or not math.isfinite(bar.value) or bar.value <= 0:
            body.append(f'<text x="{x1 + 6:.1f}" y="{y + 13}" fill="{bar.color}">✕ {escape(bar.note)}</text>')
            continue
        xv = axis.x(bar.value)
        left, w = min(x1, xv), max(1.5, abs(xv - x1))
        body.append(
            f'<rect x="{left:.1f}" y="{y + 3}" width="{w:.1f}" height="{ROW_H - 6}" fill="{bar.color}">'
            f"<title>{escape(bar.label)}: {escape(_fmt_tick(bar.value, as_change))}</title></rect>"
        )
        text = _fmt_tick(bar.value, as_change) + (f"  {bar.note}" if bar.note else "")
        anchor, tx = ("start", max(xv, x1) + 4) if bar.value >= 1 else ("end", min(xv, x1) - 4)
        if (
            anchor == "end" and tx - 7 * len(text) < LABEL_W
        ):  # no room left of the bar: write it right of parity
            anchor, tx = "start", x1 + 4
        body.append(
            f'<text x="{tx:.1f}" y="{y + 13}" text-anchor="{anchor}" fill="#333">{escape(text)}</text>'
        )
    return _svg(height, body, title)


def histogram(values: Sequence[float], title: str, bins_per_doubling: int = 4) -> str:
    """Counts of positive values in log2 bins (``bins_per_doubling`` per factor of two)."""
    finite = [v for v in values if v > 0 and math.isfinite(v)]
    height, top, bottom, left, right = 240, 40, 200, 60, WIDTH - 30
    body = [f'<text x="8" y="18" font-size="14" font-weight="600">{escape(title)}</text>']
    if not finite:
        body.append(f'<text x="{left}" y="{top + 40}" fill="#555">no passing case to plot</text>')
        return _svg(height, body, title)
    keys = [math.floor(math.log2(v) * bins_per_doubling) for v in finite]
    lo, hi = min(min(keys), -1), max(max(keys), 0)
    counts = {k: keys.count(k) for k in range(lo, hi + 1)}
    most = max(counts.values())
    width = (right - left) / len(counts)
    for i, (k, n) in enumerate(sorted(counts.items())):
        x = left + i * width
        h = (bottom - top) * n / most
        a, b = 2 ** (k / bins_per_doubling), 2 ** ((k + 1) / bins_per_doubling)
        color = FASTER if a >= 1 else SLOWER
        body.append(
            f'<rect x="{x + 1:.1f}" y="{bottom - h:.1f}" width="{max(width - 2, 1):.1f}" height="{h:.1f}" '
            f'fill="{color}"><title>{a:.3g}× to {b:.3g}×: {n}</title></rect>'
        )
        if n:
            body.append(
                f'<text x="{x + width / 2:.1f}" y="{bottom - h - 4:.1f}" text-anchor="middle">{n}</text>'
            )
        if k % bins_per_doubling == 0:
            body.append(
                f'<text x="{x:.1f}" y="{bottom + 16}" text-anchor="middle" fill="#555">{a:.3g}×</text>'
            )
            body.append(f'<line x1="{x:.1f}" y1="{bottom}" x2="{x:.1f}" y2="{bottom + 4}" stroke="#555"/>')
    body.append(f'<line x1="{left}" y1="{bottom}" x2="{right}" y2="{bottom}" stroke="#333"/>')
    body.append(
        f'<text x="{(left + right) / 2}" y="{bottom + 34}" text-anchor="middle" fill="#555">'
        "speedup (log scale); bar height: number of cases</text>"
    )
    return _svg(height, body, title)


def forest_plot(rows: Sequence[Interval], title: str, band: tuple[float, float] | None = None) -> str:
    """Estimates with interval whiskers on a log axis of time ratios, the no-change band shaded."""
    top = 44
    height = top + ROW_H * max(1, len(rows)) + 30
    values = [v for r in rows for v in (r.low, r.high, r.estimate) if v] + (list(band) if band else [])
    axis = LogAxis(values, LABEL_W, WIDTH - RIGHT_PAD, pad=1.05)
    body = [f'<text x="8" y="18" font-size="14" font-weight="600">{escape(title)}</text>']
    if band:
        xa, xb = axis.x(band[0]), axis.x(band[1])
        body.append(
            f'<rect x="{xa:.1f}" y="{top}" width="{xb - xa:.1f}" height="{height - 26 - top}" '
            'fill="#f0f0f0"><title>no-change band (threshold)</title></rect>'
        )
    body += _axis(axis, top, height - 26, True, "no change")
    x1 = axis.x(1.0)
    for i, r in enumerate(rows):
        y = top + i * ROW_H + ROW_H / 2
        body.append(f'<text x="{LABEL_W - 6}" y="{y + 4}" text-anchor="end">{escape(r.label)}</text>')
        if r.estimate is None:
            body.append(f'<text x="{x1 + 6:.1f}" y="{y + 4}" fill="{r.color}">{escape(r.note)}</text>')
            continue
        if r.low is not None and r.high is not None:
            xl, xh = axis.x(r.low), axis.x(r.high)
            body.append(
                f'<line x1="{xl:.1f}" y1="{y}" x2="{xh:.1f}" y2="{y}" stroke="{r.color}" stroke-width="2"/>'
            )
            for xe in (xl, xh):
                body.append(
                    f'<line x1="{xe:.1f}" y1="{y - 4}" x2="{xe:.1f}" y2="{y + 4}" stroke="{r.color}"/>'
                )
        xe = axis.x(r.estimate)
        body.append(
            f'<circle cx="{xe:.1f}" cy="{y}" r="4" fill="{r.color}"><title>{escape(r.label)}: '
            f"{escape(_fmt_tick(r.estimate, True))} {escape(r.note)}</title></circle>"
        )
        body.append(
            f'<text x="{WIDTH - RIGHT_PAD + 6}" y="{y + 4}" fill="#333">'
            f"{escape(_fmt_tick(r.estimate, True))}</text>"
        )
    return _svg(height, body, title)


@dataclass(frozen=True)
class RooflinePoint:
    """One case on a roofline: arithmetic intensity (FLOPs per byte) and achieved TFLOP/s."""

    label: str
    intensity: float
    tflops: float
    color: str
    hollow: bool = False  # the reference's point, drawn beside the candidate's
    note: str = ""


def _log_ticks(lo: float, hi: float) -> list[float]:
    return [10.0**k for k in range(math.floor(math.log10(lo)), math.ceil(math.log10(hi)) + 1)]


def _fmt_si(value: float) -> str:
    return f"{value:g}" if 1e-3 <= value < 1e4 else f"{value:.0e}"


def roofline(
    points: Sequence[RooflinePoint], memory_gbps: float | None, peaks_tflops: dict[str, float], title: str
) -> str:
    """Achieved TFLOP/s against arithmetic intensity on log-log axes, under the device's roofs: the
    memory roof (TFLOP/s = FLOPs/byte x GB/s / 1000) and one flat compute roof per dtype class."""
    height, top, bottom, left, right = 420, 40, 370, 70, WIDTH - 150
    body = [f'<text x="8" y="18" font-size="14" font-weight="600">{escape(title)}</text>']
    shown = [p for p in points if p.intensity > 0 and p.tflops > 0 and math.isfinite(p.intensity * p.tflops)]
    roofs = {k: v for k, v in peaks_tflops.items() if v > 0}
    if not shown:
        body.append(f'<text x="{left}" y="{top + 40}" fill="#555">no case with FLOPs, bytes and a time to plot</text>')
        return _svg(height, body, title)
    xs = [p.intensity for p in shown]
    ys = [p.tflops for p in shown] + list(roofs.values())
    if memory_gbps:
        xs += [v * 1000.0 / memory_gbps for v in roofs.values()]  # ridge points
    x_lo, x_hi = min(xs) / 2, max(xs) * 2
    y_lo, y_hi = min(ys) / 2, max(ys) * 2

    def px(x: float) -> float:
        return left + (math.log10(x) - math.log10(x_lo)) / (math.log10(x_hi) - math.log10(x_lo)) * (right - left)

    def py(y: float) -> float:
        return bottom - (math.log10(y) - math.log10(y_lo)) / (math.log10(y_hi) - math.log10(y_lo)) * (bottom - top)

    for tick in _log_ticks(x_lo, x_hi):
        if x_lo <= tick <= x_hi:
            body.append(f'<line x1="{px(tick):.1f}" y1="{top}" x2="{px(tick):.1f}" y2="{bottom}" stroke="#eee"/>')
            body.append(f'<text x="{px(tick):.1f}" y="{bottom + 14}" text-anchor="middle" fill="#555">'
                        f"{_fmt_si(tick)}</text>")
    for tick in _log_ticks(y_lo, y_hi):
        if y_lo <= tick <= y_hi:
            body.append(f'<line x1="{left}" y1="{py(tick):.1f}" x2="{right}" y2="{py(tick):.1f}" stroke="#eee"/>')
            body.append(f'<text x="{left - 6}" y="{py(tick) + 4:.1f}" text-anchor="end" fill="#555">'
                        f"{_fmt_si(tick)}</text>")
    body.append(f'<text x="{(left + right) / 2}" y="{bottom + 30}" text-anchor="middle" fill="#555">'
                "arithmetic intensity (FLOPs per byte moved, log scale)</text>")
    body.append(f'<text x="14" y="{(top + bottom) / 2}" text-anchor="middle" fill="#555" '
                f'transform="rotate(-90 14 {(top + bottom) / 2})">TFLOP/s (log scale)</text>')
    top_roof = max(roofs.values()) if roofs else y_hi
    if memory_gbps:
        x_end = min(x_hi, top_roof * 1000.0 / memory_gbps)
        y_start = x_lo * memory_gbps / 1000.0
        if y_start < y_lo:  # start the diagonal where it enters the plot
            x_start, y_start = y_lo * 1000.0 / memory_gbps, y_lo
        else:
            x_start = x_lo
        body.append(
            f'<line x1="{px(x_start):.1f}" y1="{py(y_start):.1f}" x2="{px(x_end):.1f}" '
            f'y2="{py(x_end * memory_gbps / 1000.0):.1f}" stroke="#333" stroke-width="1.5">'
            f"<title>memory roof: {memory_gbps:g} GB/s</title></line>"
        )
        x_mid = math.sqrt(x_start * x_end)  # the label sits halfway along the roof, turned with it
        (ax, ay), (bx, by) = (px(x_start), py(y_start)), (px(x_end), py(x_end * memory_gbps / 1000.0))
        angle = math.degrees(math.atan2(by - ay, bx - ax))
        mx, my = px(x_mid), py(x_mid * memory_gbps / 1000.0) - 6
        body.append(f'<text x="{mx:.1f}" y="{my:.1f}" fill="#333" text-anchor="middle" '
                    f'transform="rotate({angle:.1f} {mx:.1f} {my:.1f})">{memory_gbps:g} GB/s</text>')
    merged: dict[float, list[str]] = {}  # classes with the same peak share one roof (fp32 and fp64 on an H100)
    for name, value in roofs.items():
        merged.setdefault(value, []).append(name)
    for value, names in sorted(merged.items()):
        name = "/".join(names)
        ridge = value * 1000.0 / memory_gbps if memory_gbps else x_lo
        x0 = px(max(ridge, x_lo))
        body.append(f'<line x1="{x0:.1f}" y1="{py(value):.1f}" x2="{right}" y2="{py(value):.1f}" stroke="#333" '
                    f'stroke-dasharray="4 3"><title>{escape(name)} peak: {value:g} TFLOP/s</title></line>')
        body.append(f'<text x="{right + 4}" y="{py(value) + 4:.1f}" fill="#333">{escape(name)} {value:g}</text>')
    for p in shown:
        x, y = px(p.intensity), py(p.tflops)
        fill = "none" if p.hollow else p.color
        tip = f"{p.label}: {p.intensity:.3g} FLOPs/byte, {p.tflops:.3g} TFLOP/s" + (f" ({p.note})" if p.note else "")
        body.append(f'<circle cx="{x:.1f}" cy="{y:.1f}" r="4" fill="{fill}" stroke="{p.color}" stroke-width="1.5">'
                    f"<title>{escape(tip)}</title></circle>")
        if not p.hollow:
            body.append(f'<text x="{x + 6:.1f}" y="{y + 4:.1f}" font-size="10" fill="#555">{escape(p.label)}</text>')
    return _svg(height, body, title)
