"""Across ranks: collective instances lined up by order and clock fit, and the period of the steps."""

from __future__ import annotations

import itertools
from collections import Counter

import polars as pl

from ...units import format_ns
from .prose import short_op

END_TOLERANCE_NS = 50_000  # ends of one collective on different ranks are this close (NVLink: ~1 us)
MIN_ALIGNED_SHARE = 0.5  # share of a rank's instances that must line up with the reference to share a group


def _mode(values: list[int]) -> int:
    return Counter(values).most_common(1)[0][0]


def align_ranks(
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
                    "channel": int(channel),
                    "name": name,
                    "ranks": sorted(members),
                    "reference_rank": ref,
                    "sequence_offsets": {str(k): v for k, v in sorted(members.items()) if v},
                }
            )
            gid += 1
            remaining = [x for x in remaining if x not in members]
    split: dict[tuple[object, object], list[object]] = {}
    for grp in groups:
        split.setdefault((grp["channel"], grp["name"]), []).append(grp["ranks"])
    for (channel, name), sets in split.items():
        if len(sets) > 1:
            notes.append(
                f"{short_op(str(name))} on collective stream #{channel}: rank groups "
                + " | ".join(",".join(map(str, x)) if isinstance(x, list) else str(x) for x in sets)
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


def step_period(spikes: pl.DataFrame) -> dict[str, object] | None:
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
            "in_step": int(in_step) if in_step is not None else None,
            "every_steps": d,
            "first_step": hits[0],
            "steps": hits,
            "spikes": len(hits),
            "spikes_total": spikes.height,
        }
        if best is None or len(hits) > best["spikes"]:  # type: ignore[operator]
            best = cand
    return best
