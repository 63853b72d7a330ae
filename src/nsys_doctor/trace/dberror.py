"""Database errors, from the stdlib ``sqlite3`` driver and from ADBC, turned into one-line ``TraceError``s.

Every query of the trace layer goes through ``db_error`` when it fails, so a lock taken by another process after
the open, a page damaged on disk or a file removed under us reads the same whichever driver met it first.
"""

from __future__ import annotations

import sqlite3

from ..errors import TraceError

TYPE_CHECKING = False
if TYPE_CHECKING:
    import os

_LOCKED = ("database is locked", "database table is locked", "locked", "busy")
_DAMAGED = ("malformed", "not a database", "disk image", "file is not", "corrupt")


def lenient_text(raw: bytes) -> str:
    """A text as UTF-8, a byte that is not UTF-8 replaced (exports made on Windows carry other encodings)."""
    return raw.decode("utf-8", "replace")


def fetch_all(con: sqlite3.Connection, sql: str, params: tuple[object, ...] = ()) -> list[tuple]:
    """The rows of ``sql`` on ``con``, its texts decoded by sqlite3 in C as UTF-8; when one is not UTF-8 the query is
    read again with ``lenient_text``, which the connection keeps from then on."""
    try:
        return con.execute(sql, params).fetchall()
    except sqlite3.OperationalError as exc:
        if not str(exc).startswith("Could not decode to UTF-8"):
            raise
        con.text_factory = lenient_text
        return con.execute(sql, params).fetchall()


def db_error(path: str | os.PathLike[str], exc: BaseException) -> TraceError:
    """The ``TraceError`` for a failed query on the trace at ``path`` (one line: the problem and the fix)."""
    text = " ".join(str(exc).split())
    low = text.lower()
    if any(w in low for w in _LOCKED):
        return TraceError(
            f"{path}: database is locked by another process (a writer holds it)",
            "wait until nsys or the other writer has finished, or copy the file and open the copy",
        )
    if any(w in low for w in _DAMAGED):
        return TraceError(
            f"{path} is damaged or truncated ({text[:200]})",
            "export it again from the .nsys-rep: nsys export --type=sqlite --force-overwrite=true <report>.nsys-rep",
        )
    if "unable to open" in low or "disk i/o" in low:
        return TraceError(
            f"cannot read {path} ({text[:200]})", "check that the file is still there and readable, then retry"
        )
    if "no such table" in low or "no such column" in low:
        return TraceError(
            f"{path} lacks a table or column nsys writes ({text[:200]})",
            "the export is incomplete or was edited; export it again from the .nsys-rep: "
            "nsys export --type=sqlite --force-overwrite=true <report>.nsys-rep",
        )
    return TraceError(f"cannot read {path}: {text[:200]}", "check that it is a complete nsys SQLite export")


def is_lock_or_damage(exc: BaseException) -> bool:
    """True when ``exc`` means the file cannot be read at all now (locked, damaged, gone): no point retrying
    the same query another way."""
    low = str(exc).lower()
    return any(w in low for w in (*_LOCKED, *_DAMAGED, "unable to open", "disk i/o"))
