"""Shared fixtures: where the real traces and goldens are, and a cache of opened traces."""

from __future__ import annotations

from pathlib import Path

import pytest

from nsys_doctor.trace import Trace

REPO = Path(__file__).resolve().parents[1]
SHARED = REPO.parent / "shared"
TRACES = SHARED / "traces"
GOLDEN = TRACES / "golden"
DATA = Path(__file__).resolve().parent / "data"
SAMPLE = REPO / "src" / "nsys_doctor" / "data" / "sample_decode.sqlite"

needs_shared = pytest.mark.skipif(not TRACES.is_dir(), reason="../shared/traces is not present")

_OPEN: dict[Path, Trace] = {}


def open_trace(path: Path) -> Trace:
    """Traces are read-only, so one handle per file is shared by all tests."""
    if path not in _OPEN:
        _OPEN[path] = Trace.open(path)
    return _OPEN[path]


@pytest.fixture(scope="session", autouse=True)
def _close_traces():
    yield
    for t in _OPEN.values():
        t.close()
    _OPEN.clear()
