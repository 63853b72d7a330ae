"""What every nsys-compatible report shares: the result table, the report registry and argument parsing.

A report is a function ``(ReportContext) -> StatsTable`` registered under its nsys name. Columns carry nsys's
unit category (``dur_ns``, ``ts_ns``, ``mem_B``, ``thru_B``, ``ratio_%``) so renderers can convert units exactly
as nsys does; rows hold plain Python values (int ns, float, str, None for an empty cell).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence

from ..errors import UsageError
from ..trace import Trace
from ..trace.window import EventFilter
from ..values import Value

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

    import polars as pl


class Column(Value):
    """A report column: its label and the unit of its values ("", "dur_ns", "ts_ns", "mem_B", "thru_B",
    "ratio_%")."""

    _fields = ("label", "unit")

    def __init__(self, label: str, unit: str = "") -> None:
        self.label = label
        self.unit = unit


def duration_columns(count_label: str = "Instances", share: bool = True) -> tuple[Column, ...]:
    """The columns every nsys duration summary shares: Time (%), Total Time, <count>, Avg, Med, Min, Max, StdDev."""
    head = (Column("Time", "ratio_%"),) if share else ()
    return (
        *head,
        Column("Total Time", "dur_ns"),
        Column(count_label),
        *(Column(s, "dur_ns") for s in ("Avg", "Med", "Min", "Max", "StdDev")),
    )


class StatsTable(Value):
    """A report's result: its name and title, columns and rows (``skipped``, when not empty: why the report could
    not run on this trace, which nsys prints as SKIPPED)."""

    _fields = ("report", "title", "columns", "rows", "skipped")

    def __init__(
        self,
        report: str,
        title: str,
        columns: tuple[Column, ...],
        rows: Sequence[tuple] | None = None,
        skipped: str = "",
    ) -> None:
        self.report = report
        self.title = title
        self.columns = columns
        self.rows: Sequence[tuple] = [] if rows is None else rows
        self.skipped = skipped

    @property
    def labels(self) -> list[str]:
        return [c.label for c in self.columns]


CHUNK_ROWS = 32_768
"""Rows of a ``ChunkedRows`` made, and formatted, at a time: half of 65,536 took cuda_gpu_trace of 10M kernels from
512 to 358 MiB at its peak (and 2M kernels from 443 to 318 MiB) for about a tenth more time (docs/performance.md)."""


class ChunkedRows(Sequence[tuple]):
    """A report's rows made as polars frames of a chosen number of rows (``chunks``), one column per report column:
    ``report.nsys_format`` formats them a chunk at a time with polars instead of building a Python tuple and string
    per cell; to whoever reads ``StatsTable.rows`` row by row they are a sequence of tuples."""

    def __len__(self) -> int:
        raise NotImplementedError

    def chunks(self, n: int) -> Iterator[pl.DataFrame]:
        raise NotImplementedError

    def _rows(self, lo: int, hi: int) -> list[tuple]:
        """Rows ``lo`` to ``hi`` (exclusive; 0 <= lo <= hi <= len)."""
        raise NotImplementedError

    def __bool__(self) -> bool:
        return len(self) > 0

    def __iter__(self) -> Iterator[tuple]:
        for chunk in self.chunks(CHUNK_ROWS):
            yield from chunk.iter_rows()

    def __getitem__(self, i: int | slice) -> Any:  # a row (tuple) for an index, a list of rows for a slice
        n = len(self)
        if isinstance(i, slice):
            lo, hi, step = i.indices(n)
            return self._rows(lo, max(lo, hi)) if step == 1 else list(self)[i]
        if not -n <= i < n:
            raise IndexError(i)
        return self._rows(i % n, i % n + 1)[0]

    def __eq__(self, other: object) -> bool:
        if isinstance(other, (list, tuple, ChunkedRows)):
            return list(self) == list(other)
        return NotImplemented

    __hash__ = None  # type: ignore[assignment]


class ReportContext(Value):
    """What a report runs on: the trace, the event filter, and the report's arguments (``flags``, ``options``)."""

    _fields = ("trace", "flt", "flags", "options")
    __hash__ = None  # type: ignore[assignment]  # mutable

    def __init__(
        self, trace: Trace, flt: EventFilter, flags: set[str] | None = None, options: dict[str, str] | None = None
    ) -> None:
        self.trace = trace
        self.flt = flt
        self.flags: set[str] = set() if flags is None else flags
        self.options: dict[str, str] = {} if options is None else options

    def int_option(self, key: str, default: int, lo: int, hi: int, what: str = "") -> int:
        """The integer report argument ``key=`` (``default`` when not given), which must lie in ``lo..hi``;
        ``what`` names the range in the hint (e.g. "-1 for no limit, else 0..1000000000")."""
        raw = self.options.get(key)
        if raw is None:
            return default
        allowed = what or f"{lo}..{hi}"
        shown = raw if len(raw) <= 40 else raw[:37] + "..."
        text = raw.strip()
        digits = text[1:] if text[:1] in "+-" else text
        if not (digits.isascii() and digits.isdigit()):
            raise UsageError(f"bad value '{shown}' for {key}=", f"{key} takes an integer: {allowed}")
        value = int(text) if len(digits) <= 30 else (hi + 1 if text[0] != "-" else lo - 1)
        if not lo <= value <= hi:
            raise UsageError(f"{key}={shown} is out of range", f"{key} takes an integer: {allowed}")
        return value


class ReportSpec(Value):
    """A registered report: name, title, the function that makes it, the arguments it takes, its kind ("stats",
    or "rule" for nsys analyze) and its help text."""

    _fields = ("name", "title", "func", "flags", "options", "kind", "doc")

    def __init__(
        self,
        name: str,
        title: str,
        func: Callable[[ReportContext], StatsTable],
        flags: frozenset[str] = frozenset(),
        options: frozenset[str] = frozenset(),
        kind: str = "stats",
        doc: str = "",
    ) -> None:
        self.name = name
        self.title = title
        self.func = func
        self.flags = flags
        self.options = options
        self.kind = kind
        self.doc = doc


REGISTRY: dict[str, ReportSpec] = {}


def report(
    name: str, title: str, flags: tuple[str, ...] = (), options: tuple[str, ...] = (), kind: str = "stats"
) -> Callable[[Callable[[ReportContext], StatsTable]], Callable[[ReportContext], StatsTable]]:
    def deco(func: Callable[[ReportContext], StatsTable]) -> Callable[[ReportContext], StatsTable]:
        REGISTRY[name] = ReportSpec(
            name, title, func, frozenset(flags), frozenset(options), kind, (func.__doc__ or "").strip()
        )
        return func

    return deco


class ReportRequest(Value):
    """A report asked for on the command line: its name and arguments, and ``text``, as the user wrote it."""

    _fields = ("name", "flags", "options", "text")

    def __init__(self, name: str, flags: frozenset[str], options: dict[str, str], text: str) -> None:
        self.name = name
        self.flags = flags
        self.options = options
        self.text = text


def parse_report_arg(text: str) -> ReportRequest:
    """``cuda_gpu_kern_sum:base``, ``gpu_gaps:gap=1:rows=-1`` -> name, flags, options (validated)."""
    from . import load

    name, *args = text.split(":")
    load(name)
    spec = REGISTRY.get(name)
    if spec is None:
        close = [n for n in sorted(REGISTRY) if name and (name in n or n.startswith(name[:6]))][:4]
        hint = f"did you mean {', '.join(close)}?" if close else "list them with: nsys-doctor stats --help-reports"
        raise UsageError(f"unknown report '{name}'", hint)
    flags: set[str] = set()
    options: dict[str, str] = {}
    for a in args:
        if not a:
            continue
        if "=" in a:
            k, v = a.split("=", 1)
            if k not in spec.options:
                allowed = ", ".join(sorted(spec.options)) or "none"
                raise UsageError(f"report {name} has no option '{k}'", f"its options: {allowed}")
            options[k] = v
        else:
            if a not in spec.flags:
                allowed = ", ".join(sorted(spec.flags)) or "none"
                raise UsageError(f"report {name} has no argument '{a}'", f"its arguments: {allowed}")
            flags.add(a)
    return ReportRequest(name, frozenset(flags), options, text)


def load_kernels(ctx: ReportContext, columns: list[str], rowids: tuple[int, int] | None = None) -> pl.DataFrame:
    """Kernel rows (filtered by the context; ``rowids``: of that rowid range only) with ``columns`` and ``name_id``:
    the StringIds id of the name variant the report asks for (demangled; ``base``: short; ``mangled``: mangled
    where recorded, else demangled)."""
    import polars as pl

    from ..trace import schema as S
    from ..trace.tables import load

    name_col = kernel_name_column(ctx)
    extra = [name_col] + (["demangledName"] if name_col == "mangledName" else [])
    df = load(ctx.trace, S.KERNEL, list(dict.fromkeys([*columns, *extra])), ctx.flt, rowids=rowids)
    name = pl.coalesce("mangledName", "demangledName") if name_col == "mangledName" else pl.col(name_col)
    return df.with_columns(name.alias("name_id"))


def kernel_name_column(ctx: ReportContext) -> str:
    """Which kernel name the ``base``/``mangled`` arguments select (nsys: demangled by default)."""
    names = ctx.trace.schema.kernel_name_columns
    if "base" in ctx.flags:
        return names["base"]
    if "mangled" in ctx.flags:
        return names.get("mangled", names["default"])
    return names["default"]


SMALL_ROWS = 100_000
"""Tables up to this many rows (of two values, fewer rows of more values: the cost is the values fetched) are
summarized with the stdlib driver alone (``small_rows`` and ``aggregate.small_grouped_stats``): a small trace's
summary reports then start as fast as ``info``, without loading polars, whose import costs more than their work."""
BESIDE_ROWS = 4_000
"""Small tables of at least this many rows are checked for damaged rows beside their read (``Trace.rows_beside``);
below it the check (about 0.25 us a row) costs less than the second connection and thread (about 0.5 ms)."""
GROUP_PART_ROWS = 20_000
"""``small_groups`` reads a table of at least twice this many rows in parts on parallel connections (a grouping
costs about 1 us a row, a second connection and thread about 1 ms)."""
DURATION = '"end" - "start"'
"""A column of ``small_rows``: the duration, computed by SQLite (``start`` and ``end`` are integers in a table
without damaged rows)."""


def is_small(rows: int, columns: int, values: int | None = None) -> bool:
    """Whether ``rows`` rows of ``columns`` values are few enough for the stdlib path (at most ``values`` values:
    ``SMALL_ROWS`` rows of two by default)."""
    return rows * max(2, columns) <= (2 * SMALL_ROWS if values is None else values)


def small_rows(
    ctx: ReportContext,
    table: str,
    columns: list[str],
    nullable: tuple[str, ...] = (),
    text: tuple[str, ...] = (),
    names: bool = True,
    reads: tuple[str, ...] = (),
    where: str = "",
    checks: Sequence[str] = (),
    values: int | None = None,
    optional: tuple[str, ...] = (),
    narrow: str = "",
) -> list[tuple] | None:
    """``columns`` of ``table`` (the rows passing the context's filter, in table order) read with sqlite3 alone,
    when that gives exactly what the polars loader (``tables.load``) would: [] for an absent table; None (the
    polars path decides) when the table is not small (``is_small``), lacks a column, has damaged rows, or holds a
    value of another type than its column's: every column an integer, NULL only in ``nullable`` ones, and text (or
    NULL) in ``text`` ones. ``names``: the caller resolves StringIds, which are read first (as the polars path reads
    them: an unusable StringIds is its own error).

    ``values``: what ``is_small`` allows (None: its default; a report of many columns may read more values than a
    summary of two). ``optional``: columns an older export may lack (``greenContextId``, in nsys 2023.3 and
    before): NULL where absent, as the polars loader reads them.
    A column is a column name, ``DURATION`` (end - start) or an SQL expression over the columns named in ``reads``
    (e.g. ``coalesce("mangledName", "demangledName")``). ``where``: an SQL condition the rows must pass too (as
    ``tables.load``'s). With ``where``, a big table whose kept rows are few is small too: its rows are read (on
    parallel connections, as ``Trace.rows_in_parts``) up to one more than ``is_small`` allows, and None when they
    reach that (a rule's few API calls among millions need no polars). ``narrow``: an SQL condition keeping only the
    rows the caller would use of those the polars path reads (it reads them all, then drops the others): the rows
    read pass it, the damage is sought in all (a table of many rows, not ``where``-read: None).

    Damage is sought as the polars loader seeks it: in the rows it reads (those passing the filter and ``where``)
    and by the tests of the columns it reads (``damage.damaged_sql``): these, ``start`` and ``end`` (every loader
    reads them) and ``checks`` (what else the caller's polars path reads). None when a row is damaged (the polars
    path then counts the table's damage and leaves those rows out) or the table's damage was counted already."""
    from ..trace.damage import damaged_sql
    from ..trace.schema import ROW_KEYS

    trace = ctx.trace
    if not trace.schema.has(table):
        return []
    trace.require_columns(table)
    present = trace.schema.columns(table)
    absent = {c: f'NULL AS "{c}"' for c in optional if c not in present}
    if absent:  # read as NULL, which only they may hold
        columns = [absent.get(c, c) for c in columns]
        nullable = (*nullable, *absent.values())
    plain = [c for c in columns if c.isidentifier()]
    needed = {*plain, *reads, *(("start", "end") if DURATION in columns else ())}
    if table not in ROW_KEYS or not needed <= set(present):
        return None
    span = trace.rowid_range(table)
    if span is None:
        return []
    most_values = 2 * SMALL_ROWS if values is None else values
    capped = not is_small(span[1] - span[0] + 1, len(columns), most_values)
    if capped and (narrow or not where):
        return None
    if names:
        trace.strings  # noqa: B018 - read first, as the polars path does
    if trace.damage_found(table):
        return None  # the polars path leaves the damaged rows out
    where = " AND ".join(f"({c})" for c in (ctx.flt.sql_where(present), where) if c)
    cols = ", ".join(f'"{c}"' if c.isidentifier() else c for c in columns)
    keys = ROW_KEYS[table]
    # the columns the polars path reads: these, the times (every loader reads them) and ``checks``
    read = [c for c in present if c in needed or c in ("start", "end") or c in checks]
    strings = trace.string_span() if any(c in keys.names for c in read) else None
    # damage: a flag on each row read from a big table (another scan of it would cost as much as the read); in a
    # small one of at least ``BESIDE_ROWS`` rows, one EXISTS query run beside the read (cheaper than a flag on every
    # row; on another core, it costs no time); in a smaller one read whole, the clean rows alone are read and the
    # table's count (a walk of its pages, no row decoded) says whether any was left out, and in a smaller one read
    # in part (``where``) the EXISTS query runs first. A value of another type than its column's is sought by
    # SQLite with the damage (``typeof`` of each column read; a test in Python of every value read costs as much)
    typed = [c for c in columns if c not in absent.values()]  # an absent column is a NULL
    damaged = " OR ".join(c for c in (damaged_sql(keys, read, strings), _mistyped(typed, nullable, text)) if c)
    if capped:  # the kept rows, up to one more than a small table holds (per part: the parts come in rowid order)
        most = most_values // max(2, len(columns))
        usable = f"NOT coalesce({damaged}, 0)"
        sql = f"SELECT {cols}, {usable} FROM {table} WHERE {{range}} AND {where} ORDER BY rowid LIMIT {most + 1}"
        flagged = trace.rows_in_parts(table, sql)
        if len(flagged) > most or not all(row[-1] for row in flagged):
            return None
        return [row[:-1] for row in flagged]
    kept = " AND ".join(f"({c})" for c in (where, narrow) if c)
    sql = f"SELECT {cols} FROM {table}" + (f" WHERE {kept}" if kept else "") + " ORDER BY rowid"
    check = f"SELECT EXISTS (SELECT 1 FROM {table} WHERE " + (f"({where}) AND " if where else "") + f"({damaged}))"
    if span[1] - span[0] + 1 >= BESIDE_ROWS:
        damage, rows = trace.rows_beside(check, sql)
        return None if damage[0][0] else rows
    if not kept:
        rows = trace.rows(f"SELECT {cols} FROM {table} WHERE NOT coalesce({damaged}, 0) ORDER BY rowid")
        return rows if len(rows) == trace.rows(f"SELECT count(*) FROM {table}")[0][0] else None
    return None if trace.rows(check)[0][0] else trace.rows(sql)


def _mistyped(columns: Sequence[str], nullable: Sequence[str], text: Sequence[str]) -> str:
    """An SQL condition true on a row holding, in one of ``columns`` (names or expressions), a value other than an
    integer, a NULL where ``nullable`` or ``text`` allows it, or a text where ``text`` allows it: what sqlite3
    gives as a Python ``int``, ``None`` and ``str``."""
    tests = []
    for c in columns:
        allowed = "'integer'" + (", 'null'" if c in nullable or c in text else "") + (", 'text'" if c in text else "")
        expr = f'"{c}"' if c.isidentifier() else f"({c})"
        tests.append(f"typeof({expr}) NOT IN ({allowed})")
    return " OR ".join(tests)


def small_kernel_rows(
    ctx: ReportContext, columns: list[str], values: int | None = None, optional: tuple[str, ...] = ()
) -> list[tuple] | None:
    """Rows ``(name_id, *columns)`` of a small, clean kernel table read with sqlite3 alone, in table order:
    ``load_kernels``' ``name_id`` and integer ``columns`` (or ``DURATION``; ``optional`` ones NULL where an older
    export lacks them); None when the polars path must decide (see ``small_rows``)."""
    from ..trace.schema import KERNEL

    name_col = kernel_name_column(ctx)
    mangled = name_col == "mangledName"  # the mangled name where recorded, else the demangled one
    name = 'coalesce("mangledName", "demangledName")' if mangled else name_col
    reads = ("mangledName", "demangledName") if mangled else ()
    return small_rows(ctx, KERNEL, [name, *columns], reads=reads, values=values, optional=optional)


def small_groups(
    ctx: ReportContext, table: str, key: str | None, value: str = DURATION
) -> list[tuple[int, list[int]]] | None:
    """The values of a small table's rows grouped by its integer column ``key`` in SQLite (``key`` None: all rows
    in one group, keyed 0): ``(key, values)`` per group, the groups in order of their first row, the values in the
    order SQLite's grouping meets them (that of the table's scan). ``value``: ``DURATION`` or an integer column.
    What ``small_rows(ctx, table, [key, value])`` gives, grouped, with one Python object a group and one text of
    its values instead of a tuple a row: a summary of a small trace then reads in about half the time. (An order
    that SQLite does not promise could move a standard deviation by its last bits, as polars' order does.)

    [] for an absent or empty table. None (the caller reads the rows with ``small_rows``, which decides) unless the
    table is small and read whole (no filter), its damage has not been counted, no row is damaged and every key
    and value is an integer. The damage tests are ``damaged_sql``'s for the columns read, made on the groups
    instead of on each row (a test per row costs more than the grouping): a ``start`` or ``end`` (or value) that
    is NULL leaves its value out of the group's text (fewer values than rows), a REAL writes a REAL's digits (not
    an integer's), a TEXT or BLOB is the column's ``max`` (they sort after every number); ``end < start`` is a
    negative duration; a key that is NULL, not an integer (a REAL among a group's integers makes its ``sum`` a
    REAL) or, for a name, out of the StringIds span is seen on the group. Values other than the durations add
    tests of the durations: a REAL among them makes their ``sum`` a REAL, ``end < start`` their ``min`` negative."""
    from ..trace.schema import ROW_KEYS

    trace = ctx.trace
    keys = ROW_KEYS.get(table)
    if keys is None or keys.end_optional:
        return None
    if not trace.schema.has(table):
        return []
    trace.require_columns(table)
    present = trace.schema.columns(table)
    if not {"start", "end", *(c for c in (key, value) if c and c != DURATION)} <= set(present):
        return None
    span = trace.rowid_range(table)
    if ctx.flt.sql_where(present) or (span is not None and not is_small(span[1] - span[0] + 1, 2)):
        return None
    if span is None:
        return []
    named = key in keys.names
    if named:
        trace.strings  # noqa: B018 - read first, as the polars path does
    strings = trace.string_span() if named else None
    if trace.damage_found(table) or (named and strings is None):
        return None
    k = f'"{key}"' if key else "0"
    # each test gives "integer" on a sound group (a product with 0 sums without overflow and is REAL for a REAL)
    tests = ["typeof(max(start))", 'typeof(max("end"))', f"typeof(sum({k} * 0))"]
    if value != DURATION:  # the durations are not read: their tests here
        tests += [
            f'typeof(max("{value}"))',
            f"typeof(sum(({DURATION}) * 0))",
            f"CASE WHEN min({DURATION}) >= 0 THEN 'integer' END",
        ]
    v = value if value == DURATION else f'"{value}"'
    grouping = " GROUP BY 1 ORDER BY min(rowid)" if key else ""
    sql = f"SELECT {k}, count(*), group_concat({v}), {', '.join(tests)} FROM {table} WHERE {{range}}{grouping}"
    # parts of the table's rowids on parallel connections: a part's groups come after the earlier parts', so the
    # groups keep the order of their first rows and their values the order of the table
    out: dict[int, list[int]] = {}
    for group, n, text, *kinds in trace.rows_in_parts(table, sql, GROUP_PART_ROWS):
        if not n:  # a part without rows (no grouping: one row of count 0)
            continue
        if type(group) is not int or kinds != ["integer"] * len(tests):
            return None
        if strings is not None and not strings[0] <= group <= strings[1]:
            return None
        try:  # a REAL's digits ("1.5") fail here
            values = list(map(int, text.split(",")))
        except ValueError:
            return None
        if len(values) != n or (value == DURATION and min(values) < 0):
            return None
        out.setdefault(group, []).extend(values)
    return list(out.items())


def named_groups(
    groups: list[tuple[int, list[int]]] | None, name_of: Callable[[int], str]
) -> list[tuple[str, list[int]]] | None:
    """``small_groups``' groups keyed by their names (``name_of`` of each key) instead; None when ``groups`` is None
    or two groups have one name (the rows then decide: a name's values interleave in table order)."""
    if groups is None:
        return None
    out = [(name_of(key), values) for key, values in groups]
    return out if len({name for name, _ in out}) == len(out) else None


def small_kernel_groups(ctx: ReportContext) -> list[tuple[int, list[int]]] | None:
    """``small_groups`` of the kernel table by the name variant ``load_kernels`` reads (its demangled or short
    name; None for the mangled one, a coalesce of two columns: the caller reads rows)."""
    from ..trace.schema import KERNEL

    name_col = kernel_name_column(ctx)
    return None if name_col == "mangledName" else small_groups(ctx, KERNEL, name_col)
