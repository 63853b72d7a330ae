"""The answer's sections from the tables: kernels and families, CUDA API, memory, NCCL, graphs, NVTX."""

from __future__ import annotations

import re

import polars as pl

from ...trace.pasted import PastedTable, PastedText
from ...units import format_bytes
from ..ops import OpRule, classify, kernel_label
from ..phases import PREFILL_NAMES, STEP_NAMES
from .tables import (
    API_GROUPS,
    NameStat,
    aggregate,
    first_table,
    name_stats,
    num,
    ops_from_trace_report,
    rows_from_gpu_sum,
    short_name,
)

RULE_ROWS = 50  # nsys analyze rules list this many rows by default
COPY_NOTE_SHARE = 0.1  # below this share, whether copies are loading or per-step is not worth a word
# A whole-run table mixes start-up and steady state. Loading weights is few large host-to-device copies (a model has
# hundreds to a few thousand tensors, each usually MBs); per-step copies are many (one or more per step) and small.
LOADING_MIN_AVG_BYTES = 1 << 20
LOADING_MAX_COPIES = 10_000
PER_STEP_MIN_COPIES = 1_000

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


def kernels_and_families(
    stats: list[NameStat], rules: list[OpRule], top: int
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
    rows.sort(key=lambda r: (-(r["share"] or 0), -(r["total_ns"] or 0), str(r["name"])))
    # families added up in a fixed order (the same input gives the same bytes), ties broken by name
    groups: dict[tuple[str, str], dict[str, object]] = {}
    for r in rows:
        g = groups.setdefault(
            (str(r["family"]), str(r["category"])), {"share": 0.0, "total": 0.0, "count": 0.0, "names": set()}
        )
        g["share"] = float(g["share"]) + float(r["share"] or 0)  # type: ignore[arg-type]
        g["total"] = float(g["total"]) + float(r["total_ns"] or 0)  # type: ignore[arg-type]
        g["count"] = float(g["count"]) + float(r["count"] or 0)  # type: ignore[arg-type]
        seen = g["names"]
        if isinstance(seen, set):
            seen.add(r["name"])
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


def api_section(parsed: PastedText) -> dict[str, object]:
    t = first_table(parsed, "api")
    rows = t.rows if t is not None else rows_from_gpu_sum(parsed, "CUDA_API")
    if not rows:
        return {}
    stats = name_stats(rows)
    total = sum(s.total_ns or 0 for s in stats)
    source = t if t is not None else first_table(parsed, "gpu_sum")
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


def memory_section(parsed: PastedText, kernel_ns: float, kernel_complete: bool) -> dict[str, object]:
    """Copies and memsets by direction: time, count, bytes, share of copy time and of GPU time; whether the tables
    are complete and whether the copies look like loading or like per-step copies."""
    t = first_table(parsed, "mem_time")
    time_rows = t.rows if t is not None else rows_from_gpu_sum(parsed, "MEMORY_OPER")
    size = first_table(parsed, "mem_size")
    sources = [x for x in (t if t is not None else (first_table(parsed, "gpu_sum") if time_rows else None), size) if x]
    if not time_rows and size is None:  # a pasted GPU trace: add its copies up
        sources = parsed.of_kind("gpu_trace")
        trace_ops = ops_from_trace_report(parsed, memory=True)
        sizes: dict[str, float] = {}
        for op in trace_ops:
            if op["bytes"] is not None:
                sizes[str(op["name"])] = sizes.get(str(op["name"]), 0.0) + float(op["bytes"])  # type: ignore[arg-type]
        time_rows = [
            {"name": s.name, "total_ns": s.total_ns, "count": s.count, "bytes": sizes.get(s.name)}
            for s in aggregate(trace_ops)
        ]
    out: dict[str, object] = {}
    by_dir: dict[str, dict[str, object]] = {}
    for r in time_rows:
        d = by_dir.setdefault(_direction(str(r.get("name") or "")), {"total_ns": 0.0, "count": 0, "bytes": None})
        d["total_ns"] = (num(d["total_ns"]) or 0.0) + (num(r.get("total_ns")) or 0)
        d["count"] = int(num(d["count"]) or 0) + int(num(r.get("count")) or 0)
        row_bytes = num(r.get("bytes"))
        if row_bytes is not None:
            d["bytes"] = (num(d["bytes"]) or 0) + row_bytes
    if size is not None:
        col = size.column("total_bytes")
        if col is not None and col.factor > 1:  # sizes shown in MB with 3 decimals: smaller ones read as 0
            out["bytes_resolution"] = 0.5 * 10.0**-col.decimals * col.factor
        for r in size.rows:
            d = by_dir.setdefault(_direction(str(r.get("name") or "")), {"total_ns": None, "count": 0, "bytes": None})
            d["bytes"] = (num(d["bytes"]) or 0) + (num(r.get("total_bytes")) or 0)
            if not d["count"]:
                d["count"] = int(num(r.get("count")) or 0)
    if not by_dir:
        return out
    copy_ns = sum(num(d["total_ns"]) or 0.0 for d in by_dir.values())
    for d in by_dir.values():
        tot = num(d["total_ns"])
        d["share_of_copy_time"] = tot / copy_ns if copy_ns and tot is not None else None
        b, c = num(d["bytes"]), num(d["count"])
        d["avg_bytes"] = b / c if b is not None and c else None
    out["by_direction"] = by_dir
    out["total_ns"] = copy_ns
    known_bytes = [num(d["bytes"]) for d in by_dir.values() if d["bytes"] is not None]
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
    by_dir = memory.get("by_direction")
    d = by_dir.get(dom) if dom and isinstance(by_dir, dict) else None
    if not parsed.whole_run:
        return "per-step", f"the tables cover a window ({parsed.scope[0]}), not start-up"
    if not isinstance(d, dict):
        return "unknown", "no copy time in the tables"
    count, avg = num(d.get("count")), num(d.get("avg_bytes"))
    word = DIRECTION_WORDS.get(dom.removeprefix("unified-"), dom)
    if avg is None or not count:
        return "unknown", (
            f"the tables cover the whole run and give no copy sizes, so {word} copies at start-up (loading) cannot be "
            "told from copies in every step"
        )
    resolution = num(memory.get("bytes_resolution"))
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


def nccl_section(kernels_all: list[dict[str, object]], fam: pl.DataFrame) -> dict[str, object]:
    comm = fam.filter(pl.col("family") == "communication")
    if comm.is_empty():
        return {}
    top = [r for r in kernels_all if r["family"] == "communication"][:3]
    return {
        "share": round(float(comm["share"].sum()), 6),
        "total_ns": float(comm["total"].sum()),
        "kernels": [{"label": r["label"], "share": r["share"]} for r in top],
    }


def graph_section(
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


def nvtx_section(parsed: PastedText) -> dict[str, object]:
    """NVTX ranges, and the steps among them (``decode_step``, ``forward`` ...): their count, typical and worst
    duration."""
    t = first_table(parsed, "nvtx")
    if t is None:
        return {}
    ranges = sorted(name_stats(t.rows), key=lambda s: (-(s.total_ns or 0), s.name))

    def item(s: NameStat) -> dict[str, object]:
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
