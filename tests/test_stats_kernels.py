"""cuda_gpu_kern_sum on small traces: the stdlib path (``small_kernels`` + ``small_grouped_stats``, no polars)
gives the very rows of the polars path (``grouped_stats`` + ``summary_rows``, which the nsys goldens check), on every
trace at hand."""

from __future__ import annotations

import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

from nsys_doctor.stats import ReportContext, aggregate, core, kernels, parse_report_arg, run_report
from nsys_doctor.trace.window import EventFilter, event_filter

from .conftest import DATA, SAMPLE, TRACES, open_trace


def _kernel_rows(path: Path) -> int:
    with sqlite3.connect(f"file:{path}?mode=ro", uri=True) as con:
        try:
            return int(con.execute("SELECT count(*) FROM CUPTI_ACTIVITY_KIND_KERNEL").fetchone()[0])
        except sqlite3.Error:
            return 0


def _small_traces() -> list[Path]:
    found = [SAMPLE, *sorted(DATA.rglob("*.sqlite"))]
    if TRACES.is_dir():
        found += sorted(TRACES.rglob("*.sqlite"))
    return [p for p in found if 0 < _kernel_rows(p) <= core.SMALL_ROWS]


def _small_kern_sum(ctx: ReportContext) -> list[tuple] | None:
    """cuda_gpu_kern_sum's rows from the stdlib engine alone; None where the polars path decides."""
    rows = kernels.small_kernels(ctx)
    groups = None if rows is None else aggregate.small_grouped_stats(rows, ["name"])
    return None if groups is None else aggregate.summary_rows(groups, ["name"])


def _both(ctx: ReportContext, monkeypatch: pytest.MonkeyPatch) -> tuple[list[tuple] | None, list[tuple]]:
    fast = _small_kern_sum(ctx)
    with monkeypatch.context() as m:
        m.setattr(core, "SMALL_ROWS", 0)
        assert _small_kern_sum(ctx) is None
        slow = kernels.cuda_gpu_kern_sum(ctx).rows
    return fast, slow


@pytest.mark.parametrize("path", _small_traces(), ids=lambda p: p.name)
def test_stdlib_rows_are_the_polars_rows(path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    trace = open_trace(path)
    for flags in ((), ("base",), ("mangled",)):
        ctx = ReportContext(trace, EventFilter(), set(flags))
        fast, slow = _both(ctx, monkeypatch)
        assert fast is not None, f"{path.name} {flags}: the stdlib path was not taken"
        assert fast == slow, f"{path.name} {flags}"
        assert all(type(a) is type(b) for f, s in zip(fast, slow, strict=True) for a, b in zip(f, s, strict=True))
    # a time filter: the kernels overlapping the middle of the trace
    lo, hi = trace.rows('SELECT min(start), max("end") FROM CUPTI_ACTIVITY_KIND_KERNEL')[0]
    third = (hi - lo) // 3
    flt = event_filter(trace, f"{lo + third}ns/{hi - third}ns", None)
    fast, slow = _both(ReportContext(trace, flt), monkeypatch)
    assert fast == slow


def test_large_or_damaged_tables_take_the_polars_path(monkeypatch: pytest.MonkeyPatch) -> None:
    trace = open_trace(SAMPLE)
    monkeypatch.setattr(core, "SMALL_ROWS", 10)
    assert _small_kern_sum(ReportContext(trace, EventFilter())) is None
    table = run_report(ReportContext(trace, EventFilter()), parse_report_arg("cuda_gpu_kern_sum"))
    assert table.rows and table.rows[0][2] > 0


def test_kernel_summary_of_the_sample_needs_no_polars() -> None:
    code = (
        "import sys; from nsys_doctor.cli.main import main; rc = main(sys.argv[1:]); "
        "print('LOADED', ' '.join(m for m in ('polars', 'numpy', 'pyarrow') if m in sys.modules), file=sys.stderr); "
        "sys.exit(rc)"
    )
    proc = subprocess.run(
        [sys.executable, "-c", code, "stats", str(SAMPLE), "-r", "cuda_gpu_kern_sum", "-f", "csv"],
        capture_output=True,
        text=True,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert proc.stdout.startswith("Time (%),Total Time (ns),Instances,")
    assert proc.stderr.rsplit("LOADED", 1)[1].split() == []


def test_grid_and_block_of_a_null_dimension_print_as_sqlite_printf_does(tmp_path: Path) -> None:
    """nsys renders GridXYZ/BlockXYZ with SQLite's printf('%4d %4d %4d'), which prints a NULL as 0; the NULL rows
    stay a group of their own (GROUP BY keeps NULL apart from 0)."""
    from nsys_doctor.trace import Trace

    from .test_fuzz import K, mutated_copy, set_values

    path = mutated_copy(SAMPLE, tmp_path / "null_grid.sqlite", set_values(K, "gridX", "NULL", 50, 3))
    con = sqlite3.connect(path)
    want = con.execute(
        f"SELECT printf('%4d %4d %4d', gridX, gridY, gridZ), count(*) FROM {K} WHERE gridX IS NULL "
        "GROUP BY gridX, gridY, gridZ, blockX, blockY, blockZ, shortName ORDER BY 2 DESC LIMIT 1"
    ).fetchone()
    con.close()
    assert want is not None and want[0].startswith("   0 ")
    with Trace.open(path) as trace:
        table = run_report(ReportContext(trace, EventFilter()), parse_report_arg("cuda_gpu_kern_gb_sum"))
    grids = [r[8] for r in table.rows]
    assert want[0] in grids
    assert all(isinstance(g, str) and len(g.split()) == 3 for g in grids)
