"""GPU metrics, device memory, API call stacks and the ncu next command (analysis/metrics/, docs/metrics.md).

Numbers are checked against SQL written here, on the real traces: ``decode_graph_extras`` (GPU metrics at 10 kHz,
memory usage events), ``tests/data/backtrace_decode.sqlite`` (call stacks, a growing cache; see tests/data/README.md),
``decode_pathologies`` (a whole-run capture: launches before the window) and a trace without any of them.
"""

from __future__ import annotations

import json
import shlex
import sqlite3
from pathlib import Path

import numpy as np
import polars as pl
import pytest

from nsys_doctor.analysis.diagnosis import Diagnosis
from nsys_doctor.analysis.metrics import (
    coverage,
    fit_rates,
    inside,
    memory_summary,
    sample_periods,
    short_symbol,
)
from nsys_doctor.analysis.phases import Window
from nsys_doctor.report.diagnosis_json import render_json
from nsys_doctor.report.diagnosis_text import render_markdown, render_terminal
from nsys_doctor.report.html import render_report
from nsys_doctor.session import TraceSession

from .conftest import DATA, TRACES, needs_shared

EXTRAS = TRACES / "decode_graph_extras.sqlite"
PATHOLOGIES = TRACES / "decode_pathologies.sqlite"
EAGER = TRACES / "decode_eager.sqlite"
BACKTRACE = DATA / "backtrace_decode.sqlite"
GATE_UP = "nvjet_sm90_tst_128x8_64x12_2x1_v_bz_TNT"  # the fused gate+up GEMV [16384 x 2048] of the mini model
DRAM_READ = "DRAM Read Bandwidth [Throughput %]"
DEVICE_KINDS = "(2, 3, 4, 5, 6)"

_CACHE: dict[Path, Diagnosis] = {}


def diagnosis(path: Path) -> Diagnosis:
    if path not in _CACHE:
        with TraceSession.open(path) as s:
            _CACHE[path] = s.diagnose(10)
    return _CACHE[path]


def sql(path: Path, query: str, params: tuple[object, ...] = ()) -> list[tuple]:
    con = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    try:
        return con.execute(query, params).fetchall()
    finally:
        con.close()


def one(path: Path, query: str, params: tuple[object, ...] = ()) -> object:
    return sql(path, query, params)[0][0]


SAMPLES = (
    "SELECT g.timestamp AS t, g.value AS v FROM GPU_METRICS g JOIN TARGET_INFO_GPU_METRICS i "
    "ON i.typeId = g.typeId AND i.metricId = g.metricId WHERE i.metricName = ? AND (g.typeId & 255) = 0 "
    "AND g.timestamp >= ? AND g.timestamp < ?"
)


# ------------------------------------------------------------------------------------------------ GPU metrics


@needs_shared
def test_gpu_metrics_samples_and_window_mean_match_sql() -> None:
    d = diagnosis(EXTRAS)
    g = d.gpu_metrics
    assert g is not None
    w = d.window
    n, mean = sql(EXTRAS, f"SELECT count(*), avg(v) FROM ({SAMPLES})", (DRAM_READ, w.start, w.end))[0]
    assert g["samples_in_window"] == n == 1732
    assert g["window"]["dram_read"] == round(mean, 1)  # type: ignore[index]
    assert g["period_ns"] == 100002 and g["frequency_hz"] == 10000
    assert g["metrics"] == {  # the names in TARGET_INFO_GPU_METRICS
        "sm_active": "SMs Active [Throughput %]",
        "dram_read": DRAM_READ,
        "dram_write": "DRAM Write Bandwidth [Throughput %]",
        "tensor_active": "Tensor Active [Throughput %]",
    }


@needs_shared
def test_samples_inside_a_kernels_instances_match_sql() -> None:
    d = diagnosis(EXTRAS)
    w = d.window
    row = next(k for k in d.gpu_metrics["kernels"] if k["name"] == GATE_UP)  # type: ignore[index,union-attr]
    inside_sql = (
        "WITH kk AS (SELECT k.start, k.end FROM CUPTI_ACTIVITY_KIND_KERNEL k JOIN StringIds s "
        "ON s.id = k.demangledName WHERE s.value = ? AND k.start >= ? AND k.start <= ?), "
        f"ss AS ({SAMPLES}) "
        "SELECT count(*), avg(ss.v) FROM ss WHERE EXISTS (SELECT 1 FROM kk WHERE kk.start <= ss.t AND ss.t < kk.end)"
    )
    n, mean = sql(EXTRAS, inside_sql, (GATE_UP, w.start, w.end, DRAM_READ, w.start, w.end))[0]
    assert row["samples_inside"] == n == 269
    assert row["inside_mean"]["dram_read"] == round(mean, 1)


@needs_shared
def test_per_step_samples_match_sql() -> None:
    d = diagnosis(EXTRAS)
    per_step = {p["idx"]: p for p in d.gpu_metrics["per_step"]}  # type: ignore[index,union-attr]
    for r in d.steps.table.filter(pl.col("kind") == "decode").head(5).iter_rows(named=True):
        n, mean = sql(EXTRAS, f"SELECT count(*), avg(v) FROM ({SAMPLES})", (DRAM_READ, r["gpu_start"], r["gpu_end"]))[0]
        assert per_step[r["idx"]]["samples"] == n > 10
        assert per_step[r["idx"]]["dram_read"] == round(mean, 1)


@needs_shared
def test_fitted_gemv_bandwidth_agrees_with_bytes_over_time_and_confirms_memory_bound() -> None:
    """The gate+up GEMV reads its 16384 x 2048 bf16 weights once per instance: weight bytes over its median time,
    against the GPU's peak bandwidth, is what DRAM read % while it runs must be (independent of the fit)."""
    d = diagnosis(EXTRAS)
    w = d.window
    durs = sorted(
        r[0]
        for r in sql(
            EXTRAS,
            "SELECT k.end - k.start FROM CUPTI_ACTIVITY_KIND_KERNEL k JOIN StringIds s ON s.id = k.demangledName "
            "WHERE s.value = ? AND k.start >= ? AND k.start <= ?",
            (GATE_UP, w.start, w.end),
        )
    )
    peak = one(EXTRAS, "SELECT memoryBandwidth FROM TARGET_INFO_GPU")
    expected = 100 * 16384 * 2048 * 2 / (durs[len(durs) // 2] / 1e9) / float(peak)  # type: ignore[arg-type]
    assert 75 < expected < 81
    row = next(k for k in d.gpu_metrics["kernels"] if k["name"] == GATE_UP)  # type: ignore[index,union-attr]
    fitted = row["while_running"]["dram_read"]
    assert abs(fitted - expected) < 6, (fitted, expected)
    # the mean of the samples taken while it ran mixes in its neighbours: far below
    assert row["inside_mean"]["dram_read"] < 0.5 * fitted
    v = d.gpu_metrics["verdict"]  # type: ignore[index]
    assert v["family"] == "gemv" and v["bound"] == "memory-bound" and 60 <= v["dram_read"] <= 90
    assert d.gpu_metrics["fit"]["r2"]["dram_read"] > 0.99  # type: ignore[index]
    measured = str(d.target["measured"])
    assert measured.startswith("measured: DRAM read ") and "while the GEMV kernels run" in measured
    assert f"{d.gpu_metrics['fit']['samples']:,} samples" in measured  # type: ignore[index]
    assert measured in render_terminal(d, width=400, color=False)
    assert measured in render_markdown(d)
    assert json.loads(render_json(d))["diagnosis"]["measured"] == measured


# --------------------------------------------------------------------------------------------- device memory

LEVEL = f"""SELECT start, sum(CASE memoryOperationType WHEN 1 THEN -bytes ELSE bytes END)
    OVER (ORDER BY start, rowid) AS level FROM CUDA_GPU_MEMORY_USAGE_EVENTS
    WHERE memKind IN {DEVICE_KINDS} AND deviceId = 0"""


@needs_shared
def test_memory_peak_and_level_match_sql_without_growth() -> None:
    d = diagnosis(EXTRAS)
    m = d.memory
    assert m is not None
    w = d.window
    assert m["peak_bytes"] == one(EXTRAS, f"SELECT max(level) FROM ({LEVEL})") == 3743574104
    start_level = one(
        EXTRAS,
        "SELECT sum(CASE memoryOperationType WHEN 1 THEN -bytes ELSE bytes END) FROM CUDA_GPU_MEMORY_USAGE_EVENTS "
        f"WHERE memKind IN {DEVICE_KINDS} AND deviceId = 0 AND start <= ?",
        (w.start,),
    )
    assert m["in_use_at_window_start_bytes"] == start_level == m["in_use_at_window_end_bytes"]
    assert m["peak_at_ns"] == 0  # allocations made before the capture range: nsys dates them 0
    assert m["allocations_in_window"] == 0 and m["growth_in_window_bytes"] == 0
    assert not any(f.id == "device-memory-growth" for f in d.findings)
    assert "before the capture" in render_terminal(d, width=400, color=False)


@pytest.mark.finding("device-memory-growth")
def test_memory_growth_across_decode_steps_is_a_warning_without_cost() -> None:
    d = diagnosis(BACKTRACE)
    m = d.memory
    assert m is not None
    w = d.window
    allocs, growth = sql(
        BACKTRACE,
        "SELECT sum(memoryOperationType = 0), sum(CASE memoryOperationType WHEN 1 THEN -bytes ELSE bytes END) "
        f"FROM CUDA_GPU_MEMORY_USAGE_EVENTS WHERE memKind IN {DEVICE_KINDS} AND start > ? AND start <= ?",
        (w.start, w.end),
    )[0]
    assert m["allocations_in_window"] == allocs == 7  # one 20 MiB segment of PyTorch's cache every ~5 steps
    assert m["growth_in_window_bytes"] == growth == 7 * 20 * 2**20
    peak = one(BACKTRACE, f"SELECT max(level) FROM ({LEVEL})")
    assert m["peak_bytes"] == peak
    steps = m["steps"]
    assert steps["monotonic"] and steps["steps_growing"] == 7 and steps["steps_shrinking"] == 0  # type: ignore[index]
    f = next(f for f in d.findings if f.id == "device-memory-growth")
    assert f.cost_ns is None and f.cost_share is None  # memory explains no time
    share = steps["growth_bytes"] / peak  # type: ignore[index,operator]
    assert f.severity == "warning" and share >= 0.10 and f.evidence["growth_share_of_peak"] == round(share, 4)
    # the timeline ends at the peak, which the HTML report draws
    assert m["timeline"]["bytes"][-1] == peak  # type: ignore[index]
    page = render_report(d, None)
    assert 'id="memory"' in page and 'aria-label="device memory in use over time"' in page


def _events(rows: list[tuple[int, int, int]]) -> pl.DataFrame:
    """(start, bytes, op) rows as memory_usage_events gives them (device 0, kind Device)."""
    return pl.DataFrame(
        [(i, s, 0, 1, b, 2, op, None) for i, (s, b, op) in enumerate(rows)],
        schema={
            "seq": pl.Int64,
            "start": pl.Int64,
            "deviceId": pl.Int64,
            "pid": pl.Int64,
            "bytes": pl.Int64,
            "memKind": pl.Int64,
            "op": pl.Int64,
            "correlationId": pl.Int64,
        },
        orient="row",
    )


def _steps(n: int, length: int = 100) -> pl.DataFrame:
    return pl.DataFrame(
        {
            "idx": list(range(n)),
            "kind": ["decode"] * n,
            "start": [i * length for i in range(n)],
            "end": [i * length + length - 1 for i in range(n)],
            "gpu_start": [i * length for i in range(n)],
            "gpu_end": [i * length + length - 1 for i in range(n)],
        }
    )


def test_memory_one_allocation_is_not_growth_and_out_of_memory_is_critical() -> None:
    w = Window(0, 1000, "user", "test")
    no_fail = pl.DataFrame(schema={"start": pl.Int64, "name": pl.Utf8, "pid": pl.Int64})
    once = _events([(0, 1000, 0), (150, 500, 0)])  # a buffer allocated once, in step 1
    mem, finding = memory_summary(once, 0, w, _steps(10), [], None, no_fail, 1000)
    assert mem is not None and finding is None and mem["steps"]["steps_growing"] == 1  # type: ignore[index]
    small = _events([(0, 100_000, 0), *((i * 100 + 50, 10, 0) for i in range(1, 10))])  # grows a little, always
    _, finding = memory_summary(small, 0, w, _steps(10), [], None, no_fail, 1000)
    assert finding is not None and finding.severity == "info" and finding.cost_ns is None
    failed = pl.DataFrame({"start": [900], "name": ["cudaMalloc_v3020"], "pid": [1]})
    _, finding = memory_summary(small, 0, w, _steps(10), [], None, failed, 1000)
    assert finding is not None and finding.severity == "critical" and "out-of-memory" in finding.summary


# -------------------------------------------------------------------------------------------- call stacks


def test_callchains_group_the_slowest_calls_by_host_call_site() -> None:
    d = diagnosis(BACKTRACE)
    c = d.callchains
    assert c is not None
    w = d.window
    bt = "SELECT r.correlationId, s.value FROM CUPTI_ACTIVITY_KIND_RUNTIME r JOIN StringIds s ON s.id = r.nameId "
    bt += "WHERE r.callchainId IS NOT NULL AND r.start >= ? AND r.start <= ?"
    rows = sql(BACKTRACE, bt, (w.start, w.end))
    assert c["calls"] == len(rows) == 195
    # the duration is the call's own (its CUPTI row, eventClass 0/1), not the backtrace row's
    own = one(
        BACKTRACE,
        f"SELECT sum(c.end - c.start) FROM CUPTI_ACTIVITY_KIND_RUNTIME c JOIN ({bt}) b ON b.correlationId = "
        "c.correlationId WHERE c.callchainId IS NULL AND c.eventClass IN (0, 1)",
        (w.start, w.end),
    )
    assert c["api_time_ns"] == own
    sites = c["sites"]
    syncs = [s for s in sites if s["api"] == "cudaStreamSynchronize"]  # type: ignore[index]
    assert sum(s["count"] for s in syncs) == sum(1 for _, n in rows if n == "cudaStreamSynchronize") == 94
    # two host reads per step: the explicit .item() and emb[tok] indexed with a GPU scalar
    by_entry = {s["entry"]: s for s in syncs}
    assert set(by_entry) == {"torch::autograd::THPVariable_item", "torch::autograd::THPVariable_getitem"}
    getitem = one(
        BACKTRACE,
        "SELECT count(DISTINCT r.rowid) FROM CUPTI_ACTIVITY_KIND_RUNTIME r JOIN StringIds s ON s.id = r.nameId "
        "JOIN CUDA_CALLCHAINS c ON c.id = r.callchainId JOIN StringIds f ON f.id = c.symbol "
        "WHERE s.value = 'cudaStreamSynchronize' AND f.value LIKE 'torch::autograd::THPVariable_getitem%' "
        "AND r.start >= ? AND r.start <= ?",
        (w.start, w.end),
    )
    assert by_entry["torch::autograd::THPVariable_getitem"]["count"] == getitem == 47
    for s in syncs:
        assert s["issuer"] == "at::native::_local_scalar_dense_cuda"
        assert "at::native::item" in s["path"]
        assert not any(p.startswith(("c10::impl::", "at::_ops::")) for p in s["path"])
    assert sites[0]["api"] == "cudaMalloc"  # the growing cache's segments: the most time of all
    text = render_terminal(d, width=400, color=False)
    assert "Host call sites of the slowest CUDA API calls" in text and "THPVariable_getitem" in text


def test_short_symbol() -> None:
    assert (
        short_symbol("at::native::_local_scalar_dense_cuda(at::Tensor const&)::{lambda()#1}::operator()() const")
        == "at::native::_local_scalar_dense_cuda"
    )
    assert short_symbol("long at::Tensor::item<long>() const") == "at::Tensor::item"
    assert short_symbol("void at::native::(anonymous namespace)::f<int>(int)") == "at::native::f"
    assert short_symbol("cudaStreamSynchronize") == "cudaStreamSynchronize"


# ------------------------------------------------------------------------------------------ next commands


def _argv(path: Path) -> list[str]:
    kv = dict(sql(path, "SELECT name, value FROM META_DATA_CAPTURE WHERE name LIKE 'PROCESS_0:%'"))
    args = sorted((int(k.rsplit("_", 1)[1]), v) for k, v in kv.items() if k.startswith("PROCESS_0:ARGUMENT_"))
    return [kv["PROCESS_0:COMMAND"], *(v for _, v in args)]


def _skip_count(path: Path, name: str, w: Window) -> int:
    """Launches of kernels with ``name``'s base name before its first instance in the window."""
    q = (
        "WITH t AS (SELECT min(k.start) AS first, min(k.shortName) AS short FROM CUPTI_ACTIVITY_KIND_KERNEL k "
        "JOIN StringIds s ON s.id = k.demangledName WHERE s.value = ? AND k.start >= ? AND k.start <= ?) "
        "SELECT count(*) FROM CUPTI_ACTIVITY_KIND_KERNEL k, t WHERE k.shortName = t.short AND k.start < t.first"
    )
    return int(one(path, q, (name, w.start, w.end)))  # type: ignore[call-overload]


@needs_shared
def test_ncu_command_skips_the_launches_before_the_window() -> None:
    d = diagnosis(PATHOLOGIES)
    (c,) = d.next_commands
    top = d.kernels.filter(pl.col("family") == d.target["family"]).row(0, named=True)
    assert c["kernel"] == top["name"] and c["base_name"] == top["short"]
    n = _skip_count(PATHOLOGIES, str(c["kernel"]), d.window)
    assert c["launch_skip"] == n == 760  # the loading phase and the warm-up request come before the window
    regex = shlex.quote(f"regex:^{c['base_name']}$")
    assert str(c["command"]).startswith(f"ncu --kernel-name {regex} --launch-skip {n} --launch-count 1 --set full -o ")
    assert str(c["command"]).endswith(" -- " + shlex.join(_argv(PATHOLOGIES)))
    assert "--profile-from-start" not in str(c["command"])  # a whole-run capture: ncu counts from the start too
    assert c["cwd"] == "/app" and c["command_recorded"] is True
    assert str(c["command"]) in render_terminal(d, width=1000, color=False)
    assert str(c["command"]) in render_markdown(d)
    assert json.loads(render_json(d))["next_commands"][0]["command"] == c["command"]


@needs_shared
def test_ncu_command_counts_from_cuda_profiler_start_in_a_capture_range() -> None:
    d = diagnosis(EXTRAS)
    (c,) = d.next_commands
    assert c["launch_skip"] == _skip_count(EXTRAS, str(c["kernel"]), d.window)
    assert str(c["command"]).startswith("ncu --profile-from-start off --kernel-name ")
    assert str(c["command"]).endswith(" -- " + shlex.join(_argv(EXTRAS)))


def test_ncu_command_on_the_backtrace_trace() -> None:
    d = diagnosis(BACKTRACE)
    (c,) = d.next_commands
    assert c["launch_skip"] == _skip_count(BACKTRACE, str(c["kernel"]), d.window)
    assert str(c["command"]).endswith(" -- " + shlex.join(_argv(BACKTRACE)))
    assert c["cwd"] == "/tmp"


@needs_shared
def test_ncu_command_without_a_recorded_command_line() -> None:
    path = TRACES / "public" / "rodinia_gaussian_report2.sqlite"
    if not path.is_file():
        pytest.skip(f"{path} is not present")
    (c,) = diagnosis(path).next_commands
    assert c["command_recorded"] is False and str(c["command"]).endswith(" -- <your command line>")
    assert "does not record the command line" in str(c["why"])


# ----------------------------------------------------------------------------------- traces without them


@needs_shared
def test_a_trace_without_metrics_memory_or_stacks_shows_none_of_them() -> None:
    d = diagnosis(EAGER)
    assert d.gpu_metrics is None and d.memory is None and d.callchains is None
    assert "measured" not in d.target
    data = json.loads(render_json(d))
    assert data["gpu_metrics"] is None and data["memory"] is None and data["callchains"] is None
    text = render_terminal(d, width=200, color=False) + render_markdown(d) + render_report(d, None)
    for heading in ("GPU metrics", "Device memory", "Host call sites"):
        assert heading not in text
    assert len(d.next_commands) == 1  # the ncu command needs only kernels


@needs_shared
def test_graph_level_capture_gets_no_ncu_command() -> None:
    d = diagnosis(TRACES / "decode_graph_graph.sqlite")
    assert d.target["kind"] == "recapture" and d.next_commands == ()


# ------------------------------------------------------------------------------------------- the methods


def test_coverage_and_inside_on_known_intervals() -> None:
    ts = np.array([0, 100, 200, 300], dtype=np.int64)
    te, period = sample_periods(ts)
    assert period == 100 and te.tolist() == [100, 200, 300, 400]
    starts, ends = np.array([50, 180, 390]), np.array([120, 260, 500])
    assert coverage(ts, te, starts, ends).tolist() == [50.0, 40.0, 60.0, 10.0]
    assert inside(ts, starts, ends).tolist() == [False, True, True, False]


def test_fit_recovers_each_kernels_rate_from_mixed_samples() -> None:
    rng = np.random.default_rng(0)
    shares = rng.dirichlet([1.0, 1.0, 1.0], size=400)[:, :2]  # two kernels and idle time in each sample
    y = shares @ np.array([80.0, 10.0]) + rng.normal(0, 0.5, 400)
    rates, se, r2 = fit_rates(shares, y)
    assert abs(rates[0] - 80) < 1 and abs(rates[1] - 10) < 1 and (se < 0.5).all() and r2 is not None and r2 > 0.99


def test_backtrace_rows_do_not_count_a_call_twice() -> None:
    """--cudabacktrace adds an event-class-67 row beside each traced call's runtime row (same correlationId): the
    analyses see each call once."""
    import sqlite3

    from nsys_doctor.session import TraceSession

    path = DATA / "backtrace_decode.sqlite"
    con = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    calls, dup = con.execute("SELECT count(*), sum(eventClass = 67) FROM CUPTI_ACTIVITY_KIND_RUNTIME").fetchone()
    con.close()
    assert dup > 0
    with TraceSession.open(path) as t:
        api = t.frames.api
    assert api.height == calls - dup
    assert api["correlationId"].n_unique() == api.height
