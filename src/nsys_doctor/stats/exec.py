"""Launch and execution: ``cuda_kern_exec_sum`` (API time, queue time and kernel time per launch site)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from ..trace import schema as S
from .aggregate import grouped_stats_multi, stat_cells
from .api import nsys_api_name
from .core import Column, ReportContext, StatsTable, load_kernels, report

if TYPE_CHECKING:
    import polars as pl

PID_MASK = 1 << 24


def kernel_launches(ctx: ReportContext, kernel_extra: list[str] | None = None) -> pl.DataFrame:
    """Each kernel joined to the API call that launched it (same correlationId and process).

    Columns: pid, tid, deviceId, api_id (nameId, one per nsys display name), kname_id (StringIds id of the kernel
    name variant), r_start, r_end, k_start, k_end (+ extras). Kernels without a launching API row are dropped,
    as in nsys. Names are resolved by the caller, after grouping.
    """
    import polars as pl

    from ..trace.tables import LAUNCH_NAMES_SQL, load

    k = load_kernels(ctx, ["start", "end", "deviceId", "correlationId", "globalPid", *(kernel_extra or [])])
    r = load(
        ctx.trace, S.RUNTIME, ["start", "end", "globalTid", "correlationId", "nameId"], ctx.flt, where=LAUNCH_NAMES_SQL
    )
    r = r.with_columns((pl.col("globalTid") // PID_MASK * PID_MASK).alias("globalPid")).rename(
        {"start": "r_start", "end": "r_end"}
    )
    k = k.rename({"start": "k_start", "end": "k_end", "name_id": "kname_id"})
    df = k.join(r, on=["correlationId", "globalPid"], how="inner")
    # API names are grouped by their nsys display name: ids whose names display the same share one id
    ids = df["nameId"].unique().drop_nulls().to_list()
    display = {i: nsys_api_name(ctx.trace.strings.get(int(i), "")) for i in ids}
    first: dict[str, int] = {}
    canon = {i: first.setdefault(name, i) for i, name in sorted(display.items())}
    df = df.with_columns(pl.col("nameId").replace_strict(canon, return_dtype=pl.Int64).alias("api_id"))
    return df.with_columns(
        ((pl.col("globalTid") // PID_MASK) % PID_MASK).alias("pid"),
        (pl.col("globalTid") % PID_MASK).alias("tid"),
    )


@report("cuda_kern_exec_sum", "CUDA Kernel Launch & Exec Time Summary", flags=("base", "mangled"))
def cuda_kern_exec_sum(ctx: ReportContext) -> StatsTable:
    """Per launch site and kernel: total, API, queue and kernel time statistics."""
    import polars as pl

    df = kernel_launches(ctx)
    df = df.select(
        "pid",
        "tid",
        "deviceId",
        "api_id",
        "kname_id",
        (pl.max_horizontal("r_end", "k_end") - pl.col("r_start")).alias("T"),
        (pl.col("r_end") - pl.col("r_start")).alias("A"),
        pl.when(pl.col("k_start") >= pl.col("r_end")).then(pl.col("k_start") - pl.col("r_end")).alias("Q"),
        (pl.col("k_end") - pl.col("k_start")).alias("K"),
    )
    keys = ["pid", "tid", "deviceId", "api_id", "kname_id"]
    stats = grouped_stats_multi(df, keys, list("TAQK"))
    strings = ctx.trace.strings
    rows = []
    for r in stats.iter_rows(named=True):
        cells: list[Any] = [r["pid"], r["tid"], r["deviceId"], r["T_n"], r["Q_n"]]
        for v in "TAQK":
            cells.extend(
                stat_cells(r[f"{v}_n"], r[f"{v}_total"], r[f"{v}_med"], r[f"{v}_min"], r[f"{v}_max"], r[f"{v}_std"])
            )
        cells.extend([nsys_api_name(strings.get(int(r["api_id"]), "")), strings.get(int(r["kname_id"]), "")])
        rows.append(tuple(cells))
    rows.sort(key=lambda row: (-(row[5] or 0.0), row[0], row[1], row[2], row[-2], row[-1]))
    cols: list[Column] = [Column("PID"), Column("TID"), Column("DevId"), Column("Count"), Column("QCount")]
    for v in "TAQK":
        cols.extend(Column(f"{v}{s}", "dur_ns") for s in ("Avg", "Med", "Min", "Max", "StdDev"))
    cols.extend([Column("API Name"), Column("Kernel Name")])
    skipped = "" if rows else "does not contain CUDA kernels with their launching API calls"
    return StatsTable("cuda_kern_exec_sum", "CUDA Kernel Launch & Exec Time Summary", tuple(cols), rows, skipped)
