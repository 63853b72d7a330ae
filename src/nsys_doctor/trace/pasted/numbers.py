"""Numbers in any locale: digit-group and decimal separators read per column, ambiguity refused."""

from __future__ import annotations

import functools
import re
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation

NUMLIKE = re.compile(
    r"^[+-]?(?:(?:[0-9]{1,3}(?:[,.'\u2019\u00a0\u202f\u2009 _][0-9]{3})+|[0-9]+)(?:[.,][0-9]+)?|[.,][0-9]+)"
    r"(?:[eE][+-]?[0-9]+)?$"
)


def is_numlike(cell: str) -> bool:
    """The cell is written like a number in some convention (which one is decided per table)."""
    return len(cell) <= _MAX_NUMBER_CHARS and bool(NUMLIKE.match(cell))


#
# nsys prints numbers the way the locale of the machine does: "1,234.5" (en), "1.234,5" (de), "1 234,5" (fr, with a
# narrow no-break space or a plain space), "1'234.5" (ch). A cell alone is often ambiguous ("1,234" is 1234 or
# 1.234), so the convention is decided for a whole table: one decimal separator for every column, one grouping
# separator per column, used consistently (a column that groups "1,234" does not also print "12345"). When the cells
# allow more than one reading that gives different numbers, or none, the column is marked unreadable with the reason:
# a number is never guessed.

SEPARATORS: dict[str, str] = {
    ",": ",",
    ".": ".",
    "'": "'",
    "\u2019": "'",
    "_": "_",
    " ": " ",
    "\u00a0": " ",
    "\u202f": " ",
    "\u2009": " ",
}
"""Characters written between digits -> their class (every kind of space is one class, so are apostrophes)."""
_GROUP_RX = {",": ",", ".": r"\.", "'": "['\u2019]", "_": "_", " ": "[ \u00a0\u202f\u2009]"}
_SEP_WORDS = {",": "comma", ".": "dot", "'": "apostrophe", "_": "underscore", " ": "space"}
EMPTY_CELLS = frozenset({"", "-", "\u2014", "\u2013", "n/a", "N/A", "--"})
_MAX_NUMBER_CHARS = 64  # longer cells are not numbers (and keep every regex on cells cheap)


@functools.lru_cache(maxsize=32)
def _grammar(decimal: str, group: str) -> re.Pattern[str]:
    """A number written with this decimal separator and this grouping separator ("" for none)."""
    d = re.escape(decimal)
    whole = r"(?P<plain>[0-9]+)"
    if group:
        whole = rf"(?:(?P<grouped>[1-9][0-9]{{0,2}}(?:{_GROUP_RX[group]}[0-9]{{3}})+)|{whole})"
    return re.compile(rf"[+-]?(?:{whole}(?:{d}(?P<frac>[0-9]+))?|{d}(?P<frac2>[0-9]+))(?:[eE][+-]?[0-9]+)?")


def _separators(cell: str) -> set[str]:
    return {SEPARATORS[c] for c in cell if c in SEPARATORS}


@dataclass
class NumberColumn:
    """One column of cells read with one decimal separator: the values, or why they cannot be read that way."""

    values: list[Decimal | None]
    decimals: int = 0  # the most digits after the decimal separator
    group: str = ""  # the grouping separator found ("" for none)
    reason: str = ""  # non-empty: the column cannot be read with this decimal separator
    bad_cell: str = ""  # the cell that says so


def read_numbers(cells: list[str], decimal: str, group: str | None = None) -> NumberColumn:
    """Read a column of number cells with ``decimal`` as the decimal separator; the grouping separator is the one
    other separator the column uses (or ``group`` when given, "" for none). Empty cells ("", "-") are ``None``."""
    seps: set[str] = set()
    texts = [c.strip() for c in cells]
    for t in set(texts):
        if len(t) <= _MAX_NUMBER_CHARS:
            seps |= _separators(t)
    seps.discard(decimal)
    allowed = seps if group is None else ({group} if group else set())
    if seps - allowed:
        extra = sorted(seps - allowed)
        bad = next(t for t in texts if _separators(t) & set(extra))
        return NumberColumn([], reason=f"{bad!r} has a {_SEP_WORDS[extra[0]]} where no separator belongs", bad_cell=bad)
    if len(seps) > 1:
        words = " and ".join(_SEP_WORDS[s] for s in sorted(seps))
        bad = next((t for t in texts if len(_separators(t) - {decimal}) > 1), "") or next(
            t for t in texts if _separators(t) - {decimal}
        )
        return NumberColumn([], reason=f"the column groups digits with both {words} (e.g. {bad!r})", bad_cell=bad)
    g = next(iter(seps), "")
    rx = _grammar(decimal, g)
    seen: dict[str, tuple[Decimal | None, int]] = {}
    values: list[Decimal | None] = []
    most = 0
    for t in texts:
        hit = seen.get(t)
        if hit is None:
            if t in EMPTY_CELLS:
                hit = (None, 0)
            else:
                m = rx.fullmatch(t) if len(t) <= _MAX_NUMBER_CHARS else None
                if m is None:
                    return NumberColumn([], group=g, reason=f"{t!r} is not a number", bad_cell=t)
                plain = m.group("plain")
                if g and plain is not None and len(plain) > 3:
                    return NumberColumn(
                        [],
                        group=g,
                        reason=f"{t!r} has no {_SEP_WORDS[g]} between thousands where other cells have one",
                        bad_cell=t,
                    )
                frac = m.group("frac") or m.group("frac2") or ""
                text = t
                for ch, cls in SEPARATORS.items():
                    if cls == g:
                        text = text.replace(ch, "")
                text = text.replace(decimal, ".")
                try:
                    hit = (Decimal(text), len(frac))
                except InvalidOperation:
                    return NumberColumn([], group=g, reason=f"{t!r} is not a number", bad_cell=t)
            seen[t] = hit
        values.append(hit[0])
        most = max(most, hit[1])
    return NumberColumn(values, most, g)


@dataclass
class TableNumbers:
    """The numbers of a table's numeric columns, read with one convention, and the columns that cannot be read."""

    decimal: str
    columns: dict[int, NumberColumn]
    unreadable: dict[int, str]  # column index -> why its numbers are not read


@functools.lru_cache(maxsize=8)
def _integer_grammar(group: str) -> re.Pattern[str]:
    grouped = rf"(?P<grouped>[1-9][0-9]{{0,2}}(?:{_GROUP_RX[group]}[0-9]{{3}})+)|" if group else ""
    return re.compile(rf"[+-]?(?:{grouped}(?P<plain>[0-9]+))")


def read_integers(cells: list[str], group: str | None = None) -> NumberColumn | None:
    """A column of counts (nsys prints them without decimals): every separator in it groups thousands, so it reads
    the same whatever the table's decimal separator is. ``None`` when the cells are not integers written so."""
    texts = [c.strip() for c in cells]
    seps: set[str] = set()
    for t in set(texts):
        seps |= _separators(t)
    if len(seps) > 1 or (group is not None and seps - ({group} if group else set())):
        return None
    g = next(iter(seps), "")
    rx = _integer_grammar(g)
    values: list[Decimal | None] = []
    for t in texts:
        if t in EMPTY_CELLS:
            values.append(None)
            continue
        m = rx.fullmatch(t) if len(t) <= _MAX_NUMBER_CHARS else None
        if m is None or (g and m.group("plain") is not None and len(m.group("plain")) > 3):
            return None
        values.append(Decimal(t.translate({ord(ch): None for ch, cls in SEPARATORS.items() if cls == g})))
    return NumberColumn(values, 0, g)


def resolve_numbers(
    columns: dict[int, list[str]], headers: list[str], fixed: str | None = None, integers: frozenset[int] = frozenset()
) -> TableNumbers:
    """Decide the number convention of a table from all its numeric columns and read them.

    ``fixed`` is the decimal separator when the format fixes it (nsys CSV and JSON: ".", no grouping). Otherwise
    both "." and "," are tried; the decimal separator must be the same for every column. Columns that no
    convention reads, or that read as different numbers under the conventions the table allows, are unreadable.
    ``integers`` are the columns of counts: their separators group thousands, which excludes that separator as the
    table's decimal one (a locale does not use one character for both)."""
    decimals = [fixed] if fixed else [".", ","]
    group = "" if fixed else None
    reads: dict[str, dict[int, NumberColumn]] = {d: {} for d in decimals}
    for j, cells in columns.items():
        ints = read_integers(cells, group) if j in integers else None
        for d in decimals:
            if ints is None:
                reads[d][j] = read_numbers(cells, d, group)
            elif ints.group == d:
                bad = next(c.strip() for c in cells if d in c)
                word = _SEP_WORDS[d]
                why = f"{bad!r} groups thousands with a {word}, so the {word} is not the decimal separator"
                reads[d][j] = NumberColumn([], group=d, reason=why, bad_cell=bad)
            else:
                reads[d][j] = ints
    viable = {j: [d for d in decimals if not reads[d][j].reason] for j in columns}
    unreadable: dict[int, str] = {}
    for j, ds in viable.items():
        if not ds:
            unreadable[j] = reads[decimals[0]][j].reason if len(decimals) == 1 else _neither(reads, j)
    deciding = {j: ds for j, ds in viable.items() if len(ds) == 1}
    chosen = {ds[0] for ds in deciding.values()}
    if len(chosen) > 1:
        a = next(j for j, ds in deciding.items() if ds == ["."])
        b = next(j for j, ds in deciding.items() if ds == [","])
        why = (
            f"the columns disagree on the decimal separator: {headers[a]!r} reads only with a decimal dot "
            f"({reads[','][a].bad_cell!r}), {headers[b]!r} only with a decimal comma ({reads['.'][b].bad_cell!r})"
        )
        for j in columns:
            unreadable.setdefault(j, why)
        return TableNumbers(".", {}, unreadable)
    decided = bool(chosen)
    decimal = next(iter(chosen)) if chosen else decimals[0]
    out: dict[int, NumberColumn] = {}
    for j, ds in viable.items():
        if j in unreadable:
            continue
        if decimal not in ds:
            unreadable[j] = reads[decimal][j].reason
            continue
        col = reads[decimal][j]
        if not decided and len(ds) == 2 and reads[","][j].values != col.values:
            k = next(i for i, (x, y) in enumerate(zip(col.values, reads[","][j].values, strict=True)) if x != y)
            cell = columns[j][k].strip()
            unreadable[j] = (
                f"{cell!r} reads as {_show(col.values[k])} or {_show(reads[','][j].values[k])}, and no number in the "
                "table shows whether the comma or the dot is the decimal separator"
            )
            continue
        out[j] = col
    return TableNumbers(decimal, out, unreadable)


def _neither(reads: dict[str, dict[int, NumberColumn]], j: int) -> str:
    dot, comma = reads["."][j], reads[","][j]
    if dot.bad_cell == comma.bad_cell:
        return dot.reason
    return f"{dot.reason} with a decimal dot, and {comma.reason} with a decimal comma"


def _show(value: Decimal | None) -> str:
    return "empty" if value is None else format(value.normalize(), "f")


def parse_number(text: str, decimal: str = ".", group: str | None = None) -> Decimal | None:
    """One shown number as an exact Decimal (``None`` for an empty cell), written with ``decimal`` as the decimal
    separator and ``group`` (or any other single separator) between thousands; ValueError if it is not one."""
    col = read_numbers([text], decimal, group)
    if col.reason:
        raise ValueError(f"not a number: {text!r} ({col.reason})")
    return col.values[0]


def plain_number(value: Decimal) -> int | float:
    return int(value) if value == value.to_integral_value() else float(value)
