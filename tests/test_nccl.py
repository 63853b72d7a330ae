"""Multi-GPU traces: rank discovery, collectives matched across ranks (waiting vs moving), the late rank, findings,
parallel and Dask runners, and rank sets in report, stats and diff.

Real data: ../shared/traces/multigpu (README "Multi-GPU traces"): two per-rank traces with rank 1 sleeping 3 ms
before the first all-reduce of every 8th step from step 3, and one trace holding both ranks' processes.
"""

from __future__ import annotations

import dataclasses
import json
import shutil
from pathlib import Path

import polars as pl
import pytest

from nsys_doctor.analysis.compare import Profile, Row
from nsys_doctor.analysis.findings import Finding
from nsys_doctor.analysis.nccl import NCCL_CATALOGUE, NcclResult, analyze, summarize_rank
from nsys_doctor.analysis.rankset import merge_profiles, pair_ranks
from nsys_doctor.cli.main import main
from nsys_doctor.errors import UsageError
from nsys_doctor.parallel import map_ranks, rank_summary
from nsys_doctor.trace import Trace
from nsys_doctor.trace.ranks import (
    RankSpec,
    discover,
    expand_paths,
    file_rank,
    frame_units,
    gpu_units,
    multi_rank,
    several_ranks,
)
from nsys_doctor.trace.tables import TraceFrames

from .conftest import SAMPLE, TRACES, needs_shared

MULTI = TRACES / "multigpu"
RANK0 = MULTI / "tp2_straggler_rank0.sqlite"
RANK1 = MULTI / "tp2_straggler_rank1.sqlite"
ALLRANKS = MULTI / "tp2_allranks.sqlite"
INJECTED = [48 + 128 * k for k in range(8)]  # all-reduce 48, 176, ..., 944: step 3 + 8k, first all-reduce
JITTER = [498, 699, 877]  # spikes of the same size that happened on their own
ALLREDUCE = "ncclDevKernel_AllReduce_Sum_bf16_RING_LL"

needs_multi = pytest.mark.skipif(not MULTI.is_dir(), reason="../shared/traces/multigpu is not present")

_CACHE: dict[str, NcclResult] = {}


def straggler() -> NcclResult:
    if "straggler" not in _CACHE:
        _CACHE["straggler"] = analyze(map_ranks(discover([RANK0, RANK1])), top=20)
    return _CACHE["straggler"]


def allranks() -> NcclResult:
    if "allranks" not in _CACHE:
        _CACHE["allranks"] = analyze(map_ranks(discover([ALLRANKS])), top=20)
    return _CACHE["allranks"]


# ------------------------------------------------------------------------------------------------ rank discovery


def test_file_rank_patterns():
    cases = {
        "trace_rank3": 3,
        "run.r12": 12,
        "rank-3-of-8": 3,
        "foo_r2_rank5": 5,
        "tp2": None,
        "straggler": None,
    }
    for stem, want in cases.items():
        assert file_rank(Path(f"{stem}.sqlite")) == want, stem


@needs_shared
@needs_multi
def test_discover_per_rank_traces_env_and_offsets():
    specs = discover([RANK1, RANK0])  # order of the arguments does not matter
    assert [s.rank for s in specs] == [0, 1]
    assert [Path(s.path).name for s in specs] == [RANK0.name, RANK1.name]
    assert all(s.source == "env RANK" for s in specs)
    # TARGET_INFO_SESSION_START_TIME: rank 1's session started 11.88 ms before rank 0's
    assert specs[1].offset_ns == 0
    assert specs[0].offset_ns == 1795558915365284531 - 1795558915353409008


@needs_shared
@needs_multi
def test_discover_one_trace_with_two_processes():
    specs = discover([ALLRANKS])
    assert [(s.rank, s.pid, s.device) for s in specs] == [(0, 1130, None), (1, 1131, None)]
    assert all(s.offset_ns == 0 for s in specs)
    assert multi_rank([ALLRANKS]) and not multi_rank([RANK0])


@needs_shared
@needs_multi
def test_the_ranks_of_one_trace_are_told_alike_from_its_frames():
    # report tells them from the frames it reads (no scan of the kernel table before reading it)
    for path, units in ((ALLRANKS, [(1130, 0), (1131, 1)]), (RANK0, None), (SAMPLE, None)):
        with Trace.open(path) as trace:
            from_sql = gpu_units(trace)
            from_frames = frame_units(TraceFrames(trace))
        assert from_frames == from_sql and (units is None or from_sql == units)
        assert several_ranks(path, from_frames) == multi_rank([path])
    assert several_ranks(ALLRANKS, [(1130, 0), (1131, 1)]) and not several_ranks(RANK0, [])


@needs_shared
@needs_multi
def test_discover_directory_file_names_when_env_repeats(tmp_path):
    # copies of one rank trace all record RANK=0: the file names decide
    for r in (10, 2, 1):
        shutil.copyfile(RANK0, tmp_path / f"trace_rank{r}.sqlite")
    assert [p.name for p in expand_paths([tmp_path])] == [
        "trace_rank1.sqlite",
        "trace_rank2.sqlite",
        "trace_rank10.sqlite",
    ]
    specs = discover([tmp_path])
    assert [s.rank for s in specs] == [1, 2, 10]
    assert {s.source for s in specs} == {"file name"}
    assert [s.rank for s in discover([tmp_path], rank_from="order")] == [0, 1, 2]
    assert main(["nccl", str(tmp_path), "--rank-from", "env"]) == 2


def test_empty_directory_is_a_usage_error(tmp_path, capsys):
    assert main(["nccl", str(tmp_path)]) == 2
    assert "no traces in directory" in capsys.readouterr().err


# ---------------------------------------------------------------------------------------- acceptance: straggler


@needs_shared
@needs_multi
def test_straggler_rank1_is_late_and_rank0_waits():
    res = straggler()
    assert res.late["late_rank"] == 1
    ar = res.matched.filter(pl.col("name") == ALLREDUCE).row(0, named=True)
    # 1024 all-reduces; the first began before rank 1 had started (start-up, not skew) and is left out
    assert ar["instances"] == 1023
    assert any("before every rank had started" in n for n in res.notes)
    assert ar["most_last_rank"] == 1 and 860 <= ar["most_last_count"] <= 880  # README: 870 of 1024
    assert 270_000 <= ar["skew_p50"] <= 330_000  # README: median 0.30 ms
    assert 280_000 <= res.late["late_rank_delay_p50_ns"] <= 310_000
    assert ar["transfer_p50"] < 10_000  # moving the data takes ~6 us
    per = {r["rank"]: r for r in res.collectives.filter(pl.col("name") == ALLREDUCE).iter_rows(named=True)}
    # rank 0's all-reduce "looks expensive" (median 304 us, max 4.2 ms); rank 1's median is 6 us
    assert 295_000 <= per[0]["p50"] <= 310_000 and 4_100_000 <= per[0]["max"] <= 4_300_000
    assert per[1]["p50"] < 10_000
    assert per[0]["wait_share"] > 0.9  # rank 0's all-reduce time is mostly waiting
    rank0 = next(r for r in res.ranks if r["rank"] == 0)
    assert rank0["wait_share"] > 0.9 and rank0["moving"] < 0.05 * rank0["nccl_time"]


@needs_shared
@needs_multi
def test_straggler_injected_spikes_are_the_worst_instances():
    res = straggler()
    worst = res.worst.filter(pl.col("name") == ALLREDUCE)
    listed = set(worst["index"].to_list())
    assert set(INJECTED) <= listed
    assert set(JITTER) <= listed
    rows = {r["index"]: r for r in worst.iter_rows(named=True)}
    for k, i in enumerate(INJECTED):
        r = rows[i]
        assert r["step"] == 3 + 8 * k and r["in_step"] == 0 and r["last_rank"] == 1
        assert 2_000_000 <= r["skew"] <= 4_300_000
        assert r["cause"] == "host"  # rank 1's GPU sat idle: the launch came late
        assert r["late_os_name"] == "clock_nanosleep"  # what rank 1 did just before: the injected sleep
    pattern = res.steps["pattern"]
    assert pattern["every_steps"] == 8 and pattern["first_step"] == 3 and pattern["in_step"] == 0
    assert pattern["steps"] == [3 + 8 * k for k in range(8)]


@pytest.mark.finding("nccl-rank-skew", "rank-imbalance")
@needs_shared
@needs_multi
def test_straggler_findings():
    res = straggler()
    ids = [f.id for f in res.findings]
    assert set(ids) == set(NCCL_CATALOGUE)
    skew = next(f for f in res.findings if f.id == "nccl-rank-skew")
    assert skew.severity == "critical" and skew.evidence["late_rank"] == 1
    assert skew.evidence["waiting_share"] > 0.9
    assert "rank 1 arrives last" in skew.summary and "every 8 steps from step 3" in skew.summary
    assert {w["index"] for w in skew.evidence["worst"]} & set(INJECTED)
    imb = next(f for f in res.findings if f.id == "rank-imbalance")
    assert imb.evidence["slowest_rank"] == 1 and "on the host" in imb.summary
    for f in res.findings:
        assert isinstance(f, Finding) and f.cost_ns is None and f.title and f.action
        assert set(f.to_dict()) == {"id", "severity", "title", "summary", "cost_ns", "cost_share", "evidence", "action"}


@needs_shared
@needs_multi
def test_allranks_split_into_its_two_ranks():
    res = allranks()
    assert [r["rank"] for r in res.ranks] == [0, 1]
    assert [r["pid"] for r in res.ranks] == [1130, 1131]
    assert [r["devices"] for r in res.ranks] == [[0], [1]]  # each rank's kernels are its own device's only
    # the capture holds a warm-up request (32 slow steps) and the measured one (32 steps, as the traces README
    # says): the warm-up is left out, so each rank has 32 steps x 16 all-reduces and 32 all-gathers
    counts = {(r["name"], r["rank"]): r["count"] for r in res.collectives.iter_rows(named=True)}
    assert counts[(ALLREDUCE, 0)] == counts[(ALLREDUCE, 1)] == 512
    assert counts[("ncclDevKernel_AllGather_RING_LL", 0)] == 32
    ar = res.matched.filter(pl.col("name") == ALLREDUCE).row(0, named=True)
    assert ar["instances"] == 512 and ar["most_last_rank"] == 1
    assert res.late["late_rank"] == 1
    assert next(r for r in res.ranks if r["rank"] == 0)["wait_share"] > 0.9
    assert "nccl-rank-skew" in [f.id for f in res.findings]
    assert all(r["steps"] == 32 for r in res.ranks)


# ------------------------------------------------------------------------------------------------ runners


@needs_shared
@needs_multi
@pytest.mark.parametrize("runner", ["threads", "processes"])
def test_threads_and_process_pool_give_the_same_result(monkeypatch, runner):
    from nsys_doctor import parallel

    specs = discover([RANK0, RANK1])
    a = analyze(map_ranks(specs, jobs=1)).to_dict()
    monkeypatch.setattr(parallel, "PROCESS_MIN_BYTES", 0 if runner == "processes" else 1 << 62)
    monkeypatch.setattr(parallel, "THREAD_MIN_BYTES", 0)
    assert parallel.pick_runner(specs, 2) == runner
    b = analyze(map_ranks(specs, jobs=2)).to_dict()
    assert json.dumps(a, sort_keys=True, default=str) == json.dumps(b, sort_keys=True, default=str)


def test_the_runner_follows_the_size_of_each_rank(tmp_path, monkeypatch):
    from nsys_doctor import parallel

    small, big = tmp_path / "small.sqlite", tmp_path / "big.sqlite"
    small.write_bytes(b"x" * 1000)
    big.write_bytes(b"x" * 4000)
    monkeypatch.setattr(parallel, "PROCESS_MIN_BYTES", 2000)
    monkeypatch.setattr(parallel, "THREAD_MIN_BYTES", 1000)
    two_big = [RankSpec(0, str(big)), RankSpec(1, str(big), pid=7)]  # one file split in two ranks: 2000 each
    assert parallel.rank_bytes(two_big) == [2000, 2000]
    assert parallel.pick_runner(two_big, 2) == "processes"
    assert parallel.pick_runner([RankSpec(0, str(big)), RankSpec(1, str(small))], 2) == "threads"  # smallest rank
    assert parallel.pick_runner(two_big, 1) == "serial"
    assert parallel.pick_runner(two_big[:1], 8) == "serial"
    three = [RankSpec(i, str(big), pid=i) for i in range(3)]  # 1333 bytes each
    assert parallel.pick_runner(three, 3) == "threads"
    five = [RankSpec(i, str(big), pid=i) for i in range(5)]  # 800 bytes each: too small to gain from threads
    assert parallel.pick_runner(five, 5) == "serial"


@needs_shared
@needs_multi
def test_dask_gives_the_same_result_as_jobs_1(capsys):
    pytest.importorskip("distributed")
    args = ["nccl", str(RANK0), str(RANK1), "--format", "json"]
    assert main(args) == 0
    one = capsys.readouterr().out
    assert main([*args, "--dask", "local:2"]) == 0
    assert capsys.readouterr().out == one
    assert json.loads(one)["kind"] == "nccl"


def test_bad_dask_address_is_a_usage_error(capsys):
    pytest.importorskip("distributed")
    spec = RankSpec(0, str(SAMPLE))
    with pytest.raises(UsageError) as err:  # the CLI's one line and exit code 2
        map_ranks([spec], rank_summary, dask="tcp://127.0.0.1:1")
    assert err.value.message.startswith("cannot reach the Dask scheduler at tcp://127.0.0.1:1")
    assert "--dask local" in err.value.hint and "\n" not in err.value.one_line()


@pytest.mark.parametrize("min_bytes", [0, 1 << 62])  # processes, threads
def test_worker_errors_come_back_with_their_hint(tmp_path, monkeypatch, min_bytes):
    from nsys_doctor import parallel

    monkeypatch.setattr(parallel, "PROCESS_MIN_BYTES", min_bytes)
    monkeypatch.setattr(parallel, "THREAD_MIN_BYTES", 0)
    bad = tmp_path / "empty.sqlite"
    bad.write_bytes(b"")
    from nsys_doctor.errors import TraceError

    with pytest.raises(TraceError) as err:
        map_ranks([RankSpec(0, str(bad)), RankSpec(1, str(bad))], jobs=2)
    assert "empty" in err.value.message and err.value.hint


# ---------------------------------------------------------------------------------------- synthetic rank sets

PERIOD = 1_000_000
COMPUTE = 100_000
TRANSFER = 10_000


def _ranks(lateness: list[dict[int, int]], steps: int = 20, **kw: object) -> list:
    """Summaries of len(lateness) ranks; ``lateness[r][i]``: how much later rank r arrives at step i's all-reduce.
    Keywords: ``shift`` {rank: ns added to its clock}, ``skip`` {rank: first all-reduces missing}, ``host``
    {rank: host name}, ``overlap`` (a compute kernel on another stream runs under every all-reduce)."""
    shift: dict[int, int] = kw.get("shift", {})  # type: ignore[assignment]
    skip: dict[int, int] = kw.get("skip", {})  # type: ignore[assignment]
    hosts: dict[int, str] = kw.get("host", {})  # type: ignore[assignment]
    overlap = bool(kw.get("overlap", False))
    n = len(lateness)
    out = []
    for r in range(n):
        k_rows, a_rows, s_rows = [], [], []
        corr = 0
        for i in range(steps):
            t = i * PERIOD
            arrive = [t + COMPUTE + lateness[q].get(i, 0) for q in range(n)]
            end = max(arrive) + TRANSFER
            off = shift.get(r, 0)
            kernels = [(t, arrive[r], 7, "gemm_kernel")]
            if i >= skip.get(r, 0):
                kernels.append((arrive[r], end, 7, "ncclDevKernel_AllReduce_Sum_bf16_RING_LL"))
            if overlap:
                kernels.append((arrive[r] - 5_000, end + 5_000, 9, "other_gemm_kernel"))
            for s, e, stream, name in kernels:
                corr += 1
                k_rows.append((s + off, e + off, 0, stream, corr, 100 + r, name, name))
                a_rows.append(
                    (s + off - 3_000, s + off - 1_000, 2_000, 100 + r, 100 + r, corr, "cudaLaunchKernel_v7000")
                )
            gpu = sum(e - s for s, e, _, _ in kernels)
            s_rows.append((i, "decode", t + off - 10_000, t + off + 900_000, 910_000, gpu, t + off, end + off))
        kernels_df = pl.DataFrame(
            k_rows,
            schema=["start", "end", "deviceId", "streamId", "correlationId", "pid", "short", "name"],
            orient="row",
        )
        api = pl.DataFrame(a_rows, schema=["start", "end", "dur", "tid", "pid", "correlationId", "name"], orient="row")
        nvtx = pl.DataFrame(schema={"start": pl.Int64, "end": pl.Int64, "text": pl.Utf8, "domain": pl.Utf8})
        st = pl.DataFrame(
            s_rows, schema=["idx", "kind", "start", "end", "wall", "gpu_time", "gpu_start", "gpu_end"], orient="row"
        )
        info = {"host": hosts.get(r, "h")}
        out.append(summarize_rank(r, kernels_df, api, nvtx, st, None, 0, info))
    return out


def test_synthetic_late_rank_skew_and_transfer():
    lateness = [{}, {}, {i: 50_000 for i in range(20)}]  # rank 2 arrives 50 us late at every all-reduce
    lateness[2][7] = 600_000  # and 0.6 ms late at step 7
    res = analyze(_ranks(lateness))
    assert res.late["late_rank"] == 2 and res.late["late_rank_last"] == 20
    ar = res.matched.row(0, named=True)
    assert ar["skew_p50"] == 50_000 and ar["transfer_p50"] == TRANSFER
    top = res.worst.row(0, named=True)
    assert (top["index"], top["step"], top["in_step"], top["last_rank"], top["skew"]) == (7, 7, 0, 2, 600_000)
    assert top["cause"] == "gpu"  # its GPU was busy with the (longer) compute kernel until the start
    imb = next(f for f in res.findings if f.id == "rank-imbalance")
    assert imb.evidence["slowest_rank"] == 2 and "GPU work itself is unequal" in imb.summary


def test_synthetic_top_limits_the_worst_list_only():
    lateness = [{}, {}, {i: 50_000 for i in range(20)}]
    lateness[2][7] = 600_000
    full = analyze(_ranks(lateness), top=3)
    none = analyze(_ranks(lateness), top=0)  # the CLI refuses --top 0; the analysis still answers
    assert full.worst.height == 3 and none.worst.height == 0 and "index" in none.worst.columns
    assert none.late["late_rank"] == 2 and none.late["skew_max_ns"] == 600_000
    skew = next(f for f in none.findings if f.id == "nccl-rank-skew")
    assert skew.evidence["worst"] == [] and skew.evidence["late_rank"] == 2
    json.dumps(none.to_dict(), default=str)


def test_synthetic_balanced_ranks_raise_nothing():
    res = analyze(_ranks([{}, {}, {}, {}], overlap=True))
    assert res.late["skew_p50_ns"] == 0
    assert res.findings == []


@pytest.mark.finding("nccl-not-overlapped")
def test_synthetic_not_overlapped_is_found_and_overlap_measured():
    res = analyze(_ranks([{}, {i: 400_000 for i in range(20)}]))
    assert "nccl-not-overlapped" in [f.id for f in res.findings]
    assert res.overlap["overlap_share"].to_list() == [0.0, 0.0]
    res2 = analyze(_ranks([{}, {i: 400_000 for i in range(20)}], overlap=True))
    assert res2.overlap["overlap_share"].min() > 0.99
    assert "nccl-not-overlapped" not in [f.id for f in res2.findings]


def test_synthetic_trace_starting_late_is_aligned_by_end_times():
    lateness = [{i: 30_000 * (i % 3) for i in range(20)}, {}]
    res = analyze(_ranks(lateness, skip={1: 2}))  # rank 1's trace misses the first two all-reduces
    ar = res.matched.row(0, named=True)
    assert ar["instances"] == 18
    assert res.groups[0]["sequence_offsets"] == {"1": -2}
    assert any("not seen on every rank" in n for n in res.notes)
    assert res.late["late_rank"] == 0 and res.late["skew_max_ns"] == 60_000


def test_synthetic_clock_difference_between_hosts_is_corrected():
    lateness = [{}, {i: 20_000 for i in range(20)}]
    res = analyze(_ranks(lateness, shift={1: 5_300_000}, host={0: "a", 1: "b"}))
    assert res.late["late_rank"] == 1 and res.late["skew_p50_ns"] == 20_000
    assert any("clock was corrected" in n for n in res.notes)


def test_synthetic_two_communicators_on_one_host_stay_apart():
    # ranks 0,1 and ranks 2,3: two TP groups whose all-reduces share stream and name but not timing
    group_a = _ranks([{}, {i: 20_000 for i in range(20)}])
    group_b = _ranks([{i: 400_000 for i in range(20)}, {i: 470_000 for i in range(20)}])
    ranks = [dataclasses.replace(s, rank=r) for r, s in enumerate(group_a + group_b)]
    res = analyze(ranks)
    assert [g["ranks"] for g in res.groups] == [[0, 1], [2, 3]]
    assert res.late["skew_max_ns"] == 70_000 and res.late["late_rank"] in (1, 3)


# ------------------------------------------------------------------------------------------------ command lines


@needs_shared
@needs_multi
def test_nccl_command_on_the_straggler_pair(capsys):
    assert main(["nccl", str(RANK0), str(RANK1)]) == 0
    out = capsys.readouterr().out
    assert "rank 1 is the late rank: last to arrive in 870 of 1023 AllReduce_Sum_bf16_RING_LL (85%)" in out
    assert "nccl-rank-skew" in out and "clock_nanosleep" in out
    assert "every 8 steps from step 3" in out


@needs_shared
@needs_multi
def test_nccl_command_json_and_markdown(tmp_path, capsys):
    assert main(["nccl", str(ALLRANKS), "--format", "json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["schema"] == "nsys-doctor/2" and data["kind"] == "nccl"
    assert data["late"]["late_rank"] == 1 and len(data["ranks"]) == 2
    for key in ("collectives", "matched", "worst", "steps", "overlap", "imbalance", "findings", "nvtx", "headline"):
        assert key in data
    out = tmp_path / "nccl.md"
    assert main(["nccl", str(ALLRANKS), "--format", "markdown", "-o", str(out)]) == 0
    text = out.read_text()
    assert text.startswith("## nsys-doctor nccl: 2 ranks") and "`nccl-rank-skew`" in text
    capsys.readouterr()


def test_nccl_command_without_collectives(capsys):
    assert main(["nccl", str(SAMPLE)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("nsys-doctor: error: no NCCL") and len(err.strip().splitlines()) == 1


def test_nccl_jobs_and_dask_exclude_each_other(capsys):
    assert main(["nccl", str(SAMPLE), "--jobs", "2", "--dask", "local"]) == 2
    capsys.readouterr()


@needs_shared
@needs_multi
def test_report_splits_a_multi_rank_trace(capsys):
    assert main(["report", str(ALLRANKS), "--format", "json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["kind"] == "report-ranks" and [r["rank"] for r in data["ranks"]] == [0, 1]
    for r, pid in zip(data["ranks"], (1130, 1131), strict=True):
        assert r["report"]["schema"] == "nsys-doctor/2"
        assert r["report"]["trace"]["rank"]["pid"] == pid
        assert r["report"]["steps"]["count"] == 32  # its own measured decode steps (warm-up left out)
    assert data["across_ranks"]["late"]["late_rank"] == 1
    assert main(["report", str(ALLRANKS), "--no-split", "--format", "json"]) == 0
    whole = json.loads(capsys.readouterr().out)
    assert whole["kind"] == "report" and "rank" not in whole["trace"]
    assert main(["report", str(RANK0), str(RANK1)]) == 0
    out = capsys.readouterr().out
    assert "rank 0: tp2_straggler_rank0.sqlite" in out and "across ranks" in out and "nccl-rank-skew" in out


@needs_shared
@needs_multi
def test_stats_per_rank_sections_and_files(tmp_path, capsys):
    assert main(["stats", str(RANK0), str(RANK1), "-r", "cuda_gpu_kern_sum:base", "-f", "csv"]) == 0
    out = capsys.readouterr().out
    assert "==> rank 0: tp2_straggler_rank0.sqlite" in out and "==> rank 1: tp2_straggler_rank1.sqlite" in out
    assert out.count("Time (%),Total Time (ns)") == 2
    # the directory mixes the two-rank trace of one run with the per-rank traces of another: refused
    assert main(["stats", str(MULTI), "-r", "cuda_gpu_kern_sum:base", "-f", "csv"]) == 2
    assert "different runs" in capsys.readouterr().err
    out_dir = tmp_path / "out"
    out_dir.mkdir()
    args = ["stats", str(RANK0), str(RANK1), "-r", "cuda_gpu_kern_sum:base", "-f", "csv", "-o", str(out_dir / "k.csv")]
    assert main(args) == 0
    capsys.readouterr()
    assert sorted(p.name for p in out_dir.iterdir()) == ["k_rank0.csv", "k_rank1.csv"]
    assert main(["stats", str(ALLRANKS), "--per-rank", "-r", "cuda_gpu_kern_sum:base", "-f", "csv"]) == 0
    out = capsys.readouterr().out
    sections = out.split("==> rank 1")
    assert "1024," in sections[0] and "1024," in sections[1]  # each process's own 1024 all-reduces
    assert main(["stats", str(ALLRANKS), "-r", "cuda_gpu_kern_sum:base", "-f", "csv"]) == 0
    assert "==>" not in capsys.readouterr().out  # one trace: unchanged, nsys parity


@needs_shared
@needs_multi
def test_diff_rank_sets(capsys):
    pair = f"{RANK0},{RANK1}"
    assert main(["diff", pair, str(ALLRANKS), "--format", "json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["kind"] == "diff-ranks" and [r["rank"] for r in data["ranks"]] == [0, 1]
    assert main(["diff", pair, str(ALLRANKS), "--ranks", "aggregate", "--format", "json"]) == 0
    agg = json.loads(capsys.readouterr().out)
    assert agg["before"].startswith("2 ranks")
    assert main(["diff", pair, str(ALLRANKS), "--rank", "1"]) == 0
    assert "tp2_straggler_rank1.sqlite (rank 1)" in capsys.readouterr().out
    assert main(["diff", pair, pair, "--gate", "5"]) == 0  # a rank set against itself passes the gate
    assert "gate: PASS on every rank" in capsys.readouterr().out
    # one trace holding two ranks on each side: its ranks are found from the frames read for its profile
    assert main(["diff", str(ALLRANKS), str(ALLRANKS), "--format", "json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["kind"] == "diff-ranks" and [r["rank"] for r in data["ranks"]] == [0, 1]


@needs_shared
@needs_multi
def test_a_diff_of_two_traces_scans_no_kernel_table_for_ranks(monkeypatch, capsys):
    import nsys_doctor.trace.ranks as ranks

    def scan(_trace: object) -> list[tuple[int, int]]:
        raise AssertionError("a scan of the kernel table for its processes and devices")

    monkeypatch.setattr(ranks, "gpu_units", scan)
    monkeypatch.setenv("NSYS_DOCTOR_NO_CACHE", "1")  # each command reads its traces (no earlier output reused)
    assert main(["diff", str(RANK0), str(RANK1), "--format", "json"]) == 0
    assert json.loads(capsys.readouterr().out)["kind"] == "diff"
    assert main(["report", str(RANK0), "--format", "json"]) == 0
    assert json.loads(capsys.readouterr().out)["kind"] == "report"


def test_merge_profiles_and_pairing():
    def prof(wall: list[int], gpu: list[int], k: int) -> Profile:
        row = Row("gemm", "gemm", "GEMM", len(wall), k * len(wall), [k] * len(wall), [k])
        return Profile(
            "x", None, None, len(wall), "decode", wall, gpu, [1] * len(wall), [0] * len(wall), {"name": {"gemm": row}}
        )

    m = merge_profiles([prof([10, 20, 30], [4, 4, 4], 2), prof([15, 5], [8, 8], 4)])
    assert m.steps == 2 and m.step_wall == [15, 20] and m.step_gpu == [6, 6]
    assert m.kernels["name"]["gemm"].per_step == [3, 3] and m.kernels["name"]["gemm"].count == 5
    assert pair_ranks([0, 1, 2], [1, 2, 3]) == ([1, 2], ["ranks only in BEFORE: 0", "ranks only in AFTER: 3"])


@needs_shared
@needs_multi
def test_exposed_share_never_exceeds_the_steps():
    res = straggler()
    shares = [
        v
        for f in res.findings
        if f.id == "nccl-not-overlapped"
        for v in f.evidence["exposed_share_of_step_time"].values()  # type: ignore[attr-defined]
        if v is not None
    ]
    assert shares and all(0 <= v <= 1.0 for v in shares)


@needs_shared
@needs_multi
def test_a_waiting_rank_names_the_late_rank_as_its_cause(capsys):
    from nsys_doctor.cli.main import main

    r0, r1 = (str(TRACES / "multigpu" / f"tp2_straggler_rank{i}.sqlite") for i in (0, 1))
    assert main(["report", r0, r1, "--format", "json"]) == 0
    data = json.loads(capsys.readouterr().out)
    by_rank = {r["rank"]: r["report"] for r in data["ranks"]}
    waiting = by_rank[0]["diagnosis"]
    assert waiting["waiting_for_rank"] == 1 and "rank 1's lateness" in waiting["why"]
    assert not any(a.startswith("communication dominates") for a in by_rank[0]["next_actions"])
    assert by_rank[0]["next_actions"][0].startswith("Collectives here wait for rank 1")
    assert "waiting_for_rank" not in by_rank[1]["diagnosis"]  # the late rank itself is not told to wait
