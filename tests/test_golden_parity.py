"""Parity with real nsys 2025.3: one test per golden file in tests/data/golden (the small traces that ship with
the repository: always run) and in ../shared/traces/golden, multigpu/golden and engines/golden.

Each golden is the output of ``nsys stats``/``nsys analyze`` for one report, rule, filter or format; ours must
be the same text: same header, same rows in the same order, same values.

With ``NSYS_DOCTOR_REQUIRE_TRACES=1`` (as ``.ci/run`` sets it) a missing ../shared/traces fails the suite instead
of skipping its goldens, so that CI cannot pass without the parity tests.
"""

from __future__ import annotations

import gzip
import os
import re
from pathlib import Path

import pytest
from click.testing import CliRunner

from nsys_doctor.cli.app import _register, cli
from nsys_doctor.report.nsys_format import Units, render
from nsys_doctor.stats import ReportContext, parse_report_arg, run_report
from nsys_doctor.trace.window import EventFilter, resolve_nvtx_filter

from .conftest import DATA, GOLDEN, SAMPLE, TRACES, open_trace

SHARED_GOLDEN_DIRS = [GOLDEN, TRACES / "multigpu" / "golden", TRACES / "engines" / "golden"]
LOCAL_GOLDEN = DATA / "golden"  # nsys 2025.3.1 on the repository's own small traces (see each COMMAND)
GOLDEN_DIRS = [LOCAL_GOLDEN, *SHARED_GOLDEN_DIRS]
TABLE_REPORTS = ("cuda_gpu_kern_sum:base", "cuda_api_sum", "cuda_kern_exec_sum:base")


def _cases() -> list[tuple[Path, Path]]:
    out = []
    for base in GOLDEN_DIRS:
        if not base.is_dir():
            continue
        for d in sorted(p for p in base.iterdir() if p.is_dir()):
            trace = _trace_of(d)
            for f in sorted(d.iterdir()):
                if f.name != "COMMAND":
                    out.append((trace, f))
    return out


def _trace_of(golden_dir: Path) -> Path:
    """The trace a golden folder was made from: beside its parent for the shared goldens; for tests/data/golden the
    bundled sample, a trace in tests/data or one in tests/data/runs."""
    if golden_dir.parent != LOCAL_GOLDEN:
        return golden_dir.parent.parent / f"{golden_dir.name}.sqlite"
    if golden_dir.name == SAMPLE.stem:
        return SAMPLE
    here = DATA / f"{golden_dir.name}.sqlite"
    return here if here.is_file() else DATA / "runs" / f"{golden_dir.name}.sqlite"


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

if os.environ.get("NSYS_DOCTOR_REQUIRE_TRACES") == "1" and not any(d.is_dir() for d in SHARED_GOLDEN_DIRS):
    pytest.fail(
        f"NSYS_DOCTOR_REQUIRE_TRACES=1 but no golden folder is there ({GOLDEN}): put the shared traces beside the "
        "checkout (../shared/traces), or unset the variable to run without them",
        pytrace=False,
    )


def test_the_local_goldens_are_collected() -> None:
    """The repository's own goldens run everywhere: every folder has its trace and at least the kernel summary."""
    local = [(t, g) for t, g in CASES if g.parent.parent == LOCAL_GOLDEN]
    folders = {g.parent.name for _, g in local}
    assert folders == {"sample_decode", "backtrace_decode", "hf_qwen2_sample_batch3_whole", "resnet18_requests_whole"}
    assert all(t.is_file() for t, _ in local)
    assert {g.parent.name for _, g in local if g.name == "stats_cuda_gpu_kern_sum.csv"} == folders
    assert len(local) >= 4 * 19


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
