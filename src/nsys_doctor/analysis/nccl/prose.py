"""Sentences: collective names, the late-rank pattern and the headline of the result."""

from __future__ import annotations

from collections import Counter
from typing import TYPE_CHECKING

import polars as pl

from ...units import format_ns

if TYPE_CHECKING:
    from .reduce import Reduction


def short_op(name: str) -> str:
    """ncclDevKernel_AllReduce_Sum_bf16_RING_LL -> AllReduce_Sum_bf16_RING_LL."""
    for prefix in ("ncclDevKernel_", "ncclKernel_"):
        if name.startswith(prefix):
            return name[len(prefix) :]
    return name


def pattern_text(pattern: dict[str, object], steps_info: dict[str, object]) -> str:
    steps = pattern["steps"]
    every = int(pattern["every_steps"])  # type: ignore[call-overload]
    if every == 1:
        when = f"in every step from {steps[0]} to {steps[-1]}"  # type: ignore[index]
    else:
        shown = ", ".join(str(x) for x in steps[:4]) + (", ..." if len(steps) > 4 else "")  # type: ignore[arg-type, index]
        when = f"every {every} steps from step {pattern['first_step']} (steps {shown})"
    return (
        f"skew spikes recur {when} at {short_op(str(pattern['name']))} #{pattern['in_step']} of the step: "
        f"{pattern['spikes']} of the {steps_info.get('spikes')} spikes (skew of at least "
        f"{format_ns(steps_info.get('spike_threshold_ns'))})"  # type: ignore[arg-type]
    )


def late_by_name(complete: pl.DataFrame, rank: int, names: int = 3) -> str:
    """'870 of 1024 AllReduce_Sum_bf16_RING_LL (85%), 53 of 64 AllGather_RING_LL (83%)': per collective name."""
    per = (
        complete.group_by("name")
        .agg(pl.len().alias("n"), (pl.col("last_rank") == rank).sum().alias("last"))
        .sort(["n", "name"], descending=[True, False])
    )
    return ", ".join(
        f"{r['last']} of {r['n']} {short_op(r['name'])} ({100 * r['last'] / r['n']:.0f}%)"
        for r in per.head(names).iter_rows(named=True)
    )


def headline_of(c: Reduction) -> list[str]:
    inst, complete, late, worst, steps_info = c.inst, c.complete, c.late, c.worst, c.steps_info
    out: list[str] = []
    if complete.is_empty():
        out.append(
            f"{inst.height} collective kernels on {len(c.summaries)} rank(s); no instance could be matched across ranks"
        )
        return out
    lr = late["late_rank"]
    total, waiting = int(inst["dur"].sum() or 0), int(inst["wait"].sum() or 0)
    if total and waiting < 0.1 * total:
        out.append(
            f"no rank holds the others up: waiting is {100 * waiting / total:.0f}% of the collective kernel time "
            f"(arrival skew p50 {format_ns(late.get('skew_p50_ns'))}, max {format_ns(late.get('skew_max_ns'))}); "  # type: ignore[arg-type]
            f"rank {lr} arrives last most often ({late_by_name(complete, lr)})"  # type: ignore[arg-type]
        )
        return out
    out.append(
        f"rank {lr} is the late rank: last to arrive in {late_by_name(complete, lr)}, a median "  # type: ignore[arg-type]
        f"{format_ns(late.get('late_rank_delay_p50_ns'))} after the others; arrival skew p50 "  # type: ignore[arg-type]
        f"{format_ns(late.get('skew_p50_ns'))}, p99 {format_ns(late.get('skew_p99_ns'))}, max "  # type: ignore[arg-type]
        f"{format_ns(late.get('skew_max_ns'))}"  # type: ignore[arg-type]
    )
    w = c.wait_per_rank().row(0, named=True)
    if w["dur"]:
        out.append(
            f"rank {w['rank']} spends {format_ns(w['dur'])} in collective kernels, {100 * w['wait'] / w['dur']:.0f}% "
            f"of it waiting for the last rank and {format_ns(w['dur'] - w['wait'])} moving data"
        )
    for m in c.matched.head(3).iter_rows(named=True):
        out.append(
            f"{short_op(m['name'])}: {m['instances']} matched; skew p50 {format_ns(m['skew_p50'])} vs transfer "
            f"p50 {format_ns(m['transfer_p50'])} on the last rank: {100 * (m['wait_share'] or 0):.0f}% of its time "
            "is waiting"
        )
    pattern = steps_info.get("pattern")
    if isinstance(pattern, dict):
        out.append(pattern_text(pattern, steps_info))
    if worst.height:
        causes = Counter(worst["cause"].to_list())
        host = causes.get("host", 0)
        if host:
            out.append(
                f"in {host} of the {worst.height} worst instances the late rank's GPU sat idle waiting for the host "
                "to launch the collective: the delay is on the host"
            )
    return out
