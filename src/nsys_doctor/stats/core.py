"""What every nsys-compatible report shares: the result table, the report registry and argument parsing.

A report is a function ``(ReportContext) -> StatsTable`` registered under its nsys name. Columns carry nsys's
unit category (``dur_ns``, ``ts_ns``, ``mem_B``, ``thru_B``, ``ratio_%``) so renderers can convert units exactly
as nsys does; rows hold plain Python values (int ns, float, str, None for an empty cell).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from ..errors import UsageError
from ..trace import Trace
from ..trace.window import EventFilter

if TYPE_CHECKING:
    import polars as pl


@dataclass(frozen=True)
class Column:
    label: str
    unit: str = ""  # "", "dur_ns", "ts_ns", "mem_B", "thru_B", "ratio_%"


def duration_columns(count_label: str = "Instances", share: bool = True) -> tuple[Column, ...]:
    """The columns every nsys duration summary shares: Time (%), Total Time, <count>, Avg, Med, Min, Max, StdDev."""
    head = (Column("Time", "ratio_%"),) if share else ()
    return (
        *head,
        Column("Total Time", "dur_ns"),
        Column(count_label),
        *(Column(s, "dur_ns") for s in ("Avg", "Med", "Min", "Max", "StdDev")),
    )


@dataclass(frozen=True)
class StatsTable:
    report: str
    title: str
    columns: tuple[Column, ...]
    rows: list[tuple] = field(default_factory=list)
    skipped: str = ""  # non-empty: why the report could not run on this trace (nsys prints SKIPPED)

    @property
    def labels(self) -> list[str]:
        return [c.label for c in self.columns]


@dataclass
class ReportContext:
    trace: Trace
    flt: EventFilter
    flags: set[str] = field(default_factory=set)
    options: dict[str, str] = field(default_factory=dict)

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


@dataclass(frozen=True)
class ReportSpec:
    name: str
    title: str
    func: Callable[[ReportContext], StatsTable]
    flags: frozenset[str] = frozenset()
    options: frozenset[str] = frozenset()
    kind: str = "stats"  # "stats" or "rule" (nsys analyze)
    doc: str = ""


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


@dataclass(frozen=True)
class ReportRequest:
    name: str
    flags: frozenset[str]
    options: dict[str, str]
    text: str  # as the user wrote it


def parse_report_arg(text: str) -> ReportRequest:
    """``cuda_gpu_kern_sum:base``, ``gpu_gaps:gap=1:rows=-1`` -> name, flags, options (validated)."""
    from . import load_all

    load_all()
    name, *args = text.split(":")
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


def load_kernels(ctx: ReportContext, columns: list[str]) -> pl.DataFrame:
    """Kernel rows (filtered by the context) with ``columns`` and ``name_id``: the StringIds id of the name variant
    the report asks for (demangled; ``base``: short; ``mangled``: mangled where recorded, else demangled)."""
    import polars as pl

    from ..trace import schema as S
    from ..trace.tables import load

    name_col = kernel_name_column(ctx)
    extra = [name_col] + (["demangledName"] if name_col == "mangledName" else [])
    df = load(ctx.trace, S.KERNEL, list(dict.fromkeys([*columns, *extra])), ctx.flt)
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
