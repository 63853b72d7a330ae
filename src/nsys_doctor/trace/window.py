"""Time windows and event filters with nsys semantics.

``EventFilter`` reproduces ``nsys stats --filter-time/--filter-nvtx``: an event is kept when it overlaps the
half-open window [start, end): ``(S <= start < E) or (S <= end < E) or (start < S and end >= E)``; durations stay
unclipped. An NVTX filter also restricts events to the range's thread (push/pop on a worker thread) or process
(tid == pid), exactly as nsys decides it.
"""

from __future__ import annotations

from ..errors import UsageError
from ..units import parse_duration_ns
from ..values import Value
from . import schema as S

TYPE_CHECKING = False
if TYPE_CHECKING:
    from .open import Trace

MAX_TS = 2**63 - 1


class EventFilter(Value):
    """The events a report keeps: those overlapping [start, end), of process ``pid`` (and thread ``tid``) when
    set; ``label`` names the filter in messages."""

    _fields = ("start", "end", "pid", "tid", "label")

    def __init__(
        self,
        start: int = 0,
        end: int = MAX_TS,
        pid: int | None = None,
        tid: int | None = None,  # set only for thread-restricted (push/pop) NVTX filters
        label: str = "",
    ) -> None:
        self.start = start
        self.end = end
        self.pid = pid
        self.tid = tid
        self.label = label

    @property
    def is_open(self) -> bool:
        return self.start == 0 and self.end == MAX_TS and self.pid is None

    def sql_where(self, columns: tuple[str, ...], start_col: str = "start", end_col: str = "end") -> str:
        """A WHERE clause (without WHERE) keeping the rows of a table with these columns that pass."""
        parts: list[str] = []
        if not (self.start == 0 and self.end == MAX_TS) and start_col in columns and end_col in columns:
            s, e = self.start, self.end
            st, en = f'"{start_col}"', f'"{end_col}"'
            parts.append(
                f"(({st} >= {s} AND {st} < {e}) OR ({en} >= {s} AND {en} < {e}) OR ({st} < {s} AND {en} >= {e}))"
            )
        if self.pid is not None:
            if "globalTid" in columns:
                if self.tid is not None:
                    parts.append(f"{S.tid_sql('globalTid')} = {self.tid} AND {S.pid_sql('globalTid')} = {self.pid}")
                else:
                    parts.append(f"{S.pid_sql('globalTid')} = {self.pid}")
            elif "globalPid" in columns:
                parts.append(f"{S.pid_sql('globalPid')} = {self.pid}")
        return " AND ".join(parts)


def _filter_time_value(text: str, side: str, whole: str) -> int:
    """One side of ``--filter-time``: a time in ns, 0 <= t <= 2^63-1 (the trace's timeline)."""
    try:
        value = parse_duration_ns(text)
    except UsageError as exc:
        raise UsageError(f"bad --filter-time '{whole}': {exc.message}", exc.hint) from exc
    except ArithmeticError as exc:  # decimal overflow: an exponent too large to hold
        raise UsageError(
            f"bad --filter-time '{whole}': the {side} time is out of range", "times lie between 0 and 2^63-1 ns"
        ) from exc
    if value < 0:
        raise UsageError(
            f"bad --filter-time '{whole}': the {side} time is negative",
            "times count from the start of the trace: write START/END with 0 <= START <= END, e.g. 0s/10s",
        )
    if value > MAX_TS:
        raise UsageError(
            f"bad --filter-time '{whole}': the {side} time is out of range",
            "times lie between 0 and 2^63-1 ns (about 292 years); leave END empty for the end of the trace",
        )
    return value


def parse_filter_time(text: str) -> EventFilter:
    """``START/END`` with nsys time syntax, either side optional: ``10s/20s``, ``1s2ms/``, ``/500ms``.

    Both times lie in 0..2^63-1 ns and START <= END; anything else is a ``UsageError``."""
    if "/" not in text:
        raise UsageError(
            f"bad --filter-time '{text}'", "write START/END, either side optional, e.g. 10s/20s, 1s500ms/ or /2s"
        )
    a, b = text.split("/", 1)
    start = _filter_time_value(a, "start", text) if a.strip() else 0
    end = _filter_time_value(b, "end", text) if b.strip() else MAX_TS
    if start > end:
        raise UsageError(f"bad --filter-time '{text}': start is after end", "write START/END with START <= END")
    return EventFilter(start=start, end=end, label=f"time {text}")


def parse_filter_nvtx(text: str) -> tuple[str, str | None, int]:
    """``range[@domain][/index]`` -> (range text, domain or None, index). ``\\@`` and ``\\/`` escape."""
    index = 0
    body = text
    if "/" in body:
        head, tail = body.rsplit("/", 1)
        if tail.isdigit() and not head.endswith("\\"):
            body, index = head, int(tail)
    domain: str | None = None
    # split on the last unescaped '@'
    i = len(body) - 1
    while i >= 0:
        if body[i] == "@" and (i == 0 or body[i - 1] != "\\"):
            domain = body[i + 1 :]
            body = body[:i]
            break
        i -= 1
    body = body.replace("\\@", "@").replace("\\/", "/")
    if not body:
        raise UsageError(
            f"bad --filter-nvtx '{text}'", "write RANGE[@DOMAIN][/INDEX], e.g. decode_step or decode_step/3"
        )
    return body, domain, index


def resolve_nvtx_filter(trace: Trace, text: str) -> EventFilter:
    """The EventFilter of the NVTX range ``text`` (nsys semantics: the index-th exact match by start)."""
    import polars as pl

    from .tables import nvtx_ranges

    name, domain, index = parse_filter_nvtx(text)
    ranges = nvtx_ranges(trace, S_all=True)
    if ranges.height:
        cond = pl.col("text") == name
        cond = cond & (pl.col("domain") == domain) if domain is not None else cond & pl.col("domain").is_null()
        hits = ranges.filter(cond).sort("start", maintain_order=True)
    else:
        hits = ranges
    if hits.height <= index:
        known = ", ".join(sorted(set(ranges["text"].drop_nulls().to_list()))[:8]) if ranges.height else "none"
        raise UsageError(
            f"NVTX range '{text}' could not be found in {trace.name}",
            f"ranges in this trace: {known}" if ranges.height else "this trace has no NVTX ranges; use --filter-time",
        )
    row = hits.row(index, named=True)
    gtid = int(row["globalTid"] or 0)
    pid, tid = (gtid >> 24) & 0xFFFFFF, gtid & 0xFFFFFF
    end = row["end"] if row["end"] is not None else MAX_TS
    return EventFilter(
        start=int(row["start"]), end=int(end), pid=pid, tid=None if tid == pid else tid, label=f"nvtx {text}"
    )


__all__ = ["MAX_TS", "EventFilter", "S", "parse_filter_nvtx", "parse_filter_time", "resolve_nvtx_filter"]


def event_filter(trace: Trace, filter_time: str | None, filter_nvtx: str | None) -> EventFilter:
    """``--filter-nvtx`` takes precedence over ``--filter-time``, as in nsys."""
    if filter_nvtx:
        return resolve_nvtx_filter(trace, filter_nvtx)
    if filter_time:
        return parse_filter_time(filter_time)
    return EventFilter()
