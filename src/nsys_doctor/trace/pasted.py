"""Pasted ``nsys stats`` text -> typed tables: the input layer of ``nsys-doctor explain``.

People paste nsys output into issues, pull requests and chats: whole ``nsys profile --stats=true`` logs, one
report, a few rows of one. This module finds every stats table in such text and reads it back into numbers.

What it understands:

* layouts: ``column`` (header, dashes, rows), ``table`` (``+---+`` box borders), Markdown pipe tables, CSV (also
  ``;`` and tab separated), JSON arrays, and headerless runs of rows (a fragment cut out of a column table);
* every era of headers: ``Time(%)`` and ``Time (%)``, ``Average/Minimum/Maximum`` and ``Avg/Med/Min/Max/StdDev``,
  ``Operations`` and ``Count``, time units from the header (``(ns)``, ``(us)``, ``(ms)``, ``(s)``), byte units
  (``(MB)``, ``(KiB)``, ...) and extra columns (``GridXYZ``, ``BlockXYZ``, kernel-exec statistics);
* numbers with or without thousands separators, with a decimal comma and dot, space or apostrophe separators;
* the report of each table, from the line before it (``** CUDA GPU Kernel Summary (cuda_gpu_kern_sum):``,
  ``Processing [...] with [.../cuda_gpu_kern_sum.py]``, ``Executing 'gpukernsum' stats report``, the old
  ``CUDA Kernel Statistics:``) or else from its columns and names;
* the noise around tables (prompts, notices, progress lines, ``SKIPPED`` lines, ``...`` where rows were cut).

Every column gets a normalized *role* (``share``, ``total_ns``, ``count``, ``avg_ns``, ``med_ns``, ``min_ns``,
``max_ns``, ``stddev_ns``, ``total_bytes``, ``name``, ``grid``, ...; unknown headers get a slug of their label).
Times are converted to nanoseconds and sizes to bytes with exact decimal arithmetic; every column records how many
decimals the text kept, so callers know the precision. Nothing here raises on odd input except ``load_pasted``,
which refuses text without any table.
"""

from __future__ import annotations

import csv
import itertools
import json
import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation
from pathlib import Path

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
    r"^[+-]?(?:(?:\d{1,3}(?:[,.'\u00a0\u202f\u2009 _]\d{3})+|\d+)(?:[.,]\d+)?|[.,]\d+)(?:[eE][+-]?\d+)?$"
)
_SPACES2 = re.compile(r"\s{2,}")
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
_HEADERLESS = re.compile(r"^\s*(?P<nums>(?:[+-]?\d[\d,.]*[ \t]+){6,8})(?P<name>\S.*?)\s*$")


@dataclass(frozen=True)
class PastedColumn:
    """One column: its header as written, the label and unit read from it, and its normalized role."""

    header: str
    label: str
    unit: str  # as written in the header ("us", "MB", "%") or inherited ("ns" for an old "Average"); "" if none
    quantity: str  # "time", "bytes", "throughput", "percent", "number", "text"
    role: str
    decimals: int = 0  # the most digits after the decimal separator in this column (the precision the text kept)

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

    def of_kind(self, kind: str) -> list[PastedTable]:
        return [t for t in self.tables if t.kind == kind]


# --- numbers ----------------------------------------------------------------------------------------------------

_SEPARATOR_SPACES = str.maketrans("", "", " \u00a0\u202f\u2009'_")


def detect_decimal(cells: Iterable[str]) -> str:
    """The decimal separator of a table: ',' when its numbers are written with a decimal comma, else '.'."""
    comma = dot = 0
    for raw in cells:
        if abs(comma - dot) >= 40:
            break  # decided: no need to read a long table to the end
        t = raw.strip()
        if not t or t.isdigit() or not _NUMLIKE.match(t):
            continue
        has_c, has_d = "," in t, "." in t
        if has_c and has_d:
            if t.rfind(",") > t.rfind("."):
                comma += 2
            else:
                dot += 2
        elif has_c:
            if t.count(",") > 1:
                dot += 1  # 1,234,567: thousands
            elif len(t.rsplit(",", 1)[1]) != 3:
                comma += 2  # 22,0 or 0,25: a decimal comma
        elif has_d:
            if t.count(".") > 1:
                comma += 1  # 1.234.567: thousands dots
            elif len(t.rsplit(".", 1)[1]) != 3:
                dot += 2
        elif any(ch in t for ch in " \u00a0\u202f"):
            comma += 1  # 1 234 567: space-grouped, the style of decimal-comma locales
    return "," if comma > dot else "."


def parse_number(text: str, decimal: str = ".") -> Decimal | None:
    """A shown number as an exact Decimal (``None`` for an empty cell); raises ValueError if it is not a number."""
    t = text.strip()
    if t in ("", "-", "—", "–", "n/a", "N/A", "--"):
        return None
    if not _NUMLIKE.match(t):
        raise ValueError(f"not a number: {text!r}")
    t = t.translate(_SEPARATOR_SPACES)
    t = t.replace(".", "").replace(",", ".") if decimal == "," else t.replace(",", "")
    try:
        return Decimal(t)
    except InvalidOperation as exc:
        raise ValueError(f"not a number: {text!r}") from exc


def _decimals(text: str, decimal: str) -> int:
    t = text.strip().split("e")[0].split("E")[0]
    if decimal in t:
        return len(t.rsplit(decimal, 1)[1])
    return 0


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


def _title_of(line: str, lineno: int) -> _Title | None:
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
        if kind == "num" and cell and not _NUMLIKE.match(cell):
            return False
        if kind == "grid" and cell and not re.fullmatch(r"[\d\s]+", cell):
            return False
    return any(cells)


def _cells_by_tokens(line: str, kinds: list[str]) -> list[str] | None:
    """Fallback for a row whose alignment was lost: numbers take one token, grids three, text columns one, and
    the last column the rest of the line."""
    tokens = line.split()
    out: list[str] = []
    pos = 0
    for i, kind in enumerate(kinds):
        last = i == len(kinds) - 1
        if last:
            if kind == "num" and len(tokens) - pos == 1 and _NUMLIKE.match(tokens[pos]):
                out.append(tokens[pos])
                pos += 1
            else:
                out.append(" ".join(tokens[pos:]))
                pos = len(tokens)
            break
        if kind == "grid":
            part = tokens[pos : pos + 3]
            if len(part) < 3 or not all(p.isdigit() for p in part):
                return None
            out.append(" ".join(part))
            pos += 3
            continue
        if pos >= len(tokens):
            return None
        if kind == "num" and not _NUMLIKE.match(tokens[pos]):
            return None
        out.append(tokens[pos])
        pos += 1
    return out if pos == len(tokens) and len(out) == len(kinds) else None


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


def _json_table(text: str, lines: list[str], start: int, offsets: list[int]) -> _Raw | None:
    pos = offsets[start] + lines[start].index("[")
    decoder = json.JSONDecoder(parse_float=Decimal)
    issues: list[str] = []
    try:
        value, end = decoder.raw_decode(text, pos)
    except json.JSONDecodeError:
        # nsys does not escape quotes inside names, and pastes get cut: read the objects one by one
        value, end = [], pos + 1
        for m in re.compile(r"\{[^{}]*\}").finditer(text, pos):
            if value and "]" in text[end : m.start()]:
                break  # the array ended before this object
            try:
                value.append(decoder.decode(m.group(0)))
            except json.JSONDecodeError:
                issues.append(f"a JSON object could not be read, skipped: {m.group(0)[:60]!r}")
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
    end_line = next((i for i, off in enumerate(offsets) if off >= end), len(lines))
    raw = _Raw("json", start, max(end_line, start + 1), headers, [], issues=issues, fixed_decimal=".")
    raw.json_rows = value
    raw.partial = bool(issues)
    return raw


HEADERLESS_COLUMNS = {
    8: ("Time (%)", "Total Time (ns)", "Count", "Avg (ns)", "Med (ns)", "Min (ns)", "Max (ns)", "StdDev (ns)"),
    7: ("Time (%)", "Total Time (ns)", "Count", "Average (ns)", "Minimum (ns)", "Maximum (ns)", "StdDev (ns)"),
    6: ("Time (%)", "Total Time (ns)", "Count", "Average (ns)", "Minimum (ns)", "Maximum (ns)"),
}


def _headerless(lines: list[str], start: int, used: list[bool]) -> _Raw | None:
    """Rows cut out of a column table without their header: 6, 7 or 8 numbers and a name."""
    rows: list[list[str]] = []
    width = 0
    i = start
    while i < len(lines) and not used[i]:
        if _is_ellipsis(lines[i]) and rows:
            i += 1
            continue
        m = _HEADERLESS.match(lines[i])
        if not m:
            break
        nums = m.group("nums").split()
        if width and len(nums) != width:
            break
        try:
            decimal = detect_decimal(nums)
            share = parse_number(nums[0], decimal) or Decimal(0)
            lo_i, hi_i = (-3, -2) if len(nums) >= 7 else (-2, -1)
            lo, hi = parse_number(nums[lo_i], decimal), parse_number(nums[hi_i], decimal)
        except ValueError:
            break
        if width == 0 and not (Decimal(0) <= share <= 100 and (lo is None or hi is None or lo <= hi)):
            break
        width = len(nums)
        rows.append([*nums, m.group("name")])
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
            if cells and all(_NUMLIKE.match(c.strip()) for c in cells):
                h.kind, h.quantity = "num", h.quantity or "number"
            else:
                h.kind, h.quantity = "text", "text"
    decimal = raw.fixed_decimal or detect_decimal(
        r[j] for r in rows_text for j, h in enumerate(heads) if h.kind == "num"
    )
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
    decimals = [0] * n
    columns_values: list[list[object]] = []
    bad_cells = 0
    for j, h in enumerate(heads):
        cells = [r[j] for r in rows_text]
        if h.kind != "num":
            if h.kind == "grid":
                columns_values.append([" ".join(c.split()) for c in cells])
            else:
                columns_values.append([c.strip() for c in cells])
            continue
        factor = TIME_FACTORS.get(h.unit.lower(), 1) if h.quantity == "time" else 1
        if h.quantity in ("bytes", "throughput"):
            factor = BYTE_FACTORS.get(h.unit.lower().removesuffix("/s"), 1)
        share = h.base == "share"
        seen: dict[str, object] = {}  # values repeat a lot (counts, grid sizes, durations): convert each text once
        out: list[object] = []
        for cell in cells:
            if cell in seen:
                out.append(seen[cell])
                continue
            t = cell.strip()
            if t.isdigit():  # the common case: an integer without separators
                value: object = float(t) if share else int(t) * factor
            else:
                try:
                    number = parse_number(t, decimal)
                except ValueError:
                    bad_cells += 1
                    out.append(None)
                    continue
                if number is None:
                    value = None
                else:
                    decimals[j] = max(decimals[j], _decimals(t, decimal))
                    value = float(number) if share else _plain(number * factor)
            seen[cell] = value
            out.append(value)
        columns_values.append(out)
    rows: list[dict[str, object]] = [dict(zip(roles, vals, strict=True)) for vals in zip(*columns_values, strict=True)]
    if bad_cells:
        issues.append(f"{bad_cells} cells are not numbers where numbers belong; read as empty")
    columns = tuple(
        PastedColumn(
            h.header, h.label, h.unit, h.quantity or ("text" if h.kind == "text" else "number"), roles[j], decimals[j]
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
        partial=raw.partial,
        clipped_names=clipped,
        kind_from=kind_from,
    )
    if "share" in roles and kind in ("kernels", "api", "mem_time", "osrt", "nvtx", "gpu_sum"):
        total_share = sum(float(v) for v in table.values("share") if isinstance(v, int | float))
        slack = 0.5 + 0.05 * len(rows)  # each share is rounded to 0.1
        if total_share < 100 - slack:
            table.partial = True
            issues.append(f"the shares add up to {total_share:.1f}%: rows are missing from the paste")
    if clipped:
        what = "1 name is" if clipped == 1 else f"{clipped} names are"
        issues.append(f"{what} cut short (… or ...): the operation is read from the visible part")
    return table


def _json_cell(value: object) -> str:
    if isinstance(value, Decimal):
        return format(value, "f")
    if isinstance(value, bool):
        return str(value).lower()
    return str(value)


# --- the scan ---------------------------------------------------------------------------------------------------


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
        if not used[i] and _MD_SEP.match(line) and i > 0 and not used[i - 1]:
            raw = _markdown_table(lines, i)
            if raw is not None and _known_headers(raw.headers) >= 2:
                take(raw)
    for i, line in enumerate(lines):
        if not used[i] and ("," in line or ";" in line or "\t" in line):
            take(_csv_table(lines, i))
    for i, _line in enumerate(lines):
        if not used[i]:
            take(_headerless(lines, i, used))
    found.sort(key=lambda r: r.line)

    # titles: the last title line above a table, with no other table in between
    titles = [t for i, line in enumerate(lines) if not used[i] and (t := _title_of(line, i)) is not None]
    notes = []
    for i, line in enumerate(lines):
        if not used[i] and _NOTE_PATTERNS.search(line):
            notes.append(line.strip())
    tables: list[PastedTable] = []
    prev_end = 0
    for raw in found:
        cands = [t for t in titles if prev_end <= t.line < raw.line]
        title = _merge_titles(cands)
        table = _build(raw, len(tables), title)
        if table is not None:
            tables.append(table)
        prev_end = raw.end
    return PastedText(source=source, tables=tables, notes=notes, lines=len(lines))


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


def decode_text(data: bytes) -> str:
    """Text from bytes as pasted files come: UTF-8, UTF-16 with a BOM (PowerShell's ``>``), else Latin-1."""
    if data.startswith((b"\xff\xfe", b"\xfe\xff")):
        return data.decode("utf-16")
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError:
        return data.decode("latin-1")


def read_source(path: str | Path) -> tuple[str, str]:
    """(text, source label) of a file; ``UsageError`` naming the file when it cannot be read."""
    p = Path(path)
    try:
        data = p.read_bytes()
    except IsADirectoryError as exc:
        raise UsageError(
            f"{p} is a directory", "pass a text file with pasted nsys stats output, or - for stdin"
        ) from exc
    except OSError as exc:
        raise UsageError(
            f"cannot read {p}: {exc.strerror or exc}", "pass a text file with pasted nsys stats output, or - for stdin"
        ) from exc
    return decode_text(data), str(p)


def load_pasted(text: str, source: str) -> PastedText:
    """``parse_pasted``, refusing text in which no table was found."""
    parsed = parse_pasted(text, source)
    if not parsed.tables:
        n = len(text.strip().splitlines())
        what = "is empty" if not n else f"has {n} line{'s' if n != 1 else ''} but no table"
        raise UsageError(
            f"no nsys stats table found in {source} (it {what})",
            "paste the output of `nsys stats REPORT.nsys-rep` (or `nsys profile --stats=true`), e.g. "
            "nsys stats -r cuda_gpu_kern_sum,cuda_api_sum,cuda_gpu_mem_time_sum REPORT.nsys-rep",
        )
    return parsed
