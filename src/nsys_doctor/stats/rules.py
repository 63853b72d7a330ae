"""nsys's expert-system rules (``nsys analyze``): the seven default rules, with nsys 2025.3's exact output (the two
over every GPU operation, ``gpu_gaps`` and ``gpu_time_util``, are in ``gpu_rules``).

Every rule takes ``rows=`` (default 50, ``-1`` = no limit), ``start=``/``end=`` (ns; they override the CLI
window and NVTX times) and ``nvtx=`` (an NVTX range as the filter window). nsys quirks reproduced on purpose:

* the memcpy/memset rules join GPU operations to their API call on ``correlationId`` only, against the
  *unfiltered* runtime table (so a copy whose API call lies outside the window still counts);
* API names are matched with SQLite ``LIKE`` (ASCII case-insensitive, ``%``/``_`` wildcards);
* rows that tie on the sort key keep the order of nsys's query plan (runtime table order for the API joins);

All of this was checked against real nsys 2025.3.1 ``nsys analyze`` on the shared traces, options included.
"""

from __future__ import annotations

from collections.abc import Callable

from ..errors import UsageError
from ..trace import Trace
from ..trace import schema as S
from ..trace.schema import global_pid, global_tid
from . import core
from .core import DURATION, Column, ReportContext, StatsTable, is_small, report, small_rows
from .rulebase import (
    COMMON_OPTIONS,
    MAX_ID,
    PID_MASK,
    empty,
    like_test,
    limit,
    missing_tables,
    row_limit,
    rule_filter,
    string_ids,
)

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

    import polars as pl

MEM_KIND = "ENUM_CUDA_MEM_KIND"
SMALL_HTOD_BYTES = 64_000  # nsys's "64 KB" is decimal
PINNED, MANAGED = 1, 4


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
    when that gives exactly the same: the operations kept are few and undamaged (``core.small_rows``) and the
    matching API calls are few, plain integers, in a runtime table with no damage counted. None: the polars path
    decides."""
    trace = ctx.trace
    ids = string_ids(trace, api_test)
    # the undamaged rows of a small table: only the key columns are never NULL; with no API call to match, the
    # result is empty: one column is read, and the columns polars would read are tested for damage
    read = [*GPU_OP_COLUMNS, *columns]
    cols = read if ids else ["start"]
    ctx = ctx.replace(flt=rule_filter(ctx))
    ops = small_rows(ctx, table, cols, nullable=tuple(cols), names=False, where=keep, checks=read)
    if ops is None:
        return None
    if not ids:
        return []
    if trace.damage_found(S.RUNTIME):
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
        return None if g is None else global_pid(g)

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
            pid, tid = global_pid(gtid), global_tid(gtid)
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
    name, title = "dx12_mem_ops", "DX12 Memory Operations"
    trace = ctx.trace
    if not (trace.schema.has(DX12_API) and trace.schema.has(DX12_MEMORY_OPERATION)):
        return empty(name, title, DX12_COLUMNS, "DX12 rule: the trace has no DX12 API data (Windows/DX12 only)")
    import polars as pl  # only once there is DX12 data: the usual answer, that there is none, needs no polars

    from ..trace.tables import resolve_names

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
