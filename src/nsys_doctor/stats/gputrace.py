"""Per-operation trace: ``cuda_gpu_trace`` (every kernel, memcpy and memset, in start order)."""

from __future__ import annotations

from collections.abc import Iterator, Sequence

from ..trace import schema as S
from .core import (
    ChunkedRows,
    Column,
    ReportContext,
    StatsTable,
    load_kernels,
    report,
    small_kernel_rows,
    small_rows,
)
from .memops import MEMSET_NAME, memcpy_name_expr

TYPE_CHECKING = False
if TYPE_CHECKING:
    import polars as pl

    from .keysort import SortedKeys

GEOMETRY = S.KERNEL_GEOMETRY
OUT = [
    "start",
    "dur",
    "correlationId",
    *GEOMETRY,
    "bytes",
    "thru",
    "src",
    "dst",
    "device",
    "ctx",
    "green",
    "strm",
    "name",
]
COMMON = ["start", "end", "deviceId", "contextId", "greenContextId", "streamId", "correlationId"]
OPTIONAL = ("greenContextId",)
"""Columns of ``COMMON`` that older exports lack (nsys 2023.3 and before): empty cells, as the loader reads them."""


SOURCES: tuple[tuple[int, str], ...] = ((0, S.KERNEL), (1, S.MEMCPY), (2, S.MEMSET))
"""The tables of the report, by kind: rows that start together come kernels first, then copies, then memsets."""
KIND_SHIFT = 40  # a row's sort key below its start: kind << KIND_SHIFT | rowid (rowids stay below 2**40)
BLOCK_ROWS = 1 << 20  # rows of a table read at a time for the sort keys
COLUMNS = {
    S.KERNEL: [*COMMON, *GEOMETRY],
    S.MEMCPY: [*COMMON, "bytes", "copyKind", "srcKind", "dstKind"],
    S.MEMSET: [*COMMON, "bytes", "memKind"],
}
# the columns that decide whether a row is usable (trace/damage.py): the sort keys are read with them, so the rows
# ordered are exactly the rows the report shows
KEY_COLUMNS = ["start", "end", "deviceId", "streamId"]


@report("cuda_gpu_trace", "CUDA GPU Trace", flags=("base", "mangled"))
def cuda_gpu_trace(ctx: ReportContext) -> StatsTable:
    """Every kernel, memcpy and memset with launch geometry, bytes, throughput, device, context and stream."""
    cols = (
        Column("Start", "ts_ns"),
        Column("Duration", "dur_ns"),
        Column("CorrId"),
        Column("GrdX"),
        Column("GrdY"),
        Column("GrdZ"),
        Column("BlkX"),
        Column("BlkY"),
        Column("BlkZ"),
        Column("Reg/Trd"),
        Column("StcSMem", "mem_B"),
        Column("DymSMem", "mem_B"),
        Column("Bytes", "mem_B"),
        Column("Throughput", "thru_B"),
        Column("SrcMemKd"),
        Column("DstMemKd"),
        Column("Device"),
        Column("Ctx"),
        Column("GreenCtx"),
        Column("Strm"),
        Column("Name"),
    )
    small = small_trace_rows(ctx)
    rows: Sequence[tuple] = small if small is not None else StreamedRows(ctx)
    skipped = "" if rows else "does not contain CUDA kernels or memory operations"
    return StatsTable("cuda_gpu_trace", "CUDA GPU Trace", cols, rows, skipped)


SMALL_TRACE_VALUES = 600_000
"""Up to this many values (about 33,000 kernels), ``cuda_gpu_trace`` is made with the stdlib driver alone
(``small_trace_rows``): the whole report then costs less than importing polars and numpy, which the streamed path
needs (a trace of 12,086 kernels: 0.36-0.41 s against nsys's 0.14-0.30 s on the GPU host; docs/performance.md)."""


def small_trace_rows(ctx: ReportContext) -> list[tuple] | None:
    """The report's rows (columns ``OUT``, in nsys's order: by start, then kernels, copies and memsets, then table
    order) of small, clean tables read with sqlite3 alone; None when the streamed path must decide (a big table, a
    NULL or a value of another type in a column read, damaged rows: see ``core.small_rows``)."""
    trace = ctx.trace
    spans = _spans(ctx)  # rowids an nsys export never has are refused on either path
    if sum(hi - lo + 1 for _, _, (lo, hi) in spans) * len(OUT) > SMALL_TRACE_VALUES:
        return None  # more rows than the stdlib path takes (before reading any)
    kernels = small_kernel_rows(ctx, [*COMMON, *GEOMETRY], SMALL_TRACE_VALUES, OPTIONAL)
    if kernels is None:
        return None
    copies = small_rows(ctx, S.MEMCPY, COLUMNS[S.MEMCPY], names=False, values=SMALL_TRACE_VALUES, optional=OPTIONAL)
    sets = small_rows(ctx, S.MEMSET, COLUMNS[S.MEMSET], names=False, values=SMALL_TRACE_VALUES, optional=OPTIONAL)
    if copies is None or sets is None:
        return None
    if (len(kernels) + len(copies) + len(sets)) * len(OUT) > SMALL_TRACE_VALUES:
        return None
    from ..trace.gpuinfo import gpu_rows

    names = {r["deviceId"]: r["name"] for r in gpu_rows(trace)}
    devices: dict[int, str | None] = {}

    def device(d: int) -> str | None:
        if d not in devices:
            name = names.get(d, "")
            devices[d] = None if name is None else f"{name} ({d})"
        return devices[d]

    labels = trace.schema.enum_labels("ENUM_CUDA_MEM_KIND")
    copy_names = trace.schema.enum_labels("ENUM_CUDA_MEMCPY_OPER")
    strings = trace.strings
    keyed: list[tuple[int, int, int, tuple]] = []

    def common(r: tuple) -> tuple[int, int, int, int | None, int | None, int | None, str | None]:
        # start, end, deviceId, contextId, greenContextId, streamId, correlationId
        start, end, dev, ctx_id, green, strm, corr = r
        return start, end - start, corr, ctx_id or None, green or None, strm or None, device(dev)

    def thru(n: int, dur: int) -> int | None:
        if dur <= 0:
            return None
        per = 1_000_000_000 // dur
        return None if per and n > INT64_MAX // per else n * per  # beyond 64 bits: none (as the streamed path)

    for i, k in enumerate(kernels):
        start, dur, corr, c, g, st, dv = common(k[1:8])
        row = (start, dur, corr, *k[8:], None, None, None, None, dv, c, g, st, strings.get(k[0], ""))
        keyed.append((start, 0, i, row))
    for i, r in enumerate(copies):
        start, dur, corr, c, g, st, dv = common(r[:7])
        n, kind, src, dst = r[7:]
        name = f"[CUDA memcpy {copy_names.get(kind, 'Unknown')}]"
        row = (start, dur, corr, *(None,) * len(GEOMETRY), n, thru(n, dur), labels.get(src), labels.get(dst), dv,
               c, g, st, name)  # fmt: skip
        keyed.append((start, 1, i, row))
    for i, r in enumerate(sets):
        start, dur, corr, c, g, st, dv = common(r[:7])
        n, kind = r[7:]
        row = (start, dur, corr, *(None,) * len(GEOMETRY), n, thru(n, dur), labels.get(kind), None, dv, c, g, st,
               MEMSET_NAME)  # fmt: skip
        keyed.append((start, 2, i, row))
    keyed.sort(key=lambda k: k[:3])
    return [k[3] for k in keyed]


def _read(ctx: ReportContext, table: str, columns: list[str], rowids: tuple[int, int]) -> pl.DataFrame:
    """``columns`` and the rowid (``_rid``) of the usable rows of ``table`` in a rowid range, filtered by the
    context (kernels with the name the report asks for, as ``name_id``)."""
    from ..trace.tables import ROWID, load

    if table == S.KERNEL:
        return load_kernels(ctx, [*columns, ROWID], rowids)
    return load(ctx.trace, table, [*columns, ROWID], ctx.flt, rowids=rowids)


INT64_MAX = (1 << 63) - 1


def _fits_throughput(dur: pl.Expr) -> pl.Expr:
    """Whether bytes * (1e9 // dur), the throughput in B/s, fits in 64 bits (a copy of 9 TB in a nanosecond does
    not: its cell is left empty, on both paths, rather than wrapped to a negative number)."""
    import polars as pl

    per = 1_000_000_000 // dur
    return (per == 0) | (pl.col("bytes") <= pl.lit(INT64_MAX) // per)


def _spans(ctx: ReportContext) -> list[tuple[int, str, tuple[int, int]]]:
    """(kind, table, rowid range) of the report's tables that hold rows; a rowid outside 0..2**KIND_SHIFT (which
    the sort keys cannot hold, and nsys never writes) is a ``TraceError``."""
    has = ctx.trace.schema.has
    spans = [(k, table, span) for k, table in SOURCES if has(table) and (span := ctx.trace.rowid_range(table))]
    for _, table, (lo, hi) in spans:
        if lo < 0 or hi >= 1 << KIND_SHIFT:
            from ..errors import TraceError

            raise TraceError(
                f"{table} has rowids outside 0..2**{KIND_SHIFT}: the file is not an nsys export as written",
                "export the report again with nsys export --type=sqlite",
            )
    return spans


def sort_keys(ctx: ReportContext) -> SortedKeys:
    """The report's rows in order, as ``kind << KIND_SHIFT | rowid``: by start, then kind, then rowid (the table's
    order), nsys's order. The tables are read a block of rows at a time into a ``KeySorter`` (bounded memory at any
    size: sorted in one buffer up to its limit, else as runs on disk merged a window at a time)."""
    from .keysort import KeySorter  # here: the stdlib path of a small trace (small_trace_rows) needs none of it

    spans = _spans(ctx)
    # a table's rows fit in its rowid range; a range far wider than a block is checked against the row count
    # (rowids need not be dense)
    size = sum(
        hi - lo + 1 if hi - lo < 16 * BLOCK_ROWS else min(hi - lo + 1, ctx.trace.count(table))
        for _, table, (lo, hi) in spans
    )
    sorter = KeySorter(size)
    for kind, table, (first, last) in spans:
        for lo in range(first, last + 1, BLOCK_ROWS):
            part = _read(ctx, table, KEY_COLUMNS, (lo, min(last, lo + BLOCK_ROWS - 1)))
            sorter.add(part["start"].to_numpy(), part["_rid"].to_numpy() | (kind << KIND_SHIFT))
            del part
    return sorter.finish()


class StreamedRows(ChunkedRows):
    """The rows of ``cuda_gpu_trace``, made a chunk at a time: the sort key of every row is found first
    (``sort_keys``: in memory, 8 bytes a row, for up to ``keysort.MEMORY_ROWS`` rows, else in a temporary file), then
    each chunk's rows are read by rowid range and shaped (``chunks``), so that memory holds two chunks and at most
    ``MEMORY_ROWS`` keys, never the whole trace."""

    def __init__(self, ctx: ReportContext) -> None:
        from ..trace.tables import gpus

        self.ctx = ctx
        self._key = sort_keys(ctx)
        g = gpus(ctx.trace)
        self._devices = dict(zip(g["deviceId"].to_list(), g["name"].to_list(), strict=True))
        self._labels = ctx.trace.schema.enum_labels("ENUM_CUDA_MEM_KIND")

    def __len__(self) -> int:
        return self._key.size

    def chunks(self, n: int) -> Iterator[pl.DataFrame]:
        """The rows as frames of ``n`` rows (the last one shorter), in order, columns ``OUT``. The next chunk is
        read while the caller formats this one (SQLite and polars release the interpreter meanwhile)."""
        from concurrent.futures import ThreadPoolExecutor

        n = max(1, n)
        with ThreadPoolExecutor(1) as pool:
            ahead = pool.submit(self._chunk, 0, n) if len(self) else None
            for lo in range(0, len(self), n):
                assert ahead is not None
                chunk = ahead.result()
                ahead = pool.submit(self._chunk, lo + n, lo + 2 * n) if lo + n < len(self) else None
                yield chunk

    def _chunk(self, lo: int, hi: int) -> pl.DataFrame:
        import numpy as np
        import polars as pl

        key = self._key.slice(lo, hi)
        kind = key >> KIND_SHIFT
        rid = key & ((1 << KIND_SHIFT) - 1)
        parts = []
        for k, table in SOURCES:
            ids = rid[kind == k]
            if ids.size:
                first, last = int(ids.min()), int(ids.max())
                rows = _read(self.ctx, table, COLUMNS[table], (first, last))
                if rows.height > ids.size:  # rows of other chunks in the range: keep this chunk's
                    rows = rows.filter(pl.col("_rid").is_in(pl.Series(ids).implode()))
                parts.append(self._shape(k, rows))
        order = pl.DataFrame({"_kind": kind.astype(np.int8), "_rid": rid})
        # every column, whichever tables the chunk holds rows of (text columns are the report's four names)
        schema = {c: pl.Utf8 if c in ("src", "dst", "device", "name") else pl.Int64 for c in OUT}
        rows = pl.concat(
            [pl.DataFrame(schema={"_kind": pl.Int8, "_rid": pl.Int64, **schema}), *parts], how="diagonal_relaxed"
        )
        return order.join(rows, on=["_kind", "_rid"], how="left", maintain_order="left").select(OUT)

    def _shape(self, kind: int, df: pl.DataFrame) -> pl.DataFrame:
        """One table's rows as the report's columns (plus ``_kind`` and ``_rid``)."""
        import polars as pl

        from ..trace.tables import resolve_names

        def label(col: str) -> pl.Expr:
            return pl.col(col).replace_strict(self._labels, default=None, return_dtype=pl.Utf8)

        trace = self.ctx.trace
        if kind == 0:
            df = resolve_names(df, trace, "name_id", "name").with_columns(
                pl.lit(None, pl.Int64).alias("bytes"),
                pl.lit(None, pl.Utf8).alias("src"),
                pl.lit(None, pl.Utf8).alias("dst"),
            )
        elif kind == 1:
            df = df.with_columns(
                memcpy_name_expr(trace).alias("name"), label("srcKind").alias("src"), label("dstKind").alias("dst")
            )
        else:
            df = df.with_columns(
                pl.lit(MEMSET_NAME).alias("name"), label("memKind").alias("src"), pl.lit(None, pl.Utf8).alias("dst")
            )
        dur = pl.col("end") - pl.col("start")
        return df.with_columns(
            pl.lit(kind, pl.Int8).alias("_kind"),
            dur.alias("dur"),
            pl.when(pl.col("bytes").is_not_null() & (dur > 0) & _fits_throughput(dur))
            .then(pl.col("bytes") * (1_000_000_000 // dur))
            .alias("thru"),
            pl.concat_str(
                pl.col("deviceId").replace_strict(self._devices, default="", return_dtype=pl.Utf8),
                pl.lit(" ("),
                pl.col("deviceId").cast(pl.Utf8),
                pl.lit(")"),
            ).alias("device"),
            *(
                pl.when(pl.col(c) != 0).then(pl.col(c)).alias(a)
                for c, a in (("contextId", "ctx"), ("greenContextId", "green"), ("streamId", "strm"))
            ),
        )

    def _rows(self, lo: int, hi: int) -> list[tuple]:
        return self._chunk(lo, hi).rows()


class FrameRows(ChunkedRows):
    """A report's rows kept as a polars frame (one column per report column, in order)."""

    def __init__(self, frame: pl.DataFrame) -> None:
        self.frame = frame

    def __len__(self) -> int:
        return self.frame.height

    def chunks(self, n: int) -> Iterator[pl.DataFrame]:
        """The frame in slices of ``n`` rows."""
        for lo in range(0, self.frame.height, max(1, n)):
            yield self.frame.slice(lo, max(1, n))

    def _rows(self, lo: int, hi: int) -> list[tuple]:
        return self.frame.slice(lo, hi - lo).rows()

    def __eq__(self, other: object) -> bool:
        if isinstance(other, FrameRows):
            return self.frame.equals(other.frame)
        return super().__eq__(other)
