"""The report's page: diagnosis, findings, families, steps, kernels, tails, host, metrics, memory."""

from __future__ import annotations

from collections.abc import Sequence

from ...analysis.diagnosis import Diagnosis
from ...analysis.findings import Finding
from ...analysis.nccl import NcclResult
from ...analysis.plots import PlotData
from ...units import format_ns, pct
from ..diagnosis_text import (
    callsite_lines,
    command_lines,
    cost_text,
    host_lines,
    memory_lines,
    metrics_lines,
    metrics_rows,
    run_line,
    steps_lines,
    timing_line,
)
from .charts import chart_hbars, chart_histogram, chart_memory, chart_pacing, chart_steps, chart_utilization
from .nccl_page import nccl_body
from .page import figure, kernel_cell, page, section, sev_badge, table
from .svg import BAR, FONT, INK, MEM_BAR, MONO, MUTED, SEV_COLORS, clip, esc


def _header(d: Diagnosis, title: str = "nsys-doctor report") -> str:
    t, w = d.trace, d.window
    lines = [
        f"<h1>{esc(title)}</h1>",
        f'<p class="meta"><code class="name">{esc(t.get("path"))}</code></p>',
        f'<p class="meta">{esc(t.get("gpu") or "GPU unknown")} · nsys {esc(t.get("nsys_version") or "?")} · '
        f"CUDA graph trace {esc(t.get('cuda_graph_trace') or '?')}</p>",
        f'<p class="meta"><b>Window</b> {w.start / 1e9:.3f} s to {w.end / 1e9:.3f} s ({esc(format_ns(w.duration))}): '
        f"{esc(w.reason)}</p>",
    ]
    if d.run:
        lines.append(f'<p class="meta"><b>Run</b> {esc(run_line(d.run))}</p>')
    timing = timing_line(d)
    if timing:
        lines.append(f'<p class="meta"><b>Timing</b> {esc(timing)}</p>')
    lines += [f'<p class="meta"><b>Note</b> {esc(n)}</p>' for n in d.notes]
    return "<header>\n" + "\n".join(lines) + "\n</header>\n"


def _commands(d: Diagnosis) -> str:
    if not d.next_commands:
        return ""
    items = "".join(
        f'<li>{esc(what)}<pre style="white-space:pre-wrap;word-break:break-all"><code>{esc(command)}</code></pre>'
        f"<div class=action>{esc(why)}</div></li>"
        for what, command, why in command_lines(d)
    )
    return f"<h3>Next commands</h3><ul>{items}</ul>"


def _diagnosis(d: Diagnosis) -> str:
    actions = "".join(f"<li>{esc(a)}</li>" for a in d.next_actions)
    measured = d.target.get("measured")
    return section(
        "Diagnosis",
        f'<p class="why">{esc(d.target.get("why", "nothing to analyze"))}</p>',
        f"<p>{esc(measured)}</p>" if measured else "",
        f"<h3>Next actions</h3><ol>{actions}</ol>" if actions else "",
        _commands(d),
        sid="diagnosis",
    )


def _metrics_section(d: Diagnosis) -> str:
    g = d.gpu_metrics
    if not g:
        return ""
    rows = [[esc(r[0]), f"<code>{esc(clip(r[1], 70))}</code>", *(esc(c) for c in r[2:])] for r in metrics_rows(d, 8, 8)]
    return section(
        f"GPU metrics (GPU {g['gpu']}, {g['frequency_hz']:,} Hz; % of the GPU's peak)",
        "<ul>" + "".join(f"<li>{esc(line)}</li>" for line in metrics_lines(d)) + "</ul>",
        table(
            ["", "while it runs", "inside", "SM active", "DRAM read", "DRAM write", "tensor"],
            rows,
            [False, False, True, True, True, True, True],
        ),
        sid="gpu-metrics",
    )


def _memory_section(d: Diagnosis) -> str:
    m = d.memory
    if not m:
        return ""
    timeline = m.get("timeline")
    tl: dict[str, list[int]] = timeline if isinstance(timeline, dict) else {}
    chart = ""
    if tl.get("t_ns"):
        chart = figure(
            chart_memory(tl["t_ns"], tl["bytes"], d.window.start, d.window.end),
            "In use = allocations minus frees of device memory (cudaMalloc and the like, not a framework's "
            "cache inside them), as --cuda-memory-usage records them.",
        )
    return section(
        f"Device memory (GPU {m.get('device')}, {m['events']:,} events)",
        "<ul>" + "".join(f"<li>{esc(line)}</li>" for line in memory_lines(d)) + "</ul>",
        chart,
        sid="memory",
    )


def _callchain_section(d: Diagnosis) -> str:
    if not d.callchains:
        return ""
    return section(
        "Host call sites of the slowest CUDA API calls (--cudabacktrace)",
        "<ul>" + "".join(f"<li>{esc(line)}</li>" for line in callsite_lines(d)) + "</ul>",
        sid="callchains",
    )


def _findings(findings: Sequence[Finding]) -> str:
    if not findings:
        return section("Findings", "<p>No findings.</p>", sid="findings")
    rows = [
        [
            sev_badge(f.severity),
            f'<code class="nw">{esc(f.id)}</code>',
            esc(cost_text(f).strip(" ()") or "-"),
            f"<b>{esc(f.title)}</b>: {esc(f.summary)}<div class=action>→ {esc(f.action)}</div>",
        ]
        for f in findings
    ]
    return section(
        "Findings",
        table(["severity", "id", "cost", "evidence and action"], rows, [False, False, True, False]),
        sid="findings",
    )


def family_name(category: str, family: str) -> str:
    """The category, or the family where the category is a catch-all (``pooling (elementwise / other)``) or the
    memory operations (``memcpy``, ``memset``)."""
    if category == "memcpy / memset":
        return family
    if category == "elementwise / other" and family not in ("other", "elementwise"):
        return f"{family} ({category})"
    return category


def family_rows(d: Diagnosis, n: int = 12) -> list[tuple[str, float, str, str, str]]:
    out = []
    for r in d.families.head(n).iter_rows(named=True):
        name = family_name(str(r["category"]), str(r["family"]))
        share = float(r["share"] or 0.0)
        color = MEM_BAR if r["category"] == "memcpy / memset" else BAR
        text = f"{100 * share:.1f}% · {format_ns(r['total'])}"
        tip = f"{name} (family {r['family']}): {text}, {r['count']:,} instances of {r['kernels']} kernels"
        out.append((name, share, text, color, tip))
    return out


def _family_section(d: Diagnosis) -> str:
    rows = family_rows(d)
    if not rows:
        return ""
    fam = [
        [
            esc(r["category"]),
            esc(r["family"]),
            esc(pct(r["share"])),
            esc(format_ns(r["total"])),
            esc(format_ns(r["per_step_ns"])),
            esc(str(r["kernels"])),
            esc(f"{r['count']:,}"),
        ]
        for r in d.families.iter_rows(named=True)
    ]
    return section(
        "Where GPU time goes: families",
        chart_hbars(rows, label="share of GPU time per family"),
        '<p class="cap">Share of GPU time in the window (kernels, copies, memsets) per operation family.</p>',
        "<details><summary>Families table</summary>"
        + table(
            ["category", "family", "share", "total", "per step", "kernels", "instances"],
            fam,
            [False, False, True, True, True, True, True],
        )
        + "</details>",
        sid="families",
    )


def _steps_section(d: Diagnosis, plots: PlotData | None) -> str:
    lines = "".join(f"<li>{esc(x)}</li>" for x in steps_lines(d))
    parts = []
    if plots is not None and plots.steps.idx:
        s = plots.steps
        kinds = sorted(set(s.kind))
        word = "iterations" if kinds == ["iteration"] else "steps"
        parts.append(chart_steps(s))
        parts.append(
            f'<p class="cap">{s.total} {word} of the window. Top: per step, the time the GPU ran anything (busy: '
            "kernels, copies, memsets), the idle time between the step's first and last kernel, and the idle time "
            "until the next step's first kernel. Bottom: the host's time in kernel and graph launch calls during the "
            "step, and the step's host span. Hover a bar for its numbers."
            + "".join(f" {esc(n)}." for n in plots.notes if "steps" in n)
            + "</p>"
        )
    elif plots is not None:
        parts.append("<p>No steps were found in the window: no per-step plot.</p>")
    parts.append(f"<ul>{lines}</ul>")
    return section("Steps", *parts, sid="steps")


def _util_section(plots: PlotData) -> str:
    u = plots.utilization
    if not u.devices:
        return section("GPU utilization over time", "<p>No kernel ran in the window.</p>", sid="utilization")
    return section(
        "GPU utilization over time",
        chart_utilization(u),
        f'<p class="cap">The window cut into {len(u.shares[0])} bins of {esc(format_ns(u.bin_ns))}: the share of '
        "each bin during which at least one kernel ran, per device (as nsys's cuda_gpu_time_util_map).</p>",
        sid="utilization",
    )


def _kernels_section(d: Diagnosis, plots: PlotData | None) -> str:
    rows = [
        [
            esc(pct(r["share"])),
            esc(format_ns(r["total"])),
            esc(f"{r['count']:,}"),
            esc(format_ns(r["p50"])),
            esc(format_ns(r["p99"])),
            esc(format_ns(r["max"])),
            esc(str(r["family"])),
            kernel_cell(str(r["label"]), str(r["name"])),
        ]
        for r in d.kernels.iter_rows(named=True)
    ]
    parts = [
        table(
            ["share", "total", "count", "p50", "p99", "max", "family", "kernel"],
            rows,
            [True, True, True, True, True, True, False, False],
        )
        if rows
        else "<p>No kernels in the window.</p>"
    ]
    if plots is not None and plots.histograms:
        figs = [
            figure(
                chart_histogram(h),
                f"{h.count:,} instances; p50 {esc(format_ns(h.p50))}, max {esc(format_ns(h.max))}"
                + ("; log bins" if h.log else ""),
                heading=f"{i + 1}. {h.label}",
                heading_title=h.name,
            )
            for i, h in enumerate(plots.histograms)
        ]
        parts.append("<h3>Duration histograms of the top kernels</h3>")
        parts.append('<div class="grid">' + "".join(figs) + "</div>")
        parts.append(
            '<p class="cap">Instances binned by duration (as nsys\'s cuda_gpu_kern_hist); bins are geometric '
            "where the longest instance is more than 10x the shortest.</p>"
        )
    return section("Top kernels", *parts, sid="kernels")


def _pacing_section(plots: PlotData) -> str:
    p = plots.pacing
    if p is None or p.count < 2:
        return ""
    dev = f" on device {p.device}" if p.device is not None else ""
    cut = "; each group of instances is drawn as its minimum and maximum" if p.sampled else ""
    return section(
        "Pacing of the top kernel",
        f'<p class="meta">{kernel_cell(p.label, p.name)}</p>',
        chart_pacing(p),
        f'<p class="cap">{p.count:,} instances{esc(dev)}, in start order (as nsys\'s cuda_gpu_kern_pace): the '
        "time between consecutive starts shows how regularly the kernel is issued (a step is one period; "
        f"spikes are stalls), the duration shows whether the kernel itself varies{cut}.</p>",
        sid="pacing",
    )


def _tails_section(d: Diagnosis) -> str:
    if not d.kernel_tails.height:
        return ""
    rows = []
    for r in d.kernel_tails.iter_rows(named=True):
        grid = r["typical_grid"] or ""
        if r.get("tail_grid") and r["tail_grid"] != r["typical_grid"]:
            grid = f"{grid} (slowest {r['tail_grid']})"
        rows.append(
            [
                esc(f"{r['tail_score']:.0f}"),
                esc(f"{r['max_p50'] or 0:.1f}"),
                esc(f"{r['p99_p50'] or 0:.2f}"),
                esc(format_ns(r["p50"])),
                esc(format_ns(r["max"])),
                esc(f"{r['count']:,}"),
                f'<span class="nw">{esc(grid)}</span>',
                kernel_cell(str(r["label"]), str(r["name"])),
            ]
        )
    return section(
        "Tails (by tail score)",
        table(
            ["score", "max/p50", "p99/p50", "p50", "max", "count", "grid", "kernel"],
            rows,
            [True, True, True, True, True, True, False, False],
        ),
        sid="tails",
    )


def _host_section(d: Diagnosis) -> str:
    return section("Host", "<ul>" + "".join(f"<li>{esc(x)}</li>" for x in host_lines(d)) + "</ul>", sid="host")


def _unmapped_section(d: Diagnosis) -> str:
    if not d.unmapped:
        return ""
    items = "".join(f'<li><code class="name">{esc(n)}</code></li>' for n in d.unmapped[:20])
    more = f"<p>... and {len(d.unmapped) - 20} more.</p>" if len(d.unmapped) > 20 else ""
    return section(
        f"Unmapped kernels ({len(d.unmapped)})",
        "<p>Kernels no rule maps to an operation; add rules with <code>--ops FILE</code>.</p>",
        f"<ul>{items}</ul>{more}",
        sid="unmapped",
    )


def report_body(d: Diagnosis, plots: PlotData | None, extra: Sequence[tuple[str, str]] = (), title: str = "") -> str:
    """The sections of one diagnosis (the page's body, or one rank's part of it); ``extra``: (title, plain text)
    sections such as the roofline, shown preformatted."""
    parts = [
        _header(d, title or "nsys-doctor report"),
        _diagnosis(d),
        _findings(d.findings),
        _family_section(d),
        _steps_section(d, plots),
    ]
    if plots is not None:
        parts.append(_util_section(plots))
    parts.append(_kernels_section(d, plots))
    if plots is not None:
        parts.append(_pacing_section(plots))
    parts += [_tails_section(d), _host_section(d), _metrics_section(d), _memory_section(d), _callchain_section(d)]
    parts.append(_unmapped_section(d))
    parts += [section(t, f"<pre>{esc(text)}</pre>") for t, text in extra]
    return "".join(parts)


def render_report(d: Diagnosis, plots: PlotData | None, extra: Sequence[tuple[str, str]] = ()) -> str:
    """``report --format html``: the whole diagnosis as one self-contained page with its plots."""
    name = str(d.trace.get("path") or "trace").replace("\\", "/").rsplit("/", 1)[-1]
    return page(f"nsys-doctor report: {name}", report_body(d, plots, extra))


def render_ranks(pairs: Sequence[tuple[int, str, Diagnosis, PlotData | None]], across: NcclResult | None) -> str:
    """``report`` on several ranks: one part per rank (rank, label, diagnosis, its plot data), then what holds
    across ranks."""
    links = " · ".join(f'<a href="#rank-{rank}">rank {rank}</a>' for rank, _, _, _ in pairs)
    parts = [
        f"<h1>nsys-doctor report: {len(pairs)} ranks</h1>",
        f'<p class="meta">{links}' + (' · <a href="#across">across ranks</a>' if across is not None else "") + "</p>",
    ]
    for rank, label, d, plots in pairs:
        parts.append(f'<div id="rank-{rank}">' + report_body(d, plots, title=f"Rank {rank}: {label}") + "</div>\n")
    if across is not None:
        parts.append('<h1 id="across">Across ranks</h1>\n' + nccl_body(across))
    return page(f"nsys-doctor report: {len(pairs)} ranks", "".join(parts))


def render_fragment(d: Diagnosis) -> str:
    """A compact view for notebooks (``Report._repr_html_``): summary, findings and the family bars, in one ``div``
    with inline styles only (nothing leaks into or depends on the notebook's CSS)."""
    w = d.window
    p = "margin:2px 0"
    out = [f'<div style="font:13px/1.45 {esc(FONT)};color:{INK};max-width:1000px">']
    out.append(
        f'<div style="font-weight:600;font-size:15px">nsys-doctor report: <code>{esc(d.trace.get("path"))}</code></div>'
    )
    out.append(
        f'<div style="{p}">{esc(d.trace.get("gpu") or "GPU unknown")} · window {w.start / 1e9:.3f} s to '
        f"{w.end / 1e9:.3f} s ({esc(format_ns(w.duration))})</div>"
    )
    if d.run:
        out.append(f'<div style="{p}">{esc(run_line(d.run))}</div>')
    out.append(f'<div style="{p};font-weight:600">{esc(d.target.get("why", "nothing to analyze"))}</div>')
    if d.target.get("measured"):
        out.append(f'<div style="{p}">{esc(d.target["measured"])}</div>')
    if d.next_actions:
        out.append(
            f'<ol style="{p};padding-left:20px">' + "".join(f"<li>{esc(a)}</li>" for a in d.next_actions) + "</ol>"
        )
    for what, command, _why in command_lines(d):
        out.append(
            f'<div style="{p}">{esc(what)}:</div><pre style="{p};white-space:pre-wrap;font-family:{esc(MONO)}">'
            f"{esc(command)}</pre>"
        )
    if d.findings:
        out.append(f'<div style="{p};font-weight:600">Findings</div><ul style="{p};padding-left:20px">')
        for f in d.findings:
            color = SEV_COLORS.get(f.severity, MUTED)
            out.append(
                f'<li><span style="color:#fff;background:{color};border-radius:3px;padding:0 5px;font-size:11px">'
                f"{esc(f.severity)}</span> <code>{esc(f.id)}</code>{esc(cost_text(f))}: {esc(f.summary)}</li>"
            )
        out.append("</ul>")
    rows = family_rows(d, 8)
    if rows:
        out.append(f'<div style="{p};font-weight:600">Families (share of GPU time)</div>')
        out.append(chart_hbars(rows, label="share of GPU time per family", label_chars=34, width=900))
    out.append("</div>")
    return "\n".join(out)
