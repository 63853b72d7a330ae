"""``explain``: the report's kind of answer from pasted ``nsys stats`` tables, as far as the tables allow.

Pure function: ``PastedText`` (from ``trace.pasted``) and op rules in, an ``Explanation`` out. It reuses what the
trace report uses: the op-mapping rules (``ops.classify``), the API-name patterns of ``phases``/``host``, the
finding catalogue (``findings.CATALOGUE``: ids, titles, actions) and the diagnosis (``diagnosis._conclude`` with
``FAMILY_ADVICE``). What a summary cannot show (tails, steps, idle time, whether a call sits inside the inference
loop) is said in ``cannot_tell``, with the capture that would answer it.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field, replace

import polars as pl

from ..trace.pasted import PastedTable, PastedText
from ..units import format_bytes, format_ns
from .diagnosis import FAMILY_ADVICE, JSON_SCHEMA, _conclude
from .findings import SEVERITY_ORDER, Finding
from .host import ALLOC_API, ASYNC, SYNC_MEMCPY_API, SYNC_MEMSET_API
from .ops import OpRule, classify, kernel_label
from .phases import GRAPH_LAUNCH_API, LAUNCH_API, MODULE_LOAD_API, PREFILL_NAMES, STEP_NAMES, SYNC_API

CAPTURE = "nsys profile --trace=cuda,nvtx,osrt --cuda-graph-trace=node --export=sqlite -o run <your command>"
"""The capture that answers what a pasted summary cannot; ``nsys-doctor report run.sqlite`` then reads it."""

LAUNCH_BOUND_MIN_LAUNCHES = 100
# Launch calls take as long as the kernels run: the host issues kernels no faster than the GPU finishes them, so
# the GPU waits between kernels. Measured on the shared traces: eager decode 2.3, graphed decode 0.03, prefill 0.5.
LAUNCH_BOUND_RATIO = 1.0
LAUNCH_BOUND_CRITICAL = 1.5
SYNC_MIN = 10  # sync calls in a run before they are worth a finding
SYNC_WARN = 50
ALLOC_MIN = 10
ALLOC_WARN = 1000
TAIL_MIN_COUNT = 10
TAIL_MAX_MED = 10.0  # max / median
TAIL_MIN_EXCESS_NS = 20_000
RULE_ROWS = 50  # nsys analyze rules list this many rows by default
COPY_SHARE_ACTION = 0.3  # copies this share of GPU time (kernels + copies) get their own next action
COPY_NOTE_SHARE = 0.1  # below this share, whether copies are loading or per-step is not worth a word
# A whole-run table mixes start-up and steady state. Loading weights is few large host-to-device copies (a model has
# hundreds to a few thousand tensors, each usually MBs); per-step copies are many (one or more per step) and small.
LOADING_MIN_AVG_BYTES = 1 << 20
LOADING_MAX_COPIES = 10_000
PER_STEP_MIN_COPIES = 1_000

API_GROUPS = {
    "launches": (LAUNCH_API, None),
    "graph_launches": (GRAPH_LAUNCH_API, None),
    "syncs": (SYNC_API, None),
    "allocations": (ALLOC_API, None),
    "module_loads": (MODULE_LOAD_API, None),
    "sync_memcpy": (SYNC_MEMCPY_API, ASYNC),
    "sync_memset": (SYNC_MEMSET_API, ASYNC),
}

DIRECTIONS = (
    ("htod", re.compile(r"Host-to-Device|HtoD", re.IGNORECASE)),
    ("dtoh", re.compile(r"Device-to-Host|DtoH", re.IGNORECASE)),
    ("dtod", re.compile(r"Device-to-Device|DtoD", re.IGNORECASE)),
    ("ptop", re.compile(r"Peer-to-Peer|PtoP", re.IGNORECASE)),
    ("memset", re.compile(r"memset", re.IGNORECASE)),
)
DIRECTION_WORDS = {
    "htod": "host-to-device",
    "dtoh": "device-to-host",
    "dtod": "device-to-device",
    "ptop": "peer-to-peer",
    "memset": "memset",
    "other": "other copies",
}


@dataclass
class Explanation:
    source: dict[str, object]
    kernels: list[dict[str, object]]
    families: list[dict[str, object]]
    api: dict[str, object]
    memory: dict[str, object]
    nccl: dict[str, object]
    graphs: dict[str, object]
    nvtx: dict[str, object]
    findings: list[Finding]
    diagnosis: dict[str, object]
    next_actions: list[str]
    cannot_tell: list[str]
    notes: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, object]:
        return {
            "schema": JSON_SCHEMA,
            "kind": "explain",
            "source": self.source,
            "findings": [f.to_dict() for f in self.findings],
            "kernels": self.kernels,
            "families": self.families,
            "api": self.api,
            "memory": self.memory,
            "nccl": self.nccl,
            "graphs": self.graphs,
            "nvtx": self.nvtx,
            "diagnosis": self.diagnosis,
            "next_actions": self.next_actions,
            "cannot_tell": self.cannot_tell,
            "notes": self.notes,
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


def _pct(x: float | None) -> str:
    return "-" if x is None else f"{100 * x:.1f}%"


def _num(v: object) -> float | None:
    return float(v) if isinstance(v, int | float) and not isinstance(v, bool) else None


# --- choosing tables --------------------------------------------------------------------------------------------


def _first(parsed: PastedText, kind: str, prefer: str = "") -> PastedTable | None:
    tables = parsed.of_kind(kind)
    if prefer:
        preferred = [t for t in tables if t.report == prefer]
        tables = preferred or tables
    return tables[0] if tables else None


def _rows_from_gpu_sum(parsed: PastedText, category: str) -> list[dict[str, object]]:
    t = _first(parsed, "gpu_sum")
    if t is None:
        return []
    return [r for r in t.rows if str(r.get("category", "")).upper() == category]


@dataclass
class _Stat:
    name: str
    total_ns: float | None
    count: float | None
    avg_ns: float | None = None
    med_ns: float | None = None
    min_ns: float | None = None
    max_ns: float | None = None
    share: float | None = None  # 0..1, as printed (share of the whole report) or computed from visible rows


def _stats(rows: list[dict[str, object]]) -> list[_Stat]:
    out = []
    for r in rows:
        share = _num(r.get("share"))
        out.append(
            _Stat(
                name=str(r.get("name") or ""),
                total_ns=_num(r.get("total_ns")),
                count=_num(r.get("count")),
                avg_ns=_num(r.get("avg_ns")),
                med_ns=_num(r.get("med_ns")),
                min_ns=_num(r.get("min_ns")),
                max_ns=_num(r.get("max_ns")),
                share=None if share is None else share / 100,
            )
        )
    return out


def _add(a: float | None, b: float | None) -> float | None:
    return None if a is None and b is None else (a or 0) + (b or 0)


def _merge_by_name(stats: list[_Stat]) -> list[_Stat]:
    """One row per name (the grid/block summary lists a kernel once per launch shape)."""
    merged: dict[str, _Stat] = {}
    for s in stats:
        m = merged.get(s.name)
        if m is None:
            merged[s.name] = _Stat(**vars(s))
            continue
        m.total_ns, m.count, m.share = _add(m.total_ns, s.total_ns), _add(m.count, s.count), _add(m.share, s.share)
        highs = [x for x in (m.max_ns, s.max_ns) if x is not None]
        lows = [x for x in (m.min_ns, s.min_ns) if x is not None]
        m.max_ns, m.min_ns = (max(highs) if highs else None), (min(lows) if lows else None)
        m.med_ns = None  # medians of different shapes do not combine
        m.avg_ns = m.total_ns / m.count if m.total_ns is not None and m.count else None
    return list(merged.values())


def _kernel_stats(parsed: PastedText) -> tuple[list[_Stat], PastedTable | None, str]:
    """Kernel statistics from the best table there is: the kernel summary, else the grid/block summary, else the
    GPU summary's kernels, else the launch & exec summary (kernel time x count)."""
    t = _first(parsed, "kernels", prefer="cuda_gpu_kern_sum")
    if t is not None:
        stats = _stats(t.rows)
        return (_merge_by_name(stats) if t.has("grid") else stats), t, t.report or "kernel table"
    rows = _rows_from_gpu_sum(parsed, "CUDA_KERNEL")
    if rows:
        return _stats(rows), _first(parsed, "gpu_sum"), "cuda_gpu_sum (CUDA_KERNEL rows)"
    trace_rows = _trace_ops(parsed, memory=False)
    if trace_rows:
        return _aggregate(trace_rows), _first(parsed, "gpu_trace"), "cuda_gpu_trace (kernel rows added up)"
    ex = _first(parsed, "kern_exec")
    if ex is not None:
        out = []
        for r in ex.rows:
            n, k = _num(r.get("count")), _num(r.get("k_avg_ns"))
            out.append(
                _Stat(
                    str(r.get("name") or ""),
                    n * k if n is not None and k is not None else None,
                    n,
                    k,
                    _num(r.get("k_med_ns")),
                    _num(r.get("k_min_ns")),
                    _num(r.get("k_max_ns")),
                )
            )
        return _merge_by_name(out), ex, "cuda_kern_exec_sum (kernel time x count)"
    return [], None, ""


_MEMOP = re.compile(r"^\[CUDA (?:Unified Memory )?mem(?:cpy|set)", re.IGNORECASE)


def _trace_ops(parsed: PastedText, memory: bool) -> list[dict[str, object]]:
    """Rows of a pasted ``cuda_gpu_trace``: its kernels, or its memory operations, as name/duration/bytes."""
    out = []
    for t in parsed.of_kind("gpu_trace"):
        for r in t.rows:
            name = str(r.get("name") or "")
            if bool(_MEMOP.match(name)) == memory:
                size = r.get("bytes_bytes", r.get("bytes"))
                out.append({"name": name, "dur": _num(r.get("duration_ns")), "bytes": _num(size)})
    return out


def _aggregate(ops: list[dict[str, object]]) -> list[_Stat]:
    """Per-name statistics of single operations (a pasted GPU trace): total, count, average, min, max."""
    by: dict[str, list[float]] = {}
    for op in ops:
        if op["dur"] is not None:
            by.setdefault(str(op["name"]), []).append(float(op["dur"]))  # type: ignore[arg-type]
    stats = [_Stat(n, sum(d), len(d), sum(d) / len(d), None, min(d), max(d)) for n, d in by.items()]
    return sorted(stats, key=lambda s: (-(s.total_ns or 0), s.name))


# --- sections ---------------------------------------------------------------------------------------------------


def _kernels_and_families(
    stats: list[_Stat], rules: list[OpRule], top: int
) -> tuple[list[dict[str, object]], pl.DataFrame, float, str]:
    """(top kernels, families frame, kernel time in the table, what the shares are of)."""
    if not stats:
        return [], pl.DataFrame(schema={"family": pl.Utf8, "category": pl.Utf8, "share": pl.Float64}), 0.0, ""
    total = sum(s.total_ns or 0 for s in stats)
    printed = all(s.share is not None for s in stats)
    share_of = "the whole kernel summary (shares as printed)" if printed else "the kernel time of the rows shown"
    if not printed:
        for s in stats:
            s.share = (s.total_ns or 0) / total if total else None
    names = [s.name for s in stats]
    shorts = [short_name(n) for n in names]
    ops = classify(names, rules, short_names=shorts)
    rows = []
    for s, short, op in zip(stats, shorts, ops.iter_rows(named=True), strict=True):
        rows.append(
            {
                "name": s.name,
                "label": kernel_label(s.name, short),
                "family": op["family"],
                "category": op["category"],
                "op": op["op"],
                "mapped": op["mapped"],
                "share": s.share,
                "total_ns": s.total_ns,
                "count": s.count,
                "avg_ns": s.avg_ns,
                "med_ns": s.med_ns,
                "min_ns": s.min_ns,
                "max_ns": s.max_ns,
            }
        )
    rows.sort(key=lambda r: (-(r["share"] or 0), -(r["total_ns"] or 0), str(r["name"])))  # type: ignore[operator]
    # families added up in a fixed order (the same input gives the same bytes), ties broken by name
    groups: dict[tuple[str, str], dict[str, object]] = {}
    for r in rows:
        g = groups.setdefault(
            (str(r["family"]), str(r["category"])), {"share": 0.0, "total": 0.0, "count": 0.0, "names": set()}
        )
        g["share"] = float(g["share"]) + float(r["share"] or 0)  # type: ignore[arg-type]
        g["total"] = float(g["total"]) + float(r["total_ns"] or 0)  # type: ignore[arg-type]
        g["count"] = float(g["count"]) + float(r["count"] or 0)  # type: ignore[arg-type]
        g["names"].add(r["name"])  # type: ignore[union-attr]
    fam_rows = sorted(
        (
            {
                "family": fam_name,
                "category": category,
                "share": round(float(g["share"]), 6),  # type: ignore[arg-type]
                "total": g["total"],
                "count": g["count"],
                "kernels": len(g["names"]),  # type: ignore[arg-type]
            }
            for (fam_name, category), g in groups.items()
        ),
        key=lambda f: (-f["share"], -f["total"], f["family"], f["category"]),  # type: ignore[operator]
    )
    fam = (
        pl.DataFrame(
            fam_rows,
            schema={
                "family": pl.Utf8,
                "category": pl.Utf8,
                "share": pl.Float64,
                "total": pl.Float64,
                "count": pl.Float64,
                "kernels": pl.UInt32,
            },
            orient="row",
        )
        if fam_rows
        else pl.DataFrame(schema={"family": pl.Utf8, "category": pl.Utf8, "share": pl.Float64})
    )
    return rows[: max(top, 1)], fam, total, share_of


def _api_section(parsed: PastedText) -> dict[str, object]:
    t = _first(parsed, "api")
    rows = t.rows if t is not None else _rows_from_gpu_sum(parsed, "CUDA_API")
    if not rows:
        return {}
    stats = _stats(rows)
    total = sum(s.total_ns or 0 for s in stats)
    source = t if t is not None else _first(parsed, "gpu_sum")
    out: dict[str, object] = {
        "table": t.report if t is not None else "cuda_gpu_sum",
        "complete": source is not None and not source.partial,
        "whole_run": parsed.whole_run,
        "total_ns": total,
    }
    for key, (pattern, exclude) in API_GROUPS.items():
        group = [s for s in stats if pattern.match(s.name) and not (exclude and exclude.search(s.name))]
        out[key] = {
            "count": int(sum(s.count or 0 for s in group)),
            "total_ns": sum(s.total_ns or 0 for s in group),
            "share_of_api_time": (sum(s.total_ns or 0 for s in group) / total) if total else None,
            "by_name": {s.name: int(s.count or 0) for s in group},
        }
    launches: dict = out["launches"]  # type: ignore[assignment]
    graphs: dict = out["graph_launches"]  # type: ignore[assignment]
    out["kernel_launches"] = launches["count"] - graphs["count"]
    out["kernel_launch_ns"] = launches["total_ns"] - graphs["total_ns"]
    out["top"] = [
        {
            "name": s.name,
            "share": (s.total_ns or 0) / total if total else None,
            "total_ns": s.total_ns,
            "count": s.count,
            "avg_ns": s.avg_ns,
            "max_ns": s.max_ns,
        }
        for s in sorted(stats, key=lambda s: (-(s.total_ns or 0), s.name))[:5]
    ]
    return out


def _direction(name: str) -> str:
    base = next((d for d, rx in DIRECTIONS if rx.search(name)), "other")
    return f"unified-{base}" if "unified memory" in name.lower() else base


def _memory_section(parsed: PastedText, kernel_ns: float, kernel_complete: bool) -> dict[str, object]:
    """Copies and memsets by direction: time, count, bytes, share of copy time and of GPU time; whether the tables
    are complete and whether the copies look like loading or like per-step copies."""
    t = _first(parsed, "mem_time")
    time_rows = t.rows if t is not None else _rows_from_gpu_sum(parsed, "MEMORY_OPER")
    size = _first(parsed, "mem_size")
    sources = [x for x in (t if t is not None else (_first(parsed, "gpu_sum") if time_rows else None), size) if x]
    if not time_rows and size is None:  # a pasted GPU trace: add its copies up
        sources = parsed.of_kind("gpu_trace")
        trace_ops = _trace_ops(parsed, memory=True)
        sizes: dict[str, float] = {}
        for op in trace_ops:
            if op["bytes"] is not None:
                sizes[str(op["name"])] = sizes.get(str(op["name"]), 0.0) + float(op["bytes"])  # type: ignore[arg-type]
        time_rows = [
            {"name": s.name, "total_ns": s.total_ns, "count": s.count, "bytes": sizes.get(s.name)}
            for s in _aggregate(trace_ops)
        ]
    out: dict[str, object] = {}
    by_dir: dict[str, dict[str, object]] = {}
    for r in time_rows:
        d = by_dir.setdefault(_direction(str(r.get("name") or "")), {"total_ns": 0.0, "count": 0, "bytes": None})
        d["total_ns"] = float(d["total_ns"]) + (_num(r.get("total_ns")) or 0)  # type: ignore[arg-type]
        d["count"] = int(d["count"]) + int(_num(r.get("count")) or 0)  # type: ignore[call-overload]
        if _num(r.get("bytes")) is not None:
            d["bytes"] = (_num(d["bytes"]) or 0) + float(r["bytes"])  # type: ignore[arg-type]
    if size is not None:
        col = size.column("total_bytes")
        if col is not None and col.factor > 1:  # sizes shown in MB with 3 decimals: smaller ones read as 0
            out["bytes_resolution"] = 0.5 * 10.0**-col.decimals * col.factor
        for r in size.rows:
            d = by_dir.setdefault(_direction(str(r.get("name") or "")), {"total_ns": None, "count": 0, "bytes": None})
            d["bytes"] = (_num(d["bytes"]) or 0) + (_num(r.get("total_bytes")) or 0)
            if not d["count"]:
                d["count"] = int(_num(r.get("count")) or 0)
    if not by_dir:
        return out
    copy_ns = sum(float(d["total_ns"] or 0) for d in by_dir.values())  # type: ignore[arg-type]
    for d in by_dir.values():
        d["share_of_copy_time"] = (float(d["total_ns"]) / copy_ns) if copy_ns and d["total_ns"] is not None else None
        b, c = _num(d["bytes"]), _num(d["count"])
        d["avg_bytes"] = b / c if b is not None and c else None
    out["by_direction"] = by_dir
    out["total_ns"] = copy_ns
    known_bytes = [_num(d["bytes"]) for d in by_dir.values() if d["bytes"] is not None]
    out["total_bytes"] = sum(b or 0 for b in known_bytes) if known_bytes else None
    if copy_ns:
        dom = min(by_dir, key=lambda k: (-float(by_dir[k]["total_ns"] or 0), k))  # type: ignore[arg-type]
        out["dominant"] = dom
        out["dominant_share"] = by_dir[dom]["share_of_copy_time"]
    out["complete"] = bool(sources) and not any(x.partial for x in sources)
    if kernel_ns and copy_ns:
        if kernel_complete:
            out["share_of_gpu_time"] = copy_ns / (copy_ns + kernel_ns)
            if not out["complete"]:
                out["share_at_least"] = True  # copies missing from the paste would only add to it
        else:
            out["share_of_gpu_time"] = None
            out["note"] = "no share of GPU time: the kernel table is partial, so the kernel time to compare is unknown"
    out["scope"] = "window" if not parsed.whole_run else "whole run"
    share = out.get("share_of_gpu_time")
    if isinstance(share, float) and share < COPY_NOTE_SHARE:
        out["copies_look_like"], out["copies_why"] = None, None  # too small to matter either way
    else:
        out["copies_look_like"], out["copies_why"] = _copy_pattern(out, parsed)
    out["pageable"] = _pageable(parsed)
    return out


def _copy_pattern(memory: dict[str, object], parsed: PastedText) -> tuple[str, str]:
    """Whether the dominant copies look like loading (few large host-to-device copies: weights), like per-step
    copies (many small ones), or cannot be told. A window (filter or capture range in the text) holds no loading."""
    dom = str(memory.get("dominant", ""))
    d = memory["by_direction"].get(dom) if dom else None  # type: ignore[union-attr]
    if not parsed.whole_run:
        return "per-step", f"the tables cover a window ({parsed.scope[0]}), not start-up"
    if not isinstance(d, dict):
        return "unknown", "no copy time in the tables"
    count, avg = _num(d.get("count")), _num(d.get("avg_bytes"))
    word = DIRECTION_WORDS.get(dom.removeprefix("unified-"), dom)
    if avg is None or not count:
        return "unknown", (
            f"the tables cover the whole run and give no copy sizes, so {word} copies at start-up (loading) cannot be "
            "told from copies in every step"
        )
    resolution = _num(memory.get("bytes_resolution"))
    shown = f"< {format_bytes(resolution)}" if resolution and avg < resolution else format_bytes(avg)
    size = f"{int(count):,} {word} copies of {shown} on average"
    if dom.removeprefix("unified-") == "htod" and avg >= LOADING_MIN_AVG_BYTES and count <= LOADING_MAX_COPIES:
        return "loading", f"{size}: few large host-to-device copies in a whole-run table look like loading weights"
    if avg < LOADING_MIN_AVG_BYTES and count >= PER_STEP_MIN_COPIES:
        return "per-step", f"{size}: many small copies look like copies in every step (the whole run includes start-up)"
    return "unknown", f"{size}: the tables cover the whole run, so loading cannot be told from per-step copies"


def _pageable(parsed: PastedText) -> dict[str, object] | None:
    """Evidence of pageable copies, where the text has it: the cuda_memcpy_async rule, or memory kinds in a trace."""
    rule = parsed.of_kind("pageable_copies")
    if rule:
        n = sum(len(t.rows) for t in rule)
        at_least = n == RULE_ROWS  # the rule lists 50 rows unless given rows=-1
        return {"copies": n, "at_least": at_least, "source": "nsys analyze cuda_memcpy_async"}
    n = 0
    seen = False
    for t in parsed.of_kind("gpu_trace"):
        kinds = [c.role for c in t.columns if c.role in ("srcmemkd", "dstmemkd", "src_mem_kd", "dst_mem_kd")]
        if kinds:
            seen = True
            n += sum(1 for r in t.rows if any(str(r.get(k, "")).lower() == "pageable" for k in kinds))
    return {"copies": n, "source": "cuda_gpu_trace memory kinds"} if seen else None


def _nccl_section(kernels_all: list[dict[str, object]], fam: pl.DataFrame) -> dict[str, object]:
    comm = fam.filter(pl.col("family") == "communication")
    if comm.is_empty():
        return {}
    top = [r for r in kernels_all if r["family"] == "communication"][:3]
    return {
        "share": round(float(comm["share"].sum()), 6),
        "total_ns": float(comm["total"].sum()),
        "kernels": [{"label": r["label"], "share": r["share"]} for r in top],
    }


def _graph_section(
    api: dict[str, object], kernel_table: PastedTable | None, instances: float, kernel_complete: bool
) -> dict[str, object]:
    g = api.get("graph_launches") if api else None
    api_complete = bool(api.get("complete")) if api else False
    if not g or not g["count"]:  # type: ignore[index]
        if not api:
            return {}
        # no graph launch among the rows: a fact about the run only when the API table is whole
        return {"graph_launch_calls": 0, "complete": api_complete}
    graphs = int(g["count"])  # type: ignore[index]
    kernel_launches = int(api.get("kernel_launches") or 0)  # type: ignore[call-overload]
    out: dict[str, object] = {
        "graph_launch_calls": graphs,
        "kernel_launch_calls": kernel_launches,
        "kernel_instances": int(instances) if kernel_table is not None else None,
        "inferred_trace": None,
        "complete": api_complete,
    }
    if kernel_table is None:
        out["why"] = "no kernel table to compare with"
    elif not kernel_complete or not api_complete:
        which = " and ".join(
            w for w, ok in (("the kernel table", kernel_complete), ("the CUDA API table", api_complete)) if not ok
        )
        out["why"] = f"{which} {'is' if ' and ' not in which else 'are'} partial, so kernel instances cannot be " + (
            "compared with the launches"
        )
    elif instances > kernel_launches * 1.02 + 2:
        out["inferred_trace"] = "node"
        out["why"] = (
            f"the kernel table has {int(instances):,} kernel instances for {kernel_launches:,} direct launches: "
            "the kernels inside the graphs are counted"
        )
    else:
        out["inferred_trace"] = "graph"
        out["why"] = (
            f"the kernel table has {int(instances):,} kernel instances, about the {kernel_launches:,} direct "
            f"launches: the kernels of the {graphs:,} graph launches are missing"
        )
    return out


def _nvtx_section(parsed: PastedText) -> dict[str, object]:
    """NVTX ranges, and the steps among them (``decode_step``, ``forward`` ...): their count, typical and worst
    duration."""
    t = _first(parsed, "nvtx")
    if t is None:
        return {}
    ranges = sorted(_stats(t.rows), key=lambda s: (-(s.total_ns or 0), s.name))

    def item(s: _Stat) -> dict[str, object]:
        return {
            "name": s.name,
            "count": s.count,
            "total_ns": s.total_ns,
            "avg_ns": s.avg_ns,
            "med_ns": s.med_ns,
            "max_ns": s.max_ns,
        }

    out: dict[str, object] = {"ranges": [item(s) for s in ranges[:5]]}
    steps = [s for s in ranges if STEP_NAMES.search(s.name.rsplit(":", 1)[-1]) and (s.count or 0) >= 2]
    if steps:
        decode = [s for s in steps if not PREFILL_NAMES.search(s.name)] or steps
        main = min(decode, key=lambda s: (-(s.count or 0), s.name))
        out["steps"] = item(main)
    return out


# --- findings ---------------------------------------------------------------------------------------------------

WHOLE_RUN = "the tables cover the whole run, so this may include start-up"
IN_WINDOW = "the tables cover a window (a filter or capture range is in the text), not the whole run"
NEVER = 1 << 62
GROUP_FINDINGS = (  # API group, finding id, what the calls are, calls for a finding, calls for a warning
    ("sync_memcpy", "sync-memcpy", "synchronous calls", 1, SYNC_MIN),
    ("sync_memset", "sync-memset", "synchronous calls", 1, SYNC_MIN),
    ("allocations", "alloc-churn", "allocation calls", ALLOC_MIN, ALLOC_WARN),
    # module loading is a problem *inside* inference, which a summary cannot show: never more than info
    ("module_loads", "module-loading-in-window", "module loads", 1, NEVER),
)


def _api_findings(
    api: dict[str, object],
    kernel_ns: float,
    kernel_avg: float | None,
    steps: dict[str, object] | None = None,
    kernel_complete: bool = True,
) -> list[Finding]:
    """Findings from the CUDA API table. Counts from a partial table are lower bounds ("at least"); the launch ratio
    needs the whole kernel time, so a partial kernel table gives no launch-bound conclusion."""
    out: list[Finding] = []
    if not api:
        return out
    least = "" if api.get("complete", True) else "at least "

    def grp(key: str) -> dict:
        return api[key]  # type: ignore[return-value]

    launches = int(api["kernel_launches"])  # type: ignore[call-overload]
    launch_ns = float(api["kernel_launch_ns"])  # type: ignore[arg-type]
    n_steps = int(steps["count"] or 0) if steps else 0  # type: ignore[call-overload]
    step_note = f" ({launches / n_steps:,.0f} per `{steps['name']}` range)" if steps and n_steps else ""
    if (
        kernel_complete
        and launches >= LAUNCH_BOUND_MIN_LAUNCHES
        and kernel_ns > 0
        and launch_ns >= LAUNCH_BOUND_RATIO * kernel_ns
    ):
        ratio = launch_ns / kernel_ns
        out.append(
            Finding(
                "launch-bound",
                "critical" if ratio >= LAUNCH_BOUND_CRITICAL else "warning",
                f"{least}{launches:,} kernel launches{step_note} took {format_ns(launch_ns)} on the host, "
                f"{100 * ratio:.0f}% of the "
                f"{format_ns(kernel_ns)} the kernels ran on the GPU (average kernel {format_ns(kernel_avg)}, "
                f"average launch {format_ns(launch_ns / launches)}): the GPU waits for the host between kernels",
                {
                    "kernel_launches": launches,
                    "launch_api_ns": launch_ns,
                    "kernel_time_ns": kernel_ns,
                    "launch_to_kernel_time": round(ratio, 3),
                    "avg_kernel_ns": kernel_avg,
                },
                # the GPU cannot finish before the host has issued the last launch: at least this much idle time
                cost_ns=int(launch_ns - kernel_ns),
            )
        )
    scope = WHOLE_RUN if api.get("whole_run", True) else IN_WINDOW
    s = grp("syncs")
    if s["count"] >= SYNC_MIN:
        names = ", ".join(f"{k} x{v:,}" for k, v in s["by_name"].items())
        per = f", one per {launches / s['count']:,.0f} kernel launches" if launches >= 2 * s["count"] else ""
        if steps and n_steps:
            per += f", {s['count'] / n_steps:.1f} per `{steps['name']}` range"
        out.append(
            Finding(
                "host-sync-in-inference",
                "warning" if s["count"] >= SYNC_WARN else "info",
                f"{least}{s['count']:,} host synchronizations ({format_ns(s['total_ns'])} blocked{per}): {names}; "
                + scope,
                {"syncs": s["count"], "total_ns": s["total_ns"], "by_name": s["by_name"], "kernel_launches": launches},
            )
        )
    for key, fid, what, minimum, warn in GROUP_FINDINGS:
        g = grp(key)
        if g["count"] < minimum:
            continue
        share = f", {100 * (g['share_of_api_time'] or 0):.1f}% of CUDA API time" if key == "module_loads" else ""
        out.append(
            Finding(
                fid,
                "warning" if g["count"] >= warn else "info",
                f"{least}{g['count']:,} {what} ({format_ns(g['total_ns'])}{share}): "
                + ", ".join(f"{k} x{v:,}" for k, v in g["by_name"].items())
                + f"; {scope}",
                {"count": g["count"], "total_ns": g["total_ns"], "by_name": g["by_name"]},
            )
        )
    return out


def _tail_finding(kernels: list[dict[str, object]]) -> list[Finding]:
    hits = []
    for r in kernels:
        med, mx, n = _num(r["med_ns"]) or _num(r["avg_ns"]), _num(r["max_ns"]), _num(r["count"])
        if med and mx and n and n >= TAIL_MIN_COUNT and mx >= TAIL_MAX_MED * med and mx - med >= TAIL_MIN_EXCESS_NS:
            hits.append((mx - med, r, med, mx))
    if not hits:
        return []
    hits.sort(key=lambda h: (-h[0], str(h[1]["name"])))
    items = [
        f"{r['label']}: max {format_ns(mx)} vs median {format_ns(med)} ({mx / med:.0f}x)" for _, r, med, mx in hits[:3]
    ]
    return [
        Finding(
            "tail-outlier",
            "info",
            "; ".join(items)
            + " (a summary has only min/median/max: how often the slow instances occur needs the trace)",
            {"kernels": [{"name": r["name"], "med_ns": med, "max_ns": mx} for _, r, med, mx in hits[:3]]},
        )
    ]


def _findings(
    parsed: PastedText,
    api: dict[str, object],
    memory: dict[str, object],
    graphs: dict[str, object],
    kernels_all: list[dict[str, object]],
    kernel_ns: float,
    instances: float,
    nvtx: dict[str, object],
    kernel_complete: bool,
) -> list[Finding]:
    out: list[Finding] = []
    if graphs.get("inferred_trace") == "graph":
        out.append(
            Finding(
                "graph-trace-not-node",
                "critical",
                f"{graphs['graph_launch_calls']:,} CUDA graph launches, but {graphs['why']}: the capture recorded "
                "graphs as single blocks (--cuda-graph-trace=graph), so the kernel shares describe only the kernels "
                "launched outside graphs",
                {k: graphs[k] for k in ("graph_launch_calls", "kernel_launch_calls", "kernel_instances")}
                | {"flag": "--cuda-graph-trace=node"},
            )
        )
    avg = kernel_ns / instances if instances else None
    out += _api_findings(api, kernel_ns, avg, nvtx.get("steps"), kernel_complete)  # type: ignore[arg-type]
    if not api:
        out += _exec_launch_bound(parsed)
    pageable = memory.get("pageable") if memory else None
    if isinstance(pageable, dict) and pageable["copies"]:
        out.append(
            Finding(
                "pageable-memcpy",
                "warning",
                f"{'at least ' if pageable.get('at_least') else ''}{pageable['copies']:,} copies from pageable host "
                f"memory ({pageable['source']})",
                dict(pageable),
            )
        )
    out += _tail_finding(kernels_all)
    dropped = [n for n in parsed.notes if re.search(r"might have been collected|dropped|lost", n, re.IGNORECASE)]
    if dropped:
        out.append(Finding("profiler-dropped-data", "info", "; ".join(dropped[:3]), {"messages": dropped}))
    out.sort(key=lambda f: (SEVERITY_ORDER[f.severity], 0 if f.id == "graph-trace-not-node" else 1))
    return out


def _exec_launch_bound(parsed: PastedText) -> list[Finding]:
    """Without an API table, the launch & exec summary still has the launch call time (A) and kernel time (K)."""
    ex = _first(parsed, "kern_exec")
    if ex is None or ex.partial:  # the ratio of the rows shown says nothing about the kernels not shown
        return []
    launches = sum(_num(r.get("count")) or 0 for r in ex.rows)
    api_ns = sum((_num(r.get("count")) or 0) * (_num(r.get("a_avg_ns")) or 0) for r in ex.rows)
    kern_ns = sum((_num(r.get("count")) or 0) * (_num(r.get("k_avg_ns")) or 0) for r in ex.rows)
    api = {
        "kernel_launches": int(launches),
        "kernel_launch_ns": api_ns,
        **{k: {"count": 0, "total_ns": 0, "by_name": {}, "share_of_api_time": None} for k in API_GROUPS},
    }
    return [f for f in _api_findings(api, kern_ns, kern_ns / launches if launches else None) if f.id == "launch-bound"]


# --- what the text cannot tell ----------------------------------------------------------------------------------


INTERPRETED = ("kernels", "api", "mem_time", "mem_size", "kern_exec", "nvtx", "gpu_sum", "gpu_trace", "pageable_copies")
"""Kinds of table explain draws conclusions from (``other`` tables are listed, not interpreted)."""


def partial_why(t: PastedTable) -> str:
    """Why a table is marked partial, in a few words."""
    if t.layout == "headerless":
        return "rows without their header"
    share = sum(float(v) for v in t.values("share") if isinstance(v, int | float))
    if t.has("share") and share < 99.5:
        return f"its shares add up to {share:.1f}%"
    if any("could not" in i or "cells for" in i or "not numbers" in i for i in t.issues):
        return "some rows could not be read"
    return "rows cut with ..."


def _cannot_tell(
    parsed: PastedText,
    kernel_table: PastedTable | None,
    api: dict[str, object],
    memory: dict[str, object],
    graphs: dict[str, object],
    nccl: dict[str, object],
    nvtx: dict[str, object],
) -> list[str]:
    steps = "only NVTX range totals for steps" if nvtx.get("steps") else "no decode steps"
    out = [
        f"Tails, steps and idle time: a summary has no percentiles (only min/median/max per kernel), {steps} and no "
        "GPU idle time between kernels. Capture a trace and run `nsys-doctor report run.sqlite`: "
        f"`{CAPTURE}`",
    ]
    counts = {k: api[k]["count"] for k in ("syncs", "allocations", "module_loads", "sync_memcpy")} if api else {}  # type: ignore[index]
    present = [k.replace("_", " ") for k, v in counts.items() if v]
    if present:
        listed = present[0] if len(present) == 1 else ", ".join(present[:-1]) + " and " + present[-1]
        out.append(
            f"Whether the {listed} happen inside the inference loop or at start-up: the tables cover the "
            "whole run. Capture only steady-state inference (`--capture-range=cudaProfilerApi` with "
            "cudaProfilerStart/Stop around the decode loop), or add NVTX ranges and use "
            "`nsys stats --filter-nvtx RANGE`"
        )
    if kernel_table is None:
        out.append("Which kernels take the GPU time: paste `nsys stats -r cuda_gpu_kern_sum REPORT.nsys-rep`")
    if not api:
        out.append(
            "Host overhead (launches, syncs, allocations, graphs): paste `nsys stats -r cuda_api_sum REPORT.nsys-rep`"
        )
    if not memory:
        out.append("Memory copies: paste `nsys stats -r cuda_gpu_mem_time_sum,cuda_gpu_mem_size_sum REPORT.nsys-rep`")
    elif memory.get("pageable") is None and any(
        d in memory.get("by_direction", {})
        for d in ("htod", "dtoh")  # type: ignore[operator]
    ):
        out.append(
            "Whether copies use pageable host memory (staged and synchronous): run `nsys analyze -r "
            "cuda_memcpy_async REPORT.nsys-rep`, or look at SrcMemKd/DstMemKd in `nsys stats -r cuda_gpu_trace`"
        )
    if graphs.get("graph_launch_calls") and graphs.get("inferred_trace") is None:
        out.append(
            "Whether the kernels inside CUDA graphs are in the kernel table: recapture with --cuda-graph-trace=node "
            "to be sure they are"
        )
    if kernel_table is not None and kernel_table.clipped_names:
        out.append(
            f"The full names of kernels cut at 100 characters ({kernel_table.clipped_names} in the table): "
            "`nsys stats --format csv -r cuda_gpu_kern_sum` prints them whole (the family is read from the visible "
            "part)"
        )
    for t in parsed.tables:
        if t.partial and t.kind in INTERPRETED:
            out.append(
                f"Rows missing from the {t.report or t.kind} table at line {t.line} ({partial_why(t)}): "
                + ("only the rows shown are ranked" if t.has("share") else "shares are of the rows shown only")
                + ", and nothing is concluded from what the rows shown lack; paste the whole table"
            )
    launches = int(api.get("kernel_launches") or 0) if api else 0  # type: ignore[call-overload]
    if launches >= LAUNCH_BOUND_MIN_LAUNCHES and kernel_table is not None and kernel_table.partial:
        out.append(
            f"Whether kernel launches hold the GPU back: the kernel table is partial, so the kernel time to compare "
            f"the {launches:,} launch calls with is unknown; paste the whole `cuda_gpu_kern_sum`"
        )
    if graphs and not graphs.get("graph_launch_calls") and not graphs.get("complete"):
        out.append(
            "Whether CUDA graphs are used: no cudaGraphLaunch in the rows shown, but the CUDA API table is partial"
        )
    look = memory.get("copies_look_like") if memory else None
    if look in ("loading", "unknown") and memory.get("by_direction"):
        out.append(
            f"Whether the copies happen once (loading) or in every step: {memory['copies_why']}. Capture only "
            "steady-state inference (`--capture-range=cudaProfilerApi`) or use `nsys stats --filter-nvtx RANGE` to "
            "see the copies inside steps"
        )
    if nccl:
        out.append(
            "Rank skew and how much communication overlaps compute: needs a trace per rank "
            "(`nsys profile -o rank_%q{RANK} ...`, then `nsys-doctor report` on each)"
        )
    return out


# --- the whole answer -------------------------------------------------------------------------------------------


def explain(parsed: PastedText, rules: list[OpRule], top: int = 10) -> Explanation:
    """Explain pasted nsys stats tables: kernels and families, host overhead, copies, NCCL, graphs, findings,
    the diagnosis and next actions, and what the text cannot tell.

    Tables whose numbers could not be read are listed, never interpreted. Partial tables (rows cut, no header,
    shares short of 100%) are used for what their rows show; nothing is concluded from what they lack."""
    everything = parsed
    parsed = replace(parsed, tables=[t for t in parsed.tables if t.readable])
    stats, kernel_table, kernel_source = _kernel_stats(parsed)
    kernel_complete = kernel_table is not None and not kernel_table.partial
    instances = sum(s.count or 0 for s in stats)
    kernels_all, fam, kernel_ns, share_of = _kernels_and_families(stats, rules, 10_000)
    api = _api_section(parsed)
    memory = _memory_section(parsed, kernel_ns, kernel_complete)
    nccl = _nccl_section(kernels_all, fam)
    graphs = _graph_section(api, kernel_table, instances, kernel_complete)
    nvtx = _nvtx_section(parsed)
    findings = _findings(parsed, api, memory, graphs, kernels_all, kernel_ns, instances, nvtx, kernel_complete)
    partial = [t for t in parsed.tables if t.partial and t.kind in INTERPRETED]

    families = [
        {
            "family": r["family"],
            "category": r["category"],
            "share": round(r["share"], 6),
            "total_ns": r["total"],
            "count": r["count"],
            "kernels": r["kernels"],
        }
        for r in fam.iter_rows(named=True)
    ]
    if fam.height:
        target, actions = _conclude(fam, findings, None)  # type: ignore[arg-type]
        if "why" in target:
            target["why"] = str(target["why"]).replace(" in the window", " in the pasted kernel table")
        if kernel_table is not None and kernel_table.partial and target.get("kind") == "family":
            target["kernel_table_partial"] = True
            target["why"] = f"{target['why']}; the kernel table is partial ({partial_why(kernel_table)})"
    else:
        target = {
            "kind": "need-data",
            "why": "the text has no kernel table, so where GPU time goes is unknown"
            + ("; what the host does is read from the CUDA API table" if api else ""),
        }
        actions = [f"{f.title}: {f.action}." for f in findings if f.severity in ("critical", "warning")]
        actions.append("Paste the kernel summary (nsys stats -r cuda_gpu_kern_sum REPORT.nsys-rep) for a diagnosis.")
    if memory and graphs.get("inferred_trace") == "graph" and memory.get("share_of_gpu_time") is not None:
        memory["share_of_gpu_time"] = None  # the graphs' kernel time is missing from the kernel table
        memory["note"] = "no share of GPU time: the kernels inside CUDA graphs are missing from the kernel table"
    copy_share = memory.get("share_of_gpu_time") if memory else None
    if isinstance(copy_share, float) and copy_share >= COPY_SHARE_ACTION:
        text, first = _copy_action(memory, copy_share)
        actions.insert(0 if first else len(actions), text)
        actions = [a for a in actions if not a.startswith("No problem stands out")]
        target["copies"] = {
            "share_of_gpu_time": copy_share,
            "dominant": memory.get("dominant"),
            "look_like": memory.get("copies_look_like"),
        }
    if nccl and target.get("kind") == "family" and target.get("family") != "communication" and nccl["share"] >= 0.2:
        advice = FAMILY_ADVICE["communication"]
        actions.append(f"Communication (NCCL) takes {_pct(nccl['share'])} of kernel time: {advice}.")
    if partial and any(a.startswith("No problem stands out") for a in actions):
        # "nothing found" is a conclusion from absence: only whole tables support it
        names = ", ".join(f"{t.report or t.kind} (line {t.line})" for t in partial)
        actions = [a for a in actions if not a.startswith("No problem stands out")]
        actions.append(
            f"Nothing stands out in the rows shown, but {names} {'is' if len(partial) == 1 else 'are'} partial: "
            "paste the whole tables before concluding there is no problem."
        )

    interpreted = [t for t in parsed.tables if t.kind in INTERPRETED]
    source = {
        "path": parsed.source,
        "lines": parsed.lines,
        "tables": [t.describe() for t in everything.tables],
        "kernel_table": kernel_source,
        "kernel_shares_of": share_of,
        "kernel_time_ns": kernel_ns or None,
        "kernel_instances": int(instances) if stats else None,
        "complete": {
            "kernels": kernel_complete if kernel_table is not None else None,
            "api": api.get("complete") if api else None,
            "memory": memory.get("complete") if memory else None,
        },
        "partial_tables": [
            {"line": t.line, "report": t.report or t.kind, "why": partial_why(t)}
            for t in everything.tables
            if t.partial
        ],
        "unreadable_tables": [
            {"line": t.line, "report": t.report or t.kind, "columns": t.unreadable}
            for t in everything.tables
            if not t.readable
        ],
        "scope": "whole run" if parsed.whole_run else "window",
        "scope_evidence": parsed.scope[:5],
    }
    notes = list(parsed.notes[:10])
    for t in everything.tables:
        if not t.readable:
            header, why = next(iter(t.unreadable.items()))
            notes.append(
                f"the {t.report or t.kind} table at line {t.line} is not interpreted: its column {header!r} cannot be "
                f"read without guessing ({why})"
            )
    for kind, what in (("kernels", "kernel"), ("api", "CUDA API"), ("mem_time", "memory")):
        tables = parsed.of_kind(kind)
        if len(tables) > 1:
            others = ", ".join(str(t.line) for t in tables[1:])
            notes.append(
                f"{len(tables)} {what} tables (before/after?): the first one (line {tables[0].line}) is explained; "
                f"the others start at line {others}: paste them alone to explain them"
            )
    if not interpreted and parsed.tables:
        notes.insert(0, "tables were found, but none of them is a report explain reads (kernel, API, memory, NVTX)")
    notes += parsed.refused[:5]
    unmapped = [r["name"] for r in kernels_all if not r["mapped"]][:10]
    if unmapped:
        notes.append(f"{len(unmapped)} of the top kernels match no op rule (add rules with --ops FILE)")
    return Explanation(
        source=source,
        kernels=kernels_all[: max(top, 1)],
        families=families,
        api=api,
        memory=memory,
        nccl=nccl,
        graphs=graphs,
        nvtx=nvtx,
        findings=findings,
        diagnosis=target,
        next_actions=actions,
        cannot_tell=_cannot_tell(parsed, kernel_table, api, memory, graphs, nccl, nvtx),
        notes=notes,
    )


def _copy_action(memory: dict[str, object], copy_share: float) -> tuple[str, bool]:
    """The next action for heavy copies, and whether it goes first. Advice against per-step copies only when the
    copies look per-step; a whole-run table of loading copies gets the steady-state capture instead."""
    dom = DIRECTION_WORDS.get(str(memory.get("dominant", "other")).removeprefix("unified-"), "copies")
    least = "at least " if memory.get("share_at_least") else ""
    head = f"Memory copies take {least}{100 * copy_share:.0f}% of GPU time (kernels + copies), {dom} copies most"
    look, why = memory.get("copies_look_like"), memory.get("copies_why")
    steady = (
        "capture only steady-state inference (--capture-range=cudaProfilerApi) or use nsys stats --filter-nvtx "
        "RANGE to see the copies inside steps"
    )
    if look == "per-step":
        return f"{head} ({why}): {FAMILY_ADVICE['memcpy']}.", copy_share >= 0.5
    if look == "loading":
        return f"{head}, but {why}: that is start-up, not per-step work; {steady} before working on copies.", False
    return f"{head}; {why}: {steady} before working on copies.", False
