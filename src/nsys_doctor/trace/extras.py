"""Rows that only the exports need: each kernel's block size, and the names of processes and host threads."""

from __future__ import annotations

from typing import TYPE_CHECKING

from . import schema as S

if TYPE_CHECKING:
    import polars as pl

    from .open import Trace

PID_MASK = 1 << 24
BLOCK = ("blockX", "blockY", "blockZ")


def with_block_sizes(trace: Trace, kernels: pl.DataFrame) -> pl.DataFrame:
    """``kernels`` (a frame of the trace's kernel table, in table order, as ``TraceFrames.kernels``) with each
    kernel's block size: blockX, blockY, blockZ (null where the export has none).

    One column is read (the three sizes packed in SQL) beside start and correlationId, in table order, which is the
    frame's order (checked; if it is not, the sizes are joined on the kernel's start, process, device, stream and
    correlation id instead)."""
    import polars as pl

    from .tables import PID, load

    have = all(trace.schema.has_column(S.KERNEL, c) for c in BLOCK)
    if not have or kernels.is_empty():
        return kernels.with_columns([pl.lit(None, pl.Int64).alias(c) for c in BLOCK])
    packed = f"{BLOCK[0]} | ({BLOCK[1]} << 21) | ({BLOCK[2]} << 42) AS _block"
    read = trace.read_table(S.KERNEL, {"start": pl.Int64, "correlationId": pl.Int64, packed: pl.Int64})
    aligned = read.height == kernels.height and read["start"].equals(kernels["start"])
    if aligned and read["correlationId"].equals(kernels["correlationId"]):
        unit = 1 << 21
        b = pl.col("_block")
        return (
            kernels.with_columns(read["_block"])
            .with_columns(
                (b % unit).alias(BLOCK[0]), (b // unit % unit).alias(BLOCK[1]), (b // (unit * unit)).alias(BLOCK[2])
            )
            .drop("_block")
        )
    key = ["start", "pid", "deviceId", "streamId", "correlationId"]
    wide = [pl.col(c).cast(pl.Int64) for c in key]  # the frame's ids may be Int32 (see ``TraceFrames``)
    block = load(trace, S.KERNEL, ["start", PID, *key[2:], *BLOCK]).with_columns(wide)
    block = block.unique(subset=key, keep="first", maintain_order=True)
    joined = kernels.with_columns(wide).join(block, on=key, how="left", maintain_order="left")
    return joined.with_columns(pl.col(c).cast(kernels.schema[c]) for c in key)


def process_names(trace: Trace) -> dict[int, str]:
    """pid -> process name, from PROCESSES (the first row of a pid wins; empty names left out)."""
    out: dict[int, str] = {}
    schema = trace.schema
    if schema.has_column("PROCESSES", "pid") and schema.has_column("PROCESSES", "name"):
        for pid, name in trace.rows("SELECT pid, name FROM PROCESSES ORDER BY rowid"):
            if isinstance(pid, int) and isinstance(name, str) and name:
                out.setdefault(pid, name)
    return out


def thread_names(trace: Trace) -> dict[tuple[int, int], str]:
    """(pid, tid) -> thread name, from ThreadNames (the first row of a thread wins; unnamed ids left out)."""
    out: dict[tuple[int, int], str] = {}
    schema = trace.schema
    if schema.has_column("ThreadNames", "nameId") and schema.has_column("ThreadNames", "globalTid"):
        strings = trace.strings
        for name_id, gtid in trace.rows("SELECT nameId, globalTid FROM ThreadNames ORDER BY rowid"):
            if isinstance(name_id, int) and isinstance(gtid, int) and strings.get(name_id):
                out.setdefault(((gtid // PID_MASK) % PID_MASK, gtid % PID_MASK), strings[name_id])
    return out
