"""The reduce: per-rank summaries aligned into skew, transfer, late ranks, spikes, overlap and imbalance."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

import polars as pl

from ...units import format_ns
from ..distribution import duration_summary, percentile, percentile_expr
from .align import align_ranks, step_period
from .findings import nccl_findings
from .prose import headline_of
from .rank import RankSummary
from .result import NcclResult

SPIKE_FACTOR = 5  # an instance is a spike when its skew is this many times the median skew ...
SPIKE_MIN_NS = 100_000  # ... and at least this long
IDLE_NS = 5_000  # a GPU gap before a launched kernel longer than this is waiting on a dependency


@dataclass(frozen=True)
class Reduction:
    """What the reduce measured across ranks, as the findings and the headline read it."""

    inst: pl.DataFrame  # every collective instance of every rank, with its wait and arrival delay
    complete: pl.DataFrame  # instances seen on every rank of their group: skew, transfer, the last rank
    late: dict[str, object]  # the late rank, its delay and the arrival skew percentiles
    worst: pl.DataFrame  # the instances with the largest skew
    steps_info: dict[str, object]  # skew spikes and the steps (and recurring pattern) that carry them
    matched: pl.DataFrame  # per collective name: matched instances, skew and transfer percentiles
    overlap: pl.DataFrame  # per rank: collective time overlapped with compute
    imbalance: pl.DataFrame  # per rank: own time, compute and waiting per step
    summaries: list[RankSummary]  # the ranks, in rank order

    def wait_per_rank(self) -> pl.DataFrame:
        """Waiting and collective kernel time per rank (rank, wait, dur), the rank that waits most first."""
        return (
            self.inst.group_by("rank")
            .agg(pl.col("wait").sum(), pl.col("dur").sum())
            .sort(["wait", "rank"], descending=[True, False])
        )


def analyze(summaries: list[RankSummary], top: int = 12) -> NcclResult:
    """Match collective instances across ranks and split their time into waiting and moving."""
    notes: list[str] = [n for s in summaries for n in s.notes]
    summaries = sorted(summaries, key=lambda s: s.rank)
    ranks_all = [s.rank for s in summaries]
    frames = [s.instances.with_columns(pl.lit(s.rank, pl.Int64).alias("rank")) for s in summaries if s.instances.height]
    if not frames:
        empty = pl.DataFrame()
        return NcclResult(
            [_rank_info(s) for s in summaries],
            empty,
            empty,
            _nvtx_table(summaries),
            {},
            empty,
            {},
            empty,
            empty,
            [],
            ["no collective kernels in any rank"],
            notes,
        )
    inst = pl.concat(frames, how="vertical_relaxed")
    inst, groups, corrections = align_ranks(inst, notes, {s.rank: s.info.get("host") for s in summaries})
    if corrections:
        fix = pl.col("rank").replace_strict(corrections, default=0, return_dtype=pl.Int64)
        inst = inst.with_columns(
            (pl.col(c) + fix).alias(c) for c in ("start", "end", "l_start", "prev_end", "prev_launch")
        )
    size = {g["group"]: len(g["ranks"]) for g in groups}  # type: ignore[arg-type]
    inst = inst.with_columns(pl.col("group").replace_strict(size, return_dtype=pl.Int64).alias("gsize"))
    key = ["channel", "name", "group", "cseq"]
    ctx_cols = ["l_start", "prev_end", "prev_kernel", "prev_launch", "api_name", "api_dur", "os_name", "os_dur"]
    per = (
        inst.sort("start")
        .group_by(key)
        .agg(
            pl.len().alias("n"),
            pl.col("gsize").first(),
            pl.col("op").first(),
            pl.col("seq").first().alias("ref_seq"),
            pl.col("start").first().alias("start_min"),
            pl.col("start").last().alias("start_max"),
            pl.col("start").sum().alias("start_sum"),
            pl.col("rank").first().alias("first_rank"),
            pl.col("rank").last().alias("last_rank"),
            pl.col("dur").last().alias("transfer"),
            pl.col("dur").max().alias("dur_max"),
            pl.col("end").max().alias("end_max"),
            pl.col("step").last().alias("step"),
            pl.col("in_step").last().alias("in_step"),
            pl.col("start").last().alias("late_start"),
            *(pl.col(c).last().alias(f"late_{c}") for c in ctx_cols),
        )
        .with_columns((pl.col("start_max") - pl.col("start_min")).alias("skew"))
    )
    complete = per.filter((pl.col("n") == pl.col("gsize")) & (pl.col("gsize") >= 2))
    partial = per.height - complete.height - per.filter(pl.col("gsize") < 2).height
    # collectives that began before every rank had started (processes or captures started apart) measure start-up,
    # not skew: a rank's start is its earliest known activity (a launch or kernel before its first collective)
    first = inst.group_by("rank").agg(pl.min_horizontal("prev_launch", "l_start", "start").min().alias("first"))
    all_started = first["first"].max() if first.height >= 2 else None
    if all_started is not None:
        early = complete.filter(pl.col("start_min") < all_started)
        if early.height:
            complete = complete.filter(pl.col("start_min") >= all_started)
            notes.append(
                f"{early.height} collective instances began before every rank had started "
                "and are left out of the skew statistics (start-up, not skew)"
            )
    if partial:
        notes.append(f"{partial} collective instances were not seen on every rank of their group (trace edges)")
    inst = inst.join(complete.select(*key, "start_max", "n"), on=key, how="left")
    inst = inst.with_columns(
        pl.when(pl.col("start_max").is_not_null())
        .then(pl.min_horizontal((pl.col("start_max") - pl.col("start")).clip(lower_bound=0), pl.col("dur")))
        .otherwise(0)
        .alias("wait"),
        pl.col("start_max").is_not_null().alias("matched"),
    )
    # arrival delay of each rank against the mean arrival of the others
    inst = inst.join(complete.select(*key, "start_sum"), on=key, how="left").with_columns(
        pl.when(pl.col("n") >= 2)
        .then(pl.col("start") - (pl.col("start_sum") - pl.col("start")) / (pl.col("n") - 1))
        .otherwise(None)
        .alias("delay")
    )
    collectives = (
        inst.group_by("name", "op", "rank")
        .agg(
            *duration_summary(),
            pl.col("wait").sum().alias("wait"),
            pl.col("matched").sum().alias("_m"),
        )
        .with_columns(pl.when(pl.col("_m") > 0).then(pl.col("wait") / pl.col("total")).alias("wait_share"))
        .drop("_m")
        .sort(["total", "rank"], descending=[True, False])
    )
    order = (
        collectives.group_by("name")
        .agg(pl.col("total").sum().alias("_t"))
        .sort(["_t", "name"], descending=[True, False])
    )
    collectives = (
        collectives.join(order, on="name").sort(["_t", "name", "rank"], descending=[True, False, False]).drop("_t")
    )
    last_counts = (
        complete.group_by("name", "last_rank")
        .agg(pl.len().alias("_c"))
        .sort(["_c", "name", "last_rank"], descending=[True, False, False])
    )
    matched = (
        complete.group_by("name", "op")
        .agg(
            pl.len().cast(pl.Int64).alias("instances"),
            percentile_expr("skew", 50).alias("skew_p50"),
            percentile_expr("skew", 99).alias("skew_p99"),
            pl.col("skew").max().alias("skew_max"),
            percentile_expr("transfer", 50).alias("transfer_p50"),
            percentile_expr("transfer", 99).alias("transfer_p99"),
            pl.col("skew").sum().alias("skew_total"),
        )
        .join(
            last_counts.group_by("name").agg(
                pl.col("last_rank").first().alias("most_last_rank"), pl.col("_c").first().alias("most_last_count")
            ),
            on="name",
            how="left",
        )
    )
    wait_by_name = inst.group_by("name").agg(pl.col("wait").sum().alias("_w"), pl.col("dur").sum().alias("_d"))
    matched = (
        matched.join(wait_by_name, on="name", how="left")
        .with_columns((pl.col("_w") / pl.col("_d")).alias("wait_share"))
        .drop("_w", "_d")
        .join(order, on="name", how="left")
        .sort(["_t", "name"], descending=[True, False])
        .drop("_t")
    )
    late = _late(inst, complete, ranks_all)
    worst = _worst(complete, top)
    steps_info = _steps(complete)
    overlap = _overlap(summaries)
    imbalance = _imbalance(summaries, inst)
    rank_rows = _rank_rows(summaries, inst, late, overlap)
    reduction = Reduction(inst, complete, late, worst, steps_info, matched, overlap, imbalance, summaries)
    findings = nccl_findings(reduction)
    headline = headline_of(reduction)
    if len(summaries) < 2:
        notes.append("one rank: arrival skew needs every rank's trace (several traces, a directory, or one report)")
    return NcclResult(
        rank_rows,
        collectives,
        matched,
        _nvtx_table(summaries),
        late,
        worst,
        steps_info,
        overlap,
        imbalance,
        findings,
        headline,
        notes,
        groups,
    )


def _rank_info(s: RankSummary) -> dict[str, object]:
    return {"rank": s.rank, **s.info}


def _nvtx_table(summaries: list[RankSummary]) -> pl.DataFrame:
    parts = [s.nvtx.with_columns(pl.lit(s.rank, pl.Int64).alias("rank")) for s in summaries if s.nvtx.height]
    if not parts:
        return pl.DataFrame(
            schema={"name": pl.Utf8, "rank": pl.Int64, "count": pl.Int64, "total": pl.Int64, "p50": pl.Int64}
        )
    return pl.concat(parts, how="vertical_relaxed").select("name", "rank", "count", "total", "p50", "p99", "max")


def _late(inst: pl.DataFrame, complete: pl.DataFrame, ranks: list[int]) -> dict[str, object]:
    n = complete.height
    if n == 0:
        return {"instances": 0, "late_rank": None, "per_rank": []}
    last = complete.group_by("last_rank").agg(
        pl.len().alias("last"), pl.col("skew").sum().alias("skew_when_last"), percentile_expr("skew", 50).alias("p50")
    )
    delay = (
        inst.filter(pl.col("delay").is_not_null())
        .group_by("rank")
        .agg(pl.col("delay").median().alias("delay_p50"), pl.col("wait").sum().alias("wait"))
    )
    rows: list[dict[str, Any]] = []
    for r in ranks:
        lr = last.filter(pl.col("last_rank") == r)
        dr = delay.filter(pl.col("rank") == r)
        rows.append(
            {
                "rank": r,
                "last": int(lr["last"][0]) if lr.height else 0,
                "last_share": (int(lr["last"][0]) / n) if lr.height else 0.0,
                "skew_when_last_ns": int(lr["skew_when_last"][0]) if lr.height else 0,
                "skew_p50_when_last_ns": int(lr["p50"][0]) if lr.height else None,
                "arrival_delay_p50_ns": float(dr["delay_p50"][0]) if dr.height else None,
            }
        )
    total_skew = sum(row["skew_when_last_ns"] for row in rows) or 1
    for row in rows:
        row["skew_share"] = row["skew_when_last_ns"] / total_skew
    # the late rank: the one most often last, ties broken by the skew it causes
    late_rank = max(rows, key=lambda row: (row["last"], row["skew_when_last_ns"]))
    return {
        "instances": n,
        "skew_p50_ns": percentile(complete["skew"].drop_nulls(), 50),
        "skew_p99_ns": percentile(complete["skew"].drop_nulls(), 99),
        "skew_max_ns": int(complete["skew"].max()),  # type: ignore[arg-type]
        "skew_total_ns": int(complete["skew"].sum()),
        "late_rank": late_rank["rank"],
        "late_rank_last": late_rank["last"],
        "late_rank_share": late_rank["last_share"],
        "late_rank_delay_p50_ns": late_rank["arrival_delay_p50_ns"],
        "per_rank": rows,
    }


def _cause(row: dict[str, object]) -> str:
    """Why the last rank came late: ``host`` (its GPU sat idle until the host launched the collective), ``gpu``
    (earlier kernels on its GPU ran until the collective could start), ``dependency`` (its GPU sat idle although
    the collective was already launched: waiting on another stream or event, or inside a CUDA graph)."""
    start, prev_end, l_start = row.get("late_start"), row.get("late_prev_end"), row.get("late_l_start")
    if start is None or prev_end is None:
        return "unknown"
    idle = int(start) - int(prev_end)  # type: ignore[call-overload]
    if idle > 0 and (l_start is None or int(l_start) >= int(prev_end)):  # type: ignore[call-overload]
        return "host"
    if idle > IDLE_NS:
        return "dependency"
    return "gpu"


def _before_text(row: dict[str, object]) -> str:
    """What the late rank did just before: GPU idle time, time between launches, long host calls."""
    parts = []
    start, prev_end = row.get("late_start"), row.get("late_prev_end")
    if start is not None and prev_end is not None:
        idle = int(start) - int(prev_end)  # type: ignore[call-overload]
        if idle > 0:
            parts.append(f"GPU idle {format_ns(idle)}")
        else:
            parts.append(f"GPU busy to the start ({row.get('late_prev_kernel') or 'previous kernel'})")
    l_start, prev_launch = row.get("late_l_start"), row.get("late_prev_launch")
    if l_start is not None and prev_launch is not None:
        parts.append(f"launched {format_ns(int(l_start) - int(prev_launch))} after the previous kernel")  # type: ignore[call-overload]
    if row.get("late_api_name"):
        parts.append(f"{_api(str(row['late_api_name']))} {format_ns(row.get('late_api_dur'))}")  # type: ignore[arg-type]
    if row.get("late_os_name"):
        parts.append(f"{row['late_os_name']} {format_ns(row.get('late_os_dur'))}")  # type: ignore[arg-type]
    return "; ".join(parts) or "-"


def _api(name: str) -> str:
    return re.sub(r"(_v\d+)+$", "", name)


def _worst(complete: pl.DataFrame, top: int) -> pl.DataFrame:
    w = complete.sort(["skew", "name", "cseq"], descending=[True, False, False]).head(max(0, top))
    rows = w.to_dicts()
    for r in rows:
        r["cause"] = _cause(r)
        r["before"] = _before_text(r)
        r["gpu_idle_before"] = (
            max(0, int(r["late_start"]) - int(r["late_prev_end"])) if r.get("late_prev_end") is not None else None
        )
    cols = [
        "name",
        "op",
        "cseq",
        "step",
        "in_step",
        "last_rank",
        "first_rank",
        "skew",
        "transfer",
        "dur_max",
        "start_min",
        "gpu_idle_before",
        "cause",
        "before",
        "late_prev_kernel",
        "late_api_name",
        "late_api_dur",
        "late_os_name",
        "late_os_dur",
    ]
    if not rows:  # top = 0, or nothing matched: the same columns, no rows
        return pl.DataFrame(schema={c: pl.Utf8 for c in cols}).rename({"cseq": "index"})
    return pl.DataFrame(rows, infer_schema_length=None).select(cols).rename({"cseq": "index"})


def _steps(complete: pl.DataFrame) -> dict[str, object]:
    if complete.is_empty():
        return {"top": [], "spikes": 0, "pattern": None}
    p50 = percentile(complete["skew"].drop_nulls(), 50) or 0
    threshold = max(SPIKE_FACTOR * p50, SPIKE_MIN_NS)
    spikes = complete.filter(pl.col("skew") >= threshold)
    in_steps = complete.filter(pl.col("step").is_not_null())
    per = (
        in_steps.group_by("step")
        .agg(
            pl.len().alias("instances"),
            pl.col("skew").sum().alias("skew_total"),
            pl.col("skew").max().alias("skew_max"),
            (pl.col("skew") >= threshold).sum().alias("spikes"),
        )
        .sort(["skew_total", "step"], descending=[True, False])
    )
    spike_steps = sorted(set(int(s) for s in spikes["step"].drop_nulls().to_list()))
    return {
        "spike_threshold_ns": int(threshold),
        "spikes": spikes.height,
        "spike_steps": spike_steps,
        "spikes_outside_steps": int(spikes["step"].null_count()),
        "top": per.head(8).to_dicts(),
        "pattern": step_period(spikes),
        "steps_with_collectives": per.height,
    }


def _overlap(summaries: list[RankSummary]) -> pl.DataFrame:
    rows = []
    for s in summaries:
        t = s.totals
        nccl, ov = t.get("nccl_time", 0), t.get("nccl_overlap", 0)
        rows.append(
            {
                "rank": s.rank,
                "nccl_time": nccl,
                "overlapped": ov,
                "exposed": nccl - ov,
                "overlap_share": ov / nccl if nccl else None,
                "kernel_time": t.get("kernel_time", 0),
                "nccl_share_of_kernel_time": nccl / t["kernel_time"] if t.get("kernel_time") else None,
            }
        )
    return pl.DataFrame(rows, infer_schema_length=None)


def _imbalance(summaries: list[RankSummary], inst: pl.DataFrame) -> pl.DataFrame:
    """Per rank, means over its steps, on the GPU: the span of the step's kernels, compute (non-collective kernel
    time), collective time, waiting in collectives, own time (span minus waiting) and GPU idle time in the span;
    plus the host step time (the step ranges themselves)."""
    waits = (
        inst.filter(pl.col("step").is_not_null())
        .group_by("rank", "step")
        .agg(pl.col("wait").sum().alias("wait"))
        .rename({"step": "idx"})
    )
    rows: list[dict[str, object]] = []
    for s in summaries:
        st = s.steps
        if st.is_empty():
            rows.append({"rank": s.rank, "steps": 0})
            continue
        w = waits.filter(pl.col("rank") == s.rank).drop("rank")
        st = st.join(w, on="idx", how="left").with_columns(pl.col("wait").fill_null(0))
        span = pl.coalesce(pl.col("gpu_end") - pl.col("gpu_start"), pl.col("wall"))
        st = st.with_columns(span.alias("span")).with_columns(
            (pl.col("span") - pl.col("wait")).alias("own"),
            (pl.col("span") - pl.col("gpu_time")).clip(lower_bound=0).alias("idle"),
        )
        rows.append(
            {
                "rank": s.rank,
                "steps": st.height,
                "step_time_mean": float(st["wall"].mean()),  # type: ignore[arg-type]
                "gpu_span_mean": float(st["span"].mean()),  # type: ignore[arg-type]
                "gpu_span_p50": percentile(st["span"].drop_nulls(), 50),
                "compute_mean": float(st["compute_time"].mean()),  # type: ignore[arg-type]
                "nccl_mean": float(st["nccl_time"].mean()),  # type: ignore[arg-type]
                "wait_mean": float(st["wait"].mean()),  # type: ignore[arg-type]
                "own_mean": float(st["own"].mean()),  # type: ignore[arg-type]
                "idle_mean": float(st["idle"].mean()),  # type: ignore[arg-type]
            }
        )
    return pl.DataFrame(rows, infer_schema_length=None)


def _rank_rows(
    summaries: list[RankSummary], inst: pl.DataFrame, late: dict[str, object], overlap: pl.DataFrame
) -> list[dict[str, object]]:
    late_rows = late.get("per_rank")
    per_rank = {r["rank"]: r for r in late_rows if isinstance(r, dict)} if isinstance(late_rows, list) else {}
    sums = {
        int(r["rank"]): r
        for r in inst.group_by("rank")
        .agg(
            pl.len().alias("n"),
            pl.col("dur").sum().alias("dur"),
            pl.col("wait").sum().alias("wait"),
            pl.col("matched").sum().alias("matched"),
        )
        .iter_rows(named=True)
    }
    out = []
    for s in summaries:
        mine = sums.get(s.rank, {"n": 0, "dur": 0, "wait": 0, "matched": 0})
        nccl, wait, matched = int(mine["dur"] or 0), int(mine["wait"] or 0), int(mine["matched"] or 0)
        lr = per_rank.get(s.rank, {})
        out.append(
            {
                **_rank_info(s),
                "collectives": int(mine["n"]),
                "nccl_time": nccl,
                "matched": matched,
                "wait": wait if matched else None,
                "moving": nccl - wait if matched else None,
                "wait_share": wait / nccl if nccl and matched else None,
                "last": lr.get("last", 0),
                "last_share": lr.get("last_share", 0.0),
                "arrival_delay_p50_ns": lr.get("arrival_delay_p50_ns"),
                "kernels": s.totals.get("kernels", 0),
            }
        )
    return out
