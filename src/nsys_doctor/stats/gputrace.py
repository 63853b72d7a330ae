"""Per-operation trace: ``cuda_gpu_trace`` (every kernel, memcpy and memset, in start order)."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import TYPE_CHECKING, overload

from ..trace import schema as S
from .core import Column, ReportContext, StatsTable, load_kernels, report
from .memops import MEMSET_NAME, memcpy_name_expr

if TYPE_CHECKING:
    import polars as pl

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


@report("cuda_gpu_trace", "CUDA GPU Trace", flags=("base", "mangled"))
def cuda_gpu_trace(ctx: ReportContext) -> StatsTable:
    """Every kernel, memcpy and memset with launch geometry, bytes, throughput, device, context and stream."""
    import polars as pl

    from ..trace.tables import gpus, load, resolve_names

    trace = ctx.trace
    k = load_kernels(ctx, [*COMMON, *GEOMETRY])
    k = resolve_names(k, trace, "name_id", "name").with_columns(
        pl.lit(None, pl.Int64).alias("bytes"),
        pl.lit(None, pl.Utf8).alias("src"),
        pl.lit(None, pl.Utf8).alias("dst"),
        pl.lit(0, pl.Int8).alias("_kind"),
    )
    mem_kinds = trace.schema.enum_labels("ENUM_CUDA_MEM_KIND")

    def kind(col: str) -> pl.Expr:
        return pl.col(col).replace_strict(mem_kinds, default=None, return_dtype=pl.Utf8)

    cp = load(trace, S.MEMCPY, [*COMMON, "bytes", "copyKind", "srcKind", "dstKind"], ctx.flt)
    cp = cp.with_columns(
        memcpy_name_expr(trace).alias("name"),
        kind("srcKind").alias("src"),
        kind("dstKind").alias("dst"),
        pl.lit(1, pl.Int8).alias("_kind"),
    )
    ms = load(trace, S.MEMSET, [*COMMON, "bytes", "memKind"], ctx.flt)
    ms = ms.with_columns(
        pl.lit(MEMSET_NAME).alias("name"),
        kind("memKind").alias("src"),
        pl.lit(None, pl.Utf8).alias("dst"),
        pl.lit(2, pl.Int8).alias("_kind"),
    )
    df = pl.concat([k, cp, ms], how="diagonal_relaxed")
    dev_names = dict(zip(*gpus(trace).select("deviceId", "name").to_dict(as_series=False).values(), strict=True))
    dur = pl.col("end") - pl.col("start")
    df = df.with_columns(
        dur.alias("dur"),
        pl.when(pl.col("bytes").is_not_null() & (dur > 0)).then(pl.col("bytes") * (1_000_000_000 // dur)).alias("thru"),
        pl.concat_str(
            pl.col("deviceId").replace_strict(dev_names, default="", return_dtype=pl.Utf8),
            pl.lit(" ("),
            pl.col("deviceId").cast(pl.Utf8),
            pl.lit(")"),
        ).alias("device"),
        *(
            pl.when(pl.col(c) != 0).then(pl.col(c)).alias(a)
            for c, a in (("contextId", "ctx"), ("greenContextId", "green"), ("streamId", "strm"))
        ),
    )
    # text columns repeat a few hundred values: categorical keeps each once (the frame is a fraction of the rows')
    df = df.sort(["start", "_kind"], maintain_order=True).select(OUT)
    df = df.with_columns(pl.col("name", "device", "src", "dst").cast(pl.Categorical))
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
    skipped = "" if df.height else "does not contain CUDA kernels or memory operations"
    return StatsTable("cuda_gpu_trace", "CUDA GPU Trace", cols, FrameRows(df), skipped)  # type: ignore[arg-type]


class FrameRows(Sequence[tuple]):
    """A report's rows kept as a polars frame (one column per report column, in order): a sequence of tuples to
    whoever reads ``StatsTable.rows`` row by row, and the frame itself to ``report.nsys_format``, which formats it
    a chunk of rows at a time with polars instead of building a Python tuple and string per cell."""

    def __init__(self, frame: pl.DataFrame) -> None:
        self.frame = frame

    def __len__(self) -> int:
        return self.frame.height

    def __bool__(self) -> bool:
        return self.frame.height > 0

    def __iter__(self) -> Iterator[tuple]:
        step = 65_536
        for lo in range(0, self.frame.height, step):
            yield from self.frame.slice(lo, step).iter_rows()

    @overload
    def __getitem__(self, i: int) -> tuple: ...
    @overload
    def __getitem__(self, i: slice) -> list[tuple]: ...
    def __getitem__(self, i: int | slice) -> tuple | list[tuple]:
        if isinstance(i, slice):
            return self.frame[i].rows()
        n = self.frame.height
        if not -n <= i < n:
            raise IndexError(i)
        return self.frame.row(i % n)

    def __eq__(self, other: object) -> bool:
        if isinstance(other, FrameRows):
            return self.frame.equals(other.frame)
        if isinstance(other, (list, tuple)):
            return list(self) == list(other)
        return NotImplemented

    __hash__ = None  # type: ignore[assignment]
