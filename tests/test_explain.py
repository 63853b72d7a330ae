"""``nsys-doctor explain``: the pasted-text parser (round trips of our own stats output in every format, real pastes
of many nsys versions, robustness) and the explanation built on it."""

from __future__ import annotations

import io
import json
import math
import os
import re
import subprocess
import sys
from decimal import Decimal
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from nsys_doctor.analysis.explain import explain, short_name, tail_findings
from nsys_doctor.cli.main import main
from nsys_doctor.errors import UsageError
from nsys_doctor.loaders import load_rules
from nsys_doctor.report.explain_text import render_json, render_markdown, render_terminal
from nsys_doctor.report.nsys_format import FORMATS, Units, header, render
from nsys_doctor.stats import REGISTRY, ReportContext, StatsTable, load_all, parse_report_arg, run_report
from nsys_doctor.stats.core import Column
from nsys_doctor.stats.kernels import DUR_COLUMNS
from nsys_doctor.trace.pasted import (
    MAX_INPUT_BYTES,
    REPORT_KINDS,
    SQLITE_MAGIC,
    PastedTable,
    decode_text,
    load_pasted,
    parse_number,
    parse_pasted,
    read_source,
    read_stream,
    resolve_numbers,
)
from nsys_doctor.trace.window import EventFilter
from nsys_doctor.units import DISPLAY_MEM_UNITS, DISPLAY_TIME_UNITS

from .conftest import DATA, GOLDEN, SAMPLE, TRACES, open_trace

PASTED = DATA / "pasted"
RULES = load_rules(None)
UNIT_SETS = (Units("ns", "MB"), Units("us", "KiB"), Units("ms", "GB"), Units("sec", "B"))
# reports whose tables say what they are by their columns and names alone (csv and json have no title line)
COLUMN_KINDS = {
    r: k for r, k in REPORT_KINDS.items() if r not in ("nvtx_pushpop_sum", "nvtx_startend_sum", "cuda_memcpy_async")
}
TRACE_ROWS_MAX = 300  # cuda_gpu_trace has a row per GPU operation: a slice of it exercises the same parsing


# --- the round-trip check, shared by the real traces and the generated tables ----------------------------------


def _expected_value(value: object, col: Column, units: Units) -> tuple[float, float]:
    """(value in ns / bytes / as shown, tolerance) for a number as the format keeps it."""
    if col.unit in ("dur_ns", "ts_ns"):
        div, dec = DISPLAY_TIME_UNITS[units.time]
    elif col.unit in ("mem_B", "thru_B"):
        div, dec = DISPLAY_MEM_UNITS[units.mem]
    else:
        div, dec = 1, 0
    v = float(value)  # type: ignore[arg-type]
    if div == 1:
        return v, 1e-9 * max(1.0, abs(v))
    return v, 0.5 * 10.0**-dec * div * (1 + 1e-9) + 1e-9 * abs(v)


def _text_expected(value: str, fmt: str) -> str:
    if fmt in ("column", "table") and len(value) > 100:
        value = value[:99] + "…"  # nsys clips text at 100 characters in these formats
    return " ".join(value.split()) if re.fullmatch(r"[\d\s]+", value) else value.strip()


def _check_round_trip(
    table: StatsTable, fmt: str, units: Units, parsed: PastedTable, allow_ambiguous: bool = False
) -> None:
    """Every value read back as written. With ``allow_ambiguous`` (made-up tables with a few numbers, which real
    nsys tables are not), a column may instead be refused, but only as a true two-way reading of a console format,
    and one of the two readings must be the value written."""
    heads = [header(c, units) for c in table.columns]
    assert [c.header for c in parsed.columns] == heads
    assert len(parsed.rows) == len(table.rows)
    refused = {j for j, c in enumerate(parsed.columns) if c.unreadable}
    if refused:
        assert allow_ambiguous and fmt in ("column", "table"), parsed.unreadable
    for j in refused:
        m = re.fullmatch(r"'(.*)' reads as (\S+) or (\S+?), and no number .*", parsed.columns[j].unreadable)
        assert m is not None, parsed.columns[j].unreadable
        written = [_expected_value(r[j], table.columns[j], units) for r in table.rows if r[j] is not None]
        readings = [float(x) * parsed.columns[j].factor for x in m.group(2, 3)]
        assert any(math.isclose(x, v, abs_tol=tol) for x in readings for v, tol in written), m.group(0)
    for i, (orig, got) in enumerate(zip(table.rows, parsed.rows, strict=True)):
        for j, (value, col) in enumerate(zip(orig, table.columns, strict=True)):
            if j in refused:
                assert got.get(parsed.columns[j].role) is None
                continue
            role = parsed.columns[j].role
            back = got.get(role)
            where = f"row {i} column {heads[j]!r} ({fmt}, {units})"
            if value is None or value == "":
                assert back in (None, ""), where
            elif isinstance(value, str):
                assert back == _text_expected(value, fmt), where
            else:
                expected, tol = _expected_value(value, col, units)
                assert isinstance(back, int | float), f"{where}: {back!r}"
                assert math.isclose(float(back), expected, abs_tol=tol), f"{where}: {back} != {expected} +- {tol}"


def _render_as_cli(table: StatsTable, fmt: str, units: Units) -> str:
    body = render(table, fmt, units)
    if fmt in ("column", "table"):  # what `nsys-doctor stats` (and nsys) print around a console report
        return f"\n ** {table.title} ({table.report}):\n\n{body}\n"
    return body


# --- every report of our own stats, every format, several units: parsed back to the same numbers ---------------


def _trace_paths() -> list[Path]:
    paths = [SAMPLE]
    for golden in (GOLDEN, TRACES / "multigpu" / "golden"):
        if golden.is_dir():
            paths += [golden.parent / f"{d.name}.sqlite" for d in sorted(golden.iterdir()) if d.is_dir()]
    return [p for p in paths if p.exists()]


def _report_names() -> list[str]:
    load_all()
    return sorted(REGISTRY)


_TABLES: dict[tuple[Path, str], StatsTable] = {}


def _table(path: Path, name: str) -> StatsTable:
    key = (path, name)
    if key not in _TABLES:
        t = run_report(ReportContext(open_trace(path), EventFilter()), parse_report_arg(name))
        if len(t.rows) > TRACE_ROWS_MAX:
            t = StatsTable(t.report, t.title, t.columns, t.rows[:TRACE_ROWS_MAX], t.skipped)
        _TABLES[key] = t
    return _TABLES[key]


@pytest.mark.parametrize("path", _trace_paths(), ids=lambda p: p.stem)
@pytest.mark.parametrize("report", _report_names())
def test_own_stats_round_trip(path: Path, report: str):
    table = _table(path, report)
    if not table.rows:
        pytest.skip(f"{report} has no rows on {path.stem}")
    for fmt in FORMATS:
        for units in UNIT_SETS:
            parsed = parse_pasted(_render_as_cli(table, fmt, units), f"{report}.{fmt}")
            assert len(parsed.tables) == 1, [t.describe() for t in parsed.tables]
            t = parsed.tables[0]
            _check_round_trip(table, fmt, units, t)
            if fmt in ("column", "table"):
                assert (t.report, t.kind_from) == (report, "title")
            elif report in COLUMN_KINDS:
                assert t.kind == COLUMN_KINDS[report], (fmt, t.describe())


def test_own_stats_many_reports_in_one_paste():
    """`nsys-doctor stats` with several reports: every table found, each with its own report name."""
    names = ["cuda_api_sum", "cuda_gpu_kern_sum", "cuda_gpu_mem_time_sum", "cuda_gpu_mem_size_sum", "nvtx_sum"]
    for fmt in FORMATS:
        text = "".join(_render_as_cli(_table(SAMPLE, n), fmt, Units()) for n in names)
        parsed = parse_pasted(f"$ nsys-doctor stats sample.sqlite --format {fmt}\n" + text)
        assert [t.kind for t in parsed.tables] == ["api", "kernels", "mem_time", "mem_size", "nvtx"], fmt
        for t, n in zip(parsed.tables, names, strict=True):
            assert len(t.rows) == len(_table(SAMPLE, n).rows)


def test_golden_nsys_files_parse():
    """Real nsys 2025.3 output (the parity goldens): csv, json and the table format with its Processing lines."""
    if not GOLDEN.is_dir():
        pytest.skip("no shared goldens")
    seen = 0
    for f in sorted(GOLDEN.glob("*/*")):
        if f.suffix not in (".csv", ".json", ".txt") or f.stat().st_size == 0:
            continue
        parsed = parse_pasted(f.read_text(), str(f))
        assert parsed.tables, f
        seen += 1
        if f.name.startswith("stats_cuda_gpu_kern_sum"):
            top = parsed.tables[0].rows[0]
            first = f.read_text().splitlines()[1]
            assert float(first.split(",")[0]) == top["share"]
            assert int(first.split(",")[1]) == top["total_ns"]
        if f.name == "table_usec.txt":
            assert [t.report for t in parsed.tables] == ["cuda_gpu_kern_sum", "cuda_api_sum", "cuda_kern_exec_sum"]
            assert all(t.args == "base" for t in (parsed.tables[0], parsed.tables[2]))
    assert seen > 50


# --- generated tables -------------------------------------------------------------------------------------------

NUMERIC_COLUMNS = (
    *DUR_COLUMNS,
    Column("Total", "mem_B"),
    Column("Count"),
    Column("Start", "ts_ns"),
    Column("Throughput", "thru_B"),
    Column("Avg GPU Ops"),
)
TEXT_COLUMNS = (Column("Style"), Column("Category"), Column("Operation"), Column("Range"))

_letters = st.characters(blacklist_categories=("Cc", "Cs", "Co", "Cn", "Zl", "Zp", "Zs"))
names_st = st.text(alphabet=st.one_of(_letters, st.just(" ")), min_size=1, max_size=140).map(
    lambda s: "k" + " ".join(s.split())
)


def _value(col: Column) -> st.SearchStrategy:
    if col.unit == "ratio_%":
        v = st.floats(0, 100).map(lambda x: round(x, 1))
    elif col.unit in ("dur_ns", "ts_ns", "mem_B", "thru_B"):
        v = st.one_of(st.integers(0, 10**13), st.floats(0, 1e12).map(lambda x: round(x, 1)))
    elif col.label == "Avg GPU Ops":
        v = st.floats(0, 1e6).map(lambda x: round(x, 1))
    else:
        v = st.integers(0, 10**10)
    return st.one_of(v, st.none()) if col.label not in ("Time",) else v


@st.composite
def stats_tables(draw) -> StatsTable:
    numeric = draw(st.lists(st.sampled_from(NUMERIC_COLUMNS), min_size=1, max_size=6, unique=True))
    if [c.label for c in numeric] == ["Avg GPU Ops"]:  # every nsys table has a header with a unit or known label
        numeric.insert(0, NUMERIC_COLUMNS[0])
    text = draw(st.lists(st.sampled_from(TEXT_COLUMNS), max_size=1, unique=True))
    columns = (*numeric, *text, Column("Name"))
    rows = []
    for _ in range(draw(st.integers(1, 6))):
        row = [draw(_value(c)) for c in numeric]
        row += [draw(st.sampled_from(["PushPop", "StartEnd", "CUDA_KERNEL"])) for _ in text]
        row.append(draw(names_st))
        rows.append(tuple(row))
    return StatsTable("generated", "Generated Summary", columns, rows)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    table=stats_tables(),
    fmt=st.sampled_from(FORMATS),
    time=st.sampled_from(sorted(DISPLAY_TIME_UNITS)),
    mem=st.sampled_from(sorted(DISPLAY_MEM_UNITS)),
)
def test_generated_tables_round_trip(table: StatsTable, fmt: str, time: str, mem: str):
    units = Units(time, mem)
    parsed = parse_pasted(_render_as_cli(table, fmt, units))
    assert len(parsed.tables) == 1
    _check_round_trip(table, fmt, units, parsed.tables[0], allow_ambiguous=True)


# --- numbers ----------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("cells", "text", "value"),
    [
        (["22.0", "90,268,588"], "90,268,588", Decimal(90268588)),
        (["22.0", "90,268.588"], "90,268.588", Decimal("90268.588")),
        (["22,0", "90.268,588"], "90.268,588", Decimal("90268.588")),
        (["22,0", "90 268,588"], "90 268,588", Decimal("90268.588")),
        (["22,0", "90\u202f268,588"], "90\u202f268,588", Decimal("90268.588")),
        (["22.0", "1'234.5"], "1'234.5", Decimal("1234.5")),
        (["0.0"], "1e-05", Decimal("0.00001")),
        (["7"], "", None),
    ],
)
def test_numbers(cells, text, value):
    read = resolve_numbers({0: cells, 1: [text]}, ["a", "b"])
    assert not read.unreadable
    assert read.columns[1].values == [value]


def test_numbers_refuse_two_numbers_in_one_cell():
    with pytest.raises(ValueError):
        parse_number("5  12")
    with pytest.raises(ValueError):
        parse_number("2 64 1")


# --- real pastes of many nsys versions --------------------------------------------------------------------------

# fixture -> (kind, top name (prefix), its share in %, how many tables)
REAL = {
    "nsys2023_stats_true_column.txt": ("kernels", "vectorAdd(", 100.0, 6),
    "nsys2022_old_titles_nosep.txt": ("kernels", "printArray(", 100.0, 5),
    "nsys2020_average_minimum.txt": ("kernels", "void gdeflate::gdeflateDecompress<2>", 95.7, 4),
    "nsys2021_average_ns_rst.txt": ("kernels", "nvkernel__ZN10coreneuron18solve_interleaved1", 32.3, 2),
    "gpukernsum_gridxyz.txt": ("kernels", "ampere_sgemm_32x32_sliced1x4_nn", 65.3, 5),
    "timemachine_pr1304_kernels.md": ("kernels", "void timemachine::k_atom_by_atom_energies<float>", 49.0, 1),
    "timemachine_pr1225_api.md": ("api", "cudaLaunchKernel", 48.7, 1),
    "miniqmc_issue265_headerless_api.md": ("api", "cuLaunchKernel", 34.2, 1),
    "ik_llama_pr1700_headerless_kernels.md": ("kernels", "void mmq_ids_helper<(int)0>", 8.2, 1),
    "fuser_pr4873_nccl.md": ("kernels", "ncclDevKernel_AllReduce_Sum_bf16_RING_LL", 99.9, 1),
    "tvm_pr16842_allreduce.md": ("kernels", "ncclDevKernel_AllReduce_Sum_f16_RING_LL", 33.2, 1),
    "nsys2024_ascii_clipped.md": ("kernels", "k_w5_compress_list(", 18.5, 1),
    "nsys2025_graph_launch.txt": ("kernels", "void at::native::<unnamed>::multi_tensor_apply_kernel", 100.0, 4),
    "nsys2026_nosep_column.txt": ("kernels", "void add_kernel<float>", 100.0, 1),
    "synth_fr_decimal_comma_column.txt": ("kernels", "elementwise_kernel", 22.0, 1),
    "synth_de_box_table_ms.txt": ("api", "cudaLaunchKernel", 54.9, 1),
    "synth_markdown_us.md": ("kernels", "elementwise_kernel", 22.0, 1),
    "synth_semicolon_decimal_comma.csv": ("mem_time", "[CUDA memcpy Host-to-Device]", 99.5, 1),
    "synth_fr_headerless_space_groups.txt": ("kernels", "elementwise_kernel", 19.0, 1),
    "synth_ch_apostrophe_column.txt": ("kernels", "gemv_kernel", 61.2, 1),
    "synth_de_dot_thousands_column.txt": ("api", "cudaLaunchKernel", 71.4, 1),
    "synth_whole_run_weight_loading.txt": ("kernels", "gemv_kernel", 72.5, 3),
}
REFUSED = {"synth_ambiguous_mem_size.txt"}  # fixtures whose numbers must not be read


def test_every_fixture_is_listed():
    files = {p.name for p in PASTED.iterdir() if p.name != "SOURCES.md"}
    assert files == set(REAL) | REFUSED
    sources = (PASTED / "SOURCES.md").read_text()
    for name in files:
        assert name in sources, f"{name} has no source in SOURCES.md"


@pytest.mark.parametrize("name", sorted(REAL))
def test_real_paste_top_row(name: str):
    kind, top, share, n_tables = REAL[name]
    parsed = parse_pasted((PASTED / name).read_text(), name)
    assert len(parsed.tables) == n_tables, [t.describe() for t in parsed.tables]
    table = parsed.of_kind(kind)[0]
    best = max(table.rows, key=lambda r: r["share"])  # type: ignore[arg-type, return-value]
    assert str(best["name"]).startswith(top)
    assert best["share"] == share
    assert table.rows[0] is best  # nsys sorts by time: the first row is the top one
    if kind == "kernels":
        e = explain(parsed, RULES)
        assert e.kernels[0]["name"] == best["name"]
        assert e.kernels[0]["share"] == pytest.approx(share / 100)


def test_real_paste_units_and_eras():
    old = parse_pasted((PASTED / "nsys2020_average_minimum.txt").read_text())
    kern = old.of_kind("kernels")[0]
    assert [c.role for c in kern.columns] == ["share", "total_ns", "count", "avg_ns", "min_ns", "max_ns", "name"]
    assert kern.column("avg_ns").unit == "ns"  # type: ignore[union-attr]  # "Average": unit from "Total Time (ns)"
    size = old.of_kind("mem_size")[0]
    assert size.column("total_bytes").unit == "KiB"  # type: ignore[union-attr]  # from "(by size in KiB)"
    assert size.rows[1]["total_bytes"] == pytest.approx(11718.751 * 1024)
    de = parse_pasted((PASTED / "synth_de_box_table_ms.txt").read_text()).tables[0]
    assert (de.layout, de.rows[0]["total_ns"], de.rows[0]["count"]) == ("table", 822_222_000, 118_718)
    fr = parse_pasted((PASTED / "synth_fr_decimal_comma_column.txt").read_text()).tables[0]
    assert (fr.rows[0]["total_ns"], fr.rows[0]["count"], fr.args) == (90_268_588, 49_249, "base")
    grid = parse_pasted((PASTED / "gpukernsum_gridxyz.txt").read_text()).of_kind("kernels")[0]
    assert grid.report == "cuda_gpu_kern_gb_sum"
    assert (grid.rows[1]["grid"], grid.rows[1]["block"]) == ("4 4 1", "32 32 1")
    headerless = parse_pasted((PASTED / "miniqmc_issue265_headerless_api.md").read_text()).tables[0]
    assert headerless.layout == "headerless" and headerless.partial and headerless.issues


def test_titles_of_every_era():
    text = (PASTED / "nsys2022_old_titles_nosep.txt").read_text()
    parsed = parse_pasted(text)
    assert [t.report for t in parsed.tables] == [
        "osrt_sum",
        "cuda_api_sum",
        "cuda_gpu_kern_sum",
        "cuda_gpu_mem_time_sum",
        "cuda_gpu_mem_size_sum",
    ]
    assert any("SKIPPED" in n for n in parsed.notes)
    graph = parse_pasted((PASTED / "nsys2025_graph_launch.txt").read_text())
    assert [t.report for t in graph.tables][:2] == ["cuda_api_sum", "cuda_gpu_kern_sum"]


# --- the explanation --------------------------------------------------------------------------------------------


def _explain_file(path: Path):
    return explain(parse_pasted(path.read_text(), str(path)), RULES)


def test_explain_decode_pathologies_table():
    path = GOLDEN / "decode_pathologies" / "table_usec.txt"
    if not path.exists():
        pytest.skip("no shared goldens")
    e = _explain_file(path)
    ids = [f.id for f in e.findings]
    assert ids[:2] == ["launch-bound", "host-sync-in-inference"]
    assert e.findings[0].severity == "critical"
    assert e.diagnosis["family"] == "gemv" and e.diagnosis["host_first"] == "launch-bound"
    assert e.next_actions[0].startswith(f"{e.findings[0].title}: ")  # the launch-bound finding comes first
    assert e.kernels[0]["label"] == "elementwise_kernel" and e.kernels[0]["share"] == pytest.approx(0.22)
    assert e.api["syncs"]["count"] == 800  # type: ignore[index]
    assert any("Memory copies: paste" in c for c in e.cannot_tell)
    d = json.loads(render_json(e))
    assert (d["schema"], d["kind"]) == ("nsys-doctor/2", "explain")
    for key in ("findings", "kernels", "families", "api", "memory", "diagnosis", "next_actions", "cannot_tell"):
        assert key in d
    assert {"id", "severity", "title", "summary", "evidence", "action"} <= set(d["findings"][0])
    term = render_terminal(e, color=False)
    assert "\x1b[" not in term and "launch-bound" in term and "What the text cannot tell" in term
    md = render_markdown(e)
    assert md.startswith("## nsys-doctor explain") and "| share | total |" in md


def _golden_paste(name: str, files: tuple[str, ...]) -> str:
    d = GOLDEN / name
    return "\n".join(f"** ({f.removeprefix('stats_').removesuffix('.csv')}):\n" + (d / f).read_text() for f in files)


@pytest.mark.parametrize(
    ("name", "trace", "finding"),
    [("decode_graph_graph", "graph", "graph-trace-not-node"), ("decode_graph_node", "node", None)],
)
def test_explain_infers_graph_trace_mode(name: str, trace: str, finding: str | None):
    if not (GOLDEN / name).is_dir():
        pytest.skip("no shared goldens")
    text = _golden_paste(name, ("stats_cuda_api_sum.csv", "stats_cuda_gpu_kern_sum_base.csv"))
    e = explain(parse_pasted(text), RULES)
    assert e.graphs["inferred_trace"] == trace
    assert ("graph-trace-not-node" in [f.id for f in e.findings]) == (finding is not None)
    if finding:
        assert e.diagnosis["kind"] == "recapture"


@pytest.mark.parametrize("name", ["decode_pathologies", "decode_eager", "decode_graph_node", "prefill_2048"])
def test_explain_agrees_with_report_on_the_top_family(name: str):
    """The whole-run summary and the report's inference window name the same top family on the real traces."""
    if not (GOLDEN / name).is_dir():
        pytest.skip("no shared goldens")
    from nsys_doctor.cli.report import diagnose_trace

    d = diagnose_trace(open_trace(TRACES / f"{name}.sqlite"), RULES)
    text = _golden_paste(name, ("stats_cuda_gpu_kern_sum.csv", "stats_cuda_api_sum.csv"))
    e = explain(parse_pasted(text), RULES)
    assert e.diagnosis["family"] == d.target["family"]
    report_ids = {f.id for f in d.findings}
    for fid in ("launch-bound", "host-sync-in-inference"):
        assert (fid in [f.id for f in e.findings if f.severity != "info"]) == (fid in report_ids), fid


def test_explain_nccl_and_copies():
    e = _explain_file(PASTED / "fuser_pr4873_nccl.md")
    assert e.nccl["share"] == pytest.approx(0.999)
    assert e.diagnosis["family"] == "communication"
    g = _explain_file(PASTED / "nsys2025_graph_launch.txt")
    assert g.graphs["inferred_trace"] == "graph" and g.findings[0].id == "graph-trace-not-node"
    assert g.memory["dominant"] == "dtod"
    s = _explain_file(PASTED / "nsys2023_stats_true_column.txt")
    assert s.memory["by_direction"]["htod"]["count"] == 2  # type: ignore[index]
    assert [f.id for f in s.findings if f.id == "sync-memcpy"] == ["sync-memcpy"]


def test_explain_without_kernel_table():
    e = _explain_file(PASTED / "timemachine_pr1225_api.md")
    assert e.diagnosis["kind"] == "need-data"
    assert any("cuda_gpu_kern_sum" in c for c in e.cannot_tell)
    assert "host-sync-in-inference" in [f.id for f in e.findings]  # 25,013 cudaEventSynchronize


def test_short_names():
    assert short_name("void at::native::elementwise_kernel<(int)128, (int)4>(int, T3)") == "elementwise_kernel"
    assert short_name("void at::native::<unnamed>::multi_tensor_apply_kernel<at::native::<unnamed>::Tens…") == (
        "multi_tensor_apply_kernel"
    )
    assert short_name("ncclDevKernel_AllReduce_Sum_bf16_RING_LL(ncclDevKernelArgsStorage<4096>)") == (
        "ncclDevKernel_AllReduce_Sum_bf16_RING_LL"
    )
    assert (
        short_name("nvjet_sm90_tst_64x8_64x16_2x1_v_bz_splitK_TNT") == "nvjet_sm90_tst_64x8_64x16_2x1_v_bz_splitK_TNT"
    )


# --- robustness -------------------------------------------------------------------------------------------------


def test_no_table_is_a_usage_error(tmp_path, capsys):
    with pytest.raises(UsageError, match=r"no nsys stats table found in notes\.txt"):
        load_pasted("The decode is slow, any idea?\n\nThanks!", "notes.txt")
    f = tmp_path / "empty.txt"
    f.write_text("")
    assert main(["explain", str(f)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "no nsys stats table found" in err and "nsys stats" in err
    assert main(["explain", str(tmp_path / "missing.txt")]) == 2
    assert "cannot read" in capsys.readouterr().err


def test_cli_formats_and_stdin(tmp_path, capsys, monkeypatch):
    src = PASTED / "nsys2023_stats_true_column.txt"
    assert main(["explain", str(src), "--format", "json"]) == 0
    d = json.loads(capsys.readouterr().out)
    assert d["kind"] == "explain" and d["kernels"][0]["label"] == "vectorAdd"
    out = tmp_path / "answer.md"
    assert main(["explain", str(src), "-f", "markdown", "-o", str(out)]) == 0
    assert out.read_text().startswith("## nsys-doctor explain")
    from click.testing import CliRunner

    from nsys_doctor.cli.app import _register, cli

    _register()
    res = CliRunner().invoke(cli, ["explain", "-"], input=src.read_bytes())
    assert res.exit_code == 0 and "vectorAdd" in res.output and "standard input" in res.output


def test_utf16_and_crlf():
    text = (PASTED / "timemachine_pr1304_kernels.md").read_text().replace("\n", "\r\n")
    for data in (text.encode("utf-16"), text.encode("utf-8-sig")):
        parsed = parse_pasted(decode_text(data))
        assert parsed.tables[0].rows[0]["share"] == 49.0


def test_partial_and_broken_tables_report_what_was_understood():
    text = (PASTED / "nsys2023_stats_true_column.txt").read_text()
    lines = text.splitlines()
    start = next(i for i, line in enumerate(lines) if "cuda_api_sum" in line)
    broken = [*lines[: start + 5], "     ???  garbled ###", *lines[start + 5 :]]
    parsed = parse_pasted("\n".join(broken))
    api = parsed.of_kind("api")[0]
    assert api.partial and any("could not read" in i for i in api.issues)
    assert len(api.rows) == 6
    cut = "\n".join(lines[: start + 6])  # cut after two rows with 99.8% of the time: nothing visibly missing
    assert not parse_pasted(cut).of_kind("api")[0].partial
    cut = "\n".join(lines[: start + 5])  # cut after the first row: 97.0%
    api = parse_pasted(cut).of_kind("api")[0]
    assert api.partial and len(api.rows) == 1
    e = explain(parse_pasted(cut), RULES)
    assert any("Rows missing from the cuda_api_sum" in c for c in e.cannot_tell)


def test_copy_artifacts_are_removed():
    text = (PASTED / "timemachine_pr1304_kernels.md").read_text()
    quoted = "\n".join("> " + line for line in text.splitlines())
    tagged = "\n".join(f"[1,0]<stdout>: {line}" for line in text.splitlines())
    coloured = text.replace("CUDA Kernel Statistics:", "\x1b[1mCUDA Kernel Statistics:\x1b[0m")
    for variant in (quoted, tagged, coloured):
        t = parse_pasted(variant).tables[0]
        assert (t.report, t.rows[0]["share"], len(t.rows)) == ("cuda_gpu_kern_sum", 49.0, 4)


def test_several_tables_of_a_kind_are_named():
    text = (PASTED / "timemachine_pr1304_kernels.md").read_text()
    e = explain(parse_pasted("Before:\n" + text + "\nAfter:\n" + text), RULES)
    assert any("2 kernel tables" in n for n in e.notes)


def test_json_that_nsys_did_not_escape():
    text = '[\n  {\n    "Time (%)": 60.0,\n    "Total Time (ns)": 60,\n    "Name": "kernel<"x">"\n  },\n'
    text += '  {\n    "Time (%)": 40.0,\n    "Total Time (ns)": 40,\n    "Name": "other"\n  }\n]\n'
    parsed = parse_pasted(text)
    assert len(parsed.tables) == 1 and len(parsed.tables[0].rows) == 1
    assert parsed.tables[0].issues


@settings(max_examples=200, deadline=None)
@given(st.text(max_size=400))
def test_arbitrary_text_never_raises(text: str):
    parsed = parse_pasted(text)
    e = explain(parsed, RULES)
    render_terminal(e, color=False)
    render_markdown(e)
    json.loads(render_json(e))


@settings(max_examples=80, deadline=None)
@given(name=st.sampled_from(sorted(REAL)), cut=st.floats(0, 1), noise=st.sampled_from(["", "...", "|", "  1,2  ", "-"]))
def test_cut_and_noisy_pastes_never_raise(name: str, cut: float, noise: str):
    text = (PASTED / name).read_text()
    pos = int(len(text) * cut)
    parsed = parse_pasted(text[:pos] + noise + "\n" + text[pos : pos + 200])
    e = explain(parsed, RULES)
    render_terminal(e, color=False)
    json.loads(render_json(e))


# --- number conventions: read right or refused, never misread ----------------------------------------------------


def test_locale_numbers_are_read_right():
    fr = parse_pasted((PASTED / "synth_fr_headerless_space_groups.txt").read_text()).tables[0]
    assert fr.layout == "headerless" and fr.readable
    row = fr.rows[0]
    assert (row["share"], row["total_ns"], row["count"]) == (19.0, 285_118_634, 3_040)
    assert (row["avg_ns"], row["min_ns"], row["max_ns"], row["stddev_ns"]) == (93_789, 88_320, 120_416, 5_123.4)
    assert row["name"] == "elementwise_kernel"
    ch = parse_pasted((PASTED / "synth_ch_apostrophe_column.txt").read_text()).tables[0]
    assert [(r["total_ns"], r["count"], r["avg_ns"]) for r in ch.rows] == [
        (153_331_200, 25_056, 6_119.5),
        (97_211_904, 50_112, 1_939.9),
    ]
    de = parse_pasted((PASTED / "synth_de_dot_thousands_column.txt").read_text()).tables[0]
    assert [(r["share"], r["total_ns"], r["count"], r["stddev_ns"]) for r in de.rows] == [
        (71.4, 1_234_567_890, 150_112, 60_612.7),
        (28.6, 494_471_104, 2_024, 1_365_070.4),
    ]


@pytest.mark.parametrize(
    ("columns", "unreadable", "why"),
    [
        ({0: ["12", "7"], 1: ["1,234", "1,000"]}, {1}, "'1,234' reads as 1234 or 1.234"),  # nothing decides
        ({0: ["19.5"], 1: ["1,5"]}, {0, 1}, "disagree on the decimal separator"),
        ({0: ["1.5"], 1: ["1,234,567", "1 234"]}, {1}, "groups digits with both space and comma"),
        ({0: ["1.5"], 1: ["1,234", "12345", "1,234,567"]}, {1}, "'12345' has no comma between thousands"),
        ({0: ["19,0"], 1: ["1,234.5"]}, {0, 1}, "'b' reads only with a decimal dot ('1,234.5'), 'a' only with a"),
        ({0: ["1.5"], 1: ["1.2.3", "4"]}, {1}, "'1.2.3' is not a number"),
    ],
)
def test_number_columns_that_cannot_be_read_say_why(columns, unreadable, why):
    read = resolve_numbers(columns, ["a", "b"])
    assert set(read.unreadable) == unreadable
    assert all(why in r for r in read.unreadable.values())
    assert not set(read.columns) & unreadable


def test_counts_group_thousands_so_they_exclude_that_decimal_separator():
    read = resolve_numbers({0: ["1,000", "12"], 1: ["536,871", "8,389"]}, ["Count", "Total"], integers=frozenset({0}))
    assert (read.decimal, read.unreadable) == (".", {})  # counts grouped with commas: the comma is not decimal
    assert read.columns[1].values == [Decimal(536871), Decimal(8389)]
    clash = resolve_numbers({0: ["118.718"], 1: ["22.0"]}, ["Num Calls", "Time (%)"], integers=frozenset({0}))
    assert set(clash.unreadable) == {0, 1}
    assert "'Num Calls' only with a decimal comma ('118.718')" in clash.unreadable[0]
    alone = resolve_numbers({0: ["1,000"]}, ["Instances"], integers=frozenset({0}))
    assert alone.columns[0].values == [Decimal(1000)]


def test_one_unambiguous_cell_decides_the_table():
    read = resolve_numbers({0: ["0,475", "1,833"], 1: ["1.234.567", "12"]}, ["a", "b"])  # 0,475 can only be 0.475
    assert (read.decimal, read.unreadable) == (",", {})
    assert read.columns[0].values == [Decimal("0.475"), Decimal("1.833")]
    assert read.columns[1].values == [Decimal(1234567), Decimal(12)]
    with pytest.raises(ValueError):
        parse_number("5  12")
    with pytest.raises(ValueError):
        parse_number("2 64 1", ".", "")


def test_ambiguous_table_is_refused_with_the_reason(tmp_path, capsys):
    path = PASTED / "synth_ambiguous_mem_size.txt"
    text = path.read_text()
    with pytest.raises(UsageError, match=r"'536,871' reads as 536871 or 536\.871"):
        load_pasted(text, path.name)
    assert main(["explain", str(path)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "Total (MB)" in err and "LC_ALL=C" in err
    # a row whose numbers can only have a decimal comma (0,000) settles it for the whole table
    row = "      8,389      8     1,049     1,049     1,048     1,049        0,000  [CUDA memcpy Device-to-Host]\n"
    size = parse_pasted(text + row).tables[0]
    assert size.readable and [r["total_bytes"] for r in size.rows] == [536_871_000, 8_389_000]


def test_unreadable_table_is_listed_not_interpreted():
    text = (
        (PASTED / "synth_ambiguous_mem_size.txt").read_text()
        + "\n"
        + (PASTED / "synth_ch_apostrophe_column.txt").read_text()
    )
    e = explain(load_pasted(text, "two.txt"), RULES)
    assert e.kernels[0]["name"] == "gemv_kernel"
    assert e.memory == {}  # the size table is not read, so nothing about copies is said from it
    assert [u["report"] for u in e.source["unreadable_tables"]] == ["cuda_gpu_mem_size_sum"]  # type: ignore[index]
    assert any("not interpreted" in n and "536,871" in n for n in e.notes)
    d = json.loads(render_json(e))
    assert d["source"]["tables"][0]["readable"] is False
    assert "Not interpreted: cuda_gpu_mem_size_sum" in render_terminal(e, color=False)
    assert "Not interpreted: cuda_gpu_mem_size_sum" in render_markdown(e)


def test_single_spaces_are_never_split_into_numbers():
    rows = (PASTED / "synth_fr_headerless_space_groups.txt").read_text().splitlines()[2:]
    collapsed = "\n".join(" ".join(r.split()) for r in rows)  # whitespace collapsed: "19,0 285 118 634 3 040 ..."
    with pytest.raises(UsageError, match="single spaces"):
        load_pasted(collapsed, "collapsed.txt")
    # without thousands separators, single spaces are unambiguous and the row is read
    plain = parse_pasted("19.0 285118634 3040 93789.0 92512.0 88320 120416 5123.4 elementwise_kernel").tables[0]
    assert (plain.rows[0]["total_ns"], plain.rows[0]["count"]) == (285_118_634, 3_040)


def test_misaligned_row_keeps_space_grouped_numbers():
    text = (
        " Time (%)  Total Time (ns)  Instances  Avg (ns)  Name\n"
        " --------  ---------------  ---------  --------  ----\n"
        "     19,0      285 118 634      3 040  93 789,0  elementwise_kernel\n"
        "  10,0     150 062 400   1 000   150 062,4   gemv_kernel\n"  # shifted: read by tokens, not columns
    )
    t = parse_pasted(text).tables[0]
    assert [(r["share"], r["total_ns"], r["count"], r["avg_ns"]) for r in t.rows] == [
        (19.0, 285_118_634, 3_040, 93_789),
        (10.0, 150_062_400, 1_000, 150_062.4),
    ]


# --- what is not text: traces, binary data, odd encodings, endless or closed input -------------------------------


def test_traces_and_binary_files_are_refused(tmp_path):
    trace = tmp_path / "run.sqlite"
    trace.write_bytes(SQLITE_MAGIC + b"\x10\x00" * 64)
    with pytest.raises(UsageError, match=r"SQLite database") as exc:
        read_source(trace)
    assert f"nsys-doctor report {trace}" in exc.value.hint
    rep = tmp_path / "run.nsys-rep"
    rep.write_bytes(b"\x00\x01binary")
    with pytest.raises(UsageError, match="Nsight Systems report") as exc:
        read_source(rep)
    assert "nsys-doctor report" in exc.value.hint
    blob = tmp_path / "blob.bin"
    blob.write_bytes(b"Time (%)\n" + bytes(range(256)) * 8)
    with pytest.raises(UsageError, match="binary data"):
        read_source(blob)
    ctrl = tmp_path / "ctrl.txt"
    ctrl.write_bytes(b"Time (%)  Name\n" + b"\x01\x02\x03\x04\x05\x06\x07\x0e\x0f" * 20)
    with pytest.raises(UsageError, match="control characters"):
        read_source(ctrl)


def test_encodings_are_decoded_or_refused():
    text = (PASTED / "synth_fr_headerless_space_groups.txt").read_text()
    for enc in ("utf-16", "utf-16-be", "utf-32"):
        data = text.encode(enc)
        if enc == "utf-16-be":
            data = b"\xfe\xff" + data
        assert decode_text(data) == text, enc
    with pytest.raises(UsageError, match="byte-order mark but is not valid UTF-16"):
        decode_text("Time (%)".encode("utf-16") + b"\x00")  # odd length
    with pytest.raises(UsageError, match="UTF-16 text without a byte-order mark"):
        decode_text(text.encode("utf-16-le"))
    with pytest.raises(UsageError, match=r"not valid UTF-8 \(byte 0xff at offset 3\)"):
        decode_text("19,0\u202f".encode()[:3] + b"\xff" + "285\u202f118".encode())
    assert decode_text(b"Avg (\xb5s)") == "Avg (µs)"  # an 8-bit (Windows-1252) file with no UTF-8 in it


class _Endless(io.RawIOBase):
    """A stream that never ends, counting what was read from it."""

    def __init__(self) -> None:
        self.served = 0

    def readable(self) -> bool:
        return True

    def read(self, n: int = -1) -> bytes:
        assert n > 0, "an endless stream must be read in bounded chunks"
        self.served += n
        return b"x" * n


def test_input_is_capped_and_read_in_chunks():
    endless = _Endless()
    with pytest.raises(UsageError, match="larger than 100,000 bytes"):
        read_stream(endless, "standard input", limit=100_000)
    assert endless.served == 100_001
    assert read_stream(io.BytesIO(b"a" * 1000), "x", limit=1000) == b"a" * 1000
    zeros = _Endless()
    zeros.read = lambda n=-1: b"\x00" * n  # type: ignore[method-assign]
    with pytest.raises(UsageError, match="NUL bytes"):
        read_stream(zeros, "/dev/zero")
    assert MAX_INPUT_BYTES == 64 * 1024 * 1024


def test_closed_or_unreadable_stdin_is_one_line(monkeypatch, capsys):
    monkeypatch.setattr(sys, "stdin", None)
    assert main(["explain", "-"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "standard input is closed" in err
    closed = io.TextIOWrapper(io.BytesIO(b"x"))
    closed.close()
    monkeypatch.setattr(sys, "stdin", closed)
    assert main(["explain", "-"]) == 2
    assert "standard input is closed" in capsys.readouterr().err

    class Broken(io.RawIOBase):
        def readable(self) -> bool:
            return True

        def readinto(self, b) -> int:  # what a buffered reader calls
            raise OSError(5, "Input/output error")

    monkeypatch.setattr(sys, "stdin", io.TextIOWrapper(io.BufferedReader(Broken())))
    assert main(["explain", "-"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "cannot read standard input: Input/output error" in err


EXE = Path(sys.executable).with_name("nsys-doctor")


@pytest.mark.skipif(not EXE.exists() or not Path("/dev/zero").exists(), reason="needs the installed command")
@pytest.mark.parametrize(
    ("shell", "message"),
    [
        ("explain /dev/zero", "/dev/zero is binary data"),
        ("explain - < /dev/zero", "standard input is binary data"),
        ("explain - <&-", "standard input is closed"),
        ("explain - < {trace}", "standard input is an SQLite database"),
        ("explain {trace}", "is an SQLite database"),
        ("explain /", "/ is a directory"),
    ],
)
def test_cli_refusals_are_one_line_and_exit_2(shell: str, message: str):
    cmd = f"{EXE} " + shell.format(trace=SAMPLE)
    res = subprocess.run(["bash", "-c", cmd], capture_output=True, text=True, timeout=120)
    assert res.returncode == 2, res.stderr
    assert res.stdout == "" and res.stderr.count("\n") == 1 and message in res.stderr


@pytest.mark.skipif(not EXE.exists() or not Path("/usr/bin/yes").exists(), reason="needs the installed command")
def test_cli_endless_stdin_stops_at_the_cap():
    res = subprocess.run(["bash", "-c", f"yes | {EXE} explain -"], capture_output=True, text=True, timeout=300)
    assert res.returncode == 2 and res.stderr.count("\n") == 1 and "larger than 64 MiB" in res.stderr


# --- partial tables: used for what they show, nothing concluded from what they lack --------------------------------


def _with_line_after(text: str, anchor: str, line: str) -> str:
    lines = text.splitlines()
    i = next(k for k, x in enumerate(lines) if anchor in x)
    return "\n".join([*lines[: i + 1], line, *lines[i + 1 :]])


def test_whole_tables_allow_conclusions_from_absence():
    e = _explain_file(PASTED / "nsys2023_stats_true_column.txt")
    assert "launch-bound" in [f.id for f in e.findings]
    assert e.graphs == {"graph_launch_calls": 0, "complete": True}
    assert "kernels are launched one by one" in render_terminal(e, color=False)
    assert e.source["complete"] == {"kernels": True, "api": True, "memory": True}


def test_elided_kernel_table_gives_no_launch_ratio():
    text = (PASTED / "nsys2023_stats_true_column.txt").read_text()
    e = explain(parse_pasted(_with_line_after(text, "vectorAdd(const", "  ...")), RULES)
    assert "launch-bound" not in [f.id for f in e.findings]
    assert any(c.startswith("Whether kernel launches hold the GPU back") for c in e.cannot_tell)
    assert not any("No problem stands out" in a for a in e.next_actions)
    assert any(a.startswith("Nothing stands out in the rows shown") for a in e.next_actions)
    assert e.source["complete"]["kernels"] is False  # type: ignore[index]
    assert e.diagnosis["kernel_table_partial"] is True
    for out in (render_terminal(e, color=False), render_markdown(e)):
        flat = " ".join(out.split())  # the terminal wraps long lines
        assert "nothing concluded from what they lack): osrt_sum at line 17 (its shares add up to 99.0%); " in flat
        assert "lack): osrt_sum at line 17 (its shares add up to 99.0%); cuda_gpu_kern_sum at line 36 (rows cut" in flat
    d = json.loads(render_json(e))
    assert [p["report"] for p in d["source"]["partial_tables"]] == ["osrt_sum", "cuda_gpu_kern_sum"]


def test_elided_api_table_says_nothing_about_graphs():
    text = (PASTED / "nsys2023_stats_true_column.txt").read_text()
    e = explain(parse_pasted(_with_line_after(text, "cudaLaunchKernel ", "...")), RULES)
    assert e.graphs == {"graph_launch_calls": 0, "complete": False}
    term = render_terminal(e, color=False)
    assert "launched one by one" not in term and "whether graphs are used is unknown" in term
    assert "launched one by one" not in render_markdown(e)
    assert any(c.startswith("Whether CUDA graphs are used") for c in e.cannot_tell)
    sync = next(f for f in e.findings if f.id == "sync-memcpy")
    assert sync.summary.startswith("at least 3 synchronous calls")


def test_real_elided_paste_gives_no_launch_ratio():
    """CoreNEURON docs: both tables cut with `...`; the launch calls (2.1 s) outweigh the kernels shown (0.59 s)."""
    e = _explain_file(PASTED / "nsys2021_average_ns_rst.txt")
    assert [f.id for f in e.findings] == ["tail-outlier"]
    assert e.graphs["complete"] is False
    assert {p["report"] for p in e.source["partial_tables"]} == {"cuda_api_sum", "cuda_gpu_kern_sum"}  # type: ignore[union-attr]


def test_headerless_kernel_excerpt_gives_no_launch_ratio():
    text = (PASTED / "nsys2023_stats_true_column.txt").read_text()
    api = text[text.index("[5/8]") : text.index("[6/8]")]
    excerpt = (
        "\n     100.0        1,830,493      1,010   1,812.4   1,824.0     1,792     2,752         35.8  vectorAdd\n"
    )
    e = explain(parse_pasted(api + excerpt), RULES)
    assert e.source["tables"][1]["layout"] == "headerless"  # type: ignore[index]
    assert "launch-bound" not in [f.id for f in e.findings]
    whole = api + text[text.index("[6/8]") : text.index("[7/8]")]
    assert "launch-bound" in [f.id for f in explain(parse_pasted(whole), RULES).findings]


# --- copies from a whole run: loading is not a per-step problem ----------------------------------------------------

PER_STEP_COPIES = """
 Time (%)  Total Time (ns)  Count   Avg (ns)  Med (ns)  Min (ns)  Max (ns)  StdDev (ns)           Operation
 --------  ---------------  ------  --------  --------  --------  --------  -----------  ----------------------------
     90.0    1,080,000,000  24,000  45,000.0  44,800.0    43,200    61,440        812.5  [CUDA memcpy Host-to-Device]
     10.0      120,000,000  24,000   5,000.0   4,992.0     4,800     6,400        120.3  [CUDA memcpy Device-to-Host]

 Total (MB)  Count   Avg (MB)  Med (MB)  Min (MB)  Max (MB)  StdDev (MB)           Operation
 ----------  ------  --------  --------  --------  --------  -----------  ----------------------------
  6,291.456  24,000     0.262     0.262     0.262     0.262        0.000  [CUDA memcpy Host-to-Device]
      0.096  24,000     0.000     0.000     0.000     0.000        0.000  [CUDA memcpy Device-to-Host]
"""


def _kernel_part(text: str) -> str:
    return text[: text.index("[6/8]")]


def test_whole_run_weight_loading_is_not_per_step_advice():
    text = (PASTED / "synth_whole_run_weight_loading.txt").read_text()
    e = explain(parse_pasted(text), RULES)
    assert e.memory["share_of_gpu_time"] == pytest.approx(1_105_755_932 / (1_105_755_932 + 1_500_000_000))
    assert (e.memory["scope"], e.memory["copies_look_like"]) == ("whole run", "loading")
    assert "46.31 MB on average" in str(e.memory["copies_why"])
    assert not any("per-step copies" in a and "avoid" in a for a in e.next_actions)
    copy = next(a for a in e.next_actions if a.startswith("Memory copies take 42%"))
    assert "look like loading weights" in copy and "steady-state" in copy
    assert any(c.startswith("Whether the copies happen once (loading)") for c in e.cannot_tell)
    assert "copies look like: loading (start-up)" in render_terminal(e, color=False)
    # the same tables from a window (nsys stats --filter-nvtx): the copies are inside inference
    windowed = explain(parse_pasted("$ nsys stats --filter-nvtx decode llama.nsys-rep\n" + text), RULES)
    assert windowed.memory["copies_look_like"] == "per-step" and windowed.source["scope"] == "window"
    assert any("avoid per-step copies" in a for a in windowed.next_actions)


def test_whole_run_copies_without_sizes_or_with_many_small_ones():
    text = (PASTED / "synth_whole_run_weight_loading.txt").read_text()
    no_sizes = explain(parse_pasted(text[: text.index("[7/8]")]), RULES)
    assert no_sizes.memory["copies_look_like"] == "unknown"
    assert "give no copy sizes" in str(no_sizes.memory["copies_why"])
    assert not any("avoid per-step copies" in a for a in no_sizes.next_actions)
    small = explain(parse_pasted(_kernel_part(text) + PER_STEP_COPIES), RULES)
    assert small.memory["copies_look_like"] == "per-step"
    assert "24,000 host-to-device copies of 262.14 kB on average" in str(small.memory["copies_why"])
    assert "whole run includes start-up" in str(small.memory["copies_why"])
    copy = [i for i, a in enumerate(small.next_actions) if a.startswith("Memory copies take 44%")]
    assert copy and copy[0] > 0  # below half of GPU time: after the kernel advice
    assert "avoid per-step copies" in small.next_actions[copy[0]]


# --- deterministic output ----------------------------------------------------------------------------------------


def test_ties_are_broken_by_name():
    head = " Time (%)  Total Time (ns)  Instances  Name\n --------  ---------------  ---------  ----\n"
    rows = [
        "     25.0        1,000,000        100  zeta_gemv_kernel",
        "     25.0        1,000,000        100  alpha_gemv",
    ]
    rows += ["     25.0        1,000,000        100  rms_norm_kernel", "     25.0        1,000,000        100  softmax"]
    orders = []
    for permutation in (rows, rows[::-1], rows[1:] + rows[:1]):
        e = explain(parse_pasted(head + "\n".join(permutation) + "\n"), RULES)
        orders.append(([k["name"] for k in e.kernels], [f["family"] for f in e.families]))
    assert orders[0] == orders[1] == orders[2]
    assert orders[0][0] == ["alpha_gemv", "rms_norm_kernel", "softmax", "zeta_gemv_kernel"]
    assert orders[0][1] == ["gemv", "norm", "sampling"]  # gemv has 50%; norm and sampling tie at 25%: by name


@pytest.mark.parametrize("name", ["synth_whole_run_weight_loading.txt", "nsys2025_graph_launch.txt"])
def test_same_input_same_bytes(name: str):
    """Every format, in separate processes with different hash seeds (set and dict order of strings)."""
    outs = []
    for seed in ("1", "2"):
        env = {**os.environ, "PYTHONHASHSEED": seed}
        code = (
            "import sys; from nsys_doctor.cli.main import main\n"
            "for f in ('terminal', 'markdown', 'json'):\n"
            "    main(['explain', sys.argv[1], '--format', f])\n"
        )
        res = subprocess.run(
            [sys.executable, "-c", code, str(PASTED / name)], capture_output=True, env=env, timeout=120, check=True
        )
        outs.append(res.stdout)
    assert outs[0] == outs[1] and len(outs[0]) > 1000


# --- size and speed: linear scans, no quadratic corner ------------------------------------------------------------


def test_a_few_megabytes_and_hostile_text_complete():
    row = "     0.0      285,118,634      3,040   93,789.0   92,512.0    88,320   120,416    5,123.4  kernel_{i}\n"
    head = (
        " Time (%)  Total Time (ns)  Instances  Avg (ns)   Med (ns)   Min (ns)  Max (ns)  StdDev (ns)  Name\n"
        " --------  ---------------  ---------  ---------  ---------  --------  --------  -----------  ----\n"
    )
    big = head + "".join(row.format(i=i) for i in range(30_000))  # ~3 MB
    e = explain(load_pasted(big, "big.txt"), RULES, top=5)
    assert e.source["kernel_instances"] == 30_000 * 3_040
    json.loads(render_json(e))
    hostile = [
        '[{"a":[' * 50_000,  # nesting past the recursion limit
        '[{"Time (%)": 1, "Total Time (ns)": 2,\n' * 20_000,  # a JSON start on every line
        "| a | b |\n| --- | --- |\n" * 20_000,
        "a " * 100_000 + "\n" + "-- " * 100_000 + "\n" + "1\n" * 20_000,
        "** " + " " * 300_000 + "x",
        "Processing [x] with [" + "a" * 300_000,
    ]
    for text in hostile:
        parse_pasted(text)


def test_tail_outlier_rule_is_the_reports() -> None:
    """explain flags a kernel's max against its median with the report's rule (findings.is_tail_outlier)."""
    from nsys_doctor.analysis.findings import is_tail_outlier

    # tail score = max_us * log2(count + 1) * max/p50: 100 * log2(101) * 2.5 = 1664.6
    assert is_tail_outlier(100, 40_000, 100_000)
    assert not is_tail_outlier(9, 40_000, 100_000)  # too few instances
    assert not is_tail_outlier(100, 50_000, 100_000)  # max not over 2x p50
    assert not is_tail_outlier(100, 10_000, 30_000)  # score 30 * 6.66 * 3 = 599
    assert not is_tail_outlier(100, 0, 100_000)
    rows = [{"name": "k", "label": "k", "med_ns": 40_000, "avg_ns": 41_000, "max_ns": 100_000, "count": 100}]
    found = tail_findings(rows)
    assert [f.id for f in found] == ["tail-outlier"] and found[0].evidence["kernels"] == [
        {"name": "k", "med_ns": 40_000.0, "max_ns": 100_000.0}
    ]
    assert tail_findings([{**rows[0], "max_ns": 60_000}]) == []  # score 60 * 6.66 * 1.5 = 599
