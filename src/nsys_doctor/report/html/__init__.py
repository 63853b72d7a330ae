"""HTML renderers: one self-contained page per report (``report``, ``diff``, ``nccl``) and a notebook fragment.

The page needs nothing from the network when opened: the CSS is inline, the plots are inline SVG drawn by the
small renderer below (bars, lines, dots, histograms, axes with ticks and units), there is no script at all, and a
Content-Security-Policy forbids loading anything. Every string from the trace (kernel names hold ``<``, ``>``,
``&``) goes through ``esc``. The output is deterministic: the same input gives the same bytes (no timestamps, no
generated ids, coordinates rounded to 0.1 px). Why an own renderer rather than a JS library: docs/html.md.

The data behind the plots comes from ``analysis/plots.py`` (``PlotData``); this module never reads a trace.

Modules: ``svg`` (the small SVG renderer), ``charts``, ``page`` (the page frame), ``report_page``, ``diff_page``,
``nccl_page``.
"""

from .diff_page import render_diff, render_rank_diffs
from .nccl_page import render_nccl
from .report_page import render_fragment, render_ranks, render_report
from .svg import esc, linear_ticks, log_ticks, nice_max

__all__ = [
    "esc",
    "linear_ticks",
    "log_ticks",
    "nice_max",
    "render_diff",
    "render_fragment",
    "render_nccl",
    "render_rank_diffs",
    "render_ranks",
    "render_report",
]
