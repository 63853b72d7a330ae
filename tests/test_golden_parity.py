"""Parity with real nsys 2025.3: one test per golden file in ../shared/traces/golden, multigpu/golden and
engines/golden.

Each golden is the output of ``nsys stats``/``nsys analyze`` for one report, rule, filter or format; ours must
be the same text: same header, same rows in the same order, same values.
"""

from __future__ import annotations

import gzip
import re
from pathlib import Path

import pytest
from click.testing import CliRunner

from nsys_doctor.cli.main import _register, cli
from nsys_doctor.report.nsys_format import Units, render
from nsys_doctor.stats import ReportContext, parse_report_arg, run_report
from nsys_doctor.trace.window import EventFilter, resolve_nvtx_filter

from .conftest import GOLDEN, TRACES, open_trace

GOLDEN_DIRS = [GOLDEN, TRACES / "multigpu" / "golden", TRACES / "engines" / "golden"]
TABLE_REPORTS = ("cuda_gpu_kern_sum:base", "cuda_api_sum", "cuda_kern_exec_sum:base")


def _cases() -> list[tuple[Path, Path]]:
    out = []
    for base in GOLDEN_DIRS:
        if not base.is_dir():
            continue
        for d in sorted(p for p in base.iterdir() if p.is_dir()):
            trace = d.parent.parent / f"{d.name}.sqlite"
            for f in sorted(d.iterdir()):
                if f.name != "COMMAND":
                    out.append((trace, f))
    return out


def _report_text(stem: str) -> str:
    return stem[:-5] + ":base" if stem.endswith("_base") else stem


def _ours(trace_path: Path, golden: Path) -> tuple[str, str]:
    """(our output, golden text) for one golden file."""
    trace = open_trace(trace_path)
    name = golden.name
    opener = gzip.open if name.endswith(".gz") else open
    with opener(golden, "rt", encoding="utf-8") as fh:
        expected = fh.read()
    units = Units()
    flt = EventFilter()
    fmt = "csv"
    if name == "table_usec.txt":  # the console output of the CLI, minus nsys's "Processing [...]" lines
        args = ["stats", str(trace_path), "--format", "table", "--timeunit", "usec"]
        for text in TABLE_REPORTS:
            args += ["-r", text]
        result = CliRunner().invoke(cli, args, catch_exceptions=False)
        assert result.exit_code == 0, result.output
        expected = "\n".join(line for line in expected.splitlines() if not line.startswith("Processing "))
        return result.stdout.strip("\n"), expected.strip("\n")
    if m := re.fullmatch(r"(stats|analyze)_(.+?)\.csv(\.gz)?", name):
        report = _report_text(m.group(2))
    elif m := re.fullmatch(r"ftime_(.+)_start=(\d+)_end=(\d+)\.csv", name):
        report = _report_text(m.group(1))
        flt = EventFilter(start=int(m.group(2)), end=int(m.group(3)))
    elif m := re.fullmatch(r"nvtxdecode_(.+)_nvtx=(.+)\.csv", name):
        report = _report_text(m.group(1))
        flt = resolve_nvtx_filter(trace, m.group(2))
    elif m := re.fullmatch(r"json_(.+)\.json", name):
        report = _report_text(m.group(1))
        fmt, units = "json", Units(time="ms")
    else:
        raise AssertionError(f"golden file of unknown kind: {golden}")
    table = run_report(ReportContext(trace, flt), parse_report_arg(report))
    return render(table, fmt, units), expected


CASES = _cases()
_register()


@pytest.mark.skipif(not CASES, reason="../shared/traces/golden is not present")
@pytest.mark.parametrize(("trace_path", "golden"), CASES, ids=[f"{g.parent.name}/{g.name}" for _, g in CASES])
def test_matches_nsys(trace_path: Path, golden: Path) -> None:
    ours, expected = _ours(trace_path, golden)
    if ours != expected:
        ours_lines, exp_lines = ours.splitlines(), expected.splitlines()
        assert len(ours_lines) == len(exp_lines), f"{len(ours_lines)} lines, nsys has {len(exp_lines)}"
        for i, (a, b) in enumerate(zip(ours_lines, exp_lines, strict=True)):
            assert a == b, f"line {i + 1} differs"
    assert ours == expected
