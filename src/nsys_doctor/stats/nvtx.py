"""NVTX summaries: ``nvtx_sum``, ``nvtx_kern_sum`` and ``nvtx_gpu_proj_sum``.

Ranges are NVTX_EVENTS of types 59/60/70/71 named ``domain:text`` (default domain: ``:text``). A GPU operation
belongs to *every* range on the thread of its launching API call that contains the call's [start, end]. Open
ranges run until the last NVTX timestamp. Containment is found with a sort/explode over per-thread range
boundaries (no pairwise cross product): each range is listed at every boundary it spans, and a query looks up
the candidates active at the last boundary before its start.
"""

from __future__ import annotations

from ..trace import schema as S
from ..trace.schema import LAUNCH_NAMES_SQL, global_pid, global_tid
from ..values import Value
from .aggregate import (
    EXACT,
    STAT_COLUMNS,
    Groups,
    grouped_stats,
    groups_total,
    r1,
    share,
    sort_groups,
    stat_cells,
    sum_fits,
    value_stats,
)
from .core import Column, ReportContext, StatsTable, load_kernels, report, small_kernel_rows, small_rows

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable, Iterable, Sequence
    from typing import Any

    import polars as pl

PID_UNIT = 1 << 24
PUSHPOP_TYPES = (59, 70)
RANGE_TYPES = (59, 60, 70, 71)
DOMAIN_CREATE = 75
NO_NVTX = "does not contain NV Tools Extension (NVTX) data"
MAX_JUMPS = 64


def _pid_key(col: str = "globalTid") -> pl.Expr:
    """``globalTid & 0x0000FFFFFF000000`` (the process part), as nsys matches domains to ranges."""
    import polars as pl

    return (pl.col(col) // PID_UNIT) % PID_UNIT


def _sql_max(*values: int | None) -> int | None:
    """SQLite's scalar ``max(a, b)``: NULL as soon as one argument is NULL."""
    return None if any(v is None for v in values) else max(values)  # type: ignore[type-var]


def _nvtx_events(ctx: ReportContext) -> pl.DataFrame:
    """Filtered NVTX_EVENTS with ``rid`` (row id) and ``label`` = coalesce(StringIds.value, text)."""
    import polars as pl

    from ..trace.tables import load

    cols = ["start", "end", "eventType", "globalTid", "endGlobalTid", "textId", "text", "domainId"]
    df = load(ctx.trace, S.NVTX, cols, ctx.flt).with_row_index("rid")
    mapping = ctx.trace.strings
    ids = df["textId"].unique().drop_nulls().to_list()
    sid = pl.DataFrame(
        {"textId": ids, "_sid": [mapping.get(int(i)) for i in ids]}, schema={"textId": pl.Int64, "_sid": pl.Utf8}
    )
    df = df.join(sid, on="textId", how="left", maintain_order="left")
    return df.with_columns(pl.coalesce("_sid", "text").alias("label")).drop("_sid", "textId", "text")


def _named_ranges(events: pl.DataFrame) -> pl.DataFrame:
    """Range events with ``name`` (``domain:text``) and ``style`` (PushPop / StartEnd).

    Domains are DomainCreate events grouped by (domainId, globalTid), named by the earliest one, and joined on
    (domainId, process) exactly as nsys does (a domain created on several threads duplicates its ranges).
    """
    import polars as pl

    domains = (
        events.filter(pl.col("eventType") == DOMAIN_CREATE)
        .sort("start", maintain_order=True, nulls_last=True)
        .unique(subset=["domainId", "globalTid"], keep="first", maintain_order=True)
        .select("domainId", _pid_key().alias("_pk"), pl.col("label").alias("_domain"))
    )
    rng = events.filter(pl.col("eventType").is_in(RANGE_TYPES)).with_columns(_pid_key().alias("_pk"))
    rng = rng.join(domains, on=["domainId", "_pk"], how="left", maintain_order="left")
    return rng.with_columns(
        pl.concat_str(pl.col("_domain").fill_null(""), pl.lit(":"), pl.col("label").fill_null("")).alias("name"),
        pl.when(pl.col("eventType").is_in(PUSHPOP_TYPES))
        .then(pl.lit("PushPop"))
        .otherwise(pl.lit("StartEnd"))
        .alias("style"),
    ).drop("_pk", "_domain", "label")


def _indexed_ranges(events: pl.DataFrame) -> pl.DataFrame:
    """Ranges usable for containment (``endGlobalTid IS NULL``); open ones end at the last range timestamp.

    Columns: rid, tid (globalTid), rs, re (None when no range event has an end at all), name, style.
    """
    import polars as pl

    rtypes = events.filter(pl.col("eventType").is_in(RANGE_TYPES))
    maxts = _sql_max(rtypes["start"].max(), rtypes["end"].max()) if rtypes.height else None  # type: ignore[arg-type]
    rng = _named_ranges(events).filter(pl.col("endGlobalTid").is_null())
    return rng.select(
        "rid",
        pl.col("globalTid").alias("tid"),
        pl.col("start").alias("rs"),
        pl.coalesce(pl.col("end"), pl.lit(maxts, dtype=pl.Int64)).alias("re"),
        "name",
        "style",
    )


def containing(queries: pl.DataFrame, ranges: pl.DataFrame) -> pl.DataFrame:
    """All (qid, rid) where range ``rid`` is on the same ``tid`` and ``rs <= s`` and ``re >= e``.

    ``queries``: qid, tid, s, e; ``ranges``: rid, tid, rs, re. Each range is exploded over the per-thread
    boundary indices it spans (size ~ ranges x nesting depth); a query joins the ranges listed at the last
    boundary at or before its start, then the exact test is applied.
    """
    import polars as pl

    empty = pl.DataFrame(schema={"qid": queries.schema["qid"], "rid": ranges.schema["rid"]})
    rng = ranges.drop_nulls(["tid", "rs", "re"]).filter(pl.col("rs") <= pl.col("re"))
    q = queries.drop_nulls(["tid", "s", "e"])
    if not rng.height or not q.height:
        return empty
    bounds = (
        pl.concat([rng.select("tid", pl.col("rs").alias("b")), rng.select("tid", pl.col("re").alias("b"))])
        .unique()
        .sort("tid", "b")
        .with_row_index("bi")
        .with_columns(pl.col("bi").cast(pl.Int64))
    )
    spans = (
        rng.join(bounds.rename({"b": "rs", "bi": "i0"}), on=["tid", "rs"])
        .join(bounds.rename({"b": "re", "bi": "i1"}), on=["tid", "re"])
        .select("rid", "rs", "re", pl.int_ranges("i0", pl.col("i1") + 1).alias("bi"))
        .explode("bi")
    )
    at = q.sort("s").join_asof(
        bounds.sort("b"), left_on="s", right_on="b", by="tid", strategy="backward", check_sortedness=False
    )
    return (
        at.drop_nulls("bi")
        .join(spans, on="bi")
        .filter((pl.col("rs") <= pl.col("s")) & (pl.col("re") >= pl.col("e")))
        .select("qid", "rid")
    )


def _api_calls(ctx: ReportContext, launches_only: bool = False) -> pl.DataFrame:
    """Filtered runtime/driver API rows: correlationId, globalPid (process of the call), globalTid, r_start, r_end.

    ``launches_only`` reads only kernel-launch calls (enough when joining kernels, and much less to read)."""
    import polars as pl

    from ..trace.tables import load

    where = LAUNCH_NAMES_SQL if launches_only else ""
    r = load(ctx.trace, S.RUNTIME, ["start", "end", "globalTid", "correlationId"], ctx.flt, where=where)
    return r.select(
        "correlationId",
        (pl.col("globalTid") // PID_UNIT * PID_UNIT).alias("globalPid"),
        "globalTid",
        pl.col("start").alias("r_start"),
        pl.col("end").alias("r_end"),
    )


def _calls_in_ranges(calls: pl.DataFrame, ranges: pl.DataFrame) -> pl.DataFrame:
    """``calls`` (with globalTid, r_start, r_end) joined to every containing range (rid; None when none)."""
    keys = ["globalTid", "r_start", "r_end"]
    q = calls.select(keys).drop_nulls().unique().with_row_index("qid")
    hits = containing(q.rename({"globalTid": "tid", "r_start": "s", "r_end": "e"}), ranges)
    qr = q.join(hits, on="qid").drop("qid")
    return calls.join(qr, on=keys, how="left", maintain_order="left")


def _labeller(ctx: ReportContext) -> Callable[[int | None, str | None], str | None]:
    """``coalesce(StringIds.value, text)`` of an NVTX event's ``textId`` and ``text``."""
    strings = ctx.trace.strings

    def label(text_id: int | None, text: str | None) -> str | None:
        value = None if text_id is None else strings.get(text_id)
        return text if value is None else value

    return label


def _small_domains(
    creates: Iterable[tuple[int, int | None, int | None, str | None, int | None]],
    label: Callable[[int | None, str | None], str | None],
) -> dict[tuple[int, int], list[str | None]]:
    """The names of the NVTX domains from their DomainCreate events ``(start, globalTid, textId, text, domainId)``:
    the earliest per (domainId, globalTid) names the domain for its process, keyed (domainId, pid); a domain created
    on several threads of one process has several names (nsys's join duplicates its ranges)."""
    domains: dict[tuple[int, int], list[str | None]] = {}
    seen: set[tuple[int, int]] = set()
    for _start, tid, text_id, text, domain in sorted(creates, key=lambda e: e[0]):
        if domain is None or tid is None or (domain, tid) in seen:
            continue
        seen.add((domain, tid))
        domains.setdefault((domain, global_pid(tid)), []).append(label(text_id, text))
    return domains


def _small_ranges(ctx: ReportContext) -> dict[tuple[str, str], list[int | None]] | None:
    """``nvtx_sum``'s ranges grouped by ``(name, style)`` (in order of each group's first range): their durations in
    table order (None for an open range when no event has an end), from a small, clean NVTX table read with
    sqlite3 alone: the rows ``_named_ranges`` gives, with domains named and joined as there (a domain created on
    several threads of a process duplicates its ranges); None when the polars path must decide (see
    ``small_rows``)."""
    cols = ["start", "end", "eventType", "globalTid", "textId", "text", "domainId"]
    events = small_rows(ctx, S.NVTX, cols, nullable=tuple(cols[1:]), text=("text",))
    if events is None:
        return None
    label = _labeller(ctx)
    ends = [e[1] for e in events if e[1] is not None]
    maxts = _sql_max(max(e[0] for e in events), max(ends)) if events and ends else None
    domains = _small_domains(((e[0], *e[3:]) for e in events if e[2] == DOMAIN_CREATE), label)
    styles = {t: "PushPop" if t in PUSHPOP_TYPES else "StartEnd" for t in RANGE_TYPES}
    strings = ctx.trace.strings
    groups: dict[tuple[str, str], list[int | None]] = {}
    for start, end, event_type, tid, text_id, text, domain in events:
        style = styles.get(event_type)
        if style is None:
            continue
        stop = end if end is not None else maxts
        dur = None if stop is None else stop - start
        value = None if text_id is None else strings.get(text_id)  # label(text_id, text), inline
        text_label = (text if value is None else value) or ""
        if domain is None or tid is None or not domains:
            names: Iterable[str | None] = ("",)
        else:
            names = domains.get((domain, global_pid(tid)), ("",))
        for d in names:
            key = ((d or "") + ":" + text_label, style)
            durations = groups.get(key)
            if durations is None:
                groups[key] = [dur]
            else:
                durations.append(dur)
    return groups


class SmallRange(Value):
    """A range of the stdlib engine's containment (``_indexed_ranges``' row): rid, tid, rs, re, name, style."""

    _fields = ("rid", "tid", "rs", "re", "name", "style")

    def __init__(self, rid: int, tid: int | None, rs: int, re: int | None, name: str, style: str) -> None:
        self.rid = rid
        self.tid = tid
        self.rs = rs
        self.re = re
        self.name = name
        self.style = style


def _small_indexed_ranges(ctx: ReportContext) -> list[SmallRange] | None:
    """``_indexed_ranges`` with sqlite3 alone, from a small clean NVTX table; None (the polars path decides) when
    the table is not small and clean (``small_rows``), a domain is created on several threads of one process (its
    ranges would be duplicated), or a range ends before it starts."""
    cols = ["start", "end", "eventType", "globalTid", "endGlobalTid", "textId", "text", "domainId"]
    events = small_rows(ctx, S.NVTX, cols, nullable=tuple(cols[1:]), text=("text",))
    if events is None:
        return None
    label = _labeller(ctx)
    kept = [e for e in events if e[2] in RANGE_TYPES]
    ends = [e[1] for e in kept if e[1] is not None]
    maxts = _sql_max(max(e[0] for e in kept), max(ends)) if kept and ends else None
    domains = _small_domains(((e[0], e[3], *e[5:]) for e in events if e[2] == DOMAIN_CREATE), label)
    if any(len(names) > 1 for names in domains.values()):
        return None
    out = []
    for rid, (start, end, event_type, tid, end_tid, text_id, text, domain) in enumerate(events):
        if event_type not in RANGE_TYPES or end_tid is not None:
            continue
        stop = end if end is not None else maxts
        if stop is not None and stop < start:
            return None
        pk = None if tid is None else global_pid(tid)
        scope = domains.get((domain, pk), [""])[0] if domain is not None and pk is not None else ""
        style = "PushPop" if event_type in PUSHPOP_TYPES else "StartEnd"
        name = (scope or "") + ":" + (label(text_id, text) or "")
        out.append(SmallRange(rid, tid, start, stop, name, style))
    return out


SMALL_SWEEP = 4_000_000
"""The most open ranges the stdlib engine's sweep looks at in all (queries x ranges open at their start): beyond it
(thousands of ranges left open on one thread), the polars path decides."""


def _small_containing(
    queries: list[tuple[int, int, int, int]], ranges: list[SmallRange]
) -> dict[int, list[int]] | None:
    """``containing`` of the stdlib engine: for each query ``(qid, tid, s, e)`` with ``s <= e``, the rids of the
    ranges on its thread with ``rs <= s`` and ``re >= e`` (in order of start), by a sweep over the queries in order
    of start that keeps the ranges open at that start; None past ``SMALL_SWEEP``."""
    by_tid: dict[int, list[SmallRange]] = {}
    for r in sorted(ranges, key=lambda r: r.rs):
        if r.tid is not None and r.re is not None:
            by_tid.setdefault(r.tid, []).append(r)
    asked: dict[int, list[tuple[int, int, int]]] = {}
    for qid, tid, s, e in queries:
        asked.setdefault(tid, []).append((s, e, qid))
    found: dict[int, list[int]] = {}
    work = 0
    for tid, group in asked.items():
        pending = by_tid.get(tid)
        if not pending:  # a thread without ranges: no query of it is in one
            for _s, _e, qid in group:
                found[qid] = []
            continue
        i, n = 0, len(pending)
        active: list[SmallRange] = []
        first_end = None  # the earliest end among the open ranges (None: none open)
        every: list[int] = []  # the rids of all the open ranges, in order of start
        for s, e, qid in sorted(group):
            if (i < n and pending[i].rs <= s) or (first_end is not None and first_end < s):
                while i < n and pending[i].rs <= s:
                    active.append(pending[i])
                    i += 1
                active = [r for r in active if r.re >= s]  # type: ignore[operator]
                first_end = min([r.re for r in active]) if active else None  # type: ignore[type-var]
                every = [r.rid for r in active]
            # a query ending before any open range ends is in all of them (the list shared, read only)
            if first_end is None or e <= first_end:
                found[qid] = every
            else:
                found[qid] = [r.rid for r in active if r.re >= e]  # type: ignore[operator]
            work += len(active)
            if work > SMALL_SWEEP:
                return None
    return found


def _small_launches(
    ctx: ReportContext, where: str, op_tables: Sequence[str] | None = None
) -> dict[tuple[int, int], list[tuple[int, int, int, int]]] | None:
    """API calls (``_api_calls``) with sqlite3 alone: ``(correlationId, globalPid) -> [(qid, globalTid, r_start,
    r_end)]``, qid an id of the call; None (the polars path decides) when the table is not small and clean, or a
    call ends before it starts or has a negative thread id. With ``op_tables``, only calls whose correlation id is
    one of the GPU operations' there are read (the others match none: all calls but launches, read when ``where``
    does not keep launches alone, are most of a table)."""
    narrow = ""
    if op_tables is not None:
        ops = " UNION ALL ".join(f"SELECT correlationId FROM {t}" for t in op_tables if ctx.trace.schema.has(t))
        narrow = f"correlationId IN ({ops})" if ops else "0"
    columns = ["start", "end", "globalTid", "correlationId"]
    calls = small_rows(ctx, S.RUNTIME, columns, names=False, where=where, narrow=narrow)
    if calls is None:
        return None
    out: dict[tuple[int, int], list[tuple[int, int, int, int]]] = {}
    for qid, (start, end, tid, corr) in enumerate(calls):
        if end < start or tid < 0:
            return None
        out.setdefault((corr, tid // PID_UNIT * PID_UNIT), []).append((qid, tid, start, end))
    return out


def _small_kernel_groups(ctx: ReportContext) -> list[dict[str, Any]] | None:
    """``nvtx_kern_sum``'s groups with sqlite3 alone (rows named as the polars path's, ``kname`` resolved), or None
    when the polars path must decide."""
    ranges = _small_indexed_ranges(ctx)
    kernels = None if ranges is None else small_kernel_rows(ctx, ["start", "end", "correlationId", "globalPid"])
    calls = None if kernels is None else _small_launches(ctx, LAUNCH_NAMES_SQL)
    if ranges is None or kernels is None or calls is None:
        return None
    used = {call for k in kernels for call in calls.get((k[3], k[4]), ())}
    hits = _small_containing([(q, tid, s, e) for q, tid, s, e in used], ranges)
    if hits is None:
        return None
    named: dict[int | None, tuple[str | None, str | None]] = {r.rid: (r.name, r.style) for r in ranges}
    named[None] = (None, None)
    # a kernel without its launching call, or a call in no range, counts once with NULL for what is missing
    no_call: list[tuple[int | None, int | None, int, int]] = [(None, None, 0, 0)]
    no_range: list[int | None] = [None]
    groups: dict[tuple, tuple[list[int], set[int], set[int]]] = {}
    for kid, (kname, start, end, corr, gpid) in enumerate(kernels):
        dur = end - start
        for qid, tid, _, _ in calls.get((corr, gpid)) or no_call:
            pid = None if tid is None else global_pid(tid)
            thread = None if tid is None else global_tid(tid)
            for rid in (None if qid is None else hits.get(qid)) or no_range:
                key = (pid, thread, *named[rid], kname)
                group = groups.get(key)
                if group is None:
                    group = groups[key] = ([], set(), set())
                group[0].append(dur)
                if rid is not None:
                    group[1].add(rid)
                group[2].add(kid)
    out = []
    strings = ctx.trace.strings
    for (pid, tid, name, style, kname), (durs, ranges_in, kids) in groups.items():
        stats = value_stats(durs)
        if stats is None:
            return None
        row = {"pid": pid, "tid": tid, "name": name, "style": style, "kname": strings.get(kname)}
        row.update(zip(STAT_COLUMNS, stats, strict=True))
        row.update(nvtx_inst=len(ranges_in), kern_inst=len(kids))
        out.append(row)
    # name, pid, tid, total (descending), style, kernel name; NULL first (as polars' sort with nulls_last=False)
    for col, desc in (("kname", False), ("style", False), ("total", True), ("tid", False), ("pid", False)):
        out.sort(key=lambda g: (g[col] is not None, g[col] if g[col] is None or not desc else -g[col]))
    out.sort(key=lambda g: (g["name"] is not None, g["name"] or ""))
    return out


def _small_parents(ranges: list[SmallRange]) -> dict[int, int | None] | None:
    """``_parents`` of the stdlib engine: rid -> the tightest other range on its thread containing it (the shortest,
    then the lowest rid), None for a root; None past ``SMALL_SWEEP``."""
    queries = [(r.rid, r.tid, r.rs, r.re) for r in ranges if r.tid is not None and r.re is not None]
    found = _small_containing(queries, ranges)
    if found is None:
        return None
    length = {r.rid: r.re - r.rs for r in ranges if r.re is not None}
    parents: dict[int, int | None] = {}
    for r in ranges:
        others = [rid for rid in found.get(r.rid, ()) if rid != r.rid]
        parents[r.rid] = min(others, key=lambda rid: (length[rid], rid)) if others else None
    return parents


def _small_levels(parents: dict[int, int | None]) -> dict[int, int | None]:
    """``_levels`` of the stdlib engine: rid -> its number of ancestors; None on or below a cycle of parents."""
    levels: dict[int, int | None] = {}
    for rid in parents:
        chain: list[int] = []
        seen: set[int] = set()
        node: int | None = rid
        while node is not None and node not in levels and node not in seen:
            seen.add(node)
            chain.append(node)
            node = parents[node]
        level = -1 if node is None else levels.get(node) if node in levels else None  # None: a cycle
        for n in reversed(chain):
            level = None if level is None else level + 1
            levels[n] = level
    return levels


def _mean(values: list[int]) -> float | None:
    return float(sum(values)) / len(values) if values else None


def _small_projection_groups(ctx: ReportContext, op_tables: list[str]) -> list[dict[str, Any]] | None:
    """``nvtx_gpu_proj_sum``'s groups with sqlite3 alone (named as the polars path's), in the report's order, or
    None when the polars path must decide."""
    ranges = _small_indexed_ranges(ctx)
    if ranges is None:
        return None
    spans: dict[tuple[int, int], list[int]] = {}  # the GPU operations of each launch: min(start), max(end)
    for table in op_tables:
        ops = small_rows(ctx, table, ["start", "end", "correlationId", "globalPid"], names=False)
        if ops is None:
            return None
        for start, end, corr, gpid in ops:
            span = spans.get((corr, gpid))
            if span is None:
                spans[(corr, gpid)] = [start, end]
            else:
                span[0], span[1] = min(span[0], start), max(span[1], end)
    calls = _small_launches(ctx, "", op_tables)
    if calls is None:
        return None
    used = {call for key in spans for call in calls.get(key, ())}
    hits = _small_containing(list(used), ranges)
    if hits is None:
        return None
    proj: dict[int, tuple[list[int], set[int]]] = {}  # rid -> ([p_start, p_end], correlation ids)
    for (corr, gpid), (start, end) in spans.items():
        for qid, *_ in calls.get((corr, gpid), ()):
            for rid in hits.get(qid, ()):
                p = proj.get(rid)
                if p is None:
                    proj[rid] = ([start, end], {corr})
                else:
                    p[0][:] = [min(p[0][0], start), max(p[0][1], end)]
                    p[1].add(corr)
    parents = _small_parents(ranges)
    if parents is None:
        return None
    levels = _small_levels(parents)
    children: dict[int, int] = {}
    for rid, parent in parents.items():
        if parent is not None and rid in proj:
            children[parent] = children.get(parent, 0) + 1
    by_rid = {r.rid: r for r in ranges}
    grouped: dict[tuple[str, str], list[int]] = {}
    for rid in sorted(proj):
        r = by_rid[rid]
        grouped.setdefault((r.name, r.style), []).append(rid)
    out = []
    for (name, style), rids in grouped.items():
        stats = value_stats([proj[rid][0][1] - proj[rid][0][0] for rid in rids])
        if stats is None:
            return None
        counts = [len(proj[rid][1]) for rid in rids]
        lvls = [lv for lv in (levels[rid] for rid in rids) if lv is not None]
        row: dict[str, Any] = {
            "name": name,
            "style": style,
            "rtotal": sum((by_rid[rid].re or 0) - by_rid[rid].rs for rid in rids),  # re: never NULL in a projection
            "inst": len(rids),
            "ops": sum(counts),
            "avg_ops": _mean(counts),
            "avg_lvl": _mean(lvls),
            "avg_child": _mean([children.get(rid, 0) for rid in rids]),
        }
        row.update(zip(STAT_COLUMNS, stats, strict=True))
        out.append(row)
    out.sort(key=lambda g: (-g["total"], g["name"], g["style"]))
    return out


def _small_sum_rows(groups: dict[tuple[str, str], list[int | None]]) -> list[tuple] | None:
    """``nvtx_sum``'s rows from ``_small_ranges``' groups, in its order (total time descending, then name and
    style): the cells ``stat_cells`` and ``share`` give from the groups' statistics (``value_stats``; a range seen
    once, most groups of a range summary, inline); None when those would not be exact (the polars path decides)."""
    stats: list[tuple[int, int, tuple, str, str]] = []
    add = stats.append
    for (name, style), values in groups.items():
        if len(values) == 1 and type(one := values[0]) is int and -EXACT < one < EXACT:
            x = float(one)
            add((one, 1, (x, x, one, one, 0.0), style, name))
            continue
        found = value_stats([v for v in values if v is not None] if None in values else values)
        if found is None:
            return None
        n, total, med, mn, mx, std = found
        add((total, len(values), stat_cells(n, total, med, mn, mx, std), style, name))
    grand = sum(s[0] for s in stats)
    if not sum_fits(grand):
        return None
    stats.sort(key=lambda s: (-s[0], s[4], s[3]))
    return [(share(total, grand), total, inst, *cells, style, name) for total, inst, cells, style, name in stats]


def _range_groups(ctx: ReportContext) -> Groups:
    """Range time per (name, style), with ``inst``: the ranges (open ones included), by polars (the stdlib
    engine's rows are ``_small_sum_rows``)."""
    import polars as pl

    events = _nvtx_events(ctx)
    maxts = _sql_max(events["start"].max(), events["end"].max()) if events.height else None  # type: ignore[arg-type]
    rng = _named_ranges(events).with_columns(
        (pl.coalesce(pl.col("end"), pl.lit(maxts, dtype=pl.Int64)) - pl.col("start")).alias("dur")
    )
    keys = ["name", "style"]
    return grouped_stats(rng, keys, "dur").join(
        rng.group_by(keys).agg(pl.len().alias("inst")), on=keys, how="left", nulls_equal=True
    )


@report("nvtx_sum", "NVTX Range Summary")
def nvtx_sum(ctx: ReportContext) -> StatsTable:
    """Time spent in each NVTX range (push/pop and start/end), per range name and style."""
    cols = (
        Column("Time", "ratio_%"),
        Column("Total Time", "dur_ns"),
        Column("Instances"),
        Column("Avg", "dur_ns"),
        Column("Med", "dur_ns"),
        Column("Min", "dur_ns"),
        Column("Max", "dur_ns"),
        Column("StdDev", "dur_ns"),
        Column("Style"),
        Column("Range"),
    )
    if not ctx.trace.schema.has(S.NVTX):
        return StatsTable("nvtx_sum", "NVTX Range Summary", cols, [], NO_NVTX)
    ranges = _small_ranges(ctx)
    rows = None if ranges is None else _small_sum_rows(ranges)
    if rows is not None:
        return StatsTable("nvtx_sum", "NVTX Range Summary", cols, rows, "" if rows else "no NVTX ranges")
    stats = _range_groups(ctx)
    grand = groups_total(stats)
    rows = []
    for r in sort_groups(stats, ["total", "name", "style"], [True, False, False]):
        rows.append(
            (
                share(r["total"] or 0, grand),
                r["total"],
                r["inst"],
                *stat_cells(r["n"], r["total"], r["med"], r["min"], r["max"], r["std"]),
                r["style"],
                r["name"],
            )
        )
    return StatsTable("nvtx_sum", "NVTX Range Summary", cols, rows, "" if rows else "no NVTX ranges")


@report("nvtx_kern_sum", "NVTX Range Kernel Summary", flags=("base", "mangled"))
def nvtx_kern_sum(ctx: ReportContext) -> StatsTable:
    """Kernels per enclosing NVTX range (every range containing the launch call), per process and thread."""
    cols = (
        Column("NVTX Range"),
        Column("Style"),
        Column("PID"),
        Column("TID"),
        Column("NVTX Inst"),
        Column("Kern Inst"),
        Column("Total Time", "dur_ns"),
        Column("Avg", "dur_ns"),
        Column("Med", "dur_ns"),
        Column("Min", "dur_ns"),
        Column("Max", "dur_ns"),
        Column("StdDev", "dur_ns"),
        Column("Kernel Name"),
    )
    for table, why in (
        (S.NVTX, NO_NVTX),
        (S.KERNEL, "does not contain CUDA kernel data"),
        (S.RUNTIME, "does not contain CUDA API data"),
    ):
        if not ctx.trace.schema.has(table):
            return StatsTable("nvtx_kern_sum", "NVTX Range Kernel Summary", cols, [], why)
    groups = _small_kernel_groups(ctx)
    rows = [
        (
            r["name"],
            r["style"],
            r["pid"],
            r["tid"],
            r["nvtx_inst"],
            r["kern_inst"],
            r["total"],
            *stat_cells(r["n"], r["total"], r["med"], r["min"], r["max"], r["std"]),
            r["kname"],
        )
        for r in (_kernel_groups(ctx) if groups is None else groups)
    ]
    return StatsTable("nvtx_kern_sum", "NVTX Range Kernel Summary", cols, rows, "" if rows else "no CUDA kernels")


def _kernel_groups(ctx: ReportContext) -> list[dict[str, Any]]:
    """``nvtx_kern_sum``'s groups, in order, as named rows (polars)."""
    import polars as pl

    from ..trace.tables import resolve_names

    ranges = _indexed_ranges(_nvtx_events(ctx))
    kern = load_kernels(ctx, ["start", "end", "correlationId", "globalPid"])
    kern = kern.with_row_index("kid").select(
        "kid",
        (pl.col("end") - pl.col("start")).alias("dur"),
        pl.col("name_id").alias("kname_id"),
        "correlationId",
        "globalPid",
    )
    api = _api_calls(ctx, launches_only=True).with_row_index("qid")
    kern = kern.join(
        api.select("correlationId", "globalPid", "qid", "globalTid"),
        on=["correlationId", "globalPid"],
        how="left",
        maintain_order="left",
    )
    # containment is computed once per launch call (graph launches and repeated calls are shared by many kernels)
    used = api.join(kern.select("qid").drop_nulls().unique(), on="qid", how="semi")
    q = used.select("qid", pl.col("globalTid").alias("tid"), pl.col("r_start").alias("s"), pl.col("r_end").alias("e"))
    hits = containing(q, ranges.select("rid", "tid", "rs", "re"))
    combo = kern.join(hits, on="qid", how="left", maintain_order="left")
    combo = combo.join(ranges.select("rid", "name", "style"), on="rid", how="left", maintain_order="left")
    combo = combo.with_columns(_pid_key().alias("pid"), (pl.col("globalTid") % PID_UNIT).alias("tid"))
    keys = ["pid", "tid", "name", "style", "kname_id"]
    v = pl.col("dur")
    stats = combo.group_by(keys).agg(
        v.count().alias("n"),
        v.sum().alias("total"),
        v.median().alias("med"),
        v.min().alias("min"),
        v.max().alias("max"),
        v.std(ddof=1).alias("std"),
        pl.col("rid").drop_nulls().n_unique().alias("nvtx_inst"),
        pl.col("kid").n_unique().alias("kern_inst"),
    )
    stats = resolve_names(stats, ctx.trace, "kname_id", "kname")
    order = ["name", "pid", "tid", "total", "style", "kname"]
    stats = stats.sort(order, descending=[False, False, False, True, False, False], nulls_last=False)
    return list(stats.iter_rows(named=True))


def _parents(ranges: pl.DataFrame) -> pl.DataFrame:
    """rid -> parent: the tightest other range on the same thread containing it (None for a root)."""
    import polars as pl

    q = ranges.select(pl.col("rid").alias("qid"), "tid", pl.col("rs").alias("s"), pl.col("re").alias("e"))
    pairs = containing(q, ranges.select("rid", "tid", "rs", "re")).filter(pl.col("qid") != pl.col("rid"))
    dur = ranges.select("rid", (pl.col("re") - pl.col("rs")).alias("d"))
    best = (
        pairs.join(dur, on="rid")
        .sort("d", "rid")  # tightness = parent duration - child duration
        .unique(subset="qid", keep="first")
        .select(pl.col("qid").alias("rid"), pl.col("rid").alias("parent"))
    )
    return ranges.select("rid").join(best, on="rid", how="left")


def _levels(parents: pl.DataFrame) -> pl.DataFrame:
    """rid -> level (0 for roots) by pointer jumping; None for ranges on a parent cycle (never reached)."""
    import polars as pl

    df = parents.select(
        "rid", pl.col("parent").alias("jump"), pl.when(pl.col("parent").is_null()).then(0).otherwise(1).alias("dist")
    )
    open_ = df["jump"].null_count()
    for _ in range(MAX_JUMPS):
        if df["jump"].null_count() == df.height:
            break
        nxt = df.select(pl.col("rid").alias("jump"), pl.col("jump").alias("j2"), pl.col("dist").alias("d2"))
        df = df.join(nxt, on="jump", how="left", maintain_order="left").select(
            "rid",
            pl.when(pl.col("jump").is_null()).then(None).otherwise(pl.col("j2")).alias("jump"),
            (pl.col("dist") + pl.col("d2").fill_null(0)).alias("dist"),
        )
        resolved = df["jump"].null_count()
        if resolved == open_:
            break
        open_ = resolved
    return df.select("rid", pl.when(pl.col("jump").is_null()).then(pl.col("dist")).alias("level"))


@report("nvtx_gpu_proj_sum", "NVTX GPU Projection Summary")
def nvtx_gpu_proj_sum(ctx: ReportContext) -> StatsTable:
    """NVTX ranges projected onto the GPU: span of the GPU ops launched inside each range, per name and style."""
    cols = (
        Column("Range"),
        Column("Style"),
        Column("Total Proj Time", "dur_ns"),
        Column("Total Range Time", "dur_ns"),
        Column("Range Instances"),
        Column("Proj Avg", "dur_ns"),
        Column("Proj Med", "dur_ns"),
        Column("Proj Min", "dur_ns"),
        Column("Proj Max", "dur_ns"),
        Column("Proj StdDev", "dur_ns"),
        Column("Total GPU Ops"),
        Column("Avg GPU Ops"),
        Column("Avg Range Lvl"),
        Column("Avg Num Child"),
    )
    title = "NVTX GPU Projection Summary"
    op_tables = [t for t in (S.KERNEL, S.MEMCPY, S.MEMSET) if ctx.trace.schema.has(t)]
    for ok, why in (
        (ctx.trace.schema.has(S.NVTX), NO_NVTX),
        (ctx.trace.schema.has(S.RUNTIME), "does not contain CUDA API data"),
        (bool(op_tables), "does not contain GPU operation data"),
    ):
        if not ok:
            return StatsTable("nvtx_gpu_proj_sum", title, cols, [], why)
    groups = _small_projection_groups(ctx, op_tables)
    rows = [
        (
            r["name"],
            r["style"],
            r["total"],
            r["rtotal"],
            r["inst"],
            *stat_cells(r["n"], r["total"], r["med"], r["min"], r["max"], r["std"]),
            r["ops"],
            r1(r["avg_ops"]),
            r1(r["avg_lvl"]),
            r1(r["avg_child"]),
        )
        for r in (_projection_groups(ctx, op_tables) if groups is None else groups)
    ]
    return StatsTable("nvtx_gpu_proj_sum", title, cols, rows, "" if rows else "no GPU operations inside NVTX ranges")


def _projection_groups(ctx: ReportContext, op_tables: list[str]) -> list[dict[str, Any]]:
    """``nvtx_gpu_proj_sum``'s groups, in order, as named rows (polars)."""
    import polars as pl

    from ..trace.tables import load

    ranges = _indexed_ranges(_nvtx_events(ctx))
    ops = pl.concat([load(ctx.trace, t, ["start", "end", "correlationId", "globalPid"], ctx.flt) for t in op_tables])
    # min(start), max(end) and count(DISTINCT correlationId) per range do not change if ops of one launch merge
    ops = ops.group_by("correlationId", "globalPid").agg(pl.col("start").min(), pl.col("end").max())
    calls = ops.join(_api_calls(ctx), on=["correlationId", "globalPid"], how="inner")
    inside = _calls_in_ranges(calls, ranges.select("rid", "tid", "rs", "re")).drop_nulls("rid")
    # in range order, so that the statistics see the projections in one order, run after run
    proj = (
        inside.group_by("rid")
        .agg(
            pl.col("start").min().alias("p_start"),
            pl.col("end").max().alias("p_end"),
            pl.col("correlationId").n_unique().alias("ops"),
        )
        .sort("rid")
    )
    parents = _parents(ranges)
    children = (
        parents.drop_nulls("parent")
        .join(proj.select("rid"), on="rid", how="semi")
        .group_by("parent")
        .agg(pl.len().alias("nchild"))
        .rename({"parent": "rid"})
    )
    proj = (
        proj.join(ranges, on="rid", how="left", maintain_order="left")
        .join(_levels(parents), on="rid", how="left", maintain_order="left")
        .join(children, on="rid", how="left", maintain_order="left")
        .with_columns(
            (pl.col("p_end") - pl.col("p_start")).alias("pdur"),
            (pl.col("re") - pl.col("rs")).alias("rdur"),
            pl.col("nchild").fill_null(0),
        )
    )
    keys = ["name", "style"]
    extra = proj.group_by(keys).agg(
        pl.col("rdur").sum().alias("rtotal"),
        pl.len().alias("inst"),
        pl.col("ops").sum().alias("ops"),
        pl.col("ops").mean().alias("avg_ops"),
        pl.col("level").mean().alias("avg_lvl"),
        pl.col("nchild").mean().alias("avg_child"),
    )
    stats = grouped_stats(proj, keys, "pdur").join(extra, on=keys, how="left", nulls_equal=True)
    return list(stats.sort(["total", "name", "style"], descending=[True, False, False]).iter_rows(named=True))
