"""Shared fixtures: where the real traces and goldens are, and a cache of opened traces."""

from __future__ import annotations

import os
import shutil
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


@pytest.fixture(scope="session", autouse=True)
def _private_frame_cache(tmp_path_factory: pytest.TempPathFactory):
    """The frame cache of the tests lives in a temporary folder, never in the user's cache folder."""
    old = os.environ.get("NSYS_DOCTOR_CACHE_DIR")
    os.environ["NSYS_DOCTOR_CACHE_DIR"] = str(tmp_path_factory.mktemp("frame-cache"))
    yield
    if old is None:
        os.environ.pop("NSYS_DOCTOR_CACHE_DIR", None)
    else:
        os.environ["NSYS_DOCTOR_CACHE_DIR"] = old


# every collected test's ``finding`` markers (finding id -> test ids), recorded before -k/-m deselect any, and the
# test files collected: tests/test_report.py checks that every catalogued finding has a test
FINDING_MARKS: dict[str, list[str]] = {}
COLLECTED_FILES: set[str] = set()


@pytest.hookimpl(tryfirst=True)
def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        COLLECTED_FILES.add(item.path.name)
        for mark in item.iter_markers("finding"):
            for fid in mark.args:
                FINDING_MARKS.setdefault(fid, []).append(item.nodeid)


@pytest.fixture
def cache_root(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """An empty cache folder (frame and result caches, on) that caches traces of any size."""
    from nsys_doctor.cli import result_cache
    from nsys_doctor.trace import cache

    root = tmp_path / "cache"
    monkeypatch.setenv(cache.ENV_DIR, str(root))
    monkeypatch.setenv(cache.ENV_MIN_TRACE_BYTES, "0")
    monkeypatch.setenv(cache.ENV_OFF, "")
    monkeypatch.delenv(cache.ENV_MAX_BYTES, raising=False)
    monkeypatch.delenv(result_cache.ENV_OFF, raising=False)
    return root


@pytest.fixture
def trace_copy(tmp_path: Path) -> Path:
    """A copy of the sample in a folder of its own (tests may change it)."""
    folder = tmp_path / "traces"
    folder.mkdir()
    dst = folder / "sample.sqlite"
    shutil.copyfile(SAMPLE, dst)
    return dst


def merged_intervals(ops: list[tuple[int, int]]) -> list[list[int]]:
    """The union of [start, end] intervals as disjoint [start, end] pairs in order: a plain sweep, the oracle the
    GPU-idle tests measure the tool's busy and idle intervals against."""
    merged: list[list[int]] = []
    for a, b in sorted(ops):
        if merged and a <= merged[-1][1]:
            merged[-1][1] = max(merged[-1][1], b)
        else:
            merged.append([a, b])
    return merged
