"""``Trace.open(path)``: a validated, read-only handle on an nsys export.

``.sqlite`` files are opened read-only (``mode=ro``); the input file is never written. ``.nsys-rep`` files are
converted with ``nsys export --type=sqlite`` when nsys is available, reusing an up-to-date ``.sqlite`` beside it.
Big activity tables are read as Arrow columns through ADBC's SQLite driver, in parallel rowid ranges, into polars.
"""

from __future__ import annotations

import errno
import os
import sqlite3
import sys
from _thread import allocate_lock
from collections.abc import Iterable, Mapping
from functools import cached_property
from operator import itemgetter

from ..errors import TraceError
from .damage import (
    REEXPORT_HINT,
    DamageSummary,
    TableDamage,
    announce,
    damaged_mask,
    damaged_sql,
    reasons_sql,
    valid_sql,
)
from .dberror import db_error, fetch_all, is_lock_or_damage
from .schema import ROW_KEYS, STRINGS, VALID_STRING_SQL, Schema

TYPE_CHECKING = False
if TYPE_CHECKING:
    from pathlib import Path
    from typing import TypeAlias

    import polars as pl
    from adbc_driver_manager import AdbcDatabase

    # a column type as the loaders write it: a polars class (pl.Int64) or an instance (pl.List(pl.Int64))
    DType: TypeAlias = pl.DataType | type[pl.DataType]
    # column name -> type: the schema of every frame a loader builds
    ColumnTypes: TypeAlias = Mapping[str, DType]

SQLITE_MAGIC = b"SQLite format 3\x00"
# Rows per parallel chunk when reading a big table; below this a table is read in one query.
PARALLEL_MIN_ROWS = 100_000
# At most this many parallel connections per table. On a 16-core host, `report` of 2M kernels + 5M calls took as
# long with 8 as with 16 (6.9-7.3 s against 6.7-7.4 s) and peaked 65-130 MB lower; 4 were slower (docs/performance.md).
PARALLEL_MAX_PARTS = 8
# A parallel part is read in queries of at most this many rows, each copied into memory of polars' own as soon as it
# arrives: the driver's batches hold all their columns in one allocation, freed only when the last of them is
# dropped, so a table copied into one frame a column at a time would otherwise hold twice its size until the end
# (20M kernels: 3.6 GB for a 1.8 GB frame; docs/performance.md).
PIECE_ROWS = 1 << 20
# At most this many parallel connections of Python's own sqlite3 (``Trace.rows_in_parts``). The SQLite it links
# against may serialize its threads: on a 16-core host (Ubuntu's SQLite 3.45.1) a filtered scan of 5M calls took
# 0.47 s on one connection, 0.35 s on 2, 0.44 s on 4, 1.12 s on 8 and 1.37 s on 16 (ADBC's own SQLite: 0.09 s on 8).
STDLIB_MAX_PARTS = 2


def _parts(lo: int, hi: int, most: int = PARALLEL_MAX_PARTS, least: int | None = None) -> list[tuple[int, int]]:
    """The rowid range lo..hi cut in ranges read on parallel connections (one per ``least`` rows, by default
    PARALLEL_MIN_ROWS; at most one per core and ``most``)."""
    least = PARALLEL_MIN_ROWS if least is None else least
    n_parts = max(1, min(os.cpu_count() or 1, most, (hi - lo + 1) // least))
    step = (hi - lo + 1 + n_parts - 1) // n_parts
    return [(lo + i * step, min(hi, lo + (i + 1) * step - 1)) for i in range(n_parts)]


_URI_SAFE = frozenset(b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_.-~/")


def _uri(path: str | os.PathLike[str]) -> str:
    """The read-only SQLite URI of the file at ``path``: its real path's bytes, percent-encoded where they are not
    unreserved (``urllib.parse.quote``'s rule, on the file system's bytes, so that a name that is not UTF-8
    opens too)."""
    raw = os.fsencode(os.path.realpath(path))
    return "file:" + "".join(chr(b) if b in _URI_SAFE else f"%{b:02X}" for b in raw) + "?mode=ro"


def path_text(path: str | os.PathLike[str]) -> str:
    """``path`` as ``str(pathlib.Path(path))`` writes it (no empty or "." parts, no trailing slash), without
    pathlib: the trace's name in every message."""
    text = os.fspath(path)
    if os.name != "posix":
        from pathlib import Path

        return str(Path(text))
    root = "//" if text.startswith("//") and not text.startswith("///") else "/" if text.startswith("/") else ""
    parts = [part for part in text.split("/") if part and part != "."]
    return root + "/".join(parts) if root or parts else "."


def _check_file(path: str) -> None:
    """Reject what is not a complete SQLite file, with the fix, before SQLite sees it."""
    try:
        os.stat(path)
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            raise TraceError(f"{path} is a symbolic link loop", "point it at the .sqlite exported by nsys") from exc
    except ValueError as exc:  # a NUL byte in the path
        raise TraceError(f"bad trace path {str(path)!r}", "pass the .sqlite file exported by nsys") from exc
    if not os.path.exists(path):
        raise TraceError(f"trace not found: {path}", "check the path (nsys writes <name>.sqlite with --export=sqlite)")
    if os.path.isdir(path):
        raise TraceError(f"{path} is a directory, not a trace", "pass the .sqlite file exported by nsys")
    try:
        size = os.path.getsize(path)
        with open(path, "rb") as fh:
            header = fh.read(100)
    except PermissionError as exc:
        raise TraceError(f"cannot read {path}: permission denied", "fix the file's permissions") from exc
    except OSError as exc:
        raise TraceError(f"cannot read {path}: {exc.strerror or exc}", "check the path and the disk") from exc
    if size == 0:
        raise TraceError(
            f"{path} is empty (0 bytes)",
            "the capture or export did not finish; re-export with: nsys export --type=sqlite <report>.nsys-rep",
        )
    if not header.startswith(SQLITE_MAGIC):
        raise TraceError(
            f"{path} is not a SQLite database",
            "pass the .sqlite export of a trace (nsys export --type=sqlite <report>.nsys-rep)",
        )
    if len(header) == 100:
        page_size = int.from_bytes(header[16:18], "big")
        page_size = 65536 if page_size == 1 else page_size
        page_count = int.from_bytes(header[28:32], "big")
        if page_count and page_size and size < page_count * page_size:
            raise TraceError(
                f"{path} is truncated ({size} of {page_count * page_size} bytes)",
                "copy or export it again; it was cut short while being written or transferred",
            )


def _rep_to_sqlite(rep: Path) -> Path:
    """The .sqlite of a .nsys-rep: the one beside it when it is at least as new as the report, else a fresh
    export by `nsys export` (written under a temporary name, then moved into place). An existing .sqlite is
    replaced only when it is older than the report, and then a note on standard error says so."""
    import subprocess

    from .nsysbin import find_nsys

    out = rep.with_suffix(".sqlite")
    try:
        rep_mtime = rep.stat().st_mtime
        old = out.stat().st_mtime if out.exists() else None
    except OSError as exc:
        raise TraceError(f"cannot read {rep}: {exc.strerror or exc}", "check the path and its permissions") from exc
    if old is not None and old >= rep_mtime:
        return out
    nsys = find_nsys()
    command = f"nsys export --type=sqlite --force-overwrite=true --output={out} {rep}"
    if nsys is None:
        if old is not None:
            raise TraceError(
                f"{out} is older than {rep.name} and nsys is not installed here to export it again",
                f"export it where nsys is: {command}; or pass the .sqlite itself to use it as it is",
            )
        raise TraceError(
            f"{rep} is an nsys report and nsys is not installed here",
            f"convert it where nsys is, then pass the .sqlite: {command}",
        )
    if old is not None:
        sys.stderr.write(f"nsys-doctor: note: {out.name} is older than {rep.name}: exporting it again\n")
        sys.stderr.flush()
    tmp = out.with_name(f".{out.stem}.nsys-doctor-{os.getpid()}.sqlite")
    try:
        proc = subprocess.run(
            [nsys.path, "export", "--type=sqlite", "--force-overwrite=true", f"--output={tmp}", str(rep)],
            capture_output=True,
            text=True,
            timeout=3600,
        )
        if proc.returncode != 0 or not tmp.is_file() or tmp.stat().st_size == 0:
            lines = (proc.stderr or proc.stdout or "").strip().splitlines()
            last = " ".join(lines[-1].split()) if lines else "no output"
            raise TraceError(f"nsys export failed on {rep}: {last[:300]}", f"run it by hand: {command}")
        os.replace(tmp, out)
    except (OSError, subprocess.SubprocessError) as exc:
        raise TraceError(f"nsys export failed on {rep}: {exc}", f"run it by hand: {command}") from exc
    finally:
        if tmp.exists():
            try:  # noqa: SIM105 - contextlib.suppress: importing contextlib costs a quick command about 1 ms
                tmp.unlink()
            except OSError:
                pass
    return out


class Trace:
    """A read-only nsys export. Use ``Trace.open(path)``; close with ``close()`` or a ``with`` block."""

    def __init__(self, path: str | os.PathLike[str], con: sqlite3.Connection, schema: Schema) -> None:
        self.name = path_text(path)  # as ``str(self.path)``
        self._path: Path | None = None
        self.con = con
        self.schema = schema
        self._lock = schema.lock  # the connection's lock, shared with the schema's metadata queries
        self._adbc_db: AdbcDatabase | None = None
        # damaged rows (see damage.py): per table, what was counted; the condition keeping the usable rows
        self._damage_lock = allocate_lock()
        self._damage: dict[str, TableDamage] = {}
        self._valid: dict[str, str] = {}
        self._spans: dict[str, tuple[int, int] | None] = {}  # rowid_range, per table (the file never changes)

    # ---- opening
    @property
    def path(self) -> Path:
        """The trace's file (as given, or the .sqlite exported from the .nsys-rep given)."""
        if self._path is None:
            from pathlib import Path

            self._path = Path(self.name)
        return self._path

    @classmethod
    def open(cls, path: str | os.PathLike[str]) -> Trace:
        p = path_text(path)
        if os.path.splitext(p)[1] in (".nsys-rep", ".qdrep") and os.path.isfile(p):
            from pathlib import Path

            p = str(_rep_to_sqlite(Path(p)))
        _check_file(p)
        try:
            con = sqlite3.connect(_uri(p), uri=True, timeout=0.5, check_same_thread=False)
        except sqlite3.Error as exc:
            raise db_error(p, exc) from exc
        try:  # (texts decoded in C; a query meeting one that is not UTF-8 reads it again: ``dberror.fetch_all``)
            schema = Schema.detect(con, p)
        except TraceError:
            con.close()
            raise
        if not schema.is_nsys_export():
            con.close()
            if schema.is_cut_short_export():
                raise TraceError(
                    f"{p} is an nsys export cut short: only {', '.join(sorted(schema.tables))}, no event or target "
                    "table (the export stopped early, e.g. an nsys older than the one that recorded the report)",
                    "export the .nsys-rep again with the nsys version that recorded it or a newer one "
                    "(nsys export --type=sqlite REPORT.nsys-rep)",
                )
            raise TraceError(
                f"{p} is a SQLite database but not an nsys export (no nsys tables in it)",
                "pass a file written by nsys export --type=sqlite or nsys profile --export=sqlite",
            )
        return cls(p, con, schema)

    def close(self) -> None:
        """Close the connections; under the CLI, queue the damaged-rows warning of this trace (see damage.py). A
        mostly damaged table was an error already, and is not repeated as a warning."""
        found = self.damaged
        announce(DamageSummary(found.path, tuple(t for t in found.tables if not t.mostly_damaged)))
        self.con.close()
        if self._adbc_db is not None:
            try:  # noqa: SIM105 - (not contextlib.suppress: see above)
                self._adbc_db.close()
            except Exception:  # a connection that cannot close cleanly holds nothing of ours
                pass
            self._adbc_db = None

    @property
    def damaged(self) -> DamageSummary:
        """The damaged rows found so far (in the tables read): counted per table and reason, left out of every
        frame this trace returns."""
        with self._damage_lock:
            tables = tuple(d for d in self._damage.values() if d.damaged)
        return DamageSummary(self.name, tables)

    def damage_found(self, table: str) -> bool:
        """Whether damaged rows of ``table`` were found (and are left out of every read of it from then on)."""
        with self._damage_lock:
            found = self._damage.get(table)
        return found is not None and found.damaged > 0

    def __enter__(self) -> Trace:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # ---- reading
    def rows(self, sql: str, params: Iterable[object] = ()) -> list[tuple]:
        """Run a small query with the stdlib driver (metadata, strings, enums)."""
        try:
            with self._lock:
                return fetch_all(self.con, sql, tuple(params))
        except sqlite3.Error as exc:
            raise db_error(self.name, exc) from exc

    def rows_beside(self, aside: str, sql: str) -> tuple[list[tuple], list[tuple]]:
        """The rows of ``aside`` and of ``sql``, run at once: ``aside`` on a connection of its own in a thread of its
        own, ``sql`` on the trace's. A check that scans a table (``small_rows``' search for damaged rows) then costs
        no time beside a read of that table: SQLite runs it without the interpreter's lock, on another core. The
        thread is the interpreter's own primitive (``_thread``: ``threading`` costs more to import than a small
        check takes)."""
        import _thread

        done = _thread.allocate_lock()
        done.acquire()
        got: list[list[tuple] | BaseException] = []

        def run() -> None:
            try:
                got.append(self._rows_aside(aside))
            except BaseException as exc:  # raised in the caller's thread, below
                got.append(exc)
            finally:
                done.release()

        _thread.start_new_thread(run, ())
        try:
            rows = self.rows(sql)
        finally:
            done.acquire()  # the thread has ended its work (and closed its connection)
        result = got[0]
        if isinstance(result, BaseException):
            raise result
        return result, rows

    def _rows_aside(self, sql: str) -> list[tuple]:
        """The rows of ``sql`` on a connection of its own, opened and closed here (for another thread: SQLite runs
        each connection's query without the interpreter's lock), its texts decoded as the trace's own connection
        decodes them; a failure is the trace's one-line error."""
        try:
            con = sqlite3.connect(_uri(self.name), uri=True, timeout=0.5, check_same_thread=False)
        except sqlite3.Error as exc:
            raise db_error(self.name, exc) from exc
        try:
            con.text_factory = self.con.text_factory
            return fetch_all(con, sql)
        except sqlite3.Error as exc:
            raise db_error(self.name, exc) from exc
        finally:
            con.close()

    def rowid_range(self, table: str) -> tuple[int, int] | None:
        """The table's smallest and largest rowid (None when it has no rows): two subqueries, which SQLite answers
        from the b-tree's ends (min() and max() in one query scan the table), once per table: readers that read
        a table a rowid range at a time ask for it at every range."""
        if table not in self._spans:
            lo, hi = self.rows(f"SELECT (SELECT min(rowid) FROM {table}), (SELECT max(rowid) FROM {table})")[0]
            self._spans[table] = None if lo is None else (int(lo), int(hi))
        return self._spans[table]

    def rows_in_parts(self, table: str, sql: str, least: int | None = None) -> list[tuple]:
        """The rows of ``sql`` (which reads ``table`` and holds ``{range}``, a rowid condition) run over rowid ranges
        of the table on parallel connections (at most ``STDLIB_MAX_PARTS``, one per ``least`` rows, as ``_parts``);
        smaller tables are one query. The parts' rows are concatenated in rowid-range order (for queries whose parts
        combine, e.g. DISTINCT)."""
        span = self.rowid_range(table)
        if span is None:
            return self.rows(sql.format(range="1"))
        bounds = _parts(*span, STDLIB_MAX_PARTS, least)
        if len(bounds) == 1:
            return self.rows(sql.format(range="1"))

        def part(b: tuple[int, int]) -> list[tuple]:
            return self._rows_aside(sql.format(range=f"rowid BETWEEN {int(b[0])} AND {int(b[1])}"))

        from concurrent.futures import ThreadPoolExecutor

        with ThreadPoolExecutor(len(bounds)) as pool:
            return [r for rows in pool.map(part, bounds) for r in rows]

    def frame(self, sql: str, schema: ColumnTypes, params: Iterable[object] = ()) -> pl.DataFrame:
        """A small query as a polars frame with the given column types."""
        import polars as pl

        data = self.rows(sql, params)
        return pl.DataFrame(data, schema=schema, orient="row")

    def string_span(self) -> tuple[int, int] | None:
        """``(lo, hi)`` when the usable StringIds ids are exactly ``lo..hi`` (no holes), else None: the damage
        checks then test a reference with a comparison instead of a lookup. Asked of SQLite once per trace."""
        if "_string_span" not in self.__dict__:
            n, lo, hi = self.rows(f"SELECT count(*), min(id), max(id) FROM {STRINGS} WHERE {VALID_STRING_SQL}")[0]
            dense = n and lo is not None and int(hi) - int(lo) + 1 == int(n)
            self.__dict__["_string_span"] = (int(lo), int(hi)) if dense else None
        span: tuple[int, int] | None = self.__dict__["_string_span"]
        return span

    def count(self, table: str) -> int:
        if not self.schema.has(table):
            return 0
        return int(self.rows(f"SELECT count(*) FROM {table}")[0][0])

    def require_columns(self, table: str) -> None:
        """Refuse an activity table that lacks a column every nsys export of it has (it was edited or cut)."""
        keys = ROW_KEYS.get(table)
        if keys is None or not self.schema.has(table):
            return
        present = self.schema.columns(table)
        missing = [c for c in keys.required if c not in present]
        if missing:
            raise TraceError(
                f"{self.name}: table {table} has no {', '.join(missing)} column"
                f"{'s' if len(missing) > 1 else ''}, which every nsys export of it has",
                "the file was edited or cut short; " + REEXPORT_HINT,
            )

    def read_table(
        self,
        table: str,
        columns: ColumnTypes,
        where: str = "",
        rowids: tuple[int, int] | None = None,
        narrow: tuple[str, ...] = (),
    ) -> pl.DataFrame:
        """Columns of an activity table (``name -> dtype``; a name may be ``expr AS alias``), read as Arrow;
        ``rowids``: only the rows of that inclusive rowid range (a part of a table read a block at a time).
        ``narrow``: integer columns made Int32 where every value fits 32 bits (``narrow_ints``), as each piece of
        the table is read: millions of rows are never held at 8 bytes a value for these columns.

        Large tables are split in rowid ranges read on parallel connections; the result keeps table order.
        Damaged rows (see damage.py) are left out, and counted the first time they are met.
        """
        import polars as pl

        exprs = [c if " " in c else f'"{c}"' for c in columns]
        names = [c.split(" AS ")[-1].strip().strip('"') for c in columns]
        dtypes = dict(zip(names, columns.values(), strict=True))
        if not self.schema.has(table):
            return pl.DataFrame(schema=dtypes)
        self.require_columns(table)
        with self._damage_lock:
            valid = self._valid.get(table, "")
        cond = " AND ".join(f"({c})" for c in (where, valid) if c)
        df, coerced = self._read_rows(table, exprs, names, dtypes, cond, rowids, narrow)
        keys = ROW_KEYS.get(table)
        if keys is None or not df.height:
            return df
        ids = self.string_ids if any(c in df.columns for c in keys.names) else None
        mask = damaged_mask(df, keys, ids)
        if not coerced and (mask is None or not df.select(mask.any()).item()):
            return df
        # a value of the wrong type (read as NULL) or a damaged row: count the table's damage in SQL, once
        with self._damage_lock:
            counted = table in self._damage
        if not counted and self.count_damage(table).damaged:
            return self.read_table(table, columns, where, rowids, narrow)
        return df if mask is None else df.filter(~mask)

    def restore_damage(self, damage: Iterable[TableDamage]) -> None:
        """Record damage counted by an earlier read of this same file (the frame cache keeps it): each table's
        damaged rows are reported by ``damaged`` and left out of later reads of the table, as ``count_damage``
        would have found them. A table already counted keeps its count."""
        with self._damage_lock:
            for d in damage:
                if d.table in self._damage:
                    continue
                self._damage[d.table] = d
                keys = ROW_KEYS.get(d.table)
                if keys is not None and d.damaged:
                    self._valid[d.table] = valid_sql(keys, self.schema.columns(d.table))

    def spot_damage(self, table: str) -> None:
        """Test the times of the first and the last row of ``table`` for damage (two lookups by rowid, for a reader
        that reads no rows, such as ``info``); when either is damaged, count the table's damage (``count_damage``:
        a mostly damaged table is a ``TraceError``, other damage is reported when the trace closes)."""
        keys = ROW_KEYS.get(table)
        span = self.rowid_range(table) if keys is not None and self.schema.has(table) else None
        if keys is None or span is None:
            return
        # the times' tests alone: a name's test would first ask for the span of the string ids (a scan of them)
        times = [c for c in self.schema.columns(table) if c in ("start", "end")]
        damaged = damaged_sql(keys, times)
        if not damaged:
            return
        sql = f"SELECT count(*) FROM {table} WHERE rowid IN ({span[0]}, {span[1]}) AND ({damaged})"
        if self.rows(sql)[0][0]:
            self.count_damage(table)

    def count_damage(self, table: str) -> TableDamage:
        """Count the damaged rows of ``table`` per reason (one SQL query; cached). From then on every read of the
        table leaves them out. A table mostly made of damaged rows is a ``TraceError``."""
        with self._damage_lock:
            if table in self._damage:
                return self._damage[table]
        keys = ROW_KEYS[table]
        present = self.schema.columns(table)
        span = self.string_span() if keys.names else None
        sql = reasons_sql(table, keys, present, span)
        reasons = tuple((str(why), int(n)) for why, n in self.rows(sql)) if sql else ()
        damage = TableDamage(table, self.count(table), reasons)
        with self._damage_lock:
            self._damage[table] = damage
            if damage.damaged:
                self._valid[table] = valid_sql(keys, present, span)
        if damage.mostly_damaged:
            raise TraceError(
                f"{self.name}: table {table} is mostly damaged ({damage.damaged} of {damage.rows} rows unusable: "
                f"{damage.describe().split(': ', 1)[1]})",
                REEXPORT_HINT,
            )
        return damage

    def _read_rows(
        self,
        table: str,
        exprs: list[str],
        names: list[str],
        dtypes: dict[str, DType],
        where: str,
        rowids: tuple[int, int] | None = None,
        narrow: tuple[str, ...] = (),
    ) -> tuple[pl.DataFrame, bool]:
        """The rows, and whether some values had to be coerced to their column's type (see ``_read_part``); the
        ``narrow`` columns Int32 where they fit (each piece as it is read; see ``read_table``)."""
        import polars as pl

        span = self.rowid_range(table)
        if span is not None and rowids is not None:
            span = (max(span[0], rowids[0]), min(span[1], rowids[1]))
        if span is None or span[1] < span[0]:
            return pl.DataFrame(schema=dtypes), False
        lo, hi = span
        cond = f" AND ({where})" if where else ""
        # text columns are read as bytes and decoded here: Arrow would take invalid UTF-8 as it is
        sources = [e.rsplit(" AS ", 1)[0] if " AS " in e else e for e in exprs]  # without their alias
        plain = [
            _typed_expr(src, n, pl.Utf8) if dtypes[n] == pl.Utf8 else e
            for e, src, n in zip(exprs, sources, names, strict=True)
        ]
        keys = ROW_KEYS.get(table)
        strict = {"start", "end", *keys.names, *keys.ints} if keys is not None else set()
        typed = [_typed_expr(src, n, dtypes[n], n in strict) for src, n in zip(sources, names, strict=True)]
        tail = f" FROM {table} WHERE rowid BETWEEN {{lo}} AND {{hi}}{cond}"
        base = (f"SELECT {', '.join(plain)}{tail}", f"SELECT {', '.join(typed)}{tail}")
        bounds = _parts(lo, hi)
        n_parts = len(bounds)

        def read(b: tuple[int, int]) -> list[tuple[pl.DataFrame, bool]]:
            if b[1] - b[0] < PIECE_ROWS:
                df, coerced = self._read_part(base, b, names, dtypes, strict)
                return [(narrow_ints(df, narrow), coerced)]
            pieces = []
            for p_lo in range(b[0], b[1] + 1, PIECE_ROWS):
                df, coerced = self._read_part(base, (p_lo, min(b[1], p_lo + PIECE_ROWS - 1)), names, dtypes, strict)
                # polars' own memory, narrowed: the driver's batches are freed here
                pieces.append((narrow_ints(df.rechunk(), narrow), coerced))
                del df
            return pieces

        if n_parts == 1:
            parts = read(bounds[0])
        else:
            from concurrent.futures import ThreadPoolExecutor

            with ThreadPoolExecutor(n_parts) as pool:
                parts = [piece for pieces in pool.map(read, bounds) for piece in pieces]
        coerced = any(c for _, c in parts)
        frames = [df for df, _ in parts]
        del parts
        out = _contiguous(frames, names)
        if len(frames) > 1:
            del frames
            release_native_heap()
        return out, coerced

    def _read_part(
        self,
        sql: tuple[str, str],
        bounds: tuple[int, int],
        names: list[str],
        dtypes: dict[str, DType],
        strict: set[str],
    ) -> tuple[pl.DataFrame, bool]:
        """One rowid range: the plain query through ADBC; where SQLite's dynamic typing defeats Arrow's type
        inference (a text or blob in an integer column), the same query with every value coerced to its column's
        type (non-integers become NULL), through ADBC again, then through the stdlib driver. Also says whether
        the plain query was not enough."""
        import polars as pl

        plain, typed = (q.format(lo=int(bounds[0]), hi=int(bounds[1])) for q in sql)
        df: pl.DataFrame | None = None
        coerced = False
        for query in (plain, typed):
            coerced = query is typed
            try:
                df = self._read_adbc(query)
            except TraceError:
                raise
            except Exception as exc:  # the driver's type inference failed: retried below
                if is_lock_or_damage(exc):
                    raise db_error(self.name, exc) from exc
                continue
            if df.width == len(names) and _castable(df, names, dtypes, strict):
                break
            df = None
        if df is None:
            raw = {n: (pl.Binary if t == pl.Utf8 else t) for n, t in dtypes.items()}
            df = pl.DataFrame(self.rows(typed), schema=raw, orient="row")
            coerced = True
        df.columns = names
        df = _decode_text(df, dtypes)
        return df.with_columns(pl.col(n).cast(t, strict=False) for n, t in dtypes.items()), coerced

    def _read_adbc(self, sql: str) -> pl.DataFrame:
        """One query through ADBC's SQLite driver, as Arrow batches straight into polars (no pyarrow needed)."""
        import adbc_driver_manager as adbc
        import polars as pl

        db = self._adbc_database()
        con = adbc.AdbcConnection(db)
        try:
            stmt = adbc.AdbcStatement(con)
            try:
                stmt.set_options(**{"adbc.sqlite.query.batch_rows": "65536"})
                stmt.set_sql_query(sql)
                stream, _ = stmt.execute_query()
                return pl.DataFrame(stream)
            finally:
                stmt.close()
        finally:
            con.close()

    def _adbc_database(self) -> AdbcDatabase:
        with self._lock:
            if self._adbc_db is None:
                import adbc_driver_sqlite

                try:
                    self._adbc_db = adbc_driver_sqlite.connect(_uri(self.name))
                except Exception as exc:
                    raise db_error(self.name, exc) from exc
            return self._adbc_db

    @cached_property
    def strings(self) -> dict[int, str]:
        """StringIds as a dict (id -> text); rows with a non-integer id or a value that is not text (NULL, BLOB)
        are counted as damaged and left out (the rows naming them are then damaged too)."""
        if not (self.schema.has_column(STRINGS, "id") and self.schema.has_column(STRINGS, "value")):
            raise TraceError(
                f"{self.name}: table {STRINGS} has no id or value column, so no name can be read",
                "the file was edited or cut short; " + REEXPORT_HINT,
            )
        # one read of every row: where every id is an integer and every value a text (a sound export), that is the
        # table, its damage (none) and its span of ids; else the damage is counted in SQL and the usable rows read
        every = self.rows(f"SELECT id, value FROM {STRINGS}")
        ids = set(map(type, map(itemgetter(0), every)))
        if ids <= {int} and set(map(type, map(itemgetter(1), every))) <= {str}:
            with self._damage_lock:
                self._damage[STRINGS] = TableDamage(STRINGS, len(every), ())
            if every and "_string_span" not in self.__dict__:
                lo, hi = min(map(itemgetter(0), every)), max(map(itemgetter(0), every))
                self.__dict__["_string_span"] = (lo, hi) if hi - lo + 1 == len(every) else None
            return dict(every)
        del every
        why = (
            "CASE WHEN typeof(id) != 'integer' THEN (CASE WHEN id IS NULL THEN 'NULL' ELSE typeof(id) END) || ' id' "
            "WHEN typeof(value) != 'text' THEN (CASE WHEN value IS NULL THEN 'NULL' ELSE typeof(value) END) "
            "|| ' value' END"
        )
        counts = self.rows(f"SELECT {why} AS why, count(*) FROM {STRINGS} GROUP BY why ORDER BY count(*) DESC, why")
        reasons = tuple((str(w), int(n)) for w, n in counts if w is not None)
        damage = TableDamage(STRINGS, sum(int(n) for _, n in counts), reasons)
        with self._damage_lock:
            self._damage[STRINGS] = damage
        if damage.mostly_damaged:
            raise TraceError(
                f"{self.name}: table {STRINGS} is mostly damaged ({damage.damaged} of {damage.rows} strings "
                f"unusable: {damage.describe().split(': ', 1)[1]})",
                REEXPORT_HINT,
            )
        return dict(self.rows(f"SELECT id, value FROM {STRINGS} WHERE {VALID_STRING_SQL}"))  # ids: integers

    @cached_property
    def string_ids(self) -> pl.Series:
        """The ids of usable StringIds rows."""
        import polars as pl

        return pl.Series("id", list(self.strings), dtype=pl.Int64)

    def string_frame(self) -> pl.DataFrame:
        import polars as pl

        s = self.strings
        return pl.DataFrame(
            {"id": list(s.keys()), "value": list(s.values())}, schema={"id": pl.Int64, "value": pl.Utf8}
        )


def release_native_heap() -> None:
    """Give the C allocator's free memory back to the system (glibc's ``malloc_trim``; nothing where there is no
    such function). The driver builds its batches with the C allocator, in one glibc arena per reading thread, and
    the arenas keep them once freed: after a parallel read of 5M calls on 16 threads, 90 MB more for the rest of
    the command than on 2 (docs/performance.md)."""
    from ..native import libc_function

    trim = libc_function("malloc_trim")
    if trim is not None:
        trim(0)


def _contiguous(frames: list[pl.DataFrame], names: list[str]) -> pl.DataFrame:
    """The parts' rows as one frame of one chunk per column, built a column at a time (each part's columns are
    dropped as they are copied). The driver's batches arrive as many chunks; left so, the first column added
    from one array (a name gathered from the distinct texts, a duration) would make polars copy every column of
    the frame at once, twice the table's memory for a moment."""
    import polars as pl

    if len(frames) == 1 and frames[0].n_chunks() == 1:
        return frames[0]
    columns = []
    for name in names:
        parts = [f.drop_in_place(name) for f in frames]
        if len({p.dtype for p in parts}) > 1:  # a narrowed column that did not fit 32 bits in some piece
            parts = [p.cast(pl.Int64) for p in parts]
        columns.append(pl.concat(parts, rechunk=True) if len(parts) > 1 else parts[0].rechunk())
        del parts
    return pl.DataFrame(columns)


def narrow_ints(df: pl.DataFrame, columns: tuple[str, ...]) -> pl.DataFrame:
    """``df`` with those of ``columns`` whose every value fits 32 bits as Int32 (4 bytes a row, not 8: a launch
    grid's dimensions, 12 bytes a kernel); a column holding a value that does not fit (a damaged export) stays
    Int64, its values unchanged."""
    import polars as pl

    at = [c for c in columns if c in df.columns and df.schema[c] == pl.Int64]
    if not at or df.is_empty():
        return df.with_columns(pl.col(c).cast(pl.Int32) for c in at)
    bounds = df.select(*(pl.col(c).min().alias(f"{c}<") for c in at), *(pl.col(c).max().alias(f"{c}>") for c in at))
    low, high = -(1 << 31), (1 << 31) - 1
    row = bounds.row(0, named=True)
    fit = [
        c
        for c in at
        if (row[f"{c}<"] is None or row[f"{c}<"] >= low) and (row[f"{c}>"] is None or row[f"{c}>"] <= high)
    ]
    return df.with_columns(pl.col(c).cast(pl.Int32) for c in fit)


def _typed_expr(expr: str, name: str, dtype: DType, strict: bool = False) -> str:
    """``expr`` coerced in SQL to the storage class its column type needs: anything else becomes NULL, except a
    REAL in an integer column, which is truncated unless ``strict`` (times and string ids must be integers)."""
    import polars as pl

    if dtype == pl.Utf8:
        return f'CAST({expr} AS BLOB) AS "{name}"'
    if dtype.is_integer():
        real = "" if strict else f" WHEN 'real' THEN CAST({expr} AS INTEGER)"
        return f"CASE typeof({expr}) WHEN 'integer' THEN {expr}{real} END AS \"{name}\""
    if dtype.is_float():
        return f"CASE WHEN typeof({expr}) IN ('integer', 'real') THEN {expr} END AS \"{name}\""
    return f'{expr} AS "{name}"'


def _castable(df: pl.DataFrame, names: list[str], dtypes: dict[str, DType], strict: set[str]) -> bool:
    """Whether the frame the driver returned converts to ``dtypes`` (a numeric column inferred as bytes does
    not; nor does a ``strict`` integer column inferred as anything but integers, whose values are then decided in
    SQL by ``_typed_expr``). A column of NULLs only converts to anything."""
    import polars as pl

    for got, name in zip(df.dtypes, names, strict=True):
        want = dtypes[name]
        if got == pl.Null or df[name].null_count() == df.height:
            continue
        if want == pl.Utf8:
            ok = got == pl.Binary
        elif want.is_integer() and name in strict:
            ok = got.is_integer()
        elif want.is_numeric():
            ok = got.is_numeric() or got in (pl.Utf8, pl.Boolean)
        else:
            ok = True
        if not ok:
            return False
    return True


def _decode_text(df: pl.DataFrame, dtypes: dict[str, DType]) -> pl.DataFrame:
    """Text columns read as bytes, decoded as UTF-8 with invalid bytes replaced (once per distinct value)."""
    import polars as pl

    for name, want in dtypes.items():
        if want != pl.Utf8 or df.schema[name] != pl.Binary:
            if want == pl.Utf8 and df.schema[name] not in (pl.Utf8, pl.Null):  # NULLs only, typed as something else
                df = df.with_columns(pl.lit(None, dtype=pl.Utf8).alias(name))
            continue
        distinct = df[name].drop_nulls().unique()
        text = pl.Series("_text", [b.decode("utf-8", "replace") for b in distinct.to_list()], dtype=pl.Utf8)
        lookup = pl.DataFrame({name: distinct, "_text": text})
        order = df.columns
        df = df.join(lookup, on=name, how="left", maintain_order="left").drop(name).rename({"_text": name})
        df = df.select(order)
    return df
