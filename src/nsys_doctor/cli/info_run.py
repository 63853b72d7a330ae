"""``nsys-doctor info`` without click: what a trace holds and how it was captured. The click command (``info.py``)
and the command line run without click (``quick.py``) both call ``run_info``. ``info`` counts rows without reading
them; the first and last row of each counted table are tested for damage (``Trace.spot_damage``)."""

from __future__ import annotations

from ..safe_io import write_stdout
from ..trace import Trace
from ..trace.meta import COUNTED_TABLES, describe

TYPE_CHECKING = False
if TYPE_CHECKING:
    import os

FORMATS = ("text", "json")


def run_info(trace_path: str | os.PathLike[str], fmt: str = FORMATS[0]) -> None:
    """Describe the trace at ``trace_path`` on standard output, as text or JSON (``fmt``, one of ``FORMATS``)."""
    with Trace.open(trace_path) as trace:
        data = describe(trace)
        for table in COUNTED_TABLES:  # info reads no rows: a table damaged at either end is counted, then said
            trace.spot_damage(table)
    from ..report.info_text import render_info, render_info_json

    write_stdout(render_info_json(data) if fmt == "json" else render_info(data))
