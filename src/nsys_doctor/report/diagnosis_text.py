"""Terminal and Markdown renderers of a ``Diagnosis``: the answer first, then the evidence."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from io import StringIO
from typing import Any

from rich.console import Console
from rich.table import Table

from ..analysis.diagnosis import Diagnosis
from ..analysis.findings import Finding
from ..analysis.metrics import METRIC_KEYS, METRIC_WORDS, describe_callsite, describe_memory
from ..units import format_ns, pct

SEV_STYLE = {"critical": "bold red", "warning": "yellow", "info": "cyan"}
NAME_WIDTH = 60


MATCH_MARKS = {"meaning": "*", "structure": "+"}  # how a family was found, when not from a known library's name


def short(name: str, width: int = NAME_WIDTH) -> str:
    return name if len(name) <= width else name[: width - 1] + "…"


def steps_lines(d: Diagnosis) -> list[str]:
    s = d.step_summary
    if d.kernels.is_empty():
        return ["no step analysis: no kernel ran in the window"]
    lines = [f"{s['count']} step{'' if s['count'] == 1 else 's'} found ({s['source']})"]
    for kind in ("prefill", "decode", "step"):
        k = s.get(kind)
        if not isinstance(k, dict):
            continue
        g, w = k["gpu_time"], k["step_time"]
        lines.append(
            f"{kind}: {k['count']} step{'' if k['count'] == 1 else 's'}; "
            f"GPU time per step p50 {format_ns(g['p50_ns'])}, "
            f"p95 {format_ns(g['p95_ns'])}, p99 {format_ns(g['p99_ns'])}, max {format_ns(g['max_ns'])}; "
            f"host step time p50 {format_ns(w['p50_ns'])} (max {format_ns(w['max_ns'])}); "
            + (
                f"GPU step period p50 {format_ns(k['gpu_period']['p50_ns'])}; "
                if k.get("gpu_period", {}).get("p50_ns") is not None
                else ""
            )
            + f"{k['kernels_per_step_p50']} kernels and {k['launches_per_step_p50']} launches per step"
        )
    lines.append(str(s["warning"]))
    return lines


def timing_line(d: Diagnosis) -> str | None:
    """Unprofiled vs traced timing, when the capture recorded a baseline run."""
    t = d.timing or {}
    base = t.get("baseline")
    if not isinstance(base, dict) or base.get("value") is None:
        return None
    unit = base.get("unit") or ""
    line = f"unprofiled {base.get('metric')}: {base['value']}{unit}"
    traced = t.get("trace_timing")
    if isinstance(traced, dict) and traced.get("value") is not None:
        line += f"; in the trace {traced.get('metric')}: {traced['value']:.3f}{traced.get('unit') or ''}"
        if t.get("trace_inflation"):
            line += f" (x{float(t['trace_inflation']):.2f})"  # type: ignore[arg-type]
    under = t.get("traced")
    if isinstance(under, dict) and under.get("value") is not None and t.get("inflation"):
        line += (
            f"; the application under nsys: {under['value']}{under.get('unit') or ''} (x{float(t['inflation']):.2f})"  # type: ignore[arg-type]
        )
    return line + ". Quote the unprofiled number for latency."


def host_lines(d: Diagnosis) -> list[str]:
    h = d.host
    out = [
        f"GPU busy {pct(h.gpu_busy_share)} of the window; idle {pct(h.step_gpu_idle_share)} inside steps "
        "(between a step's first and last kernel)",
        f"{h.launches:,} launch calls ({h.launches_per_step if h.launches_per_step is not None else '-'} per step), "
        f"{format_ns(h.launch_api_ns)} in launch APIs; queue (launch to start) p50 {format_ns(h.queue_p50_ns)}, "
        f"p95 {format_ns(h.queue_p95_ns)}",
        f"syncs in window {h.syncs.count} ({h.syncs.in_steps} in steps); sync memcpy {h.sync_memcpy.count}; "
        f"allocations {h.allocations.count}; module loads {h.module_loads.count}; pageable copies "
        f"{h.pageable_copies}",
    ]
    if h.gaps.height:
        out.append(f"{h.gaps.height} GPU idle gaps >= {format_ns(h.gap_threshold_ns)} inside the window")
    if h.loading_gaps.height:
        out.append(f"{h.loading_gaps.height} long idle gaps before the window (loading / warm-up, not a problem)")
    return out


def _pct_metric(v: object) -> str:
    return pct(v, 0, scale=1.0)


def _metric_values(values: object) -> str:
    v = values if isinstance(values, dict) else {}
    return ", ".join(f"{METRIC_WORDS[k]} {_pct_metric(v.get(k))}" for k in METRIC_KEYS)


def metrics_lines(d: Diagnosis) -> list[str]:
    """The GPU metrics section's summary lines (empty without GPU metrics)."""
    g = d.gpu_metrics
    if not g:
        return []
    lines = [f"window ({g['samples_in_window']:,} samples): {_metric_values(g['window'])}"]
    steps = g.get("steps")
    for kind, s in steps.items() if isinstance(steps, dict) else []:
        lines.append(f"{kind} steps (median of {s['steps']} per-step means): {_metric_values(s)}")
    fit = g.get("fit")
    if isinstance(fit, dict):
        r2 = fit.get("r2", {}).get("dram_read")
        lines.append(
            f"while each runs: least-squares fit of {fit['samples']:,} samples on the time each kernel covers in "
            f"them ({fit['kernels']} kernels with a rate of their own"
            + (f"; R² of DRAM read {r2:.3f}" if r2 is not None else "")
            + "); 'inside' counts the samples taken while an instance ran"
        )
    return lines


def metrics_rows(d: Diagnosis, families: int = 6, kernels: int = 5) -> list[list[str]]:
    """Rows (what, name, inside, SM active, DRAM read, DRAM write, tensor) for the families and top kernels."""
    g = d.gpu_metrics or {}
    rows: list[list[str]] = []
    for f in (g.get("families") or [])[:families]:  # type: ignore[index]
        w = f.get("while_running") or {}
        cat, fam = str(f["category"]), str(f["family"])
        name = f"{fam} ({cat})" if cat == "elementwise / other" and fam not in ("other", "elementwise") else cat
        rows.append(["family", name, f"{f['samples_inside']:,}", *(_pct_metric(w.get(k)) for k in METRIC_KEYS)])
    for k in (g.get("kernels") or [])[:kernels]:  # type: ignore[index]
        w = k.get("while_running") or {}
        rows.append(
            ["kernel", str(k.get("label") or k["name"]), f"{k['samples_inside']:,}"]
            + [_pct_metric(w.get(m)) for m in METRIC_KEYS]
        )
    return rows


def memory_lines(d: Diagnosis) -> list[str]:
    return describe_memory(d.memory) if d.memory else []


def callsite_lines(d: Diagnosis, n: int = 6) -> list[str]:
    c = d.callchains
    if not c:
        return []
    sites = c.get("sites") or []
    lines = [describe_callsite(s) for s in sites[:n]]  # type: ignore[index]
    lines.append(f"{c['calls']} calls with a host stack in the window; {c['note']}")
    return lines


def command_lines(d: Diagnosis) -> list[tuple[str, str, str]]:
    """(what, command, why) of each next command; ``what`` says where to run it."""
    out = []
    for c in d.next_commands:
        where = f" (run in {c['cwd']})" if c.get("cwd") else ""
        out.append((f"{c['what']}{where}", str(c["command"]), str(c["why"])))
    return out


def render_terminal(d: Diagnosis, width: int = 140, color: bool = True) -> str:
    buf = StringIO()
    con = Console(
        file=buf, width=width, force_terminal=color, color_system="standard" if color else None, highlight=False
    )
    t = d.trace
    con.print(f"[bold]nsys-doctor report[/bold]  {t.get('path')}")
    con.print(
        f"{t.get('gpu') or 'GPU unknown'} · nsys {t.get('nsys_version') or '?'} · "
        f"graph trace {t.get('cuda_graph_trace') or '?'}"
    )
    w = d.window
    con.print(f"Window  {w.start / 1e9:.3f}s to {w.end / 1e9:.3f}s ({format_ns(w.duration)}): {w.reason}")
    if d.run:
        con.print(f"Run     {run_line(d.run)}")
    timing = timing_line(d)
    if timing:
        con.print(f"Timing  {timing}")
    for note in d.notes:
        con.print(f"Note    {note}")
    con.print()
    con.print("[bold]Diagnosis[/bold]")
    con.print(f"  {d.target.get('why', 'nothing to analyze')}")
    if d.target.get("measured"):
        con.print(f"  {d.target['measured']}", markup=False)
    for i, a in enumerate(d.next_actions, 1):
        con.print(f"  {i}. {a}")
    if d.next_commands:
        con.print("  [bold]Next commands[/bold]")
        for what, command, why in command_lines(d):
            con.print(f"  {what}:", markup=False)
            con.print(f"    {command}", markup=False, soft_wrap=True)
            con.print(f"    why: {why}", markup=False)
    con.print()
    if d.findings:
        con.print("[bold]Findings[/bold]")
        for f in d.findings:
            con.print(f"  [{SEV_STYLE[f.severity]}]{f.severity:<8}[/] [bold]{f.id}[/bold]{cost_text(f)}: {f.summary}")
        con.print()
    fam = Table(
        title="Families (share of GPU time in the window: kernels, copies, memsets)", title_justify="left", box=None
    )
    for c in ("category", "family", "share", "total", "per step", "kernels", "instances"):
        fam.add_column(c, justify="left" if c in ("category", "family") else "right")
    for r in d.families.head(8).iter_rows(named=True):
        fam.add_row(*_family_cells(r), f"{r['count']:,}")
    if d.families.height:
        con.print(fam)
        con.print()
    kt = Table(title="Top kernels", title_justify="left", box=None)
    for c in ("share", "total", "count", "p50", "p99", "max", "family", "kernel"):
        kt.add_column(c, justify="left" if c in ("family", "kernel") else "right")
    for r in d.kernels.head(5).iter_rows(named=True):
        kt.add_row(
            *_kernel_times(r),
            str(r["family"]) + MATCH_MARKS.get(str(r.get("match")), ""),
            short(str(r["label"]), 50),
        )
    if d.kernels.height:
        con.print(kt)
        if "match" in d.kernels.columns:
            shown = set(d.kernels.head(5)["match"].to_list())
            if "meaning" in shown:
                con.print("  * family read from the kernel's own name (no known library): less sure")
            if "structure" in shown:
                con.print("  + family from where the kernel runs (its steps or layers), not from its name")
        con.print()
    tt = Table(title="Tails (by tail score)", title_justify="left", box=None)
    for c in ("score", "max/p50", "p99/p50", "p50", "max", "count", "grid", "kernel"):
        tt.add_column(c, justify="left" if c in ("kernel", "grid") else "right")
    for r in d.kernel_tails.head(5).iter_rows(named=True):
        grid = r["typical_grid"] or ""
        if r.get("tail_grid") and r["tail_grid"] != r["typical_grid"]:
            grid = f"{grid} (slowest {r['tail_grid']})"
        tt.add_row(
            f"{r['tail_score']:.0f}",
            f"{r['max_p50'] or 0:.1f}",
            f"{r['p99_p50'] or 0:.2f}",
            format_ns(r["p50"]),
            format_ns(r["max"]),
            f"{r['count']:,}",
            grid,
            short(str(r["label"]), 40),
        )
    if d.kernel_tails.height:
        con.print(tt)
        con.print()
    con.print("[bold]Steps[/bold]")
    for line in steps_lines(d):
        con.print(f"  {line}")
    con.print()
    con.print("[bold]Host[/bold]")
    for line in host_lines(d):
        con.print(f"  {line}")
    if d.gpu_metrics:
        g = d.gpu_metrics
        con.print()
        con.print(f"[bold]GPU metrics[/bold] (GPU {g['gpu']}, {g['frequency_hz']:,} Hz; % of the GPU's peak)")
        for line in metrics_lines(d):
            con.print(f"  {line}", markup=False)
        mt = Table(box=None)
        for c in ("", "while it runs", "inside", "SM active", "DRAM read", "DRAM write", "tensor"):
            mt.add_column(c, justify="left" if c in ("", "while it runs") else "right")
        for row in metrics_rows(d):
            mt.add_row(row[0], short(row[1], 50), *row[2:])
        con.print(mt)
    if d.memory:
        con.print()
        con.print(f"[bold]Device memory[/bold] (GPU {d.memory.get('device')}, {d.memory['events']:,} events)")
        for line in memory_lines(d):
            con.print(f"  {line}", markup=False)
    if d.callchains:
        con.print()
        con.print("[bold]Host call sites of the slowest CUDA API calls[/bold] (--cudabacktrace)")
        for line in callsite_lines(d):
            con.print(f"  {line}", markup=False)
    if d.unmapped:
        con.print()
        con.print(f"[bold]Unmapped kernels[/bold] ({len(d.unmapped)}; add rules with --ops FILE)")
        for n in d.unmapped[:10]:
            con.print(f"  {short(n, 110)}")
    return buf.getvalue()


def md_escape(s: str) -> str:
    return s.replace("|", "\\|").replace("<", "&lt;").replace(">", "&gt;")


def _family_cells(r: dict[str, Any]) -> list[str]:
    """category, family, share, total, per step, kernels: a family's row in the terminal and Markdown tables."""
    return [
        str(r["category"]),
        str(r["family"]),
        pct(r["share"]),
        format_ns(r["total"]),
        format_ns(r["per_step_ns"]),
        str(r["kernels"]),
    ]


def _kernel_times(r: dict[str, Any]) -> list[str]:
    """share, total, count, p50, p99, max: the numbers of a kernel's row in the terminal and Markdown tables."""
    return [
        pct(r["share"]),
        format_ns(r["total"]),
        f"{r['count']:,}",
        format_ns(r["p50"]),
        format_ns(r["p99"]),
        format_ns(r["max"]),
    ]


def md_table(title: str, header: Sequence[str], align: str, rows: Iterable[Sequence[object]]) -> list[str]:
    """A Markdown section holding one table: a blank line, ``### title``, a blank line, the header, its alignment
    row (``align``: one letter a column, ``l`` or ``r``) and one line a row."""
    return [
        "",
        f"### {title}",
        "",
        "| " + " | ".join(header) + " |",
        "| " + " | ".join("---:" if a == "r" else "---" for a in align) + " |",
        *("| " + " | ".join(str(cell) for cell in row) + " |" for row in rows),
    ]


def render_markdown(d: Diagnosis) -> str:
    t = d.trace
    w = d.window
    out = [f"## nsys-doctor report: `{t.get('path')}`", ""]
    out.append(
        f"{t.get('gpu') or 'GPU unknown'}, nsys {t.get('nsys_version') or '?'}, CUDA graph trace "
        f"`{t.get('cuda_graph_trace') or '?'}`. Window {w.start / 1e9:.3f} s to {w.end / 1e9:.3f} s "
        f"({format_ns(w.duration)}): {w.reason}."
    )
    if d.run:
        out += ["", f"Run: {md_escape(run_line(d.run))}."]
    out += ["", "### Diagnosis", "", str(d.target.get("why", "nothing to analyze")), ""]
    if d.target.get("measured"):
        out += [str(d.target["measured"]), ""]
    out += [f"{i}. {a}" for i, a in enumerate(d.next_actions, 1)]
    if d.next_commands:
        out += ["", "Next commands:", ""]
        for what, command, why in command_lines(d):
            out += [f"- {what}: {why}", "", "  ```sh", f"  {command}", "  ```"]
    if d.findings:
        out += md_table(
            "Findings",
            ["severity", "id", "cost", "evidence"],
            "llll",
            ([f.severity, f"`{f.id}`", cost_text(f).strip(" ()") or "-", md_escape(f.summary)] for f in d.findings),
        )
    out += md_table(
        "Families",
        ["category", "family", "share", "total", "per step", "kernels"],
        "llrrrr",
        (_family_cells(r) for r in d.families.head(8).iter_rows(named=True)),
    )
    out += md_table(
        "Top kernels",
        ["share", "total", "count", "p50", "p99", "max", "family", "kernel"],
        "rrrrrrll",
        (
            [*_kernel_times(r), r["family"], f"`{md_escape(short(str(r['label'])))}`"]
            for r in d.kernels.head(5).iter_rows(named=True)
        ),
    )
    out += ["", "### Steps", ""] + [f"- {line}" for line in steps_lines(d)]
    out += ["", "### Host", ""] + [f"- {line}" for line in host_lines(d)]
    if d.gpu_metrics:
        g = d.gpu_metrics
        out += ["", f"### GPU metrics (GPU {g['gpu']}, {g['frequency_hz']:,} Hz; % of the GPU's peak)", ""]
        out += [f"- {md_escape(line)}" for line in metrics_lines(d)]
        out += [
            "",
            "| | while it runs | inside | SM active | DRAM read | DRAM write | tensor |",
            "| --- | --- | ---: | ---: | ---: | ---: | ---: |",
        ]
        out += [f"| {r[0]} | `{md_escape(short(r[1]))}` | " + " | ".join(r[2:]) + " |" for r in metrics_rows(d)]
    if d.memory:
        out += ["", f"### Device memory (GPU {d.memory.get('device')}, {d.memory['events']:,} events)", ""]
        out += [f"- {md_escape(line)}" for line in memory_lines(d)]
    if d.callchains:
        out += ["", "### Host call sites of the slowest CUDA API calls (--cudabacktrace)", ""]
        out += [f"- {md_escape(line)}" for line in callsite_lines(d)]
    return "\n".join(out) + "\n"


def cost_text(f: Finding) -> str:
    """`` (2.302 s, 51% of the window)`` for a finding with a cost, else empty."""
    if f.cost_ns is None:
        return ""
    share = f", {100 * f.cost_share:.0f}% of the window" if f.cost_share is not None else ""
    return f" ({format_ns(f.cost_ns)}{share})"


RUN_WORDS = {
    "llm-decode": "LLM decode",
    "llm-prefill": "LLM prefill only",
    "iterations": "repeated forward passes (not token-by-token decode)",
    "unstructured": "no repeating forward pass in the kernel sequence (any steps below come from host syncs, NVTX "
    "ranges or graph launches)",
}


def run_line(run: dict[str, object]) -> str:
    """One line: the kind of run, what was measured and how sure the structure is."""
    kind = str(run.get("kind"))
    parts = [RUN_WORDS.get(kind, kind)]
    accum = run.get("micro_batches")
    rq_word, it_word = "request(s)", "iterations"
    if kind == "iterations" and run.get("training"):
        parts[0] = "training steps (forward, backward and optimizer; not inference)"
        it_word = "training steps"
        if accum:
            parts[0] = (
                f"training with gradient accumulation (an optimizer step of {accum} micro-batches, each a forward and "
                "a backward pass; not inference)"
            )
            rq_word, it_word = "optimizer step(s)", "micro-batches"
    drafts = run.get("draft_passes")
    if drafts:
        share = run.get("draft_share")
        spent = f"; the drafts take {share:.0%} of a step" if isinstance(share, float) else ""
        parts[0] += (
            f" with speculative decoding (a step: draft passes of a small model, {drafts} in the median, then one "
            f"verify pass{spent})"
        )
    if kind != "unstructured":
        counts = [f"{run.get(k)} {w}" for k, w in (("prefill_steps", "prefill"), ("decode_steps", "decode"),
                                                     ("iterations", it_word)) if run.get(k)]  # fmt: skip
        req = f"{run.get('requests')} measured {rq_word}"
        if run.get("warmup_requests"):
            req += f", {run.get('warmup_requests')} warm-up left out"
        parts.append(f"{req}; steps: {', '.join(counts) or 'none'}")
        parts.append(f"from {run.get('source')}, {run.get('confidence')} confidence")
    return "; ".join(parts)
