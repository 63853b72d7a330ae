"""nsys-doctor: where GPU time goes in an Nsight Systems trace, and what to optimize next."""

from __future__ import annotations

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing (every command line imports this package)

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


# the names of the Python API (``api.__all__``; a test keeps the two equal)
API_NAMES = ("Report", "TraceSession", "WindowChoice", "diff", "open", "sample", "scaling", "stats_frame")


def __getattr__(name: str) -> object:
    """The Python API (``nd.open``, ``nd.diff``... ``API_NAMES``, docs/api.md), imported on first use: importing
    the package, as every command line does, loads nothing heavy (polars, numpy). Any other name is not looked
    up in the API: ``from nsys_doctor import progress`` asks for a submodule not imported yet, which must not
    load the API (the session and everything it imports) on the way."""
    if name in API_NAMES:
        import importlib

        value = getattr(importlib.import_module(f"{__name__}.api"), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
