"""Reading the pasted tables: short kernel names, the table to use for each fact, per-name statistics."""

from __future__ import annotations

import re
from dataclasses import dataclass

from ...trace.pasted import PastedTable, PastedText
from ..host import ALLOC_API, ASYNC, SYNC_MEMCPY_API, SYNC_MEMSET_API
from ..phases import GRAPH_LAUNCH_API, LAUNCH_API, MODULE_LOAD_API, SYNC_API

API_GROUPS = {
    "launches": (LAUNCH_API, None),
    "graph_launches": (GRAPH_LAUNCH_API, None),
    "syncs": (SYNC_API, None),
    "allocations": (ALLOC_API, None),
    "module_loads": (MODULE_LOAD_API, None),
    "sync_memcpy": (SYNC_MEMCPY_API, ASYNC),
    "sync_memset": (SYNC_MEMSET_API, ASYNC),
}


# --- names ------------------------------------------------------------------------------------------------------


def short_name(name: str) -> str:
    """The function's own name from a demangled signature: ``void at::native::elementwise_kernel<...>(...)`` ->
    ``elementwise_kernel``; names cut with ``…`` work too."""
    text = re.sub(r"^\s*void\s+", "", name.rstrip().removesuffix("…").removesuffix("..."))
    cut = len(text)
    depth = 0
    for i, ch in enumerate(text):
        if ch in "<(" and depth == 0 and (ch == "(" or (i and (text[i - 1].isalnum() or text[i - 1] == "_"))):
            cut = i
            break
        if ch == "<":
            depth += 1
        elif ch == ">" and depth:
            depth -= 1
    head = text[:cut]
    parts = [p for p in head.split("::") if p and not p.startswith("<")]
    return (parts[-1].strip() if parts else "") or name


def as_dict(v: object) -> dict[str, object]:
    return v if isinstance(v, dict) else {}


def num(v: object) -> float | None:
    return float(v) if isinstance(v, int | float) and not isinstance(v, bool) else None


# --- choosing tables --------------------------------------------------------------------------------------------


def first_table(parsed: PastedText, kind: str, prefer: str = "") -> PastedTable | None:
    tables = parsed.of_kind(kind)
    if prefer:
        preferred = [t for t in tables if t.report == prefer]
        tables = preferred or tables
    return tables[0] if tables else None


def rows_from_gpu_sum(parsed: PastedText, category: str) -> list[dict[str, object]]:
    t = first_table(parsed, "gpu_sum")
    if t is None:
        return []
    return [r for r in t.rows if str(r.get("category", "")).upper() == category]


@dataclass
class NameStat:
    name: str
    total_ns: float | None
    count: float | None
    avg_ns: float | None = None
    med_ns: float | None = None
    min_ns: float | None = None
    max_ns: float | None = None
    share: float | None = None  # 0..1, as printed (share of the whole report) or computed from visible rows


def name_stats(rows: list[dict[str, object]]) -> list[NameStat]:
    out = []
    for r in rows:
        share = num(r.get("share"))
        out.append(
            NameStat(
                name=str(r.get("name") or ""),
                total_ns=num(r.get("total_ns")),
                count=num(r.get("count")),
                avg_ns=num(r.get("avg_ns")),
                med_ns=num(r.get("med_ns")),
                min_ns=num(r.get("min_ns")),
                max_ns=num(r.get("max_ns")),
                share=None if share is None else share / 100,
            )
        )
    return out


def _add(a: float | None, b: float | None) -> float | None:
    return None if a is None and b is None else (a or 0) + (b or 0)


def _merge_by_name(stats: list[NameStat]) -> list[NameStat]:
    """One row per name (the grid/block summary lists a kernel once per launch shape)."""
    merged: dict[str, NameStat] = {}
    for s in stats:
        m = merged.get(s.name)
        if m is None:
            merged[s.name] = NameStat(**vars(s))
            continue
        m.total_ns, m.count, m.share = _add(m.total_ns, s.total_ns), _add(m.count, s.count), _add(m.share, s.share)
        highs = [x for x in (m.max_ns, s.max_ns) if x is not None]
        lows = [x for x in (m.min_ns, s.min_ns) if x is not None]
        m.max_ns, m.min_ns = (max(highs) if highs else None), (min(lows) if lows else None)
        m.med_ns = None  # medians of different shapes do not combine
        m.avg_ns = m.total_ns / m.count if m.total_ns is not None and m.count else None
    return list(merged.values())


def kernel_stats(parsed: PastedText) -> tuple[list[NameStat], PastedTable | None, str]:
    """Kernel statistics from the best table there is: the kernel summary, else the grid/block summary, else the
    GPU summary's kernels, else the launch & exec summary (kernel time x count)."""
    t = first_table(parsed, "kernels", prefer="cuda_gpu_kern_sum")
    if t is not None:
        stats = name_stats(t.rows)
        return (_merge_by_name(stats) if t.has("grid") else stats), t, t.report or "kernel table"
    rows = rows_from_gpu_sum(parsed, "CUDA_KERNEL")
    if rows:
        return name_stats(rows), first_table(parsed, "gpu_sum"), "cuda_gpu_sum (CUDA_KERNEL rows)"
    trace_rows = ops_from_trace_report(parsed, memory=False)
    if trace_rows:
        return aggregate(trace_rows), first_table(parsed, "gpu_trace"), "cuda_gpu_trace (kernel rows added up)"
    ex = first_table(parsed, "kern_exec")
    if ex is not None:
        out = []
        for r in ex.rows:
            n, k = num(r.get("count")), num(r.get("k_avg_ns"))
            out.append(
                NameStat(
                    str(r.get("name") or ""),
                    n * k if n is not None and k is not None else None,
                    n,
                    k,
                    num(r.get("k_med_ns")),
                    num(r.get("k_min_ns")),
                    num(r.get("k_max_ns")),
                )
            )
        return _merge_by_name(out), ex, "cuda_kern_exec_sum (kernel time x count)"
    return [], None, ""


_MEMOP = re.compile(r"^\[CUDA (?:Unified Memory )?mem(?:cpy|set)", re.IGNORECASE)


def ops_from_trace_report(parsed: PastedText, memory: bool) -> list[dict[str, object]]:
    """Rows of a pasted ``cuda_gpu_trace``: its kernels, or its memory operations, as name/duration/bytes."""
    out: list[dict[str, object]] = []
    for t in parsed.of_kind("gpu_trace"):
        for r in t.rows:
            name = str(r.get("name") or "")
            if bool(_MEMOP.match(name)) == memory:
                size = r.get("bytes_bytes", r.get("bytes"))
                out.append({"name": name, "dur": num(r.get("duration_ns")), "bytes": num(size)})
    return out


def aggregate(ops: list[dict[str, object]]) -> list[NameStat]:
    """Per-name statistics of single operations (a pasted GPU trace): total, count, average, min, max."""
    by: dict[str, list[float]] = {}
    for op in ops:
        if op["dur"] is not None:
            by.setdefault(str(op["name"]), []).append(float(op["dur"]))  # type: ignore[arg-type]
    stats = [NameStat(n, sum(d), len(d), sum(d) / len(d), None, min(d), max(d)) for n, d in by.items()]
    return sorted(stats, key=lambda s: (-(s.total_ns or 0), s.name))
