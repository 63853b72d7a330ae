"""Renderers for trace comparisons (``diff``, ``scaling``): terminal, Markdown and JSON."""

from __future__ import annotations

from collections.abc import Sequence

from ..analysis.compare import DiffResult, DiffRow, GateResult, ScalingResult
from ..units import format_ns, pct
from .serialize import dumps, envelope


def change(x: float | None) -> str:
    """A change already in percent, signed: ``+4.0%``."""
    return pct(x, scale=1.0, signed=True)


def _row_line(r: DiffRow) -> str:
    sig = "significant" if r.significant else f"p={r.p_value:.2g}"
    return (
        f"{(r.label or r.key)[:70]:<70} {format_ns(r.before_per_step):>10} -> "
        f"{format_ns(r.after_per_step):>10} per step "
        f"({change(r.delta_pct)}, {sig}; {r.kind}, matched by {r.matched})"
    )


def diff_lines(d: DiffResult, gate: GateResult | None = None, rows: int = 12) -> list[str]:
    h = d.headline
    out = [f"before: {d.before} ({h.before_steps} steps)", f"after:  {d.after} ({h.after_steps} steps)", ""]
    out.append(
        f"GPU time per step (kernels + memory ops): {format_ns(h.before_gpu_per_step)} -> "
        f"{format_ns(h.after_gpu_per_step)} "
        f"({change(h.gpu_delta_pct)}, {'significant' if h.gpu_significant else 'no significant change'})"
    )
    out.append(
        f"step time (host, traced): {format_ns(h.before_step_time)} -> {format_ns(h.after_step_time)} "
        f"({change(h.step_time_delta_pct)}, "
        f"{'significant' if h.step_time_significant else 'no significant change'})"
    )
    out.append(
        f"launch calls per step: {h.before_launches_per_step:.1f} -> {h.after_launches_per_step:.1f}; "
        f"graph launches per step: {h.before_graph_launches_per_step:.1f} -> "
        f"{h.after_graph_launches_per_step:.1f}"
    )
    expl = d.explaining()
    out.append("")
    if expl:
        out.append("What explains the change:")
        out += [f"  {_row_line(r)}" for r in expl]
    else:
        out.append("No significant change in any kernel, API or memory operation.")
    out += ["", "Families:"]
    out += [f"  {_row_line(r)}" for r in d.families[:rows]]
    out += ["", f"Largest changes ({d.level} level):"]
    out += [f"  {_row_line(r)}" for r in d.rows[:rows]]
    if d.notes:
        out += ["", *(f"note: {n}" for n in d.notes)]
    if gate is not None:
        out += [
            "",
            f"gate ({gate.threshold_pct:g}%): " + ("PASS" if gate.passed else "FAIL: " + "; ".join(gate.reasons)),
        ]
    return out


def diff_payload(d: DiffResult, gate: GateResult | None = None) -> dict[str, object]:
    """The diff object without its envelope; ``gate`` last, only when a gate was applied."""
    data = d.to_dict()
    if gate is not None:
        data["gate"] = gate.to_dict()
    return data


def render_diff(d: DiffResult, fmt: str, gate: GateResult | None = None) -> str:
    if fmt == "json":
        return dumps("diff", diff_payload(d, gate))
    lines = diff_lines(d, gate)
    if fmt == "markdown":
        return "## nsys-doctor diff\n\n```\n" + "\n".join(lines) + "\n```\n"
    return "\n".join(lines) + "\n"


def scaling_lines(s: ScalingResult, rows: int = 12) -> list[str]:
    out = ["traces by context length:"]
    out += [
        f"  {c:>8.0f} tokens  {t}  (GPU time per decode step {format_ns(g)})"
        for c, t, g in zip(s.contexts, s.traces, s.step_gpu, strict=True)
    ]
    out += ["", "Families (per decode step):"]
    for r in s.families:
        out.append(
            f"  {r.key:<28} {' -> '.join(format_ns(v) for v in r.per_step):<40} "
            f"{change(r.growth_pct):>8}  slope {format_ns(r.slope_per_1k)}/1k tokens  {r.status}"
        )
    inv = [r for r in s.kernels if r.status == "investigate"]
    out += [
        "",
        "Non-attention kernels that grow with context (investigate):"
        if inv
        else "No non-attention kernel grows with context beyond noise.",
    ]
    for r in inv[:rows]:
        out.append(
            f"  {r.key[:60]:<60} {' -> '.join(format_ns(v) for v in r.per_step)} per step "
            f"({change(r.growth_pct)}, p={r.p_value:.2g}; family {r.family})"
        )
    return out


def render_scaling(s: ScalingResult, fmt: str) -> str:
    if fmt == "json":
        return dumps("scaling", s.to_dict())
    lines = scaling_lines(s)
    if fmt == "markdown":
        return "## nsys-doctor scaling\n\n```\n" + "\n".join(lines) + "\n```\n"
    return "\n".join(lines) + "\n"


def render_rank_diffs_json(
    pairs: Sequence[tuple[int, DiffResult, GateResult | None]], notes: list[str], failed: list[int]
) -> str:
    """``diff`` of two rank sets, rank by rank: each rank's whole diff object (envelope included), the ranks whose
    gate failed and the pairing notes."""
    return dumps(
        "diff-ranks",
        {
            "ranks": [{"rank": r, "diff": envelope("diff", diff_payload(d, g))} for r, d, g in pairs],
            "gate_failed_ranks": failed,
            "notes": notes,
        },
    )
