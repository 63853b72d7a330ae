"""Host side of the inference window: launches, queueing, GPU idle time, syncs, allocations, module loading,
pageable and synchronous copies. Pure functions over ``TraceFrames`` columns."""

from __future__ import annotations

import math
import re
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
import polars as pl

from ..trace.schema import MEM_PAGEABLE
from .distribution import inside as inside_intervals
from .distribution import (
    percentile,
    percentiles_in_place,
    row_chunks,
    scalar_float,
    scalar_int,
    sorted_unique,
    span_reduce,
    span_sums,
)
from .phases import LAUNCH_API, MODULE_LOAD_API, SYNC_API, Steps, Window, calls, launched_kernels

ALLOC_API = re.compile(
    r"^(cudaMalloc|cudaFree|cuMemAlloc|cuMemFree|cudaMallocAsync|cudaFreeAsync|cuMemAllocAsync|cuMemFreeAsync|"
    r"cudaMallocManaged|cudaMallocHost|cudaFreeHost|cudaHostAlloc|cuMemCreate|cuMemRelease|cuMemMap|cuMemUnmap)"
)
SYNC_MEMCPY_API = re.compile(r"^(cudaMemcpy|cuMemcpy)")  # minus the *Async* ones (see ASYNC)
SYNC_MEMSET_API = re.compile(r"^(cudaMemset|cuMemset)")
ASYNC = re.compile(r"Async")


@dataclass(frozen=True)
class ApiGroup:
    """Calls of one kind inside the window."""

    count: int = 0
    total_ns: int = 0
    in_steps: int = 0
    names: dict[str, int] = field(default_factory=dict)
    max_ns: int = 0
    idle_ns: int = 0  # GPU idle time these calls explain (see ``gpu_idle_caused``)

    def to_dict(self) -> dict[str, object]:
        return {
            "count": self.count,
            "total_ns": self.total_ns,
            "in_steps": self.in_steps,
            "max_ns": self.max_ns,
            "idle_ns": self.idle_ns,
            "by_name": self.names,
        }


LOAD_GAPS_SCHEMA = {"start": pl.Int64, "dur": pl.Int64}


@dataclass(frozen=True)
class HostSummary:
    launches: int
    launches_per_step: float | None
    launch_api_ns: int
    queue_p50_ns: float | None
    queue_p95_ns: float | None
    gpu_busy_ns: int
    window_ns: int
    step_gpu_idle_share: float | None  # mean over steps: share of the step's GPU span with no GPU work
    syncs: ApiGroup
    sync_memcpy: ApiGroup
    sync_memset: ApiGroup
    allocations: ApiGroup
    module_loads: ApiGroup
    pageable_copies: int
    pageable_bytes: int
    pageable_sizes: dict[int, int]  # bytes per copy -> number of copies (the largest sizes first)
    pageable_in_steps: int
    gaps: pl.DataFrame  # start, end, dur of GPU idle gaps in the window above the threshold
    gap_threshold_ns: int
    loading_gaps: pl.DataFrame  # idle gaps before the window (loading, warm-up)
    pause_gaps: pl.DataFrame  # of ``gaps``, those between two measured requests (the host paused between them)
    step_idle_ns: int = 0  # GPU idle time inside decode steps (between a step's first and last kernel)
    pageable_idle_ns: int = 0  # GPU idle time while the host was inside pageable copies
    pageable_idle_in_steps_ns: int = 0  # the part of it inside decode steps
    alloc_idle_in_steps_ns: int = 0  # the allocations' idle time (``allocations.idle_ns``) inside decode steps
    # the median over decode steps of the largest idle interval's share of the step's idle time (None: no step
    # idles): small when the GPU waits before each of many kernels, near 1 when one stall explains a step's idle
    step_largest_gap_share: float | None = None
    # the GPU idle intervals that hold the end of a module load (shorter than ``gap_threshold_ns``): the host
    # compiled (JIT) and loaded the kernel the GPU then waits for; in all, and the part inside decode steps
    load_gap_ns: int = 0
    load_gap_in_steps_ns: int = 0
    after_loads: dict[str, int] = field(default_factory=dict)  # short name of the kernel that runs next -> loads
    load_gaps: pl.DataFrame = field(default_factory=lambda: pl.DataFrame(schema=LOAD_GAPS_SCHEMA))  # start, dur
    decode_step_loads: int = 0  # module loads that end inside a decode step's GPU span
    sync_idle_in_steps_ns: int = 0  # of the refill intervals the syncs are charged, the time inside decode steps
    # the window's GPU idle in intervals between kernels shorter than ``SHORT_GAP_NS``, less the syncs' refills and
    # the intervals that hold a module load: the GPU waiting a little before each of many kernels (launch-bound,
    # judged over the window when the run has no passes)
    short_gap_idle_ns: int = 0
    # the GPU idle between consecutive steps (from a step's last kernel to the next step's first), in intervals
    # shorter than ``gap_threshold_ns``, less the syncs' refills and the intervals that hold a module load: the host
    # preparing and launching the next step while the GPU waits
    between_steps_idle_ns: int = 0

    @property
    def costed_gaps(self) -> pl.DataFrame:
        """The long idle gaps (``gaps``, gpu-idle-gap's) and the intervals that hold module loads (``load_gaps``,
        module-loading-in-window's) as start, dur: idle time those findings cost, which the step findings leave
        out."""
        return pl.concat([self.gaps.select(pl.col("start", "dur").cast(pl.Int64)), self.load_gaps])

    @property
    def gpu_busy_share(self) -> float | None:
        return self.gpu_busy_ns / self.window_ns if self.window_ns else None

    def to_dict(self) -> dict[str, object]:
        return {
            "launches": self.launches,
            "launches_per_step": self.launches_per_step,
            "launch_api_ns": self.launch_api_ns,
            "queue_p50_ns": self.queue_p50_ns,
            "queue_p95_ns": self.queue_p95_ns,
            "gpu_busy_ns": self.gpu_busy_ns,
            "window_ns": self.window_ns,
            "gpu_busy_share": self.gpu_busy_share,
            "step_gpu_idle_share": self.step_gpu_idle_share,
            "syncs": self.syncs.to_dict(),
            "sync_memcpy": self.sync_memcpy.to_dict(),
            "sync_memset": self.sync_memset.to_dict(),
            "allocations": self.allocations.to_dict(),
            "module_loads": self.module_loads.to_dict(),
            "pageable_copies": self.pageable_copies,
            "pageable_bytes": self.pageable_bytes,
            "pageable_sizes": {str(k): v for k, v in self.pageable_sizes.items()},
            "pageable_in_steps": self.pageable_in_steps,
            "step_idle_ns": self.step_idle_ns,
            "step_largest_gap_share": self.step_largest_gap_share,
            "load_gap_ns": self.load_gap_ns,
            "load_gap_in_steps_ns": self.load_gap_in_steps_ns,
            "sync_idle_in_steps_ns": self.sync_idle_in_steps_ns,
            "between_steps_idle_ns": self.between_steps_idle_ns,
            "short_gap_idle_ns": self.short_gap_idle_ns,
            "after_loads": self.after_loads,
            "pageable_idle_ns": self.pageable_idle_ns,
            "pageable_idle_in_steps_ns": self.pageable_idle_in_steps_ns,
            "alloc_idle_in_steps_ns": self.alloc_idle_in_steps_ns,
            "idle_gaps": self.gaps.to_dicts(),
            "idle_gap_threshold_ns": self.gap_threshold_ns,
            "loading_gaps": self.loading_gaps.height,
            "gaps_between_requests": self.pause_gaps.height,
            "gaps_between_requests_ns": int(self.pause_gaps["dur"].sum()) if self.pause_gaps.height else 0,
        }


def busy_intervals(ops: pl.DataFrame) -> pl.DataFrame:
    """Union of [start, end) intervals (per device) as start, end: GPU busy time."""
    if ops.is_empty():
        return pl.DataFrame(schema={"deviceId": pl.Int64, "start": pl.Int64, "end": pl.Int64})
    s = ops.select("deviceId", "start", "end")
    if s.null_count().sum_horizontal().item() or (s["end"] < s["start"]).any():
        return _busy_intervals_grouped(s)
    return _union_per_device([s]).cast(s.schema)  # (the input's column types)


def clipped_total(intervals: pl.DataFrame, w0: int, w1: int) -> int:
    """The time of ``intervals`` (start, end) inside [w0, w1]: each clipped to the window, summed (a negative
    clipped length counts 0). A chunk of rows at a time: millions of busy intervals make no whole-column copies."""
    if not intervals.height:
        return 0
    if intervals.select(pl.col("start", "end").null_count().sum()).row(0) != (0, 0):  # (a null span counts 0)
        clipped = (pl.col("end").clip(upper_bound=w1) - pl.col("start").clip(lower_bound=w0)).clip(lower_bound=0)
        return int(intervals.select(clipped.sum()).item())
    return _clipped_sum(intervals["start"].to_numpy(), intervals["end"].to_numpy(), w0, w1)


def _clipped_sum(s: np.ndarray, e: np.ndarray, w0: int, w1: int) -> int:
    """``clipped_total`` of the intervals [s, e) (no nulls), a chunk of them at a time."""
    total = 0
    for at in row_chunks(s.size):
        span = np.minimum(e[at], w1)
        span -= np.maximum(s[at], w0)
        total += int(span.clip(min=0).sum())
    return total


def busy_intervals_of(parts: Sequence[pl.DataFrame]) -> pl.DataFrame:
    """``busy_intervals`` of the operations of ``parts`` together (frames of start, end and deviceId, such as
    ``TraceFrames.gpu_parts``), without a concatenated, sorted frame of them all (at 20M kernels that frame and its
    sort held a gigabyte): each device's largest part, nearly always in time order already, is read in place and
    the others (copies, memsets: a few thousand) are merged into it by position."""
    frames = [p.select("deviceId", "start", "end") for p in parts if p.height]
    if not frames:
        return busy_intervals(pl.DataFrame())
    if any(f.null_count().sum_horizontal().item() or (f["end"] < f["start"]).any() for f in frames):
        return busy_intervals(pl.concat(frames, how="vertical_relaxed"))
    return _union_per_device(frames)


def _union_per_device(frames: list[pl.DataFrame]) -> pl.DataFrame:
    """The union of the intervals of ``frames`` (deviceId, start, end; no nulls, no end before its start) per
    device, devices in order, as deviceId, start, end (Int64): ``_union_by_chunks`` of each device's parts."""
    per_device: dict[int, list[tuple[np.ndarray, np.ndarray]]] = {}
    for f in frames:
        devices = f["deviceId"].unique().to_list()
        for dev in devices:
            d = f if len(devices) == 1 else f.filter(pl.col("deviceId") == dev)
            per_device.setdefault(int(dev), []).append((d["start"].to_numpy(), d["end"].to_numpy()))
    out = []
    for dev in sorted(per_device):
        starts, ends = _union_by_chunks(per_device[dev])
        out.append(
            pl.DataFrame(
                [
                    pl.repeat(dev, starts.size, dtype=pl.Int64, eager=True).alias("deviceId"),
                    pl.Series("start", starts, dtype=pl.Int64),
                    pl.Series("end", ends, dtype=pl.Int64),
                ]
            )
        )
        del starts, ends
    return pl.concat(out) if len(out) > 1 else out[0]


def _union_by_chunks(parts: list[tuple[np.ndarray, np.ndarray]]) -> tuple[np.ndarray, np.ndarray]:
    """The union of the (start, end) intervals of ``parts`` (no end before its start) as its disjoint stretches in
    order: their starts and ends. The largest part, when in order of start (a device's kernels nearly always
    are), is read in place a chunk at a time, the others (copies, memsets: few) merged into the chunk they fall
    in; only the stretches found are new arrays (at 20M kernels, a sorted copy of the intervals and its running
    maximum held 500 MB). Otherwise every interval is sorted by start first."""
    parts = sorted(parts, key=lambda p: -p[0].size)
    big_s, big_e = parts[0]
    if big_s.size > 1 and not bool(np.all(big_s[1:] >= big_s[:-1])):
        s, e = np.concatenate([p[0] for p in parts]), np.concatenate([p[1] for p in parts])
        o = np.argsort(s, kind="stable")
        big_s, big_e, parts = s[o], e[o], parts[:1]
        del s, e, o
    o_s, o_e = (np.concatenate([p[i] for p in parts[1:]]) if len(parts) > 1 else big_s[:0] for i in (0, 1))
    if o_s.size:
        o = np.argsort(o_s, kind="stable")
        o_s, o_e = o_s[o], o_e[o]
    # the stretches, written in order into arrays as long as the intervals (untouched pages hold no memory, and
    # the frame is made on the written part of them without a copy)
    starts = np.empty(big_s.size + o_s.size, dtype=np.int64)
    ends = np.empty_like(starts)
    found = 0
    carry: tuple[int, int] | None = None  # the stretch still open at the end of the chunk before: start, reach
    taken = 0  # the others merged so far
    n = big_s.size
    for at in row_chunks(n):
        # the others that start before the next chunk's first interval (at the last chunk, all that are left)
        upto = o_s.size if at.stop >= n else int(np.searchsorted(o_s, big_s[at.stop], side="left"))
        cs, ce = big_s[at], big_e[at]
        if upto > taken:
            cs, ce = np.concatenate([cs, o_s[taken:upto]]), np.concatenate([ce, o_e[taken:upto]])
            o = np.argsort(cs, kind="stable")
            cs, ce = cs[o], ce[o]
            taken = upto
        if carry is not None:
            cs, ce = np.concatenate([[carry[0]], cs]), np.concatenate([[carry[1]], ce])
        reach = np.maximum.accumulate(ce)
        opens = np.empty(cs.size, dtype=bool)
        opens[0] = True
        np.greater(cs[1:], reach[:-1], out=opens[1:])  # starts after every earlier interval ended
        first = np.flatnonzero(opens)
        closed = first.size - 1  # the stretches closed inside the chunk
        starts[found : found + closed] = cs[first[:-1]]
        ends[found : found + closed] = reach[first[1:] - 1]
        found += closed
        carry = (int(cs[first[-1]]), int(reach[-1]))
    if carry is not None:
        starts[found], ends[found] = carry
        found += 1
    return starts[:found], ends[:found]


def _busy_intervals_grouped(s: pl.DataFrame) -> pl.DataFrame:
    """``busy_intervals`` for frames with nulls or intervals ending before they start (what that defines)."""
    s = s.sort("deviceId", "start")
    s = s.with_columns(pl.col("end").cum_max().over("deviceId").shift(1).over("deviceId").alias("_prev"))
    s = s.with_columns(
        (pl.col("_prev").is_null() | (pl.col("start") > pl.col("_prev")))
        .cast(pl.Int64)
        .cum_sum()
        .over("deviceId")
        .alias("_grp")
    )
    return (
        s.group_by("deviceId", "_grp")
        .agg(pl.col("start").min(), pl.col("end").max())
        .drop("_grp")
        .sort("deviceId", "start")
    )


def idle_gaps(busy: pl.DataFrame, lo: int, hi: int, min_ns: int) -> pl.DataFrame:
    """Idle gaps between busy intervals, inside [lo, hi], at least ``min_ns`` long."""
    if busy.is_empty():
        return pl.DataFrame(schema={"deviceId": pl.Int64, "start": pl.Int64, "end": pl.Int64, "dur": pl.Int64})
    if _merged(busy):  # one device's intervals in order: the gaps between neighbours, without a frame of them all
        ends, starts = busy["end"].slice(0, busy.height - 1), busy["start"].slice(1)
        e64, s64 = ends.cast(pl.Int64), starts.cast(pl.Int64)  # compared as Int64: any bound fits
        at = (((s64 - e64) >= min_ns) & (e64 >= lo) & (s64 <= hi)).arg_true()
        g = pl.DataFrame(
            [busy["deviceId"].slice(1).gather(at), ends.gather(at).alias("start"), starts.gather(at).alias("end")]
        )
        return g.with_columns((pl.col("end") - pl.col("start")).alias("dur")).sort("dur", descending=True)
    g = busy.with_columns(pl.col("end").shift(1).over("deviceId").alias("gap_start")).filter(
        pl.col("gap_start").is_not_null()
    )
    g = g.select("deviceId", pl.col("gap_start").alias("start"), pl.col("start").alias("end"))
    g = g.with_columns((pl.col("end") - pl.col("start")).alias("dur"))
    return g.filter((pl.col("dur") >= min_ns) & (pl.col("start") >= lo) & (pl.col("end") <= hi)).sort(
        "dur", descending=True
    )


class GpuIdle:
    """The idle intervals of the GPU(s) inside [lo, hi]: the times when no device of ``busy`` works, held as the
    merged busy intervals around them (idle interval k runs from the end of busy interval k - 1, or ``lo``, to the
    start of busy interval k, or ``hi``, clipped to [lo, hi]; the empty ones are none). A window of millions of
    kernels has millions of idle intervals: they are looked up where host calls need them, never made into a
    frame (``frame`` makes one, for small cases)."""

    def __init__(self, busy: pl.DataFrame, lo: int, hi: int) -> None:
        self.lo, self.hi = lo, hi
        empty = np.zeros(0, dtype=np.int64)
        self.bs, self.be = empty, empty
        self.none = hi <= lo  # no window: no interval at all
        if self.none or busy.is_empty():
            return
        merged = busy if _merged(busy) else busy_intervals(busy.with_columns(pl.lit(0, pl.Int64).alias("deviceId")))
        if merged["start"].null_count() or merged["end"].null_count():  # no time, no interval (a filter drops it)
            merged = merged.drop_nulls(["start", "end"])
        # the intervals with end > lo and start < hi: one stretch of the merged ones (sorted, disjoint)
        first = int(merged["end"].search_sorted(lo, side="right"))
        last = int(merged["start"].search_sorted(hi, side="left"))
        b = merged.slice(first, max(0, last - first))
        self.bs = b["start"].cast(pl.Int64).to_numpy()
        self.be = b["end"].cast(pl.Int64).to_numpy()

    def largest_gap_shares(self, starts: np.ndarray, ends: np.ndarray) -> np.ndarray:
        """Per span [start, end] (a step, from its first kernel's start to its last kernel's end): the largest idle
        interval lying inside it as a share of all the idle time of the intervals inside it; NaN where none lies
        inside. Near 1: one stall explains the span's idle time; small: the GPU waits a little before each of many
        kernels (launch overhead, or the host's per-operation work)."""
        out = np.full(starts.size, np.nan)
        if self.bs.size < 2 or not starts.size:
            return out
        dur = self.bs[1:] - self.be[:-1]  # the idle intervals between two busy ones (sorted, disjoint)
        first, stop = self._spanned(starts, ends)
        ok = stop > first
        if not ok.any():
            return out
        idx = np.empty(2 * int(ok.sum()), dtype=np.int64)
        idx[0::2], idx[1::2] = first[ok], stop[ok]
        largest = span_reduce(np.maximum, dur, idx)
        held = span_sums(dur, first[ok], stop[ok])
        out[ok] = np.where(held > 0, largest / np.maximum(held, 1), np.nan)
        return out

    def holding_ids(self, times: np.ndarray, shorter_than: int | None = None) -> np.ndarray:
        """The numbers (sorted, distinct) of the idle intervals that hold one of ``times``, those shorter than
        ``shorter_than`` (a longer one is an idle gap of its own: a sleep, the next request)."""
        if self.none or not times.size:
            return np.zeros(0, dtype=np.int64)
        k = self._last_starting_by(times)
        s, e = self._bounds(np.maximum(k, 0))
        hit = (k >= 0) & (times >= s) & (times < e) & self._usable(s, e, shorter_than)
        return sorted_unique(k[hit])

    def holding(self, times: np.ndarray, shorter_than: int | None = None) -> tuple[np.ndarray, np.ndarray]:
        """The idle intervals (starts, ends, in order) that ``holding_ids`` numbers."""
        return self._bounds(self.holding_ids(times, shorter_than))

    def bounds(self, k: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(start, end) of the idle intervals numbered ``k``, clipped to [lo, hi]."""
        return self._bounds(k)

    def _bounds(self, k: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(start, end) of idle intervals ``k`` (0 <= k <= number of busy intervals), clipped to [lo, hi]."""
        m = self.bs.size
        s = np.where(k == 0, self.lo, self.be[np.clip(k - 1, 0, max(m - 1, 0))] if m else self.lo)
        e = np.where(k == m, self.hi, self.bs[np.clip(k, 0, max(m - 1, 0))] if m else self.hi)
        return np.clip(s, self.lo, self.hi), np.clip(e, self.lo, self.hi)

    def _last_starting_by(self, x: np.ndarray) -> np.ndarray:
        """Per time in ``x``: the index of the last idle interval (empty ones included) whose start is <= it, -1
        when none."""
        if self.none:
            return np.full(x.size, -1, dtype=np.int64)
        k = np.searchsorted(self.be, x, side="right").astype(np.int64)  # starts of k >= 1 are the busy ends
        return np.where(x < self.lo, -1, np.where(x >= self.hi, self.bs.size, k))

    def total(self) -> int:
        """The idle time inside [lo, hi]: the window less the busy time in it (the busy intervals are disjoint)."""
        if self.none:
            return 0
        return (self.hi - self.lo) - _clipped_sum(self.bs, self.be, self.lo, self.hi)

    def short_idle(self, shorter_than: int, skip: np.ndarray | None = None) -> int:
        """The idle time of the intervals between two busy ones shorter than ``shorter_than``, less the intervals
        numbered ``skip`` (a sync's refills, costed by its finding): the GPU waiting a little before each of many
        kernels (the host's per-operation work), not a stall."""
        return int(self._short(shorter_than, skip).sum()) if self.bs.size >= 2 else 0

    def inside(self, starts: np.ndarray, ends: np.ndarray, shorter_than: int, skip: np.ndarray) -> int:
        """``short_idle`` of the intervals that lie inside one of the disjoint spans [starts, ends]."""
        if self.bs.size < 2 or not starts.size:
            return 0
        # the short intervals' running total, made in the array of their durations (no second array of millions)
        running = self._short(shorter_than, skip)
        np.cumsum(running, out=running)
        first, stop = self._spanned(starts, ends)
        stop = np.maximum(stop, first)

        def before(at: np.ndarray) -> np.ndarray:  # the total of the intervals before ``at``
            return np.where(at > 0, running[np.maximum(at - 1, 0)], 0)

        return int((before(stop) - before(first)).sum())

    def _spanned(self, starts: np.ndarray, ends: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Per span [start, end]: the intervals between two busy ones (interval k at k - 1) that lie inside it run
        from ``first`` (the first to start at or after its start) to before ``stop`` (past the last to end by its
        end); none where ``stop <= first``."""
        return (
            np.searchsorted(self.be[:-1], starts, side="left"),
            np.searchsorted(self.bs[1:], ends, side="right"),
        )

    def within(self, starts: np.ndarray, ends: np.ndarray) -> int:
        """The idle time of all the intervals that lie inside one of the disjoint spans [starts, ends] (each a step's,
        from its first kernel's start to its last kernel's end)."""
        return self.inside(starts, ends, np.iinfo(np.int64).max, np.zeros(0, dtype=np.int64))

    def _short(self, shorter_than: int, skip: np.ndarray | None) -> np.ndarray:
        """Per interval between two busy ones (interval k, 1 <= k < number of busy intervals, at k - 1): its
        duration where it is shorter than ``shorter_than`` and not numbered in ``skip``, else 0."""
        dur = self.bs[1:] - self.be[:-1]
        other = (dur <= 0) | (dur >= shorter_than)
        if skip is not None and skip.size:
            inner = skip[(skip >= 1) & (skip < self.bs.size)]
            other[inner - 1] = True
        dur[other] = 0  # (in place: one array of millions of intervals, not two)
        return dur

    def frame(self) -> pl.DataFrame:
        """The idle intervals as rows gid, start, end (gid: their order)."""
        schema = {"gid": pl.Int64, "start": pl.Int64, "end": pl.Int64}
        if self.none:
            return pl.DataFrame(schema=schema)
        s, e = self._bounds(np.arange(self.bs.size + 1, dtype=np.int64))
        keep = e > s
        g = pl.DataFrame({"start": s[keep], "end": e[keep]}, schema={"start": pl.Int64, "end": pl.Int64})
        return g.with_row_index("gid").with_columns(pl.col("gid").cast(pl.Int64)).select("gid", "start", "end")

    @staticmethod
    def _usable(s: np.ndarray, e: np.ndarray, shorter_than: int | None) -> np.ndarray:
        """Which intervals (start ``s``, end ``e``) a sync may be charged: not empty, shorter than ``shorter_than``."""
        nonempty: np.ndarray = e > s
        return nonempty & ((e - s) < shorter_than) if shorter_than is not None else nonempty

    def caused(
        self,
        sel: pl.DataFrame,
        sync: bool,
        shorter_than: int | None = None,
        skip: np.ndarray | None = None,
        charged: list[np.ndarray] | None = None,
        within: tuple[np.ndarray, np.ndarray] | None = None,
    ) -> int:
        """GPU idle time that host calls ``sel`` (start, end) explain, counting each idle interval once.

        A blocking call (allocation, module load, pageable copy) costs the idle time that overlaps it: the GPU had
        nothing to do while the host was inside the call (calls that overlap each other count their common time
        once), in the intervals shorter than ``shorter_than`` that ``skip`` does not number (a long gap is an idle
        gap of its own; a sync's refill is the sync's). A synchronization returns when the GPU has drained, so it
        costs the idle interval that begins while the host waits (its refill: the time until the next GPU work
        starts), the last one to begin by its return among those shorter than ``shorter_than`` (a long gap, a
        sleep or the next request, is an idle gap of its own). The time a sync spends blocked while the GPU works
        is the GPU's own work, not a cost. ``skip``: numbers of idle intervals a sync is not charged (those that
        hold a module load: the loading's, ``holding_ids``); ``charged``: a list the numbers of the intervals syncs
        are charged are added to. ``within``: for blocking calls, only the intervals that lie inside one of these
        disjoint spans (the steps: the part of the cost inside them)."""
        sel = sel.drop_nulls(["start", "end"])  # a call without both times is nowhere on the timeline
        if self.none or sel.is_empty():
            return 0
        c0 = sel["start"].cast(pl.Int64).to_numpy()
        c1 = sel["end"].cast(pl.Int64).to_numpy()
        if sync:
            k = self._last_starting_by(c1)
            s, e = self._bounds(np.maximum(k, 0))
            usable = (k >= 0) & self._usable(s, e, shorter_than)
            # where the last interval to start is empty or too long, an earlier one may still have started inside
            # the call: step back, every such call at once, until one is usable or starts before the call (one
            # step passes a whole busy interval or a long gap: few steps)
            pending = np.flatnonzero(~usable & (k >= 0))
            j = k[pending] - 1
            while pending.size:
                keep = j >= 0
                pending, j = pending[keep], j[keep]
                sj, ej = self._bounds(j)
                began = sj >= c0[pending]  # an interval that began before the call: no refill of it
                pending, j, sj, ej = pending[began], j[began], sj[began], ej[began]
                good = self._usable(sj, ej, shorter_than)
                k[pending[good]] = j[good]
                usable[pending[good]] = True
                pending, j = pending[~good], j[~good] - 1
            s, e = self._bounds(np.maximum(k, 0))
            hit = usable & (s >= c0)
            if skip is not None and skip.size:
                hit &= ~np.isin(k, skip)
            ids, first = np.unique(k[hit], return_index=True)
            if charged is not None:
                charged.append(ids)
            return int((e[hit][first] - s[hit][first]).sum()) if ids.size else 0
        # the idle time inside the union of the calls, each moment once (calls on several threads overlap), in the
        # intervals shorter than ``shorter_than`` that ``skip`` does not number
        order = np.argsort(c0, kind="stable")
        a, b = c0[order], np.maximum.accumulate(c1[order])
        first = np.flatnonzero(np.concatenate([[True], a[1:] > b[:-1]]))  # each piece of the union: its first call
        us, ue = a[first], b[np.concatenate([first[1:] - 1, [a.size - 1]])]
        done = np.concatenate([[0], np.cumsum(ue - us)])

        def covered(t: np.ndarray) -> np.ndarray:
            """The time of the union up to each of ``t``."""
            j = np.searchsorted(us, t, side="right") - 1
            jj = np.maximum(j, 0)
            return np.where(j >= 0, done[jj] + np.clip(t - us[jj], 0, ue[jj] - us[jj]), 0)

        # the intervals the pieces touch: from the last to start by a piece's start to the last to start by its end
        lo_k = np.maximum(self._last_starting_by(us), 0)
        n = np.maximum(self._last_starting_by(ue), 0) - lo_k + 1
        k = sorted_unique(np.repeat(lo_k, n) + np.arange(int(n.sum())) - np.repeat(np.cumsum(n) - n, n))
        s, e = self._bounds(k)
        ok = self._usable(s, e, shorter_than)
        if skip is not None and skip.size:
            ok &= ~np.isin(k, skip)
        if within is not None:
            ok &= self._inside_mask(*within)[k]
        return int((covered(e[ok]) - covered(s[ok])).sum())

    def _inside_mask(self, starts: np.ndarray, ends: np.ndarray) -> np.ndarray:
        """Per idle interval (0 to the number of busy intervals): whether it lies between two busy intervals inside
        one of the disjoint spans [starts, ends] (as ``inside`` counts them)."""
        m = self.bs.size
        if m < 2 or not starts.size:
            return np.zeros(m + 1, dtype=bool)
        first, stop = self._spanned(starts, ends)  # (interval k at k - 1)
        keep = stop > first
        diff = np.zeros(m + 2, dtype=np.int64)
        np.add.at(diff, first[keep] + 1, 1)
        np.add.at(diff, stop[keep] + 1, -1)
        return np.cumsum(diff)[: m + 1] > 0


def gpu_idle(busy: pl.DataFrame, lo: int, hi: int) -> GpuIdle:
    """The idle intervals of the GPU(s) inside [lo, hi] (``GpuIdle``): times when no device of ``busy`` works."""
    return GpuIdle(busy, lo, hi)


def overlapping(busy: pl.DataFrame, lo: int, hi: int) -> pl.DataFrame:
    """The intervals of ``busy`` that overlap [lo, hi] (end >= lo, start <= hi): a slice, not a copy, when they are
    one device's disjoint intervals in order (their ends then rise with their starts)."""
    if not _merged(busy):
        return busy.filter((pl.col("end") >= lo) & (pl.col("start") <= hi))
    first = int(busy["end"].search_sorted(lo, side="left"))
    last = int(busy["start"].search_sorted(hi, side="right"))
    return busy.slice(first, max(0, last - first))


def _merged(busy: pl.DataFrame) -> bool:
    """Whether ``busy`` is already its own union over devices (one device's ``busy_intervals``: sorted by start, each
    interval starting after the one before ends), so that merging it again would copy millions of rows for
    nothing."""
    dev, start, end = busy["deviceId"], busy["start"], busy["end"]
    if dev.null_count() or start.null_count() or end.null_count() or dev.min() != dev.max():
        return False
    return busy.height < 2 or bool((start.slice(1) > end.slice(0, busy.height - 1)).all())


def gpu_idle_caused(
    idle: GpuIdle,
    sel: pl.DataFrame,
    sync: bool,
    shorter_than: int | None = None,
    skip: np.ndarray | None = None,
    charged: list[np.ndarray] | None = None,
    within: tuple[np.ndarray, np.ndarray] | None = None,
) -> int:
    """``GpuIdle.caused``: the GPU idle time host calls ``sel`` (start, end) explain."""
    return idle.caused(sel, sync, shorter_than, skip, charged, within)


def _group(
    api_w: pl.DataFrame,
    pattern: re.Pattern[str],
    step_tbl: pl.DataFrame,
    exclude: re.Pattern[str] | None = None,
    idle: GpuIdle | None = None,
    sync: bool = False,
    shorter_than: int | None = None,
    skip: np.ndarray | None = None,
    charged: list[np.ndarray] | None = None,
    sel: pl.DataFrame | None = None,
) -> ApiGroup:
    """The calls of ``api_w`` matching ``pattern`` (and not ``exclude``; ``sel``: those calls, selected already)."""
    from .phases import assign_to_steps

    sel = calls(api_w, pattern, exclude) if sel is None else sel
    if sel.is_empty():
        return ApiGroup()
    names = dict(sel.group_by("name").len().sort(["len", "name"], descending=[True, False]).iter_rows())
    in_steps = 0
    if step_tbl.height:
        in_steps = assign_to_steps(sel, step_tbl, "start").filter(pl.col("idx").is_not_null()).height
    cost = gpu_idle_caused(idle, sel, sync, shorter_than, skip, charged) if idle is not None else 0
    return ApiGroup(sel.height, int(sel["dur"].sum()), in_steps, names, scalar_int(sel["dur"].max()), cost)


def summarize_host(
    kernels: pl.DataFrame,
    api: pl.DataFrame,
    memcpy: pl.DataFrame,
    all_busy: pl.DataFrame,
    first_op_ns: int,
    window: Window,
    steps: Steps,
    lk: pl.DataFrame | None = None,
) -> HostSummary:
    """The host's side of ``window``. ``all_busy`` is ``busy_intervals`` of every GPU operation of the trace
    (kernels, copies, memsets, graph launches) and ``first_op_ns`` the start of the first of them (0 when none):
    the caller frees the operations themselves, millions of rows, before this runs."""
    from .phases import assign_to_steps

    w0, w1 = window.start, window.end
    api_w = window.rows(api)  # the frame itself, or a slice of it, where it can: a filter copies millions of rows
    launches = calls(api_w, LAUNCH_API, columns=["dur"])  # only what is counted: millions of launches
    # queue: kernel start minus launch end, for kernels launched in the window
    # only the queue times are kept: filtering the launched kernels' every column would copy millions of rows
    wait = (
        (launched_kernels(kernels, api) if lk is None else lk)
        .select(
            (pl.col("start") - pl.col("l_end")).filter(
                pl.col("l_end").is_not_null() & (pl.col("l_start") >= w0) & (pl.col("l_start") <= w1)
            )
        )
        .to_series()
    )
    # the waits of at least 0 as an array of their own, partitioned in place for both percentiles (no sorted copy)
    waits = wait.drop_nulls().to_numpy()
    del wait
    queue_p50, queue_p95 = percentiles_in_place(waits[waits >= 0], (50, 95))
    del waits
    busy = overlapping(all_busy, w0, w1)
    busy_ns = clipped_total(busy, w0, w1)
    # idle share inside steps: 1 - (GPU time of the step's kernels) / (span from its first to its last kernel)
    idle_share = None
    st = steps.table
    spans = st.filter(pl.col("gpu_start").is_not_null() & (pl.col("gpu_end") > pl.col("gpu_start")))
    if spans.height:
        busy_frac = (spans["gpu_time"] / (spans["gpu_end"] - spans["gpu_start"])).clip(upper_bound=1.0)
        # an exact sum: polars' mean adds in an order that follows how the frame is split into chunks (which
        # depends on its thread count), and the last bit of the share would differ from machine to machine
        fractions = busy_frac.drop_nulls().to_list()
        idle_share = 1.0 - math.fsum(fractions) / len(fractions) if fractions else None
    step_wall_p50 = None
    if st.height:
        step_wall_p50 = percentile(st.filter(pl.col("kind") != "prefill")["wall"].to_list() or st["wall"].to_list(), 50)
    threshold = max(5 * int(step_wall_p50 or 0), 5_000_000)
    gaps = idle_gaps(busy, w0, w1, threshold)
    if window.pauses and gaps.height:  # the gaps between two measured requests: the host paused between them
        # one search among the pauses (a run of thousands of requests has thousands), not a test of each;
        # a pause [a, b] holds the whole numbers of [a, b + 1)
        mid = gaps.select((pl.col("start") + pl.col("end")) // 2).to_series().to_numpy()
        a, b = (np.array([p[i] for p in window.pauses], dtype=np.int64) for i in (0, 1))
        pause_gaps = gaps.filter(pl.Series(inside_intervals(mid, a, b + 1)))
    else:
        pause_gaps = gaps.clear()
    loading = idle_gaps(
        all_busy,
        first_op_ns,
        w0,
        max(threshold, 100_000_000),
    )
    idle = gpu_idle(busy, w0, w1)
    # idle inside decode steps: from a step's first to its last kernel, the time the GPU works on nothing
    dec = spans.filter(pl.col("kind") != "prefill") if spans.height else spans
    if dec.is_empty() and st.height and st.filter(pl.col("kind") != "prefill").is_empty():
        dec = spans  # a prefill-only run: its passes are the steps
    # (no kernel, copy or memset of any device runs: a copy inside a step is GPU work, as in gpu_busy_ns, not idle)
    step_idle = idle.within(dec["gpu_start"].to_numpy(), dec["gpu_end"].to_numpy()) if dec.height else 0
    shares = (
        idle.largest_gap_shares(dec["gpu_start"].to_numpy(), dec["gpu_end"].to_numpy()) if dec.height else np.zeros(0)
    )
    shares = shares[~np.isnan(shares)]
    largest_gap_share = percentile(shares.tolist(), 50) if shares.size else None
    load_ends = np.sort(calls(api_w, MODULE_LOAD_API).drop_nulls(["end"])["end"].cast(pl.Int64).to_numpy())
    loaded = idle.holding_ids(load_ends, threshold)
    load_gaps, load_gap_in_steps, after_loads, decode_step_loads = _load_gaps(kernels, load_ends, idle, dec, threshold)
    # syncs, and the refill intervals they are charged (the refills that hold a module load are the loading's)
    charged: list[np.ndarray] = []
    syncs, sync_memcpy, sync_memset = (
        _group(api_w, pattern, st, exclude, idle, True, threshold, loaded, charged)
        for pattern, exclude in ((SYNC_API, None), (SYNC_MEMCPY_API, ASYNC), (SYNC_MEMSET_API, ASYNC))
    )
    refills = sorted_unique(np.concatenate(charged)) if charged else np.zeros(0, dtype=np.int64)
    s0, s1 = idle.bounds(refills) if refills.size else (np.zeros(0), np.zeros(0))
    sync_in_steps = time_inside(dec, pl.DataFrame({"start": s0, "dur": s1 - s0}, schema=LOAD_GAPS_SCHEMA))
    skip = np.concatenate([refills, loaded]).astype(np.int64)
    between_steps = 0
    if spans.height >= 2:  # from each step's last kernel to the next step's first
        order = spans.sort("gpu_start")
        # (the latest end so far: a step that ends after the next one leaves no span between them)
        a, b = np.maximum.accumulate(order["gpu_end"].to_numpy())[:-1], order["gpu_start"].to_numpy()[1:]
        keep = b > a
        between_steps = idle.inside(a[keep], b[keep], threshold, skip)
    mc_w = memcpy.filter((pl.col("start") >= w0) & (pl.col("start") <= w1))
    pageable = mc_w.filter((pl.col("srcKind") == MEM_PAGEABLE) | (pl.col("dstKind") == MEM_PAGEABLE))
    pageable_in_steps = 0
    # the calls of the pageable copies (one semi join of millions of calls, for both measures below)
    copy_calls = (
        api.join(pageable.select("correlationId").unique(), on="correlationId", how="semi") if pageable.height else api
    )
    if pageable.height and st.height:
        pc = pageable.join(
            copy_calls.select("correlationId", pl.col("start").alias("l_start")), on="correlationId", how="left"
        ).with_columns(pl.coalesce("l_start", "start").alias("t"))
        pageable_in_steps = assign_to_steps(pc, st, "t").filter(pl.col("idx").is_not_null()).height
    pageable_idle = pageable_idle_in_steps = 0
    steps_at = (dec["gpu_start"].to_numpy(), dec["gpu_end"].to_numpy()) if dec.height else None
    if pageable.height:
        copy_at = copy_calls.select("start", "end")
        pageable_idle = gpu_idle_caused(idle, copy_at, False, threshold, skip)
        if steps_at is not None:
            pageable_idle_in_steps = gpu_idle_caused(idle, copy_at, False, threshold, skip, within=steps_at)
    alloc_calls = calls(api_w, ALLOC_API)  # (their group below: the same calls)
    alloc_idle_in_steps = (
        gpu_idle_caused(idle, alloc_calls, False, threshold, skip, within=steps_at)
        if steps_at is not None and alloc_calls.height
        else 0
    )
    return HostSummary(
        launches=launches.height,
        launches_per_step=(scalar_float(st["launches"].median()) if st.height else None),
        launch_api_ns=int(launches["dur"].sum()) if launches.height else 0,
        queue_p50_ns=queue_p50,
        queue_p95_ns=queue_p95,
        gpu_busy_ns=busy_ns,
        window_ns=window.duration,
        step_gpu_idle_share=idle_share,
        # a sync is charged the refill after it, not a long gap (a sleep, the next request): those are idle gaps
        # (the refills that hold a module load are the loading's: module-loading-in-window)
        syncs=syncs,
        sync_memcpy=sync_memcpy,
        sync_memset=sync_memset,
        sync_idle_in_steps_ns=sync_in_steps,
        allocations=_group(api_w, ALLOC_API, st, idle=idle, shorter_than=threshold, skip=skip, sel=alloc_calls),
        module_loads=_group(api_w, MODULE_LOAD_API, st, idle=idle),
        pageable_copies=pageable.height,
        pageable_bytes=int(pageable["bytes"].sum()) if pageable.height else 0,
        pageable_sizes=dict(pageable.group_by("bytes").len().sort("bytes", descending=True).head(5).iter_rows())
        if pageable.height
        else {},
        pageable_in_steps=pageable_in_steps,
        gaps=gaps,
        gap_threshold_ns=threshold,
        pause_gaps=pause_gaps,
        loading_gaps=loading,
        step_idle_ns=step_idle,
        pageable_idle_ns=pageable_idle,
        pageable_idle_in_steps_ns=pageable_idle_in_steps,
        alloc_idle_in_steps_ns=alloc_idle_in_steps,
        step_largest_gap_share=None if largest_gap_share is None else float(largest_gap_share),
        load_gap_ns=int(load_gaps["dur"].sum()),
        load_gap_in_steps_ns=load_gap_in_steps,
        after_loads=after_loads,
        load_gaps=load_gaps,
        decode_step_loads=decode_step_loads,
        short_gap_idle_ns=idle.short_idle(SHORT_GAP_NS, skip=skip),
        between_steps_idle_ns=between_steps,
    )


SHORT_GAP_NS = 200_000
"""An idle interval between two kernels shorter than this is the host's per-operation work (Python dispatch, a
launch), not a stall: ``HostSummary.short_gap_idle_ns``."""

AFTER_LOADS_TOP = 3
"""How many names of the kernels that run right after module loads ``HostSummary.after_loads`` keeps."""


def _load_gaps(
    kernels: pl.DataFrame, ends: np.ndarray, idle: GpuIdle, dec: pl.DataFrame, shorter_than: int
) -> tuple[pl.DataFrame, int, dict[str, int], int]:
    """The GPU idle intervals that hold the end of a module load in the window (``ends``, sorted;
    ``GpuIdle.holding``; start, dur),
    the part of them inside the decode steps ``dec`` (gpu_start, gpu_end), the short names of the kernels that
    start first after the loads (the kernel compiled or loaded; the most loads first, at most ``AFTER_LOADS_TOP``)
    and how many loads end inside a decode step."""
    none = pl.DataFrame(schema=LOAD_GAPS_SCHEMA)
    if not ends.size:
        return none, 0, {}, 0
    in_decode = 0
    d0 = d1 = np.zeros(0, dtype=np.int64)
    if dec.height:
        d0, d1 = dec["gpu_start"].to_numpy(), dec["gpu_end"].to_numpy()
        order = np.argsort(d0, kind="stable")
        d0, d1 = d0[order], d1[order]
        k = np.searchsorted(d0, ends, side="right") - 1  # the last step starting by the load's end
        in_decode = int(((k >= 0) & (ends <= d1[np.maximum(k, 0)])).sum())
    s, e = idle.holding(ends, shorter_than)
    if not s.size:
        return none, 0, {}, in_decode
    gaps = pl.DataFrame({"start": s, "dur": e - s}, schema=LOAD_GAPS_SCHEMA)
    inside = time_inside(dec, gaps)
    # the first kernel to start when each interval ends (a copy may come first): the one the host prepared while
    # the GPU waited
    col = "short" if "short" in kernels.columns else "name"
    starts = kernels["start"].fill_null(np.iinfo(np.int64).max).cast(pl.Int64).to_numpy()
    by_start = None if bool((starts[1:] >= starts[:-1]).all()) else np.argsort(starts, kind="stable")
    at = np.searchsorted(starts if by_start is None else starts[by_start], e, side="left")
    at = at[at < starts.size]
    rows = at if by_start is None else by_start[at]
    names = kernels[col].gather(rows.tolist()).cast(pl.String).drop_nulls().to_list()
    counts: dict[str, int] = {}
    for name in names:
        counts[name] = counts.get(name, 0) + 1
    top = sorted(counts.items(), key=lambda x: (-x[1], x[0]))
    return gaps, inside, dict(top[:AFTER_LOADS_TOP]), in_decode


def span_overlaps(a: np.ndarray, b: np.ndarray, gaps: pl.DataFrame) -> np.ndarray:
    """Per span [a, b] (numpy arrays): the time the union of the intervals ``gaps`` (start, dur; they may overlap:
    several devices' idle gaps, or two kinds of interval) holds inside it. Sorted once, a running sum and two binary
    searches per span: millions of spans against as many intervals cost no more than sorting them."""
    if not gaps.height or not len(a):
        return np.zeros(len(a), dtype=np.int64)
    order = np.argsort(gaps["start"].to_numpy(), kind="stable")
    g0 = gaps["start"].to_numpy()[order]
    g1 = g0 + gaps["dur"].to_numpy()[order]
    # the union: an interval starts a new piece where it begins after every earlier one has ended
    reach = np.maximum.accumulate(g1)
    new = np.concatenate([[True], g0[1:] > reach[:-1]])
    u0 = g0[new]
    u1 = np.maximum.reduceat(g1, np.flatnonzero(new))
    held = np.concatenate([[0], np.cumsum(u1 - u0)])

    def upto(x: np.ndarray) -> np.ndarray:  # the union's time before x
        k = np.searchsorted(u0, x, side="right")  # pieces starting at or before x
        last = np.maximum(k - 1, 0)
        part = np.where(k > 0, np.clip(x - u0[last], 0, (u1 - u0)[last]), 0)
        return held[np.maximum(k - 1, 0)] * (k > 0) + part

    return np.maximum(upto(b) - upto(a), 0).astype(np.int64)


def time_inside(steps: pl.DataFrame, gaps: pl.DataFrame) -> int:
    """The time of the union of the intervals ``gaps`` (start, dur) inside the GPU spans (gpu_start, gpu_end) of
    ``steps``."""
    if not gaps.height or not steps.height:
        return 0
    spans = steps.select("gpu_start", "gpu_end").drop_nulls()
    return int(span_overlaps(spans["gpu_start"].to_numpy(), spans["gpu_end"].to_numpy(), gaps).sum())
