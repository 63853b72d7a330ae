"""The parsers per pasted format: column, box, markdown, CSV, JSON and headerless rows, into raw cells."""

from __future__ import annotations

import bisect
import csv
import itertools
import json
import re
from dataclasses import dataclass, field
from decimal import Decimal

from .columns import KNOWN_BASES, read_head
from .numbers import EMPTY_CELLS, NUMLIKE, is_numlike, resolve_numbers
from .vocabulary import BOX_RULE, DASH_RUN, ELLIPSIS, SPACES2


@dataclass
class Raw:
    layout: str
    line: int  # 0-based header line
    end: int  # 0-based, exclusive
    headers: list[str]
    rows: list[list[str]]
    issues: list[str] = field(default_factory=list)
    partial: bool = False
    fixed_decimal: str | None = None  # csv/json: numbers are machine-written
    json_rows: list[dict[str, object]] | None = None


MAX_COLUMNS = 64  # nsys reports have at most ~20 columns; a wider "table" is something else (and costs rows x columns)


def _is_ellipsis(line: str) -> bool:
    return bool(ELLIPSIS.match(line))


def _elided(line: str, raw: Raw) -> bool:
    """Is ``line`` an ellipsis standing for rows left out of the paste? Then ``raw`` is marked partial."""
    if not _is_ellipsis(line):
        return False
    raw.partial = True
    return True


def _slices(spans: list[tuple[int, int]]) -> list[slice]:
    """Cell slices of a column table: each span widened by one character (rows shifted by one still read), the
    last one open to the end of the line (long names)."""
    last = len(spans) - 1
    return [slice(max(0, s - 1), e + 1 if i < last else None) for i, (s, e) in enumerate(spans)]


def _cells_by_spans(line: str, cuts: list[slice]) -> list[str]:
    """The cells of ``line`` cut by the slices of ``_slices``."""
    return [line[c].strip() for c in cuts]


def _valid(cells: list[str], kinds: list[str]) -> bool:
    for cell, kind in zip(cells, kinds, strict=True):
        if kind == "num" and cell and not is_numlike(cell) and cell not in EMPTY_CELLS:
            return False
        if kind == "grid" and cell and not re.fullmatch(r"[\d\s]+", cell):
            return False
    return any(cells)


_TOKEN = re.compile(r"[^ \t]+")  # split on ASCII blanks only: no-break spaces are thousands separators
_GROUP_HEAD = re.compile(r"[+-]?[1-9][0-9]{0,2}(?: [0-9]{3})*")
_GROUP_TAIL = re.compile(r"[0-9]{3}(?:[.,][0-9]+)?")


class _Ambiguous(Exception):
    """Numbers separated by single spaces that may be one space-grouped number ("3 040") or two cells."""


def _tokens(line: str) -> tuple[list[re.Match[str]], bool]:
    """Blank-separated tokens, and whether the line separates cells by wide gaps (two blanks or a tab, as nsys's
    column layout does), in which case a single space inside a number is a thousands separator."""
    toks = list(_TOKEN.finditer(line))
    wide = any(b.start() - a.end() >= 2 or "\t" in line[a.end() : b.start()] for a, b in itertools.pairwise(toks))
    return toks, wide


def _take_number(line: str, toks: list[re.Match[str]], k: int, wide: bool) -> tuple[str, int] | None:
    """The number cell starting at token ``k`` and the index after it; ``None`` if token ``k`` is not a number.
    Raises ``_Ambiguous`` when single spaces may separate thousands or cells and the line cannot say which."""
    cell = toks[k].group()
    if not is_numlike(cell) and cell not in EMPTY_CELLS:
        return None
    j = k + 1
    while (
        j < len(toks)
        and toks[j].start() - toks[j - 1].end() == 1
        and line[toks[j - 1].end()] == " "
        and _GROUP_HEAD.fullmatch(cell)
        and _GROUP_TAIL.fullmatch(toks[j].group())
    ):
        if not wide:
            raise _Ambiguous
        cell += " " + toks[j].group()
        j += 1
    return cell, j


def _cells_by_tokens(line: str, kinds: list[str]) -> list[str] | None:
    """Fallback for a row whose alignment was lost: numbers take one token (or a space-grouped run of them), grids
    three, text columns one, and the last column the rest of the line. ``None`` if the row does not fit, or when
    single spaces make it ambiguous where one number ends."""
    toks, wide = _tokens(line)
    out: list[str] = []
    k = 0
    try:
        for i, kind in enumerate(kinds):
            if k >= len(toks):
                return None
            if i == len(kinds) - 1:
                taken = _take_number(line, toks, k, wide) if kind == "num" else None
                if taken is not None and taken[1] == len(toks):
                    out.append(taken[0])
                else:
                    out.append(line[toks[k].start() :].strip())
                k = len(toks)
                break
            if kind == "grid":
                part = [t.group() for t in toks[k : k + 3]]
                if len(part) < 3 or not all(p.isascii() and p.isdigit() for p in part):
                    return None
                out.append(" ".join(part))
                k += 3
            elif kind == "num":
                taken = _take_number(line, toks, k, wide)
                if taken is None:
                    return None
                out.append(taken[0])
                k = taken[1]
            else:
                out.append(toks[k].group())
                k += 1
    except _Ambiguous:
        return None
    return out if k == len(toks) and len(out) == len(kinds) else None


def _header_labels(header: str, spans: list[tuple[int, int]]) -> list[str]:
    labels = SPACES2.split(header.strip())
    if len(labels) == len(spans):
        return labels
    # labels do not split cleanly: give each token to the span it overlaps most
    parts: list[list[str]] = [[] for _ in spans]
    for m in re.finditer(r"\S+(?: \S+)*", header):
        best = max(range(len(spans)), key=lambda i: min(m.end(), spans[i][1]) - max(m.start(), spans[i][0]))
        parts[best].append(m.group(0))
    return [" ".join(p) for p in parts]


def column_table(lines: list[str], dash: int) -> Raw | None:
    """Header line, a line of dashes, rows until a blank line or a line that is not a row."""
    if dash == 0 or not lines[dash - 1].strip() or not re.search(r"[A-Za-z%]", lines[dash - 1]):
        return None
    header = lines[dash - 1].expandtabs()
    spans = [(m.start(), m.end()) for m in DASH_RUN.finditer(lines[dash].expandtabs())]
    if len(spans) > MAX_COLUMNS:
        return None
    labels = _header_labels(header, spans)
    kinds = [read_head(h, i).kind for i, h in enumerate(labels)]
    raw = Raw("column", dash - 1, dash + 1, labels, [])
    cuts = _slices(spans)
    i = dash + 1
    bad = 0
    while i < len(lines):
        line = lines[i].expandtabs().rstrip("\n")
        if not line.strip():
            break
        if _elided(line, raw):
            i += 1
            continue
        cells = _cells_by_spans(line, cuts)
        if not _valid(cells, kinds):
            alt = _cells_by_tokens(line, kinds)
            if alt is None or not _valid(alt, kinds):
                if raw.rows and bad == 0 and i + 1 < len(lines) and _row_like(lines[i + 1], spans, kinds):
                    raw.issues.append(f"line {i + 1}: could not read this row, skipped")
                    raw.partial = True
                    bad += 1
                    i += 1
                    continue
                break
            cells = alt
        raw.rows.append(cells)
        i += 1
    raw.end = i
    return raw


def _row_like(line: str, spans: list[tuple[int, int]], kinds: list[str]) -> bool:
    line = line.expandtabs()
    if not line.strip():
        return False
    if _valid(_cells_by_spans(line, _slices(spans)), kinds):
        return True
    alt = _cells_by_tokens(line, kinds)
    return alt is not None and _valid(alt, kinds)


def box_table(lines: list[str], rule: int) -> Raw | None:
    """``--format table``: +---+ rules, | cells |."""
    if rule + 2 >= len(lines) or not lines[rule + 1].lstrip().startswith("|"):
        return None
    bounds = [m.start() for m in re.finditer(r"\+", lines[rule].expandtabs())]
    if len(bounds) > MAX_COLUMNS + 1:
        return None

    def split(line: str) -> list[str] | None:
        line = line.expandtabs()
        if all(p < len(line) and line[p] == "|" for p in bounds):
            return [line[a + 1 : b].strip() for a, b in itertools.pairwise(bounds)]
        parts = [p.strip() for p in line.strip().strip("|").split("|")]
        return parts if len(parts) == len(bounds) - 1 else None

    headers = split(lines[rule + 1])
    if headers is None:
        return None
    raw = Raw("table", rule + 1, rule + 2, headers, [])
    i = rule + 2
    if i < len(lines) and BOX_RULE.match(lines[i]):
        i += 1
    while i < len(lines):
        line = lines[i]
        if BOX_RULE.match(line):
            i += 1
            break
        if not line.strip():
            break
        if _elided(line, raw):
            i += 1
            continue
        if not line.lstrip().startswith("|"):
            break
        cells = split(line)
        if cells is None:
            raw.issues.append(f"line {i + 1}: could not split this row into {len(headers)} cells, skipped")
            raw.partial = True
        else:
            raw.rows.append(cells)
        i += 1
    raw.end = i
    return raw


def md_cells(line: str) -> list[str]:
    t = line.strip()
    if t.startswith("|"):
        t = t[1:]
    if t.endswith("|") and not t.endswith("\\|"):
        t = t[:-1]
    parts = re.split(r"(?<!\\)\|", t)
    return [p.strip().replace("\\|", "|").strip("`").strip() for p in parts]


def markdown_table(lines: list[str], sep: int) -> Raw | None:
    if sep == 0 or "|" not in lines[sep - 1]:
        return None
    headers = md_cells(lines[sep - 1])
    raw = Raw("markdown", sep - 1, sep + 1, headers, [])
    i = sep + 1
    while i < len(lines) and "|" in lines[i] and lines[i].strip():
        cells = md_cells(lines[i])
        if len(cells) == len(headers):
            raw.rows.append([re.sub(r"^\*\*(.*)\*\*$", r"\1", c) for c in cells])
        else:
            raw.issues.append(f"line {i + 1}: {len(cells)} cells for {len(headers)} columns, skipped")
            raw.partial = True
        i += 1
    raw.end = i
    return raw


def known_headers(headers: list[str]) -> int:
    """How many headers look like nsys stats headers (a known label or a unit in parentheses)."""
    n = 0
    for i, h in enumerate(headers):
        hd = read_head(h, i)
        if hd.unit or hd.base in KNOWN_BASES or hd.base.startswith(("t_", "k_", "q_", "a_")):
            n += 1
    return n


def _csv_fields(line: str, delimiter: str) -> list[str]:
    try:
        return next(csv.reader([line], delimiter=delimiter))
    except (csv.Error, StopIteration):
        return []


def csv_table(lines: list[str], start: int) -> Raw | None:
    line = lines[start].strip()
    if not line:
        return None
    for delimiter in (",", ";", "\t"):
        if line.count(delimiter) < 1:
            continue
        headers = _csv_fields(line, delimiter)
        if len(headers) < 2 or known_headers(headers) < 2 or any(not h.strip() for h in headers):
            continue
        raw = Raw("csv", start, start + 1, [h.strip() for h in headers], [], fixed_decimal=".")
        i = start + 1
        while i < len(lines) and lines[i].strip():
            if _elided(lines[i], raw):
                i += 1
                continue
            cells = _csv_fields(lines[i].rstrip("\r\n"), delimiter)
            if len(cells) != len(headers):
                break  # another shape
            if not any(NUMLIKE.match(c.strip()) for c in cells) and known_headers(cells) >= 2:
                break  # the header of the next table
            raw.rows.append(cells)
            i += 1
        if not raw.rows:
            continue
        if delimiter == ";":
            raw.fixed_decimal = None  # a spreadsheet in a decimal-comma locale writes 22,0
        raw.end = i
        return raw
    return None


def _decode_window(decoder: json.JSONDecoder, text: str, pos: int) -> tuple[object, int]:
    """``raw_decode`` of the JSON value at ``pos``, on a window of the text that doubles while the value runs past
    it: a failed candidate costs about its own length, not the rest of the text (JSON errors count lines from the
    start of the string they are given)."""
    width = 1 << 10
    while True:
        window = text[pos : pos + width]
        try:
            value, end = decoder.raw_decode(window)
            return value, pos + end
        except json.JSONDecodeError as exc:
            if pos + width >= len(text) or exc.pos < len(window) * 3 // 4:
                raise
        width *= 4


_JSON_OBJECT = re.compile(r"\s*,?\s*(\{[^{}]*\})")


def json_table(text: str, lines: list[str], start: int, offsets: list[int]) -> Raw | None:
    pos = offsets[start] + lines[start].index("[")
    decoder = json.JSONDecoder(parse_float=Decimal)
    issues: list[str] = []
    try:
        value, end = _decode_window(decoder, text, pos)
    except (json.JSONDecodeError, RecursionError):
        # nsys does not escape quotes inside names, and pastes get cut: read the objects one by one, as long as
        # they follow each other (anchored matches keep this linear in the text's length)
        value, end = [], pos + 1
        while (m := _JSON_OBJECT.match(text, end)) is not None:
            try:
                value.append(decoder.decode(m.group(1)))
            except (json.JSONDecodeError, RecursionError):
                issues.append(f"a JSON object could not be read, skipped: {m.group(1)[:60]!r}")
            end = m.end()
        if not value:
            return None
        issues.append("the JSON array is not well-formed: objects read one by one")
    if not isinstance(value, list) or not value or not all(isinstance(v, dict) for v in value):
        return None
    headers: list[str] = []
    for obj in value:
        for k in obj:
            if k not in headers:
                headers.append(str(k))
    if known_headers(headers) < 2:
        return None
    end_line = bisect.bisect_left(offsets, end)
    raw = Raw("json", start, max(end_line, start + 1), headers, [], issues=issues, fixed_decimal=".")
    raw.json_rows = value
    raw.partial = bool(issues)
    return raw


HEADERLESS_COLUMNS = {
    8: ("Time (%)", "Total Time (ns)", "Count", "Avg (ns)", "Med (ns)", "Min (ns)", "Max (ns)", "StdDev (ns)"),
    7: ("Time (%)", "Total Time (ns)", "Count", "Average (ns)", "Minimum (ns)", "Maximum (ns)", "StdDev (ns)"),
    6: ("Time (%)", "Total Time (ns)", "Count", "Average (ns)", "Minimum (ns)", "Maximum (ns)"),
}


def _headerless_row(line: str) -> tuple[list[str], str] | None:
    """(the 6-8 numbers, the name) of a row cut out of a column table; ``None`` if the line is not one. Raises
    ``_Ambiguous`` when single spaces may be thousands separators or gaps between cells."""
    first = line.lstrip()[:1]
    if not first or not (first.isdigit() or first in "+-.,"):  # most lines: not a row of numbers
        return None
    toks, wide = _tokens(line)
    nums: list[str] = []
    k = 0
    while k < len(toks) and len(nums) <= 8:
        taken = _take_number(line, toks, k, wide)
        if taken is None:
            break
        nums.append(taken[0])
        k = taken[1]
    if len(nums) not in HEADERLESS_COLUMNS or k >= len(toks):
        return None
    return nums, line[toks[k].start() :].strip()


def _plausible(nums: list[str]) -> bool:
    """The first row of a headerless fragment: a share between 0 and 100 and min <= max."""
    lo_i, hi_i = (len(nums) - 3, len(nums) - 2) if len(nums) >= 7 else (len(nums) - 2, len(nums) - 1)
    read = resolve_numbers({0: [nums[0]], 1: [nums[lo_i]], 2: [nums[hi_i]]}, ["share", "min", "max"])
    share = read.columns.get(0)
    if share is None or share.values[0] is None or not Decimal(0) <= share.values[0] <= 100:
        return False
    lo, hi = read.columns.get(1), read.columns.get(2)
    if lo is None or hi is None or lo.values[0] is None or hi.values[0] is None:
        return True
    return lo.values[0] <= hi.values[0]


def headerless(lines: list[str], start: int, used: list[bool], refused: list[str]) -> Raw | None:
    """Rows cut out of a column table without their header: 6, 7 or 8 numbers and a name."""
    rows: list[list[str]] = []
    width = 0
    i = start
    while i < len(lines) and not used[i]:
        if rows and _is_ellipsis(lines[i]):
            i += 1
            continue
        try:
            row = _headerless_row(lines[i])
        except _Ambiguous:
            if not rows:
                refused.append(
                    f"line {i + 1}: numbers separated by single spaces, so thousands separators (3 040) cannot be "
                    "told from gaps between columns; not read"
                )
            break
        if row is None:
            break
        nums, name = row
        if width and len(nums) != width:
            break
        if width == 0 and not _plausible(nums):
            break
        width = len(nums)
        rows.append([*nums, name])
        i += 1
    if not rows:
        return None
    headers = [*HEADERLESS_COLUMNS[width], "Name"]
    raw = Raw("headerless", start, i, headers, rows, partial=True)
    raw.issues.append(f"rows without their header: read as the nsys column order ({', '.join(headers)}) in nanoseconds")
    return raw
