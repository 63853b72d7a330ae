"""nsys's two rules over every GPU operation (``nsys analyze``): ``gpu_gaps`` and ``gpu_time_util``, with nsys
2025.3's exact output. They take the options every rule takes (``rulebase``: ``rows=``, ``start=``, ``end=``,
``nvtx=``).
nsys quirks reproduced on purpose:

* each graphics/compute API's operations are examined on their own, then the rows are put together; a profiling
  overhead on one thread counts as busy time on every device of its process;
* ``gpu_gaps`` pairs the i-th smallest op end with the (i+1)-th smallest op start per (pid, device);
* ``gpu_time_util`` applies the row limit twice: to the low-utilization chunk groups in time order, then again
  after sorting them by utilization (so ``rows=5`` may not show the 5 lowest); it works in float chunk sizes
  (``ceil``) and averages with SQLite's compensated ``sum``.

Two engines, as for the summaries (``aggregate``): polars, and on small clean tables the stdlib alone
(``_small_sources``; a small trace's rule then loads no polars), with the very same rows.
"""

from __future__ import annotations

import math
from collections.abc import Iterable

from ..trace import Trace
from ..trace import schema as S
from ..trace.schema import global_pid
from ..trace.window import EventFilter
from ..values import Value
from .aggregate import r1
from .core import Column, ReportContext, StatsTable, report, small_rows
from .rulebase import COMMON_OPTIONS, MAX_GAP_MS, empty, limit, row_limit, rule_filter, string_ids

TYPE_CHECKING = False
if TYPE_CHECKING:
    import polars as pl


# ----------------------------------------------------------------------------------------------- GPU operations
class GpuSource(Value):
    """One graphics/compute API whose GPU work nsys's gpu_gaps/gpu_time_util examine (each on its own)."""

    _fields = ("api", "tables", "global_id", "device", "context", "overhead")

    def __init__(
        self, api: str, tables: tuple[str, ...], global_id: str, device: str, context: str, overhead: tuple[str, ...]
    ) -> None:
        self.api = api
        self.tables = tables
        self.global_id = global_id
        self.device = device
        self.context = context
        self.overhead = overhead  # PROFILER_OVERHEAD names counted as GPU busy time


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


# ----------------------------------------------------------------------------------------------- the stdlib engine
Op = tuple[int, int, int, int, int, int | None]
"""A GPU operation as the stdlib engine holds it: the values of ``OPS_COLUMNS`` (only contextId may be NULL)."""
Bare = tuple[int, int, int, int, int, int | None]
"""``_bare_rows``' row: deviceId, pid, start (min), end (max), globalId and contextId."""


def _small_ops(ctx: ReportContext, src: GpuSource, flt: EventFilter) -> list[Op] | None:
    """``gpu_ops`` with sqlite3 alone: [] when the trace has none of the API's tables; None (the polars path decides)
    when a table is not small and clean (``small_rows``), lacks a column, or holds a NULL or negative global id."""
    trace = ctx.trace
    window = ctx.replace(flt=flt)
    ops: list[Op] = []
    for table in src.tables:
        if not trace.schema.has(table):
            continue
        columns = ["start", "end", src.global_id, src.device, src.context]
        rows = small_rows(window, table, columns, nullable=(src.context,), names=False, where='"start" > 0')
        if rows is None or any(r[2] < 0 for r in rows):
            return None
        ops += [(start, end, global_pid(g), g, device, context) for start, end, g, device, context in rows]
    if not ops or not trace.schema.has(S.PROFILER_OVERHEAD):
        return ops
    names = set(src.overhead)
    ids = set(string_ids(trace, lambda s: s in names))
    if not ids:
        return ops
    over = small_rows(window, S.PROFILER_OVERHEAD, ["start", "end", "globalTid", "nameId"])
    if over is None or any(r[2] < 0 for r in over):
        return None
    ranges = _small_bare_rows(ops)
    # one row per (overhead, device of its process), in overhead order, then device order
    extra: list[Op] = [
        (start, end, pid, g, device, context)
        for start, end, gtid, name_id in over
        if name_id in ids
        for device, pid, r_start, r_end, g, context in ranges
        if pid == global_pid(gtid) and r_start < start and end < r_end
    ]
    return extra + ops


def _small_bare_rows(ops: list[Op]) -> list[Bare]:
    """``_bare_rows`` of the stdlib engine's operations, sorted by (deviceId, pid)."""
    bounds: dict[tuple[int, int], list] = {}
    for start, end, pid, g, device, context in ops:
        b = bounds.get((device, pid))
        if b is None:
            bounds[(device, pid)] = [start, end, g, context]
            continue
        b[0] = min(b[0], start)
        if end > b[1]:  # the first operation, in scan order, that reaches the greatest end
            b[1:] = [end, g, context]
    return [(device, pid, *b) for (device, pid), b in sorted(bounds.items())]


def _small_sources(ctx: ReportContext) -> list[tuple[str, list[Op]]] | None:
    """``gpu_sources`` of the stdlib engine, or None when the polars path must decide."""
    flt = rule_filter(ctx)
    out = []
    for src in GPU_SOURCES:
        if not any(ctx.trace.schema.has(t) for t in src.tables):
            continue
        ops = _small_ops(ctx, src, flt)
        if ops is None:
            return None
        out.append((src.api, ops))
    return out


def _by_device(ops: list[Op]) -> dict[tuple[int, int], list[Op]]:
    """The operations of each (pid, deviceId), in operation order, the keys in ascending order."""
    groups: dict[tuple[int, int], list[Op]] = {}
    for op in ops:
        groups.setdefault((op[2], op[4]), []).append(op)
    return dict(sorted(groups.items()))


def _small_gaps(ops: list[Op], threshold_ns: int) -> list[tuple]:
    """``find_gaps`` of the stdlib engine: rows (duration, gapStart, pid, deviceId, contextId)."""
    out = []
    for (pid, device), group in _by_device(ops).items():
        starts = sorted(op[0] for op in group)
        ends = sorted(group, key=lambda op: op[1])  # stable: operations that end together stay in order
        for next_start, op in zip(starts[1:], ends, strict=False):
            if next_start - op[1] > threshold_ns and op[1] < next_start:
                out.append((next_start - op[1], op[1], pid, device, op[5]))
    return out


SMALL_CHUNK_VISITS = 4_000_000
"""The most (operation, chunk) pairs the stdlib engine of ``gpu_time_util`` visits: beyond it (many operations
that each span many chunks), the polars path decides."""


def _small_low_chunks(ops: list[Op], chunks: int, threshold: int) -> list[tuple] | None:
    """``low_util_chunks`` of the stdlib engine: rows (pid, deviceId, contextId, rangeId, cstart, cend, pct) in
    (pid, deviceId, rangeId) order; None past ``SMALL_CHUNK_VISITS``."""
    groups = _by_device(ops)
    out = []
    visits = 0
    for device, pid, lo, hi, _, context in sorted(_small_bare_rows(ops), key=lambda b: (b[1], b[0])):
        size = math.ceil(float(hi - lo) / chunks)
        if size <= 0:
            continue
        bounds = [(lo + i * size, min(lo + (i + 1) * size, hi)) for i in range(chunks)]
        busy = [0] * chunks
        for start, end, *_ in groups[(pid, device)]:
            first = max(0, (start - lo) // size)
            last = min(chunks - 1, -((lo - end) // size) - 1)
            visits += max(0, last + 1 - first)
            if visits > SMALL_CHUNK_VISITS:
                return None
            for i in range(first, max(first, last + 1)):
                cstart, cend = bounds[i]
                if cstart < cend and start < cend and end > cstart:
                    busy[i] += min(end, cend) - max(start, cstart)
        for i, (cstart, cend) in enumerate(bounds):
            if cstart < cend:
                pct = float(busy[i]) / float(cend - cstart) * 100.0
                if pct < threshold:
                    out.append((pid, device, context, i, cstart, cend, pct))
    return out


def _small_coalesce(low: list[tuple]) -> list[tuple]:
    """``coalesce_chunks`` of the stdlib engine: rows (average, duration, start, pid, deviceId, contextId)."""
    runs: dict[tuple[int, int, int], list[tuple]] = {}
    seen: dict[tuple[int, int], int] = {}
    for row in low:
        pid, device, _, i = row[:4]
        n = seen[(pid, device)] = seen.get((pid, device), 0) + 1
        runs.setdefault((i - n, device, pid), []).append(row)
    out = []
    for (_, device, pid), rows in sorted(runs.items()):
        sizes = [float(r[5] - r[4]) for r in rows]
        average = r1(sqlite_sum(s * r[6] for s, r in zip(sizes, rows, strict=True)) / sqlite_sum(sizes))
        start = min(r[4] for r in rows)
        out.append((average, max(r[5] for r in rows) - start, start, pid, device, rows[0][2]))
    return out


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
    name, title = "gpu_gaps", "GPU Gaps"
    gap = ctx.int_option("gap", 500, 0, MAX_GAP_MS, f"milliseconds, 0..{MAX_GAP_MS}")
    rows = row_limit(ctx)
    small = _small_sources(ctx)
    if small is not None:
        if not small:
            return empty(name, title, GAP_COLUMNS, NO_GPU_OPS)
        found = [row for _, ops in small for row in _small_gaps(ops, gap * 1_000_000)]
        found.sort(key=lambda r: (-r[0], r[1]))  # stable, as polars' sort with maintain_order
        return StatsTable(name, title, GAP_COLUMNS, [(i, *r) for i, r in enumerate(found[:rows], 1)])
    import polars as pl

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
    name, title = "gpu_time_util", "GPU Time Utilization"
    threshold = ctx.int_option("threshold", 50, 0, 100, "a percentage, 0..100")
    chunks = ctx.int_option("chunks", 30, 0, 1000)  # nsys lets chunks=0 through (and then finds nothing)
    rows = row_limit(ctx)
    small = _small_sources(ctx)
    if small is not None:
        if not small:
            return empty(name, title, UTIL_COLUMNS, NO_GPU_OPS)
        if chunks == 0:
            return empty(name, title, UTIL_COLUMNS)
        low = [_small_low_chunks(ops, chunks, threshold) for _, ops in small]
        if all(part is not None for part in low):
            found = [row for part in low for row in _small_coalesce(part)[:rows]]  # type: ignore[arg-type]
            found.sort(key=lambda r: (r[0], r[1]))  # stable, as polars' sort with maintain_order
            return StatsTable(name, title, UTIL_COLUMNS, [(i, *r) for i, r in enumerate(found[:rows], 1)])
    import polars as pl

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
