"""Per rank (pure): a rank's collective instances in order, with the launch, wait and host work around each."""

from __future__ import annotations

from dataclasses import dataclass, field

import polars as pl

from ...trace.tables import call_column
from ..distribution import duration_summary
from ..ops import OpRule, builtin_rules, classify
from ..phases import LAUNCH_API, assign_to_steps, calls

LONG_HOST_NS = 50_000  # CUDA API / OS calls at least this long are named as what a late rank was doing


@dataclass(frozen=True)
class RankSummary:
    """What one rank contributes to the analysis: small, picklable (one row per collective instance)."""

    rank: int
    info: dict[str, object]  # path, pid, device, source, offset_ns, host, window, step source ...
    instances: pl.DataFrame  # see INSTANCE_COLUMNS; times on the common timeline
    steps: pl.DataFrame  # idx, kind, start, end, wall, gpu_time, gpu_start, gpu_end, nccl_time, compute_time
    nvtx: pl.DataFrame  # NCCL NVTX ranges per name: name, count, total, p50, p99, max
    totals: dict[str, int] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)


INSTANCE_COLUMNS = [
    "channel",  # collective stream of the rank, numbered by first use (0, 1, ...)
    "name",  # kernel short name
    "op",  # operation (all-reduce, all-gather ...)
    "seq",  # position in the sequence of this channel and name
    "start",
    "end",
    "dur",
    "l_start",  # launch API call start (null when unknown)
    "step",  # step index (null outside steps)
    "in_step",  # position among this name's instances in the step
    "prev_end",  # latest end of an earlier kernel on the device
    "prev_kernel",  # the kernel that started before it on the device
    "prev_launch",  # launch time of that kernel
    "overlap",  # ns of this instance overlapped by compute kernels on the device
    "api_name",  # last long CUDA API call on the launching thread since the previous launch
    "api_dur",
    "os_name",  # last long OS runtime call on the launching thread since the previous launch
    "os_dur",
]


def _unique_launches(api: pl.DataFrame) -> pl.DataFrame:
    launches = calls(api, LAUNCH_API, columns=["pid", "correlationId", "start", "end", "tid"]).sort("start")
    return launches.unique(subset=["pid", "correlationId"], keep="first", maintain_order=True).select(
        "pid", "correlationId", pl.col("start").alias("l_start"), pl.col("end").alias("l_end"), "tid"
    )


def _merge_intervals(iv: pl.DataFrame) -> pl.DataFrame:
    """Union of [start, end) intervals per device: deviceId, start, end, before (busy time of earlier intervals)."""
    if iv.is_empty():
        return pl.DataFrame(schema={"deviceId": pl.Int64, "start": pl.Int64, "end": pl.Int64, "before": pl.Int64})
    s = iv.select("deviceId", "start", "end").sort("deviceId", "start")
    s = s.with_columns(pl.col("end").cum_max().shift(1).over("deviceId").alias("_prev"))
    s = s.with_columns(
        (pl.col("_prev").is_null() | (pl.col("start") > pl.col("_prev"))).cum_sum().over("deviceId").alias("_g")
    )
    m = s.group_by("deviceId", "_g").agg(pl.col("start").min(), pl.col("end").max()).sort("deviceId", "start")
    return m.with_columns(
        ((pl.col("end") - pl.col("start")).cum_sum().over("deviceId") - (pl.col("end") - pl.col("start"))).alias(
            "before"
        )
    ).select("deviceId", "start", "end", "before")


def _covered(df: pl.DataFrame, col: str, merged: pl.DataFrame, out: str) -> pl.DataFrame:
    """Add ``out``: busy time of ``merged`` (per device) before the time in ``col``."""
    m = merged.rename({"start": "_ms", "end": "_me", "before": "_mb"}).sort("_ms")
    j = df.sort(col).join_asof(
        m, left_on=col, right_on="_ms", by="deviceId", strategy="backward", check_sortedness=False
    )
    inside = (pl.min_horizontal(pl.col(col), pl.col("_me")) - pl.col("_ms")).clip(lower_bound=0)
    return j.with_columns((pl.col("_mb") + inside).fill_null(0).alias(out)).drop("_ms", "_me", "_mb")


def _last_long_call(inst: pl.DataFrame, host: pl.DataFrame, prefix: str) -> pl.DataFrame:
    """The last long host call (``host``: tid, start, end, name) on the launching thread that started before the
    launch and ended after the previous launch on the device: ``<prefix>_name``, ``<prefix>_dur``."""
    name, dur = f"{prefix}_name", f"{prefix}_dur"
    if host.is_empty() or inst.is_empty():
        return inst.with_columns(pl.lit(None, pl.Utf8).alias(name), pl.lit(None, pl.Int64).alias(dur))
    h = host.select(  # the thread ids as the launches have them (the frames' Int32, or a caller's Int64)
        pl.col("tid").cast(inst.schema["tid"]),
        pl.col("start").alias("_hs"),
        pl.col("end").alias("_he"),
        pl.col("name").alias("_hn"),
    ).sort("_hs")
    left = inst.with_columns((pl.col("l_start") - 1).alias("_before_launch"))
    has = left.filter(pl.col("_before_launch").is_not_null() & pl.col("tid").is_not_null()).sort("_before_launch")
    rest = left.filter(pl.col("_before_launch").is_null() | pl.col("tid").is_null())
    j = has.join_asof(
        h, left_on="_before_launch", right_on="_hs", by="tid", strategy="backward", check_sortedness=False
    )
    keep = pl.col("_he") > pl.coalesce(pl.col("prev_launch"), pl.lit(0))
    j = j.with_columns(
        pl.when(keep).then(pl.col("_hn")).otherwise(None).alias(name),
        pl.when(keep).then(pl.col("_he") - pl.col("_hs")).otherwise(None).alias(dur),
    ).drop("_hs", "_he", "_hn")
    rest = rest.with_columns(pl.lit(None, pl.Utf8).alias(name), pl.lit(None, pl.Int64).alias(dur))
    return pl.concat([j, rest], how="diagonal_relaxed").drop("_before_launch")


def summarize_rank(
    rank: int,
    kernels: pl.DataFrame,
    api: pl.DataFrame,
    nvtx: pl.DataFrame,
    steps: pl.DataFrame,
    os_calls: pl.DataFrame | None = None,
    offset_ns: int = 0,
    info: dict[str, object] | None = None,
    rules: list[OpRule] | None = None,
) -> RankSummary:
    """One rank's collectives, steps and NCCL NVTX ranges (frames as ``TraceFrames`` gives them; ``steps`` as
    ``find_steps(...).table``; ``os_calls``: long OS runtime calls with tid/start/end/name)."""
    notes: list[str] = []
    rules = rules if rules is not None else builtin_rules()
    k = kernels.select("start", "end", "deviceId", "streamId", "correlationId", "pid", "short", "name")
    k = k.with_columns(pl.col("short").fill_null(pl.col("name")), (pl.col("end") - pl.col("start")).alias("dur"))
    fam = classify(k["name"].unique().to_list(), rules, None)
    short_fam = classify(k["short"].unique().to_list(), rules, None)
    comm_names = set(fam.filter(pl.col("family") == "communication")["name"].to_list())
    comm_short = set(short_fam.filter(pl.col("family") == "communication")["name"].to_list())
    is_comm = pl.col("name").is_in(list(comm_names)) | pl.col("short").is_in(list(comm_short))
    k = k.with_columns(is_comm.alias("is_comm"))
    k = k.join(_unique_launches(api), on=["pid", "correlationId"], how="left")
    k = k.sort("deviceId", "start").with_columns(
        pl.col("end").cum_max().shift(1).over("deviceId").alias("prev_end"),
        pl.col("short").shift(1).over("deviceId").alias("prev_kernel"),
        pl.col("l_start").shift(1).over("deviceId").alias("prev_launch"),
    )
    merged = _merge_intervals(k.filter(~pl.col("is_comm")))
    inst = k.filter(pl.col("is_comm"))
    if inst.is_empty():
        notes.append(f"rank {rank}: no collective (NCCL or communication-family) kernels")
    op_of = dict(zip(short_fam["name"].to_list(), short_fam["op"].to_list(), strict=True))  # short name -> op label
    inst = _covered(inst, "start", merged, "_b0")
    inst = _covered(inst, "end", merged, "_b1").with_columns((pl.col("_b1") - pl.col("_b0")).alias("overlap"))
    channels = (
        inst.group_by("deviceId", "streamId")
        .agg(pl.col("start").min().alias("_first"))
        .sort("_first", "deviceId", "streamId")
        .with_row_index("channel")
        .select(pl.col("channel").cast(pl.Int64), "deviceId", "streamId")
    )
    inst = inst.join(channels, on=["deviceId", "streamId"], how="left").sort("start")
    inst = inst.with_columns(
        pl.int_range(pl.len()).over("channel", "short").cast(pl.Int64).alias("seq"),
        pl.coalesce("l_start", "start").alias("t_launch"),
        pl.col("short").replace_strict(op_of, default="collective").alias("op"),
    )
    if steps.height:
        inst = assign_to_steps(inst, steps.select("idx", "start", "end"), "t_launch").rename({"idx": "step"})
    else:
        inst = inst.with_columns(pl.lit(None, pl.Int64).alias("step"))
    inst = inst.sort("start").with_columns(
        pl.when(pl.col("step").is_not_null())
        .then(pl.int_range(pl.len()).over("step", "channel", "short"))
        .otherwise(None)
        .cast(pl.Int64)
        .alias("in_step")
    )
    host_api = api.filter(pl.col("dur") >= LONG_HOST_NS).select(call_column(api, "tid"), "start", "end", "name")
    host_api = host_api.filter(~pl.col("name").cast(pl.String).str.contains(LAUNCH_API.pattern))
    inst = _last_long_call(inst, host_api, "api")
    osc = os_calls if os_calls is not None else pl.DataFrame()
    if osc.height:
        osc = osc.filter(pl.col("dur") >= LONG_HOST_NS).select("tid", "start", "end", "name")
    inst = _last_long_call(inst, osc, "os")
    off = int(offset_ns)
    timed = ["start", "end", "l_start", "prev_end", "prev_launch"]
    inst = inst.with_columns((pl.col(c) + off).alias(c) for c in timed).sort("start")
    inst = inst.rename({"name": "_demangled"}).rename({"short": "name"})
    inst = inst.select(INSTANCE_COLUMNS).with_columns(
        pl.col(c).cast(pl.Int64)
        for c in INSTANCE_COLUMNS
        if c not in ("name", "op", "prev_kernel", "api_name", "os_name")
    )
    # steps, with the collective time of each
    st = steps
    if st.height:
        per = inst.filter(pl.col("step").is_not_null()).group_by("step").agg(pl.col("dur").sum().alias("nccl_time"))
        st = (
            st.select("idx", "kind", "start", "end", "wall", "gpu_time", "gpu_start", "gpu_end")
            .join(per.rename({"step": "idx"}), on="idx", how="left")
            .with_columns(
                pl.col("nccl_time").fill_null(0),
                *((pl.col(c) + off).alias(c) for c in ("start", "end", "gpu_start", "gpu_end")),
            )
            .with_columns((pl.col("gpu_time") - pl.col("nccl_time")).clip(lower_bound=0).alias("compute_time"))
        )
    else:
        st = pl.DataFrame(
            schema={
                "idx": pl.Int64,
                "kind": pl.Utf8,
                "start": pl.Int64,
                "end": pl.Int64,
                "wall": pl.Int64,
                "gpu_time": pl.Int64,
                "gpu_start": pl.Int64,
                "gpu_end": pl.Int64,
                "nccl_time": pl.Int64,
                "compute_time": pl.Int64,
            }
        )
    # NCCL NVTX ranges (host side: the time the call took to enqueue, or to block in a group)
    nv = nvtx.filter((pl.col("domain") == "NCCL") & pl.col("end").is_not_null() & pl.col("text").is_not_null())
    nv = nv.with_columns((pl.col("end") - pl.col("start")).alias("dur"))
    nv_sum = (
        nv.group_by("text")
        .agg(
            *duration_summary(),
        )
        .rename({"text": "name"})
        .sort(["total", "name"], descending=[True, False])
    )
    totals = {
        "kernels": k.height,
        "kernel_time": int(k["dur"].sum() or 0),
        "compute_time": int(k.filter(~pl.col("is_comm"))["dur"].sum() or 0),
        "compute_busy": int((merged["end"] - merged["start"]).sum() or 0) if merged.height else 0,
        "nccl_instances": inst.height,
        "nccl_time": int(inst["dur"].sum() or 0),
        "nccl_overlap": int(inst["overlap"].sum() or 0),
    }
    return RankSummary(rank, dict(info or {}), inst, st, nv_sum, totals, notes)
