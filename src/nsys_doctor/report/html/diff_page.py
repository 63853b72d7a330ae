"""The diff's page: per-kernel and per-family changes between two runs, with their charts."""

from __future__ import annotations

from collections.abc import Sequence

from ...analysis.compare import DiffResult, DiffRow, GateResult
from ...analysis.plots import DiffSteps
from ...units import format_ns
from ..compare_text import change
from .charts import chart_diverging, chart_lines
from .page import kernel_cell, page, section, table
from .svg import AFTER, BEFORE, esc


def _diff_rows(rows: Sequence[DiffRow]) -> str:
    body = [
        [
            esc(r.kind),
            kernel_cell(r.label or r.key, r.key),
            esc(format_ns(r.before_per_step)),
            esc(format_ns(r.after_per_step)),
            esc(change(r.delta_pct)),
            esc("significant" if r.significant else f"p={r.p_value:.2g}"),
            esc(r.matched),
        ]
        for r in rows
    ]
    return table(
        ["kind", "name", "before / step", "after / step", "change", "significance", "matched by"],
        body,
        [False, False, True, True, True, False, False],
    )


def diff_body(d: DiffResult, gate: GateResult | None, steps: DiffSteps | None) -> str:
    h = d.headline
    sig = "significant" if h.gpu_significant else "no significant change"
    parts = [
        "<header><h1>nsys-doctor diff</h1>",
        f'<p class="meta"><b>before</b> <code class="name">{esc(d.before)}</code> ({h.before_steps} steps)</p>',
        f'<p class="meta"><b>after</b> <code class="name">{esc(d.after)}</code> ({h.after_steps} steps)</p></header>',
    ]
    head = [
        f"GPU time per step (kernels + memory ops): {format_ns(h.before_gpu_per_step)} → "
        f"{format_ns(h.after_gpu_per_step)} ({change(h.gpu_delta_pct)}, {sig})",
        f"step time (host, traced): {format_ns(h.before_step_time)} → {format_ns(h.after_step_time)} "
        f"({change(h.step_time_delta_pct)}, "
        f"{'significant' if h.step_time_significant else 'no significant change'})",
        f"launch calls per step: {h.before_launches_per_step:.1f} → {h.after_launches_per_step:.1f}; graph launches "
        f"per step: {h.before_graph_launches_per_step:.1f} → {h.after_graph_launches_per_step:.1f}",
    ]
    verdict = ""
    if gate is not None:
        verdict = (
            f'<p><b>gate ({gate.threshold_pct:g}%):</b> <span class="pass">PASS</span></p>'
            if gate.passed
            else f'<p><b>gate ({gate.threshold_pct:g}%):</b> <span class="fail">FAIL</span>: '
            f"{esc('; '.join(gate.reasons))}</p>"
        )
    parts.append(section("Headline", "<ul>" + "".join(f"<li>{esc(x)}</li>" for x in head) + "</ul>", verdict))
    if steps is not None and (steps.before or steps.after):
        series = []
        for name, color, values, group in (
            ("before", BEFORE, steps.before, steps.before_group),
            ("after", AFTER, steps.after, steps.after_group),
        ):
            xs = [float(i * group + (group - 1) / 2) for i in range(len(values))]
            series.append((name, color, xs, [float(v) for v in values]))
        cut = ""
        if max(steps.before_group, steps.after_group) > 1:
            cut = " Many steps: each point is the mean of consecutive steps."
        parts.append(
            section(
                "GPU time per step",
                chart_lines(series, f"{steps.kind} step", "GPU time per step, before and after"),
                f'<p class="cap">Kernels plus memory operations per {esc(steps.kind)} step, in step order, before '
                f"and after.{cut}</p>",
            )
        )
    if d.families:
        parts.append(
            section(
                "Families: change per step",
                chart_diverging(d.families[:16], "change of GPU time per step per family"),
                '<p class="cap">Right of zero: more time per step after (slower); left: less. Faint bars are not '
                "significant.</p>",
                _diff_rows(d.families),
            )
        )
    expl = d.explaining()
    parts.append(
        section(
            "What explains the change",
            _diff_rows(expl) if expl else "<p>No significant change in any kernel, API or memory operation.</p>",
        )
    )
    parts.append(section(f"Largest changes ({d.level} level)", _diff_rows(d.rows[:30])))
    if d.notes:
        parts.append(section("Notes", "<ul>" + "".join(f"<li>{esc(n)}</li>" for n in d.notes) + "</ul>"))
    return "".join(parts)


def render_diff(d: DiffResult, gate: GateResult | None = None, steps: DiffSteps | None = None) -> str:
    """``diff --format html``: headline, per-step GPU time before and after, family deltas, the rows."""
    return page("nsys-doctor diff", diff_body(d, gate, steps))


def render_rank_diffs(
    pairs: Sequence[tuple[int, DiffResult, GateResult | None, DiffSteps | None]],
    notes: Sequence[str],
    failed: Sequence[int],
) -> str:
    """``diff`` of two rank sets, paired by rank: one part per rank."""
    parts = []
    for rank, d, g, s in pairs:
        parts.append(f"<h1>Rank {rank}</h1>\n" + diff_body(d, g, s))
    if notes:
        parts.append(section("Notes", "<ul>" + "".join(f"<li>{esc(n)}</li>" for n in notes) + "</ul>"))
    if any(g is not None for _, _, g, _ in pairs):
        verdict = (
            f'<span class="fail">FAIL</span> on rank {esc(", ".join(map(str, failed)))}'
            if failed
            else '<span class="pass">PASS</span> on every rank'
        )
        parts.append(section("Gate", f"<p>{verdict}</p>"))
    return page("nsys-doctor diff: ranks", "".join(parts))
