"""Headers and titles: a column label's role, statistic and unit; a report title's canonical name."""

from __future__ import annotations

import re
from dataclasses import dataclass

from .vocabulary import (
    BARE_REPORT,
    BYTE_FACTORS,
    COUNTS,
    EXEC_STAT,
    EXECUTING,
    EXPORTING,
    HEAD_UNIT,
    NUMBER_ROLES,
    OLD_TITLES,
    PROCESSING,
    REPORT_ALIASES,
    REPORT_KINDS,
    SHARE_LABELS,
    STATS,
    SUFFIX,
    TEXT_ROLES,
    TIME_FACTORS,
    TITLE_STARS,
)

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


def read_head(header: str, index: int) -> _Head:
    h = " ".join(header.split())
    m = HEAD_UNIT.match(h)
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
    m2 = EXEC_STAT.match(key.replace(" ", ""))
    if m2:
        return _Head(header, label, unit, quantity, f"{m2.group(1).lower()}_{STATS[m2.group(2)]}", "num")
    if key in TEXT_ROLES:
        role = TEXT_ROLES[key]
        return _Head(header, label, unit, "text", role, "grid" if role in ("grid", "block") else "text")
    if key.replace(" ", "") in NUMBER_ROLES:
        return _Head(header, label, unit, "number", NUMBER_ROLES[key.replace(" ", "")], "num")
    slug = re.sub(r"[^a-z0-9]+", "_", key).strip("_") or f"col{index + 1}"
    return _Head(header, label, unit, quantity, slug, "num" if quantity else "any")


def column_role(h: _Head) -> str:
    if h.base in ("share", "count") or h.quantity in ("", "number", "text"):
        return h.base
    return h.base + SUFFIX.get(h.quantity, "")


STAT_BASES = {"total", "avg", "med", "min", "max", "stddev"}
INTEGER_BASES = {"count", "pid", "tid", "device", "q_count"}  # nsys prints these as integers, never with decimals
KNOWN_BASES = STAT_BASES | {"share", "count"} | set(TEXT_ROLES.values()) | set(NUMBER_ROLES.values())


def inherit_units(heads: list[_Head], title: str) -> list[str]:
    """Old headers write the unit once ("Total Time (ns)  ...  Average  Minimum"): give unitless statistics the
    unit of the table (or of its title: "by size in KiB"). Returns notes on what was assumed."""
    notes: list[str] = []
    unitless = [h for h in heads if (h.base in STAT_BASES or EXEC_STAT.match(h.base.replace("_", ""))) and not h.unit]
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
class Title:
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


def title_of(line: str, lineno: int) -> Title | None:
    if not _TITLE_HINT.search(line):  # most lines: no pattern below can match
        return None
    m = TITLE_STARS.match(line)
    if m:
        return Title(lineno, canonical_report(m.group("report")), line.strip(), "")
    m = PROCESSING.search(line)
    if m:
        return Title(lineno, canonical_report(m.group("report")), line.strip(), (m.group("args") or "").strip())
    m = EXPORTING.search(line)
    if m:
        return Title(lineno, canonical_report(m.group("report")), line.strip(), "")
    m = EXECUTING.search(line)
    if m:
        return Title(lineno, canonical_report(m.group("report")), line.strip(), m.group("args").lstrip(":"))
    low = line.strip().lower().lstrip("#*> ").rstrip(": ")
    for prefix, report in OLD_TITLES:
        if low.startswith(prefix) and len(low) <= len(prefix) + 20:
            return Title(lineno, report, line.strip(), "")
    m = BARE_REPORT.match(line)
    if m:
        report = canonical_report(m.group("report"))
        if report in REPORT_KINDS or report in REPORT_ALIASES.values():
            return Title(lineno, report, line.strip(), m.group("args").lstrip(":"))
    return None
