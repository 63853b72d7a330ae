"""The one place that knows how nsys export schemas differ across versions.

Detection order: ``META_DATA_EXPORT`` (2022.2+), ``EXPORT_META_DATA`` (2021-2022), then table and column probes.
Everything else in the package asks this module (``Schema.has``, ``Schema.has_column``, ``Schema.enum_labels``)
instead of probing SQLite itself.
"""

from __future__ import annotations

import sqlite3
from _thread import RLock

from ..values import Value
from .dberror import db_error, fetch_all

TYPE_CHECKING = False
if TYPE_CHECKING:
    import os

KERNEL = "CUPTI_ACTIVITY_KIND_KERNEL"
RUNTIME = "CUPTI_ACTIVITY_KIND_RUNTIME"
MEMCPY = "CUPTI_ACTIVITY_KIND_MEMCPY"
MEMSET = "CUPTI_ACTIVITY_KIND_MEMSET"
SYNC = "CUPTI_ACTIVITY_KIND_SYNCHRONIZATION"
GRAPH_TRACE = "CUPTI_ACTIVITY_KIND_GRAPH_TRACE"
CUDA_EVENT = "CUPTI_ACTIVITY_KIND_CUDA_EVENT"
NVTX = "NVTX_EVENTS"
OSRT = "OSRT_API"
STRINGS = "StringIds"
PROFILER_OVERHEAD = "PROFILER_OVERHEAD"
DIAGNOSTIC = "DIAGNOSTIC_EVENT"
GPU_MEMORY_USAGE = "CUDA_GPU_MEMORY_USAGE_EVENTS"
GPU_METRICS = "GPU_METRICS"

# The launch geometry of a KERNEL row: grid and block sizes, registers, shared memory.
GRID = ("gridX", "gridY", "gridZ")  # the grid alone: kernels are told apart by name and grid
KERNEL_GEOMETRY = (
    *GRID,
    "blockX",
    "blockY",
    "blockZ",
    "registersPerThread",
    "staticSharedMemory",
    "dynamicSharedMemory",
)

# Tables whose presence marks a file as an nsys export (any one of them, together with StringIds).
NSYS_FILE_TABLES = frozenset({"ProcessStreams", "ANALYSIS_FILE"})
"""Tables of the report file itself, which nsys writes first in an export (``Schema.is_cut_short_export``)."""
NSYS_MARKER_TABLES = frozenset(
    {
        "TARGET_INFO_SESSION_START_TIME",
        "ANALYSIS_DETAILS",
        "META_DATA_EXPORT",
        "EXPORT_META_DATA",
        "TARGET_INFO_GPU",
        "TARGET_INFO_CUDA_GPU",
        KERNEL,
        RUNTIME,
        NVTX,
        "ThreadNames",
    }
)

# ENUM_NSYS_EVENT_CLASS: the CUPTI_ACTIVITY_KIND_RUNTIME row --cudabacktrace adds beside each traced call
CUDA_BACKTRACE_EVENT_CLASS = 67
ACTIVITY_TABLES = (KERNEL, RUNTIME, MEMCPY, MEMSET, SYNC, GRAPH_TRACE, NVTX, OSRT)


class RowKeys(Value):
    """What a row of an activity table needs to be usable: integer ``start`` and ``end`` (``end`` may be NULL
    where ``end_optional``: NVTX marks and unterminated ranges) with ``end >= start``, and StringIds references
    that resolve. ``required`` are the columns without which the table cannot be read at all (other columns
    missing from an export read as NULL)."""

    _fields = ("required", "names", "required_names", "end_optional", "ints")

    def __init__(
        self,
        required: tuple[str, ...],
        names: tuple[str, ...] = (),  # StringIds references: must resolve when set
        required_names: tuple[str, ...] = (),  # of ``names``, those that must be set
        end_optional: bool = False,
        ints: tuple[str, ...] = (),  # other NOT NULL integer columns of nsys's schema (checked when present)
    ) -> None:
        self.required = required
        self.names = names
        self.required_names = required_names
        self.end_optional = end_optional
        self.ints = ints


_TIMES = ("start", "end")
_CALL = (*_TIMES, "nameId")
_PLACE = ("deviceId", "streamId")  # where a GPU operation ran: NOT NULL in every export
ROW_KEYS: dict[str, RowKeys] = {
    KERNEL: RowKeys(
        (*_TIMES, *_PLACE, "demangledName", "shortName"),
        names=("demangledName", "shortName", "mangledName"),
        required_names=("demangledName", "shortName"),
        ints=_PLACE,
    ),
    RUNTIME: RowKeys(_CALL, names=("nameId",), required_names=("nameId",)),
    MEMCPY: RowKeys((*_TIMES, *_PLACE), ints=_PLACE),
    MEMSET: RowKeys((*_TIMES, *_PLACE), ints=_PLACE),
    SYNC: RowKeys((*_TIMES, *_PLACE), ints=_PLACE),
    GRAPH_TRACE: RowKeys((*_TIMES, *_PLACE), ints=_PLACE),
    NVTX: RowKeys(_TIMES, names=("textId",), end_optional=True),
    OSRT: RowKeys(_CALL, names=("nameId",), required_names=("nameId",)),
    PROFILER_OVERHEAD: RowKeys(_CALL, names=("nameId",), required_names=("nameId",)),
}
# A StringIds row is usable when its id is an integer and its value is text.
VALID_STRING_SQL = "typeof(id) = 'integer' AND typeof(value) = 'text'"


def global_pid(global_id: int) -> int:
    """The process id held in a ``globalTid``/``globalPid`` value (bits 24-47): ``tables.pid_of`` for one integer."""
    return (global_id >> 24) & 0xFFFFFF


def pid_sql(column: str) -> str:
    """``global_pid`` of the ``globalTid``/``globalPid`` column ``column`` as an SQL expression."""
    return f"(({column} >> 24) & 16777215)"


def tid_sql(column: str) -> str:
    """``global_tid`` of the ``globalTid`` column ``column`` as an SQL expression."""
    return f"({column} & 16777215)"


def global_tid(global_id: int) -> int:
    """The thread id held in a ``globalTid`` value (bits 0-23): ``tables.tid_of`` for one integer."""
    return global_id & 0xFFFFFF


# Every CUDA API that launches kernels has "Launch" in its name (cudaLaunchKernel*, cuLaunchKernel*, cuLaunchGrid*,
# cudaLaunchCooperativeKernel*, cudaGraphLaunch*, cuGraphLaunch*). Reports that join kernels to their launching call
# read only those rows: a fraction of the API table.
LAUNCH_NAMES_SQL = "nameId IN (SELECT id FROM StringIds WHERE value LIKE '%Launch%')"

# Copy kinds (CUPTI_ACTIVITY_KIND_MEMCPY.copyKind, ENUM_CUDA_MEMCPY_OPER) and memory kinds (srcKind / dstKind,
# ENUM_CUDA_MEM_KIND) the analyses test for, and the copy kinds' labels: defined here only.
COPY_HTOD = 1
COPY_DTOH = 2
COPY_DTOD = 8
COPY_PEER = 10
MEM_PAGEABLE = 0
MEMCPY_KIND_LABELS: dict[int, str] = {
    0: "Unknown",
    COPY_HTOD: "Host-to-Device",
    COPY_DTOH: "Device-to-Host",
    3: "Host-to-Array",
    4: "Array-to-Host",
    5: "Array-to-Array",
    6: "Array-to-Device",
    7: "Device-to-Array",
    COPY_DTOD: "Device-to-Device",
    9: "Host-to-Host",
    COPY_PEER: "Peer-to-Peer",
    11: "Unified Host-to-Device",
    12: "Unified Device-to-Host",
    13: "Unified Device-to-Device",
}

# Labels used when a (pre-2022) export has no ENUM_* tables. Values match ENUM_* of schema 3.20.
FALLBACK_ENUMS: dict[str, dict[int, str]] = {
    "ENUM_CUDA_MEMCPY_OPER": MEMCPY_KIND_LABELS,
    "ENUM_CUDA_MEM_KIND": {
        0: "Pageable",
        1: "Pinned",
        2: "Device",
        3: "Array",
        4: "Managed",
        5: "Device Static",
        6: "Managed Static",
        7: "Unknown",
    },
    "ENUM_CUPTI_SYNC_TYPE": {
        0: "Unknown",
        1: "Event sync",
        2: "Stream wait event",
        3: "Stream sync",
        4: "Context sync",
    },
}


def _version_tuple(text: str | None) -> tuple[int, ...]:
    if not text:
        return ()
    out = []
    for part in text.split("."):
        digits = "".join(ch for ch in part if ch.isdigit())
        if not digits:
            break
        out.append(int(digits))
    return tuple(out)


class Schema:
    """What a given export contains, and how its tables are spelled."""

    def __init__(
        self,
        tables: frozenset[str],
        export_meta: dict[str, str],
        con: sqlite3.Connection | None = None,
        path: str | os.PathLike[str] = "the trace",
    ) -> None:
        self.tables = tables
        self.export_meta = export_meta
        self._columns: dict[str, tuple[str, ...]] = {}
        self._con = con
        self._enums: dict[str, dict[int, str]] = {}
        self._path = path
        # the one lock of the connection: every query on it (these metadata probes and ``Trace.rows``) holds it, as
        # the trace is read on several threads at once (frames, parallel reads, ranks on threads)
        self.lock = RLock()

    def __repr__(self) -> str:
        return f"Schema(tables={self.tables!r}, export_meta={self.export_meta!r})"

    @classmethod
    def detect(cls, con: sqlite3.Connection, path: str | os.PathLike[str] = "the trace") -> Schema:
        """Tables and export metadata of the database behind ``con`` (errors come back as ``TraceError``)."""
        try:
            tables = frozenset(
                str(r[0]) for r in fetch_all(con, "SELECT name FROM sqlite_master WHERE type IN ('table','view')")
            )
            meta: dict[str, str] = {}
            for meta_table in ("META_DATA_EXPORT", "EXPORT_META_DATA"):
                cols = (
                    {r[1] for r in fetch_all(con, f"PRAGMA table_info('{meta_table}')")} if meta_table in tables else ()
                )
                if "name" in cols and "value" in cols:
                    meta = {str(k): str(v) for k, v in fetch_all(con, f"SELECT name, value FROM {meta_table}")}
                    break
        except sqlite3.Error as exc:
            raise db_error(path, exc) from exc
        return cls(tables=tables, export_meta=meta, con=con, path=path)

    def _query(self, sql: str) -> list[tuple]:
        """A metadata query on the open connection; SQLite errors (a lock taken since the open...) become
        ``TraceError``s."""
        assert self._con is not None
        try:
            with self.lock:
                return fetch_all(self._con, sql)
        except sqlite3.Error as exc:
            raise db_error(self._path, exc) from exc

    # ---- versions
    @property
    def product_version(self) -> str | None:
        return self.export_meta.get("EXPORT_PRODUCT_VERSION")

    @property
    def schema_version(self) -> str | None:
        return self.export_meta.get("EXPORT_SCHEMA_VERSION")

    @property
    def schema_tuple(self) -> tuple[int, ...]:
        return _version_tuple(self.schema_version)

    @property
    def era(self) -> str:
        """'current' for 2023+ exports (schema 3.x), 'legacy' for older ones or ones without metadata."""
        v = self.schema_tuple
        return "current" if v and v[0] >= 3 else "legacy"

    # ---- probes
    def has(self, table: str) -> bool:
        return table in self.tables

    def columns(self, table: str) -> tuple[str, ...]:
        if table not in self.tables:
            return ()
        with self.lock:
            if table not in self._columns:
                self._columns[table] = tuple(str(r[1]) for r in self._query(f"PRAGMA table_info('{table}')"))
            return self._columns[table]

    def has_column(self, table: str, column: str) -> bool:
        return column in self.columns(table)

    def is_nsys_export(self) -> bool:
        return STRINGS in self.tables and bool(self.tables & NSYS_MARKER_TABLES)

    def is_cut_short_export(self) -> bool:
        """No nsys export (``is_nsys_export``), but nsys began one: its string table and a table of the report file
        (``NSYS_FILE_TABLES``) or an enum, and no event or target table (an nsys older than the one that recorded
        the report stops there)."""
        return (
            not self.is_nsys_export()
            and STRINGS in self.tables
            and any(t in NSYS_FILE_TABLES or t.startswith("ENUM_") for t in self.tables)
        )

    def enum_labels(self, enum_table: str) -> dict[int, str]:
        """id -> label of an ENUM_* table; built-in labels for exports that predate ENUM tables."""
        if enum_table not in self._enums:
            labels: dict[int, str] = {}
            if self.has_column(enum_table, "id") and self.has_column(enum_table, "label") and self._con is not None:
                rows = self._query(f"SELECT id, label FROM {enum_table} WHERE typeof(id) = 'integer'")
                labels = {int(i): str(lbl) for i, lbl in rows if lbl is not None}
            if not labels:
                labels = dict(FALLBACK_ENUMS.get(enum_table, {}))
            self._enums[enum_table] = labels
        return self._enums[enum_table]

    @property
    def gpu_table(self) -> tuple[str, str] | None:
        """(table, device-id column) of the GPU description table in this export."""
        if self.has_column("TARGET_INFO_GPU", "id") and self.has_column("TARGET_INFO_GPU", "smCount"):
            return ("TARGET_INFO_GPU", "id")
        if self.has("TARGET_INFO_CUDA_GPU"):
            return ("TARGET_INFO_CUDA_GPU", "deviceId")
        if self.has_column("TARGET_INFO_GPU", "deviceId"):
            return ("TARGET_INFO_GPU", "deviceId")
        if self.has_column("TARGET_INFO_GPU", "id"):
            return ("TARGET_INFO_GPU", "id")
        return None

    @property
    def kernel_name_columns(self) -> dict[str, str]:
        """Variant -> column for kernel names: default (demangled), base (short), mangled (when recorded)."""
        cols = {"default": "demangledName", "base": "shortName"}
        if self.has_column(KERNEL, "mangledName"):
            cols["mangled"] = "mangledName"
        return cols


def nsys_api_name(name: str) -> str:
    """An API function's name as nsys shows it: the recorded name less its version suffix, the last 6 characters
    iff they are ``_v`` + 4 characters (``cudaFree_v3020`` -> ``cudaFree``)."""
    return name[:-6] if len(name) >= 6 and name[-6:-4] == "_v" else name
