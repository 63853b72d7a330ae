"""The charts: per-step timeline, bars, histograms, pacing, utilization, lines, memory, collective skew."""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence

from ...analysis.compare import DiffRow
from ...analysis.nccl import NcclResult
from ...analysis.plots import KernelHistogram, Pacing, StepSeries, Utilization
from ...units import format_bytes, format_ns
from ..compare_text import change
from .svg import (
    BAR,
    BETTER,
    DEVICE_COLORS,
    GAP,
    GRID,
    HALO,
    IDLE,
    INK,
    KIND_COLORS,
    LAUNCH,
    MUTED,
    WALL,
    WIDE,
    WORSE,
    Scale,
    Svg,
    clip,
    dots,
    esc,
    fmt_count,
    fmt_share,
    fmt_time,
    legend,
    linear_ticks,
    nice_max,
    polyline,
    px,
    value_scale,
    x_axis,
    y_axis,
)

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
            svg.path(f"M{px(cx - 4)} {px(a_top - 1)}L{px(cx + 4)} {px(a_top - 1)}L{px(cx)} {px(a_top - 7)}Z", fill=INK)
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
    for tick in ticks:
        pos = min(range(m), key=lambda j: (abs(s.idx[j] - tick), j))
        x = left + (pos + 0.5) * slot
        svg.line(x, b_bot, x, b_bot + 4, "#ced4da")
        svg.text(x, b_bot + 15, fmt_count(tick), "middle", 10, MUTED)
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
        svg.text(left - 8, y + 13, clip(name, label_chars), "end", 11.5, INK)
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
            f"({change(r.delta_pct)}, "
            f"{'significant' if r.significant else f'p={r.p_value:.2g}'})"
        )
        svg.add(f"<g><title>{esc(tip)}</title>")
        svg.text(left - 8, y + 13, clip(r.label or r.key, 44), "end", 11.5, INK)
        svg.rect(x0, y, x1 - x0, 18, color, extra=op)
        delta = "new" if r.delta_pct is None else change(r.delta_pct)
        svg.text(
            left + mid_w + 10,
            y + 13,
            f"{format_ns(r.before_per_step)} → {format_ns(r.after_per_step)} ({delta}"
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


# ---------------------------------------------------------------------------------------- collective charts


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
        svg.text(left - 8, y0 + group_h / 2, clip(name.removeprefix("ncclDevKernel_"), 40), "end", 11.5, INK)
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
