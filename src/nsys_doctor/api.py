"""The Python API: ``import nsys_doctor as nd``; ``nd.open``, ``nd.diff``, ``nd.scaling`` (see docs/api.md).

Everything here is a thin entry to ``TraceSession`` (session.py), the object every command builds on: the API and
the CLI share one code path.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .session import Report, TraceSession, WindowChoice, stats_frame

if TYPE_CHECKING:
    from .analysis.compare import DiffResult, Profile, ScalingResult
    from .analysis.ops import OpRule

__all__ = ["Report", "TraceSession", "WindowChoice", "diff", "open", "sample", "scaling", "stats_frame"]

TraceLike = TraceSession | str | os.PathLike[str]


def open(path: str | os.PathLike[str], rules: list[OpRule] | None = None, **choice: Any) -> TraceSession:
    """A ``TraceSession`` of the trace at ``path`` (``window=``, ``filter_nvtx=``, ``whole_trace=``, ``request=``,
    ``warmup=`` choose the window as the command-line options do). Use it in a ``with`` block, or call ``close()``."""
    return TraceSession.open(path, rules, WindowChoice(**choice))


def sample() -> Path:
    """The path of the bundled sample trace (16 graphed decode steps of a Llama-style model on an H100)."""
    from importlib import resources

    return Path(str(resources.files("nsys_doctor") / "data" / "sample_decode.sqlite"))


def diff(before: TraceLike, after: TraceLike, **options: Any) -> DiffResult:
    """Compare two traces per step, as ``nsys-doctor diff``: ``level`` (``name``, ``short``, ``family``), ``alpha``
    and ``min_effect`` as in ``analysis.compare.diff_profiles``."""
    from .analysis.compare import diff_profiles

    return diff_profiles(_profile_of(before), _profile_of(after), **options)


def scaling(traces: list[TraceLike], **options: Any) -> ScalingResult:
    """Per-decode-step time per family and kernel against context length over several traces (as ``scaling``)."""
    from .analysis.compare import scaling as scaling_of

    return scaling_of([_profile_of(t) for t in traces], **options)


def _profile_of(t: TraceLike) -> Profile:
    if isinstance(t, TraceSession):
        return t.profile()
    with TraceSession.open(t) as s:
        return s.profile(last=True)
