"""The small SVG renderer: colours and fonts, escaping, ticks and units, scales, axes, legends, dots, lines."""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from html import escape
from itertools import pairwise

from ...analysis.plots import LOG_RANGE
from ...units import TIME_UNITS_NS

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


def px(x: float) -> str:
    """A coordinate: 0.1 px is enough, and short."""
    v = round(float(x), 1)
    return str(int(v)) if v == int(v) else f"{v:.1f}"


def clip(text: str, width: int) -> str:
    return text if len(text) <= width else text[: width - 1] + "…"


# ----------------------------------------------------------------------------------------- ticks and units


TICK_UNITS = [(u, TIME_UNITS_NS[u]) for u in ("s", "ms", "us")]  # the units of time ticks, largest first


def fmt_time(ns: float) -> str:
    """A time tick: three significant digits in the unit that fits (``2.5 ms``, ``800 us``, ``0``)."""
    a = abs(ns)
    if a == 0:
        return "0"
    for unit, div in TICK_UNITS:
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
        body = f'<rect x="{px(x)}" y="{px(y)}" width="{px(max(w, 0))}" height="{px(max(h, 0))}" fill="{fill}"{extra}'
        self.add(f"{body}>{t}</rect>" if t else f"{body}/>")

    def line(self, x1: float, y1: float, x2: float, y2: float, stroke: str, width: float = 1, extra: str = "") -> None:
        self.add(
            f'<line x1="{px(x1)}" y1="{px(y1)}" x2="{px(x2)}" y2="{px(y2)}" stroke="{stroke}" '
            f'stroke-width="{px(width)}"{extra}/>'
        )

    def text(
        self, x: float, y: float, s: str, anchor: str = "start", size: float = 11, fill: str = INK, extra: str = ""
    ) -> None:
        self.add(
            f'<text x="{px(x)}" y="{px(y)}" text-anchor="{anchor}" font-size="{px(size)}" fill="{fill}"{extra}>'
            f"{esc(s)}</text>"
        )

    def path(self, d: str, stroke: str = "none", width: float = 1, fill: str = "none", extra: str = "") -> None:
        self.add(f'<path d="{d}" stroke="{stroke}" stroke-width="{px(width)}" fill="{fill}"{extra}/>')

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
    unit, div = next(((u, d) for u, d in TICK_UNITS if top >= d), ("ns", 1))
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
            svg.add(f'<circle cx="{px(x + 5)}" cy="{px(y - 4)}" r="3.5" fill="{color}"/>')
        elif shape == "line":
            svg.line(x, y - 4, x + 12, y - 4, color, 2)
        else:
            svg.rect(x, y - 9, 10, 10, color)
        svg.text(x + 15, y, label, "start", 11, INK)
        x += 15 + 6.2 * len(label) + 16


def dots(points: Sequence[tuple[float, float]]) -> str:
    """Many dots as one path: zero-length segments with round caps (far smaller than one circle per point)."""
    return "".join(f"M{px(x)} {px(y)}h0" for x, y in points)


def polyline(points: Sequence[tuple[float, float]]) -> str:
    return "".join(f"{'M' if i == 0 else 'L'}{px(x)} {px(y)}" for i, (x, y) in enumerate(points))
