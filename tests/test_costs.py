"""Findings ranked by what they cost: the GPU idle time host calls explain, severity from the share of the window,
the order of findings, and when the host goes before the kernels."""

from __future__ import annotations

import contextlib
import io
import json
import math
import sqlite3
from itertools import pairwise
from pathlib import Path

import numpy as np
import polars as pl
import pytest

from nsys_doctor.analysis.findings import HOST_CAUSES, severity_of
from nsys_doctor.analysis.host import gpu_idle, gpu_idle_caused
from nsys_doctor.cli.main import main
from nsys_doctor.cli.report import diagnose_trace
from nsys_doctor.loaders import load_rules

from .conftest import DATA, TRACES, merged_intervals, needs_shared, open_trace

PUBLIC = TRACES / "public"
ENGINES = TRACES / "engines"


def _busy(*iv: tuple[int, int], device: int = 0) -> pl.DataFrame:
    return pl.DataFrame(
        {"deviceId": [device] * len(iv), "start": [a for a, _ in iv], "end": [b for _, b in iv]},
        schema={"deviceId": pl.Int64, "start": pl.Int64, "end": pl.Int64},
    )


def _calls(*iv: tuple[int, int]) -> pl.DataFrame:
    return pl.DataFrame(
        {"start": [a for a, _ in iv], "end": [b for _, b in iv]}, schema={"start": pl.Int64, "end": pl.Int64}
    )


def test_gpu_idle_is_the_complement_of_busy_over_all_devices():
    busy = pl.concat([_busy((10, 20), (40, 50)), _busy((15, 45), device=1)])
    idle = gpu_idle(busy, 0, 100).frame()
    assert idle.select("start", "end").rows() == [(0, 10), (50, 100)]
    assert gpu_idle(_busy(), 5, 8).frame().select("start", "end").rows() == [(5, 8)]
    assert gpu_idle(_busy(), 8, 5).frame().is_empty()


def test_a_sync_costs_the_refill_that_starts_while_it_waits():
    # GPU busy 0-100 and 130-200; the host syncs from 60 to 101 (the GPU drains at 100), then launches at 130
    idle = gpu_idle(_busy((0, 100), (130, 200)), 0, 200)
    assert gpu_idle_caused(idle, _calls((60, 101)), sync=True) == 30
    # a sync that returns while the GPU still works costs nothing: its blocked time is the GPU's own work
    assert gpu_idle_caused(idle, _calls((10, 50)), sync=True) == 0
    # two syncs in the same drain count the idle interval once
    assert gpu_idle_caused(idle, _calls((60, 101), (100, 105)), sync=True) == 30


def test_a_sync_is_not_charged_a_long_gap_but_the_refill_before_it():
    # idle 100-130 (30 ns, a refill) and 200-1000 (a sleep); a sync from 90 to 250 waits through both starts
    idle = gpu_idle(_busy((0, 100), (130, 200), (1000, 1100)), 0, 1100)
    assert gpu_idle_caused(idle, _calls((90, 250)), sync=True) == 800
    assert gpu_idle_caused(idle, _calls((90, 250)), sync=True, shorter_than=100) == 30
    # the long gap alone began inside the call: nothing shorter did
    assert gpu_idle_caused(idle, _calls((150, 250)), sync=True, shorter_than=100) == 0


def test_idle_between_steps_is_the_short_intervals_inside_the_spans_less_those_skipped():
    # busy 0-100, 110-200, 230-300, 700-800, 820-900: idle intervals 1-4 are 100-110, 200-230, 300-700, 800-820
    idle = gpu_idle(_busy((0, 100), (110, 200), (230, 300), (700, 800), (820, 900)), 0, 900)
    none = np.zeros(0, dtype=np.int64)
    spans = np.array([100, 300]), np.array([230, 820])  # [100, 230] holds intervals 1-2, [300, 820] 3-4
    assert idle.inside(*spans, 1000, none) == 10 + 30 + 400 + 20
    assert idle.inside(*spans, 100, none) == 10 + 30 + 20  # the long interval (400) is an idle gap of its own
    assert idle.inside(*spans, 100, np.array([2])) == 10 + 20  # interval 2, a sync's refill, is that sync's
    # an interval only partly inside a span is not counted; no span, nothing
    assert idle.inside(np.array([105]), np.array([230]), 1000, none) == 30
    assert idle.inside(np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.int64), 1000, none) == 0


def _report_and_busy(path: Path) -> tuple[dict, list[list[int]]]:
    """(``report --format json`` of the trace, the union of its kernels, copies and memsets from its tables)."""
    if not path.is_file():
        pytest.skip(f"{path} is not present")
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        assert main(["report", str(path), "--format", "json", "--no-cache"]) == 0
    with sqlite3.connect(f"file:{path}?mode=ro", uri=True) as db:
        tables = {r[0] for r in db.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
        ops = [
            row
            for table in ("KERNEL", "MEMCPY", "MEMSET")
            if f"CUPTI_ACTIVITY_KIND_{table}" in tables
            for row in db.execute(f'SELECT start, "end" FROM CUPTI_ACTIVITY_KIND_{table}')
        ]
    return json.loads(out.getvalue()), merged_intervals(ops)


@pytest.mark.parametrize(
    "path",
    [
        # the weights streamed in from host memory inside each decode step: 30 ms of copies there, GPU work
        DATA / "runs" / "hf_llama_offloaded_b16_whole.sqlite",
        # kernels of one stream that overlap (launched early, programmatic dependent launch): 1,952 overlaps
        TRACES / "decode_eager.sqlite",
        DATA / "runs" / "jax_lax_cnn_whole.sqlite",
    ],
    ids=lambda p: p.stem,
)
def test_idle_inside_steps_is_the_time_no_kernel_copy_or_memset_runs(path: Path) -> None:
    """``host.step_idle_ns`` (launch-bound's measure) against its definition on the trace's tables: over the
    decode steps the report found, from each one's first kernel to its last, the time outside the union of every
    kernel, copy and memset, to the nanosecond (a copy inside a step is no idle; two kernels that overlap are not
    counted twice)."""
    doc, busy = _report_and_busy(path)
    steps = [s for s in doc["steps"]["per_step"] if s["kind"] != "prefill"]
    assert steps
    idle = 0
    for s in steps:
        lo, hi = s["gpu_start"], s["gpu_end"]
        idle += (hi - lo) - sum(min(b, hi) - max(a, lo) for a, b in busy if b > lo and a < hi)
    assert doc["host"]["step_idle_ns"] == idle


HOST_CAUSES_CASES = [
    # every one summed more than its window's idle time before each finding kept to its own intervals: launch-bound
    # counted the syncs' refills and the pageable copies' idle inside the steps, allocations on several threads
    # counted their common time more than once and the long gaps they overlap
    DATA / "runs" / "detector_frcnn_whole.sqlite",
    DATA / "runs" / "gnn_spmm_requests_whole.sqlite",
    DATA / "runs" / "train_llama_fp16scaler_whole.sqlite",
    DATA / "runs" / "hf_continuous_batching_whole.sqlite",
    TRACES / "external" / "extrap" / "profile16.sqlite",
    DATA / "runs" / "resnet18_requests_whole.sqlite",
]


@pytest.mark.parametrize("path", HOST_CAUSES_CASES, ids=lambda p: p.stem)
def test_the_host_findings_costs_are_disjoint_parts_of_the_idle_time(path: Path) -> None:
    """The costs of the host findings are GPU idle intervals of their own, no two counting one moment: together
    they are at most the window's idle time, computed here from the kernel, copy and memset tables."""
    doc, merged = _report_and_busy(path)
    lo, hi = doc["window"]["start_ns"], doc["window"]["end_ns"]
    busy = sum(min(b, hi) - max(a, lo) for a, b in merged if b > lo and a < hi)
    costs = {f["id"]: f["cost_ns"] for f in doc["findings"] if f["id"] in HOST_CAUSES and f.get("cost_ns")}
    assert costs
    assert sum(costs.values()) <= (hi - lo) - busy, costs


def _oracle(
    busy: list[tuple[int, int]],
    lo: int,
    hi: int,
    calls: list[tuple[int, int]],
    sync: bool,
    short,
    skip: frozenset[int] = frozenset(),
    within: list[tuple[int, int]] | None = None,
):
    """The costs by their definitions, on plain lists: the idle intervals are the complement of the busy ones in
    [lo, hi], numbered as ``GpuIdle`` numbers them (interval k after busy interval k - 1; 0 before the first);
    a sync is charged the last (short enough) interval to start by its return, when it started inside the call,
    each interval once; blocking calls the idle time inside their union, in the intervals shorter than ``short``,
    not numbered in ``skip`` and (``within``) between two busy ones inside one of the spans, nanosecond by
    nanosecond."""
    merged = merged_intervals([(a, b) for a, b in busy if b > lo and a < hi])
    numbered, t = [], lo
    for k, (a, b) in enumerate(merged):
        numbered.append((k, t, min(a, hi)))
        t = max(t, b)
    numbered.append((len(merged), t, hi))
    idle = [(a, b) for _, a, b in numbered if b > a]

    def last(x, ok=lambda iv: True):
        found = [iv for iv in idle if iv[0] <= x and ok(iv)]
        return found[-1] if found else None

    if sync:
        hits = set()
        for c0, c1 in calls:
            iv = last(c1, lambda iv: short is None or iv[1] - iv[0] < short)
            if iv is not None and iv[0] >= c0:
                hits.add(iv)
        return sum(b - a for a, b in hits)
    total = 0
    for k, a, b in numbered:
        if b <= a or (short is not None and b - a >= short) or k in skip:
            continue
        if within is not None and not (0 < k < len(merged) and any(s <= a and b <= e for s, e in within)):
            continue
        total += sum(1 for x in range(a, b) if any(c0 <= x < c1 for c0, c1 in calls))
    return total


def test_idle_costs_match_their_definitions_on_random_runs():
    import random

    rng = random.Random(5)
    for _ in range(300):
        t, busy = rng.randrange(0, 50), []
        for _ in range(rng.randrange(0, 12)):
            a = t + rng.choice([1, 2, 5, 40, 300])
            t = a + rng.randrange(1, 60)
            busy.append((a, t))
        lo, hi = rng.randrange(-20, 200), rng.randrange(-20, t + 400)
        calls = []
        for _ in range(rng.randrange(1, 8)):
            c0 = rng.randrange(-30, t + 400)
            calls.append((c0, c0 + rng.choice([0, 3, 30, 300, 2000])))
        idle = gpu_idle(_busy(*busy), lo, hi)
        for sync, short in ((True, None), (True, 50), (False, None), (False, 50)):
            want = _oracle(busy, lo, hi, calls, sync, short) if hi > lo else 0
            assert gpu_idle_caused(idle, _calls(*calls), sync, short) == want, (busy, lo, hi, calls, sync, short)
        if hi <= lo or len(busy) < 2:
            continue
        # blocking calls less the intervals numbered in skip, and only those inside spans (two busy intervals' ends)
        skip = frozenset(rng.sample(range(len(busy) + 1), k=min(2, len(busy) + 1)))
        ends = sorted({v for iv in busy for v in iv})
        a, b = sorted(rng.sample(ends, 2))
        spans = [(a, b)]
        got = gpu_idle_caused(
            idle,
            _calls(*calls),
            False,
            50,
            np.array(sorted(skip), dtype=np.int64),
            within=(np.array([a]), np.array([b])),
        )
        assert got == _oracle(busy, lo, hi, calls, False, 50, skip, spans), (busy, lo, hi, calls, skip, spans)


def test_a_blocking_call_costs_the_idle_time_it_overlaps():
    idle = gpu_idle(_busy((0, 100), (130, 200)), 0, 200)
    assert gpu_idle_caused(idle, _calls((110, 120)), sync=False) == 10  # inside the idle interval
    assert gpu_idle_caused(idle, _calls((90, 140)), sync=False) == 30  # spans the whole interval
    assert gpu_idle_caused(idle, _calls((20, 60)), sync=False) == 0  # while the GPU works
    # calls that overlap (allocations on two threads) count their common idle time once
    assert gpu_idle_caused(idle, _calls((105, 125), (110, 128)), sync=False) == 23
    # a long gap is an idle gap of its own, not the call's
    assert gpu_idle_caused(idle, _calls((105, 125)), sync=False, shorter_than=31) == 20
    assert gpu_idle_caused(idle, _calls((105, 125)), sync=False, shorter_than=30) == 0


def test_severity_follows_the_share():
    assert severity_of(None) == "info"
    assert severity_of(0.01) == "info"
    assert severity_of(0.05) == "warning"
    assert severity_of(0.25) == "critical"


def _report(path):
    return diagnose_trace(open_trace(path), load_rules())


def _costed_in_order(d) -> None:
    costs = [
        f.cost_ns for f in d.findings if f.cost_ns is not None and f.id not in ("graph-trace-not-node", "no-kernels")
    ]
    assert costs == sorted(costs, reverse=True), [(f.id, f.cost_ns) for f in d.findings]


@needs_shared
def test_pathologies_ranked_by_cost():
    d = _report(TRACES / "decode_pathologies.sqlite")
    _costed_in_order(d)
    by = {f.id: f for f in d.findings}
    # the two 0.7 s sleeps between requests are idle gaps, not the cost of a sync
    assert 1_300_000_000 < by["gpu-idle-gap"].cost_ns < 1_500_000_000
    assert by["host-sync-in-inference"].cost_ns < by["gpu-idle-gap"].cost_ns
    # every finding with a cost states it as a share of the window
    for f in d.findings:
        if f.cost_ns is not None:
            assert f.cost_share == pytest.approx(f.cost_ns / d.window.duration)
    assert by["low-gpu-utilization"].cost_ns is None  # a sum of the causes above, not a cause


@needs_shared
def test_per_step_token_read_costs_the_gap_it_leaves():
    # the C++ engine reads the token after every graphed step (one cuStreamSynchronize per step, by design): the
    # sync is blocked for most of the step while the GPU works; what it costs is the idle time between steps
    d = _report(ENGINES / "cpp_llama3b_graph.sqlite")
    sync = next(f for f in d.findings if f.id == "host-sync-in-inference")
    assert sync.evidence["total_ns"] > 150_000_000  # blocked: about 217 ms, the GPU's own work
    assert sync.cost_ns < 0.25 * sync.evidence["total_ns"]
    assert sync.severity != "critical"
    assert "host_first" not in d.target  # the kernels, not the host, limit this engine


@needs_shared
def test_thread_synchronize_counts_as_a_sync_but_costs_little_on_a_busy_gpu():
    d = _report(PUBLIC / "rodinia_gaussian_report2.sqlite")
    assert d.host.syncs.count == 8190 and d.host.syncs.names == {"cudaThreadSynchronize_v3020": 8190}
    assert d.host.gpu_busy_share > 0.9
    sync = next(f for f in d.findings if f.id == "host-sync-in-inference")
    assert sync.severity == "info"


@needs_shared
@pytest.mark.parametrize(
    "name",
    ["llama3inf_demo", "llama3inf_real_inference_simulation", "fuser_report1_8fa9ec2", "sc23omp_report3",
     "weatherbench2_report1", "gpu4_report", "rodinia_gaussian_report2", "dlprof_nsys_profile_a"],
)  # fmt: skip
def test_no_graph_finding_without_graph_launches(name):
    # nsys 2023.3+ records graph trace mode "graph" by default; these programs launched no CUDA graph
    d = _report(PUBLIC / f"{name}.sqlite")
    assert "graph-trace-not-node" not in [f.id for f in d.findings]


@needs_shared
def test_eager_decode_puts_the_host_first_by_cost():
    d = _report(TRACES / "decode_eager.sqlite")
    lb = next(f for f in d.findings if f.id == "launch-bound")
    assert d.findings[0].id == "launch-bound" and lb.severity == "critical"
    assert d.target["host_first"] == "launch-bound"
    gemv = d.families.row(0, named=True)
    assert lb.cost_ns > gemv["total"]  # the idle time inside steps exceeds all GEMV time


@needs_shared
def test_a_copy_bound_run_leads_with_its_copies():
    # OpenMP offload on a T4: memory copies are about 96% of GPU time (25.1 s of copies, 1.03 s of the one kernel,
    # nsys stats cuda_gpu_sum)
    d = _report(PUBLIC / "sc23omp_report3.sqlite")
    top = d.families.row(0, named=True)
    assert top["family"] == "memcpy" and top["share"] > 0.9
    assert d.target["family"] == "memcpy"
    assert abs(sum(d.families["share"].to_list()) - 1.0) < 1e-9


@needs_shared
def test_a_trace_without_kernels_says_so_plainly():
    d = _report(PUBLIC / "weatherbench2_report1.sqlite")
    assert [f.id for f in d.findings] == ["no-kernels"]
    assert d.target["kind"] == "recapture"


@needs_shared
@pytest.mark.parametrize("path", ["public/gpu4_report", "public/rodinia_gaussian_report2", "engines/hf_qwen2_generate"])
def test_no_step_is_empty_or_negative(path):
    d = _report(TRACES / f"{path}.sqlite")
    t = d.steps.table
    assert t.height >= 1
    assert (t["end"] > t["start"]).all() and (t["kernels"] > 0).all()
    assert t["idx"].to_list() == list(range(t.height))


def test_sync_finding_counts_its_names_where_it_counts_its_syncs() -> None:
    """The sync finding counts the syncs inside steps; its names count every sync of the window: when the two
    differ, the summary says both, never one count per half. BERT's 10 measured iterations each end with
    ``torch.cuda.synchronize()`` inside its NVTX range (tests/data/runs/README.md): 10 inside steps; the window
    holds more syncs than that."""
    from nsys_doctor.cli.report import diagnose_trace
    from nsys_doctor.loaders import load_rules

    from .conftest import DATA, open_trace

    d = diagnose_trace(open_trace(DATA / "runs" / "bert_base_nvtx_whole.sqlite"), load_rules())
    (f,) = [x for x in d.findings if x.id == "host-sync-in-inference"]
    s = d.host.syncs
    assert s.in_steps == 10 and s.count > 10 and sum(s.names.values()) == s.count
    assert f.summary.startswith(
        f"10 host synchronizations inside steps (1.0 per iteration; in the window, {s.count} in all)"
    )


@pytest.mark.finding("small-grid")
def test_small_grids_cost_the_sm_time_they_leave_idle():
    # the hand-written engine's decode attention runs 2 thread blocks on the H200's 132 SMs: the finding names it and
    # costs its GPU time in the window times the share of SMs without a block, counted here from the trace itself
    import sqlite3

    from .conftest import DATA

    path = DATA / "runs" / "cuda_cpp_requests_whole.sqlite"
    d = diagnose_trace(open_trace(path), load_rules())
    found = next(f for f in d.findings if f.id == "small-grid")
    assert d.findings[0] is found and found.severity == "critical"
    assert found.evidence["sm_count"] == 132
    kernels = {(k["label"], k["grid"]): k for k in found.evidence["kernels"]}  # type: ignore[attr-defined]
    attn = kernels[("attn_scores_kernel", "2x1x1")]
    con = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    n, total = con.execute(
        "SELECT count(*), sum(k.end - k.start) FROM CUPTI_ACTIVITY_KIND_KERNEL k JOIN StringIds s ON s.id = k.shortName"
        " WHERE s.value = 'attn_scores_kernel' AND k.gridX = 2 AND k.gridY = 1 AND k.gridZ = 1"
        " AND k.start >= ? AND k.start <= ?",
        (d.window.start, d.window.end),
    ).fetchone()
    con.close()
    assert (attn["blocks"], attn["count"], attn["total"]) == (2, n, total)
    assert attn["idle_sm_ns"] == round(total * (1 - 2 / 132))
    assert found.cost_ns == sum(k["idle_sm_ns"] for k in kernels.values())
    # its prompt passes launch the same kernel over 128 blocks (a quarter of the SMs or more): not named
    assert ("attn_scores_kernel", "1x128x1") not in kernels


@needs_shared
def test_graphed_decode_on_the_bundled_gpu_names_its_one_block_norm():
    d = diagnose_trace(open_trace(TRACES / "decode_graph_node.sqlite"), load_rules())
    found = next(f for f in d.findings if f.id == "small-grid")
    labels = {k["label"]: k["blocks"] for k in found.evidence["kernels"]}  # type: ignore[attr-defined]
    assert labels.get("vectorized_layer_norm_kernel") == 1, labels
    assert found.severity == "warning"  # 9% of the window: worth a look, not the first thing to fix
    # ViT at batch 16: every kernel's grid covers the SMs
    vit = diagnose_trace(open_trace(ENGINES / "vit_b16_infer.sqlite"), load_rules())
    assert "small-grid" not in {f.id for f in vit.findings}


@needs_shared
def test_next_actions_follow_what_they_cost():
    # the C++ engine: its per-step token read costs 35 ms of GPU idle time, less than its decode attention kernel
    # (31% of the GPU time): the sync's action comes after the attention advice (the engines' README), and the
    # small grids of that attention, which cost more than the kernel's whole time, before it
    d = diagnose_trace(open_trace(ENGINES / "cpp_llama3b_graph.sqlite"), load_rules())
    costs = {f.id: f.cost_ns for f in d.findings}
    lever = int(d.kernels.filter(pl.col("name") == "decode_attention_kernel")["total"][0])
    assert costs["host-sync-in-inference"] < lever < costs["small-grid"]  # type: ignore[operator]
    order = [a.split(":")[0] for a in d.next_actions]
    titles = {f.id: f.title for f in d.findings}
    advice = next(i for i, a in enumerate(d.next_actions) if a.startswith("decode attention dominates"))
    assert order.index(titles["small-grid"]) < advice < order.index(titles["host-sync-in-inference"]), order
    # eager decode: launch-bound costs more than its whole top family, so it goes first
    e = diagnose_trace(open_trace(TRACES / "decode_eager.sqlite"), load_rules())
    assert e.next_actions[0].startswith("Launch-bound"), e.next_actions


def test_idle_gaps_of_one_device_are_the_gaps_between_its_intervals():
    import itertools
    import random

    from nsys_doctor.analysis.host import busy_intervals, idle_gaps

    rng = random.Random(9)
    for _ in range(200):
        t, raw = 0, []
        for _ in range(rng.randrange(0, 15)):
            a = t + rng.choice([0, 1, 7, 50, 400])
            t = a + rng.randrange(1, 90)
            raw.append((a, t))
        busy = busy_intervals(_busy(*raw)) if raw else _busy()
        lo, hi, least = rng.randrange(-10, 300), rng.randrange(0, t + 50), rng.choice([1, 10, 100])
        iv = busy.rows()
        want = [
            (d, e0, s1, s1 - e0)
            for (_, _, e0), (d, s1, _) in itertools.pairwise(iv)
            if s1 - e0 >= least and e0 >= lo and s1 <= hi
        ]
        got = idle_gaps(busy, lo, hi, least)
        assert sorted(got.rows()) == sorted(want)
        assert got["dur"].to_list() == sorted(got["dur"].to_list(), reverse=True)
        assert got.schema == {"deviceId": pl.Int64, "start": pl.Int64, "end": pl.Int64, "dur": pl.Int64}


def test_idle_costs_and_gaps_take_narrow_columns_bounds_beyond_them_and_calls_without_times():
    from nsys_doctor.analysis.host import idle_gaps

    narrow = _busy((10, 20), (30, 40)).with_columns(pl.col("start", "end").cast(pl.UInt32))
    gaps = idle_gaps(narrow, -5, 2**40, 0)  # bounds no UInt32 holds
    assert gaps.rows() == [(0, 20, 30, 10)]
    assert gaps.schema["start"] == pl.UInt32  # the gaps keep the intervals' type
    idle = gpu_idle(narrow, 0, 50)
    calls = pl.DataFrame({"start": [12, None, 15], "end": [None, 35, 35]}, schema={"start": pl.Int64, "end": pl.Int64})
    # the calls without both times are nowhere on the timeline: only (15, 35) counts, and it waits through the
    # idle interval 20-30 (a sync is charged it; a blocking call overlaps it)
    assert gpu_idle_caused(idle, calls, sync=True) == 10
    assert gpu_idle_caused(idle, calls, sync=False) == 10
    assert gpu_idle_caused(idle, calls.tail(1), sync=True) == gpu_idle_caused(idle, calls, sync=True)


def test_many_syncs_inside_one_long_gap_are_looked_up_together(monkeypatch: pytest.MonkeyPatch):
    from nsys_doctor.analysis.host import GpuIdle

    # 1,000 kernels, then a 20 s gap with 200,000 syncs inside it: each started after the gap began, so none is
    # charged the gap (a long gap is an idle gap of its own); the syncs step back together, not one by one (one
    # Python step per call took 3 s on 200,000 calls)
    busy = _busy(*[(100 * i, 100 * i + 50) for i in range(1000)], (20_000_000_000, 20_000_000_100))
    starts = [200_000 + 10_000 * i for i in range(200_000)]
    calls = pl.DataFrame({"start": starts, "end": [s + 5000 for s in starts]})
    idle = gpu_idle(busy, 0, 20_000_001_000)
    lookups = []
    bounds = GpuIdle._bounds
    monkeypatch.setattr(GpuIdle, "_bounds", lambda self, k: lookups.append(k.size) or bounds(self, k))
    assert gpu_idle_caused(idle, calls, sync=True, shorter_than=5_000_000) == 0
    assert len(lookups) <= 4 and max(lookups) == 200_000


def test_largest_gap_shares_per_span():
    # busy 0-10, 20-30, 32-40, 100-110, 150-160: idle 10-20 (10), 30-32 (2), 40-100 (60), 110-150 (40)
    idle = gpu_idle(_busy((0, 10), (20, 30), (32, 40), (100, 110), (150, 160)), 0, 200)
    starts = np.array([0, 0, 100, 20, 35, 0])
    ends = np.array([40, 160, 160, 30, 38, 5])
    got = idle.largest_gap_shares(starts, ends)
    # 10 of 12; 60 of 112; 40 of 40; none inside 20-30 or 35-38 (an interval counts only whole); none before 5
    assert got[:3].tolist() == [10 / 12, 60 / 112, 1.0]
    assert np.isnan(got[3:]).all()
    assert np.isnan(gpu_idle(_busy((0, 10)), 0, 20).largest_gap_shares(np.array([0]), np.array([20]))).all()


def test_short_idle_sums_the_short_intervals_between_busy_ones():
    # busy 0-10, 20-30, 32-40, 100-110, 150-160 in a window 0-200: idle 10-20 (10), 30-32 (2), 40-100 (60),
    # 110-150 (40) between them, and 160-200 after the last (no kernel after it: not counted)
    idle = gpu_idle(_busy((0, 10), (20, 30), (32, 40), (100, 110), (150, 160)), 0, 200)
    assert idle.short_idle(50) == 10 + 2 + 40
    assert idle.short_idle(11) == 10 + 2 and idle.short_idle(10) == 2 and idle.short_idle(2) == 0
    # intervals numbered to skip (interval k follows busy interval k - 1): 30-32 is number 2, 110-150 number 4;
    # 0 (before the first) and 5 (after the last) are no interval between two busy ones
    assert idle.short_idle(50, skip=np.array([2, 4, 0, 5])) == 10
    assert gpu_idle(_busy((0, 10)), 0, 20).short_idle(100) == 0


def test_short_idle_matches_a_plain_sweep_on_random_timelines():
    rng = np.random.default_rng(7)
    for _ in range(200):
        n = int(rng.integers(0, 40))
        starts, durs = rng.integers(0, 5000, n).tolist(), rng.integers(1, 300, n).tolist()
        ops = sorted((a, a + d) for a, d in zip(starts, durs, strict=True))
        lo, hi = int(rng.integers(-100, 2000)), int(rng.integers(2000, 6000))
        limit = int(rng.integers(1, 400))
        inside = [m for m in merged_intervals(ops) if m[1] > lo and m[0] < hi]
        between = list(pairwise(inside))  # interval k (k >= 1) lies between busy intervals k - 1 and k
        skip = sorted({int(k) for k in rng.integers(0, len(inside) + 2, 3)})
        want = sum(s1 - e0 for k, ((_, e0), (s1, _)) in enumerate(between, 1) if 0 < s1 - e0 < limit)
        kept = sum(s1 - e0 for k, ((_, e0), (s1, _)) in enumerate(between, 1) if 0 < s1 - e0 < limit and k not in skip)
        busy = _busy(*[tuple(o) for o in ops]) if ops else pl.DataFrame(schema={"start": pl.Int64, "end": pl.Int64})
        idle = gpu_idle(busy, lo, hi)
        assert idle.short_idle(limit) == want
        assert idle.short_idle(limit, skip=np.array(skip, dtype=np.int64)) == kept


def _random_busy(rng, most: int, gaps: list[int], longest: int) -> tuple[int, list[tuple[int, int]]]:
    """Up to ``most`` disjoint busy intervals in order, each after a gap of one of ``gaps``, shorter than
    ``longest``; and the end of the last (0 when none)."""
    t, busy = 0, []
    for _ in range(rng.randrange(0, most)):
        a = t + rng.choice(gaps)
        t = a + rng.randrange(1, longest)
        busy.append((a, t))
    return t, busy


def test_largest_gap_shares_match_their_definition_on_random_runs():
    import random

    rng = random.Random(11)
    for _ in range(300):
        t, busy = _random_busy(rng, 10, [1, 3, 20, 200], 40)
        spans = []
        for _ in range(rng.randrange(1, 6)):
            a = rng.randrange(-10, t + 20)
            spans.append((a, a + rng.choice([0, 5, 50, 500])))
        idle = gpu_idle(_busy(*busy), 0, t + 50)
        got = idle.largest_gap_shares(np.array([a for a, _ in spans]), np.array([b for _, b in spans]))
        gaps = [(busy[i][1], busy[i + 1][0]) for i in range(len(busy) - 1) if busy[i + 1][0] > busy[i][1]]
        for (a, b), share in zip(spans, got.tolist(), strict=True):
            inside = [e - s for s, e in gaps if s >= a and e <= b]
            if sum(inside):
                assert share == max(inside) / sum(inside), (busy, a, b)
            else:
                assert math.isnan(share), (busy, a, b)


def test_idle_intervals_holding_times():
    # idle 10-20, 30-32, 40-100 (and 0-0 empty, 110-200 after the last busy interval)
    idle = gpu_idle(_busy((0, 10), (20, 30), (32, 40), (100, 110)), 0, 200)
    s, e = idle.holding(np.array([12, 15, 31, 32, 150]))
    # 12 and 15 share one interval (counted once); 32 is where the GPU works again, in no idle interval
    assert list(zip(s.tolist(), e.tolist(), strict=True)) == [(10, 20), (30, 32), (110, 200)]
    s, e = idle.holding(np.array([12, 50, 150]), shorter_than=60)  # 40-100 and 110-200 are long gaps of their own
    assert list(zip(s.tolist(), e.tolist(), strict=True)) == [(10, 20)]
    assert idle.holding(np.array([5, 35]))[0].size == 0  # while the GPU works


def test_idle_intervals_holding_times_match_their_definition_on_random_runs():
    import random

    rng = random.Random(3)
    for _ in range(300):
        t, busy = _random_busy(rng, 8, [1, 4, 30, 300], 50)
        lo, hi = rng.randrange(-10, 40), t + rng.randrange(-20, 200)
        times = np.array(sorted(rng.randrange(-20, t + 220) for _ in range(rng.randrange(1, 7))))
        short = rng.choice([None, 40])
        idle = gpu_idle(_busy(*busy), lo, hi)
        got = list(zip(*(a.tolist() for a in idle.holding(times, short)), strict=True))
        edges = [lo, *(x for iv in busy for x in iv), hi]
        gaps = [(max(a, lo), min(b, hi)) for a, b in zip(edges[0::2], edges[1::2], strict=True)]
        want = [
            (a, b)
            for a, b in gaps
            if b > a and (short is None or b - a < short) and any(a <= x < b for x in times.tolist())
        ]
        assert got == want, (busy, lo, hi, times, short)


def test_span_overlaps_count_the_union_of_intervals():
    import random

    from nsys_doctor.analysis.host import span_overlaps

    rng = random.Random(5)
    for _ in range(1000):
        gaps = [(rng.randrange(0, 200), rng.choice([0, 1, 5, 30, 80])) for _ in range(rng.randrange(0, 8))]
        spans = [(a, a + rng.choice([0, 3, 40, 150])) for a in (rng.randrange(-20, 250) for _ in range(5))]
        frame = pl.DataFrame(
            {"start": [g for g, _ in gaps], "dur": [d for _, d in gaps]}, schema={"start": pl.Int64, "dur": pl.Int64}
        )
        got = span_overlaps(np.array([a for a, _ in spans]), np.array([b for _, b in spans]), frame).tolist()
        covered = {t for g, d in gaps for t in range(g, g + d)}  # overlapping intervals (two devices) count once
        assert got == [sum(1 for t in covered if a <= t < b) for a, b in spans], (gaps, spans)


def test_a_sync_is_not_charged_a_refill_that_holds_a_module_load():
    # idle 100-130 and 200-260; a sync from 90 to 101 waits into the first refill, one from 190 to 201 into the
    # second, whose end a module load (at 250) falls in: the host built a kernel there, the loading's time
    idle = gpu_idle(_busy((0, 100), (130, 200), (260, 300)), 0, 300)
    both = _calls((90, 101), (190, 201))
    assert gpu_idle_caused(idle, both, sync=True) == 90
    loaded = idle.holding_ids(np.array([250]))
    assert gpu_idle_caused(idle, both, sync=True, skip=loaded) == 30


def test_the_refills_a_sync_is_charged_are_kept_when_asked():
    idle = gpu_idle(_busy((0, 100), (130, 200), (260, 300)), 0, 300)
    charged: list[np.ndarray] = []
    assert gpu_idle_caused(idle, _calls((90, 101), (190, 201)), sync=True, charged=charged) == 90
    (ids,) = charged
    assert list(zip(*(a.tolist() for a in idle.bounds(ids)), strict=True)) == [(100, 130), (200, 260)]


@pytest.mark.parametrize("seed", range(30))
def test_points_within_any_interval_as_tested_one_by_one(seed: int) -> None:
    # the pauses between requests: closed intervals, maybe touching, overlapping, inverted or repeated
    import random

    import numpy as np

    from nsys_doctor.analysis.distribution import inside

    rng = random.Random(seed)
    intervals = []
    for _ in range(rng.randint(0, 8)):
        a = rng.randint(0, 60)
        intervals.append((a, a + rng.randint(-3, 15)))
    if intervals and seed % 2:
        intervals.append(intervals[0])
    points = [rng.randint(-5, 80) for _ in range(50)]
    want = [any(a <= p <= b for a, b in intervals) for p in points]
    # as the host summary asks: a pause [a, b] holds the whole numbers of [a, b + 1)
    a = np.array([i[0] for i in intervals], dtype=np.int64)
    b = np.array([i[1] for i in intervals], dtype=np.int64)
    assert inside(np.array(points, dtype=np.int64), a, b + 1).tolist() == want
