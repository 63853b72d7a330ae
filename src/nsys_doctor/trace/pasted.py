"""Pasted ``nsys stats`` text -> typed tables: the input layer of ``nsys-doctor explain``.

People paste nsys output into issues, pull requests and chats: whole ``nsys profile --stats=true`` logs, one
report, a few rows of one. This module finds every stats table in such text and reads it back into numbers.

What it understands:

* layouts: ``column`` (header, dashes, rows), ``table`` (``+---+`` box borders), Markdown pipe tables, CSV (also
  ``;`` and tab separated), JSON arrays, and headerless runs of rows (a fragment cut out of a column table);
* every era of headers: ``Time(%)`` and ``Time (%)``, ``Average/Minimum/Maximum`` and ``Avg/Med/Min/Max/StdDev``,
  ``Operations`` and ``Count``, time units from the header (``(ns)``, ``(us)``, ``(ms)``, ``(s)``), byte units
  (``(MB)``, ``(KiB)``, ...) and extra columns (``GridXYZ``, ``BlockXYZ``, kernel-exec statistics);
* numbers as any locale writes them (``1,234.5``, ``1.234,5``, ``1 234,5``, ``1'234.5``): the convention is decided
  per table from all its numbers, never per cell; a column that reads two ways, or none, is marked unreadable;
* the report of each table, from the line before it (``** CUDA GPU Kernel Summary (cuda_gpu_kern_sum):``,
  ``Processing [...] with [.../cuda_gpu_kern_sum.py]``, ``Executing 'gpukernsum' stats report``, the old
  ``CUDA Kernel Statistics:``) or else from its columns and names;
* the noise around tables (prompts, notices, progress lines, ``SKIPPED`` lines, ``...`` where rows were cut).

Every column gets a normalized *role* (``share``, ``total_ns``, ``count``, ``avg_ns``, ``med_ns``, ``min_ns``,
``max_ns``, ``stddev_ns``, ``total_bytes``, ``name``, ``grid``, ...; unknown headers get a slug of their label).
Times are converted to nanoseconds and sizes to bytes with exact decimal arithmetic; every column records how many
decimals the text kept, so callers know the precision. Parsing never raises on odd input and stays linear in the
text's length; ``load_pasted`` refuses text without a table (or whose tables' numbers cannot be read), and the
readers (``read_source``, ``read_stream``, ``decode_text``) refuse traces, binary data, broken encodings and input
over ``MAX_INPUT_BYTES``, all with ``UsageError``.
"""

from __future__ import annotations

import bisect
import csv
import functools
import itertools
import json
import re
from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import IO

from ..errors import UsageError

# --- units ------------------------------------------------------------------------------------------------------

TIME_FACTORS: dict[str, int] = {
    "ns": 1,
    "nsec": 1,
    "nanoseconds": 1,
    "us": 1_000,
    "usec": 1_000,
    "µs": 1_000,
    "μs": 1_000,
    "microseconds": 1_000,
    "ms": 1_000_000,
    "msec": 1_000_000,
    "milliseconds": 1_000_000,
    "s": 1_000_000_000,
    "sec": 1_000_000_000,
    "seconds": 1_000_000_000,
}
BYTE_FACTORS: dict[str, int] = {
    "b": 1,
    "bytes": 1,
    "kb": 1_000,
    "kib": 1_024,
    "mb": 1_000_000,
    "mib": 1_048_576,
    "gb": 1_000_000_000,
    "gib": 1_073_741_824,
}

# --- report names -----------------------------------------------------------------------------------------------

REPORT_ALIASES: dict[str, str] = {
    "gpukernsum": "cuda_gpu_kern_sum",
    "cudaapisum": "cuda_api_sum",
    "gpumemtimesum": "cuda_gpu_mem_time_sum",
    "gpumemsizesum": "cuda_gpu_mem_size_sum",
    "nvtxsum": "nvtx_sum",
    "nvtxppsum": "nvtx_pushpop_sum",
    "nvtxpptrace": "nvtx_pushpop_trace",
    "osrtsum": "osrt_sum",
    "gpusum": "cuda_gpu_sum",
    "gputrace": "cuda_gpu_trace",
    "cudaapitrace": "cuda_api_trace",
    "kernexecsum": "cuda_kern_exec_sum",
    "kernexectrace": "cuda_kern_exec_trace",
}
"""Old (<= ~2022) report names -> current ones."""

REPORT_KINDS: dict[str, str] = {
    "cuda_gpu_kern_sum": "kernels",
    "cuda_gpu_kern_gb_sum": "kernels",
    "cuda_api_sum": "api",
    "cuda_gpu_mem_time_sum": "mem_time",
    "cuda_gpu_mem_size_sum": "mem_size",
    "cuda_kern_exec_sum": "kern_exec",
    "nvtx_sum": "nvtx",
    "nvtx_pushpop_sum": "nvtx",
    "nvtx_startend_sum": "nvtx",
    "osrt_sum": "osrt",
    "cuda_gpu_sum": "gpu_sum",
    "cuda_api_gpu_sum": "gpu_sum",
    "cuda_gpu_trace": "gpu_trace",
    "cuda_memcpy_async": "pageable_copies",
}
"""Report -> the kind of table explain works with; other reports are kind ``other`` (parsed, not interpreted)."""

OTHER_REPORTS = frozenset(
    {
        "nvtx_kern_sum",
        "nvtx_gpu_proj_sum",
        "nvtx_gpu_proj_trace",
        "nvtx_pushpop_trace",
        "nvtx_startend_trace",
        "cuda_api_trace",
        "cuda_kern_exec_trace",
        "cuda_gpu_mem_trace",
        "cuda_api_sync",
        "cuda_memcpy_sync",
        "cuda_memset_sync",
        "gpu_gaps",
        "gpu_time_util",
        "dx12_mem_ops",
        "um_sum",
        "um_total_sum",
        "um_cpu_page_faults_sum",
        "openmp_sum",
        "openacc_sum",
        "syscall_sum",
        "osrt_trace",
        "mpi_event_sum",
        "nccl_sum",
    }
)
"""Other nsys reports and rules: a title naming one of them is trusted over what the columns look like."""

OLD_TITLES: tuple[tuple[str, str], ...] = (
    ("cuda kernel statistics", "cuda_gpu_kern_sum"),
    ("cuda api statistics", "cuda_api_sum"),
    ("cuda memory operation statistics (by time)", "cuda_gpu_mem_time_sum"),
    ("cuda memory operation statistics (by size", "cuda_gpu_mem_size_sum"),
    ("operating system runtime api statistics", "osrt_sum"),
    ("nvtx push-pop range statistics", "nvtx_pushpop_sum"),
    ("nvtx start-end range statistics", "nvtx_startend_sum"),
    ("nvtx range statistics", "nvtx_sum"),
    ("cuda gpu kernel summary", "cuda_gpu_kern_sum"),
    ("cuda gpu kernel/grid/block summary", "cuda_gpu_kern_gb_sum"),
    ("cuda api summary", "cuda_api_sum"),
    ("cuda gpu memops summary (by time)", "cuda_gpu_mem_time_sum"),
    ("cuda gpu memops summary (by size)", "cuda_gpu_mem_size_sum"),
    ("cuda kernel launch & exec time summary", "cuda_kern_exec_sum"),
    ("nvtx range summary", "nvtx_sum"),
    ("os runtime summary", "osrt_sum"),
)
"""Title lines (old ``--stats=true`` headings and current display names) -> report."""

# --- roles ------------------------------------------------------------------------------------------------------

STATS = {
    "avg": "avg",
    "average": "avg",
    "mean": "avg",
    "med": "med",
    "median": "med",
    "min": "min",
    "minimum": "min",
    "max": "max",
    "maximum": "max",
    "stddev": "stddev",
    "std dev": "stddev",
    "stdev": "stddev",
    "std": "stddev",
    "total": "total",
    "total time": "total",
}
COUNTS = {"instances", "num calls", "calls", "count", "operations", "num", "launches"}
TEXT_ROLES = {
    "name": "name",
    "operation": "name",
    "kernel": "name",
    "function": "name",
    "range": "range",
    "nvtx range": "range",
    "kernel name": "kernel_name",
    "api name": "api_name",
    "api function": "api_name",
    "style": "style",
    "category": "category",
    "gridxyz": "grid",
    "blockxyz": "block",
}
NUMBER_ROLES = {"pid": "pid", "tid": "tid", "devid": "device", "device id": "device", "qcount": "q_count"}
SHARE_LABELS = {"time", "time(%)", "time %", "%", "share", "time%"}
_EXEC_STAT = re.compile(r"^([tqak])(avg|med|min|max|stddev)$", re.IGNORECASE)
SUFFIX = {"time": "_ns", "bytes": "_bytes", "throughput": "_bps", "percent": "_pct"}

# --- text patterns ----------------------------------------------------------------------------------------------

_HEAD_UNIT = re.compile(r"^(?P<label>.*?)\s*\((?P<unit>[^()]*)\)\s*$")
_DASHES = re.compile(r"^\s*-{2,}(?:[ \t]+-{2,})+\s*$")
_DASH_RUN = re.compile(r"-+")
_BOX_RULE = re.compile(r"^\s*\+(?:-+\+)+\s*$")
_MD_SEP = re.compile(r"^\s*\|?\s*:?-{3,}:?\s*(?:\|\s*:?-{3,}:?\s*)+\|?\s*$")
_ELLIPSIS = re.compile(
    r"^\s*(?:\.{3,}|…+|⋮|<truncated>|\[(?:\.{3}|…|truncated)\]|\((?:\.{3}|…)\)|\[\s*\d+ more .*\])\s*$"
)
_NUMLIKE = re.compile(
    r"^[+-]?(?:(?:[0-9]{1,3}(?:[,.'\u2019\u00a0\u202f\u2009 _][0-9]{3})+|[0-9]+)(?:[.,][0-9]+)?|[.,][0-9]+)"
    r"(?:[eE][+-]?[0-9]+)?$"
)
_SPACES2 = re.compile(r"\s{2,}")


def _is_numlike(cell: str) -> bool:
    """The cell is written like a number in some convention (which one is decided per table)."""
    return len(cell) <= _MAX_NUMBER_CHARS and bool(_NUMLIKE.match(cell))


_TITLE_STARS = re.compile(r"^\s*\*\*\s*(?P<title>.*?)\s*\((?P<report>[A-Za-z]\w*)\)\s*:?\s*$")
_PROCESSING = re.compile(
    r"Processing\s*\[[^\]]*\]\s*with\s*\[(?P<path>[^\]]*?)(?P<report>[A-Za-z]\w*)\.py\]\s*(?:\((?P<args>[^)]*)\))?"
)
_EXPORTING = re.compile(r"Exporting\s*\[(?P<path>\S*?)(?P<report>[A-Za-z]\w*)\.py\b")
_EXECUTING = re.compile(r"Executing\s+'(?P<report>[A-Za-z]\w*)(?P<args>(?::[^']*)?)'\s+stats report")
_BARE_REPORT = re.compile(
    r"^[\s#*`>]*(?P<report>[a-z][a-z0-9]*(?:_[a-z0-9]+)+|[a-z]+sum)(?P<args>(?::[\w=.-]+)*)[`\s:]*$"
)
_NOTE_PATTERNS = re.compile(
    r"(might have been collected|events? (?:were |was )?(?:dropped|lost)|dropped \d+|data loss|buffer overflow|"
    r"SKIPPED:|WARNING:|Warning:)",
)


@dataclass(frozen=True)
class PastedColumn:
    """One column: its header as written, the label and unit read from it, and its normalized role."""

    header: str
    label: str
    unit: str  # as written in the header ("us", "MB", "%") or inherited ("ns" for an old "Average"); "" if none
    quantity: str  # "time", "bytes", "throughput", "percent", "number", "text"
    role: str
    decimals: int = 0  # the most digits after the decimal separator in this column (the precision the text kept)
    unreadable: str = ""  # why the numbers of this column were not read (its values are all None); "" if read

    @property
    def factor(self) -> int:
        """Multiplier from the shown value to ns (time) or bytes (bytes, throughput); 1 otherwise."""
        if self.quantity == "time":
            return TIME_FACTORS.get(self.unit.lower(), 1)
        if self.quantity in ("bytes", "throughput"):
            return BYTE_FACTORS.get(self.unit.lower().removesuffix("/s"), 1)
        return 1


@dataclass
class PastedTable:
    """One table found in the text, its values normalized (ns, bytes, percent, counts, text)."""

    index: int
    report: str  # nsys report name ("cuda_gpu_kern_sum"), "" when neither a title nor the columns tell
    kind: str  # kernels, api, mem_time, mem_size, kern_exec, nvtx, osrt, gpu_sum, gpu_trace, pageable_copies, other
    title: str  # the title line it was found under ("" if none)
    args: str  # report arguments from the title ("base", "mangled"), if any
    layout: str  # column, table, markdown, csv, json, headerless
    line: int  # 1-based line of its header (or first row)
    end_line: int
    columns: tuple[PastedColumn, ...]
    rows: list[dict[str, object]]  # role -> value
    issues: list[str] = field(default_factory=list)
    partial: bool = False  # rows are missing (cut with "...", unreadable lines, or shares well short of 100%)
    clipped_names: int = 0  # names cut with "…" or "..."
    kind_from: str = ""  # "title" or "columns": how the report/kind was decided

    @property
    def roles(self) -> list[str]:
        return [c.role for c in self.columns]

    def has(self, role: str) -> bool:
        return role in self.roles

    def values(self, role: str) -> list[object]:
        return [r.get(role) for r in self.rows]

    def column(self, role: str) -> PastedColumn | None:
        return next((c for c in self.columns if c.role == role), None)

    @property
    def unreadable(self) -> dict[str, str]:
        """Columns whose numbers could not be read without guessing: header -> why."""
        return {c.header: c.unreadable for c in self.columns if c.unreadable}

    @property
    def readable(self) -> bool:
        """Every numeric column was read (a table with an unreadable column is shown, never interpreted)."""
        return not any(c.unreadable for c in self.columns)

    def describe(self) -> dict[str, object]:
        return {
            "index": self.index,
            "report": self.report,
            "kind": self.kind,
            "kind_from": self.kind_from,
            "title": self.title,
            "args": self.args,
            "layout": self.layout,
            "line": self.line,
            "end_line": self.end_line,
            "rows": len(self.rows),
            "columns": [c.header for c in self.columns],
            "units": {c.role: c.unit for c in self.columns if c.unit},
            "partial": self.partial,
            "readable": self.readable,
            "unreadable_columns": self.unreadable,
            "clipped_names": self.clipped_names,
            "issues": self.issues,
        }


@dataclass
class PastedText:
    """Everything read from one text: the tables and the notices around them."""

    source: str
    tables: list[PastedTable]
    notes: list[str]  # profiler warnings and SKIPPED lines seen in the text
    lines: int
    refused: list[str] = field(default_factory=list)  # rows that look like a table but were not read, and why
    scope: list[str] = field(default_factory=list)  # lines showing the tables cover a window, not the whole run

    @property
    def whole_run(self) -> bool:
        """No sign (a filter or capture-range flag in the text) that the tables cover less than the whole run."""
        return not self.scope

    def of_kind(self, kind: str) -> list[PastedTable]:
        return [t for t in self.tables if t.kind == kind]


# --- numbers ----------------------------------------------------------------------------------------------------
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
_EMPTY_CELLS = frozenset({"", "-", "\u2014", "\u2013", "n/a", "N/A", "--"})
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
            if t in _EMPTY_CELLS:
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
        if t in _EMPTY_CELLS:
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


def _plain(value: Decimal) -> int | float:
    return int(value) if value == value.to_integral_value() else float(value)


# --- columns ----------------------------------------------------------------------------------------------------


def _unit_quantity(unit: str) -> str:
    u = unit.strip().lower()
    if u in TIME_FACTORS:
        return "time"
    if u == "%":
        return "percent"
    if u in BYTE_FACTORS:
        return "bytes"
    if u.endswith("/s") and u[:-2] in BYTE_FACTORS:
        return "throughput"
    return ""


@dataclass
class _Head:
    header: str
    label: str
    unit: str
    quantity: str
    base: str  # role before the unit suffix: "avg", "count", "name", "share", a slug ...
    kind: str  # "num", "text", "grid", "any"


def _head(header: str, index: int) -> _Head:
    h = " ".join(header.split())
    m = _HEAD_UNIT.match(h)
    label, unit = (m.group("label").strip(), m.group("unit").strip()) if m else (h, "")
    quantity = _unit_quantity(unit)
    if unit and not quantity:  # "(by size)" or a unit we do not know: keep it in the label
        label, unit = h, ""
    key = label.lower()
    if (quantity == "percent" and key in SHARE_LABELS) or key in ("%", "time(%)", "time %", "time%"):
        return _Head(header, label, unit or "%", "percent", "share", "num")
    if key in STATS:
        return _Head(header, label, unit, quantity, STATS[key], "num")
    if key == "time" and quantity == "time":
        return _Head(header, label, unit, quantity, "total", "num")
    if key in COUNTS:
        return _Head(header, label, unit, "number", "count", "num")
    m2 = _EXEC_STAT.match(key.replace(" ", ""))
    if m2:
        return _Head(header, label, unit, quantity, f"{m2.group(1).lower()}_{STATS[m2.group(2)]}", "num")
    if key in TEXT_ROLES:
        role = TEXT_ROLES[key]
        return _Head(header, label, unit, "text", role, "grid" if role in ("grid", "block") else "text")
    if key.replace(" ", "") in NUMBER_ROLES:
        return _Head(header, label, unit, "number", NUMBER_ROLES[key.replace(" ", "")], "num")
    slug = re.sub(r"[^a-z0-9]+", "_", key).strip("_") or f"col{index + 1}"
    return _Head(header, label, unit, quantity, slug, "num" if quantity else "any")


def _role(h: _Head) -> str:
    if h.base in ("share", "count") or h.quantity in ("", "number", "text"):
        return h.base
    return h.base + SUFFIX.get(h.quantity, "")


STAT_BASES = {"total", "avg", "med", "min", "max", "stddev"}
INTEGER_BASES = {"count", "pid", "tid", "device", "q_count"}  # nsys prints these as integers, never with decimals
KNOWN_BASES = STAT_BASES | {"share", "count"} | set(TEXT_ROLES.values()) | set(NUMBER_ROLES.values())


def _inherit_units(heads: list[_Head], title: str) -> list[str]:
    """Old headers write the unit once ("Total Time (ns)  ...  Average  Minimum"): give unitless statistics the
    unit of the table (or of its title: "by size in KiB"). Returns notes on what was assumed."""
    notes = []
    unitless = [h for h in heads if (h.base in STAT_BASES or _EXEC_STAT.match(h.base.replace("_", ""))) and not h.unit]
    if not unitless:
        return notes
    known = next((h for h in heads if h.unit and h.quantity in ("time", "bytes") and h.base != "share"), None)
    size = re.search(r"by size(?: in (?P<unit>\w+))?", title, re.IGNORECASE)
    if known is not None:
        unit, quantity = known.unit, known.quantity
    elif size:
        unit, quantity = (size.group("unit") or "MB"), "bytes"
        if not size.group("unit"):
            notes.append("sizes have no unit in the header: MB assumed")
    else:
        unit, quantity = "ns", "time"
        notes.append("times have no unit in the header: nanoseconds assumed")
    for h in unitless:
        h.unit, h.quantity = unit, quantity
    return notes


# --- titles -----------------------------------------------------------------------------------------------------


@dataclass
class _Title:
    line: int
    report: str
    title: str
    args: str


def canonical_report(name: str) -> str:
    """Current nsys name of a report: old names mapped, ``_base``/``_mangled`` (file names) dropped."""
    n = name.strip().lower()
    n = REPORT_ALIASES.get(n, n)
    for suffix in ("_base", "_mangled"):
        if n.endswith(suffix) and n.removesuffix(suffix) in REPORT_KINDS:
            return n.removesuffix(suffix)
    return n


_TITLE_HINT = re.compile(r"\*\*|processing|exporting|executing|statistic|summary|_|sum", re.IGNORECASE)


def _title_of(line: str, lineno: int) -> _Title | None:
    if not _TITLE_HINT.search(line):  # most lines: no pattern below can match
        return None
    m = _TITLE_STARS.match(line)
    if m:
        return _Title(lineno, canonical_report(m.group("report")), line.strip(), "")
    m = _PROCESSING.search(line)
    if m:
        return _Title(lineno, canonical_report(m.group("report")), line.strip(), (m.group("args") or "").strip())
    m = _EXPORTING.search(line)
    if m:
        return _Title(lineno, canonical_report(m.group("report")), line.strip(), "")
    m = _EXECUTING.search(line)
    if m:
        return _Title(lineno, canonical_report(m.group("report")), line.strip(), m.group("args").lstrip(":"))
    low = line.strip().lower().lstrip("#*> ").rstrip(": ")
    for prefix, report in OLD_TITLES:
        if low.startswith(prefix) and len(low) <= len(prefix) + 20:
            return _Title(lineno, report, line.strip(), "")
    m = _BARE_REPORT.match(line)
    if m:
        report = canonical_report(m.group("report"))
        if report in REPORT_KINDS or report in REPORT_ALIASES.values():
            return _Title(lineno, report, line.strip(), m.group("args").lstrip(":"))
    return None


# --- layouts ----------------------------------------------------------------------------------------------------


@dataclass
class _Raw:
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
    return bool(_ELLIPSIS.match(line))


def _slices(spans: list[tuple[int, int]]) -> list[slice]:
    """Cell slices of a column table: each span widened by one character (rows shifted by one still read), the
    last one open to the end of the line (long names)."""
    last = len(spans) - 1
    return [slice(max(0, s - 1), e + 1 if i < last else None) for i, (s, e) in enumerate(spans)]


def _cells_by_spans(line: str, spans: list[tuple[int, int]] | list[slice]) -> list[str]:
    cuts = spans if spans and isinstance(spans[0], slice) else _slices(spans)  # type: ignore[arg-type]
    return [line[c].strip() for c in cuts]  # type: ignore[index]


def _valid(cells: list[str], kinds: list[str]) -> bool:
    for cell, kind in zip(cells, kinds, strict=True):
        if kind == "num" and cell and not _is_numlike(cell) and cell not in _EMPTY_CELLS:
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
    if not _is_numlike(cell) and cell not in _EMPTY_CELLS:
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
    labels = _SPACES2.split(header.strip())
    if len(labels) == len(spans):
        return labels
    # labels do not split cleanly: give each token to the span it overlaps most
    parts: list[list[str]] = [[] for _ in spans]
    for m in re.finditer(r"\S+(?: \S+)*", header):
        best = max(range(len(spans)), key=lambda i: min(m.end(), spans[i][1]) - max(m.start(), spans[i][0]))
        parts[best].append(m.group(0))
    return [" ".join(p) for p in parts]


def _column_table(lines: list[str], dash: int) -> _Raw | None:
    """Header line, a line of dashes, rows until a blank line or a line that is not a row."""
    if dash == 0 or not lines[dash - 1].strip() or not re.search(r"[A-Za-z%]", lines[dash - 1]):
        return None
    header = lines[dash - 1].expandtabs()
    spans = [(m.start(), m.end()) for m in _DASH_RUN.finditer(lines[dash].expandtabs())]
    if len(spans) > MAX_COLUMNS:
        return None
    labels = _header_labels(header, spans)
    kinds = [_head(h, i).kind for i, h in enumerate(labels)]
    raw = _Raw("column", dash - 1, dash + 1, labels, [])
    cuts = _slices(spans)
    i = dash + 1
    bad = 0
    while i < len(lines):
        line = lines[i].expandtabs().rstrip("\n")
        if not line.strip():
            break
        if _is_ellipsis(line):
            raw.partial = True
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
    if _valid(_cells_by_spans(line, spans), kinds):
        return True
    alt = _cells_by_tokens(line, kinds)
    return alt is not None and _valid(alt, kinds)


def _box_table(lines: list[str], rule: int) -> _Raw | None:
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
    raw = _Raw("table", rule + 1, rule + 2, headers, [])
    i = rule + 2
    if i < len(lines) and _BOX_RULE.match(lines[i]):
        i += 1
    while i < len(lines):
        line = lines[i]
        if _BOX_RULE.match(line):
            i += 1
            break
        if not line.strip():
            break
        if _is_ellipsis(line):
            raw.partial = True
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


def _md_cells(line: str) -> list[str]:
    t = line.strip()
    if t.startswith("|"):
        t = t[1:]
    if t.endswith("|") and not t.endswith("\\|"):
        t = t[:-1]
    parts = re.split(r"(?<!\\)\|", t)
    return [p.strip().replace("\\|", "|").strip("`").strip() for p in parts]


def _markdown_table(lines: list[str], sep: int) -> _Raw | None:
    if sep == 0 or "|" not in lines[sep - 1]:
        return None
    headers = _md_cells(lines[sep - 1])
    raw = _Raw("markdown", sep - 1, sep + 1, headers, [])
    i = sep + 1
    while i < len(lines) and "|" in lines[i] and lines[i].strip():
        cells = _md_cells(lines[i])
        if len(cells) == len(headers):
            raw.rows.append([re.sub(r"^\*\*(.*)\*\*$", r"\1", c) for c in cells])
        else:
            raw.issues.append(f"line {i + 1}: {len(cells)} cells for {len(headers)} columns, skipped")
            raw.partial = True
        i += 1
    raw.end = i
    return raw


def _known_headers(headers: list[str]) -> int:
    """How many headers look like nsys stats headers (a known label or a unit in parentheses)."""
    n = 0
    for i, h in enumerate(headers):
        hd = _head(h, i)
        if hd.unit or hd.base in KNOWN_BASES or hd.base.startswith(("t_", "k_", "q_", "a_")):
            n += 1
    return n


def _csv_fields(line: str, delimiter: str) -> list[str]:
    try:
        return next(csv.reader([line], delimiter=delimiter))
    except (csv.Error, StopIteration):
        return []


def _csv_table(lines: list[str], start: int) -> _Raw | None:
    line = lines[start].strip()
    if not line:
        return None
    for delimiter in (",", ";", "\t"):
        if line.count(delimiter) < 1:
            continue
        headers = _csv_fields(line, delimiter)
        if len(headers) < 2 or _known_headers(headers) < 2 or any(not h.strip() for h in headers):
            continue
        raw = _Raw("csv", start, start + 1, [h.strip() for h in headers], [], fixed_decimal=".")
        i = start + 1
        while i < len(lines) and lines[i].strip():
            if _is_ellipsis(lines[i]):
                raw.partial = True
                i += 1
                continue
            cells = _csv_fields(lines[i].rstrip("\r\n"), delimiter)
            if len(cells) != len(headers):
                break  # another shape
            if not any(_NUMLIKE.match(c.strip()) for c in cells) and _known_headers(cells) >= 2:
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


def _json_table(text: str, lines: list[str], start: int, offsets: list[int]) -> _Raw | None:
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
    if _known_headers(headers) < 2:
        return None
    end_line = bisect.bisect_left(offsets, end)
    raw = _Raw("json", start, max(end_line, start + 1), headers, [], issues=issues, fixed_decimal=".")
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


def _headerless(lines: list[str], start: int, used: list[bool], refused: list[str]) -> _Raw | None:
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
    raw = _Raw("headerless", start, i, headers, rows, partial=True)
    raw.issues.append(f"rows without their header: read as the nsys column order ({', '.join(headers)}) in nanoseconds")
    return raw


# --- building typed tables --------------------------------------------------------------------------------------

_API_NAME = re.compile(r"^(?:cuda|cu|nccl|cublas|cudnn|cusparse|nvtx)[A-Z_]\w*$")
_MEM_NAME = re.compile(r"^\[CUDA (?:Unified Memory )?mem(?:cpy|set)", re.IGNORECASE)
_OSRT_NAMES = {
    "poll",
    "ioctl",
    "sem_wait",
    "sem_timedwait",
    "pthread_cond_wait",
    "pthread_cond_timedwait",
    "pthread_create",
    "pthread_mutex_lock",
    "read",
    "write",
    "open",
    "open64",
    "mmap",
    "mmap64",
    "munmap",
    "fopen",
    "fclose",
    "epoll_wait",
    "nanosleep",
    "usleep",
    "select",
    "recvmsg",
    "sendmsg",
    "futex",
}


def _kind_from_columns(roles: set[str], names: list[str]) -> tuple[str, str]:
    """(kind, report) guessed from the columns and the names in them."""
    if {"srcmemkd", "dstmemkd"} & roles or {"grdx", "blkx"} <= roles:
        return "gpu_trace", "cuda_gpu_trace"
    if {"t_avg_ns", "k_avg_ns"} & roles or "q_count" in roles:
        return "kern_exec", "cuda_kern_exec_sum"
    if "total_bytes" in roles:
        return "mem_size", "cuda_gpu_mem_size_sum"
    if "category" in roles and "total_ns" in roles:
        return "gpu_sum", "cuda_gpu_sum"
    if "style" in roles and "total_ns" in roles and "range" not in roles:  # nvtx_kern_sum has range and name
        return "nvtx", "nvtx_sum"
    if "grid" in roles and ("total_ns" in roles or "share" in roles):
        return "kernels", "cuda_gpu_kern_gb_sum"
    if "name" not in roles or not ({"total_ns", "share", "count"} & roles):
        return "other", ""
    clean = [n for n in names if n]
    if not clean:
        return "kernels", "cuda_gpu_kern_sum"
    mem = sum(bool(_MEM_NAME.match(n)) for n in clean) / len(clean)
    api = sum(bool(_API_NAME.match(n)) for n in clean) / len(clean)
    osrt = sum(n in _OSRT_NAMES for n in clean) / len(clean)
    if mem >= 0.5:
        return "mem_time", "cuda_gpu_mem_time_sum"
    if api >= 0.6:
        return "api", "cuda_api_sum"
    if osrt >= 0.3:
        return "osrt", "osrt_sum"
    return "kernels", "cuda_gpu_kern_sum"


def _build(raw: _Raw, index: int, title: _Title | None) -> PastedTable | None:
    heads = [_head(h, i) for i, h in enumerate(raw.headers)]
    issues = list(raw.issues)
    issues += _inherit_units(heads, title.title if title else "")
    n = len(heads)
    rows_text: list[list[str]] = []
    if raw.json_rows is not None:
        for obj in raw.json_rows:
            rows_text.append(["" if obj.get(h) is None else _json_cell(obj.get(h)) for h in raw.headers])
    else:
        for r in raw.rows:
            rows_text.append((r + [""] * n)[:n])
    # columns whose kind was unknown: numeric when every non-empty cell is a number
    for j, h in enumerate(heads):
        if h.kind == "any":
            cells = [r[j] for r in rows_text if r[j].strip()]
            if cells and all(_is_numlike(c.strip()) for c in cells):
                h.kind, h.quantity = "num", h.quantity or "number"
            else:
                h.kind, h.quantity = "text", "text"
    roles: list[str] = []
    for h in heads:
        role = _role(h)
        while role in roles:
            role += "_2"
        roles.append(role)
    # no "name" column: the kernel name (exec, NVTX kernel summary) or the range (NVTX summary) is the name
    if "name" not in roles:
        for alt in ("kernel_name", "range", "api_name"):
            if alt in roles:
                roles[roles.index(alt)] = "name"
                break
    # numbers: cells that are not numbers at all are read as empty; the rest are read with one convention
    bad_cells = 0
    number_cells: dict[int, list[str]] = {}
    for j, h in enumerate(heads):
        if h.kind == "num":
            cells = []
            for r in rows_text:
                t = r[j].strip()
                if t and t not in _EMPTY_CELLS and not _is_numlike(t):
                    bad_cells += 1
                    t = ""
                cells.append(t)
            number_cells[j] = cells
    integers = frozenset(
        j
        for j, h in enumerate(heads)
        if h.base in INTEGER_BASES
        or (h.quantity == "time" and h.unit.lower() == "ns" and h.base in ("total", "min", "max"))
    )  # counts, and totals/extremes of integer nanoseconds: nsys prints them without decimals
    numbers = resolve_numbers(number_cells, [h.header for h in heads], raw.fixed_decimal, integers)
    decimals = [0] * n
    columns_values: list[list[object]] = []
    for j, h in enumerate(heads):
        cells = [r[j] for r in rows_text]
        if h.kind != "num":
            if h.kind == "grid":
                columns_values.append([" ".join(c.split()) for c in cells])
            else:
                columns_values.append([c.strip() for c in cells])
            continue
        col = numbers.columns.get(j)
        if col is None:  # unreadable: no value rather than a wrong one
            columns_values.append([None] * len(cells))
            continue
        decimals[j] = col.decimals
        factor = TIME_FACTORS.get(h.unit.lower(), 1) if h.quantity == "time" else 1
        if h.quantity in ("bytes", "throughput"):
            factor = BYTE_FACTORS.get(h.unit.lower().removesuffix("/s"), 1)
        share = h.base == "share"
        seen: dict[Decimal, object] = {}  # values repeat a lot (counts, grid sizes, durations): convert each once
        out: list[object] = []
        for number in col.values:
            if number is None:
                out.append(None)
                continue
            value = seen.get(number)
            if value is None:
                value = seen[number] = float(number) if share else _plain(number * factor)
            out.append(value)
        columns_values.append(out)
    rows: list[dict[str, object]] = [dict(zip(roles, vals, strict=True)) for vals in zip(*columns_values, strict=True)]
    partial = raw.partial
    if bad_cells:
        issues.append(f"{bad_cells} cells are not numbers where numbers belong; read as empty")
        partial = True
    for j, why in sorted(numbers.unreadable.items()):
        issues.append(f"column {heads[j].header!r} not read: {why}")
    columns = tuple(
        PastedColumn(
            h.header,
            h.label,
            h.unit,
            h.quantity or ("text" if h.kind == "text" else "number"),
            roles[j],
            decimals[j],
            numbers.unreadable.get(j, ""),
        )
        for j, h in enumerate(heads)
    )
    if not rows:
        return None
    names = [str(r.get("name") or "") for r in rows]
    kind_cols, report_cols = _kind_from_columns(set(roles), names)
    known = title is not None and (title.report in REPORT_KINDS or title.report in OTHER_REPORTS)
    if title is not None and title.report and (known or kind_cols == "other"):
        report = title.report
        kind = REPORT_KINDS.get(report, "other")
        kind_from = "title"
        if kind == "kernels" and kind_cols in ("api", "mem_time", "mem_size", "kern_exec"):
            issues.append(f"the title says {report} but the columns and names read as {report_cols}")
            kind, report, kind_from = kind_cols, report_cols, "columns"
        if report == "cuda_gpu_kern_sum" and "grid" in roles:
            report = "cuda_gpu_kern_gb_sum"  # 2021-2022 gpukernsum grouped by launch shape
    else:
        kind, report, kind_from = kind_cols, report_cols, "columns"
    clipped = sum(1 for nm in names if nm.endswith(("…", "...")))
    table = PastedTable(
        index=index,
        report=report,
        kind=kind,
        title=title.title if title else "",
        args=title.args if title else "",
        layout=raw.layout,
        line=raw.line + 1,
        end_line=raw.end,
        columns=columns,
        rows=rows,
        issues=issues,
        partial=partial,
        clipped_names=clipped,
        kind_from=kind_from,
    )
    share_col = table.column("share")
    if share_col is not None and not share_col.unreadable and kind in _SHARE_KINDS:
        total_share = sum(float(v) for v in table.values("share") if isinstance(v, int | float))
        slack = 0.5 + 0.05 * len(rows)  # each share is rounded to 0.1
        if total_share < 100 - slack:
            table.partial = True
            issues.append(f"the shares add up to {total_share:.1f}%: rows are missing from the paste")
    if clipped:
        what = "1 name is" if clipped == 1 else f"{clipped} names are"
        issues.append(f"{what} cut short (… or ...): the operation is read from the visible part")
    return table


_SHARE_KINDS = ("kernels", "api", "mem_time", "osrt", "nvtx", "gpu_sum")


def _json_cell(value: object) -> str:
    if isinstance(value, Decimal):
        return format(value, "f")
    if isinstance(value, bool):
        return str(value).lower()
    return str(value)


# --- the scan ---------------------------------------------------------------------------------------------------

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
    found: list[_Raw] = []

    def take(raw: _Raw | None) -> bool:
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
                take(_json_table(text, lines, i, offsets))
    for i, line in enumerate(lines):
        if not used[i] and _BOX_RULE.match(line):
            take(_box_table(lines, i))
    for i, line in enumerate(lines):
        if not used[i] and _DASHES.match(line.expandtabs()) and i > 0 and not used[i - 1]:
            take(_column_table(lines, i))
    for i, line in enumerate(lines):
        if (
            not used[i]
            and _MD_SEP.match(line)
            and i > 0
            and not used[i - 1]
            and "|" in lines[i - 1]
            and _known_headers(_md_cells(lines[i - 1])) >= 2  # before reading rows: keeps the scan linear
        ):
            take(_markdown_table(lines, i))
    for i, line in enumerate(lines):
        if not used[i] and ("," in line or ";" in line or "\t" in line):
            take(_csv_table(lines, i))
    refused: list[str] = []
    for i, _line in enumerate(lines):
        if not used[i]:
            take(_headerless(lines, i, used, refused))
    found.sort(key=lambda r: r.line)

    # titles: the last title line above a table, with no other table in between
    titles = [
        t
        for i, line in enumerate(lines)
        if not used[i] and len(line) <= _MAX_TITLE_CHARS and (t := _title_of(line, i)) is not None
    ]
    notes = []
    scope = []
    for i, line in enumerate(lines):
        if used[i] or len(line) > _MAX_TITLE_CHARS:
            continue
        if _NOTE_PATTERNS.search(line):
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
        table = _build(raw, len(tables), _merge_titles(cands))
        if table is not None:
            tables.append(table)
        while k < len(titles) and titles[k].line < raw.end:
            k += 1
    return PastedText(source=source, tables=tables, notes=notes, lines=len(lines), refused=refused, scope=scope)


def _merge_titles(cands: list[_Title]) -> _Title | None:
    """The closest title above a table; arguments ("base") from an earlier title line of the same report."""
    if not cands:
        return None
    last = cands[-1]
    if not last.args:
        for t in reversed(cands[:-1]):
            if t.report == last.report and t.args:
                return _Title(last.line, last.report, last.title, t.args)
    # a "Processing [...]" line followed by its "** Title (report):" line: keep the more descriptive title
    return last


# --- reading ----------------------------------------------------------------------------------------------------


MAX_INPUT_BYTES = 64 * 1024 * 1024
"""The most text explain reads: a whole ``nsys profile --stats=true`` log is a few MB; more is not a paste."""
_CHUNK = 1024 * 1024
SQLITE_MAGIC = b"SQLite format 3\x00"
TRACE_SUFFIXES = (".nsys-rep", ".qdrep", ".qdstrm")
_TEXT_HINT = "pass a text file with pasted nsys stats output, or - for standard input"
_BOMS = (
    (b"\xff\xfe\x00\x00", "utf-32"),
    (b"\x00\x00\xfe\xff", "utf-32"),
    (b"\xff\xfe", "utf-16"),
    (b"\xfe\xff", "utf-16"),
)
_CONTROL = re.compile(r"[\x00-\x08\x0e-\x1a\x1c-\x1f\x7f-\x9f]")
_UTF8_MULTIBYTE = re.compile(rb"[\xc2-\xf4][\x80-\xbf]")


def _trace_error(label: str, what: str) -> UsageError:
    path = label if label != "standard input" else "TRACE"
    return UsageError(
        f"{label} is {what}, not pasted text",
        f"run `nsys-doctor report {path}` for the full report (explain reads the text output of `nsys stats`)",
    )


def _bom(data: bytes) -> str | None:
    return next((enc for bom, enc in _BOMS if data.startswith(bom)), None)


def _refuse_binary(data: bytes, label: str) -> None:
    """``UsageError`` for bytes that are a trace or binary data rather than text (``data`` holds NUL bytes)."""
    if data.startswith(SQLITE_MAGIC):
        raise _trace_error(label, "an SQLite database (an nsys trace export)")
    head = data[:4096]
    odd, even = head[1::2], head[0::2]
    if len(head) >= 16 and odd.count(0) >= 0.4 * len(odd) and even.count(0) < 0.1 * len(even):
        raise UsageError(
            f"{label} looks like UTF-16 text without a byte-order mark",
            "convert it to UTF-8 (iconv -f UTF-16LE -t UTF-8 FILE > FILE.txt) and pass that",
        )
    raise UsageError(f"{label} is binary data (it contains NUL bytes), not text", _TEXT_HINT)


def read_stream(stream: IO[bytes] | IO[str], label: str, limit: int = MAX_INPUT_BYTES) -> bytes:
    """The bytes of a stream, read in chunks up to ``limit``: ``UsageError`` when it holds more (an endless stream
    stops there), when it is binary (NUL bytes, stopping at the first chunk that has one) or cannot be read."""
    buf = bytearray()
    text_encoding: str | None = None
    while True:
        try:
            chunk = stream.read(min(_CHUNK, limit + 1 - len(buf)))
        except (OSError, ValueError) as exc:  # ValueError: a closed file
            reason = getattr(exc, "strerror", None) or str(exc) or type(exc).__name__
            raise UsageError(f"cannot read {label}: {reason}", _TEXT_HINT) from exc
        if not chunk:
            break
        if isinstance(chunk, str):
            chunk = chunk.encode("utf-8", "surrogateescape")
        if text_encoding is None and len(buf) + len(chunk) >= 4:
            text_encoding = _bom(bytes(buf[:4]) + chunk[:4]) or ""
        if not text_encoding and b"\x00" in chunk:
            _refuse_binary(bytes(buf[:4096]) + chunk[:4096], label)
        buf += chunk
        if len(buf) > limit:
            size = f"{limit // (1024 * 1024)} MiB" if limit % (1024 * 1024) == 0 else f"{limit:,} bytes"
            raise UsageError(
                f"{label} is larger than {size}: too big for pasted nsys stats output",
                "pass only the nsys stats tables (a whole `nsys profile --stats=true` log is a few MB), or run "
                "`nsys-doctor report TRACE` on the trace itself",
            )
    return bytes(buf)


def decode_text(data: bytes, label: str = "the input") -> str:
    """Text from bytes as pasted files come: UTF-8, UTF-16 or UTF-32 with a byte-order mark (PowerShell's ``>``
    writes UTF-16), else a legacy 8-bit encoding (Windows-1252). Traces, binary data and broken UTF-8 are refused
    with ``UsageError``."""
    enc = _bom(data)
    if enc is not None:
        try:
            text = data.decode(enc)
        except UnicodeDecodeError as exc:
            raise UsageError(
                f"{label} starts with a {enc.upper()} byte-order mark but is not valid {enc.upper()} "
                f"(at byte {exc.start})",
                "save the text as UTF-8 and pass that",
            ) from exc
        if "\x00" in text:
            raise UsageError(f"{label} is binary data (it contains NUL characters), not text", _TEXT_HINT)
    else:
        if b"\x00" in data:
            _refuse_binary(data, label)
        try:
            text = data.decode("utf-8-sig")
        except UnicodeDecodeError as exc:
            if _UTF8_MULTIBYTE.search(data):  # UTF-8 with broken bytes: reading it another way would garble it
                raise UsageError(
                    f"{label} is not valid UTF-8 (byte 0x{data[exc.start]:02x} at offset {exc.start})",
                    "save the text as UTF-8 (or copy it again from the terminal) and pass that",
                ) from exc
            text = data.decode("cp1252", errors="strict") if _cp1252_ok(data) else data.decode("latin-1")
    sample = text[: 1 << 20]
    controls = len(_CONTROL.findall(sample))
    if controls > 8 and controls > 0.01 * len(sample):
        raise UsageError(f"{label} is binary data (control characters), not text", _TEXT_HINT)
    return text


def _cp1252_ok(data: bytes) -> bool:
    try:
        data.decode("cp1252")
    except UnicodeDecodeError:
        return False
    return True


def read_source(path: str | Path, limit: int = MAX_INPUT_BYTES) -> tuple[str, str]:
    """(text, source label) of a file; ``UsageError`` naming the file when it cannot be read, is a trace or binary
    data, or is larger than ``limit``."""
    p = Path(path)
    label = str(p)
    if p.name.lower().endswith(TRACE_SUFFIXES) and p.exists():
        raise _trace_error(label, "an Nsight Systems report")
    try:
        with open(p, "rb") as f:  # a plain file object: FIFOs and devices are read in chunks too
            data = read_stream(f, label, limit)
    except IsADirectoryError as exc:
        raise UsageError(f"{p} is a directory", _TEXT_HINT) from exc
    except OSError as exc:
        raise UsageError(f"cannot read {p}: {exc.strerror or exc}", _TEXT_HINT) from exc
    return decode_text(data, label), label


def load_pasted(text: str, source: str) -> PastedText:
    """``parse_pasted``, refusing text in which no table was found, or whose tables' numbers cannot be read."""
    parsed = parse_pasted(text, source)
    if not parsed.tables:
        n = len(text.strip().splitlines())
        what = "is empty" if not n else f"has {n} line{'s' if n != 1 else ''} but no table"
        if parsed.refused:
            what += f"; {parsed.refused[0]}"
        raise UsageError(
            f"no nsys stats table found in {source} (it {what})",
            "paste the output of `nsys stats REPORT.nsys-rep` (or `nsys profile --stats=true`), e.g. "
            "nsys stats -r cuda_gpu_kern_sum,cuda_api_sum,cuda_gpu_mem_time_sum REPORT.nsys-rep",
        )
    if not any(t.readable for t in parsed.tables):
        t = parsed.tables[0]
        header, why = next(iter(t.unreadable.items()))
        raise UsageError(
            f"cannot read the numbers of the {t.report or 'pasted'} table at line {t.line} of {source}: "
            f"column {header!r}: {why}",
            "paste the table as nsys prints it in the C locale (LC_ALL=C nsys stats ...) or as CSV "
            "(nsys stats --format csv ...)",
        )
    return parsed
