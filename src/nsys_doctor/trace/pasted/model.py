"""The model of a pasted table: typed columns (nanoseconds, bytes), the table, and the whole pasted text."""

from __future__ import annotations

from dataclasses import dataclass, field

from .vocabulary import BYTE_FACTORS, TIME_FACTORS


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
