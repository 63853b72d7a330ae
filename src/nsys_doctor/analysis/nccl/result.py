"""The result of the multi-rank analysis, and what a late rank was waiting for."""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, TypedDict

import polars as pl

from ...units import format_ns
from ..distribution import scalar_int
from ..findings import Finding

if TYPE_CHECKING:
    from ..diagnosis import Diagnosis, Target


@dataclass(frozen=True)
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
    findings: list[Finding]
    headline: list[str]
    notes: list[str] = field(default_factory=list)
    groups: list[dict[str, object]] = field(default_factory=list)

    def to_dict(self) -> dict[str, object]:
        """The JSON payload of `nccl` (docs/report-json.md); report/serialize.py adds the envelope."""
        return {
            "ranks": self.ranks,
            "headline": self.headline,
            "findings": [f.to_dict() for f in self.findings],
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


class Waiting(TypedDict):
    """A rank that mostly waits for the late rank: which rank, the waiting share of its collective time, ns."""

    late_rank: int
    wait_share: float
    wait_ns: int


def waiting_for_others(result: NcclResult, min_share: float = 0.5) -> dict[int, Waiting]:
    """Ranks whose collective time is mostly waiting for a late rank: rank -> late rank, wait share and wait ns.
    Their own reports must name the late rank as the cause, not ask them to overlap their communication."""
    late = result.late.get("late_rank") if isinstance(result.late, dict) else None
    if late is None or result.collectives.is_empty() or "wait" not in result.collectives.columns:
        return {}
    per = result.collectives.group_by("rank").agg(pl.col("wait").sum(), pl.col("total").sum())
    out: dict[int, Waiting] = {}
    for rank, wait, total in per.sort("rank").iter_rows():
        if rank == late or not total:
            continue
        share = int(wait or 0) / int(total)
        if share >= min_share:
            out[int(rank)] = Waiting(late_rank=scalar_int(late), wait_share=share, wait_ns=int(wait or 0))
    return out


def blame_late_rank(reports: list[tuple[int, Diagnosis]], result: NcclResult) -> list[tuple[int, Diagnosis]]:
    """The ranks' diagnoses, where a rank that mostly waits in its collectives for a late rank gets that cause in its
    own diagnosis: the advice to overlap its communication would contradict the cross-rank section (the time is the
    other rank's lateness)."""
    waiting = waiting_for_others(result)
    out: list[tuple[int, Diagnosis]] = []
    for rank, d in reports:
        w = waiting.get(rank)
        if w is None:
            out.append((rank, d))
            continue
        late = w["late_rank"]
        why = (
            f"{100 * float(w['wait_share']):.0f}% of this rank's collective time ({format_ns(int(w['wait_ns']))}) is "
            f"waiting for rank {late}, the late rank: the cause is rank {late}'s lateness, not this rank's "
            "communication (see across ranks)"
        )
        target: Target = {**d.target, "waiting_for_rank": late, "why": f"{d.target.get('why', '')}; {why}".lstrip("; ")}
        first = (
            f"Collectives here wait for rank {late}: find what rank {late} does just before its "
            "collectives (across ranks: the 'before' column) and remove or balance it; tuning this rank's "
            "communication will not help."
        )
        kept = (a for a in d.next_actions if not a.startswith(("communication dominates", "Then communication")))
        out.append((rank, replace(d, target=target, next_actions=(first, *kept))))
    return out
