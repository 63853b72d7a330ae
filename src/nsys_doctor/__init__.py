"""nsys-doctor: where GPU time goes in an Nsight Systems trace, and what to optimize next."""

from __future__ import annotations

from typing import TYPE_CHECKING

__version__ = "0.1.0"

# The version of every JSON output (report, diff, scaling, nccl, roofline, info, explain); docs/report-json.md.
# 2: the report gained `kind`, `run` (the run structure) and findings[].cost_ns / cost_share.
JSON_SCHEMA = "nsys-doctor/2"

if TYPE_CHECKING:
    from .api import Report as Report
    from .api import TraceSession as TraceSession
    from .api import WindowChoice as WindowChoice
    from .api import diff as diff
    from .api import open as open
    from .api import sample as sample
    from .api import scaling as scaling
    from .api import stats_frame as stats_frame


def __getattr__(name: str) -> object:
    """The Python API (``nd.open``, ``nd.diff``... ``api.__all__``, docs/api.md), imported on first use: importing
    the package, as every command line does, loads nothing heavy (polars, numpy)."""
    if not name.startswith("_") and name != "api":
        import importlib

        api = importlib.import_module(f"{__name__}.api")
        if name in api.__all__:
            value = getattr(api, name)
            globals()[name] = value
            return value
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
