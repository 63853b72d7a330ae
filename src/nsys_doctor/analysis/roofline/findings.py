"""The roofline's findings: shapes far from the GPU's peak, with the time a better kernel would save."""

from __future__ import annotations

from ...units import format_bytes, format_ns
from ..findings import CATALOGUE, Finding
from .results import NEAR_LIMIT, Roofline, ShapeResult

FINDING_TEXT = {k: CATALOGUE[k] for k in ("gemv-near-bandwidth-limit", "gemv-bandwidth-headroom")}
"""Titles and actions of the roofline findings (they live in the finding catalogue)."""


def _saving_per_step(s: ShapeResult, peak: float) -> float:
    """What the shape would save per step at NEAR_LIMIT of peak (0 when it is already there), ns."""
    return max(0.0, s.time_per_step_ns - s.per_step * s.weight_bytes / (NEAR_LIMIT * peak) * 1e9)


def _shape_evidence(s: ShapeResult, peak: float) -> dict[str, object]:
    return {
        "shape": s.name,
        "label": s.label,
        "M": s.M,
        "K": s.K,
        "weight_bytes": s.weight_bytes,
        "per_step": s.per_step,
        "kernels": list(s.kernels),
        "p50_ns": s.p50_ns,
        "achieved_Bps": s.achieved_Bps,
        "efficiency": s.efficiency,
        "saving_per_step_ns": _saving_per_step(s, peak),
    }


def roofline_findings(result: Roofline) -> list[Finding]:
    """Findings about the decode GEMVs: ``gemv-near-bandwidth-limit`` (info) names the shapes at or above 80% of
    peak bandwidth, ``gemv-bandwidth-headroom`` (warning) those under 70% that are not small (>= 5 MB), with the
    numbers in the summary and the shapes as evidence. ``roofline()`` stores them in ``Roofline.findings``."""
    d = result.decode
    peak = result.peaks.bandwidth_Bps
    if d is None or not peak:
        return []
    near = [s for s in d.shapes if s.rating == "near-limit"]
    room = [s for s in d.shapes if s.rating == "headroom"]
    out: list[Finding] = []

    def describe(s: ShapeResult) -> str:
        return (
            f"{s.label} [{s.M} x {s.K}, {format_bytes(s.weight_bytes)}] at {100 * (s.efficiency or 0):.1f}% "
            f"({s.achieved_Bps / 1e12:.2f} TB/s, p50 {format_ns(s.p50_ns)})"
        )

    for fid, severity, group in (
        ("gemv-near-bandwidth-limit", "info", near),
        ("gemv-bandwidth-headroom", "warning", room),
    ):
        if not group:
            continue
        group = sorted(group, key=lambda s: -s.time_per_step_ns)
        evidence: dict[str, object] = {
            "peak_bandwidth_Bps": peak,
            "shapes": [_shape_evidence(s, peak) for s in group],
        }
        summary = f"{'; '.join(describe(s) for s in group)} of {peak / 1e12:.3f} TB/s peak"
        if fid == "gemv-bandwidth-headroom":
            saving = sum(_saving_per_step(s, peak) for s in group)
            evidence["saving_per_step_ns"] = saving
            summary += f"; reaching 80% would save about {format_ns(saving)} per decode step"
        out.append(Finding(fid, severity, summary, evidence))
    return out
