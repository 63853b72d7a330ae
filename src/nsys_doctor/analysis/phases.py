"""The inference window and its steps, found in the data.

``choose_window`` picks the steady-state part of a trace to analyze, in this order: a cudaProfilerApi capture
range, NVTX ranges that look like requests, NVTX ranges that look like steps, else a detection from the data
(model loading = big host-to-device copies, module loading and long idle gaps at the start). ``find_steps``
splits the window into prefill and decode steps: NVTX step ranges when present, else CUDA graph launches, host
synchronizations, or the repeating kernel that ends every step. Pure functions over ``TraceFrames`` columns.
"""

from __future__ import annotations

import itertools
import re
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import numpy as np
import polars as pl

from ..trace.schema import COPY_HTOD, GRID
from ..units import format_names
from .distribution import row_chunks, scalar_float, scalar_int

if TYPE_CHECKING:
    from .ops import OpRule
    from .structure import RunStructure

REQUEST_NAMES = re.compile(
    r"^(iter|iteration|request|req|generate|generation|inference|e2e|serve|batch|run)(_\d+)?$", re.IGNORECASE
)
NOT_ANNOTATION = r"^(?:[^{\[].*)?"
"""The start of a step-name pattern: a name that is a serialized dict or list (DLProf and PyProf's per-op markers:
"{'traceMarker': [... /forward ...]}") is an annotation of one operation, never a step."""
STEP_NAMES = re.compile(NOT_ANNOTATION + r"(decode|prefill|step|forward|fwd|token|extend)", re.IGNORECASE)
PREFILL_NAMES = re.compile(r"(prefill|prompt|context|extend)", re.IGNORECASE)
LAUNCH_API = re.compile(r"^(cudaLaunch|cuLaunch|cudaGraphLaunch|cuGraphLaunch)")
GRAPH_LAUNCH_API = re.compile(r"^(cudaGraphLaunch|cuGraphLaunch)")
RUNTIME_API = re.compile(r"^cuda")  # the CUDA runtime's calls (the driver's start with "cu")
# the host synchronization calls (the regex alternatives; structure.HOST_WAIT_API adds queries and blocking copies)
SYNC_NAMES = (
    r"cudaStreamSynchronize|cuStreamSynchronize|cudaDeviceSynchronize|cudaThreadSynchronize|cuCtxSynchronize|"
    r"cudaEventSynchronize|cuEventSynchronize"
)
SYNC_API = re.compile(rf"^({SYNC_NAMES})")
MODULE_LOAD_API = re.compile(r"^(cuModuleLoad|cuLibraryLoad|cudaLibraryLoad|cuModuleGetFunction|cuLinkComplete)")
PROFILER_START_API = re.compile(r"^(cuProfilerStart|cudaProfilerStart)")
LIBRARY_DOMAINS = frozenset({"TSL", "NCCL", "CCCL", "CUBLAS", "CUDNN", "CUTLASS", "NVSHMEM", "MPI", "UCX", "NVTX"})
"""NVTX domains of libraries (XLA's ``TSL``...): their ranges annotate the library's work, never a request or step."""
LIBRARY_TEXT = re.compile(
    r"^(\{|\[|aten::|Thunk:|Xla|XLA|cub::|thrust::|nccl|cublas|cudnn|void |at::|torch\.|c10::|autograd::)"
)
"""Range names of libraries and per-op annotations (DLProf's dictionaries, ``aten::`` ops, XLA's thunks)."""
WEIGHT_COPY_BYTES = 1 << 20  # host-to-device copies this large at the start are model loading
LOADING_GAP_NS = 100_000_000  # idle GPU gaps this long before steady launches are loading, not inference
CONTEXT_INIT_NS = 10_000_000  # a first CUDA runtime call this long created the context (loading, not inference)
FIRST_CALLS_SHARE = 0.25  # module loads in GPU idle gaps among this first share of the kernels: first-call compilation
FIRST_CALLS_AFTER = 50  # kernels after first-call compilation worth a window of their own
FIRST_CALLS_LATER = 0.25  # GPU idle in gaps holding module loads after it, at most, for its share before it
FIRST_CALLS_MIN_NS = 10_000_000  # GPU idle in first-call compilation, at least (a lookup between kernels is none)


def launch_blocks() -> pl.Expr:
    """A kernel launch's thread blocks: gridX * gridY * gridZ (0 where a dimension is not recorded)."""
    return pl.fold(pl.lit(1, pl.Int64), lambda a, b: a * b, [pl.col(g).fill_null(0).cast(pl.Int64) for g in GRID])


def user_ranges(nvtx: pl.DataFrame) -> pl.DataFrame:
    """The NVTX ranges of ``nvtx`` that the program's own code may have put around its requests and steps: not
    those of a library's domain (``LIBRARY_DOMAINS``) nor named like a library's or a per-op annotation
    (``LIBRARY_TEXT``)."""
    if "domain" in nvtx.columns:
        nvtx = nvtx.filter(
            pl.col("domain").is_null() | ~pl.col("domain").str.to_uppercase().is_in(list(LIBRARY_DOMAINS))
        )
    return nvtx.filter(~pl.col("text").fill_null("").str.contains(LIBRARY_TEXT.pattern))


def calls(
    api: pl.DataFrame,
    pattern: re.Pattern[str],
    exclude: re.Pattern[str] | None = None,
    columns: list[str] | None = None,
) -> pl.DataFrame:
    """API rows whose name matches ``pattern`` (and not ``exclude``); ``columns``: only those columns (the others
    are not copied; ``pid`` and ``tid``, when the frame has none, from its globalTid). Names are matched once per
    distinct name, not once per call: traces have millions of calls but a few dozen API names."""
    from ..trace.tables import call_column, distinct_values, rows_of_values  # (distinct names listed once)

    names: list[object] = [
        n
        for n in distinct_values(api, "name")
        if isinstance(n, str) and pattern.search(n) and not (exclude is not None and exclude.search(n))
    ]
    api = rows_of_values(api, "name", names)
    return api if columns is None else api.select(call_column(api, c) for c in columns)


def rows_where(df: pl.DataFrame, col: str | pl.Expr, value: int) -> pl.DataFrame:
    """The rows of ``df`` whose ``col`` (a column, or an expression of its columns) equals ``value``; ``df`` itself,
    not a copy, when every row does (a trace of one process: a filter would copy every column of millions of
    rows)."""
    if df.is_empty():
        return df
    if _one_process(df, col, value):
        return df
    e = pl.col(col) if isinstance(col, str) else col
    s = df.select(e).to_series()
    if s.null_count() == 0 and s.min() == value and s.max() == value:
        return df
    return df.filter(s == value)


def _one_process(df: pl.DataFrame, col: str | pl.Expr, value: int) -> bool:
    """Whether ``col`` is the pid of a call frame without a ``pid`` column (``pid_of`` of ``globalTid``) and every
    call of ``df`` is of the process ``value``, told from the least and greatest globalTid alone: a floor division
    is monotonic, so when both lie in one block of 2**24 thread ids every row does, and its pid is the first
    row's. Working the pid out of each of millions of calls took longer than the rest of the filter. False when
    ``col`` is anything else or this cannot tell (the filter decides)."""
    if isinstance(col, str) or "pid" in df.columns or "globalTid" not in df.columns:
        return False
    from ..trace.tables import pid_of

    if not col.meta.eq(pid_of("globalTid")):
        return False
    g = df["globalTid"]
    if g.null_count() or not g.dtype.is_integer():
        return False
    lo, hi = g.min(), g.max()
    if not isinstance(lo, int) or not isinstance(hi, int) or lo < 0 or lo >> 24 != hi >> 24:
        return False
    return bool(df.head(1).select(col).item() == value)  # the expression's own pid of one row of that block


@dataclass(frozen=True)
class Window:
    start: int
    end: int
    source: str  # "user", "capture-range", "nvtx-requests", "nvtx-steps", "data", "whole-trace"
    reason: str
    loading_end: int | None = None  # end of model loading when it was seen
    # the GPU's spans between consecutive measured requests (from one's last GPU work to the next one's first):
    # the client's pauses, not the engine's idle time
    pauses: tuple[tuple[int, int], ...] = ()

    @property
    def duration(self) -> int:
        return max(0, self.end - self.start)

    def rows(self, df: pl.DataFrame, col: str = "start") -> pl.DataFrame:
        """The rows of ``df`` whose ``col`` lies in the window (inclusive), in order. Not a copy where it can be
        helped (a filter copies every column of millions of rows): ``df`` itself when every row lies in the window,
        a slice of it when ``col`` is in ascending order (the kernels and API calls of a trace nearly always are:
        the window, the requests after the warm-up, is one stretch of rows)."""
        if df.is_empty():
            return df
        s = df[col]
        if s.null_count() == 0 and s.dtype.is_integer():
            lo, hi = s.min(), s.max()
            if isinstance(lo, int) and isinstance(hi, int) and self.start <= lo and hi <= self.end:
                return df
            if s.is_sorted():
                first = int(s.search_sorted(self.start, side="left"))
                last = int(s.search_sorted(self.end, side="right"))
                return df.slice(first, max(0, last - first))
        return df.filter((pl.col(col) >= self.start) & (pl.col(col) <= self.end))

    def to_dict(self) -> dict[str, object]:
        return {
            "start_ns": self.start,
            "end_ns": self.end,
            "duration_ns": self.duration,
            "source": self.source,
            "reason": self.reason,
            "loading_end_ns": self.loading_end,
        }


def data_extent(kernels: pl.DataFrame, api: pl.DataFrame, others: list[pl.DataFrame]) -> tuple[int, int]:
    starts = [scalar_int(f["start"].min()) for f in (kernels, api, *others) if f.height]
    ends = [scalar_int(e) for f in (kernels, api, *others) if f.height and (e := f["end"].max()) is not None]
    if not starts:
        return (0, 0)
    return min(starts), max(ends)


def work_end(kernels: pl.DataFrame, api: pl.DataFrame, gpu: list[pl.DataFrame]) -> int | None:
    """End of the run's work: the end of the last kernel (or copy, or memset of ``gpu``), or of a host call that
    started before it ended (the last synchronization, the copy back), whichever is later. Host calls that start
    after the GPU's last operation (module unloads, frees, destroying streams: the teardown) are not work. None
    without GPU operations."""
    ends = [scalar_int(e) for f in (kernels, *gpu) if f.height and (e := f["end"].max()) is not None]
    if not ends:
        return None
    last = max(ends)
    # the latest end of a call that started by then (one column filtered: no copy of the API frame)
    tail = api.select(pl.col("end").filter(pl.col("start") <= last).max()).item() if api.height else None
    return max(last, scalar_int(tail)) if tail is not None else last


def _loading_end(kernels: pl.DataFrame, api: pl.DataFrame, memcpy: pl.DataFrame) -> int | None:
    """End of model loading: the last weight copy / module load / long idle gap before steady kernel launches."""
    if kernels.is_empty():
        return None
    ks = kernels.sort("start")
    # steady launches start where the bulk of kernels begins: the 5th percentile kernel start
    bulk = int(ks["start"][int(ks.height * 0.05)])
    markers: list[int] = []
    if memcpy.height:
        big = memcpy.filter((pl.col("copyKind") == COPY_HTOD) & (pl.col("bytes") >= WEIGHT_COPY_BYTES))
        early = big.filter(pl.col("end") <= bulk)
        # weights are copied once, before the work; big copies that go on as often through the work are its inputs
        # (a benchmark copying its data in every iteration), not loading
        if early.height and big.height - early.height < early.height:
            markers.append(scalar_int(early["end"].max()))
    if api.height:
        loads = calls(api, MODULE_LOAD_API).filter(pl.col("end") <= bulk)
        if loads.height:
            markers.append(scalar_int(loads["end"].max()))
        # the first CUDA runtime call creates the context (tens of ms): one-time setup, as module loading is
        runtime = calls(api, RUNTIME_API, columns=["start", "end"])
        at = runtime["start"].arg_min() if runtime.height else None
        if at is not None:
            start, end = scalar_int(runtime["start"][at]), scalar_int(runtime["end"][at])
            if end - start >= CONTEXT_INIT_NS and end <= bulk:
                markers.append(end)
    head = ks.filter(pl.col("start") <= bulk).select("start", "end")
    if head.height > 1:
        gaps = head.with_columns(pl.col("end").cum_max().shift(1).alias("prev_end")).filter(
            (pl.col("start") - pl.col("prev_end")) >= LOADING_GAP_NS
        )
        if gaps.height:
            markers.append(scalar_int(gaps["start"].max()))
    return max(markers) if markers else None


def _first_calls_end(kernels: pl.DataFrame, api: pl.DataFrame, after: int) -> tuple[int, int, int] | None:
    """The end of first-call compilation after ``after`` (the end of loading): (start of the first kernel after the
    last GPU idle gap that holds a module load, the number of such gaps, their total length). The first call of each
    kernel compiles and loads it (Triton's JIT, NVRTC, lazy loading) while the GPU waits: warm-up, not steady work.
    Such gaps count among the first ``FIRST_CALLS_SHARE`` of the kernels after ``after`` only, when at least
    ``FIRST_CALLS_AFTER`` kernels follow the last one, every kernel that ran right after one of them runs again
    after it (compiled once, then reused: a test that compiles and runs each kernel once has no steady part), the
    GPU idled in them at least ``FIRST_CALLS_MIN_NS`` in all, no such gap follows within the next
    ``FIRST_CALLS_SHARE`` of the kernels (the loads end where they end, not at that share), and the GPU idles in
    such gaps after it no more than ``FIRST_CALLS_LATER`` of the time it idled in them before it.
    Module loads later in the run stay in the window (a code path warmed up too late). None when there is no such
    gap."""
    if kernels.is_empty() or api.is_empty() or "name" not in kernels.columns:
        return None
    loads = calls(api, MODULE_LOAD_API, columns=["start", "end"]).filter(pl.col("start") >= after)
    if loads.is_empty():
        return None
    ks = kernels.select("start", "end", "name").filter(pl.col("start") >= after).sort("start")
    if ks.height <= FIRST_CALLS_AFTER:
        return None
    begin = ks["start"].to_numpy()
    prev_end = np.maximum.accumulate(ks["end"].to_numpy())[:-1]
    # a load that ends between kernel i's end (all before it ended) and kernel i + 1's start: a gap around it
    ends = np.sort(loads["end"].to_numpy())
    held = np.searchsorted(ends, begin[1:], side="right") - np.searchsorted(ends, prev_end, side="right") > 0
    every = np.nonzero(held)[0]
    share = int(FIRST_CALLS_SHARE * ks.height)
    at = every[(every < share) & (every + 1 < ks.height - FIRST_CALLS_AFTER)]
    if at.size == 0:
        return None
    idle = begin[every + 1] - prev_end[every]
    later = every > at[-1]
    compiling = int(idle[~later].sum())  # the idle of the gaps counted (``at``: those up to the last one)
    if compiling < FIRST_CALLS_MIN_NS:
        return None  # a lookup in a gap of microseconds: nothing was compiled while the GPU waited
    if idle[later].sum() > FIRST_CALLS_LATER * compiling:
        return None  # loads all through the run (a trace of many runs, a service loading as it goes): no first phase
    if (every[later] <= int(at[-1]) + share).any():
        return None  # the loads go on past the first share of the kernels: where they end is not known
    name = ks["name"]
    codes = (name.to_physical() if name.dtype == pl.Categorical else name.rank("dense")).to_numpy()
    if not np.isin(codes[at + 1], codes[int(at[-1]) + 2 :]).all():
        return None
    return int(begin[int(at[-1]) + 1]), int(at.size), compiling


WARMUP_FACTOR = 3.0  # leading steps this many times slower than the typical late step are warm-up


def _after_warmup(steps: pl.DataFrame) -> tuple[int, int]:
    """(window start, number of leading warm-up steps): on the thread with the most step ranges, the leading decode
    steps that run far slower than the median of the later half (first-call compilation, lazy loading, a warm-up
    request) are not steady state. Prefill ranges do not count as slow decode steps."""
    tid = steps.group_by("globalTid").len().sort("len", descending=True)["globalTid"][0]
    own = steps.filter(
        (pl.col("globalTid") == tid) & ~pl.col("text").str.contains("(?i)" + PREFILL_NAMES.pattern)
    ).sort("start")
    first = scalar_int(steps["start"].min())
    if own.height < 8:
        return first, 0
    dur = (own["end"] - own["start"]).to_list()
    typical = sorted(dur[len(dur) // 2 :])[len(dur[len(dur) // 2 :]) // 2]
    warm = 0
    while warm < len(dur) // 2 and typical > 0 and dur[warm] > WARMUP_FACTOR * typical:
        warm += 1
    if warm == 0:
        return first, 0
    return int(own["start"][warm]), warm


def _launch_start(first: pl.DataFrame, api: pl.DataFrame) -> int | None:
    """The start of the call that launched the kernels of ``first`` (the earliest), None when none is recorded or
    when that call lasted a loading gap or more: modules were loaded inside it (lazy loading), which is loading."""
    if first.is_empty() or api.is_empty() or not {"correlationId", "pid"} <= set(first.columns):
        return None
    keys = ["correlationId", "pid"]
    found = calls(api, LAUNCH_API, columns=[*keys, "start", "end"])
    found = found.join(first.select(keys).unique(), on=keys, how="semi").filter(
        (pl.col("end") - pl.col("start")) < LOADING_GAP_NS
    )
    return scalar_int(found["start"].min()) if found.height else None


def choose_window(
    kernels: pl.DataFrame, api: pl.DataFrame, memcpy: pl.DataFrame, nvtx: pl.DataFrame, capture_range: str | None
) -> Window:
    """The steady-state inference window and why it was chosen."""
    lo, hi = data_extent(kernels, api, [memcpy])
    hi = work_end(kernels, api, [memcpy]) or hi  # the window of a run found from data ends with its work
    loading = _loading_end(kernels, api, memcpy)
    if capture_range == "cudaProfilerApi" and api.height:
        starts = calls(api, PROFILER_START_API)
        if starts.height:
            s = scalar_int(starts["start"].min())
            return Window(
                s,
                hi,
                "capture-range",
                "the cudaProfilerApi capture range (cudaProfilerStart to the end)",
                loading if loading is not None and loading < s else None,
            )
    named = user_ranges(nvtx.filter(pl.col("end").is_not_null() & pl.col("text").is_not_null()))
    if named.height:
        req = named.filter(pl.col("text").str.contains(REQUEST_NAMES.pattern.replace("^", "^(?i)", 1)))
        if req.height:
            names = sorted(set(req["text"].to_list()))
            return Window(
                scalar_int(req["start"].min()),
                scalar_int(req["end"].max()),
                "nvtx-requests",
                f"NVTX request ranges {format_names(names)} ({req.height} instances)",
                loading,
            )
        steps = named.filter(pl.col("text").str.contains("(?i)" + STEP_NAMES.pattern))
        if steps.height:
            names = sorted(set(steps["text"].to_list()))
            start, warm = _after_warmup(steps)
            reason = f"NVTX step ranges {format_names(names)} ({steps.height} instances)"
            if warm:
                reason += f"; the first {warm} left out as warm-up (much slower than the steps after them)"
            return Window(
                start,
                scalar_int(steps["end"].max()),
                "nvtx-steps",
                reason,
                loading,
            )
    compiled = _first_calls_end(kernels, api, lo if loading is None else loading)
    after = compiled[0] if compiled is not None else loading
    if after is not None:
        first = kernels.filter(pl.col("start") >= after)
        s = scalar_int(first["start"].min()) if first.height else after
        # from the launch of the first kernel after loading: the window holds its launch call, as every other's
        s = min(s, _launch_start(first.filter(pl.col("start") == s), api) or s) if first.height else s
        reason = "after model loading (weight copies, module loading, context creation or idle gaps) ends"
        if compiled is not None:
            reason = (
                f"after first-call compilation ends: {compiled[1]} GPU idle gap(s) holding module loads (JIT, lazy "
                f"loading), {compiled[2] / 1e6:.1f} ms in all, among the first kernels"
                + ("" if loading is None else " (after model loading)")
            )
        return Window(s, hi, "data", reason, loading)
    reason = "no loading phase, capture range or NVTX ranges found: from the first CUDA call to the end of the work"
    return Window(lo, hi, "data", reason, None)


# ------------------------------------------------------------------------------------------------- steps


@dataclass(frozen=True)
class Steps:
    source: str  # "nvtx:<name>", "graph-launches", "host-syncs", "repeating-kernel:<name>", "none"
    table: pl.DataFrame  # idx, kind, start, end, wall, gpu_time, kernels, launches, gpu_start, gpu_end
    notes: list[str] = field(default_factory=list)

    @property
    def count(self) -> int:
        return self.table.height

    def of_kind(self, kind: str) -> pl.DataFrame:
        return self.table.filter(pl.col("kind") == kind)


STEP_SCHEMA = {"idx": pl.Int64, "kind": pl.Utf8, "start": pl.Int64, "end": pl.Int64}


def launched_kernels(kernels: pl.DataFrame, api: pl.DataFrame) -> pl.DataFrame:
    """Kernels with the start/end/thread of the API call that launched them (l_start, l_end, tid; null if none)."""
    a = calls(api, LAUNCH_API, columns=["correlationId", "pid", "tid", "start", "end"]).rename(
        {"start": "l_start", "end": "l_end"}
    )
    on = ["correlationId", "pid"]
    looked_up = _lookup_launches(kernels, a)
    if looked_up is not None:
        return kernels.with_columns(looked_up)
    wide = [pl.col(c).cast(pl.Int64) for c in on]  # the kernels' ids may be Int32 (see ``TraceFrames``)
    a = a.with_columns(wide)
    keys = kernels.select(wide).join(a, on=on, how="left", maintain_order="left")
    if keys.height != kernels.height:  # a launch recorded twice: the kernel's row repeats, as a join makes it
        joined = kernels.with_columns(wide).join(a, on=on, how="left", maintain_order="left")
        return joined.with_columns(pl.col(c).cast(kernels.schema[c]) for c in on)
    # the kernel columns are shared with ``kernels``, not copied: only the launch's columns are new
    return kernels.with_columns(keys.drop(on))


_CORR_BITS = 32  # correlation ids are 32-bit in CUPTI; with the 24-bit pid above them a key fits an Int64


def _lookup_launches(kernels: pl.DataFrame, launches: pl.DataFrame) -> list[pl.Series] | None:
    """The launch columns (tid, l_start, l_end) of each kernel, found by a binary search of the launches' sorted
    (pid, correlationId) keys: the left join's result, 4x faster than the join on two million kernels. None when
    the keys do not fit one integer or a launch key repeats (then the join decides, repeating rows as it does)."""
    cols = ["tid", "l_start", "l_end"]

    def key(df: pl.DataFrame) -> pl.Series:
        return df.select((pl.col("pid").cast(pl.Int64) * (1 << _CORR_BITS) + pl.col("correlationId")).alias("key"))[
            "key"
        ]

    for df in (kernels, launches):
        if (
            df.height
            and not df.select(
                (pl.col("correlationId").is_between(0, (1 << _CORR_BITS) - 1) | pl.col("correlationId").is_null()).all()
                & (pl.col("pid").is_between(0, (1 << 24) - 1) | pl.col("pid").is_null()).all()
            ).item()
        ):
            return None
    lkey = key(launches)
    if lkey.null_count():
        keep = lkey.is_not_null()
        launches, lkey = launches.filter(keep), lkey.filter(keep)
    if launches.is_empty():  # nothing to find (no launch, or none with a key)
        from ..trace.tables import null_column

        return [null_column(c, kernels.height, launches.schema[c]) for c in cols]
    # launch calls in table order usually have rising keys (one process, ids given in call order): not reordered
    order = None if lkey.is_sorted() else lkey.arg_sort()
    srt = lkey if order is None else lkey.gather(order)
    if srt.len() > 1 and (srt.slice(1) == srt.slice(0, srt.len() - 1)).any():
        return None  # a launch recorded twice
    # each kernel's launch row (null: none), found a chunk of kernels at a time: the keys and positions of
    # millions of kernels are never held at once, only the launch rows (4 bytes a kernel)
    index = pl.UInt32 if launches.height < (1 << 32) else pl.UInt64
    rows = []
    for part in row_chunks(kernels.height):
        kkey = key(kernels[part])
        pos = _search(srt, kkey)
        at = pos.clip(upper_bound=srt.len() - 1)
        hit = ((srt.gather(at) == kkey) & (pos < srt.len())).fill_null(False)
        row = (at if order is None else order.gather(at)).cast(index)
        rows.append(pl.select(pl.when(pl.lit(hit)).then(pl.lit(row))).to_series())
        del kkey, pos, at, hit, row
    found = pl.concat(rows, rechunk=True) if len(rows) > 1 else rows[0] if rows else pl.Series([], dtype=index)
    del rows
    return [launches[c].gather(found).alias(c) for c in cols]


def _search(srt: pl.Series, keys: pl.Series) -> pl.Series:
    """``srt.search_sorted(keys, side="left")``. Kernels' launch keys come nearly in order, and numpy's binary search
    starts each search from the last one's place: 2x polars' on two million kernels in order, half its speed on
    keys in no order (then polars searches; a key that is null too)."""
    if keys.null_count() or srt.null_count() or keys.len() < 2:
        return srt.search_sorted(keys, side="left")
    k = keys.to_numpy()
    if np.count_nonzero(k[1:] < k[:-1]) > k.size // 8:
        return srt.search_sorted(keys, side="left")
    return pl.Series(keys.name, np.searchsorted(srt.to_numpy(), k, side="left"))


def assign_to_steps(events: pl.DataFrame, steps: pl.DataFrame, time_col: str) -> pl.DataFrame:
    """``events`` with a non-null ``time_col``, in ``time_col`` order (ties as they come), with the index (``idx``)
    of the step whose [start, end] holds that time (the latest-starting such step; null when none).

    Each step's events are a range of the time-ordered events (``step_ranges``: the step bounds are searched
    among the times, not each time among the steps), so only the time column is sorted, never the whole frame
    (unless its rows are out of time order, when they are reordered once)."""
    if events.is_empty() or steps.is_empty():
        return events.with_columns(pl.lit(None, pl.Int64).alias("idx"))
    ev = events.filter(pl.col(time_col).is_not_null()) if events[time_col].null_count() else events
    if not ev[time_col].is_sorted():
        ev = ev.sort(time_col, maintain_order=True)
    st = steps.select("idx", "start", "end").sort("start", maintain_order=True)
    lo, hi = step_ranges(ev[time_col].to_numpy(), st["start"].to_numpy(), st["end"].to_numpy())
    # the events as runs: before each step's range (none of its own), the range; then those after the last
    lengths = np.empty(2 * lo.size + 1, dtype=np.int64)
    lengths[0:-1:2] = lo - np.concatenate([[0], hi[:-1]])
    lengths[1::2] = hi - lo
    lengths[-1] = ev.height - (hi[-1] if hi.size else 0)
    values = np.zeros(lengths.size, dtype=np.int64)
    values[1::2] = st["idx"].cast(pl.Int64).to_numpy()
    held = np.zeros(lengths.size, dtype=bool)
    held[1::2] = True
    idx = pl.Series("idx", np.repeat(values, lengths), dtype=pl.Int64)
    return ev.with_columns(pl.when(pl.Series(np.repeat(held, lengths))).then(idx).otherwise(None).alias("idx"))


def step_ranges(times: np.ndarray, starts: np.ndarray, ends: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``assign_to_steps``' rule as ranges of positions: for each step (``starts``/``ends`` in the order of
    ``steps.sort("start", maintain_order=True)``), the positions ``[lo, hi)`` of the sorted ``times`` it holds (a
    time belongs to the latest-starting step that starts at or before it, if it is not past that step's end: the
    times of one step are therefore consecutive; a step that a later one starts with, or that ends before it
    starts, holds none: ``hi == lo``)."""
    lo = np.searchsorted(times, starts, side="left")
    until_next = np.append(np.searchsorted(times, starts[1:], side="left"), times.size)
    hi = np.minimum(np.searchsorted(times, ends, side="right"), until_next)
    return lo, np.maximum(hi, lo)


def _step_measures(
    lk_w: pl.DataFrame, launch_times: pl.Series, table: pl.DataFrame
) -> tuple[pl.DataFrame, pl.DataFrame]:
    """Per step of ``table`` that holds any: (idx, gpu_time, kernels, gpu_start, gpu_end) of the kernels of
    ``lk_w`` it launched (by ``t_launch``) and (idx, launches) of the launch calls it holds, as grouping
    ``assign_to_steps``' rows by step gives them: each step's kernels are a range of the kernels in launch order
    (``step_ranges``), summed by cumulative sums and reduced over ranges, not hashed into groups (two million
    kernels: a third of the time)."""
    st = table.select("idx", "start", "end").sort("start", maintain_order=True)
    if lk_w.select(pl.any_horizontal(pl.col("t_launch", "dur", "start", "end").null_count() > 0)).item():
        ks = assign_to_steps(lk_w.select("t_launch", "dur", "start", "end"), table, "t_launch")
        per_k = (
            ks.filter(pl.col("idx").is_not_null())
            .group_by("idx")
            .agg(
                pl.col("dur").sum().alias("gpu_time"),
                pl.len().alias("kernels"),
                pl.col("start").min().alias("gpu_start"),
                pl.col("end").max().alias("gpu_end"),
            )
        )
    else:
        k = lk_w.select("t_launch", "dur", "start", "end")
        if not k["t_launch"].is_sorted():
            k = k.sort("t_launch", maintain_order=True)
        t = k["t_launch"].to_numpy()
        lo, hi = step_ranges(t, st["start"].to_numpy(), st["end"].to_numpy())
        held = hi > lo
        lo, hi = lo[held], hi[held]
        dur = np.concatenate([[0], np.cumsum(k["dur"].to_numpy())])
        bounds = np.empty(2 * lo.size, dtype=np.int64)
        bounds[0::2], bounds[1::2] = lo, hi

        def over(col: str, reduce: np.ufunc) -> np.ndarray:  # a sentinel element lets a range end at the last
            values = k[col].to_numpy()
            return reduce.reduceat(np.concatenate([values, values[-1:]]), bounds)[0::2] if lo.size else values[:0]

        per_k = pl.DataFrame(
            {
                "idx": st["idx"].filter(pl.Series(held)),
                "gpu_time": dur[hi] - dur[lo],
                "kernels": pl.Series(hi - lo, dtype=pl.UInt32),
                "gpu_start": over("start", np.minimum),
                "gpu_end": over("end", np.maximum),
            },
            schema={"idx": pl.Int64, "gpu_time": pl.Int64, "kernels": pl.UInt32, "gpu_start": pl.Int64,
                    "gpu_end": pl.Int64},
        )  # fmt: skip
    times = launch_times.drop_nulls()
    if not times.is_sorted():
        times = times.sort()
    lo, hi = step_ranges(times.to_numpy(), st["start"].to_numpy(), st["end"].to_numpy())
    held = hi > lo
    per_l = pl.DataFrame(
        {"idx": st["idx"].filter(pl.Series(held)), "launches": pl.Series((hi - lo)[held], dtype=pl.UInt32)},
        schema={"idx": pl.Int64, "launches": pl.UInt32},
    )
    return per_k, per_l


def _boundaries_to_steps(bounds: list[int], end: int) -> pl.DataFrame:
    rows = [(i, "step", b, (bounds[i + 1] - 1) if i + 1 < len(bounds) else end) for i, b in enumerate(bounds)]
    return pl.DataFrame(rows, schema=STEP_SCHEMA, orient="row")


def _nvtx_steps(nvtx: pl.DataFrame, window: Window) -> tuple[pl.DataFrame, str] | None:
    cand = nvtx.filter(
        pl.col("end").is_not_null()
        & pl.col("text").is_not_null()
        & (pl.col("start") >= window.start)
        & (pl.col("end") <= window.end)
    )
    cand = cand.filter(
        pl.col("text").str.contains("(?i)" + STEP_NAMES.pattern)
        & ~pl.col("text").str.contains(REQUEST_NAMES.pattern.replace("^", "^(?i)", 1))
    )
    if cand.is_empty():
        return None
    # keep the outermost step ranges of one thread (the one with most step ranges)
    tid = cand.group_by("globalTid").len().sort("len", descending=True)["globalTid"][0]
    cand = cand.filter(pl.col("globalTid") == tid).sort("start")
    cand = cand.with_columns(pl.col("end").cum_max().shift(1).alias("_prev_end"))
    cand = cand.filter(pl.col("_prev_end").is_null() | (pl.col("start") >= pl.col("_prev_end")))
    kind = (
        pl.when(pl.col("text").str.contains("(?i)" + PREFILL_NAMES.pattern))
        .then(pl.lit("prefill"))
        .when(pl.col("text").str.contains("(?i)decode"))
        .then(pl.lit("decode"))
        .otherwise(pl.lit("step"))
    )
    table = cand.with_row_index("idx").select(
        pl.col("idx").cast(pl.Int64), kind.alias("kind"), pl.col("start"), pl.col("end")
    )
    names = format_names(sorted(set(cand["text"].to_list())), quote=False)
    return table, f"nvtx:{names}"


def find_steps(
    kernels: pl.DataFrame,
    api: pl.DataFrame,
    nvtx: pl.DataFrame,
    window: Window,
    lk: pl.DataFrame | None = None,
    given: tuple[pl.DataFrame, str] | None = None,
) -> Steps:
    """Split the window into steps and measure each (GPU time of the kernels each step launched, launches...).

    ``lk`` is ``launched_kernels(kernels, api)`` when the caller already has it. ``given`` is a step table
    (idx, kind, start, end) and its source, from the run structure; without it the steps come from NVTX step
    ranges, else graph launches, host syncs or a repeating kernel."""
    notes: list[str] = []
    api_w = window.rows(api)
    lk = launched_kernels(kernels, api) if lk is None else lk
    # only the columns the steps read (the repeating marker's and the measures'): filtering every column of the
    # launched kernels would copy millions of rows
    measured = [c for c in ("short", *GRID, "dur", "start", "end") if c in lk.columns]
    lk_w = lk.select(*measured, pl.coalesce("l_start", "start").alias("t_launch")).filter(
        (pl.col("t_launch") >= window.start) & (pl.col("t_launch") <= window.end)
    )
    found = given if given is not None else _nvtx_steps(nvtx, window)
    if found is not None:
        table, source = found
    else:
        table, source = _data_steps(lk_w, api_w, window, notes)
    if table.is_empty():
        return Steps("none", table.with_columns(*(pl.lit(None, t).alias(c) for c, t in _MEASURES.items())), notes)
    per_k, per_l = _step_measures(lk_w, calls(api_w, LAUNCH_API, columns=["start"])["start"], table)
    table = (
        table.join(per_k, on="idx", how="left")
        .join(per_l, on="idx", how="left")
        .with_columns(
            (pl.col("end") - pl.col("start")).alias("wall"),
            pl.col("gpu_time").fill_null(0),
            pl.col("kernels").fill_null(0),
            pl.col("launches").fill_null(0),
        )
        .sort("idx")
    )
    # a step is never empty or negative: drop boundaries that enclose no GPU work (and inverted ones from
    # unordered syncs of several threads), then number the rest again
    keep = table.filter((pl.col("end") > pl.col("start")) & (pl.col("kernels") > 0))
    if keep.height < table.height:
        notes.append(f"{table.height - keep.height} step boundaries without GPU work between them were dropped")
        table = keep.with_row_index("_i").with_columns(pl.col("_i").cast(pl.Int64).alias("idx")).drop("_i")
    if not source.startswith(("nvtx", "structure")) and table.height > 2:
        # without names: a first step far heavier than the rest is the prefill
        median = table["gpu_time"].median()
        med = scalar_float(median) if median is not None else 0.0
        if med and table["gpu_time"][0] > 4 * med:
            table = table.with_columns(
                pl.when(pl.col("idx") == table["idx"][0])
                .then(pl.lit("prefill"))
                .otherwise(pl.lit("decode"))
                .alias("kind")
            )
        else:
            table = table.with_columns(pl.lit("decode").alias("kind"))
    return Steps(source, table.select(*_ORDER), notes)


_MEASURES = {
    "wall": pl.Int64,
    "gpu_time": pl.Int64,
    "kernels": pl.UInt32,
    "launches": pl.UInt32,
    "gpu_start": pl.Int64,
    "gpu_end": pl.Int64,
}
_ORDER = ["idx", "kind", "start", "end", "wall", "gpu_time", "kernels", "launches", "gpu_start", "gpu_end"]


def _data_steps(lk: pl.DataFrame, api: pl.DataFrame, window: Window, notes: list[str]) -> tuple[pl.DataFrame, str]:
    graph = calls(api, GRAPH_LAUNCH_API, columns=["start"]).sort("start")
    if graph.height >= 2:
        return _boundaries_to_steps(graph["start"].to_list(), window.end), "graph-launches"
    syncs = calls(api, SYNC_API, columns=["start", "end"]).sort("start")
    if syncs.height >= 3:
        ends = syncs["end"].to_list()
        bounds = [window.start] + [e + 1 for e in ends[:-1]]
        return _boundaries_to_steps(bounds, ends[-1]), "host-syncs"
    marker = _repeating_marker(lk)
    if marker is not None:
        name, times = marker
        return _boundaries_to_steps(times, window.end), f"repeating-kernel:{name}"
    notes.append("no NVTX step ranges, graph launches, host syncs or repeating kernel: one step")
    return pl.DataFrame([(0, "step", window.start, window.end)], schema=STEP_SCHEMA, orient="row"), "window"


MARKER_COVER = 0.5
"""The least share of the window's kernels that a repeating kernel's first and last launch must hold between them to
cut steps: a kernel repeated inside one forward pass (the same convolution in three blocks of a network) spans a
tenth to a third of it; a loop's kernel spans all of it."""


def _repeating_marker(lk: pl.DataFrame) -> tuple[str, list[int]] | None:
    """The kernel that runs once per step: the heaviest kernel (by mean time) that repeats at least 3 times
    with a regular spacing, its launches spanning at least ``MARKER_COVER`` of the kernels; its launch times are the
    step boundaries."""
    if lk.height < 10:
        return None
    launches = lk["t_launch"].sort()
    groups = (
        lk.group_by("short", *GRID)
        .agg(pl.len().alias("n"), pl.col("dur").mean().alias("mean"), pl.col("t_launch").sort().alias("t"))
        .filter(pl.col("n") >= 3)
        .sort("mean", descending=True)
    )
    for row in groups.head(5).iter_rows(named=True):
        t = row["t"]
        gaps = [b - a for a, b in itertools.pairwise(t)]
        gaps_sorted = sorted(gaps)
        med = gaps_sorted[len(gaps) // 2]
        held = int(launches.search_sorted(t[-1], side="right")) - int(launches.search_sorted(t[0], side="left"))
        if med > 0 and gaps_sorted[int(len(gaps) * 0.9)] <= 3 * med and held >= MARKER_COVER * lk.height:
            return str(row["short"]), [int(x) for x in t]
    return None


# -------------------------------------------------------------------------------------- window and steps


def window_and_steps(
    kernels: pl.DataFrame,
    api: pl.DataFrame,
    memcpy: pl.DataFrame,
    nvtx: pl.DataFrame,
    capture_range: str | None,
    structure: RunStructure,
    chosen: Window | None = None,
    lk: pl.DataFrame | None = None,
    request: int | None = None,
) -> tuple[Window, Steps]:
    """The analysis window and its measured steps, from the run structure when it found one: by default the
    measured requests (warm-up, loading and compilation left out), else ``choose_window``. A window the user chose
    (``chosen``) keeps the structure's steps that lie inside it, warm-up included when the window holds it."""
    from .structure import STEP_KINDS

    if request is not None:
        return _request_window(kernels, api, nvtx, structure, request, lk)
    measured = chosen is None
    table = structure.steps_frame(measured=measured) if structure.kind != "unstructured" else None
    if table is not None and table.is_empty():
        table = None
    if chosen is None:
        if table is None or structure.window is None:
            w = choose_window(kernels, api, memcpy, nvtx, capture_range)
            return w, _plain_steps(find_steps(kernels, api, nvtx, w, lk), structure)
        reqs = structure.measured_requests
        start = min(r.start for r in reqs)
        end = max(max(r.end, r.gpu_end) for r in reqs)
        warm = len(structure.warmup_requests)
        said = any(e.fact == "warm-up" and e.source == "user" for e in structure.evidence)  # --warmup N
        rq_word, it_word = structure.words()

        def many(n: int, word: str) -> str:
            return f"{n} {word}" if n == 1 else f"{n} {word}{'es' if word.endswith('ch') else 's'}"

        counts = ", ".join(
            many(structure.count(k), it_word if k == "iteration" else f"{k} step")
            for k in STEP_KINDS
            if structure.count(k)
        )
        reason = (
            f"{many(len(reqs), 'measured ' + rq_word)} ({counts}) found from {structure.source}"
            + (f"; {many(warm, 'warm-up ' + rq_word)} left out" if warm else "")
        ) + (f" (--warmup {warm})" if said else "")
        if capture_range == "cudaProfilerApi" and api.height and calls(api, PROFILER_START_API).height:
            reason = f"inside the cudaProfilerApi capture range, {reason}"
        loading = [p.end for p in structure.phases if p.kind in ("loading", "compilation", "autotuning")]
        order = sorted(reqs, key=lambda r: r.start)
        pauses = tuple((a.gpu_end, b.gpu_start) for a, b in itertools.pairwise(order) if b.gpu_start > a.gpu_end)
        w = Window(start, end, "structure", reason, max(loading) if loading else None, pauses)
    else:
        w = chosen
        if table is not None:
            table = table.filter((pl.col("start") >= w.start) & (pl.col("end") <= w.end))
            table = None if table.is_empty() else table
        if table is None:
            return w, _plain_steps(find_steps(kernels, api, nvtx, w, lk), structure)
    assert table is not None
    given = table.select(pl.int_range(pl.len(), dtype=pl.Int64).alias("idx"), "kind", "start", "end")
    return w, find_steps(kernels, api, nvtx, w, lk, given=(given, f"structure:{structure.source}"))


def _request_window(
    kernels: pl.DataFrame,
    api: pl.DataFrame,
    nvtx: pl.DataFrame,
    structure: RunStructure,
    request: int,
    lk: pl.DataFrame | None,
) -> tuple[Window, Steps]:
    """The window of one request of the structure (``--request N``, warm-up ones included) and its steps."""
    from ..errors import UsageError

    reqs = structure.requests
    if not reqs:
        raise UsageError("--request: this run has no requests", "analyze it without --request (or with --window)")
    if not 0 <= request < len(reqs):
        raise UsageError(
            f"--request {request}: the run has {len(reqs)} request(s), numbered 0 to {len(reqs) - 1}",
            "see the run's requests with: nsys-doctor report TRACE --format json (run.request_list)",
        )
    r = reqs[request]
    table = structure.steps_frame(measured=False).filter(pl.col("request") == r.index)
    w = Window(
        r.start,
        max(r.end, r.gpu_end),
        "user",
        f"--request {request}" + (f" (a warm-up request: {r.reason})" if r.warmup else ""),
    )
    given = table.select(pl.int_range(pl.len(), dtype=pl.Int64).alias("idx"), "kind", "start", "end")
    return w, find_steps(kernels, api, nvtx, w, lk, given=(given, f"structure:{structure.source}"))


def _plain_steps(steps: Steps, structure: RunStructure) -> Steps:
    """Steps of a run without a forward-pass structure are steps, never "decode" steps (HPC loops, tests)."""
    if structure.kind != "unstructured" or steps.table.is_empty():
        return steps
    table = steps.table.with_columns(pl.lit("step").alias("kind"))
    return Steps(steps.source, table, [*steps.notes, "the run has no forward-pass structure: steps are plain steps"])


def analyze_structure(
    kernels: pl.DataFrame,
    api: pl.DataFrame,
    memcpy: pl.DataFrame,
    nvtx: pl.DataFrame,
    capture_range: str | None,
    rules: list[OpRule] | None = None,
    chosen: Window | None = None,
    lk: pl.DataFrame | None = None,
    graph_launches: pl.DataFrame | None = None,
    request: int | None = None,
    warmup: int | None = None,
) -> tuple[RunStructure, Window, Steps]:
    """The one code path every command takes to the run's structure, its window and its steps: report, diff,
    scaling, baselines, roofline and the per-rank analyses read the same answer. ``warmup``: the first that many
    requests are warm-up, the others measured (the user's word, ``RunStructure.with_warmup``)."""
    from .ops import classify
    from .structure import find_structure

    ops = None
    if kernels.height:
        names = kernels.group_by("name").agg(pl.col("short").first()) if "short" in kernels.columns else None
        if names is not None:
            ops = classify(names["name"].to_list(), rules or [], short_names=names["short"].to_list())
    structure = find_structure(kernels, api, memcpy, None, nvtx, capture_range, ops, graph_launches, lk)
    if warmup is not None:
        structure = structure.with_warmup(warmup)
    w, steps = window_and_steps(kernels, api, memcpy, nvtx, capture_range, structure, chosen, lk, request)
    return structure, w, steps
