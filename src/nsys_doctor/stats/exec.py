"""Launch and execution: ``cuda_kern_exec_sum`` (API time, queue time and kernel time per launch site)."""

from __future__ import annotations

import polars as pl

from ..trace import schema as S
from ..trace.tables import load, resolve_names
from .aggregate import grouped_stats, stat_cells
from .api import api_name_expr
from .core import Column, ReportContext, StatsTable, kernel_name_column, report

PID_MASK = 1 << 24


def kernel_launches(ctx: ReportContext, kernel_extra: list[str] | None = None) -> pl.DataFrame:
    """Each kernel joined to the API call that launched it (same correlationId and process).

    Columns: pid, tid, deviceId, api (nsys display name), kname, r_start, r_end, k_start, k_end (+ extras).
    Kernels without a launching API row are dropped, as in nsys.
    """
    name_col = kernel_name_column(ctx)
    kcols = ["start", "end", "deviceId", "correlationId", "globalPid", name_col, *(kernel_extra or [])]
    if name_col == "mangledName":
        kcols.append("demangledName")
    k = load(ctx.trace, S.KERNEL, list(dict.fromkeys(kcols)), ctx.flt)
    if name_col == "mangledName":
        k = k.with_columns(pl.coalesce("mangledName", "demangledName").alias("mangledName"))
    r = load(ctx.trace, S.RUNTIME, ["start", "end", "globalTid", "correlationId", "nameId"], ctx.flt)
    r = r.with_columns((pl.col("globalTid") // PID_MASK * PID_MASK).alias("globalPid")).rename(
        {"start": "r_start", "end": "r_end"}
    )
    k = k.rename({"start": "k_start", "end": "k_end"})
    df = k.join(r, on=["correlationId", "globalPid"], how="inner")
    df = resolve_names(df, ctx.trace, name_col, "kname")
    df = resolve_names(df, ctx.trace, "nameId", "api_raw").with_columns(api_name_expr("api_raw").alias("api"))
    return df.with_columns(
        ((pl.col("globalTid") // PID_MASK) % PID_MASK).alias("pid"),
        (pl.col("globalTid") % PID_MASK).alias("tid"),
    )


@report("cuda_kern_exec_sum", "CUDA Kernel Launch & Exec Time Summary", flags=("base", "mangled"))
def cuda_kern_exec_sum(ctx: ReportContext) -> StatsTable:
    """Per launch site and kernel: total, API, queue and kernel time statistics."""
    df = kernel_launches(ctx)
    df = df.with_columns(
        (pl.max_horizontal("r_end", "k_end") - pl.col("r_start")).alias("T"),
        (pl.col("r_end") - pl.col("r_start")).alias("A"),
        pl.when(pl.col("k_start") >= pl.col("r_end")).then(pl.col("k_start") - pl.col("r_end")).alias("Q"),
        (pl.col("k_end") - pl.col("k_start")).alias("K"),
    )
    keys = ["pid", "tid", "deviceId", "api", "kname"]
    parts = [grouped_stats(df, keys, v, prefix=f"{v}_") for v in "TAQK"]
    stats = parts[0]
    for p in parts[1:]:
        stats = stats.join(p, on=keys, how="left", maintain_order="left")
    rows = []
    for r in stats.iter_rows(named=True):
        cells: list[object] = [r["pid"], r["tid"], r["deviceId"], r["T_n"], r["Q_n"]]
        for v in "TAQK":
            cells.extend(
                stat_cells(r[f"{v}_n"], r[f"{v}_total"], r[f"{v}_med"], r[f"{v}_min"], r[f"{v}_max"], r[f"{v}_std"])
            )
        cells.extend([r["api"], r["kname"]])
        rows.append(tuple(cells))
    rows.sort(key=lambda row: (-(row[5] or 0.0), row[0], row[1], row[2], row[-2], row[-1]))
    cols: list[Column] = [Column("PID"), Column("TID"), Column("DevId"), Column("Count"), Column("QCount")]
    for v in "TAQK":
        cols.extend(Column(f"{v}{s}", "dur_ns") for s in ("Avg", "Med", "Min", "Max", "StdDev"))
    cols.extend([Column("API Name"), Column("Kernel Name")])
    skipped = "" if rows else "does not contain CUDA kernels with their launching API calls"
    return StatsTable("cuda_kern_exec_sum", "CUDA Kernel Launch & Exec Time Summary", tuple(cols), rows, skipped)
