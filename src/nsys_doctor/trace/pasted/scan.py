"""The scan: ``parse_pasted`` finds every table in the text, whatever surrounds it, and builds it."""

from __future__ import annotations

import re

from .build import build_table
from .columns import Title, title_of
from .layouts import (
    Raw,
    box_table,
    column_table,
    csv_table,
    headerless,
    json_table,
    known_headers,
    markdown_table,
    md_cells,
)
from .model import PastedTable, PastedText
from .vocabulary import BOX_RULE, DASHES, MD_SEP, NOTE_PATTERNS

_MAX_TITLE_CHARS = 1000  # title and command lines are short; longer lines are not searched (bounded regex cost)
_SCOPE = re.compile(
    r"--filter-(?:nvtx|time)\b|--capture-range\b|(?:^|\s)-c\s+(?:cudaProfilerApi|nvtx)\b|--delay\b|(?:^|\s)-y\s+\d"
)


_ANSI = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]")
_LINE_PREFIXES = (
    re.compile(r"^\s*(?:>\s?)+"),  # e-mail / forum quotes
    re.compile(r"^\[\d+(?:,\d+)*\]<std(?:out|err)>:\s?"),  # mpirun --tag-output
    re.compile(r"^\[\d+\]\s"),  # mpirun rank tags
    re.compile(r"^\d+:\s"),  # srun -l
)


def _clean_lines(text: str) -> list[str]:
    """Lines without what copying adds around them: colours, and a prefix on most lines (quotes, rank tags)."""
    text = _ANSI.sub("", text.replace("\r\n", "\n").replace("\r", "\n").lstrip("\ufeff"))
    lines = text.split("\n")
    filled = [line for line in lines if line.strip()]
    for prefix in _LINE_PREFIXES:
        if filled and sum(1 for line in filled if prefix.match(line)) >= 0.5 * len(filled):
            lines = [prefix.sub("", line, count=1) for line in lines]
    return lines


def parse_pasted(text: str, source: str = "<text>") -> PastedText:
    """Find and read every nsys stats table in ``text`` (never raises on odd input)."""
    lines = _clean_lines(text)
    text = "\n".join(lines)
    offsets = []
    pos = 0
    for line in lines:
        offsets.append(pos)
        pos += len(line) + 1
    used = [False] * len(lines)
    found: list[Raw] = []

    def take(raw: Raw | None) -> bool:
        if raw is None or (not raw.rows and raw.json_rows is None):
            return False
        if any(used[raw.line : raw.end]):
            return False
        for k in range(raw.line, raw.end):
            used[k] = True
        found.append(raw)
        return True

    # structured layouts first: JSON, box tables, column tables, Markdown, CSV
    for i, line in enumerate(lines):
        if used[i]:
            continue
        s = line.strip()
        if s.startswith("[") and (s == "[" or s.startswith(("[{", "[ {"))):
            nxt = next((lines[k].strip() for k in range(i + 1, min(i + 3, len(lines))) if lines[k].strip()), "")
            if s != "[" or nxt.startswith("{"):
                take(json_table(text, lines, i, offsets))
    for i, line in enumerate(lines):
        if not used[i] and BOX_RULE.match(line):
            take(box_table(lines, i))
    for i, line in enumerate(lines):
        if not used[i] and DASHES.match(line.expandtabs()) and i > 0 and not used[i - 1]:
            take(column_table(lines, i))
    for i, line in enumerate(lines):
        if (
            not used[i]
            and MD_SEP.match(line)
            and i > 0
            and not used[i - 1]
            and "|" in lines[i - 1]
            and known_headers(md_cells(lines[i - 1])) >= 2  # before reading rows: keeps the scan linear
        ):
            take(markdown_table(lines, i))
    for i, line in enumerate(lines):
        if not used[i] and ("," in line or ";" in line or "\t" in line):
            take(csv_table(lines, i))
    refused: list[str] = []
    for i, _line in enumerate(lines):
        if not used[i]:
            take(headerless(lines, i, used, refused))
    found.sort(key=lambda r: r.line)

    # titles: the last title line above a table, with no other table in between
    titles = [
        t
        for i, line in enumerate(lines)
        if not used[i] and len(line) <= _MAX_TITLE_CHARS and (t := title_of(line, i)) is not None
    ]
    notes = []
    scope = []
    for i, line in enumerate(lines):
        if used[i] or len(line) > _MAX_TITLE_CHARS:
            continue
        if NOTE_PATTERNS.search(line):
            notes.append(line.strip())
        if _SCOPE.search(line):
            scope.append(f"line {i + 1}: {line.strip()}")
    tables: list[PastedTable] = []
    k = 0  # titles are in line order, and so are the tables: one pass over both
    for raw in found:
        cands = []
        while k < len(titles) and titles[k].line < raw.line:
            cands.append(titles[k])
            k += 1
        table = build_table(raw, len(tables), _merge_titles(cands))
        if table is not None:
            tables.append(table)
        while k < len(titles) and titles[k].line < raw.end:
            k += 1
    return PastedText(source=source, tables=tables, notes=notes, lines=len(lines), refused=refused, scope=scope)


def _merge_titles(cands: list[Title]) -> Title | None:
    """The closest title above a table; arguments ("base") from an earlier title line of the same report."""
    if not cands:
        return None
    last = cands[-1]
    if not last.args:
        for t in reversed(cands[:-1]):
            if t.report == last.report and t.args:
                return Title(last.line, last.report, last.title, t.args)
    # a "Processing [...]" line followed by its "** Title (report):" line: keep the more descriptive title
    return last
