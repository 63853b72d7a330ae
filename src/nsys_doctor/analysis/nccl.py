"""Collectives across ranks: waiting versus moving, the late rank, and what it was doing.

A collective kernel (NCCL's ``nccl*`` kernels, and every kernel the op rules put in the ``communication`` family,
such as custom all-reduce kernels) cannot finish before the last rank has arrived: on the ranks that came early it
spins. So the duration of one instance on one rank is *waiting* (from its start to the last rank's start) plus
*moving* (the transfer, which is the duration on the last-arriving rank). The analysis:

1. ``summarize_rank`` (per rank, pure): the rank's collective instances in order per channel (device and stream,
   numbered by first use) and kernel name, on the common timeline (the rank's ``offset_ns`` added); for each, the
   step it belongs to, its position in the step, its overlap with compute kernels on the same device, and what the
   rank did just before (GPU idle time, time between the host's launches, long CUDA API and OS calls on the
   launching thread). Plus per-step times and the NCCL NVTX ranges. Small: one row per collective.
2. ``analyze`` (the reduce, pure): instances matched across ranks by order per channel and name. Sequences are
   aligned by their end times (every rank's kernel of one collective ends within microseconds), which also finds
   traces that start a few collectives apart and ranks that belong to different communicators; a constant clock
   difference between hosts is detected and corrected the same way. Per instance: arrival skew (latest start minus
   earliest start), transfer (duration on the last rank), the last rank and its context; per rank: waiting share,
   how often it is last, its median arrival delay; worst instances with their step; steps carrying the big skews
   and their period; communication/compute overlap; per-rank step time and work; findings.

Durations are integer nanoseconds. Percentiles are nearest-rank (``distribution.py``).
"""

from __future__ import annotations

import itertools
import re
from collections import Counter
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import polars as pl

from .. import JSON_SCHEMA
from ..units import format_ns
from .distribution import percentile_expr
from .findings import CATALOGUE, SEVERITY_ORDER
from .ops import OpRule, builtin_rules, classify
from .phases import LAUNCH_API, assign_to_steps, calls

if TYPE_CHECKING:
    from .diagnosis import Diagnosis

LONG_HOST_NS = 50_000  # CUDA API / OS calls at least this long are named as what a late rank was doing
END_TOLERANCE_NS = 50_000  # ends of one collective on different ranks are this close (NVLink: ~1 us)
MIN_ALIGNED_SHARE = 0.5  # share of a rank's instances that must line up with the reference to share a group
SPIKE_FACTOR = 5  # an instance is a spike when its skew is this many times the median skew ...
SPIKE_MIN_NS = 100_000  # ... and at least this long
IDLE_NS = 5_000  # a GPU gap before a launched kernel longer than this is waiting on a dependency

# Finding ids raised here: id -> (title, action). Registered in the finding catalogue by the project.
NCCL_CATALOGUE = {k: CATALOGUE[k] for k in ("nccl-rank-skew", "nccl-not-overlapped", "rank-imbalance")}

# --------------------------------------------------------------------------------------------- per-rank summary


@dataclass
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
    launches = calls(api, LAUNCH_API).sort("start")
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
    h = host.select(
        pl.col("tid"), pl.col("start").alias("_hs"), pl.col("end").alias("_he"), pl.col("name").alias("_hn")
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
    host_api = api.filter(pl.col("dur") >= LONG_HOST_NS).select("tid", "start", "end", "name")
    host_api = host_api.filter(~pl.col("name").str.contains(LAUNCH_API.pattern))
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
            pl.len().cast(pl.Int64).alias("count"),
            pl.col("dur").sum().alias("total"),
            percentile_expr("dur", 50).alias("p50"),
            percentile_expr("dur", 99).alias("p99"),
            pl.col("dur").max().alias("max"),
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


# ------------------------------------------------------------------------------------------------ the reduce


@dataclass
class NcclResult:
    ranks: list[dict[str, object]]  # rank info and per-rank figures
    collectives: pl.DataFrame  # per name and rank: count, total, p50, p99, max, wait, wait_share
    matched: pl.DataFrame  # per name: instances, skew p50/p99/max, transfer p50/p99, waiting share, last rank
    nvtx: pl.DataFrame  # per NVTX name and rank
    late: dict[str, object]  # the late rank and per-rank lateness
    worst: pl.DataFrame  # worst instances by skew, with the late rank's context
    steps: dict[str, object]  # steps carrying the big skews, recurring pattern
    overlap: pl.DataFrame  # per rank: nccl_time, overlapped, exposed, shares
    imbalance: pl.DataFrame  # per rank: steps, mean step time, compute, waiting, work per step
    findings: list[dict[str, object]]
    headline: list[str]
    notes: list[str] = field(default_factory=list)
    groups: list[dict[str, object]] = field(default_factory=list)

    def to_dict(self) -> dict[str, object]:
        return {
            "schema": JSON_SCHEMA,
            "kind": "nccl",
            "ranks": self.ranks,
            "headline": self.headline,
            "findings": self.findings,
            "collectives": self.collectives.to_dicts(),
            "matched": self.matched.to_dicts(),
            "nvtx": self.nvtx.to_dicts(),
            "late": self.late,
            "worst": self.worst.to_dicts(),
            "steps": self.steps,
            "overlap": self.overlap.to_dicts(),
            "imbalance": self.imbalance.to_dicts(),
            "groups": self.groups,
            "notes": self.notes,
        }


def finding(fid: str, severity: str, summary: str, evidence: dict[str, object]) -> dict[str, object]:
    """A finding as the report schema writes it (id, severity, title, summary, evidence, action)."""
    title, action = NCCL_CATALOGUE[fid]
    return {"id": fid, "severity": severity, "title": title, "summary": summary, "evidence": evidence, "action": action}


def _mode(values: list[int]) -> int:
    return Counter(values).most_common(1)[0][0]


def _align(
    inst: pl.DataFrame, notes: list[str], hosts: dict[int, object] | None = None
) -> tuple[pl.DataFrame, list[dict[str, object]], dict[int, int]]:
    """Per channel and name: groups of ranks whose sequences line up, and each rank's sequence offset.

    Returns the instances with ``group`` and ``cseq`` (the sequence number in the group's reference rank), the
    groups, and per-rank clock corrections (ns to add) found on the way. A steady end-time difference is taken
    for a clock difference only between ranks of different hosts (``hosts``: rank -> host name; ranks of one
    host share its clock, so there it means another communicator)."""
    hosts = hosts or {}
    parts: list[pl.DataFrame] = []
    groups: list[dict[str, object]] = []
    clock: dict[int, list[int]] = {}
    gid = 0
    for (channel, name), g in inst.group_by("channel", "name", maintain_order=True):
        remaining = sorted(set(g["rank"].to_list()))
        while remaining:
            ref = remaining[0]
            r = g.filter(pl.col("rank") == ref).select(pl.col("seq").alias("_rseq"), pl.col("end").alias("_rend"))
            r = r.sort("_rend")
            gaps = r["_rend"].diff().drop_nulls()
            spacing = int(gaps.median()) if gaps.len() else END_TOLERANCE_NS * 2  # type: ignore[arg-type]
            tol = max(2_000, min(END_TOLERANCE_NS, spacing // 2))
            members = {ref: 0}
            others = g.filter(pl.col("rank").is_in(remaining[1:]))
            if others.height:
                j = others.select("rank", "seq", "end").sort("end")
                j = j.join_asof(r, left_on="end", right_on="_rend", strategy="nearest")
                j = j.with_columns(
                    (pl.col("seq") - pl.col("_rseq")).alias("_d"), (pl.col("end") - pl.col("_rend")).abs().alias("_e")
                )
                ok = pl.col("_e") <= tol
                stats = (
                    j.group_by("rank")
                    .agg(
                        pl.len().alias("_n"),
                        ok.sum().alias("_ok"),
                        pl.col("_d").filter(ok).mode().min().alias("_mode"),
                    )
                    .sort("rank")
                )
                need = pl.max_horizontal(pl.lit(1.0), MIN_ALIGNED_SHARE * pl.min_horizontal("_n", pl.lit(r.height)))
                aligned = stats.filter(pl.col("_ok") >= need)
                members.update({int(k): int(d) for k, d in aligned.select("rank", "_mode").iter_rows()})
                for (rk,) in stats.filter(pl.col("_ok") < need).select("rank").iter_rows():
                    # not lined up by end times: a constant clock difference shows as a steady end difference
                    h_r, h_ref = hosts.get(int(rk)), hosts.get(ref)
                    if h_r is not None and h_r == h_ref:
                        continue
                    fit = _clock_fit(j.filter(pl.col("rank") == rk).sort("seq"), r.sort("_rseq"), tol)
                    if fit is not None:
                        members[int(rk)] = 0
                        clock.setdefault(int(rk), []).append(fit)
            offsets = pl.DataFrame(
                {"rank": list(members), "_off": list(members.values())}, schema={"rank": pl.Int64, "_off": pl.Int64}
            )
            parts.append(
                g.join(offsets, on="rank", how="inner")
                .with_columns(pl.lit(gid).alias("group"), (pl.col("seq") - pl.col("_off")).alias("cseq"))
                .drop("_off")
            )
            groups.append(
                {
                    "group": gid,
                    "channel": int(channel),  # type: ignore[arg-type]
                    "name": name,
                    "ranks": sorted(members),
                    "reference_rank": ref,
                    "sequence_offsets": {str(k): v for k, v in sorted(members.items()) if v},
                }
            )
            gid += 1
            remaining = [x for x in remaining if x not in members]
    split = {}
    for g in groups:
        split.setdefault((g["channel"], g["name"]), []).append(g["ranks"])
    for (channel, name), sets in split.items():
        if len(sets) > 1:
            notes.append(
                f"{_short_op(str(name))} on collective stream #{channel}: rank groups "
                + " | ".join(",".join(map(str, x)) for x in sets)
                + " do not finish their instances together, so they are matched separately (different "
                "communicators, or traces of different runs)"
            )
    corrections = {rk: int(sorted(v)[len(v) // 2]) for rk, v in clock.items()}
    for rk, c in corrections.items():
        notes.append(
            f"rank {rk}: collective ends differ from the reference rank by a steady {format_ns(c)}: its clock was "
            "corrected by that much (sessions on hosts whose clocks differ)"
        )
    out = pl.concat(parts) if parts else inst.with_columns(pl.lit(0).alias("group"), pl.col("seq").alias("cseq"))
    return out, groups, corrections


def _clock_fit(other: pl.DataFrame, ref: pl.DataFrame, tol: int) -> int | None:
    """The steady end-time difference of two sequences matched by order (None when it is not steady)."""
    n = min(other.height, ref.height)
    if n < 3 or other.height != ref.height:
        return None
    d = other["end"].head(n) - ref["_rend"].head(n)
    q1, q3 = d.quantile(0.25), d.quantile(0.75)
    if q1 is None or q3 is None or q3 - q1 > tol:
        return None
    return -int(d.median())  # type: ignore[arg-type]


def _pct(values: pl.Series, p: int) -> int | None:
    v = values.drop_nulls().sort()
    if v.is_empty():
        return None
    return int(v[max(1, (v.len() * p + 99) // 100) - 1])


def _period(spikes: pl.DataFrame) -> dict[str, object] | None:
    """A step period among the spikes of one collective position: the most common step difference."""
    best: dict[str, object] | None = None
    if spikes.is_empty():
        return None
    for (name, in_step), g in spikes.filter(pl.col("step").is_not_null()).group_by("name", "in_step"):
        steps = sorted(set(int(s) for s in g["step"].to_list()))
        if len(steps) < 3:
            continue
        diffs = [b - a for a, b in itertools.pairwise(steps)]
        d, count = Counter(diffs).most_common(1)[0]
        if d <= 0 or count < 2:
            continue
        phase = _mode([s % d for s in steps])
        hits = [s for s in steps if s % d == phase]
        if len(hits) < 3:
            continue
        cand = {
            "name": name,
            "in_step": int(in_step) if in_step is not None else None,  # type: ignore[arg-type]
            "every_steps": d,
            "first_step": hits[0],
            "steps": hits,
            "spikes": len(hits),
            "spikes_total": spikes.height,
        }
        if best is None or len(hits) > best["spikes"]:  # type: ignore[operator]
            best = cand
    return best


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
    inst, groups, corrections = _align(inst, notes, {s.rank: s.info.get("host") for s in summaries})
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
            pl.len().cast(pl.Int64).alias("count"),
            pl.col("dur").sum().alias("total"),
            percentile_expr("dur", 50).alias("p50"),
            percentile_expr("dur", 99).alias("p99"),
            pl.col("dur").max().alias("max"),
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
    findings = _findings(inst, complete, late, worst, steps_info, overlap, imbalance, summaries)
    headline = _headline(inst, complete, late, worst, steps_info, matched, len(summaries))
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
    rows = []
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
    total_skew = sum(r["skew_when_last_ns"] for r in rows) or 1  # type: ignore[misc]
    for r in rows:
        r["skew_share"] = r["skew_when_last_ns"] / total_skew  # type: ignore[operator]
    # the late rank: the one most often last, ties broken by the skew it causes
    late_rank = max(rows, key=lambda r: (r["last"], r["skew_when_last_ns"]))
    return {
        "instances": n,
        "skew_p50_ns": _pct(complete["skew"], 50),
        "skew_p99_ns": _pct(complete["skew"], 99),
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
            max(0, int(r["late_start"]) - int(r["late_prev_end"]))  # type: ignore[call-overload]
            if r.get("late_prev_end") is not None
            else None
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
    p50 = _pct(complete["skew"], 50) or 0
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
        "pattern": _period(spikes),
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
    rows = []
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
                "gpu_span_p50": _pct(st["span"], 50),
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
    per_rank = {r["rank"]: r for r in late.get("per_rank", [])}  # type: ignore[union-attr]
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


# ------------------------------------------------------------------------------------------------- findings


def _findings(
    inst: pl.DataFrame,
    complete: pl.DataFrame,
    late: dict[str, object],
    worst: pl.DataFrame,
    steps_info: dict[str, object],
    overlap: pl.DataFrame,
    imbalance: pl.DataFrame,
    summaries: list[RankSummary],
) -> list[dict[str, object]]:
    out: list[dict[str, object]] = []
    total = int(inst["dur"].sum() or 0)
    wait = int(inst["wait"].sum() or 0)
    share = wait / total if total else 0.0
    per_rank_wait = (
        inst.group_by("rank")
        .agg(pl.col("wait").sum(), pl.col("dur").sum())
        .sort(["wait", "rank"], descending=[True, False])
    )
    step_frac = None
    if imbalance.height and "wait_mean" in imbalance.columns:
        im = imbalance.filter(pl.col("steps") > 0)
        if im.height:
            worst_wait = im.sort(["wait_mean", "rank"], descending=[True, False]).row(0, named=True)
            step_frac = worst_wait["wait_mean"] / worst_wait["gpu_span_mean"] if worst_wait["gpu_span_mean"] else None
    if complete.height and share >= 0.3:
        sev = "warning"
        if share >= 0.5 and (step_frac is None or step_frac >= 0.2):
            sev = "critical"
        elif step_frac is not None and step_frac < 0.05:
            sev = "info"
        lr = late["late_rank"]
        waiter = per_rank_wait.row(0, named=True)
        items = []
        for r in worst.head(5).iter_rows(named=True):
            where = f"step {r['step']} #{r['in_step']}" if r["step"] is not None else "outside steps"
            items.append(
                f"{_short_op(r['name'])} {r['index']} ({where}) {format_ns(r['skew'])}, rank {r['last_rank']} last"
            )
        pattern = steps_info.get("pattern")
        ptxt = f"; {_pattern_text(pattern, steps_info)}" if isinstance(pattern, dict) else ""
        summary = (
            f"rank {lr} arrives last in {_late_by_name(complete, lr)} (median "  # type: ignore[arg-type]
            f"{format_ns(late.get('late_rank_delay_p50_ns'))} after the others); {100 * share:.0f}% of all "  # type: ignore[arg-type]
            "collective kernel time is waiting "
            f"(rank {waiter['rank']}: {format_ns(waiter['wait'])} of {format_ns(waiter['dur'])}, "
            f"{100 * waiter['wait'] / max(waiter['dur'], 1):.0f}%); arrival skew p50 "
            f"{format_ns(late.get('skew_p50_ns'))}, max {format_ns(late.get('skew_max_ns'))}; worst: "  # type: ignore[arg-type]
            + "; ".join(items)
            + ptxt
        )
        out.append(
            finding(
                "nccl-rank-skew",
                sev,
                summary,
                {
                    "late_rank": lr,
                    "late_rank_last": late["late_rank_last"],
                    "instances": late["instances"],
                    "waiting_share": round(share, 4),
                    "waiting_ns": wait,
                    "collective_ns": total,
                    "wait_per_step_share": None if step_frac is None else round(step_frac, 4),
                    "per_rank_waiting": per_rank_wait.to_dicts(),
                    "skew_p50_ns": late.get("skew_p50_ns"),
                    "worst": worst.head(5)
                    .select("name", "index", "step", "in_step", "last_rank", "skew", "transfer")
                    .to_dicts(),
                    "pattern": pattern,
                },
            )
        )
    # communication that does not overlap compute
    if overlap.height:
        ov = overlap.filter(pl.col("nccl_time") > 0)
        heavy = ov.filter((pl.col("nccl_share_of_kernel_time") >= 0.1) & (pl.col("overlap_share") < 0.2))
        if heavy.height:
            step_share = {}
            for s in summaries:
                if s.steps.height:
                    wall = int(s.steps["wall"].sum() or 0)
                    exposed = int(
                        (s.instances.filter(pl.col("step").is_not_null())["dur"].sum() or 0)
                        - (s.instances.filter(pl.col("step").is_not_null())["overlap"].sum() or 0)
                    )
                    # the GPU span of the steps when it is longer than their host span (graphed steps: the host
                    # runs ahead), and never more than all of it
                    span = (
                        int((s.steps["gpu_end"] - s.steps["gpu_start"]).clip(lower_bound=0).sum() or 0)
                        if ("gpu_end" in s.steps.columns and "gpu_start" in s.steps.columns)
                        else 0
                    )
                    basis = max(wall, span)
                    step_share[s.rank] = min(1.0, exposed / basis) if basis else None
            moving = inst.group_by("rank").agg(
                (pl.col("dur") - pl.col("wait")).filter(pl.col("matched")).sum().alias("moving"),
                pl.col("matched").sum().alias("matched"),
            )
            rows = heavy.join(moving, on="rank", how="left").sort(["exposed", "rank"], descending=[True, False])
            top = rows.row(0, named=True)
            known = bool(top["matched"])
            moving_share = top["moving"] / top["nccl_time"] if top["nccl_time"] and known else 1.0
            shares = [v for v in step_share.values() if v is not None]
            sev = "warning" if shares and max(shares) * moving_share >= 0.05 else "info"
            split = (
                f"; of the exposed time on rank {top['rank']}, {100 * moving_share:.0f}% is moving data (the rest "
                "is waiting for a late rank, which overlap cannot hide)"
                if known
                else "; waiting and moving cannot be told apart without the other ranks' traces"
            )
            items = [
                f"rank {r['rank']}: {100 * (r['overlap_share'] or 0):.0f}% of {format_ns(r['nccl_time'])} overlapped"
                + (f", exposed {100 * step_share[r['rank']]:.0f}% of step time" if step_share.get(r["rank"]) else "")
                for r in rows.head(4).iter_rows(named=True)
            ]
            out.append(
                finding(
                    "nccl-not-overlapped",
                    sev,
                    "collective kernels run alone on the GPU: " + "; ".join(items) + split,
                    {
                        "per_rank": rows.to_dicts(),
                        "exposed_share_of_step_time": {str(k): v for k, v in step_share.items()},
                    },
                )
            )
    # unequal work per step
    im = imbalance.filter(pl.col("steps") > 0) if imbalance.height and "steps" in imbalance.columns else pl.DataFrame()
    if im.height >= 2 and "own_mean" in im.columns:
        hi = im.sort(["own_mean", "rank"], descending=[True, False]).row(0, named=True)
        lo = im.sort(["own_mean", "rank"]).row(0, named=True)
        spread = (hi["own_mean"] - lo["own_mean"]) / hi["own_mean"] if hi["own_mean"] else 0.0
        c_hi = im.sort(["compute_mean", "rank"], descending=[True, False]).row(0, named=True)
        c_lo = im.sort(["compute_mean", "rank"]).row(0, named=True)
        c_spread = (c_hi["compute_mean"] - c_lo["compute_mean"]) / c_hi["compute_mean"] if c_hi["compute_mean"] else 0.0
        if spread >= 0.1 or c_spread >= 0.1:
            sev = "warning" if max(spread, c_spread) >= 0.25 else "info"
            if c_spread >= 0.1:
                why = (
                    f"the GPU work itself is unequal: compute {format_ns(c_lo['compute_mean'])} (rank {c_lo['rank']}) "
                    f"to {format_ns(c_hi['compute_mean'])} (rank {c_hi['rank']}) per step"
                )
            else:
                why = (
                    f"GPU compute per step is the same ({format_ns(c_lo['compute_mean'])} to "
                    f"{format_ns(c_hi['compute_mean'])}); rank {hi['rank']}'s GPU sits idle "
                    f"{format_ns(hi['idle_mean'])} per step waiting for its host: the slow part is on the host"
                )
            summary = (
                f"rank {hi['rank']} paces the steps: its own time is {format_ns(hi['own_mean'])} per step (GPU step "
                f"span {format_ns(hi['gpu_span_mean'])} minus waiting in collectives) against "
                f"{format_ns(lo['own_mean'])} on rank {lo['rank']}, which waits {format_ns(lo['wait_mean'])} per "
                f"step (spread {100 * spread:.0f}%); " + why
            )
            out.append(
                finding(
                    "rank-imbalance",
                    sev,
                    summary,
                    {
                        "own_time_spread": round(spread, 4),
                        "compute_spread": round(c_spread, 4),
                        "slowest_rank": hi["rank"],
                        "per_rank": im.to_dicts(),
                    },
                )
            )
    out.sort(key=lambda f: SEVERITY_ORDER[str(f["severity"])])
    return out


def _short_op(name: str) -> str:
    """ncclDevKernel_AllReduce_Sum_bf16_RING_LL -> AllReduce_Sum_bf16_RING_LL."""
    for prefix in ("ncclDevKernel_", "ncclKernel_"):
        if name.startswith(prefix):
            return name[len(prefix) :]
    return name


def _pattern_text(pattern: dict[str, object], steps_info: dict[str, object]) -> str:
    steps = pattern["steps"]
    every = int(pattern["every_steps"])  # type: ignore[call-overload]
    if every == 1:
        when = f"in every step from {steps[0]} to {steps[-1]}"  # type: ignore[index]
    else:
        shown = ", ".join(str(x) for x in steps[:4]) + (", ..." if len(steps) > 4 else "")  # type: ignore[arg-type, index]
        when = f"every {every} steps from step {pattern['first_step']} (steps {shown})"
    return (
        f"skew spikes recur {when} at {_short_op(str(pattern['name']))} #{pattern['in_step']} of the step: "
        f"{pattern['spikes']} of the {steps_info.get('spikes')} spikes (skew of at least "
        f"{format_ns(steps_info.get('spike_threshold_ns'))})"  # type: ignore[arg-type]
    )


def _late_by_name(complete: pl.DataFrame, rank: int, names: int = 3) -> str:
    """'870 of 1024 AllReduce_Sum_bf16_RING_LL (85%), 53 of 64 AllGather_RING_LL (83%)': per collective name."""
    per = (
        complete.group_by("name")
        .agg(pl.len().alias("n"), (pl.col("last_rank") == rank).sum().alias("last"))
        .sort(["n", "name"], descending=[True, False])
    )
    return ", ".join(
        f"{r['last']} of {r['n']} {_short_op(r['name'])} ({100 * r['last'] / r['n']:.0f}%)"
        for r in per.head(names).iter_rows(named=True)
    )


def _headline(
    inst: pl.DataFrame,
    complete: pl.DataFrame,
    late: dict[str, object],
    worst: pl.DataFrame,
    steps_info: dict[str, object],
    matched: pl.DataFrame,
    n_ranks: int,
) -> list[str]:
    out: list[str] = []
    if complete.is_empty():
        out.append(f"{inst.height} collective kernels on {n_ranks} rank(s); no instance could be matched across ranks")
        return out
    lr = late["late_rank"]
    total, waiting = int(inst["dur"].sum() or 0), int(inst["wait"].sum() or 0)
    if total and waiting < 0.1 * total:
        out.append(
            f"no rank holds the others up: waiting is {100 * waiting / total:.0f}% of the collective kernel time "
            f"(arrival skew p50 {format_ns(late.get('skew_p50_ns'))}, max {format_ns(late.get('skew_max_ns'))}); "  # type: ignore[arg-type]
            f"rank {lr} arrives last most often ({_late_by_name(complete, lr)})"  # type: ignore[arg-type]
        )
        return out
    out.append(
        f"rank {lr} is the late rank: last to arrive in {_late_by_name(complete, lr)}, a median "  # type: ignore[arg-type]
        f"{format_ns(late.get('late_rank_delay_p50_ns'))} after the others; arrival skew p50 "  # type: ignore[arg-type]
        f"{format_ns(late.get('skew_p50_ns'))}, p99 {format_ns(late.get('skew_p99_ns'))}, max "  # type: ignore[arg-type]
        f"{format_ns(late.get('skew_max_ns'))}"  # type: ignore[arg-type]
    )
    per = (
        inst.group_by("rank")
        .agg(pl.col("wait").sum(), pl.col("dur").sum())
        .sort(["wait", "rank"], descending=[True, False])
    )
    r = per.row(0, named=True)
    if r["dur"]:
        out.append(
            f"rank {r['rank']} spends {format_ns(r['dur'])} in collective kernels, {100 * r['wait'] / r['dur']:.0f}% "
            f"of it waiting for the last rank and {format_ns(r['dur'] - r['wait'])} moving data"
        )
    for m in matched.head(3).iter_rows(named=True):
        out.append(
            f"{_short_op(m['name'])}: {m['instances']} matched; skew p50 {format_ns(m['skew_p50'])} vs transfer "
            f"p50 {format_ns(m['transfer_p50'])} on the last rank: {100 * (m['wait_share'] or 0):.0f}% of its time "
            "is waiting"
        )
    pattern = steps_info.get("pattern")
    if isinstance(pattern, dict):
        out.append(_pattern_text(pattern, steps_info))
    if worst.height:
        causes = Counter(worst["cause"].to_list())
        host = causes.get("host", 0)
        if host:
            out.append(
                f"in {host} of the {worst.height} worst instances the late rank's GPU sat idle waiting for the host "
                "to launch the collective: the delay is on the host"
            )
    return out


def waiting_for_others(result: NcclResult, min_share: float = 0.5) -> dict[int, dict[str, object]]:
    """Ranks whose collective time is mostly waiting for a late rank: rank -> late rank, wait share and wait ns.
    Their own reports must name the late rank as the cause, not ask them to overlap their communication."""
    late = result.late.get("late_rank") if isinstance(result.late, dict) else None
    if late is None or result.collectives.is_empty() or "wait" not in result.collectives.columns:
        return {}
    per = result.collectives.group_by("rank").agg(pl.col("wait").sum(), pl.col("total").sum())
    out: dict[int, dict[str, object]] = {}
    for rank, wait, total in per.sort("rank").iter_rows():
        if rank == late or not total:
            continue
        share = int(wait or 0) / int(total)
        if share >= min_share:
            out[int(rank)] = {"late_rank": int(late), "wait_share": share, "wait_ns": int(wait or 0)}
    return out


def blame_late_rank(reports: list[tuple[int, Diagnosis]], result: NcclResult) -> None:
    """A rank that mostly waits in its collectives for a late rank gets that cause in its own diagnosis: the advice
    to overlap its communication would contradict the cross-rank section (the time is the other rank's lateness)."""
    waiting = waiting_for_others(result)
    for rank, d in reports:
        w = waiting.get(rank)
        if w is None:
            continue
        late = w["late_rank"]
        why = (
            f"{100 * float(w['wait_share']):.0f}% of this rank's collective time ({format_ns(int(w['wait_ns']))}) is "
            f"waiting for rank {late}, the late rank: the cause is rank {late}'s lateness, not this rank's "
            "communication (see across ranks)"
        )
        d.target["waiting_for_rank"] = w["late_rank"]
        d.target["why"] = f"{d.target.get('why', '')}; {why}".lstrip("; ")
        d.next_actions = [
            a for a in d.next_actions if not a.startswith(("communication dominates", "Then communication"))
        ]
        d.next_actions.insert(
            0,
            f"Collectives here wait for rank {w['late_rank']}: find what rank {w['late_rank']} does just before its "
            "collectives (across ranks: the 'before' column) and remove or balance it; tuning this rank's "
            "communication will not help.",
        )
