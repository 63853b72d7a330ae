"""Renderers of an ``NcclResult`` (``nsys-doctor nccl``): terminal (rich), Markdown and JSON (``nsys-doctor/2``,
``"kind": "nccl"``)."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from io import StringIO
from typing import Any

import polars as pl
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from ..analysis.nccl import NcclResult
from ..units import format_ns, pct
from .diagnosis_text import SEV_STYLE, md_escape
from .serialize import dumps


def _short(name: object, width: int = 48) -> str:
    text = str(name)
    for prefix in ("ncclDevKernel_", "ncclKernel_"):
        if text.startswith(prefix):
            text = text[len(prefix) :]
    return text if len(text) <= width else text[: width - 1] + "…"


def _where(r: dict[str, object]) -> str:
    return "-" if r.get("step") is None else f"{r['step']} #{r.get('in_step')}"


def rank_line(r: dict[str, object]) -> str:
    off = int(r.get("offset_ns") or 0)  # type: ignore[call-overload]
    extra = f", session started {off / 1e6:.3f} ms after the first" if off else ""
    return (
        f"rank {r['rank']}: {r.get('label') or r.get('path')} (rank from {r.get('source')}{extra}; "
        f"{r.get('steps', 0)} steps from {r.get('step_source') or '-'})"
    )


def _durations(r: dict[str, Any]) -> list[str]:
    """count, total, p50, p99, max of a duration summary (collective kernels, NVTX ranges)."""
    return [f"{r['count']:,}", *(format_ns(r.get(k)) for k in ("total", "p50", "p99", "max"))]


def _collective_row(r: dict[str, Any]) -> list[str]:
    return [_short(r["name"]), str(r["rank"]), *_durations(r), pct(r["wait_share"], 0)]


def _matched_row(r: dict[str, Any]) -> list[str]:
    return [
        _short(r["name"]),
        f"{r['instances']:,}",
        format_ns(r["skew_p50"]),
        format_ns(r["skew_p99"]),
        format_ns(r["skew_max"]),
        format_ns(r["transfer_p50"]),
        format_ns(r["transfer_p99"]),
        f"rank {r['most_last_rank']} ({r['most_last_count']:,})",
        pct(r["wait_share"], 0),
    ]


def _rank_row(r: dict[str, Any]) -> list[str]:
    return [
        str(r["rank"]),
        f"{r.get('collectives', 0):,}",
        format_ns(r.get("nccl_time")),
        format_ns(r.get("wait")),
        format_ns(r.get("moving")),
        pct(r.get("wait_share"), 0),
        f"{r.get('last', 0):,} ({pct(r.get('last_share'), 0)})",
        format_ns(r.get("arrival_delay_p50_ns")),
    ]


def _worst_row(r: dict[str, Any]) -> list[str]:
    return [
        _short(r["name"], 30),
        str(r["index"]),
        _where(r),
        str(r["last_rank"]),
        format_ns(r["skew"]),
        format_ns(r["transfer"]),
        format_ns(r["dur_max"]),
        str(r["cause"]),
        str(r["before"]),
    ]


def _step_row(r: dict[str, Any]) -> list[str]:
    return [str(r["step"]), str(r["instances"]), format_ns(r["skew_total"]), format_ns(r["skew_max"]), str(r["spikes"])]


def _overlap_row(r: dict[str, Any]) -> list[str]:
    return [
        str(r["rank"]),
        format_ns(r["nccl_time"]),
        format_ns(r["overlapped"]),
        format_ns(r["exposed"]),
        pct(r["overlap_share"], 0),
        pct(r["nccl_share_of_kernel_time"], 0),
    ]


def _per_step_row(r: dict[str, Any]) -> list[str]:
    keys = ("step_time_mean", "gpu_span_mean", "compute_mean", "nccl_mean", "wait_mean", "idle_mean", "own_mean")
    return [str(r["rank"]), str(r["steps"]), *(format_ns(r.get(k)) for k in keys)]


def _nvtx_row(r: dict[str, Any]) -> list[str]:
    return [str(r["name"]), str(r["rank"]), *_durations(r)]


# key -> (title, header, row maker) of every table, in the order they are shown
TABLES: dict[str, tuple[str, list[str], Callable[[dict[str, Any]], list[str]]]] = {
    "collectives": (
        "Collective kernels per rank (duration on each rank; waiting = until the last rank arrived)",
        ["collective", "rank", "count", "total", "p50", "p99", "max", "waiting"],
        _collective_row,
    ),
    "matched": (
        "Matched across ranks: arrival skew (waiting) vs transfer on the last rank (moving)",
        ["collective", "instances", "skew p50", "skew p99", "skew max", "xfer p50", "xfer p99", "last most", "waiting"],
        _matched_row,
    ),
    "ranks": (
        "Ranks: collective time split into waiting and moving; how often each rank arrives last",
        ["rank", "collectives", "time", "waiting", "moving", "waiting %", "last", "delay p50"],
        _rank_row,
    ),
    "worst": (
        "Worst instances by arrival skew (index = position in its sequence; step #n = n-th of that collective in "
        "the step)",
        ["collective", "index", "step", "late", "skew", "transfer", "longest", "cause", "late rank just before"],
        _worst_row,
    ),
    "steps": (
        "Steps with the most arrival skew",
        ["step", "collectives", "skew total", "skew max", "spikes"],
        _step_row,
    ),
    "overlap": (
        "Communication/compute overlap (collective time overlapped by compute kernels on the same GPU)",
        ["rank", "collectives", "overlapped", "exposed", "overlap", "of kernel time"],
        _overlap_row,
    ),
    "per_step": (
        "Per step (means): host step time, GPU span of the step, compute, collectives, waiting, GPU idle, "
        "own time (span minus waiting)",
        ["rank", "steps", "host step", "GPU span", "compute", "collectives", "waiting", "GPU idle", "own"],
        _per_step_row,
    ),
    "nvtx": (
        "NCCL NVTX ranges (host side: time in the NCCL call; message sizes are not in this export)",
        ["range", "rank", "count", "total", "p50", "p99", "max"],
        _nvtx_row,
    ),
}


def _table_records(res: NcclResult) -> dict[str, Iterable[dict[str, Any]]]:
    """The records of each table that has something to show."""
    out: dict[str, Iterable[dict[str, Any]]] = {}
    frames = {"collectives": res.collectives, "matched": res.matched, "worst": res.worst, "overlap": res.overlap}
    for key, frame in frames.items():
        if frame.height:
            out[key] = frame.iter_rows(named=True)
    if res.ranks:
        out["ranks"] = res.ranks
    top = res.steps.get("top") if isinstance(res.steps, dict) else None
    if isinstance(top, list) and top:
        out["steps"] = (r for r in top if isinstance(r, dict))
    if res.imbalance.height and "own_mean" in res.imbalance.columns:
        out["per_step"] = res.imbalance.filter(pl.col("steps") > 0).iter_rows(named=True)
    if res.nvtx.height:
        out["nvtx"] = res.nvtx.iter_rows(named=True)
    return out


def nccl_tables(res: NcclResult) -> list[tuple[str, str, list[str], list[list[str]]]]:
    """(key, title, header, rows) of every table, shared by the terminal and Markdown renderers."""
    records = _table_records(res)
    return [
        (key, title, header, [row(r) for r in records[key]])
        for key, (title, header, row) in TABLES.items()
        if key in records
    ]


COMPACT = ("ranks", "per_step")


def render_terminal(res: NcclResult, width: int = 160, color: bool = True, compact: bool = False) -> str:
    """The whole analysis; ``compact``: headline, findings and the per-rank tables (for ``report``)."""
    buf = StringIO()
    con = Console(
        file=buf, width=width, force_terminal=color, color_system="standard" if color else None, highlight=False
    )
    con.print(f"[bold]nsys-doctor nccl[/bold]  {len(res.ranks)} ranks (times aligned by session start)")
    for r in res.ranks:
        con.print(f"  {escape(rank_line(r))}")
    con.print()
    con.print("[bold]Diagnosis[/bold]")
    for line in res.headline:
        con.print(f"  {escape(line)}")
    con.print()
    if res.findings:
        con.print("[bold]Findings[/bold]")
        for f in res.findings:
            con.print(f"  [{SEV_STYLE[f.severity]}]{f.severity:<8}[/] [bold]{f.id}[/bold] {escape(f.title)}")
            con.print(f"           {escape(f.summary)}")
            con.print(f"           [dim]-> {escape(f.action)}[/dim]")
        con.print()
    for key, title, header, rows in nccl_tables(res):
        if compact and key not in COMPACT:
            continue
        con.print(f"[bold]{escape(title)}[/bold]")
        t = Table(box=None, pad_edge=False)
        for i, h in enumerate(header):
            t.add_column(h, justify="left" if i == 0 or h in ("cause", "late rank just before", "range") else "right")
        for row in rows:
            t.add_row(*(escape(c) for c in row))
        con.print(t)
        con.print()
    for n in res.notes:
        con.print(f"note: {escape(n)}")
    return buf.getvalue()


def render_markdown(res: NcclResult, compact: bool = False) -> str:
    out = [f"## nsys-doctor nccl: {len(res.ranks)} ranks", ""]
    out += [f"- {md_escape(rank_line(r))}" for r in res.ranks]
    out += ["", "### Diagnosis", ""] + [f"- {md_escape(line)}" for line in res.headline]
    if res.findings:
        out += ["", "### Findings", "", "| severity | id | evidence | action |", "| --- | --- | --- | --- |"]
        out += [f"| {f.severity} | `{f.id}` | {md_escape(f.summary)} | {md_escape(f.action)} |" for f in res.findings]
    for key, title, header, rows in nccl_tables(res):
        if compact and key not in COMPACT:
            continue
        out += ["", f"### {md_escape(title)}", "", "| " + " | ".join(header) + " |", "|" + " --- |" * len(header)]
        out += ["| " + " | ".join(md_escape(c) for c in row) + " |" for row in rows]
    if res.notes:
        out += [""] + [f"> note: {md_escape(n)}" for n in res.notes]
    return "\n".join(out) + "\n"


def render_json(res: NcclResult) -> str:
    return dumps("nccl", res.to_dict())
