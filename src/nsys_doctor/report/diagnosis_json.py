"""JSON renderers of ``Diagnosis``: the single-trace report (``"kind": "report"``) and the per-rank reports
(``"kind": "report-ranks"``), public and versioned (docs/report-json.md, docs/schemas/). Written by
``serialize`` (one envelope, one NaN policy)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

from ..analysis.diagnosis import Diagnosis
from .serialize import dumps, envelope

if TYPE_CHECKING:
    from ..analysis.nccl import NcclResult
    from ..trace.ranks import RankSpec


def report_payload(d: Diagnosis) -> dict[str, object]:
    """The report object without its envelope; the roofline of ``report --model`` inside it keeps the envelope that
    ``nsys-doctor roofline --format json`` gives it."""
    data = d.to_dict()
    if isinstance(d.roofline, dict):
        data["roofline"] = envelope("roofline", d.roofline)
    return data


def report_document(d: Diagnosis) -> dict[str, object]:
    """The single-trace report as a JSON object: ``{"schema", "kind": "report", ...}``."""
    return envelope("report", report_payload(d))


def render_json(d: Diagnosis) -> str:
    return dumps("report", report_payload(d))


def render_ranks_json(pairs: Sequence[tuple[RankSpec, Diagnosis]], across: NcclResult | None) -> str:
    """One report per rank (each a whole report object, envelope included) and the collectives across ranks (the
    ``nccl`` object, or null)."""
    return dumps(
        "report-ranks",
        {
            "ranks": [{"rank": sp.rank, "spec": sp.to_dict(), "report": report_document(d)} for sp, d in pairs],
            "across_ranks": envelope("nccl", across.to_dict()) if across is not None else None,
        },
    )
