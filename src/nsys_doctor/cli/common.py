"""Helpers shared by subcommands: opening a trace and building its event filter from CLI options."""

from __future__ import annotations

from ..trace import Trace
from ..trace.window import EventFilter, parse_filter_time, resolve_nvtx_filter


def event_filter(trace: Trace, filter_time: str | None, filter_nvtx: str | None) -> EventFilter:
    """``--filter-nvtx`` takes precedence over ``--filter-time``, as in nsys."""
    if filter_nvtx:
        return resolve_nvtx_filter(trace, filter_nvtx)
    if filter_time:
        return parse_filter_time(filter_time)
    return EventFilter()
