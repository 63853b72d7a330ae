"""HTML renderers: one self-contained page per report (``report``, ``diff``, ``nccl``) and a notebook fragment.

The page needs nothing from the network when opened: the CSS is inline, the plots are inline SVG drawn by the
small renderer below (bars, lines, dots, histograms, axes with ticks and units), there is no script at all, and a
Content-Security-Policy forbids loading anything. Every string from the trace (kernel names hold ``<``, ``>``,
``&``) goes through ``esc``. The output is deterministic: the same input gives the same bytes (no timestamps, no
generated ids, coordinates rounded to 0.1 px). Why an own renderer rather than a JS library: docs/html.md.

The data behind the plots comes from ``analysis/plots.py`` (``PlotData``); this module never reads a trace.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from html import escape
from itertools import pairwise

from ..analysis.compare import DiffResult, DiffRow, GateResult
from ..analysis.diagnosis import Diagnosis
from ..analysis.findings import Finding
from ..analysis.nccl import NcclResult
from ..analysis.plots import LOG_RANGE, DiffSteps, KernelHistogram, Pacing, PlotData, StepSeries, Utilization
from ..units import format_bytes, format_ns
from .diagnosis_text import (
    _cost,
    _host_lines,
    _pct,
    _steps_line,
    _timing_line,
    callsite_lines,
    command_lines,
    memory_lines,
    metrics_lines,
    metrics_rows,
    run_line,
)

FONT = 'system-ui, -apple-system, "Segoe UI", Roboto, "DejaVu Sans", Arial, sans-serif'
MONO = 'ui-monospace, SFMono-Regular, Menlo, Consolas, "DejaVu Sans Mono", monospace'
INK, MUTED, GRID = "#212529", "#6c757d", "#e9ecef"
KIND_COLORS = {"prefill": "#e8590c", "decode": "#1c7ed6", "iteration": "#0ca678", "step": "#7048e8"}
IDLE, GAP, LAUNCH, WALL = "#adb5bd", "#dee2e6", "#f59f00", "#495057"
SEV_COLORS = {"critical": "#c92a2a", "warning": "#e67700", "info": "#1971c2"}
BAR, MEM_BAR = "#4263eb", "#ae3ec9"
BEFORE, AFTER, WORSE, BETTER = "#868e96", "#1c7ed6", "#e03131", "#2f9e44"
DEVICE_COLORS = ("#1c7ed6", "#0ca678", "#e8590c", "#7048e8", "#d6336c", "#f59f00", "#1098ad", "#5c940d")
HALO = ' stroke="#fff" stroke-width="3" paint-order="stroke"'  # text readable over bars
WIDE = 1200  # viewBox width of full-width charts (they scale with the page)


def esc(x: object) -> str:
    """Text or attribute value, escaped (quotes too)."""
    return escape(str(x), quote=True)


def _n(x: float) -> str:
    """A coordinate: 0.1 px is enough, and short."""
    v = round(float(x), 1)
    return str(int(v)) if v == int(v) else f"{v:.1f}"


def _clip(text: str, width: int) -> str:
    return text if len(text) <= width else text[: width - 1] + "…"


# ----------------------------------------------------------------------------------------- ticks and units


def fmt_time(ns: float) -> str:
    """A time tick: three significant digits in the unit that fits (``2.5 ms``, ``800 us``, ``0``)."""
    a = abs(ns)
    if a == 0:
        return "0"
    for unit, div in (("s", 1e9), ("ms", 1e6), ("us", 1e3)):
        if a >= div:
            return f"{ns / div:.3g} {unit}"
    return f"{ns:.3g} ns"


def fmt_count(v: float) -> str:
    a = abs(v)
    if a >= 1e6:
        return f"{v / 1e6:.3g}M"
    if a >= 1e4:
        return f"{v / 1e3:.3g}k"
    return f"{v:.3g}" if v != int(v) else str(int(v))


def fmt_share(v: float) -> str:
    return f"{100 * v:.0f}%"


def _nice_step(span: float, n: int) -> float:
    raw = span / max(n, 1)
    if raw <= 0 or not math.isfinite(raw):
        return 1.0
    mag = 10 ** math.floor(math.log10(raw))
    for m in (1, 2, 2.5, 5, 10):
        if m * mag >= raw * (1 - 1e-9):
            return m * mag
    return 10 * mag


def nice_max(hi: float, n: int = 4) -> float:
    """The axis top: ``hi`` rounded up to a tick step (1, 2, 2.5 or 5 times a power of ten)."""
    if hi <= 0:
        return 1.0
    return min(math.ceil(hi / (step := _nice_step(hi, k)) - 1e-9) * step for k in (n, n + 1, n + 2))


def linear_ticks(lo: float, hi: float, n: int = 4) -> list[float]:
    if hi <= lo:
        return [lo]
    step = _nice_step(hi - lo, n)
    first = math.ceil(lo / step - 1e-9) * step
    out: list[float] = []
    v = first
    while v <= hi + step * 1e-9 and len(out) < 50:
        out.append(round(v, 9))
        v += step
    return out


def log_ticks(lo: float, hi: float) -> list[float]:
    """Powers of ten inside [lo, hi]; with 1, 2 and 5 times them when fewer than three decades fit."""
    lo, hi = max(lo, 1e-9), max(hi, 1e-9)
    k0, k1 = math.floor(math.log10(lo)), math.ceil(math.log10(hi))
    decades = [10.0**k for k in range(k0, k1 + 1) if lo <= 10.0**k <= hi]
    if len(decades) >= 3:
        return decades
    out = [m * 10.0**k for k in range(k0, k1 + 1) for m in (1, 2, 5) if lo <= m * 10.0**k <= hi]
    return out if len(out) <= 7 else [v for v in out if str(v).startswith(("1", "5"))]


@dataclass(frozen=True)
class Scale:
    """Data [lo, hi] to pixels [p0, p1], linear or log10."""

    lo: float
    hi: float
    p0: float
    p1: float
    log: bool = False

    def __call__(self, v: float) -> float:
        if self.log:
            lo, hi = math.log10(self.lo), math.log10(self.hi)
            t = (math.log10(min(max(v, self.lo), self.hi)) - lo) / ((hi - lo) or 1.0)
        else:
            t = (v - self.lo) / ((self.hi - self.lo) or 1.0)
        return self.p0 + t * (self.p1 - self.p0)

    def ticks(self, n: int = 4) -> list[float]:
        return log_ticks(self.lo, self.hi) if self.log else linear_ticks(self.lo, self.hi, n)


def value_scale(values: Sequence[float], p0: float, p1: float, n: int = 4) -> Scale:
    """A y scale for positive values: log when they span more than ``LOG_RANGE`` (and none is 0), else from 0."""
    pos = [v for v in values if v > 0]
    if pos and len(pos) == len(values) and max(pos) / min(pos) > LOG_RANGE:
        lo = 10 ** math.floor(math.log10(min(pos)))
        hi = 10 ** math.ceil(math.log10(max(pos)))
        return Scale(lo, hi, p0, p1, log=True)
    return Scale(0.0, nice_max(max(values, default=0.0), n), p0, p1)


# ------------------------------------------------------------------------------------------- SVG drawing


class Svg:
    """An SVG image built from parts; ``render`` gives the element, sized by its viewBox to the page width."""

    def __init__(self, width: int, height: int, label: str) -> None:
        self.width, self.height, self.label = width, height, label
        self.parts: list[str] = []

    def add(self, s: str) -> None:
        self.parts.append(s)

    def rect(
        self, x: float, y: float, w: float, h: float, fill: str, title: str | None = None, extra: str = ""
    ) -> None:
        t = f"<title>{esc(title)}</title>" if title else ""
        body = f'<rect x="{_n(x)}" y="{_n(y)}" width="{_n(max(w, 0))}" height="{_n(max(h, 0))}" fill="{fill}"{extra}'
        self.add(f"{body}>{t}</rect>" if t else f"{body}/>")

    def line(self, x1: float, y1: float, x2: float, y2: float, stroke: str, width: float = 1, extra: str = "") -> None:
        self.add(
            f'<line x1="{_n(x1)}" y1="{_n(y1)}" x2="{_n(x2)}" y2="{_n(y2)}" stroke="{stroke}" '
            f'stroke-width="{_n(width)}"{extra}/>'
        )

    def text(
        self, x: float, y: float, s: str, anchor: str = "start", size: float = 11, fill: str = INK, extra: str = ""
    ) -> None:
        self.add(
            f'<text x="{_n(x)}" y="{_n(y)}" text-anchor="{anchor}" font-size="{_n(size)}" fill="{fill}"{extra}>'
            f"{esc(s)}</text>"
        )

    def path(self, d: str, stroke: str = "none", width: float = 1, fill: str = "none", extra: str = "") -> None:
        self.add(f'<path d="{d}" stroke="{stroke}" stroke-width="{_n(width)}" fill="{fill}"{extra}/>')

    def render(self) -> str:
        return (
            f'<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {self.width} {self.height}" role="img" '
            f'aria-label="{esc(self.label)}" font-family="{esc(FONT)}" '
            f'style="display:block;width:100%;height:auto;max-width:{self.width}px">' + "".join(self.parts) + "</svg>"
        )


def tick_labels(ticks: Sequence[float], fmt: Callable[[float], str]) -> list[str]:
    """Labels of ticks; time ticks get more digits when three significant ones would repeat a label."""
    labels = [fmt(v) for v in ticks]
    if fmt is not fmt_time or len(set(labels)) == len(labels) or len(ticks) < 2:
        return labels
    top = max(abs(v) for v in ticks)
    unit, div = next(((u, d) for u, d in (("s", 1e9), ("ms", 1e6), ("us", 1e3)) if top >= d), ("ns", 1.0))
    step = min(b - a for a, b in pairwise(ticks)) / div
    digits = min(6, max(0, math.ceil(-math.log10(step)) if step > 0 else 0))
    return ["0" if v == 0 else f"{v / div:.{digits}f} {unit}" for v in ticks]


def y_axis(
    svg: Svg,
    sc: Scale,
    fmt: Callable[[float], str],
    x0: float,
    x1: float,
    n: int = 4,
    ticks: list[float] | None = None,
) -> None:
    """Grid lines across [x0, x1] and tick labels left of x0; the axis top is labelled too when no tick is there."""
    if ticks is not None:
        _y_ticks(svg, sc, fmt, x0, x1, ticks)
        return
    ticks = sc.ticks(n)
    if not sc.log and ticks and abs(ticks[-1] - sc.hi) > 1e-9 * abs(sc.hi):
        # prefer a tick step that ends on the axis top; else label the top too, when there is room
        for k in (n + 1, n - 1, n + 2):
            other = linear_ticks(sc.lo, sc.hi, k) if k > 0 else []
            if other and abs(other[-1] - sc.hi) <= 1e-9 * abs(sc.hi) and len(other) <= n + 3:
                ticks = other
                break
        else:
            if abs(sc(ticks[-1]) - sc(sc.hi)) > 14:
                ticks.append(sc.hi)
    _y_ticks(svg, sc, fmt, x0, x1, ticks)


def _y_ticks(svg: Svg, sc: Scale, fmt: Callable[[float], str], x0: float, x1: float, ticks: list[float]) -> None:
    for v, text in zip(ticks, tick_labels(ticks, fmt), strict=True):
        y = sc(v)
        svg.line(x0, y, x1, y, GRID)
        svg.text(x0 - 6, y + 3.5, text, "end", 10, MUTED)
    svg.line(x0, sc.p0, x0, sc.p1, "#ced4da")


def x_axis(
    svg: Svg, sc: Scale, fmt: Callable[[float], str], y: float, n: int = 6, ticks: list[float] | None = None
) -> None:
    """A baseline at ``y`` with ticks and labels under it."""
    svg.line(sc.p0, y, sc.p1, y, "#ced4da")
    values = ticks if ticks is not None else sc.ticks(n)
    for v, text in zip(values, tick_labels(values, fmt), strict=True):
        x = sc(v)
        svg.line(x, y, x, y + 4, "#ced4da")
        svg.text(x, y + 15, text, "middle", 10, MUTED)


def legend(svg: Svg, x: float, y: float, items: Sequence[tuple[str, str]], shape: str = "box") -> None:
    """Colored marks and labels in one row starting at (x, y); widths estimated from the label lengths."""
    for color, label in items:
        if shape == "dot":
            svg.add(f'<circle cx="{_n(x + 5)}" cy="{_n(y - 4)}" r="3.5" fill="{color}"/>')
        elif shape == "line":
            svg.line(x, y - 4, x + 12, y - 4, color, 2)
        else:
            svg.rect(x, y - 9, 10, 10, color)
        svg.text(x + 15, y, label, "start", 11, INK)
        x += 15 + 6.2 * len(label) + 16


def dots(points: Sequence[tuple[float, float]]) -> str:
    """Many dots as one path: zero-length segments with round caps (far smaller than one circle per point)."""
    return "".join(f"M{_n(x)} {_n(y)}h0" for x, y in points)


def polyline(points: Sequence[tuple[float, float]]) -> str:
    return "".join(f"{'M' if i == 0 else 'L'}{_n(x)} {_n(y)}" for i, (x, y) in enumerate(points))


# ------------------------------------------------------------------------------------------------ charts


def chart_steps(s: StepSeries) -> str:
    """Per step: GPU busy (colored by step kind), GPU idle inside the step and before the next one, stacked; under
    it the host's time in launch calls (bars) and the host step time (dots), against the step index."""
    m = len(s.idx)
    left, right = 74, WIDE - 16
    a_top, a_bot = 40, 250  # GPU panel
    b_top, b_bot = 300, 420  # host panel
    svg = Svg(WIDE, 452, "GPU busy and idle per step; host launch time per step")
    kinds = [k for k in ("prefill", "decode", "iteration", "step") if k in s.kind]
    legend(
        svg,
        left,
        16,
        [
            *((KIND_COLORS[k], f"GPU busy ({k})") for k in kinds),
            (IDLE, "GPU idle in the step"),
            (GAP, "GPU idle before the next step"),
        ],
    )
    totals = [b + i + g for b, i, g in zip(s.busy, s.idle, s.gap, strict=True)]
    # a few stalled steps would flatten all others: the axis stops at 3x the p90 of the other steps (prefill steps
    # are always shown whole), and a bar cut there gets a mark (its numbers stay in its tooltip)
    ordered = sorted(t for t, k in zip(totals, s.kind, strict=True) if k != "prefill")
    p90 = ordered[min(len(ordered) - 1, (len(ordered) * 9) // 10)] if ordered else 0
    limit = max([3 * p90, *(t for t, k in zip(totals, s.kind, strict=True) if k == "prefill")])
    top = max(totals, default=0)
    clipped = p90 > 0 and top > limit
    ya = Scale(0.0, nice_max(limit if clipped else top), a_bot, a_top)
    y_axis(svg, ya, fmt_time, left, right)
    svg.text(left - 60, a_top - 10, "GPU time", "start", 10, MUTED)
    slot = (right - left) / max(m, 1)
    bw = min(slot * 0.8 if slot >= 3 else slot, 48.0)
    for i in range(m):
        x = left + i * slot + (slot - bw) / 2
        what = f"steps {s.idx[i]}-{s.idx[i] + s.group - 1} (mean)" if s.group > 1 else f"step {s.idx[i]}"
        tip = (
            f"{what} {s.kind[i]}: GPU busy {format_ns(s.busy[i])}, idle {format_ns(s.idle[i])}, idle before next "
            f"{format_ns(s.gap[i])}; launch calls {format_ns(s.launch[i])}, host step {format_ns(s.wall[i])}"
        )
        svg.add(f"<g><title>{esc(tip)}</title>")
        acc = 0
        for v, color in ((s.busy[i], KIND_COLORS.get(s.kind[i], BAR)), (s.idle[i], IDLE), (s.gap[i], GAP)):
            if v <= 0:
                continue
            y0, y1 = ya(min(acc, ya.hi)), ya(min(acc + v, ya.hi))
            acc += v
            if y0 > y1:
                svg.rect(x, y1, bw, y0 - y1, color)
        if clipped and totals[i] > ya.hi:
            cx = x + bw / 2
            svg.path(f"M{_n(cx - 4)} {_n(a_top - 1)}L{_n(cx + 4)} {_n(a_top - 1)}L{_n(cx)} {_n(a_top - 7)}Z", fill=INK)
        svg.add("</g>")
    # host panel
    yb = Scale(0.0, nice_max(max([*s.launch, *s.wall], default=0), 3), b_bot, b_top)
    legend(svg, left, b_top - 14, [(LAUNCH, "host time in launch calls")])
    legend(svg, left + 200, b_top - 14, [(WALL, "host step time")], shape="dot")
    y_axis(svg, yb, fmt_time, left, right, 3)
    for i in range(m):
        x = left + i * slot + (slot - bw) / 2
        svg.rect(x, yb(s.launch[i]), bw, b_bot - yb(s.launch[i]), LAUNCH)
    svg.path(
        dots([(left + (i + 0.5) * slot, yb(w)) for i, w in enumerate(s.wall)]),
        WALL,
        4 if m <= 100 else 2.5,
        extra=' stroke-linecap="round"',
    )
    # the step axis: ticks at nice step numbers, placed on their bars
    ticks = linear_ticks(float(s.idx[0]), float(s.idx[-1]), 10) if m else []
    svg.line(left, b_bot, right, b_bot, "#ced4da")
    for v in ticks:
        pos = min(range(m), key=lambda j: (abs(s.idx[j] - v), j))
        x = left + (pos + 0.5) * slot
        svg.line(x, b_bot, x, b_bot + 4, "#ced4da")
        svg.text(x, b_bot + 15, fmt_count(v), "middle", 10, MUTED)
    word = "iteration" if set(s.kind) == {"iteration"} else "step"
    svg.text((left + right) / 2, b_bot + 30, word, "middle", 11, MUTED)
    return svg.render()


def chart_hbars(
    rows: Sequence[tuple[str, float, str, str, str]],
    fmt: Callable[[float], str] = fmt_share,
    label: str = "bars",
    label_chars: int = 44,
    width: int = WIDE,
) -> str:
    """Horizontal bars: (label, value, text after the bar, color, tooltip) per row, largest first as given."""
    label_w = min(7 * label_chars + 12, width // 2)
    left, right = label_w, width - 150
    h = 24 * len(rows) + 34
    svg = Svg(width, h, label)
    sc = Scale(0.0, nice_max(max((r[1] for r in rows), default=0.0)), left, right)
    for v in sc.ticks():
        svg.line(sc(v), 6, sc(v), h - 26, GRID)
    for i, (name, value, text, color, tip) in enumerate(rows):
        y = 8 + 24 * i
        svg.add(f"<g><title>{esc(tip)}</title>")
        svg.text(left - 8, y + 13, _clip(name, label_chars), "end", 11.5, INK)
        svg.rect(left, y, sc(value) - left, 18, color)
        svg.text(sc(value) + 6, y + 13, text, "start", 11, INK)
        svg.add("</g>")
    x_axis(svg, sc, fmt, h - 26, 5)
    return svg.render()


def chart_diverging(rows: Sequence[DiffRow], label: str = "change per step") -> str:
    """Per row: the change per step as a bar left (faster) or right (slower) of zero; faint when not significant."""
    width = WIDE
    left, mid_w = 330, 560
    h = 24 * len(rows) + 34
    svg = Svg(width, h, label)
    span = max((abs(r.delta_per_step) for r in rows), default=0.0)
    top = nice_max(span) if span > 0 else 1.0
    sc = Scale(-top, top, left, left + mid_w)
    for v in sc.ticks(4):
        svg.line(sc(v), 6, sc(v), h - 26, GRID)
    svg.line(sc(0), 6, sc(0), h - 26, "#868e96")
    for i, r in enumerate(rows):
        y = 8 + 24 * i
        color = WORSE if r.delta_per_step > 0 else BETTER
        op = "" if r.significant else ' fill-opacity="0.35"'
        x0, x1 = sorted((sc(0), sc(r.delta_per_step)))
        tip = (
            f"{r.label or r.key}: {format_ns(r.before_per_step)} -> {format_ns(r.after_per_step)} per step "
            f"({'-' if r.delta_pct is None else f'{r.delta_pct:+.1f}%'}, "
            f"{'significant' if r.significant else f'p={r.p_value:.2g}'})"
        )
        svg.add(f"<g><title>{esc(tip)}</title>")
        svg.text(left - 8, y + 13, _clip(r.label or r.key, 44), "end", 11.5, INK)
        svg.rect(x0, y, x1 - x0, 18, color, extra=op)
        pct = "new" if r.delta_pct is None else f"{r.delta_pct:+.1f}%"
        svg.text(
            left + mid_w + 10,
            y + 13,
            f"{format_ns(r.before_per_step)} → {format_ns(r.after_per_step)} ({pct}"
            f"{', significant' if r.significant else ''})",
            "start",
            11,
            INK,
        )
        svg.add("</g>")

    def signed(v: float) -> str:
        return ("+" if v > 0 else "") + fmt_time(v)

    x_axis(svg, sc, signed, h - 26, 4)
    return svg.render()


def chart_histogram(h: KernelHistogram) -> str:
    """Instances per duration bin; a dashed line at the p50."""
    width, height = 400, 210
    left, right, top, bot = 52, width - 24, 12, height - 38
    svg = Svg(width, height, f"duration histogram of {h.label}")
    lo, hi = h.edges[0], h.edges[-1]
    xs = Scale(max(lo, 1e-9), hi, left, right, log=h.log) if h.log else Scale(lo, hi, left, right)
    c_max = max(h.counts, default=0)
    c_top = float(max(c_max, 1)) if c_max <= 5 else float(math.ceil(nice_max(c_max, 3)))
    ys = Scale(0.0, c_top, bot, top)
    counts = [float(v) for v in range(int(c_top) + 1)] if c_top <= 5 else None
    if counts is None:
        counts = [v for v in linear_ticks(0.0, c_top, 3) if v == int(v)]
        if c_top - counts[-1] > c_top / 8:
            counts.append(c_top)
    y_axis(svg, ys, fmt_count, left, right, ticks=counts)
    for i, c in enumerate(h.counts):
        if c <= 0:
            continue
        x0, x1 = xs(h.edges[i]), xs(h.edges[i + 1])
        w = max(x1 - x0 - (0.6 if x1 - x0 > 3 else 0), 0.8)
        svg.rect(x0, ys(c), w, bot - ys(c), BAR, title=f"{format_ns(h.edges[i])} to {format_ns(h.edges[i + 1])}: {c:,}")
    if lo <= h.p50 <= hi:
        x = xs(h.p50)
        svg.line(x, top, x, bot, INK, 1, ' stroke-dasharray="3 3"')
        svg.text(min(x + 4, right - 40), top + 10, "p50", "start", 10, INK, HALO)
    ticks = xs.ticks() if h.log else linear_ticks(lo, hi, 4)
    x_axis(svg, xs, fmt_time, bot, ticks=ticks)
    svg.text((left + right) / 2, height - 6, "duration" + (" (log scale)" if h.log else ""), "middle", 10, MUTED)
    return svg.render()


def chart_pacing(p: Pacing) -> str:
    """Two panels against the instance index: time since the previous instance started, and the duration."""
    left, right = 74, WIDE - 16
    svg = Svg(WIDE, 440, f"pacing of {p.label}")
    n = max(p.count - 1, 1)
    xs = Scale(0.0, float(n), left, right)
    panels = (
        (40, 190, p.gap_index, p.gap, "#1c7ed6", "time since the previous instance started"),
        (250, 400, p.dur_index, p.dur, "#e8590c", "duration"),
    )
    for top, bot, index, values, color, what in panels:
        ys = value_scale(values, bot, top)
        legend(svg, left, top - 14, [(color, what + (" (log scale)" if ys.log else ""))], shape="dot")
        y_axis(svg, ys, fmt_time, left, right, 3)
        svg.path(
            dots([(xs(i), ys(v)) for i, v in zip(index, values, strict=True)]),
            color,
            3 if len(values) <= 500 else 2,
            extra=' stroke-linecap="round"',
        )
        svg.line(left, bot, right, bot, "#ced4da")
    x_axis(svg, xs, fmt_count, 400, 10)
    svg.text((left + right) / 2, 432, "instance (in start order)", "middle", 11, MUTED)
    return svg.render()


def chart_utilization(u: Utilization) -> str:
    """Per device: the share of each time bin covered by kernels, as an area over the window."""
    left, right = 74, WIDE - 16
    row, gap = 80, 26
    n = max(len(u.devices), 1)
    height = 16 + n * (row + gap) + 30
    svg = Svg(WIDE, height, "GPU utilization over time per device")
    span = u.bin_ns * (len(u.shares[0]) if u.shares else 1)
    xs = Scale(0.0, span, left, right)
    for k, (dev, shares) in enumerate(zip(u.devices, u.shares, strict=True)):
        top = 16 + k * (row + gap) + 14
        bot = top + row
        ys = Scale(0.0, 1.0, bot, top)
        mean = sum(shares) / len(shares) if shares else 0.0
        svg.text(left, top - 5, f"GPU {dev}: kernels cover {100 * mean:.0f}% of the window", "start", 11, INK)
        y_axis(svg, ys, fmt_share, left, right, 2)
        color = DEVICE_COLORS[k % len(DEVICE_COLORS)]
        pts: list[tuple[float, float]] = []
        for i, v in enumerate(shares):
            pts += [(xs(i * u.bin_ns), ys(v)), (xs((i + 1) * u.bin_ns), ys(v))]
        if pts:
            area = polyline([(left, bot), *pts, (right, bot)]) + "Z"
            svg.path(area, fill=color, extra=' fill-opacity="0.35"')
            svg.path(polyline(pts), color, 1.2)
    x_axis(svg, xs, fmt_time, height - 30, 8)
    svg.text((left + right) / 2, height - 3, "time since the window start", "middle", 11, MUTED)
    return svg.render()


def chart_lines(
    series: Sequence[tuple[str, str, list[float], list[float]]], x_label: str, label: str, height: int = 300
) -> str:
    """Lines (with dots when few points) of (name, color, xs, ys) series on shared axes; y is a time."""
    left, right, top, bot = 74, WIDE - 16, 36, height - 40
    svg = Svg(WIDE, height, label)
    all_x = [x for s in series for x in s[2]]
    all_y = [y for s in series for y in s[3]]
    xs = Scale(min(all_x, default=0.0), max(max(all_x, default=1.0), min(all_x, default=0.0) + 1), left, right)
    ys = Scale(0.0, nice_max(max(all_y, default=0.0)), bot, top)
    legend(svg, left, 16, [(c, name) for name, c, _, _ in series], shape="line")
    y_axis(svg, ys, fmt_time, left, right)
    for _, color, sx, sy in series:
        pts = [(xs(x), ys(y)) for x, y in zip(sx, sy, strict=True)]
        svg.path(polyline(pts), color, 1.6)
        if len(pts) <= 80:
            svg.path(dots(pts), color, 5, extra=' stroke-linecap="round"')
    x_axis(svg, xs, fmt_count, bot, 10)
    svg.text((left + right) / 2, height - 6, x_label, "middle", 11, MUTED)
    return svg.render()


def chart_memory(t_ns: Sequence[int], values: Sequence[int], w0: int, w1: int, height: int = 280) -> str:
    """Device memory in use over time (a step line: the level after each allocation or free), the analysis window
    shaded."""
    left, right, top, bot = 84, WIDE - 16, 36, height - 40
    svg = Svg(WIDE, height, "device memory in use over time")
    lo = float(min([*t_ns, w0])) if t_ns else float(w0)
    hi = float(max([*t_ns, w1])) if t_ns else float(w1)
    xs = Scale(lo, max(hi, lo + 1), left, right)
    ys = Scale(0.0, nice_max(float(max(values, default=0))), bot, top)
    svg.rect(xs(w0), top, xs(w1) - xs(w0), bot - top, "#e7f5ff", "the analysis window")
    legend(svg, left, 16, [("#1c7ed6", "device memory in use"), ("#e7f5ff", "analysis window")], shape="line")
    y_axis(svg, ys, format_bytes, left, right)
    pts: list[tuple[float, float]] = []
    for i, (t, v) in enumerate(zip(t_ns, values, strict=True)):
        if i:
            pts.append((xs(t), ys(values[i - 1])))
        pts.append((xs(t), ys(v)))
    if pts:
        svg.path(polyline(pts), "#1c7ed6", 1.8)
    x_axis(svg, xs, lambda v: f"{v / 1e9:.3f} s", bot, 8)
    svg.text((left + right) / 2, height - 6, "time on the trace's timeline", "middle", 11, MUTED)
    return svg.render()


# ----------------------------------------------------------------------------------------------- page


CSS = f"""
*{{box-sizing:border-box}}
body{{margin:0;background:#f8f9fa;color:{INK};font:14px/1.45 {FONT}}}
main{{max-width:1280px;margin:0 auto;padding:20px 24px 40px}}
h1{{font-size:22px;margin:0 0 6px}}
h2{{font-size:17px;margin:0 0 10px}}
h3{{font-size:13.5px;margin:0 0 4px;font-weight:600}}
section{{background:#fff;border:1px solid #dee2e6;border-radius:6px;padding:14px 18px;margin:14px 0}}
.meta{{color:#495057;margin:2px 0}}
.meta b{{color:{INK};display:inline-block;min-width:62px}}
.why{{font-size:15px;margin:0 0 8px}}
ol,ul{{margin:6px 0;padding-left:22px}} li{{margin:3px 0}}
table{{border-collapse:collapse;width:100%;font-size:13px;margin:4px 0}}
th,td{{padding:4px 8px;border-bottom:1px solid #f1f3f5;text-align:left;vertical-align:top}}
th{{background:#f1f3f5;font-weight:600;white-space:nowrap}}
td.n,th.n{{text-align:right;font-variant-numeric:tabular-nums;white-space:nowrap}}
code,.mono{{font-family:{MONO};font-size:12px}}
.name{{word-break:break-all}}
.nw{{white-space:nowrap}}
details summary{{cursor:pointer}}
.sev{{display:inline-block;padding:0 7px;border-radius:3px;font-size:11.5px;font-weight:600;color:#fff}}
{"".join(f".sev-{k}{{background:{v}}}" for k, v in SEV_COLORS.items())}
.action{{color:#495057;font-size:12.5px;margin-top:2px}}
.cap{{color:#495057;font-size:12.5px;margin:6px 0 0}}
.grid{{display:grid;grid-template-columns:repeat(auto-fill,minmax(370px,1fr));gap:14px 18px}}
figure{{margin:0;min-width:0}}
figure h3{{overflow:hidden;text-overflow:ellipsis;white-space:nowrap}}
.pass{{color:#2b8a3e;font-weight:700}} .fail{{color:#c92a2a;font-weight:700}}
pre{{background:#f8f9fa;border:1px solid #e9ecef;padding:10px;overflow-x:auto;font:12px/1.4 {MONO}}}
footer{{color:{MUTED};font-size:12px;text-align:center}}
"""

CSP = "default-src 'none'; style-src 'unsafe-inline'"


def page(title: str, body: str) -> str:
    """The whole document: inline CSS, no script, nothing loaded from anywhere (the CSP says so too)."""
    return (
        "<!DOCTYPE html>\n"
        '<html lang="en">\n<head>\n<meta charset="utf-8">\n'
        f'<meta http-equiv="Content-Security-Policy" content="{CSP}">\n'
        '<meta name="viewport" content="width=device-width, initial-scale=1">\n'
        f"<title>{esc(title)}</title>\n<style>{CSS}</style>\n</head>\n<body>\n<main>\n"
        f"{body}"
        "<footer>nsys-doctor · self-contained page: no script, nothing loaded from the network</footer>\n"
        "</main>\n</body>\n</html>\n"
    )


def section(title: str, *parts: str, sid: str | None = None) -> str:
    ident = f' id="{esc(sid)}"' if sid else ""
    return f"<section{ident}>\n<h2>{esc(title)}</h2>\n" + "\n".join(p for p in parts if p) + "\n</section>\n"


def table(header: Sequence[str], rows: Sequence[Sequence[str]], numeric: Sequence[bool] | None = None) -> str:
    """A table of already-escaped cells; ``numeric`` columns are right-aligned."""
    num = list(numeric) if numeric is not None else [False] * len(header)
    head = "".join(f"<th{' class=n' if num[i] else ''}>{esc(h)}</th>" for i, h in enumerate(header))
    body = "".join(
        "<tr>" + "".join(f"<td{' class=n' if num[i] else ''}>{c}</td>" for i, c in enumerate(r)) + "</tr>\n"
        for r in rows
    )
    return f"<table>\n<thead><tr>{head}</tr></thead>\n<tbody>\n{body}</tbody>\n</table>"


def figure(svg: str, caption: str = "", heading: str = "", heading_title: str = "") -> str:
    h = f'<h3 title="{esc(heading_title or heading)}">{esc(heading)}</h3>' if heading else ""
    cap = f'<p class="cap">{caption}</p>' if caption else ""
    return f"<figure>{h}{svg}{cap}</figure>"


def kernel_cell(label: str, name: str) -> str:
    """A kernel's short label, with its full (escaped) name one click away."""
    if label == name:
        return f'<code class="name">{esc(name)}</code>'
    return f'<details><summary><code>{esc(label)}</code></summary><code class="name">{esc(name)}</code></details>'


def sev_badge(severity: str) -> str:
    return f'<span class="sev sev-{esc(severity)}">{esc(severity)}</span>'


# --------------------------------------------------------------------------------------------- report


def _header(d: Diagnosis, title: str = "nsys-doctor report") -> str:
    t, w = d.trace, d.window
    lines = [
        f"<h1>{esc(title)}</h1>",
        f'<p class="meta"><code class="name">{esc(t.get("path"))}</code></p>',
        f'<p class="meta">{esc(t.get("gpu") or "GPU unknown")} · nsys {esc(t.get("nsys_version") or "?")} · '
        f"CUDA graph trace {esc(t.get('cuda_graph_trace') or '?')}</p>",
        f'<p class="meta"><b>Window</b> {w.start / 1e9:.3f} s to {w.end / 1e9:.3f} s ({esc(format_ns(w.duration))}): '
        f"{esc(w.reason)}</p>",
    ]
    if d.run:
        lines.append(f'<p class="meta"><b>Run</b> {esc(run_line(d.run))}</p>')
    timing = _timing_line(d)
    if timing:
        lines.append(f'<p class="meta"><b>Timing</b> {esc(timing)}</p>')
    lines += [f'<p class="meta"><b>Note</b> {esc(n)}</p>' for n in d.notes]
    return "<header>\n" + "\n".join(lines) + "\n</header>\n"


def _commands(d: Diagnosis) -> str:
    if not d.next_commands:
        return ""
    items = "".join(
        f'<li>{esc(what)}<pre style="white-space:pre-wrap;word-break:break-all"><code>{esc(command)}</code></pre>'
        f"<div class=action>{esc(why)}</div></li>"
        for what, command, why in command_lines(d)
    )
    return f"<h3>Next commands</h3><ul>{items}</ul>"


def _diagnosis(d: Diagnosis) -> str:
    actions = "".join(f"<li>{esc(a)}</li>" for a in d.next_actions)
    measured = d.target.get("measured")
    return section(
        "Diagnosis",
        f'<p class="why">{esc(d.target.get("why", "nothing to analyze"))}</p>',
        f"<p>{esc(measured)}</p>" if measured else "",
        f"<h3>Next actions</h3><ol>{actions}</ol>" if actions else "",
        _commands(d),
        sid="diagnosis",
    )


def _metrics_section(d: Diagnosis) -> str:
    g = d.gpu_metrics
    if not g:
        return ""
    rows = [
        [esc(r[0]), f"<code>{esc(_clip(r[1], 70))}</code>", *(esc(c) for c in r[2:])] for r in metrics_rows(d, 8, 8)
    ]
    return section(
        f"GPU metrics (GPU {g['gpu']}, {g['frequency_hz']:,} Hz; % of the GPU's peak)",
        "<ul>" + "".join(f"<li>{esc(line)}</li>" for line in metrics_lines(d)) + "</ul>",
        table(
            ["", "while it runs", "inside", "SM active", "DRAM read", "DRAM write", "tensor"],
            rows,
            [False, False, True, True, True, True, True],
        ),
        sid="gpu-metrics",
    )


def _memory_section(d: Diagnosis) -> str:
    m = d.memory
    if not m:
        return ""
    tl = m.get("timeline") if isinstance(m.get("timeline"), dict) else {}
    chart = ""
    if tl and tl.get("t_ns"):  # type: ignore[union-attr]
        chart = figure(
            chart_memory(tl["t_ns"], tl["bytes"], d.window.start, d.window.end),  # type: ignore[index]
            "In use = allocations minus frees of device memory (cudaMalloc and the like, not a framework's "
            "cache inside them), as --cuda-memory-usage records them.",
        )
    return section(
        f"Device memory (GPU {m.get('device')}, {m['events']:,} events)",
        "<ul>" + "".join(f"<li>{esc(line)}</li>" for line in memory_lines(d)) + "</ul>",
        chart,
        sid="memory",
    )


def _callchain_section(d: Diagnosis) -> str:
    if not d.callchains:
        return ""
    return section(
        "Host call sites of the slowest CUDA API calls (--cudabacktrace)",
        "<ul>" + "".join(f"<li>{esc(line)}</li>" for line in callsite_lines(d)) + "</ul>",
        sid="callchains",
    )


def _findings(findings: Sequence[Finding]) -> str:
    if not findings:
        return section("Findings", "<p>No findings.</p>", sid="findings")
    rows = [
        [
            sev_badge(f.severity),
            f'<code class="nw">{esc(f.id)}</code>',
            esc(_cost(f).strip(" ()") or "-"),
            f"<b>{esc(f.title)}</b>: {esc(f.summary)}<div class=action>→ {esc(f.action)}</div>",
        ]
        for f in findings
    ]
    return section(
        "Findings",
        table(["severity", "id", "cost", "evidence and action"], rows, [False, False, True, False]),
        sid="findings",
    )


def family_name(category: str, family: str) -> str:
    """The category, or the family where the category is a catch-all (``pooling (elementwise / other)``) or the
    memory operations (``memcpy``, ``memset``)."""
    if category == "memcpy / memset":
        return family
    if category == "elementwise / other" and family not in ("other", "elementwise"):
        return f"{family} ({category})"
    return category


def family_rows(d: Diagnosis, n: int = 12) -> list[tuple[str, float, str, str, str]]:
    out = []
    for r in d.families.head(n).iter_rows(named=True):
        name = family_name(str(r["category"]), str(r["family"]))
        share = float(r["share"] or 0.0)
        color = MEM_BAR if r["category"] == "memcpy / memset" else BAR
        text = f"{100 * share:.1f}% · {format_ns(r['total'])}"
        tip = f"{name} (family {r['family']}): {text}, {r['count']:,} instances of {r['kernels']} kernels"
        out.append((name, share, text, color, tip))
    return out


def _family_section(d: Diagnosis) -> str:
    rows = family_rows(d)
    if not rows:
        return ""
    fam = [
        [
            esc(r["category"]),
            esc(r["family"]),
            esc(_pct(r["share"])),
            esc(format_ns(r["total"])),
            esc(format_ns(r["per_step_ns"])),
            esc(str(r["kernels"])),
            esc(f"{r['count']:,}"),
        ]
        for r in d.families.iter_rows(named=True)
    ]
    return section(
        "Where GPU time goes: families",
        chart_hbars(rows, label="share of GPU time per family"),
        '<p class="cap">Share of GPU time in the window (kernels, copies, memsets) per operation family.</p>',
        "<details><summary>Families table</summary>"
        + table(
            ["category", "family", "share", "total", "per step", "kernels", "instances"],
            fam,
            [False, False, True, True, True, True, True],
        )
        + "</details>",
        sid="families",
    )


def _steps_section(d: Diagnosis, plots: PlotData | None) -> str:
    lines = "".join(f"<li>{esc(x)}</li>" for x in _steps_line(d))
    parts = []
    if plots is not None and plots.steps.idx:
        s = plots.steps
        kinds = sorted(set(s.kind))
        word = "iterations" if kinds == ["iteration"] else "steps"
        parts.append(chart_steps(s))
        parts.append(
            f'<p class="cap">{s.total} {word} of the window. Top: per step, the time the GPU ran anything (busy: '
            "kernels, copies, memsets), the idle time between the step's first and last kernel, and the idle time "
            "until the next step's first kernel. Bottom: the host's time in kernel and graph launch calls during the "
            "step, and the step's host span. Hover a bar for its numbers."
            + "".join(f" {esc(n)}." for n in plots.notes if "steps" in n)
            + "</p>"
        )
    elif plots is not None:
        parts.append("<p>No steps were found in the window: no per-step plot.</p>")
    parts.append(f"<ul>{lines}</ul>")
    return section("Steps", *parts, sid="steps")


def _util_section(plots: PlotData) -> str:
    u = plots.utilization
    if not u.devices:
        return section("GPU utilization over time", "<p>No kernel ran in the window.</p>", sid="utilization")
    return section(
        "GPU utilization over time",
        chart_utilization(u),
        f'<p class="cap">The window cut into {len(u.shares[0])} bins of {esc(format_ns(u.bin_ns))}: the share of '
        "each bin during which at least one kernel ran, per device (as nsys's cuda_gpu_time_util_map).</p>",
        sid="utilization",
    )


def _kernels_section(d: Diagnosis, plots: PlotData | None) -> str:
    rows = [
        [
            esc(_pct(r["share"])),
            esc(format_ns(r["total"])),
            esc(f"{r['count']:,}"),
            esc(format_ns(r["p50"])),
            esc(format_ns(r["p99"])),
            esc(format_ns(r["max"])),
            esc(str(r["family"])),
            kernel_cell(str(r["label"]), str(r["name"])),
        ]
        for r in d.kernels.iter_rows(named=True)
    ]
    parts = [
        table(
            ["share", "total", "count", "p50", "p99", "max", "family", "kernel"],
            rows,
            [True, True, True, True, True, True, False, False],
        )
        if rows
        else "<p>No kernels in the window.</p>"
    ]
    if plots is not None and plots.histograms:
        figs = [
            figure(
                chart_histogram(h),
                f"{h.count:,} instances; p50 {esc(format_ns(h.p50))}, max {esc(format_ns(h.max))}"
                + ("; log bins" if h.log else ""),
                heading=f"{i + 1}. {h.label}",
                heading_title=h.name,
            )
            for i, h in enumerate(plots.histograms)
        ]
        parts.append("<h3>Duration histograms of the top kernels</h3>")
        parts.append('<div class="grid">' + "".join(figs) + "</div>")
        parts.append(
            '<p class="cap">Instances binned by duration (as nsys\'s cuda_gpu_kern_hist); bins are geometric '
            "where the longest instance is more than 10x the shortest.</p>"
        )
    return section("Top kernels", *parts, sid="kernels")


def _pacing_section(plots: PlotData) -> str:
    p = plots.pacing
    if p is None or p.count < 2:
        return ""
    dev = f" on device {p.device}" if p.device is not None else ""
    cut = "; each group of instances is drawn as its minimum and maximum" if p.sampled else ""
    return section(
        "Pacing of the top kernel",
        f'<p class="meta">{kernel_cell(p.label, p.name)}</p>',
        chart_pacing(p),
        f'<p class="cap">{p.count:,} instances{esc(dev)}, in start order (as nsys\'s cuda_gpu_kern_pace): the '
        "time between consecutive starts shows how regularly the kernel is issued (a step is one period; "
        f"spikes are stalls), the duration shows whether the kernel itself varies{cut}.</p>",
        sid="pacing",
    )


def _tails_section(d: Diagnosis) -> str:
    if not d.kernel_tails.height:
        return ""
    rows = []
    for r in d.kernel_tails.iter_rows(named=True):
        grid = r["typical_grid"] or ""
        if r.get("tail_grid") and r["tail_grid"] != r["typical_grid"]:
            grid = f"{grid} (slowest {r['tail_grid']})"
        rows.append(
            [
                esc(f"{r['tail_score']:.0f}"),
                esc(f"{r['max_p50'] or 0:.1f}"),
                esc(f"{r['p99_p50'] or 0:.2f}"),
                esc(format_ns(r["p50"])),
                esc(format_ns(r["max"])),
                esc(f"{r['count']:,}"),
                f'<span class="nw">{esc(grid)}</span>',
                kernel_cell(str(r["label"]), str(r["name"])),
            ]
        )
    return section(
        "Tails (by tail score)",
        table(
            ["score", "max/p50", "p99/p50", "p50", "max", "count", "grid", "kernel"],
            rows,
            [True, True, True, True, True, True, False, False],
        ),
        sid="tails",
    )


def _host_section(d: Diagnosis) -> str:
    return section("Host", "<ul>" + "".join(f"<li>{esc(x)}</li>" for x in _host_lines(d)) + "</ul>", sid="host")


def _unmapped_section(d: Diagnosis) -> str:
    if not d.unmapped:
        return ""
    items = "".join(f'<li><code class="name">{esc(n)}</code></li>' for n in d.unmapped[:20])
    more = f"<p>... and {len(d.unmapped) - 20} more.</p>" if len(d.unmapped) > 20 else ""
    return section(
        f"Unmapped kernels ({len(d.unmapped)})",
        "<p>Kernels no rule maps to an operation; add rules with <code>--ops FILE</code>.</p>",
        f"<ul>{items}</ul>{more}",
        sid="unmapped",
    )


def report_body(d: Diagnosis, plots: PlotData | None, extra: Sequence[tuple[str, str]] = (), title: str = "") -> str:
    """The sections of one diagnosis (the page's body, or one rank's part of it); ``extra``: (title, plain text)
    sections such as the roofline, shown preformatted."""
    parts = [
        _header(d, title or "nsys-doctor report"),
        _diagnosis(d),
        _findings(d.findings),
        _family_section(d),
        _steps_section(d, plots),
    ]
    if plots is not None:
        parts.append(_util_section(plots))
    parts.append(_kernels_section(d, plots))
    if plots is not None:
        parts.append(_pacing_section(plots))
    parts += [_tails_section(d), _host_section(d), _metrics_section(d), _memory_section(d), _callchain_section(d)]
    parts.append(_unmapped_section(d))
    parts += [section(t, f"<pre>{esc(text)}</pre>") for t, text in extra]
    return "".join(parts)


def render_report(d: Diagnosis, plots: PlotData | None, extra: Sequence[tuple[str, str]] = ()) -> str:
    """``report --format html``: the whole diagnosis as one self-contained page with its plots."""
    name = str(d.trace.get("path") or "trace").replace("\\", "/").rsplit("/", 1)[-1]
    return page(f"nsys-doctor report: {name}", report_body(d, plots, extra))


def render_ranks(pairs: Sequence[tuple[int, str, Diagnosis, PlotData | None]], across: NcclResult | None) -> str:
    """``report`` on several ranks: one part per rank (rank, label, diagnosis, its plot data), then what holds
    across ranks."""
    links = " · ".join(f'<a href="#rank-{rank}">rank {rank}</a>' for rank, _, _, _ in pairs)
    parts = [
        f"<h1>nsys-doctor report: {len(pairs)} ranks</h1>",
        f'<p class="meta">{links}' + (' · <a href="#across">across ranks</a>' if across is not None else "") + "</p>",
    ]
    for rank, label, d, plots in pairs:
        parts.append(f'<div id="rank-{rank}">' + report_body(d, plots, title=f"Rank {rank}: {label}") + "</div>\n")
    if across is not None:
        parts.append('<h1 id="across">Across ranks</h1>\n' + nccl_body(across))
    return page(f"nsys-doctor report: {len(pairs)} ranks", "".join(parts))


def render_fragment(d: Diagnosis) -> str:
    """A compact view for notebooks (``Report._repr_html_``): summary, findings and the family bars, in one ``div``
    with inline styles only (nothing leaks into or depends on the notebook's CSS)."""
    w = d.window
    p = "margin:2px 0"
    out = [f'<div style="font:13px/1.45 {esc(FONT)};color:{INK};max-width:1000px">']
    out.append(
        f'<div style="font-weight:600;font-size:15px">nsys-doctor report: <code>{esc(d.trace.get("path"))}</code></div>'
    )
    out.append(
        f'<div style="{p}">{esc(d.trace.get("gpu") or "GPU unknown")} · window {w.start / 1e9:.3f} s to '
        f"{w.end / 1e9:.3f} s ({esc(format_ns(w.duration))})</div>"
    )
    if d.run:
        out.append(f'<div style="{p}">{esc(run_line(d.run))}</div>')
    out.append(f'<div style="{p};font-weight:600">{esc(d.target.get("why", "nothing to analyze"))}</div>')
    if d.target.get("measured"):
        out.append(f'<div style="{p}">{esc(d.target["measured"])}</div>')
    if d.next_actions:
        out.append(
            f'<ol style="{p};padding-left:20px">' + "".join(f"<li>{esc(a)}</li>" for a in d.next_actions) + "</ol>"
        )
    for what, command, _why in command_lines(d):
        out.append(
            f'<div style="{p}">{esc(what)}:</div><pre style="{p};white-space:pre-wrap;font-family:{esc(MONO)}">'
            f"{esc(command)}</pre>"
        )
    if d.findings:
        out.append(f'<div style="{p};font-weight:600">Findings</div><ul style="{p};padding-left:20px">')
        for f in d.findings:
            color = SEV_COLORS.get(f.severity, MUTED)
            out.append(
                f'<li><span style="color:#fff;background:{color};border-radius:3px;padding:0 5px;font-size:11px">'
                f"{esc(f.severity)}</span> <code>{esc(f.id)}</code>{esc(_cost(f))}: {esc(f.summary)}</li>"
            )
        out.append("</ul>")
    rows = family_rows(d, 8)
    if rows:
        out.append(f'<div style="{p};font-weight:600">Families (share of GPU time)</div>')
        out.append(chart_hbars(rows, label="share of GPU time per family", label_chars=34, width=900))
    out.append("</div>")
    return "\n".join(out)


# ----------------------------------------------------------------------------------------------- diff


def _pct_text(x: float | None) -> str:
    return "-" if x is None else f"{x:+.1f}%"


def _diff_rows(rows: Sequence[DiffRow]) -> str:
    body = [
        [
            esc(r.kind),
            kernel_cell(r.label or r.key, r.key),
            esc(format_ns(r.before_per_step)),
            esc(format_ns(r.after_per_step)),
            esc(_pct_text(r.delta_pct)),
            esc("significant" if r.significant else f"p={r.p_value:.2g}"),
            esc(r.matched),
        ]
        for r in rows
    ]
    return table(
        ["kind", "name", "before / step", "after / step", "change", "significance", "matched by"],
        body,
        [False, False, True, True, True, False, False],
    )


def diff_body(d: DiffResult, gate: GateResult | None, steps: DiffSteps | None) -> str:
    h = d.headline
    sig = "significant" if h.gpu_significant else "no significant change"
    parts = [
        "<header><h1>nsys-doctor diff</h1>",
        f'<p class="meta"><b>before</b> <code class="name">{esc(d.before)}</code> ({h.before_steps} steps)</p>',
        f'<p class="meta"><b>after</b> <code class="name">{esc(d.after)}</code> ({h.after_steps} steps)</p></header>',
    ]
    head = [
        f"GPU time per step (kernels + memory ops): {format_ns(h.before_gpu_per_step)} → "
        f"{format_ns(h.after_gpu_per_step)} ({_pct_text(h.gpu_delta_pct)}, {sig})",
        f"step time (host, traced): {format_ns(h.before_step_time)} → {format_ns(h.after_step_time)} "
        f"({_pct_text(h.step_time_delta_pct)}, "
        f"{'significant' if h.step_time_significant else 'no significant change'})",
        f"launch calls per step: {h.before_launches_per_step:.1f} → {h.after_launches_per_step:.1f}; graph launches "
        f"per step: {h.before_graph_launches_per_step:.1f} → {h.after_graph_launches_per_step:.1f}",
    ]
    verdict = ""
    if gate is not None:
        verdict = (
            f'<p><b>gate ({gate.threshold_pct:g}%):</b> <span class="pass">PASS</span></p>'
            if gate.passed
            else f'<p><b>gate ({gate.threshold_pct:g}%):</b> <span class="fail">FAIL</span>: '
            f"{esc('; '.join(gate.reasons))}</p>"
        )
    parts.append(section("Headline", "<ul>" + "".join(f"<li>{esc(x)}</li>" for x in head) + "</ul>", verdict))
    if steps is not None and (steps.before or steps.after):
        series = []
        for name, color, values, group in (
            ("before", BEFORE, steps.before, steps.before_group),
            ("after", AFTER, steps.after, steps.after_group),
        ):
            xs = [float(i * group + (group - 1) / 2) for i in range(len(values))]
            series.append((name, color, xs, [float(v) for v in values]))
        cut = ""
        if max(steps.before_group, steps.after_group) > 1:
            cut = " Many steps: each point is the mean of consecutive steps."
        parts.append(
            section(
                "GPU time per step",
                chart_lines(series, f"{steps.kind} step", "GPU time per step, before and after"),
                f'<p class="cap">Kernels plus memory operations per {esc(steps.kind)} step, in step order, before '
                f"and after.{cut}</p>",
            )
        )
    if d.families:
        parts.append(
            section(
                "Families: change per step",
                chart_diverging(d.families[:16], "change of GPU time per step per family"),
                '<p class="cap">Right of zero: more time per step after (slower); left: less. Faint bars are not '
                "significant.</p>",
                _diff_rows(d.families),
            )
        )
    expl = d.explaining()
    parts.append(
        section(
            "What explains the change",
            _diff_rows(expl) if expl else "<p>No significant change in any kernel, API or memory operation.</p>",
        )
    )
    parts.append(section(f"Largest changes ({d.level} level)", _diff_rows(d.rows[:30])))
    if d.notes:
        parts.append(section("Notes", "<ul>" + "".join(f"<li>{esc(n)}</li>" for n in d.notes) + "</ul>"))
    return "".join(parts)


def render_diff(d: DiffResult, gate: GateResult | None = None, steps: DiffSteps | None = None) -> str:
    """``diff --format html``: headline, per-step GPU time before and after, family deltas, the rows."""
    return page("nsys-doctor diff", diff_body(d, gate, steps))


def render_rank_diffs(
    pairs: Sequence[tuple[int, DiffResult, GateResult | None, DiffSteps | None]],
    notes: Sequence[str],
    failed: Sequence[int],
) -> str:
    """``diff`` of two rank sets, paired by rank: one part per rank."""
    parts = []
    for rank, d, g, s in pairs:
        parts.append(f"<h1>Rank {rank}</h1>\n" + diff_body(d, g, s))
    if notes:
        parts.append(section("Notes", "<ul>" + "".join(f"<li>{esc(n)}</li>" for n in notes) + "</ul>"))
    if any(g is not None for _, _, g, _ in pairs):
        verdict = (
            f'<span class="fail">FAIL</span> on rank {esc(", ".join(map(str, failed)))}'
            if failed
            else '<span class="pass">PASS</span> on every rank'
        )
        parts.append(section("Gate", f"<p>{verdict}</p>"))
    return page("nsys-doctor diff: ranks", "".join(parts))


# ----------------------------------------------------------------------------------------------- nccl


def _num(v: object) -> float:
    try:
        x = float(v)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return 0.0
    return x if math.isfinite(x) else 0.0


def chart_skew(res: NcclResult) -> str:
    """Per matched collective: arrival skew p50, p99 and max, and the transfer p50 on the last rank."""
    metrics = (
        ("skew_p50", "#1c7ed6", "skew p50"),
        ("skew_p99", "#f59f00", "skew p99"),
        ("skew_max", "#e03131", "skew max"),
        ("transfer_p50", "#2f9e44", "transfer p50"),
    )
    rows = list(res.matched.iter_rows(named=True))
    left, right = 300, WIDE - 110
    group_h = 12 * len(metrics) + 14
    height = 30 + group_h * len(rows) + 30
    svg = Svg(WIDE, height, "arrival skew per collective")
    legend(svg, left, 16, [(c, t) for _, c, t in metrics])
    top = max((_num(r[k]) for r in rows for k, _, _ in metrics), default=0.0)
    sc = Scale(0.0, nice_max(top), left, right)
    for v in sc.ticks():
        svg.line(sc(v), 26, sc(v), height - 30, GRID)
    for i, r in enumerate(rows):
        y0 = 28 + i * group_h
        name = str(r["name"])
        svg.add(f"<g><title>{esc(name)}: {r['instances']:,} matched instances</title>")
        svg.text(left - 8, y0 + group_h / 2, _clip(name.removeprefix("ncclDevKernel_"), 40), "end", 11.5, INK)
        svg.add("</g>")
        for j, (key, color, what) in enumerate(metrics):
            v = _num(r[key])
            y = y0 + j * 12
            svg.rect(left, y, sc(v) - left, 10, color, title=f"{name} {what}: {format_ns(v)}")
            svg.text(sc(v) + 4, y + 9, format_ns(v), "start", 9.5, MUTED)
    x_axis(svg, sc, fmt_time, height - 30)
    return svg.render()


def chart_rank_wait(res: NcclResult) -> str:
    """Per rank: collective time split into waiting for the last rank and moving data; how often it is last."""
    rows = res.ranks
    left, right = 110, WIDE - 260
    height = 34 + 26 * len(rows) + 30
    svg = Svg(WIDE, height, "collective time per rank: waiting and moving")
    legend(svg, left, 16, [("#f59f00", "waiting for the last rank"), ("#1c7ed6", "moving data")])
    top = max((_num(r.get("wait")) + _num(r.get("moving")) for r in rows), default=0.0)
    sc = Scale(0.0, nice_max(top), left, right)
    for v in sc.ticks():
        svg.line(sc(v), 26, sc(v), height - 30, GRID)
    for i, r in enumerate(rows):
        y = 30 + 26 * i
        wait, moving = _num(r.get("wait")), _num(r.get("moving"))
        svg.text(left - 8, y + 13, f"rank {r['rank']}", "end", 11.5, INK)
        svg.rect(left, y, sc(wait) - left, 18, "#f59f00", title=f"rank {r['rank']} waiting {format_ns(wait)}")
        svg.rect(
            sc(wait),
            y,
            sc(wait + moving) - sc(wait),
            18,
            "#1c7ed6",
            title=f"rank {r['rank']} moving {format_ns(moving)}",
        )
        last = r.get("last_share")
        svg.text(
            sc(wait + moving) + 6,
            y + 13,
            f"{format_ns(wait + moving)}; last to arrive {r.get('last', 0):,}x"
            + ("" if last is None else f" ({100 * _num(last):.0f}%)"),
            "start",
            11,
            INK,
        )
    x_axis(svg, sc, fmt_time, height - 30)
    return svg.render()


def nccl_body(res: NcclResult) -> str:
    from .nccl_text import _rank_line, _tables

    parts = [
        section(
            "Ranks",
            "<ul>" + "".join(f"<li>{esc(_rank_line(r))}</li>" for r in res.ranks) + "</ul>",
            '<p class="cap">Times aligned by each trace\'s session start.</p>',
        ),
        section("Diagnosis", "<ul>" + "".join(f"<li>{esc(x)}</li>" for x in res.headline) + "</ul>"),
    ]
    if res.findings:
        rows = [
            [
                sev_badge(str(f["severity"])),
                f"<code>{esc(f['id'])}</code>",
                f"<b>{esc(f['title'])}</b>: {esc(f['summary'])}<div class=action>→ {esc(f['action'])}</div>",
            ]
            for f in res.findings
        ]
        parts.append(section("Findings", table(["severity", "id", "evidence and action"], rows)))
    if res.matched.height:
        parts.append(
            section(
                "Arrival skew per collective",
                chart_skew(res),
                '<p class="cap">Skew: latest start minus earliest start of one collective across ranks (time the '
                "early ranks wait). Transfer: its duration on the last rank to arrive (moving data).</p>",
            )
        )
    if res.ranks:
        parts.append(section("Waiting and moving per rank", chart_rank_wait(res)))
    for _key, title, header, rows in _tables(res):
        numeric = [i > 0 and h not in ("cause", "late rank just before", "range") for i, h in enumerate(header)]
        parts.append(section(title, table(header, [[esc(c) for c in r] for r in rows], numeric)))
    if res.notes:
        parts.append(section("Notes", "<ul>" + "".join(f"<li>{esc(n)}</li>" for n in res.notes) + "</ul>"))
    return "".join(parts)


def render_nccl(res: NcclResult) -> str:
    """``nccl --format html``: the cross-rank analysis with skew per collective and waiting per rank."""
    body = f"<header><h1>nsys-doctor nccl: {len(res.ranks)} ranks</h1></header>\n" + nccl_body(res)
    return page(f"nsys-doctor nccl: {len(res.ranks)} ranks", body)
