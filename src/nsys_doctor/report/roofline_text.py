"""Renderers of a ``Roofline`` (``nsys-doctor roofline``): terminal (rich), Markdown and JSON."""

from __future__ import annotations

from io import StringIO

from rich.console import Console
from rich.markup import escape
from rich.table import Table

from ..analysis.roofline import RATINGS, PhaseResult, Roofline, ShapeResult
from ..units import format_bytes, format_ns, pct, scalar_int
from .diagnosis_text import SEV_STYLE, md_escape
from .serialize import dumps

RATING_WORD = {
    "near-limit": "near limit",
    "some-headroom": "some headroom",
    "headroom": "headroom",
    "small": "small GEMV",
    "compute-near-peak": "near peak",
    "compute-headroom": "compute headroom",
    "unknown-peak": "peak unknown",
}


def _tbps(bps: float | None) -> str:
    return "-" if bps is None else f"{bps / 1e12:.2f}"


def _tflops(flops: float | None) -> str:
    return "-" if flops is None else f"{flops / 1e12:.1f}"


def _kernels(s: ShapeResult, width: int = 70) -> str:
    text = s.kernels[0] if s.kernels else "-"
    if len(s.kernels) > 1:
        text += f" (+{len(s.kernels) - 1} more)"
    return text if len(text) <= width else text[: width - 1] + "…"


def _header(r: Roofline) -> list[str]:
    p = r.peaks
    m = r.model
    bw = f"{p.bandwidth_Bps / 1e12:.3f} TB/s" if p.bandwidth_Bps else "unknown"
    fl = f"{p.flops / 1e12:.1f} TFLOP/s" if p.flops else "unknown"
    lines = [
        f"{p.gpu or 'GPU unknown'}: peak DRAM bandwidth {bw} from {p.bandwidth_source}; dense {p.flops_dtype} "
        f"peak {fl} from {p.flops_source}",
        f"Model {m.name}: {m.num_layers} layers, {m.fmt.label} weights, {m.bytes_per_token:,} weight bytes per "
        f"token ({format_bytes(m.bytes_per_token)})",
    ]
    w = r.window
    if w:
        lines.append(
            f"Window {scalar_int(w['start_ns']) / 1e9:.3f}s to {scalar_int(w['end_ns']) / 1e9:.3f}s "
            f"({format_ns(scalar_int(w['duration_ns']))}): {w['reason']}; steps from {r.steps_source}"
        )
    return lines


def _phase_title(ph: PhaseResult) -> str:
    if ph.phase == "decode":
        return f"Decode: {ph.fit.steps_fit} steps, one token per step"
    tok = f"{ph.tokens:,} token{'s' if ph.tokens != 1 else ''}" if ph.tokens else "token count unknown"
    return f"Prefill: {ph.fit.steps_fit} step{'s' if ph.fit.steps_fit != 1 else ''}, {tok} ({ph.tokens_source})"


def _step_lines(ph: PhaseResult) -> list[str]:
    s = ph.step
    lines = []
    if ph.phase == "decode" or not any(x.bound == "compute" for x in ph.shapes):
        lines.append(
            f"{format_bytes(s.bytes_per_step)} of weights per step; step GPU time p50 {format_ns(s.gpu_time_p50_ns)} "
            f"-> {_tbps(s.achieved_Bps)} TB/s = {pct(s.efficiency)} of peak; speed of light "
            f"{format_ns(s.sol_ns)} (weight bytes / peak bandwidth)"
        )
        lines.append(
            f"{'linear layers' if s.linear_bytes == s.bytes_per_step else 'mapped shapes'}: "
            f"{format_ns(s.linear_time_ns)} per step ({pct(s.linear_share)} of step GPU time) at "
            f"{_tbps(s.linear_Bps)} TB/s = {pct(s.linear_efficiency)} of peak"
        )
    else:
        lines.append(
            f"{(s.flops_per_step or 0) / 1e12:.2f} TFLOP in the linear layers per step, run in "
            f"{format_ns(s.linear_time_ns)} ({pct(s.linear_share)} of step GPU time {format_ns(s.gpu_time_mean_ns)})"
            f" = {_tflops(s.linear_flops)} TFLOP/s"
        )
    lines.append(s.verdict)
    return lines


def _compute_columns(ph: PhaseResult) -> bool:
    """FLOP columns for prefill steps that run GEMMs on more than one token (or on an unknown count)."""
    return ph.phase == "prefill" and ph.tokens != 1


def _shape_rows(ph: PhaseResult, markdown: bool = False) -> tuple[list[str], list[list[str]]]:
    compute = _compute_columns(ph)
    head = ["shape", "M x K"] + (["N"] if compute else []) + ["weights", "/step", "n", "p50", "mean"]
    head += ["TB/s", "BW %"] + (["TFLOP/s", "FLOP %", "bound"] if compute else []) + ["rating", "kernel"]
    rows = []
    for s in ph.shapes:
        row = [s.label, f"{s.M} x {s.K}"] + ([str(s.N) if s.N else "?"] if compute else [])
        row += [format_bytes(s.weight_bytes), str(s.per_step), f"{s.instances:,}", format_ns(s.p50_ns)]
        row += [format_ns(s.mean_ns), _tbps(s.achieved_Bps), pct(s.efficiency)]
        if compute:
            row += [_tflops(s.achieved_flops), pct(s.flops_efficiency), s.bound or "?"]
        kernel = f"`{md_escape(_kernels(s, 90))}`" if markdown else _kernels(s, 90)
        row += [RATING_WORD.get(s.rating, s.rating), kernel]
        rows.append(row)
    return head, rows


def _legend(ph: PhaseResult) -> str:
    """What the ratings in the table mean (those that appear)."""
    seen = list(dict.fromkeys(s.rating for s in ph.shapes))
    return "; ".join(f"{RATING_WORD.get(k, k)}: {RATINGS[k]}" for k in seen)


def _shape_table(ph: PhaseResult) -> Table:
    """Every column at its full width except the kernel name, which is cut to what is left."""
    head, rows = _shape_rows(ph)
    t = Table(box=None, pad_edge=False)
    for i, c in enumerate(head):
        left = c in ("shape", "M x K", "kernel", "rating", "bound")
        width = max(len(c), *(len(r[i]) for r in rows)) if rows else len(c)
        t.add_column(
            c,
            justify="left" if left else "right",
            no_wrap=True,
            overflow="ellipsis",
            min_width=None if c == "kernel" else width,
        )
    for r in rows:
        t.add_row(*(escape(c) for c in r))
    return t


def render_terminal(r: Roofline, width: int | None = 180, color: bool = True) -> str:
    """``width`` None: the terminal's."""
    buf = StringIO()
    con = Console(
        file=buf, width=width, force_terminal=color, color_system="standard" if color else None, highlight=False
    )
    con.print(f"[bold]nsys-doctor roofline[/bold]  {escape(str(r.trace.get('path', '')))}")
    for line in _header(r):
        con.print(escape(line))
    for ph in r.phases:
        con.print()
        con.print(f"[bold]{escape(_phase_title(ph))}[/bold]")
        con.print(f"  {escape(ph.fit.summary())}")
        for n in ph.fit.notes:
            con.print(f"  note: {escape(n)}")
        con.print()
        con.print(_shape_table(ph))
        con.print(f"[dim]{escape(_legend(ph))}[/dim]")
        con.print()
        lines = _step_lines(ph)
        for i, line in enumerate(lines):
            con.print(f"  {'Step' if i == 0 else 'Verdict' if i == len(lines) - 1 else ''}".ljust(11) + escape(line))
    if r.findings:
        con.print()
        con.print("[bold]Findings[/bold]")
        for f in r.findings:
            con.print(f"  [{SEV_STYLE[f.severity]}]{f.severity:<8}[/] [bold]{f.id}[/bold]: {escape(f.summary)}")
            con.print(f"           {escape(f.action)}")
    if r.notes:
        con.print()
        con.print("[bold]Notes[/bold]")
        for n in r.notes:
            con.print(f"  {escape(n)}")
    return buf.getvalue()


def render_markdown(r: Roofline) -> str:
    out = [f"## nsys-doctor roofline: `{r.trace.get('path', '')}`", ""]
    out += [f"- {line}" for line in _header(r)]
    for ph in r.phases:
        out += ["", f"### {_phase_title(ph)}", "", ph.fit.summary() + "."]
        out += [f"- note: {n}" for n in ph.fit.notes]
        head, rows = _shape_rows(ph, markdown=True)
        out += ["", "| " + " | ".join(head) + " |", "|" + "|".join(" --- " for _ in head) + "|"]
        out += ["| " + " | ".join(r) + " |" for r in rows]
        out += ["", f"Ratings: {md_escape(_legend(ph))}."]
        out += [""] + [f"- {md_escape(line)}" for line in _step_lines(ph)]
    if r.findings:
        out += ["", "### Findings", "", "| severity | id | evidence | action |", "| --- | --- | --- | --- |"]
        out += [f"| {f.severity} | `{f.id}` | {md_escape(f.summary)} | {md_escape(f.action)} |" for f in r.findings]
    if r.notes:
        out += ["", "### Notes", ""] + [f"- {md_escape(n)}" for n in r.notes]
    return "\n".join(out) + "\n"


def render_json(r: Roofline) -> str:
    return dumps("roofline", r.to_dict())
