"""NVTX summaries: ``nvtx_sum``, ``nvtx_kern_sum`` and ``nvtx_gpu_proj_sum``.

Ranges are NVTX_EVENTS of types 59/60/70/71 named ``domain:text`` (default domain: ``:text``). A GPU operation
belongs to *every* range on the thread of its launching API call that contains the call's [start, end]. Open
ranges run until the last NVTX timestamp. Containment is found with a sort/explode over per-thread range
boundaries (no pairwise cross product): each range is listed at every boundary it spans, and a query looks up
the candidates active at the last boundary before its start.
"""

from __future__ import annotations

from ..trace import schema as S
from ..trace.schema import LAUNCH_NAMES_SQL
from .aggregate import Groups, grouped_stats, groups_total, r1, share, small_grouped_stats, sort_groups, stat_cells
from .core import Column, ReportContext, StatsTable, load_kernels, report, small_rows

TYPE_CHECKING = False
if TYPE_CHECKING:
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


def _small_ranges(ctx: ReportContext) -> list[tuple] | None:
    """``nvtx_sum``'s ranges as rows ``(name, style, dur)`` (dur None for an open range when no event has an end),
    from a small, clean NVTX table read with sqlite3 alone: the rows ``_named_ranges`` gives, with domains named
    and joined as there (a domain created on several threads of a process duplicates its ranges); None when the
    polars path must decide (see ``small_rows``)."""
    cols = ["start", "end", "eventType", "globalTid", "textId", "text", "domainId"]
    events = small_rows(ctx, S.NVTX, cols, nullable=tuple(cols[1:]), text=("text",))
    if events is None:
        return None
    strings = ctx.trace.strings

    def label(text_id: int | None, text: str | None) -> str | None:  # coalesce(StringIds.value, text)
        value = None if text_id is None else strings.get(text_id)
        return text if value is None else value

    def pid_key(tid: int | None) -> int | None:
        return None if tid is None else (tid // PID_UNIT) % PID_UNIT

    ends = [e[1] for e in events if e[1] is not None]
    maxts = _sql_max(max(e[0] for e in events), max(ends)) if events and ends else None
    # DomainCreate events: the earliest per (domainId, globalTid) names the domain for its process
    domains: dict[tuple[int, int], list[str | None]] = {}
    seen: set[tuple[int | None, int | None]] = set()
    for _start, _end, _type, tid, text_id, text, domain in sorted(
        (e for e in events if e[2] == DOMAIN_CREATE), key=lambda e: e[0]
    ):
        pk = pid_key(tid)
        if (domain, tid) in seen:
            continue
        seen.add((domain, tid))
        if domain is not None and pk is not None:
            domains.setdefault((domain, pk), []).append(label(text_id, text))
    rows = []
    for start, end, event_type, tid, text_id, text, domain in events:
        if event_type not in RANGE_TYPES:
            continue
        pk = pid_key(tid)
        names = domains.get((domain, pk), [None]) if domain is not None and pk is not None else [None]
        style = "PushPop" if event_type in PUSHPOP_TYPES else "StartEnd"
        stop = end if end is not None else maxts
        dur = None if stop is None else stop - start
        text_label = label(text_id, text) or ""
        rows += [((d or "") + ":" + text_label, style, dur) for d in names]
    return rows


def _range_groups(ctx: ReportContext) -> Groups:
    """Range time per (name, style), with ``inst``: the ranges (open ones included); stdlib engine or polars."""
    ranges = _small_ranges(ctx)
    groups = None if ranges is None else small_grouped_stats(ranges, ["name", "style"], count="inst")
    if groups is not None:
        return groups
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
        for r in stats.iter_rows(named=True)
    ]
    return StatsTable("nvtx_kern_sum", "NVTX Range Kernel Summary", cols, rows, "" if rows else "no CUDA kernels")


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
    import polars as pl

    from ..trace.tables import load

    ranges = _indexed_ranges(_nvtx_events(ctx))
    ops = pl.concat([load(ctx.trace, t, ["start", "end", "correlationId", "globalPid"], ctx.flt) for t in op_tables])
    # min(start), max(end) and count(DISTINCT correlationId) per range do not change if ops of one launch merge
    ops = ops.group_by("correlationId", "globalPid").agg(pl.col("start").min(), pl.col("end").max())
    calls = ops.join(_api_calls(ctx), on=["correlationId", "globalPid"], how="inner")
    inside = _calls_in_ranges(calls, ranges.select("rid", "tid", "rs", "re")).drop_nulls("rid")
    proj = inside.group_by("rid").agg(
        pl.col("start").min().alias("p_start"),
        pl.col("end").max().alias("p_end"),
        pl.col("correlationId").n_unique().alias("ops"),
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
        proj.join(ranges, on="rid", how="left")
        .join(_levels(parents), on="rid", how="left")
        .join(children, on="rid", how="left")
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
    rows = []
    for r in stats.sort(["total", "name", "style"], descending=[True, False, False]).iter_rows(named=True):
        rows.append(
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
        )
    return StatsTable("nvtx_gpu_proj_sum", title, cols, rows, "" if rows else "no GPU operations inside NVTX ranges")
