"""Damaged rows: activity rows whose times or names cannot be used, found, counted and left out.

A row is damaged when its ``start`` is not an integer, its ``end`` is not an integer (NULL is allowed where
``RowKeys.end_optional``: NVTX marks), ``end < start``, the device or stream of a GPU operation is not an
integer, or one of its StringIds references is missing, not an integer, or points at no usable string (a NULL
or BLOB ``StringIds.value``). Real exports have none, so the
check costs nothing on them beyond a null test on columns already read: ``Trace.read_table`` tests the frames
it reads (``damaged_mask``), and only when that finds something does it count the whole table in SQL
(``reasons_sql``) and read again without those rows (``valid_sql``).

What was left out is kept on the ``Trace`` (``Trace.damaged``) and, under the CLI, printed once per command as
one warning line (``announce``) when the trace is closed.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Iterable

from ..values import Value
from .schema import VALID_STRING_SQL, RowKeys

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

    import polars as pl

# A table with more damaged rows than this share is refused rather than analysed.
MOSTLY_DAMAGED = 0.5
REEXPORT_HINT = "export it again from the .nsys-rep: nsys export --type=sqlite --force-overwrite=true <report>.nsys-rep"


class TableDamage(Value):
    """The damaged rows of one table: how many rows it has, and how many were left out for each reason."""

    _fields = ("table", "rows", "reasons")

    def __init__(self, table: str, rows: int, reasons: tuple[tuple[str, int], ...]) -> None:
        self.table = table
        self.rows = rows
        self.reasons = reasons  # (reason, rows), most frequent first

    @property
    def damaged(self) -> int:
        return sum(n for _, n in self.reasons)

    @property
    def mostly_damaged(self) -> bool:
        return self.rows > 0 and self.damaged > MOSTLY_DAMAGED * self.rows

    def describe(self) -> str:
        """``CUPTI_ACTIVITY_KIND_KERNEL: 10 with end < start, 2 NULL start``."""
        return f"{self.table}: " + ", ".join(f"{n} {why}" for why, n in self.reasons)

    def to_dict(self) -> dict[str, object]:
        return {"table": self.table, "rows": self.rows, "damaged": self.damaged, "reasons": dict(self.reasons)}


class DamageSummary(Value):
    """Every table of one trace where damaged rows were found (and left out)."""

    _fields = ("path", "tables")

    def __init__(self, path: str, tables: tuple[TableDamage, ...] = ()) -> None:
        self.path = path
        self.tables = tables

    @property
    def damaged(self) -> int:
        return sum(t.damaged for t in self.tables)

    def __bool__(self) -> bool:
        return self.damaged > 0

    def to_dict(self) -> dict[str, object]:
        return {"path": self.path, "damaged": self.damaged, "tables": [t.to_dict() for t in self.tables]}


def _q(col: str) -> str:
    return '"' + col.replace('"', '""') + '"'


def _string_ids_sql() -> str:
    return f"(SELECT id FROM StringIds WHERE {VALID_STRING_SQL})"


def _checks(keys: RowKeys, present: Iterable[str], span: tuple[int, int] | None = None) -> list[tuple[str, str]]:
    """(SQL condition that makes a row damaged, SQL expression naming why), in the order the reasons are
    tested; only columns the table has. ``span``: the usable StringIds ids are exactly ``lo..hi`` (nsys numbers
    its strings from 0 without holes), so a reference resolves when it lies in that range: a comparison per row
    instead of a lookup (a reference's type is tested before)."""
    cols = set(present)
    out: list[tuple[str, str]] = []

    def kind(c: str) -> str:
        return f"(CASE WHEN {_q(c)} IS NULL THEN 'NULL' ELSE typeof({_q(c)}) END) || ' {c}'"

    for c, nullable in (("start", False), ("end", keys.end_optional)):
        if c in cols:
            bad = f"typeof({_q(c)}) != 'integer'" + (f" AND {_q(c)} IS NOT NULL" if nullable else "")
            out.append((bad, kind(c)))
    if "start" in cols and "end" in cols:
        out.append(('"end" < "start"', "'with end < start'"))
    for c in keys.ints:
        if c in cols:
            out.append((f"typeof({_q(c)}) != 'integer'", kind(c)))
    for c in keys.names:
        if c not in cols:
            continue
        if c in keys.required_names:
            out.append((f"{_q(c)} IS NULL", f"'NULL {c}'"))
        out.append((f"{_q(c)} IS NOT NULL AND typeof({_q(c)}) != 'integer'", kind(c)))
        resolves = f"BETWEEN {int(span[0])} AND {int(span[1])}" if span is not None else f"IN {_string_ids_sql()}"
        out.append((f"{_q(c)} NOT {resolves}", f"'{c} with no string'"))
    return out


def reasons_sql(table: str, keys: RowKeys, present: Iterable[str], span: tuple[int, int] | None = None) -> str:
    """One query counting the damaged rows of ``table`` per reason (each row counted once, first reason wins);
    ``span`` as ``_checks``'."""
    checks = _checks(keys, present, span)
    if not checks:
        return ""
    case = " ".join(f"WHEN {cond} THEN {why}" for cond, why in checks)
    return (
        f"SELECT why, count(*) FROM (SELECT CASE {case} END AS why FROM {_q(table)}) "
        "WHERE why IS NOT NULL GROUP BY why ORDER BY count(*) DESC, why"
    )


def damaged_sql(keys: RowKeys, present: Iterable[str], span: tuple[int, int] | None = None) -> str:
    """A WHERE condition true on the damaged rows, by the tests of the columns in ``present`` alone (empty when
    none applies); ``span`` as ``_checks``'. A test that is NULL (a comparison with a NULL that another test
    allows) does not make a row damaged, as in ``valid_sql``."""
    return " OR ".join(f"({cond})" for cond, _ in _checks(keys, present, span))


def valid_sql(keys: RowKeys, present: Iterable[str], span: tuple[int, int] | None = None) -> str:
    """A WHERE condition keeping only the usable rows (empty when the table has none of the key columns); ``span``
    as ``_checks``'."""
    checks = _checks(keys, present, span)
    return " AND ".join(f"NOT coalesce({cond}, 0)" for cond, _ in checks)


def damaged_mask(df: pl.DataFrame, keys: RowKeys, string_ids: pl.Series | None) -> pl.Expr | None:
    """A polars condition true on the damaged rows of a frame read from the table (on the columns it has; a
    value that was not an integer reads as null). None when the frame has none of the key columns."""
    import polars as pl

    cols = set(df.columns)
    conds: list[pl.Expr] = []
    if "start" in cols:
        conds.append(pl.col("start").is_null())
    if "end" in cols and not keys.end_optional:
        conds.append(pl.col("end").is_null())
    if "start" in cols and "end" in cols:
        conds.append((pl.col("end") < pl.col("start")).fill_null(False))
    conds += [pl.col(c).is_null() for c in keys.ints if c in cols]
    for c in keys.names:
        if c not in cols:
            continue
        if c in keys.required_names:
            conds.append(pl.col(c).is_null())
        if string_ids is not None:
            conds.append((pl.col(c).is_not_null() & ~pl.col(c).is_in(string_ids.implode())).fill_null(False))
    return pl.any_horizontal(conds) if conds else None


def warning_line(summaries: Iterable[DamageSummary]) -> str:
    """``nsys-doctor: warning: left out 12 damaged rows (CUPTI_ACTIVITY_KIND_KERNEL: 10 with end < start, ...)``;
    '' when nothing was left out. Several traces are told apart by file name."""
    found = [s for s in summaries if s]
    if not found:
        return ""
    total = sum(s.damaged for s in found)
    several = len(found) > 1
    parts = [
        (f"{os.path.basename(s.path)} " if several else "") + t.describe() for s in found for t in s.tables if t.damaged
    ]
    line = f"nsys-doctor: warning: left out {total} damaged row{'s' if total != 1 else ''} ({'; '.join(parts)})"
    return " ".join(line.split())


_META_KEY = "nsys_doctor.damaged_rows"
_COLLECTED: list[DamageSummary] | None = None  # in a worker process: what it found, handed back with its result


def collect_start() -> None:
    """In a worker process (no command line): keep what ``announce`` receives, for ``collect_stop``."""
    global _COLLECTED
    _COLLECTED = []


def collect_stop() -> list[DamageSummary]:
    global _COLLECTED
    found, _COLLECTED = _COLLECTED or [], None
    return found


_SCOPE: dict[str, DamageSummary] | None = None  # the running command line's warnings (command_scope), per file


class command_scope:  # used as a function: ``with command_scope():``
    """The command line that runs inside: what ``announce`` receives meanwhile is printed as one warning line on
    standard error when it ends (after its output, before an error line about it). (A class, not contextlib's
    decorator: importing contextlib costs a quick command about 1 ms.)"""

    def __enter__(self) -> None:
        global _SCOPE
        self._saved: dict[str, DamageSummary] | None = _SCOPE
        _SCOPE = {}

    def __exit__(self, *exc: object) -> None:
        global _SCOPE
        log = _SCOPE or {}
        _SCOPE = self._saved
        line = warning_line(log.values())
        if line and sys.stderr is not None:
            sys.stderr.write(line + "\n")
            sys.stderr.flush()


def _click_context() -> Any:
    """click's current context when click runs the command line (a test invoking a command), else None."""
    click = sys.modules.get("click")
    return None if click is None else click.get_current_context(silent=True)


def announced() -> bool:
    """Whether the running command has queued a damaged-rows warning (its output must not be kept for a later run,
    which could not print the warning again)."""
    if _SCOPE is not None:
        return bool(_SCOPE)
    ctx = _click_context()
    return ctx is not None and bool(ctx.find_root().meta.get(_META_KEY))


def announce(summary: DamageSummary) -> None:
    """Queue ``summary`` for the one warning line the running command prints when it ends (nothing outside a
    command line: a Python caller reads ``Trace.damaged``). The same trace opened twice counts once."""
    if not summary:
        return
    key = os.path.realpath(summary.path)
    if _SCOPE is not None:
        _SCOPE[key] = summary
        return
    ctx = _click_context()
    if ctx is None:
        if _COLLECTED is not None:
            _COLLECTED.append(summary)
        return
    root = ctx.find_root()
    log: dict[str, DamageSummary] | None = root.meta.get(_META_KEY)
    if log is None:
        log = {}
        root.meta[_META_KEY] = log

        def flush(log: dict[str, DamageSummary] = log) -> None:
            line = warning_line(log.values())
            if line:
                sys.modules["click"].echo(line, err=True)

        root.call_on_close(flush)
    log[key] = summary
