"""Renderers of an ``Explanation`` (``nsys-doctor explain``): terminal (rich), Markdown and JSON (nsys-doctor/2).

The answer first (diagnosis, next actions, findings), then the evidence read from the pasted tables, then what the
text cannot tell and how to capture it.
"""

from __future__ import annotations

from collections.abc import Callable
from io import StringIO
from typing import Any

from rich.console import Console
from rich.markup import escape
from rich.table import Table

from ..analysis.explain import DIRECTION_WORDS, Explanation
from ..units import format_bytes, format_ns, pct
from .diagnosis_text import SEV_STYLE, md_escape, md_table, short
from .serialize import dumps

KERNEL_ROWS = 8
FAMILY_ROWS = 8


def _count(x: object) -> str:
    return "-" if not isinstance(x, int | float) else f"{int(x):,}"


def _rows(x: object) -> list[dict[str, Any]]:
    """The row objects of a section of the explanation (a list of dicts); anything else has none."""
    return [r for r in x if isinstance(r, dict)] if isinstance(x, list) else []


def _map(x: object) -> dict[str, Any]:
    return x if isinstance(x, dict) else {}


def _ns(x: object) -> str:
    return format_ns(x) if isinstance(x, int | float) else "-"


def _family_cells(r: dict[str, Any], esc: Callable[[str], str]) -> list[str]:
    """category (escaped by ``esc``), family, share, total, instances, kernels: a family's row in the terminal and
    Markdown tables."""
    return [
        esc(str(r["category"])),
        str(r["family"]),
        pct(r["share"]),
        _ns(r["total_ns"]) if r["total_ns"] else "-",
        _count(r["count"]),
        str(r["kernels"]),
    ]


def _kernel_times(r: dict[str, Any]) -> list[str]:
    """share, total, count, avg, med, max: the numbers of a kernel's row in the terminal and Markdown tables."""
    times = [_ns(r[k]) for k in ("avg_ns", "med_ns", "max_ns")]
    return [pct(r["share"]), _ns(r["total_ns"]), _count(r["count"]), *times]


def _bytes(n: object, resolution: object) -> str:
    """Bytes; sizes the table rounded to zero are shown as below its resolution ("< 500 B")."""
    if isinstance(resolution, int | float) and isinstance(n, int | float) and n < resolution:
        return f"< {format_bytes(resolution)}"
    return format_bytes(n)  # type: ignore[arg-type]


def _tables_line(e: Explanation) -> str:
    parts = []
    for t in _rows(e.source["tables"]):
        name = (t["report"] or t["kind"]) + (f":{t['args']}" if t["args"] else "")
        extra = ", partial" if t["partial"] else ""
        if not t.get("readable", True):
            extra += ", numbers not read"
        rows = "1 row" if t["rows"] == 1 else f"{t['rows']} rows"
        parts.append(f"{name} ({t['layout']}, {rows}, line {t['line']}{extra})")
    return f"Read {len(parts)} table{'s' if len(parts) != 1 else ''}: " + "; ".join(parts)


def _coverage_lines(e: Explanation) -> list[str]:
    """What the tables cover: partial tables, tables whose numbers were not read, and whole run or window."""
    s = e.source
    lines = []
    partial = s.get("partial_tables") or []
    if partial:
        lines.append(
            "Partial (rows missing, nothing concluded from what they lack): "
            + "; ".join(f"{p['report']} at line {p['line']} ({p['why']})" for p in _rows(partial))
        )
    for u in _rows(s.get("unreadable_tables")):
        cols = "; ".join(f"{h!r}: {why}" for h, why in u["columns"].items())
        lines.append(f"Not interpreted: {u['report']} at line {u['line']}, numbers not read without guessing ({cols})")
    evidence = s.get("scope_evidence") or []
    if s.get("scope") == "window" and evidence:
        lines.append(f"Scope: a window of the run ({evidence[0]})")  # type: ignore[index]
    elif e.api or e.memory:
        lines.append("Scope: the whole run (no filter or capture range in the text), start-up included")
    return lines


def _kernel_line(e: Explanation) -> str | None:
    s = e.source
    if not s.get("kernel_table"):
        return None
    return (
        f"Kernels from {s['kernel_table']}: {_ns(s.get('kernel_time_ns'))} of kernel time in "
        f"{_count(s.get('kernel_instances'))} instances; shares are of {s['kernel_shares_of']}"
    )


def _host_lines(e: Explanation) -> list[str]:
    a = e.api
    if not a:
        return []

    def g(key: str) -> dict:
        return a[key]  # type: ignore[return-value]

    least = "" if a.get("complete", True) else "at least "
    lines = [
        f"{least}{_count(a['kernel_launches'])} kernel launches ({_ns(a['kernel_launch_ns'])} in launch calls), "
        f"{_count(g('graph_launches')['count'])} CUDA graph launches; {_count(g('syncs')['count'])} syncs "
        f"({_ns(g('syncs')['total_ns'])}); {_count(g('sync_memcpy')['count'])} synchronous memcpy, "
        f"{_count(g('sync_memset')['count'])} synchronous memset; {_count(g('allocations')['count'])} allocation "
        f"calls; {_count(g('module_loads')['count'])} module loads",
        "Top API calls: "
        + ", ".join(
            f"{r['name']} {pct(r['share'])} ({_ns(r['total_ns'])}, {_count(r['count'])} calls)" for r in _rows(a["top"])
        ),
    ]
    if not a.get("complete", True):
        lines.append(
            "the CUDA API table is partial: counts are of the rows shown (at least), absent calls prove nothing"
        )
    return lines


def _memory_lines(e: Explanation) -> list[str]:
    m = e.memory
    if not m:
        return []
    parts = []
    for d, v in sorted(_map(m["by_direction"]).items(), key=lambda kv: (-(kv[1]["total_ns"] or 0), kv[0])):
        word = DIRECTION_WORDS.get(d.removeprefix("unified-"), d)
        if d.startswith("unified-"):
            word = "unified memory " + word
        bits = [f"{_count(v['count'])} ops"]
        if v["total_ns"] is not None:
            bits.insert(0, f"{pct(v['share_of_copy_time'])} of copy time")
        if v["bytes"] is not None:
            bits.append(_bytes(v["bytes"], m.get("bytes_resolution")))
        if v["avg_bytes"] is not None:
            bits.append(f"{_bytes(v['avg_bytes'], m.get('bytes_resolution'))} each")
        parts.append(f"{word}: " + ", ".join(bits))
    lines = [f"{_ns(m.get('total_ns'))} in copies and memsets; " + "; ".join(parts)]
    if m.get("share_of_gpu_time") is not None:
        least = "at least " if m.get("share_at_least") else ""
        lines.append(f"copies are {least}{pct(m['share_of_gpu_time'])} of GPU time (kernels + copies)")
    if m.get("note"):
        lines.append(str(m["note"]))
    look = m.get("copies_look_like")
    if look:
        word = {"loading": "loading (start-up)", "per-step": "per-step copies", "unknown": "cannot tell"}[str(look)]
        lines.append(f"copies look like: {word}: {m.get('copies_why')}")
    if m.get("complete") is False:
        lines.append("the memory tables are partial: copies absent from the rows shown prove nothing")
    p = m.get("pageable")
    if isinstance(p, dict):
        lines.append(f"pageable copies: {_count(p['copies'])} ({p['source']})")
    return lines


def _other_lines(e: Explanation) -> list[tuple[str, list[str]]]:
    out = []
    if e.nccl:
        ks = ", ".join(f"{k['label']} {pct(k['share'])}" for k in _rows(e.nccl["kernels"]))
        out.append(("Communication (NCCL)", [f"{pct(e.nccl['share'])} of kernel time: {ks}"]))
    g = e.graphs
    if g.get("graph_launch_calls"):
        trace = g.get("inferred_trace")
        how = f"kernels traced per {trace} (inferred)" if trace else "trace mode unknown"
        out.append(("CUDA graphs", [f"{_count(g['graph_launch_calls'])} graph launches; {how}: {g.get('why', '')}"]))
    elif e.api and g.get("complete"):
        out.append(("CUDA graphs", ["no cudaGraphLaunch in the API table: kernels are launched one by one"]))
    elif e.api:
        out.append(
            (
                "CUDA graphs",
                [
                    "no cudaGraphLaunch in the rows shown, but the CUDA API table is partial: "
                    "whether graphs are used is unknown"
                ],
            )
        )
    n = e.nvtx
    if n:
        lines = []
        st = n.get("steps")
        if isinstance(st, dict):
            lines.append(
                f"steps: `{st['name']}` x{_count(st['count'])}, median {_ns(st['med_ns'])}, average "
                f"{_ns(st['avg_ns'])}, slowest {_ns(st['max_ns'])} (profiled: stretched by the profiler)"
            )
        lines.append(
            "ranges: "
            + ", ".join(f"{r['name']} x{_count(r['count'])} ({_ns(r['total_ns'])})" for r in _rows(n["ranges"]))
        )
        out.append(("NVTX", lines))
    return out


def render_terminal(e: Explanation, width: int = 140, color: bool = True) -> str:
    buf = StringIO()
    con = Console(
        file=buf, width=width, force_terminal=color, color_system="standard" if color else None, highlight=False
    )

    def say(text: str = "", style: str = "") -> None:
        con.print(f"[{style}]{escape(text)}[/]" if style and text else escape(text))

    con.print(f"[bold]nsys-doctor explain[/bold]  {escape(str(e.source.get('path')))}")
    say(_tables_line(e))
    kl = _kernel_line(e)
    if kl:
        say(kl)
    for line in _coverage_lines(e):
        say(line)
    say()
    con.print("[bold]Diagnosis[/bold]")
    say(f"  {e.diagnosis.get('why', 'nothing to explain')}")
    for i, a in enumerate(e.next_actions, 1):
        say(f"  {i}. {a}")
    say()
    if e.findings:
        con.print("[bold]Findings[/bold]")
        for f in e.findings:
            con.print(f"  [{SEV_STYLE[f.severity]}]{f.severity:<8}[/] [bold]{f.id}[/bold]: {escape(f.summary)}")
        say()
    if e.families:
        fam = Table(title="Families (share of GPU kernel time)", title_justify="left", box=None)
        for c in ("category", "family", "share", "total", "instances", "kernels"):
            fam.add_column(c, justify="left" if c in ("category", "family") else "right")
        for r in e.families[:FAMILY_ROWS]:
            fam.add_row(*_family_cells(r, escape))
        con.print(fam)
        say()
    if e.kernels:
        kt = Table(title="Top kernels", title_justify="left", box=None)
        for c in ("share", "total", "count", "avg", "med", "max", "family", "kernel"):
            kt.add_column(c, justify="left" if c in ("family", "kernel") else "right")
        for r in e.kernels[:KERNEL_ROWS]:
            kt.add_row(*_kernel_times(r), str(r["family"]), escape(short(str(r["label"]), 50)))
        con.print(kt)
        say()
    for title, lines in (("Host (CUDA API table)", _host_lines(e)), ("Memory copies", _memory_lines(e))):
        if lines:
            con.print(f"[bold]{title}[/bold]")
            for line in lines:
                say(f"  {line}")
            say()
    for title, lines in _other_lines(e):
        con.print(f"[bold]{title}[/bold]")
        for line in lines:
            say(f"  {line}")
        say()
    con.print("[bold]What the text cannot tell[/bold]")
    for line in e.cannot_tell:
        say(f"  - {line}")
    notes = [*e.notes, *_issues(e)]
    if notes:
        say()
        con.print("[bold]Notes[/bold]")
        for n in notes:
            say(f"  - {n}")
    return buf.getvalue()


def _issues(e: Explanation) -> list[str]:
    return [f"table at line {t['line']}: {i}" for t in _rows(e.source["tables"]) for i in t["issues"]]


def render_markdown(e: Explanation) -> str:
    out = [f"## nsys-doctor explain: `{e.source.get('path')}`", "", _tables_line(e) + "."]
    kl = _kernel_line(e)
    if kl:
        out += ["", kl + "."]
    coverage = _coverage_lines(e)
    if coverage:
        out += [""] + [f"- {md_escape(line)}" for line in coverage]
    out += ["", "### Diagnosis", "", str(e.diagnosis.get("why", "nothing to explain")), ""]
    out += [f"{i}. {a}" for i, a in enumerate(e.next_actions, 1)]
    if e.findings:
        out += md_table(
            "Findings",
            ["severity", "id", "evidence"],
            "lll",
            ([f.severity, f"`{f.id}`", md_escape(f.summary)] for f in e.findings),
        )
    if e.families:
        out += md_table(
            "Families",
            ["category", "family", "share", "total", "instances", "kernels"],
            "llrrrr",
            (_family_cells(r, md_escape) for r in e.families[:FAMILY_ROWS]),
        )
    if e.kernels:
        out += md_table(
            "Top kernels",
            ["share", "total", "count", "avg", "med", "max", "family", "kernel"],
            "rrrrrrll",
            (
                [*_kernel_times(r), r["family"], f"`{md_escape(short(str(r['label'])))}`"]
                for r in e.kernels[:KERNEL_ROWS]
            ),
        )
    for title, lines in (("Host (CUDA API table)", _host_lines(e)), ("Memory copies", _memory_lines(e))):
        if lines:
            out += ["", f"### {title}", ""] + [f"- {md_escape(line)}" for line in lines]
    for title, lines in _other_lines(e):
        out += ["", f"### {title}", ""] + [f"- {md_escape(line)}" for line in lines]
    out += ["", "### What the text cannot tell", ""] + [f"- {line}" for line in e.cannot_tell]
    notes = [*e.notes, *_issues(e)]
    if notes:
        out += ["", "### Notes", ""] + [f"- {md_escape(n)}" for n in notes]
    return "\n".join(out) + "\n"


def render_json(e: Explanation) -> str:
    return dumps("explain", e.to_dict())
