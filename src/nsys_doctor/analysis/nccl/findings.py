"""The multi-rank findings (ids and actions from the catalogue) raised from the reduced result."""

from __future__ import annotations

from typing import TYPE_CHECKING

import polars as pl

from ...units import format_ns
from ..distribution import scalar_int
from ..findings import CATALOGUE, SEVERITY_ORDER, Finding
from .prose import late_by_name, pattern_text, short_op

if TYPE_CHECKING:
    from .reduce import Reduction

# Finding ids raised here: id -> (title, action). Registered in the finding catalogue by the project.
NCCL_CATALOGUE = {k: CATALOGUE[k] for k in ("nccl-rank-skew", "nccl-not-overlapped", "rank-imbalance")}


def finding(fid: str, severity: str, summary: str, evidence: dict[str, object]) -> Finding:
    """A cross-rank finding (its title and action in the catalogue); its severity is set by the rule, it carries no
    cost of its own (the time is on the ranks' own timelines)."""
    if fid not in NCCL_CATALOGUE:
        raise KeyError(fid)
    return Finding(fid, severity, summary, evidence)


def nccl_findings(c: Reduction) -> list[Finding]:
    inst, complete, late, worst, steps_info = c.inst, c.complete, c.late, c.worst, c.steps_info
    overlap, imbalance, summaries = c.overlap, c.imbalance, c.summaries
    out: list[Finding] = []
    total = int(inst["dur"].sum() or 0)
    wait = int(inst["wait"].sum() or 0)
    share = wait / total if total else 0.0
    per_rank_wait = c.wait_per_rank()
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
                f"{short_op(r['name'])} {r['index']} ({where}) {format_ns(r['skew'])}, rank {r['last_rank']} last"
            )
        pattern = steps_info.get("pattern")
        ptxt = f"; {pattern_text(pattern, steps_info)}" if isinstance(pattern, dict) else ""
        summary = (
            f"rank {lr} arrives last in {late_by_name(complete, lr)} (median "  # type: ignore[arg-type]
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
            step_share: dict[int, float | None] = {}
            for s in summaries:
                if s.steps.height:
                    wall = int(s.steps["wall"].sum() or 0)
                    in_steps = s.instances.filter(pl.col("step").is_not_null())
                    exposed = scalar_int(in_steps["dur"].sum() or 0) - scalar_int(in_steps["overlap"].sum() or 0)
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
                + (f", exposed {100 * sh:.0f}% of step time" if (sh := step_share.get(r["rank"])) else "")
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
    out.sort(key=lambda f: SEVERITY_ORDER[f.severity])
    return out
