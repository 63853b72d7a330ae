"""The data behind the HTML report's plots: pure functions of frames, small typed series out.

Every series is cut to a few thousand points at most (steps averaged in groups, pacing kept as the minimum and
maximum of each group of instances, fixed bin counts), so a plot's size does not grow with the trace. The renderer
(``report/html/``) only draws what is here; it never reads a trace.

    busy_time(starts, ends)       the union of intervals, as a function: busy nanoseconds inside [a, b)
    step_series(...)              per step: GPU busy, idle inside the step, idle before the next step, launch time
    kernel_histogram(durs)        instances binned by duration (log bins where the range is wide), as nsys's
                                  cuda_gpu_kern_hist recipe
    kernel_pacing(starts, durs)   time between consecutive starts and duration per instance, as cuda_gpu_kern_pace
    utilization(...)              the window cut into bins, the share of each covered by kernels, per device, as
                                  cuda_gpu_time_util_map
    build_plot_data(...)          all of them for one window (what ``TraceSession.plot_data`` returns)
    diff_steps(before, after)     per-step GPU time of two profiles (``diff``)
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import numpy as np
import polars as pl

from .distribution import percentile, scalar_int
from .phases import LAUNCH_API, Window, assign_to_steps, calls

MAX_STEP_BARS = 600  # steps drawn one bar each up to this many; beyond, consecutive steps are averaged
MAX_POINTS = 2000  # points per pacing series (minimum and maximum of each group of instances)
HIST_BINS = 40  # bins per kernel duration histogram (fewer when the kernel has fewer distinct durations)
HIST_KERNELS = 6  # top kernels with a histogram
UTIL_BINS = 200  # bins of the GPU utilization map
UTIL_DEVICES = 16  # devices drawn in the utilization map
LOG_RANGE = 10.0  # a histogram or axis spanning more than this ratio (max / min) gets log bins


@dataclass(frozen=True)
class StepSeries:
    """One entry per drawn bar: a step, or the mean of ``group`` consecutive steps when there are many."""

    idx: list[int]  # the (first) step index of the bar
    kind: list[str]  # prefill, decode, iteration, step (prefill wins in a group holding one)
    busy: list[int]  # ns the GPU ran kernels inside the step's GPU span (first to last kernel)
    idle: list[int]  # ns of that span with no kernel running
    gap: list[int]  # ns with no kernel between the step's last kernel and the next step's first
    launch: list[int]  # ns the host spent in kernel and graph launch calls during the step
    wall: list[int]  # the step's host span, ns
    group: int = 1  # steps per bar
    total: int = 0  # steps in the window


@dataclass(frozen=True)
class KernelHistogram:
    name: str  # the full kernel name
    label: str  # its short display name
    count: int
    edges: list[float]  # len(counts) + 1 bin edges, ns
    counts: list[int]
    log: bool  # geometric bins
    p50: int
    max: int


@dataclass(frozen=True)
class Pacing:
    name: str
    label: str
    count: int  # instances of the kernel (on ``device``)
    device: int | None
    gap_index: list[int]  # instance index of each plotted gap (gap i: start[i] - start[i - 1])
    gap: list[int]
    dur_index: list[int]
    dur: list[int]
    sampled: bool  # the series were cut to the minimum and maximum of groups of instances


@dataclass(frozen=True)
class Utilization:
    start: int  # window start, ns
    bin_ns: float
    devices: list[int]
    shares: list[list[float]]  # per device, per bin: share of the bin covered by that device's kernels (0..1)
    busy: list[int]  # per device: ns covered in the window


@dataclass(frozen=True)
class PlotData:
    window_start: int
    window_end: int
    steps: StepSeries
    histograms: list[KernelHistogram]
    pacing: Pacing | None
    utilization: Utilization
    notes: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class DiffSteps:
    """GPU time per step (kernels plus memory operations) of both sides of a diff, in step order."""

    before: list[int]
    after: list[int]
    before_group: int  # steps averaged per plotted point
    after_group: int
    kind: str  # decode, step, all


# ------------------------------------------------------------------------------------------------ coverage


def busy_time(starts: np.ndarray, ends: np.ndarray) -> Callable[[np.ndarray, np.ndarray], np.ndarray]:
    """``covered(a, b)``: per pair, the nanoseconds inside [a, b) covered by at least one interval [start, end).

    The intervals are merged once (sorted, overlapping ones joined); a query is two binary searches."""
    ok = ends > starts
    s, e = starts[ok].astype(np.int64), ends[ok].astype(np.int64)
    if s.size == 0:
        return lambda a, b: np.zeros(np.broadcast(a, b).shape, dtype=np.int64)
    order = np.lexsort((e, s))
    s, e = s[order], e[order]
    run_max = np.maximum.accumulate(e)
    new = np.ones(s.size, dtype=bool)
    new[1:] = s[1:] > run_max[:-1]
    first = np.flatnonzero(new)
    ms, me = s[first], np.maximum.reduceat(e, first)
    length = me - ms
    before = np.concatenate(([0], np.cumsum(length)))  # busy time before interval i

    def upto(t: np.ndarray) -> np.ndarray:
        t = np.asarray(t, dtype=np.int64)
        i = np.searchsorted(ms, t, side="right") - 1
        j = np.clip(i, 0, ms.size - 1)
        inside = np.clip(t - ms[j], 0, length[j])
        return np.where(i >= 0, before[j] + inside, 0)

    def covered(a: np.ndarray, b: np.ndarray) -> np.ndarray:
        a, b = np.asarray(a, dtype=np.int64), np.asarray(b, dtype=np.int64)
        return np.maximum(upto(np.maximum(a, b)) - upto(a), 0)

    return covered


# ------------------------------------------------------------------------------------------------ steps


def step_series(
    gpu_ops: pl.DataFrame, api: pl.DataFrame, steps: pl.DataFrame, max_bars: int = MAX_STEP_BARS
) -> StepSeries:
    """Per step (``Steps.table``): GPU busy and idle inside the step's GPU span, GPU idle before the next step's
    first kernel, and host time in launch calls inside the step's host span. GPU busy is the union of all GPU work
    in ``gpu_ops`` (start, end: kernels, copies, memsets, graph-level launches), on any device."""
    if steps.is_empty():
        return StepSeries([], [], [], [], [], [], [], 1, 0)
    st = steps.sort("idx")
    covered = busy_time(gpu_ops["start"].to_numpy(), gpu_ops["end"].to_numpy())
    g0 = st["gpu_start"].to_numpy(allow_copy=True).astype(np.float64)
    g1 = st["gpu_end"].to_numpy(allow_copy=True).astype(np.float64)
    has = ~(np.isnan(g0) | np.isnan(g1))
    a, b = np.where(has, g0, 0).astype(np.int64), np.where(has, g1, 0).astype(np.int64)
    busy = np.where(has, covered(a, b), 0)
    idle = np.where(has, np.maximum(b - a, 0) - busy, 0)
    nxt = np.concatenate((a[1:], [0]))
    nxt_has = np.concatenate((has[1:], [False]))
    gap_on = has & nxt_has & (nxt > b)
    gap = np.where(gap_on, np.maximum(nxt - b, 0) - covered(b, np.maximum(nxt, b)), 0)
    launches = calls(api, LAUNCH_API, columns=["start", "dur"])
    launch = np.zeros(st.height, dtype=np.int64)
    if launches.height:
        pos = st.select("idx", "start", "end").with_row_index("_pos")
        inside = assign_to_steps(
            launches, pos.select(pl.col("_pos").cast(pl.Int64).alias("idx"), "start", "end"), "start"
        )
        for p, t in inside.filter(pl.col("idx").is_not_null()).group_by("idx").agg(pl.col("dur").sum()).iter_rows():
            launch[int(p)] = int(t)
    wall = st["wall"].to_numpy().astype(np.int64)
    kinds = [str(k) for k in st["kind"].to_list()]
    idx = [int(i) for i in st["idx"].to_list()]
    n = st.height
    group = max(1, math.ceil(n / max_bars))
    if group == 1:
        return StepSeries(idx, kinds, _ints(busy), _ints(idle), _ints(gap), _ints(launch), _ints(wall), 1, n)
    starts = list(range(0, n, group))
    out_kind = []
    for s in starts:
        part = kinds[s : s + group]
        out_kind.append("prefill" if "prefill" in part else part[0])
    return StepSeries(
        [idx[s] for s in starts],
        out_kind,
        _group_mean(busy, group),
        _group_mean(idle, group),
        _group_mean(gap, group),
        _group_mean(launch, group),
        _group_mean(wall, group),
        group,
        n,
    )


def _ints(a: np.ndarray | Sequence[int]) -> list[int]:
    return [int(v) for v in a]


def _group_mean(a: np.ndarray, group: int) -> list[int]:
    n = a.size
    sums = np.add.reduceat(a.astype(np.int64), np.arange(0, n, group))
    sizes = np.minimum(np.arange(0, n, group) + group, n) - np.arange(0, n, group)
    return [round(s / k) for s, k in zip(sums.tolist(), sizes.tolist(), strict=True)]


# ------------------------------------------------------------------------------------------- histograms


def kernel_histogram(name: str, label: str, durs: np.ndarray, bins: int = HIST_BINS) -> KernelHistogram:
    """Instances binned by duration: geometric bins when max / min exceeds ``LOG_RANGE``, else linear bins at least
    one nanosecond wide; never more bins than distinct durations."""
    d = np.asarray(durs, dtype=np.int64)
    d = d[d >= 0]
    if d.size == 0:
        return KernelHistogram(name, label, 0, [0.0, 1.0], [0], False, 0, 0)
    lo, hi = int(d.min()), int(d.max())
    p50 = scalar_int(percentile(pl.Series(d), 50))
    n_bins = max(1, min(bins, int(np.unique(d).size)))
    log = lo > 0 and hi / lo > LOG_RANGE
    if lo == hi:  # one duration: one bin, 2% wide, so the axis reads in the duration's own unit
        half = max(0.5, 0.01 * lo)
        edges = np.array([lo - half, hi + half])
    elif log:
        edges = np.geomspace(lo, hi * (1 + 1e-9), n_bins + 1)
    else:
        width = max((hi - lo + 1) / n_bins, 1.0)
        n_bins = max(1, math.ceil((hi - lo + 1) / width))
        edges = lo - 0.5 + width * np.arange(n_bins + 1, dtype=np.float64)
    counts, _ = np.histogram(d, bins=edges)
    return KernelHistogram(
        name, label, int(d.size), [round(float(e), 3) for e in edges], _ints(counts), bool(log), p50, hi
    )


# ---------------------------------------------------------------------------------------------- pacing


def _min_max_sample(values: np.ndarray, index: np.ndarray, max_points: int) -> tuple[list[int], list[int], bool]:
    """At most ``max_points`` points: for each group of consecutive instances, its minimum and its maximum (in
    instance order), so spikes and dips survive the cut."""
    n = values.size
    if n <= max_points:
        return _ints(index), _ints(values), False
    groups = max(1, max_points // 2)
    bounds = np.linspace(0, n, groups + 1).astype(np.int64)
    keep: list[int] = []
    for lo, hi in zip(bounds[:-1].tolist(), bounds[1:].tolist(), strict=True):
        if hi <= lo:
            continue
        part = values[lo:hi]
        i_min, i_max = lo + int(np.argmin(part)), lo + int(np.argmax(part))
        keep += sorted({i_min, i_max})
    sel = np.asarray(keep, dtype=np.int64)
    return _ints(index[sel]), _ints(values[sel]), True


def kernel_pacing(
    name: str, label: str, starts: np.ndarray, durs: np.ndarray, device: int | None, max_points: int = MAX_POINTS
) -> Pacing:
    """Per instance of one kernel (in start order): the time since the previous instance started, and its
    duration, against the instance index."""
    s0, d0 = np.asarray(starts, dtype=np.int64), np.asarray(durs, dtype=np.int64)
    order = np.lexsort((d0, s0))  # by start, ties by duration: the same order whatever order the rows came in
    s, d = s0[order], d0[order]
    index = np.arange(s.size, dtype=np.int64)
    gi, gv, g_cut = _min_max_sample(np.diff(s), index[1:], max_points)
    di, dv, d_cut = _min_max_sample(d, index, max_points)
    return Pacing(name, label, int(s.size), device, gi, gv, di, dv, g_cut or d_cut)


# ----------------------------------------------------------------------------------------- utilization


def utilization(kernels: pl.DataFrame, start: int, end: int, bins: int = UTIL_BINS) -> Utilization:
    """The window [start, end) cut into ``bins`` equal bins; per device (``deviceId``), the share of each bin
    covered by its kernels (start, end, deviceId; overlapping kernels count once)."""
    span = max(end - start, 1)
    bins = max(1, min(bins, span))
    edges = start + (np.arange(bins + 1, dtype=np.float64) * span / bins)
    lo_e, hi_e = np.floor(edges[:-1]).astype(np.int64), np.floor(edges[1:]).astype(np.int64)
    width = np.maximum(hi_e - lo_e, 1)
    k = kernels.filter((pl.col("end") > start) & (pl.col("start") < end))
    devices = sorted(int(v) for v in k["deviceId"].drop_nulls().unique().to_list())[:UTIL_DEVICES]
    shares: list[list[float]] = []
    busy: list[int] = []
    for dev in devices:
        kd = k.filter(pl.col("deviceId") == dev)
        covered = busy_time(np.clip(kd["start"].to_numpy(), start, end), np.clip(kd["end"].to_numpy(), start, end))
        c = covered(lo_e, hi_e)
        shares.append([round(float(v), 4) for v in np.clip(c / width, 0.0, 1.0)])
        busy.append(int(covered(np.array([start]), np.array([end]))[0]))
    return Utilization(start, span / bins, devices, shares, busy)


# ----------------------------------------------------------------------------------------------- all


def build_plot_data(
    kernels: pl.DataFrame,
    gpu_ops: pl.DataFrame,
    api: pl.DataFrame,
    window: Window,
    steps: pl.DataFrame,
    top: pl.DataFrame,
    n_hist: int = HIST_KERNELS,
) -> PlotData:
    """Every plot of one window. ``gpu_ops`` is all GPU work (``TraceFrames.gpu_ops``: start, end, deviceId, kind);
    ``top`` is the diagnosis's top kernels (``name`` and ``label``, most GPU time first). Kernels are in the window
    when they start inside it, as in the diagnosis. The utilization map counts kernels and graph-level launches
    (kernels whose detail was not recorded), as nsys's recipe counts kernels; the step plot counts all GPU work."""
    kw = kernels.filter((pl.col("start") >= window.start) & (pl.col("start") <= window.end))
    notes: list[str] = []
    series = step_series(gpu_ops, api, steps)
    if series.group > 1:
        notes.append(f"{series.total} steps: each bar is the mean of {series.group} consecutive steps")
    if gpu_ops.height and (gpu_ops["kind"] == "graph").any():
        notes.append(
            "CUDA graphs were traced as whole launches (--cuda-graph-trace=graph): the steps hold only the kernels "
            "recorded outside graphs; the graphs' GPU time shows in the utilization map"
        )
    names = top.select("name", "label").head(n_hist).rows() if top.height else []
    hists: list[KernelHistogram] = []
    pacing = None
    if names:
        chosen = kw.filter(pl.col("name").is_in([n for n, _ in names])).select("name", "start", "dur", "deviceId")
        by_name = {str(key[0]): g for key, g in chosen.group_by("name", maintain_order=True)}
        for name, label in names:
            g = by_name.get(str(name))
            if g is not None:
                hists.append(kernel_histogram(str(name), str(label), g["dur"].to_numpy()))
        first = by_name.get(str(names[0][0]))
        if first is not None and first.height:
            device = None
            devs = first["deviceId"].drop_nulls()
            if devs.n_unique() > 1:
                counts = first.group_by("deviceId").len().sort(["len", "deviceId"], descending=[True, False])
                device = int(counts["deviceId"][0])
                first = first.filter(pl.col("deviceId") == device)
                notes.append(f"pacing of the top kernel on device {device}, where it ran most")
            elif devs.len():
                device = int(devs[0])
            pacing = kernel_pacing(
                str(names[0][0]), str(names[0][1]), first["start"].to_numpy(), first["dur"].to_numpy(), device
            )
    util = utilization(gpu_ops.filter(pl.col("kind").is_in(["kernel", "graph"])), window.start, window.end)
    return PlotData(window.start, window.end, series, hists, pacing, util, notes)


def diff_steps(before: Sequence[int], after: Sequence[int], kind: str, max_points: int = MAX_STEP_BARS) -> DiffSteps:
    """Per-step GPU time of both sides (``compare.step_busy``), averaged in groups beyond ``max_points``."""
    out: list[tuple[list[int], int]] = []
    for values in (before, after):
        a = np.asarray(values, dtype=np.int64)
        group = max(1, math.ceil(a.size / max_points))
        out.append((_group_mean(a, group) if a.size else [], group))
    return DiffSteps(out[0][0], out[1][0], out[0][1], out[1][1], kind)
