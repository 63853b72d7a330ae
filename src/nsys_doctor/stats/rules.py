"""nsys's expert-system rules (``nsys analyze``): the seven default rules, with nsys 2025.3's exact output.

Every rule takes ``rows=`` (default 50, ``-1`` = no limit), ``start=``/``end=`` (ns; they override the CLI
window and NVTX times) and ``nvtx=`` (an NVTX range as the filter window). nsys quirks reproduced on purpose:

* the memcpy/memset rules join GPU operations to their API call on ``correlationId`` only, against the
  *unfiltered* runtime table (so a copy whose API call lies outside the window still counts);
* API names are matched with SQLite ``LIKE`` (ASCII case-insensitive, ``%``/``_`` wildcards);
* ``gpu_gaps`` pairs the i-th smallest op end with the (i+1)-th smallest op start per (pid, device);
* rows that tie on the sort key keep the order of nsys's query plan (runtime table order for the API joins);
* ``gpu_time_util`` applies the row limit twice: to the low-utilization chunk groups in time order, then again
  after sorting them by utilization (so ``rows=5`` may not show the 5 lowest); it works in float chunk sizes
  (``ceil``) and averages with SQLite's compensated ``sum``.

All of this was checked against real nsys 2025.3.1 ``nsys analyze`` on the shared traces, options included.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from ..errors import UsageError
from ..trace import Trace
from ..trace import schema as S
from ..trace.window import EventFilter, resolve_nvtx_filter
from . import core
from .aggregate import r1
from .core import DURATION, Column, ReportContext, StatsTable, is_small, report, small_rows

if TYPE_CHECKING:
    import polars as pl

COMMON_OPTIONS = ("rows", "start", "end", "nvtx")
DEFAULT_ROWS = 50
MAX_ROWS = 1_000_000_000
MAX_TS = 2**63 - 1
MAX_GAP_MS = 1_000_000_000  # gap= is in ms; its value in ns must stay a 64-bit integer
MAX_ID = 0xFFFFFF  # process and thread ids are 24-bit fields of nsys's global ids
PID_MASK = 0xFFFFFF
MEM_KIND = "ENUM_CUDA_MEM_KIND"
SMALL_HTOD_BYTES = 64_000  # nsys's "64 KB" is decimal
PINNED, MANAGED = 1, 4


# ----------------------------------------------------------------------------------------------- shared helpers
def rule_filter(ctx: ReportContext) -> EventFilter:
    """The rule's window: the CLI filter, replaced by ``nvtx=``, with ``start=``/``end=`` overriding its times."""
    flt = ctx.flt
    nvtx = ctx.options.get("nvtx")
    if nvtx:
        flt = resolve_nvtx_filter(ctx.trace, nvtx)
    start = ctx.options.get("start")
    end = ctx.options.get("end")
    if start is not None:
        flt = flt.replace(start=ctx.int_option("start", 0, 0, MAX_TS, "a time in ns, 0..2^63-1"))
    if end is not None:
        flt = flt.replace(end=ctx.int_option("end", 0, 0, MAX_TS, "a time in ns, 0..2^63-1"))
    if flt.start > flt.end:
        raise UsageError(
            f"start={flt.start} is after end={flt.end}", "the start time cannot be greater than the end time"
        )
    if start is not None or end is not None:
        flt = flt.replace(label=f"start={flt.start} end={flt.end}" + (f" {flt.label}" if flt.label else ""))
    return flt


def row_limit(ctx: ReportContext) -> int | None:
    """``rows=``: None for no limit (any negative value, as SQLite's ``LIMIT -1``)."""
    rows = ctx.int_option("rows", DEFAULT_ROWS, -1, MAX_ROWS, f"-1 for no limit, else 0..{MAX_ROWS}")
    return None if rows < 0 else rows


def limit(df: pl.DataFrame, rows: int | None) -> pl.DataFrame:
    return df if rows is None else df.head(rows)


def like_regex(pattern: str) -> re.Pattern[str]:
    """SQLite ``LIKE`` (no ESCAPE): ``%`` any run, ``_`` one character, ASCII letters case-insensitive."""
    parts = [".*" if ch == "%" else "." if ch == "_" else re.escape(ch) for ch in pattern]
    return re.compile("".join(parts), re.IGNORECASE | re.ASCII | re.DOTALL)


def string_ids(trace: Trace, test: Callable[[str], bool]) -> list[int]:
    """StringIds ids whose text passes ``test`` (the StringIds table is small next to activity tables)."""
    return [i for i, text in trace.strings.items() if test(text)]


def like_test(include: Iterable[str], exclude: Iterable[str] = ()) -> Callable[[str], bool]:
    """``value LIKE any(include) AND NOT LIKE any(exclude)``."""
    inc = [like_regex(p) for p in include]
    exc = [like_regex(p) for p in exclude]
    return lambda s: any(r.fullmatch(s) for r in inc) and not any(r.fullmatch(s) for r in exc)


def missing_tables(trace: Trace, tables: Iterable[str]) -> str:
    absent = [t for t in tables if not trace.schema.has(t)]
    return f"the trace has no {', '.join(absent)} table" if absent else ""


def empty(name: str, title: str, columns: tuple[Column, ...], skipped: str = "") -> StatsTable:
    return StatsTable(name, title, columns, [], skipped)


# ----------------------------------------------------------------------------------------------- memcpy / memset
# after the memory kinds, both rules' columns are the same (the rows of _memory_op_rows)
_MEMORY_OP_TAIL = (
    Column("Bytes", "mem_B"),
    Column("PID"),
    Column("Device ID"),
    Column("Context ID"),
    Column("Green Context ID"),
    Column("Stream ID"),
    Column("API Name"),
)
MEMCPY_COLUMNS = (
    Column("Duration", "dur_ns"),
    Column("Start", "ts_ns"),
    Column("Src Kind"),
    Column("Dst Kind"),
    *_MEMORY_OP_TAIL,
)
MEMSET_COLUMNS = (Column("Duration", "dur_ns"), Column("Start", "ts_ns"), Column("Memory Kind"), *_MEMORY_OP_TAIL)
GPU_OP_COLUMNS = ["start", "end", "globalPid", "deviceId", "contextId", "greenContextId", "streamId", "correlationId"]


def _api_rows_by_correlation(trace: Trace, ids: list[int]) -> pl.DataFrame:
    """Unfiltered runtime rows (``main.CUPTI_ACTIVITY_KIND_RUNTIME``) whose nameId is in ``ids``."""
    import polars as pl

    schema = {"correlationId": pl.Int64, "nameId": pl.Int64}
    if not ids:
        return pl.DataFrame(schema=schema)
    where = f"nameId IN ({', '.join(str(i) for i in ids)})"
    return trace.read_table(S.RUNTIME, schema, where)


def _gpu_ops_with_api(
    ctx: ReportContext, table: str, columns: list[str], api_test: Callable[[str], bool], keep: str
) -> pl.DataFrame:
    """Rows of ``table`` (filtered) passing the SQL condition ``keep``, inner-joined on correlationId to matching API
    calls."""
    import polars as pl

    from ..trace.tables import load, resolve_names

    ops = load(ctx.trace, table, [*GPU_OP_COLUMNS, *columns], rule_filter(ctx), keep)
    api = _api_rows_by_correlation(ctx.trace, string_ids(ctx.trace, api_test))
    # nsys's plan scans the runtime table outermost: join order = API rowid order, then op order
    joined = (
        api.with_row_index("_api")
        .join(ops.with_row_index("_op"), on="correlationId", how="inner")
        .sort(["_api", "_op"])
        .drop("_api", "_op")
    )
    joined = resolve_names(joined, ctx.trace, "nameId", "api")
    joined = joined.with_columns((pl.col("end") - pl.col("start")).alias("dur"))
    # ORDER BY duration DESC: ties stay in join order (SQLite's sorter is stable); NULLs last
    return limit(joined.sort("dur", descending=True, nulls_last=True, maintain_order=True), row_limit(ctx))


def _small_gpu_ops_with_api(
    ctx: ReportContext, table: str, columns: list[str], api_test: Callable[[str], bool], keep: str
) -> list[dict[str, Any]] | None:
    """``_gpu_ops_with_api`` with sqlite3 alone (no polars), its rows as dicts (``api``: the call's name, ``dur``),
    when that gives exactly the same: the operations' table is small and undamaged (``core.small_rows``) and the
    matching API calls are few, plain integers, in a runtime table with no damage counted. None: the polars path
    decides."""
    trace = ctx.trace
    cols = [*GPU_OP_COLUMNS, *columns]
    # the undamaged rows of a small table: only the key columns are never NULL
    ops = small_rows(ctx.replace(flt=rule_filter(ctx)), table, cols, nullable=tuple(cols), names=False, where=keep)
    if ops is None:
        return None
    ids = string_ids(trace, api_test)
    calls: list[tuple] = []
    if ids:
        if any(d.table == S.RUNTIME and d.damaged for d in trace.damaged.tables):
            return None  # the polars path leaves the damaged rows out
        trace.require_columns(S.RUNTIME)
        cap = 2 * core.SMALL_ROWS + 1  # one row more than is_small allows: enough to decline
        where = f"nameId IN ({', '.join(str(int(i)) for i in sorted(ids))})"
        calls = trace.rows_in_parts(
            S.RUNTIME,
            f'SELECT "correlationId", "nameId" FROM {S.RUNTIME} WHERE {{range}} AND {where} ORDER BY rowid LIMIT {cap}',
        )
        if not is_small(len(calls), 2) or any(type(v) is not int for row in calls for v in row):
            return None
    kept: dict[int, list[dict[str, Any]]] = {}
    for row in ops:
        op = dict(zip(cols, row, strict=True))
        if op["correlationId"] is not None:
            kept.setdefault(op["correlationId"], []).append(op)
    names = trace.strings
    # API order, then operation order (nsys's plan); then by duration, longest first, ties in that order
    joined = [
        {**op, "api": names.get(name_id, ""), "dur": op["end"] - op["start"]}
        for corr, name_id in calls
        for op in kept.get(corr, ())
    ]
    joined.sort(key=lambda r: -r["dur"])
    rows = row_limit(ctx)
    return joined if rows is None else joined[:rows]


def _small_memory_op_rows(ctx: ReportContext, ops: list[dict[str, Any]], *kinds: str) -> list[tuple[object, ...]]:
    """``_memory_op_rows`` of ``_small_gpu_ops_with_api``'s rows."""
    labels = ctx.trace.schema.enum_labels(MEM_KIND)

    def pid(g: int | None) -> int | None:
        return None if g is None else (g >> 24) & PID_MASK

    return [
        (
            op["dur"],
            op["start"],
            *(labels.get(op[k]) if op[k] is not None else None for k in kinds),
            op["bytes"],
            pid(op["globalPid"]),
            op["deviceId"],
            op["contextId"],
            op["greenContextId"] if op["greenContextId"] != 0 else None,
            op["streamId"],
            op["api"],
        )
        for op in ops
    ]


def _enum_label(col: str, labels: dict[int, str]) -> pl.Expr:
    import polars as pl

    return pl.col(col).replace_strict(labels, default=None, return_dtype=pl.Utf8)


def _needs(ctx: ReportContext, table: str, what: str) -> str:
    """nsys's table checks for the CUDA memory rules ('' when the rule can run)."""
    trace = ctx.trace
    if not trace.schema.has(S.RUNTIME) or not trace.schema.has(table):
        return missing_tables(trace, (S.RUNTIME, table)) + f" (does the application use CUDA {what} APIs?)"
    if not trace.schema.has_column(table, "greenContextId"):
        return f"{table} has no greenContextId column: re-export the report with a recent nsys"
    return ""


def _memory_op_rows(ctx: ReportContext, df: pl.DataFrame, *kinds: str) -> list[tuple[object, ...]]:
    """The rows of a CUDA memory rule (the columns of MEMCPY_COLUMNS or MEMSET_COLUMNS): duration, start, the
    memory ``kinds`` as labels, bytes, where the operation ran, and the API call that launched it."""
    import polars as pl

    from ..trace.tables import pid_of

    labels = ctx.trace.schema.enum_labels(MEM_KIND)
    return df.select(
        "dur",
        "start",
        *(_enum_label(k, labels) for k in kinds),
        "bytes",
        pid_of("globalPid").alias("globalPid"),
        "deviceId",
        "contextId",
        pl.when(pl.col("greenContextId") != 0).then(pl.col("greenContextId")),
        "streamId",
        "api",
    ).rows()


def _memory_rule(
    ctx: ReportContext, name: str, title: str, api_test: Callable[[str], bool], keep: str, table: str = S.MEMCPY
) -> StatsTable:
    """A CUDA memory rule: the operations of ``table`` (memcpy or memset) passing ``keep`` whose launching API call
    passes ``api_test``, with sqlite3 alone when the tables are small, else with polars."""
    copies = table == S.MEMCPY
    why = _needs(ctx, table, "memcpy" if copies else "memset")
    out = MEMCPY_COLUMNS if copies else MEMSET_COLUMNS
    if why:
        return empty(name, title, out, why)
    cols = ["bytes", "copyKind", "srcKind", "dstKind", "srcDeviceId", "dstDeviceId"] if copies else ["bytes", "memKind"]
    kinds = ("srcKind", "dstKind") if copies else ("memKind",)
    small = _small_gpu_ops_with_api(ctx, table, cols, api_test, keep)
    if small is not None:
        return StatsTable(name, title, out, _small_memory_op_rows(ctx, small, *kinds))
    df = _gpu_ops_with_api(ctx, table, cols, api_test, keep)
    return StatsTable(name, title, out, _memory_op_rows(ctx, df, *kinds))


# Each rule's test of an operation row, in SQL (as nsys states it), read by both engines: a row whose test is
# NULL (a NULL kind) is left out, except where nsys's test is a NOT over a comparison that may be NULL.
PAGEABLE_COPY = f'"srcKind" = {S.MEM_PAGEABLE} OR "dstKind" = {S.MEM_PAGEABLE}'
SYNC_COPY = (
    f'NOT coalesce("copyKind" = {S.COPY_HTOD} AND "bytes" <= {SMALL_HTOD_BYTES}, 0)'
    ' AND NOT coalesce("srcDeviceId" = "dstDeviceId", 0)'
)
SYNC_MEMSET = f'"memKind" IN ({PINNED}, {MANAGED})'


@report("cuda_memcpy_async", "CUDA Async Memcpy with Pageable Memory", options=COMMON_OPTIONS, kind="rule")
def cuda_memcpy_async(ctx: ReportContext) -> StatsTable:
    """Async memcpy calls (cudaMemcpy*Async*) with pageable host memory: they run synchronously."""
    return _memory_rule(
        ctx,
        "cuda_memcpy_async",
        "CUDA Async Memcpy with Pageable Memory",
        like_test(["cudaMemcpy%Async%"]),
        PAGEABLE_COPY,
    )


@report("cuda_memcpy_sync", "CUDA Synchronous Memcpy", options=COMMON_OPTIONS, kind="rule")
def cuda_memcpy_sync(ctx: ReportContext) -> StatsTable:
    """Synchronous memcpy calls (except small host-to-device copies and copies within one device)."""
    return _memory_rule(
        ctx, "cuda_memcpy_sync", "CUDA Synchronous Memcpy", like_test(["cudaMemcpy%"], ["%Async%"]), SYNC_COPY
    )


@report("cuda_memset_sync", "CUDA Synchronous Memset", options=COMMON_OPTIONS, kind="rule")
def cuda_memset_sync(ctx: ReportContext) -> StatsTable:
    """Synchronous memset calls (cudaMemset*, not *async*) on pinned or managed memory."""
    return _memory_rule(
        ctx,
        "cuda_memset_sync",
        "CUDA Synchronous Memset",
        like_test(["cudaMemset%"], ["%async%"]),
        SYNC_MEMSET,
        S.MEMSET,
    )


# ----------------------------------------------------------------------------------------------- cuda_api_sync
API_SYNC_COLUMNS = (
    Column("Duration", "dur_ns"),
    Column("Start", "ts_ns"),
    Column("PID"),
    Column("TID"),
    Column("API Name"),
)


@report("cuda_api_sync", "CUDA Synchronization APIs", options=(*COMMON_OPTIONS, "process", "thread"), kind="rule")
def cuda_api_sync(ctx: ReportContext) -> StatsTable:
    """Host-blocking synchronization calls: cudaDeviceSynchronize and cudaStreamSynchronize."""
    name, title = "cuda_api_sync", "CUDA Synchronization APIs"
    allowed = f"a process or thread id, 0..{MAX_ID} (-1: any)"
    process = ctx.int_option("process", -1, -1, MAX_ID, allowed)
    thread = ctx.int_option("thread", -1, -1, MAX_ID, allowed)
    if (process >= 0 or thread >= 0) and ctx.options.get("nvtx"):
        raise UsageError("process=/thread= cannot be combined with nvtx=", "use start=/end= with process=/thread=")
    if not ctx.trace.schema.has(S.RUNTIME):
        return empty(name, title, API_SYNC_COLUMNS, missing_tables(ctx.trace, (S.RUNTIME,)))
    ids = string_ids(ctx.trace, like_test(["cudaDeviceSynchronize%", "cudaStreamSynchronize%"]))
    # the name test runs in SQLite: only the synchronization calls are read, not every runtime row
    where = f"nameId IN ({','.join(str(int(i)) for i in sorted(ids))})" if ids else "0"
    flt = rule_filter(ctx)
    small = small_rows(ctx.replace(flt=flt), S.RUNTIME, [DURATION, "start", "globalTid", "nameId"], where=where)
    if small is not None:  # a small runtime table: the same rows with sqlite3 alone
        calls = []
        for dur, start, gtid, nid in small:
            pid, tid = (gtid >> 24) & PID_MASK, gtid & PID_MASK
            if (process < 0 or pid == process) and (thread < 0 or tid == thread):
                calls.append((dur, start, pid, tid, nid))
        calls.sort(key=lambda r: -r[0])  # stable, as polars' sort with maintain_order
        rows = row_limit(ctx)
        strings = ctx.trace.strings
        return StatsTable(name, title, API_SYNC_COLUMNS, [(*r[:4], strings.get(r[4], "")) for r in calls[:rows]])
    import polars as pl

    from ..trace.tables import load, pid_of, resolve_names

    df = load(ctx.trace, S.RUNTIME, ["start", "end", "globalTid", "nameId"], flt, where)
    df = df.with_columns(
        (pl.col("end") - pl.col("start")).alias("dur"),
        pid_of("globalTid").alias("pid"),
        (pl.col("globalTid") & PID_MASK).alias("tid"),
    )
    if process >= 0:
        df = df.filter(pl.col("pid") == process)
    if thread >= 0:
        df = df.filter(pl.col("tid") == thread)
    df = limit(df.sort("dur", descending=True, nulls_last=True, maintain_order=True), row_limit(ctx))
    df = resolve_names(df, ctx.trace, "nameId", "api")
    return StatsTable(name, title, API_SYNC_COLUMNS, df.select("dur", "start", "pid", "tid", "api").rows())


# ----------------------------------------------------------------------------------------------- GPU operations
@dataclass(frozen=True)
class GpuSource:
    """One graphics/compute API whose GPU work nsys's gpu_gaps/gpu_time_util examine (each on its own)."""

    api: str
    tables: tuple[str, ...]
    global_id: str
    device: str
    context: str
    overhead: tuple[str, ...]  # PROFILER_OVERHEAD names counted as GPU busy time


GPU_SOURCES = (
    GpuSource(
        "cuda",
        (S.KERNEL, S.MEMCPY, S.MEMSET),
        "globalPid",
        "deviceId",
        "contextId",
        ("CUDA profiling data flush overhead", "CUDA profiling stop overhead", "CUDA profiling overhead"),
    ),
    GpuSource("vulkan", ("VULKAN_WORKLOAD",), "globalTid", "gpu", "contextId", ("Vulkan profiling overhead",)),
    GpuSource("opengl", ("OPENGL_WORKLOAD",), "globalTid", "gpu", "contextId", ("OpenGL profiling overhead",)),
    GpuSource("dx12", ("DX12_WORKLOAD",), "globalTid", "gpu", "shortContextId", ("DX12 profiling overhead",)),
)
OPS_COLUMNS = ["start", "end", "pid", "globalId", "deviceId", "contextId"]  # every source's GPU operations (Int64)
GROUP = ["pid", "deviceId"]


def _read_ops(trace: Trace, table: str, src: GpuSource, flt: EventFilter) -> pl.DataFrame:
    """start, end, pid, globalId, deviceId, contextId of one table's GPU operations with ``start > 0``."""
    import polars as pl

    from ..trace.tables import pid_of

    present = trace.schema.columns(table)
    wanted = {
        "start": "start",
        "end": "end",
        src.global_id: "globalId",
        src.device: "deviceId",
        src.context: "contextId",
    }
    cols = {(f'"{c}" AS {alias}' if c in present else f"NULL AS {alias}"): pl.Int64 for c, alias in wanted.items()}
    where = " AND ".join(p for p in (flt.sql_where(present), '"start" > 0') if p)
    df = trace.read_table(table, cols, where)
    return df.with_columns(pid_of("globalId").alias("pid")).select(OPS_COLUMNS)


def _bare_rows(ops: pl.DataFrame) -> pl.DataFrame:
    """Per (deviceId, pid): min(start), max(end) and the bare columns SQLite takes for them.

    With ``min(start), max(end)`` in one query SQLite loads bare columns on each row where the *last* min/max
    aggregate (max(end)) changes, i.e. from the first row, in scan order, that reaches the maximum end.
    """
    import polars as pl

    keys = ["deviceId", "pid"]
    bounds = ops.group_by(keys, maintain_order=True).agg(pl.col("start").min(), pl.col("end").max())
    at_max = ops.filter(pl.col("end") == pl.col("end").max().over(keys))
    bare = at_max.group_by(keys, maintain_order=True).agg(pl.col("globalId").first(), pl.col("contextId").first())
    return bounds.join(bare, on=keys, how="left").sort(keys, maintain_order=True)


def gpu_ops(ctx: ReportContext, src: GpuSource, flt: EventFilter) -> pl.DataFrame | None:
    """GPU operations of one API in nsys's union order (overheads first), or None when the trace has none."""
    import polars as pl

    from ..trace.tables import load, pid_of

    trace = ctx.trace
    tables = [t for t in src.tables if trace.schema.has(t)]
    if not tables:
        return None
    frames = [_read_ops(trace, t, src, flt) for t in tables]
    ops = pl.concat(frames, how="vertical") if len(frames) > 1 else frames[0]
    if not trace.schema.has(S.PROFILER_OVERHEAD):
        return ops
    names = set(src.overhead)
    ids = string_ids(trace, lambda s: s in names)
    if not ids or ops.is_empty():
        return ops
    over = load(trace, S.PROFILER_OVERHEAD, ["start", "end", "globalTid", "nameId"], flt)
    over = over.filter(pl.col("nameId").is_in(ids)).select("start", "end", pid_of("globalTid").alias("pid"))
    if over.is_empty():
        return ops
    ranges = _bare_rows(ops).rename({"start": "r_start", "end": "r_end"})
    # a profiling overhead on one thread stalls every device of its process: one row per (overhead, device)
    extra = (
        over.with_row_index("_o")
        .join(ranges, on="pid", how="inner")
        .filter((pl.col("start") > pl.col("r_start")) & (pl.col("end") < pl.col("r_end")))
        .sort(["_o", "deviceId"], maintain_order=True)
        .select(OPS_COLUMNS)
    )
    return pl.concat([extra, ops], how="vertical")


def gpu_sources(ctx: ReportContext) -> list[tuple[str, pl.DataFrame]]:
    """(api, ops) for each API with GPU work in the trace; nsys analyzes each separately, then unions the rows."""
    flt = rule_filter(ctx)
    out = []
    for src in GPU_SOURCES:
        ops = gpu_ops(ctx, src, flt)
        if ops is not None:
            out.append((src.api, ops))
    return out


NO_GPU_OPS = "the trace has no GPU operations (no kernel, memcpy, memset or graphics workload tables)"


# ----------------------------------------------------------------------------------------------- gpu_gaps
GAP_COLUMNS = (
    Column("Row#"),
    Column("Duration", "dur_ns"),
    Column("Start", "ts_ns"),
    Column("PID"),
    Column("Device ID"),
    Column("Context ID"),
)


def find_gaps(ops: pl.DataFrame, threshold_ns: int) -> pl.DataFrame:
    """Idle gaps per (pid, device): the i-th smallest end paired with the (i+1)-th smallest start.

    Columns duration, gapStart, pid, deviceId, contextId (of the op whose end opens the gap), in time order.
    """
    import polars as pl

    starts = ops.select(*GROUP, "start").sort([*GROUP, "start"], maintain_order=True)
    ends = ops.select(*GROUP, "end", "contextId").sort([*GROUP, "end"], maintain_order=True)
    paired = ends.with_columns(
        starts["start"].shift(-1).alias("gapEnd"),
        starts["pid"].shift(-1).alias("_pid"),
        starts["deviceId"].shift(-1).alias("_dev"),
    )
    gaps = paired.filter(
        (pl.col("_pid") == pl.col("pid"))
        & (pl.col("_dev") == pl.col("deviceId"))
        & ((pl.col("gapEnd") - pl.col("end")) > threshold_ns)
        & (pl.col("end") < pl.col("gapEnd"))
    )
    return gaps.select(
        (pl.col("gapEnd") - pl.col("end")).alias("duration"),
        pl.col("end").alias("gapStart"),
        "pid",
        "deviceId",
        "contextId",
    )


@report("gpu_gaps", "GPU Gaps", options=(*COMMON_OPTIONS, "gap"), kind="rule")
def gpu_gaps(ctx: ReportContext) -> StatsTable:
    """Time ranges where a GPU is idle for longer than gap= ms (default 500), per process and device."""
    import polars as pl

    name, title = "gpu_gaps", "GPU Gaps"
    gap = ctx.int_option("gap", 500, 0, MAX_GAP_MS, f"milliseconds, 0..{MAX_GAP_MS}")
    rows = row_limit(ctx)
    sources = gpu_sources(ctx)
    if not sources:
        return empty(name, title, GAP_COLUMNS, NO_GPU_OPS)
    parts = [find_gaps(ops, gap * 1_000_000) for _, ops in sources]
    gaps = pl.concat(parts, how="vertical") if len(parts) > 1 else parts[0]
    gaps = limit(gaps.sort(["duration", "gapStart"], descending=[True, False], maintain_order=True), rows)
    gaps = gaps.with_row_index("row", offset=1)
    out = gaps.select("row", "duration", "gapStart", "pid", "deviceId", "contextId").rows()
    return StatsTable(name, title, GAP_COLUMNS, out)


# ----------------------------------------------------------------------------------------------- gpu_time_util
UTIL_COLUMNS = (
    Column("Row#"),
    Column("In-Use", "ratio_%"),
    Column("Duration", "dur_ns"),
    Column("Start", "ts_ns"),
    Column("PID"),
    Column("Device ID"),
    Column("Context ID"),
)


def sqlite_sum(values: Iterable[float]) -> float:
    """SQLite 3.46 ``sum()`` of REAL values: Kahan-Babuska-Neumaier compensated summation, in input order."""
    total, err = 0.0, 0.0
    for r in values:
        t = total + r
        if abs(total) > abs(r):
            err += (total - t) + r
        else:
            err += (r - t) + total
        total = t
    return total + err if not math.isinf(err) else total


def low_util_chunks(ops: pl.DataFrame, chunks: int, threshold: int) -> pl.DataFrame:
    """Chunks of each (pid, device)'s busy range with utilization below ``threshold`` %.

    Columns pid, deviceId, contextId, rangeId, cstart, cend, pct, ordered by (pid, deviceId, rangeId). Chunk
    size is ``ceil(float(end - start) / chunks)``; every quantity stays an exact integer below 2**53, as the
    REALs of nsys's SQL are.
    """
    import polars as pl

    ranges = (
        _bare_rows(ops)
        .with_columns(((pl.col("end") - pl.col("start")).cast(pl.Float64) / chunks).ceil().cast(pl.Int64).alias("cs"))
        .rename({"start": "S", "end": "E"})
    )
    chunk = (
        ranges.filter(pl.col("cs") > 0)
        .with_columns(pl.int_ranges(0, chunks).alias("rangeId"))
        .explode("rangeId")
        .with_columns((pl.col("S") + pl.col("rangeId") * pl.col("cs")).alias("cstart"))
        .with_columns(pl.min_horizontal(pl.col("cstart") + pl.col("cs"), pl.col("E")).alias("cend"))
        .filter(pl.col("cstart") < pl.col("cend"))
        .select("pid", "deviceId", "contextId", "rangeId", "cstart", "cend")
    )
    # each op against only the chunks it can overlap: rangeId in [floor((start-S)/cs), ceil((end-S)/cs) - 1]
    first = ((pl.col("start") - pl.col("S")) // pl.col("cs")).clip(lower_bound=0)
    last = (-((pl.col("S") - pl.col("end")) // pl.col("cs")) - 1).clip(upper_bound=chunks - 1)
    spans = (
        ops.select("start", "end", "pid", "deviceId")
        .join(ranges.filter(pl.col("cs") > 0).select("pid", "deviceId", "S", "cs"), on=GROUP, how="inner")
        .with_columns(pl.int_ranges(first, pl.max_horizontal(first, last + 1)).alias("rangeId"))
        .explode("rangeId")
        .drop_nulls("rangeId")
        .join(chunk.select("pid", "deviceId", "rangeId", "cstart", "cend"), on=[*GROUP, "rangeId"], how="inner")
        .filter((pl.col("start") < pl.col("cend")) & (pl.col("end") > pl.col("cstart")))
        .group_by([*GROUP, "rangeId"])
        .agg((pl.min_horizontal("end", "cend") - pl.max_horizontal("start", "cstart")).sum().alias("busy"))
    )
    util = chunk.join(spans, on=[*GROUP, "rangeId"], how="left").with_columns(
        (
            pl.col("busy").fill_null(0).cast(pl.Float64) / (pl.col("cend") - pl.col("cstart")).cast(pl.Float64) * 100.0
        ).alias("pct")
    )
    return util.filter(pl.col("pct") < threshold).sort([*GROUP, "rangeId"]).drop("busy")


def coalesce_chunks(low: pl.DataFrame) -> pl.DataFrame:
    """Runs of consecutive low chunks -> start, duration, average (length-weighted, rounded to 0.1).

    Rows ordered by (groupId, deviceId, pid) as nsys's GROUP BY returns them.
    """
    import polars as pl

    low = low.with_columns(
        (pl.col("rangeId") - pl.int_range(1, pl.len() + 1).over(GROUP)).alias("groupId"),
        (pl.col("cend") - pl.col("cstart")).alias("size"),
    )
    keys = ["groupId", "deviceId", "pid"]
    groups = low.group_by(keys, maintain_order=True).agg(
        pl.col("cstart").min().alias("start"),
        (pl.col("cend").max() - pl.col("cstart").min()).alias("duration"),
        pl.col("contextId").first(),
        pl.col("size"),
        pl.col("pct"),
    )
    averages = []
    for sizes, pcts in zip(groups["size"].to_list(), groups["pct"].to_list(), strict=True):
        weighted = sqlite_sum(float(s) * p for s, p in zip(sizes, pcts, strict=True))
        averages.append(r1(weighted / sqlite_sum(float(s) for s in sizes)))
    groups = groups.with_columns(pl.Series("average", averages, dtype=pl.Float64))
    return groups.sort(keys, maintain_order=True).select("average", "duration", "start", "pid", "deviceId", "contextId")


@report("gpu_time_util", "GPU Time Utilization", options=(*COMMON_OPTIONS, "threshold", "chunks"), kind="rule")
def gpu_time_util(ctx: ReportContext) -> StatsTable:
    """Time ranges where GPU time utilization is below threshold= % (default 50), in chunks= pieces (default 30)."""
    import polars as pl

    name, title = "gpu_time_util", "GPU Time Utilization"
    threshold = ctx.int_option("threshold", 50, 0, 100, "a percentage, 0..100")
    chunks = ctx.int_option("chunks", 30, 0, 1000)  # nsys lets chunks=0 through (and then finds nothing)
    rows = row_limit(ctx)
    sources = gpu_sources(ctx)
    if not sources:
        return empty(name, title, UTIL_COLUMNS, NO_GPU_OPS)
    if chunks == 0:
        return empty(name, title, UTIL_COLUMNS)
    parts = [limit(coalesce_chunks(low_util_chunks(ops, chunks, threshold)), rows) for _, ops in sources]
    groups = pl.concat(parts, how="vertical") if len(parts) > 1 else parts[0]
    groups = limit(groups.sort(["average", "duration"], maintain_order=True), rows).with_row_index("row", offset=1)
    out = groups.select("row", "average", "duration", "start", "pid", "deviceId", "contextId").rows()
    return StatsTable(name, title, UTIL_COLUMNS, out)


# ----------------------------------------------------------------------------------------------- dx12_mem_ops
DX12_COLUMNS = (
    Column("Duration", "dur_ns"),
    Column("Start", "ts_ns"),
    Column("TID"),
    Column("Device ID"),
    Column("Warning Type"),
)
DX12_API = "DX12_API"
DX12_MEMORY_OPERATION = "DX12_MEMORY_OPERATION"
HEAP_NOT_ZEROED = 0x1000


def _dx12_warning() -> pl.Expr:
    import polars as pl

    api = pl.col("api")
    not_zeroed = (pl.col("heapFlags") & HEAP_NOT_ZEROED) == 0
    read = api == "ID3D12Resource::ReadFromSubresource"
    write = api == "ID3D12Resource::WriteToSubresource"
    create_heap = api.str.contains(r"(?i)^ID3D12Device::CreateHeap")
    create_committed = api.str.contains(r"(?i)^ID3D12Device::CreateCommittedResource")
    return (
        pl.when(create_heap & not_zeroed)
        .then(pl.lit("D3D12_HEAP_CREATED_WITH_ZEROING"))
        .when(create_committed & not_zeroed)
        .then(pl.lit("D3D12_COMMITTED_RESOURCE_CREATED_WITH_ZEROING"))
        .when(read & (pl.col("heapType") == 1))
        .then(pl.lit("D3D12_READ_FROM_UPLOAD_HEAP_SUBRESOURCE"))
        .when(read & (pl.col("cpuPageProperty") == 2))
        .then(pl.lit("D3D12_READ_FROM_SUBRESOURCE_TO_WRITE_COMBINE_PAGE"))
        .when(write & (pl.col("heapType") == 2))
        .then(pl.lit("D3D12_WRITE_TO_READBACK_HEAP_SUBRESOURCE"))
        .when(write & (pl.col("cpuPageProperty") == 3))
        .then(pl.lit("D3D12_WRITE_TO_SUBRESOURCE_FROM_WRITE_BACK_PAGE"))
        .otherwise(None)
    )


@report("dx12_mem_ops", "DX12 Memory Operations", options=COMMON_OPTIONS, kind="rule")
def dx12_mem_ops(ctx: ReportContext) -> StatsTable:
    """DX12 memory operations that can block the host (Windows only): zeroed heaps, reads from upload heaps..."""
    import polars as pl

    from ..trace.tables import resolve_names

    name, title = "dx12_mem_ops", "DX12 Memory Operations"
    trace = ctx.trace
    if not (trace.schema.has(DX12_API) and trace.schema.has(DX12_MEMORY_OPERATION)):
        return empty(name, title, DX12_COLUMNS, "DX12 rule: the trace has no DX12 API data (Windows/DX12 only)")
    flt = rule_filter(ctx)
    rows = row_limit(ctx)

    def read(table: str, cols: tuple[str, ...]) -> pl.DataFrame:
        present = trace.schema.columns(table)
        spec = {(f'"{c}"' if c in present else f"NULL AS {c}"): pl.Int64 for c in cols}
        return trace.read_table(table, spec, flt.sql_where(present))

    memop = read(DX12_MEMORY_OPERATION, ("traceEventId", "gpu", "heapFlags", "heapType", "cpuPageProperty"))
    api = read(DX12_API, ("id", "start", "end", "globalTid", "nameId"))
    df = memop.join(api, left_on="traceEventId", right_on="id", how="inner", maintain_order="left")
    df = resolve_names(df, trace, "nameId", "api").with_columns(_dx12_warning().alias("warning"))
    df = df.filter(pl.col("warning").is_not_null()).with_columns((pl.col("end") - pl.col("start")).alias("dur"))
    df = limit(df.sort("dur", descending=True, nulls_last=True, maintain_order=True), rows)
    out = df.select("dur", "start", pl.col("globalTid") & PID_MASK, "gpu", "warning").rows()
    return StatsTable(name, title, DX12_COLUMNS, out)
