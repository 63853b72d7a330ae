"""Loaders: activity tables as typed polars frames, with an optional EventFilter pushed into SQL.

Columns missing from an older export come back as nulls of the right type, so analyses never probe SQLite.
"""

from __future__ import annotations

import weakref

import polars as pl

from . import cache
from . import schema as S
from .damage import DamageSummary
from .gpuinfo import GPU_FIELDS, gpu_rows, gpu_value
from .open import Trace
from .window import EventFilter

I64: pl.DataType = pl.Int64()
STR: pl.DataType = pl.Utf8()

# the columns of every row of GPU work on a stream (kernels, copies, memsets, syncs, graph launches)
_STREAM_WORK = ("start", "end", "deviceId", "contextId", "streamId", "correlationId", "globalPid")


def _int_columns(*names: str) -> dict[str, pl.DataType]:
    """Integer columns by name (nearly every column of the activity tables is one)."""
    return dict.fromkeys(names, I64)


COLUMN_TYPES: dict[str, dict[str, pl.DataType]] = {
    S.KERNEL: _int_columns(
        *_STREAM_WORK,
        "greenContextId",
        "demangledName",
        "shortName",
        "mangledName",
        *S.KERNEL_GEOMETRY,
        "graphNodeId",
        "launchType",
    ),
    S.RUNTIME: _int_columns("start", "end", "eventClass", "globalTid", "correlationId", "nameId", "returnValue"),
    S.MEMCPY: _int_columns(
        *_STREAM_WORK,
        "greenContextId",
        "bytes",
        "copyKind",
        "srcKind",
        "dstKind",
        "srcDeviceId",
        "dstDeviceId",
        "graphNodeId",
    ),
    S.MEMSET: _int_columns(*_STREAM_WORK, "greenContextId", "bytes", "memKind", "value", "graphNodeId"),
    S.SYNC: _int_columns(*_STREAM_WORK, "syncType"),
    S.GRAPH_TRACE: _int_columns(*_STREAM_WORK, "graphId", "graphExecId"),
    S.NVTX: {
        **_int_columns("start", "end", "eventType", "rangeId", "globalTid", "endGlobalTid", "textId"),
        "text": STR,
        "domainId": I64,
    },
    S.OSRT: _int_columns("start", "end", "eventClass", "globalTid", "nameId"),
    S.PROFILER_OVERHEAD: _int_columns("start", "end", "globalTid", "nameId"),
}


ROWID = "rowid AS _rid"
"""A column ``load`` reads from any table: the row's rowid, named ``_rid``."""
PID = f"CASE WHEN typeof(globalPid) = 'integer' THEN {S.pid_sql('globalPid')} END AS pid"
"""A column ``load`` reads from a table with a ``globalPid``: the process id in it (``pid_of``, computed by SQLite:
the 8-byte globalPid of millions of kernels is never held), named ``pid``; null for a value that is not an
integer, as ``pid_of`` of the read globalPid is."""
_DERIVED = {ROWID: ("_rid", None), PID: ("pid", "globalPid")}  # a derived column's name, and what it needs


def load(
    trace: Trace,
    table: str,
    columns: list[str],
    flt: EventFilter | None = None,
    where: str = "",
    rowids: tuple[int, int] | None = None,
    narrow: tuple[str, ...] = (),
) -> pl.DataFrame:
    """The named columns of ``table`` (rows passing ``flt`` and the SQL condition ``where``; with ``rowids``, only
    that inclusive rowid range), in table order; absent columns are nulls. ``ROWID`` is the rowid, as ``_rid``;
    ``PID`` the process id of the globalPid, as ``pid``. The ``narrow`` columns (by their names) are Int32 where
    every value fits 32 bits (see ``Trace.read_table``)."""
    types: dict[str, pl.DataType] = {**COLUMN_TYPES[table], ROWID: pl.Int64(), PID: pl.Int64()}
    trace.require_columns(table)
    own = trace.schema.columns(table)
    present = (*own, *(c for c, (_, need) in _DERIVED.items() if need is None or need in own))
    read = {c: types[c] for c in columns if c in present}
    conds = [c for c in ((flt.sql_where(present) if flt is not None else ""), where) if c]
    where = " AND ".join(f"({c})" for c in conds)
    df = trace.read_table(table, read, where, rowids, narrow) if read else pl.DataFrame()
    names = {c: _DERIVED[c][0] if c in _DERIVED else c for c in columns}
    missing = [c for c in columns if c not in read]
    if missing:
        height = df.height if read else (trace.count(table) if not where else 0)
        nulls = [null_column(names[c], height, types[c]) for c in missing]
        df = df.with_columns(nulls) if read else pl.DataFrame(nulls)
    return df.select(names[c] for c in columns)


def null_column(name: str, n: int, dtype: pl.DataType) -> pl.Series:
    """A column of ``n`` nulls of ``dtype``, made by polars (from a Python list, 20M Nones take 0.4 s and 160 MB)."""
    return pl.repeat(None, n, dtype=dtype, eager=True).alias(name)


def strings(trace: Trace) -> pl.DataFrame:
    return trace.string_frame()


def resolve_names(df: pl.DataFrame, trace: Trace, id_col: str, out: str, categorical: bool = False) -> pl.DataFrame:
    """``df`` with the text of its StringIds id column ``id_col`` as a new last column ``out`` ("" for an id with no
    string, null for a null id).

    Each row's text is gathered from the distinct texts by position: the rows share the texts' bytes, and the
    other columns are not copied (a join would copy every column of millions of rows to add one)."""
    mapping = trace.strings
    ids = df[id_col].unique().drop_nulls()
    texts = pl.Series(out, [mapping.get(int(i), "") for i in ids.to_list()], dtype=pl.Utf8)
    if categorical:
        texts = texts.cast(pl.Categorical)
    at = df[id_col].replace_strict(ids, pl.Series(range(ids.len()), dtype=pl.UInt32), default=None)
    return df.with_columns(texts.gather(at))


# distinct values of a frame's column, remembered per frame object (frames are never changed in place here):
# id(frame) -> (a weak reference to it, column, height, {value: its categorical id, or None})
_DISTINCT: dict[int, tuple[weakref.ref[pl.DataFrame], str, int, dict[object, int | None]]] = {}
_DISTINCT_MAX = 16


def distinct_values(df: pl.DataFrame, column: str) -> dict[object, int | None]:
    """The distinct values of ``df[column]`` (nulls included, in no particular order), each with its categorical
    id when the column is a categorical (the id of a null, and every id of another column, is None): a filter on
    the ids (``rows_of_values``) compares 4-byte integers, not texts. Asked again for the same frame, the answer
    is reused: the API frame has millions of rows but a few dozen names, asked for by every ``calls`` filter."""
    key = id(df)
    hit = _DISTINCT.get(key)
    if hit is not None and hit[0]() is df and hit[1] == column and hit[2] == df.height:
        return hit[3]
    col = df[column]
    values: dict[object, int | None]
    if col.dtype == pl.Categorical:
        ids = col.to_physical()
        first = ids.arg_unique()
        values = dict(zip(col.gather(first).cast(pl.String).to_list(), ids.gather(first).to_list(), strict=True))
    else:
        values = dict.fromkeys(col.unique().to_list())
    if len(_DISTINCT) >= _DISTINCT_MAX:
        _DISTINCT.clear()
    _DISTINCT[key] = (weakref.ref(df), column, df.height, values)
    return values


def rows_of_values(df: pl.DataFrame, column: str, values: list[object]) -> pl.DataFrame:
    """The rows of ``df`` whose ``column`` holds one of ``values`` (some of ``distinct_values(df, column)``): by
    their categorical ids where the column is a categorical (five million calls: 2 ms, not 13)."""
    if not values:
        return df.clear()
    ids = distinct_values(df, column)
    codes = [ids[v] for v in values]
    col = df[column]
    if col.dtype == pl.Categorical and all(c is not None for c in codes):
        return df.filter(col.to_physical().is_in(pl.Series(codes, dtype=col.to_physical().dtype).implode()))
    return df.filter(col.is_in(pl.Series(values, dtype=col.dtype).implode()))


NVTX_RANGE_TYPES = (59, 60, 70, 71)
NVTX_DOMAIN_CREATE = 75


def nvtx_ranges(trace: Trace, flt: EventFilter | None = None, S_all: bool = False) -> pl.DataFrame:
    """NVTX push/pop and start/end ranges with resolved ``text`` and ``domain`` (None for the default domain).

    Columns: start, end, eventType, globalTid, endGlobalTid, domainId, text, domain.
    """
    cols = ["start", "end", "eventType", "globalTid", "endGlobalTid", "textId", "text", "domainId"]
    all_nvtx = load(trace, S.NVTX, cols, None if S_all else flt)
    domains = (
        all_nvtx.filter(pl.col("eventType") == NVTX_DOMAIN_CREATE)
        .select(
            pl.col("domainId"),
            pid_of("globalTid").alias("_pid"),
            pl.col("text").alias("domain"),
        )
        .unique(subset=["domainId", "_pid"], keep="first", maintain_order=True)
    )
    rng = all_nvtx.filter(pl.col("eventType").is_in(NVTX_RANGE_TYPES))
    rng = resolve_names(rng.with_columns(pl.col("textId").fill_null(-1)), trace, "textId", "_registered")
    rng = rng.with_columns(
        pl.coalesce(pl.col("text"), pl.when(pl.col("textId") >= 0).then(pl.col("_registered"))).alias("text"),
        pid_of("globalTid").alias("_pid"),
    )
    rng = rng.join(domains, on=["domainId", "_pid"], how="left", maintain_order="left")
    return rng.select("start", "end", "eventType", "globalTid", "endGlobalTid", "domainId", "text", "domain")


GPU_COLUMNS: dict[str, pl.DataType] = {c: (STR if t is str else I64) for c, t in GPU_FIELDS.items()}
_gpu_value = gpu_value


def gpus(trace: Trace) -> pl.DataFrame:
    """One row per GPU: deviceId, name, chipName, busLocation, smCount, totalMemory (B), memoryBandwidth (B/s),
    clockRate (Hz), l2CacheSize (B), computeMajor, computeMinor. Unknown values are null (see ``gpuinfo``)."""
    data = gpu_rows(trace)
    return pl.DataFrame(data, schema=GPU_COLUMNS, orient="row") if data else pl.DataFrame(schema=GPU_COLUMNS)


# ---------------------------------------------------------------------------------------------------------------
# The frames an analysis needs, loaded once.

# the kernel frame's integer columns held at 4 bytes a row where they fit (ids, the launch grid, the string ids
# until their names are resolved): 20 bytes a kernel less than Int64
KERNEL_NARROW = ("deviceId", "streamId", "correlationId", "pid", "demangledName", "shortName", *S.GRID)
LAUNCH_API_PREFIXES = ("cudaLaunch", "cuLaunch", "cudaGraphLaunch", "cuGraphLaunch")
# the frames of a TraceFrames, and the tables they are read from (their columns are part of the cache key)
FRAME_NAMES = ("kernels", "api", "memcpy", "memset", "graph_launches", "nvtx", "overhead")
FRAME_TABLES = (S.KERNEL, S.RUNTIME, S.MEMCPY, S.MEMSET, S.GRAPH_TRACE, S.NVTX, S.PROFILER_OVERHEAD, S.STRINGS)


def pid_of(column: str) -> pl.Expr:
    """The process id held in a ``globalTid``/``globalPid`` column (bits 24-47), as ``pid``: an Int32, as wide as
    the id is (an Int64 would take twice the memory over millions of calls)."""
    return ((pl.col(column) // (1 << 24)) % (1 << 24)).cast(pl.Int32).alias("pid")


def tid_of(column: str) -> pl.Expr:
    """The thread id held in a ``globalTid`` column (bits 0-23), as ``tid``, an Int32 (see ``pid_of``)."""
    return (pl.col(column) % (1 << 24)).cast(pl.Int32).alias("tid")


def call_column(frame: pl.DataFrame, column: str) -> pl.Expr:
    """``column`` of a call frame as an expression: ``pid`` and ``tid`` from its globalTid when the frame holds no
    such column (``TraceFrames.api`` does not: 8 bytes a call)."""
    if column in ("pid", "tid") and column not in frame.columns and "globalTid" in frame.columns:
        return pid_of("globalTid") if column == "pid" else tid_of("globalTid")
    return pl.col(column)


GPU_OP_KINDS = ("kernel", "memcpy", "memset", "graph")
"""The kinds of ``TraceFrames.gpu_ops``' rows."""


class TraceFrames:
    """Columns of one trace that analyses use, read once (optionally through an EventFilter).

    kernels: start, end, dur, deviceId, streamId, correlationId, pid, name (demangled), short, gridX, gridY, gridZ
             (the ids and the grid Int32, unless a damaged value does not fit 32 bits; no globalPid: 8 bytes a
             kernel; ``tables.PID`` reads the pid)
    api:     start, end, dur, globalTid, correlationId, name (as recorded: cudaLaunchKernel_v7000); the process and
             thread ids are ``pid_of``/``tid_of`` of globalTid (``phases.calls`` gives them as columns on request)
    (the names of kernels and calls are categoricals: 4 bytes a row where a text view takes 16, and casting them
    to text copies every row's bytes; a small table of names is joined onto them with ``ops.keyed_like``)
    memcpy:  start, end, dur, bytes, copyKind, srcKind, dstKind, correlationId, globalPid, deviceId, streamId
    memset:  start, end, dur, bytes, memKind, correlationId, globalPid, deviceId, streamId
    graph_launches (graph-level capture only), nvtx (ranges with text/domain), sync

    Damaged rows (NULL or non-integer times, ``end < start``, names with no string) are left out of every frame;
    ``damaged`` says how many, per table and reason.
    """

    def __init__(self, trace: Trace, flt: EventFilter | None = None) -> None:
        self.trace = trace
        self.flt = flt
        # the whole trace's frames come from the frame cache when it holds them (see cache.py)
        slot = cache.slot(trace, FRAME_TABLES) if flt is None else None
        hit = cache.read(slot, FRAME_NAMES) if slot is not None else None
        if hit is not None:
            frames, damage = hit
            trace.restore_damage(damage)
        else:
            frames = self._read(trace, flt)
            if slot is not None:  # the damage of every table read (also what an earlier read had counted)
                found = tuple(t for t in trace.damaged.tables if t.table in FRAME_TABLES)
                cache.write(slot, frames, found)
        self.kernels = frames["kernels"]
        self.api = frames["api"]
        self.memcpy = frames["memcpy"]
        self.memset = frames["memset"]
        self.graph_launches = frames["graph_launches"]
        self.nvtx = frames["nvtx"]
        self.overhead = frames["overhead"]

    @classmethod
    def _read(cls, trace: Trace, flt: EventFilter | None) -> dict[str, pl.DataFrame]:
        """The frames, read from the trace (named as ``FRAME_NAMES``)."""
        from concurrent.futures import ThreadPoolExecutor

        out: dict[str, pl.DataFrame] = {}
        with ThreadPoolExecutor(2) as pool:  # SQLite reads release the GIL: read the two big tables together
            k_future = pool.submit(cls._kernels, trace, flt)
            a_future = pool.submit(cls._api, trace, flt)
            out["memcpy"] = load(
                trace,
                S.MEMCPY,
                [
                    "start",
                    "end",
                    "bytes",
                    "copyKind",
                    "srcKind",
                    "dstKind",
                    "correlationId",
                    "globalPid",
                    "deviceId",
                    "streamId",
                ],
                flt,
            ).with_columns((pl.col("end") - pl.col("start")).alias("dur"))
            out["memset"] = load(
                trace,
                S.MEMSET,
                ["start", "end", "bytes", "memKind", "correlationId", "globalPid", "deviceId", "streamId"],
                flt,
            ).with_columns((pl.col("end") - pl.col("start")).alias("dur"))
            out["graph_launches"] = load(
                trace, S.GRAPH_TRACE, ["start", "end", "deviceId", "streamId", "correlationId", "globalPid"], flt
            )
            out["nvtx"] = nvtx_ranges(trace, flt)
            o = load(trace, S.PROFILER_OVERHEAD, ["start", "end", "nameId"], flt)
            out["overhead"] = resolve_names(o, trace, "nameId", "name").with_columns(
                (pl.col("end") - pl.col("start")).alias("dur")
            )
            out["kernels"] = k_future.result()
            out["api"] = a_future.result()
        return {name: out[name] for name in FRAME_NAMES}

    @staticmethod
    def _kernels(trace: Trace, flt: EventFilter | None) -> pl.DataFrame:
        k = load(
            trace,
            S.KERNEL,
            [
                "start",
                "end",
                "deviceId",
                "streamId",
                "correlationId",
                PID,
                "demangledName",
                "shortName",
                "gridX",
                "gridY",
                "gridZ",
            ],
            flt,
            narrow=KERNEL_NARROW,
        )
        k = resolve_names(k, trace, "demangledName", "name", categorical=True)
        k = resolve_names(k, trace, "shortName", "short", categorical=True).drop("demangledName", "shortName")
        return k.with_columns((pl.col("end") - pl.col("start")).alias("dur"))

    @staticmethod
    def _api(trace: Trace, flt: EventFilter | None) -> pl.DataFrame:
        # with --cudabacktrace nsys writes a second row for every traced call (event class 67, "CUDA backtrace",
        # the same correlationId and a slightly wider span): the call is counted once, from its runtime/driver row
        where = ""
        if "eventClass" in trace.schema.columns(S.RUNTIME):
            where = f"eventClass IS NULL OR eventClass != {S.CUDA_BACKTRACE_EVENT_CLASS}"
        a = load(trace, S.RUNTIME, ["start", "end", "globalTid", "correlationId", "nameId"], flt, where)
        a = resolve_names(a, trace, "nameId", "name", categorical=True).drop("nameId")
        # no pid and tid columns (8 bytes a call): ``pid_of``/``tid_of`` of globalTid where one is needed
        return a.with_columns((pl.col("end") - pl.col("start")).alias("dur"))

    @property
    def damaged(self) -> DamageSummary:
        """The damaged rows left out of these frames (and of anything else read from the trace), per table and
        reason; empty for a sound export."""
        return self.trace.damaged

    @property
    def gpu_parts(self) -> dict[str, pl.DataFrame]:
        """The operations of ``gpu_ops``, a frame per kind (``GPU_OP_KINDS``: start, end, deviceId, in table order):
        the columns of the frames themselves, not a copy of millions of kernels."""
        cols = ["start", "end", "deviceId"]
        frames = (self.kernels, self.memcpy, self.memset, self.graph_launches)
        return {kind: f.select(cols) for kind, f in zip(GPU_OP_KINDS, frames, strict=True)}

    @property
    def gpu_ops(self) -> pl.DataFrame:
        """Kernels, memcpys, memsets (and graph-level launches) as start, end, deviceId, kind (``GPU_OP_KINDS``, an
        enum: a byte a row where a text would take sixteen), sorted by start."""
        kind = pl.Enum(GPU_OP_KINDS)
        parts = [f.with_columns(pl.lit(k, kind).alias("kind")) for k, f in self.gpu_parts.items()]
        return pl.concat(parts, how="vertical_relaxed").sort("start")
