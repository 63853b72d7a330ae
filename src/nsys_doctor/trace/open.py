"""``Trace.open(path)``: a validated, read-only handle on an nsys export.

``.sqlite`` files are opened read-only (``mode=ro``); the input file is never written. ``.nsys-rep`` files are
converted with ``nsys export --type=sqlite`` when nsys is available, reusing an up-to-date ``.sqlite`` beside it.
Big activity tables are read as Arrow columns through ADBC's SQLite driver, in parallel rowid ranges, into polars.
"""

from __future__ import annotations

import os
import sqlite3
import subprocess
import threading
import urllib.parse
from collections.abc import Iterable
from concurrent.futures import ThreadPoolExecutor
from functools import cached_property
from pathlib import Path

import polars as pl

from ..errors import TraceError
from .nsysbin import find_nsys
from .schema import Schema

SQLITE_MAGIC = b"SQLite format 3\x00"
# Rows per parallel chunk when reading a big table; below this a table is read in one query.
PARALLEL_MIN_ROWS = 100_000


def _uri(path: Path) -> str:
    return "file:" + urllib.parse.quote(str(path.resolve())) + "?mode=ro"


def _check_file(path: Path) -> None:
    """Reject what is not a complete SQLite file, with the fix, before SQLite sees it."""
    if not path.exists():
        raise TraceError(f"trace not found: {path}", "check the path (nsys writes <name>.sqlite with --export=sqlite)")
    if path.is_dir():
        raise TraceError(f"{path} is a directory, not a trace", "pass the .sqlite file exported by nsys")
    try:
        size = path.stat().st_size
        with path.open("rb") as fh:
            header = fh.read(100)
    except PermissionError as exc:
        raise TraceError(f"cannot read {path}: permission denied", "fix the file's permissions") from exc
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
    """The .sqlite of a .nsys-rep: an up-to-date one beside it, or one made with `nsys export`."""
    out = rep.with_suffix(".sqlite")
    if out.exists() and out.stat().st_mtime >= rep.stat().st_mtime and out.stat().st_size > 0:
        return out
    nsys = find_nsys()
    command = f"nsys export --type=sqlite --output={out} {rep}"
    if nsys is None:
        raise TraceError(
            f"{rep} is an nsys report and nsys is not installed here",
            f"convert it where nsys is, then pass the .sqlite: {command}",
        )
    try:
        proc = subprocess.run(
            [nsys.path, "export", "--type=sqlite", "--force-overwrite=true", f"--output={out}", str(rep)],
            capture_output=True,
            text=True,
            timeout=3600,
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise TraceError(f"nsys export failed on {rep}: {exc}", f"run it by hand: {command}") from exc
    if proc.returncode != 0 or not out.exists():
        last = (proc.stderr or proc.stdout or "").strip().splitlines()[-1:] or ["no output"]
        raise TraceError(f"nsys export failed on {rep}: {last[0]}", f"run it by hand: {command}")
    return out


class Trace:
    """A read-only nsys export. Use ``Trace.open(path)``; close with ``close()`` or a ``with`` block."""

    def __init__(self, path: Path, con: sqlite3.Connection, schema: Schema) -> None:
        self.path = path
        self.con = con
        self.schema = schema
        self._lock = threading.Lock()
        self._adbc_db: object | None = None

    # ---- opening
    @classmethod
    def open(cls, path: str | os.PathLike[str]) -> Trace:
        p = Path(path)
        if p.suffix in (".nsys-rep", ".qdrep") and p.is_file():
            p = _rep_to_sqlite(p)
        _check_file(p)
        try:
            con = sqlite3.connect(_uri(p), uri=True, timeout=0.5, check_same_thread=False)
            con.text_factory = lambda b: b.decode("utf-8", "replace")  # Windows exports carry other encodings
            schema = Schema.detect(con)
        except sqlite3.OperationalError as exc:
            raise _sqlite_error(p, exc) from exc
        except sqlite3.DatabaseError as exc:
            raise _sqlite_error(p, exc) from exc
        if not schema.is_nsys_export():
            con.close()
            raise TraceError(
                f"{p} is a SQLite database but not an nsys export (no nsys tables in it)",
                "pass a file written by nsys export --type=sqlite or nsys profile --export=sqlite",
            )
        return cls(p, con, schema)

    def close(self) -> None:
        self.con.close()
        if self._adbc_db is not None:
            self._adbc_db.close()  # type: ignore[attr-defined]
            self._adbc_db = None

    def __enter__(self) -> Trace:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # ---- reading
    def rows(self, sql: str, params: Iterable[object] = ()) -> list[tuple]:
        """Run a small query with the stdlib driver (metadata, strings, enums)."""
        try:
            with self._lock:
                return self.con.execute(sql, tuple(params)).fetchall()
        except sqlite3.DatabaseError as exc:
            raise _sqlite_error(self.path, exc) from exc

    def frame(self, sql: str, schema: dict[str, pl.DataType], params: Iterable[object] = ()) -> pl.DataFrame:
        """A small query as a polars frame with the given column types."""
        data = self.rows(sql, params)
        return pl.DataFrame(data, schema=schema, orient="row")

    def count(self, table: str) -> int:
        if not self.schema.has(table):
            return 0
        return int(self.rows(f"SELECT count(*) FROM {table}")[0][0])

    def read_table(self, table: str, columns: dict[str, pl.DataType], where: str = "") -> pl.DataFrame:
        """Columns of an activity table (``name -> dtype``; a name may be ``expr AS alias``), read as Arrow.

        Large tables are split in rowid ranges read on parallel connections; the result keeps table order.
        """
        exprs = [c if " " in c else f'"{c}"' for c in columns]
        names = [c.split(" AS ")[-1].strip().strip('"') for c in columns]
        dtypes = dict(zip(names, columns.values(), strict=True))
        if not self.schema.has(table):
            return pl.DataFrame(schema=dtypes)
        # two subqueries: SQLite answers each from the b-tree ends; min() and max() in one query scan the table
        lo, hi = self.rows(f"SELECT (SELECT min(rowid) FROM {table}), (SELECT max(rowid) FROM {table})")[0]
        if lo is None:
            return pl.DataFrame(schema=dtypes)
        cond = f" AND ({where})" if where else ""
        base = f"SELECT {', '.join(exprs)} FROM {table} WHERE rowid BETWEEN {{lo}} AND {{hi}}{cond}"
        n_parts = max(1, min(os.cpu_count() or 1, 16, (hi - lo + 1) // PARALLEL_MIN_ROWS))
        step = (hi - lo + 1 + n_parts - 1) // n_parts
        bounds = [(lo + i * step, min(hi, lo + (i + 1) * step - 1)) for i in range(n_parts)]
        if n_parts == 1:
            parts = [self._read_part(base, bounds[0], names, dtypes)]
        else:
            with ThreadPoolExecutor(n_parts) as pool:
                parts = list(pool.map(lambda b: self._read_part(base, b, names, dtypes), bounds))
        return pl.concat(parts, how="vertical") if len(parts) > 1 else parts[0]

    def _read_part(
        self, sql: str, bounds: tuple[int, int], names: list[str], dtypes: dict[str, pl.DataType]
    ) -> pl.DataFrame:
        query = sql.format(lo=int(bounds[0]), hi=int(bounds[1]))
        try:
            df = self._read_adbc(query)
        except TraceError:
            raise
        except Exception:  # mixed SQLite storage classes confuse Arrow typing: read those rows the slow way
            df = pl.DataFrame(self.rows(query), schema=names, orient="row", infer_schema_length=None)
        if df.width != len(names):
            df = pl.DataFrame(schema=dtypes)
        df.columns = names
        return df.cast(dtypes, strict=False)  # type: ignore[arg-type]

    def _read_adbc(self, sql: str) -> pl.DataFrame:
        """One query through ADBC's SQLite driver, as Arrow batches straight into polars (no pyarrow needed)."""
        import adbc_driver_manager as adbc

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

    def _adbc_database(self) -> object:
        with self._lock:
            if self._adbc_db is None:
                import adbc_driver_sqlite

                try:
                    self._adbc_db = adbc_driver_sqlite.connect(_uri(self.path))
                except Exception as exc:
                    raise _sqlite_error(self.path, exc) from exc
            return self._adbc_db

    @cached_property
    def strings(self) -> dict[int, str]:
        """StringIds as a dict (id -> text)."""
        return {int(i): v for i, v in self.rows("SELECT id, value FROM StringIds")}

    def string_frame(self) -> pl.DataFrame:
        s = self.strings
        return pl.DataFrame(
            {"id": list(s.keys()), "value": list(s.values())}, schema={"id": pl.Int64, "value": pl.Utf8}
        )


def _sqlite_error(path: Path, exc: Exception) -> TraceError:
    text = str(exc)
    low = text.lower()
    if "locked" in low or "busy" in low:
        return TraceError(
            f"{path} is locked by another process (a writer holds it)",
            "wait until nsys or the other writer has finished, or copy the file and open the copy",
        )
    if "malformed" in low or "not a database" in low or "disk image" in low or "file is not" in low:
        return TraceError(
            f"{path} is damaged or truncated ({text})",
            "export it again from the .nsys-rep: nsys export --type=sqlite --force-overwrite=true <report>.nsys-rep",
        )
    if "unable to open" in low:
        return TraceError(f"cannot open {path} read-only ({text})", "check the file's permissions and path")
    return TraceError(f"cannot read {path}: {text}", "check that it is a complete nsys SQLite export")
