"""Launch and execution: ``cuda_kern_exec_sum`` (API time, queue time and kernel time per launch site)."""

from __future__ import annotations

from collections.abc import Iterable

from ..trace import schema as S
from ..trace.schema import LAUNCH_NAMES_SQL, global_pid, global_tid
from .aggregate import STAT_COLUMNS, grouped_stats_multi, stat_cells, value_stats
from .api import nsys_api_name
from .core import Column, ReportContext, StatsTable, load_kernels, report, small_kernel_rows, small_rows

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

    import polars as pl

PID_MASK = 1 << 24
KEYS = ["pid", "tid", "deviceId", "api_id", "kname_id"]


def kernel_launches(ctx: ReportContext, kernel_extra: list[str] | None = None) -> pl.DataFrame:
    """Each kernel joined to the API call that launched it (same correlationId and process).

    Columns: pid, tid, deviceId, api_id (nameId, one per nsys display name), kname_id (StringIds id of the kernel
    name variant), r_start, r_end, k_start, k_end (+ extras). Kernels without a launching API row are dropped,
    as in nsys. Names are resolved by the caller, after grouping.
    """
    import polars as pl

    from ..trace.tables import load

    k = load_kernels(ctx, ["start", "end", "deviceId", "correlationId", "globalPid", *(kernel_extra or [])])
    r = load(
        ctx.trace, S.RUNTIME, ["start", "end", "globalTid", "correlationId", "nameId"], ctx.flt, where=LAUNCH_NAMES_SQL
    )
    r = r.with_columns((pl.col("globalTid") // PID_MASK * PID_MASK).alias("globalPid")).rename(
        {"start": "r_start", "end": "r_end"}
    )
    k = k.rename({"start": "k_start", "end": "k_end", "name_id": "kname_id"})
    df = k.join(r, on=["correlationId", "globalPid"], how="inner")
    canon = _display_ids(ctx, df["nameId"].unique().drop_nulls().to_list())
    df = df.with_columns(pl.col("nameId").replace_strict(canon, return_dtype=pl.Int64).alias("api_id"))
    return df.with_columns(
        ((pl.col("globalTid") // PID_MASK) % PID_MASK).alias("pid"),
        (pl.col("globalTid") % PID_MASK).alias("tid"),
    )


def _display_ids(ctx: ReportContext, ids: Iterable[int]) -> dict[int, int]:
    """API name ids -> one id per nsys display name (the smallest id of the names that display the same): the
    report groups API names as nsys displays them."""
    first: dict[str, int] = {}
    return {i: first.setdefault(nsys_api_name(ctx.trace.strings.get(int(i), "")), i) for i in sorted(ids)}


def _small_launch_stats(ctx: ReportContext) -> list[dict[str, Any]] | None:
    """``kernel_launches``' per-site statistics of T, A, Q and K with sqlite3 alone, when both tables are small and
    clean (``small_rows``; no negative global id): rows named as ``grouped_stats_multi``'s, in the order of the
    kernel table, each kernel's launching calls in the order of the runtime table, as the polars join gives them.
    None: the polars path decides."""
    kernels = small_kernel_rows(ctx, ["start", "end", "deviceId", "correlationId", "globalPid"])
    if kernels is None:
        return None
    calls = small_rows(
        ctx, S.RUNTIME, ["start", "end", "globalTid", "correlationId", "nameId"], names=False, where=LAUNCH_NAMES_SQL
    )
    if calls is None or any(k[5] < 0 for k in kernels) or any(c[2] < 0 for c in calls):
        return None
    launches: dict[tuple[int, int], list[tuple]] = {}
    for call in calls:
        launches.setdefault((call[3], call[2] // PID_MASK * PID_MASK), []).append(call)
    canon = _display_ids(ctx, {c[4] for c in calls})
    values: dict[tuple[int, ...], tuple[list[int], ...]] = {}
    for kname, k_start, k_end, device, corr, gpid in kernels:
        for r_start, r_end, gtid, _, name_id in launches.get((corr, gpid), ()):
            key = (global_pid(gtid), global_tid(gtid), device, canon[name_id], kname)
            group = values.get(key)
            if group is None:
                group = values[key] = ([], [], [], [])
            t, a, q, k = group
            t.append(max(r_end, k_end) - r_start)
            a.append(r_end - r_start)
            if k_start >= r_end:
                q.append(k_start - r_end)
            k.append(k_end - k_start)
    out = []
    for site, group in values.items():
        row: dict[str, Any] = dict(zip(KEYS, site, strict=True))
        for v, measured in zip("TAQK", group, strict=True):
            stats = value_stats(measured)
            if stats is None:
                return None
            row.update(zip((f"{v}_{c}" for c in STAT_COLUMNS), stats, strict=True))
        out.append(row)
    return out


@report("cuda_kern_exec_sum", "CUDA Kernel Launch & Exec Time Summary", flags=("base", "mangled"))
def cuda_kern_exec_sum(ctx: ReportContext) -> StatsTable:
    """Per launch site and kernel: total, API, queue and kernel time statistics."""
    groups: Iterable[dict[str, Any]] | None = _small_launch_stats(ctx)
    if groups is None:
        import polars as pl

        df = kernel_launches(ctx)
        df = df.select(
            *KEYS,
            (pl.max_horizontal("r_end", "k_end") - pl.col("r_start")).alias("T"),
            (pl.col("r_end") - pl.col("r_start")).alias("A"),
            pl.when(pl.col("k_start") >= pl.col("r_end")).then(pl.col("k_start") - pl.col("r_end")).alias("Q"),
            (pl.col("k_end") - pl.col("k_start")).alias("K"),
        )
        groups = grouped_stats_multi(df, KEYS, list("TAQK")).iter_rows(named=True)
    strings = ctx.trace.strings
    rows = []
    for r in groups:
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
