"""Window and step detection without NVTX, on real frames with their NVTX ranges removed."""

from __future__ import annotations

import polars as pl
import pytest

from nsys_doctor.analysis.phases import Window, _first_calls_end, choose_window, find_steps
from nsys_doctor.trace.meta import describe
from nsys_doctor.trace.tables import TraceFrames

from .conftest import TRACES, needs_shared, open_trace


def frames(name: str) -> tuple[TraceFrames, dict]:
    trace = open_trace(TRACES / f"{name}.sqlite")
    return TraceFrames(trace), describe(trace).capture


def no_nvtx(f: TraceFrames) -> pl.DataFrame:
    return f.nvtx.clear()


@needs_shared
def test_graph_launches_split_steps_without_nvtx():
    f, cap = frames("decode_graph_node")
    w = choose_window(f.kernels, f.api, f.memcpy, no_nvtx(f), cap["capture_range"])
    steps = find_steps(f.kernels, f.api, no_nvtx(f), w)
    assert steps.source == "graph-launches"
    assert steps.count == 127  # one step per cudaGraphLaunch
    # each replayed graph runs the same kernels: identical kernel counts per step, except the tail of the last
    counts = steps.table["kernels"].to_list()
    typical = max(set(counts), key=counts.count)
    assert counts.count(typical) >= 120 and typical >= 700


@needs_shared
def test_host_syncs_split_eager_steps_without_nvtx():
    f, cap = frames("decode_eager")
    w = choose_window(f.kernels, f.api, f.memcpy, no_nvtx(f), cap["capture_range"])
    steps = find_steps(f.kernels, f.api, no_nvtx(f), w)
    assert steps.source == "host-syncs"
    assert 120 <= steps.count <= 130
    assert steps.table.filter(pl.col("kind") == "decode")["launches"].median() > 600


@needs_shared
def test_data_window_skips_model_loading():
    f, _ = frames("decode_pathologies")
    w = choose_window(f.kernels, f.api, f.memcpy, no_nvtx(f), "none (whole run)")
    assert w.source == "data"
    assert w.loading_end is not None and w.start >= w.loading_end
    # the model is built on the host and copied over for 23 s; the first (warm-up) request starts after that
    first_request = f.nvtx.filter(pl.col("text") == "prefill")["start"].min()
    assert w.start >= first_request
    weights = f.memcpy.filter(
        (pl.col("copyKind") == 1) & (pl.col("bytes") >= 1 << 20) & (pl.col("end") < first_request)
    )
    assert weights.height > 0 and weights["end"].max() < w.start


@needs_shared
def test_repeating_kernel_marks_steps():
    f, _ = frames("decode_eager")
    # no syncs and no graphs: the LM head repeats (names are categoricals in the frames)
    api = f.api.filter(~pl.col("name").cast(pl.String).str.contains("Synchronize"))
    w = choose_window(f.kernels, api, f.memcpy, no_nvtx(f), "cudaProfilerApi")
    steps = find_steps(f.kernels, api, no_nvtx(f), w)
    assert steps.source.startswith("repeating-kernel:nvjet_sm90_tst_384x8")
    assert steps.count == 128  # one LM head per token: the prefill and 127 decode steps


@pytest.mark.parametrize("name", ["prefill_2048"])
@needs_shared
def test_prefill_is_one_step(name):
    f, cap = frames(name)
    w = choose_window(f.kernels, f.api, f.memcpy, f.nvtx, cap["capture_range"])
    steps = find_steps(f.kernels, f.api, f.nvtx, w)
    assert steps.count == 1 and steps.table["kind"][0] == "prefill"
    assert steps.table["kernels"][0] == 709


@pytest.mark.parametrize("shuffle", [False, True])
def test_window_rows_are_the_filtered_rows(shuffle: bool) -> None:
    """``Window.rows`` is the filter of the rows whose time lies in the window, in order, whether it answers with the
    frame itself, a slice of a sorted frame or a filter: bounds inclusive, duplicates kept, empty windows empty."""
    from nsys_doctor.analysis.phases import Window

    starts = [5, 10, 10, 20, 30, 30, 30, 40, 55]
    df = pl.DataFrame({"start": starts, "i": list(range(len(starts)))})
    if shuffle:
        df = df.sample(fraction=1.0, shuffle=True, seed=3)
    for lo, hi in [(0, 100), (5, 55), (10, 30), (11, 29), (30, 30), (31, 39), (60, 70), (40, 10), (-5, 4)]:
        w = Window(lo, hi, "user", "")
        got = w.rows(df)
        assert got.equals(df.filter((pl.col("start") >= lo) & (pl.col("start") <= hi))), (lo, hi)
        if (lo, hi) == (0, 100):
            assert got is df
    with_null = pl.DataFrame({"start": [1, None, 3]}, schema={"start": pl.Int64})
    assert Window(0, 2, "user", "").rows(with_null)["start"].to_list() == [1]


def test_big_copies_all_through_the_work_are_inputs_not_loading() -> None:
    """Weights are copied once, before the work: the last such copy ends the loading. The same copies going on
    through the work (a benchmark copying its input every iteration) are the work's, and end no loading."""
    from nsys_doctor.analysis.phases import COPY_HTOD, WEIGHT_COPY_BYTES, _loading_end

    starts = [1_000 + 100 * i for i in range(100)]
    kernels = pl.DataFrame({"start": starts, "end": [s + 50 for s in starts]})
    api = pl.DataFrame(schema={"start": pl.Int64, "end": pl.Int64, "name": pl.String, "dur": pl.Int64})

    def copies(starts: list[int]) -> pl.DataFrame:
        return pl.DataFrame(
            {
                "start": starts,
                "end": [s + 10 for s in starts],
                "copyKind": [COPY_HTOD] * len(starts),
                "bytes": [WEIGHT_COPY_BYTES] * len(starts),
            }
        )

    weights = copies([100, 200, 300])
    assert _loading_end(kernels, api, weights) == 310
    inputs = copies([990 + 100 * i for i in range(100)])  # one before each kernel
    assert _loading_end(kernels, api, inputs) is None


def _after_a_loading_gap(launch_ns: int) -> Window:
    """A run whose first kernel is followed by a 1 s idle gap (loading), then 40 kernels launched 10 us apart; the
    first of those is launched by a call lasting ``launch_ns`` (lazy loading inside it when long)."""
    starts = [0, *(1_000_000_000 + 10_000 * i for i in range(40))]
    kernels = pl.DataFrame(
        {
            "start": starts,
            "end": [s + 5_000 for s in starts],
            "correlationId": list(range(1, 42)),
            "pid": [7] * 41,
            "deviceId": [0] * 41,
            "name": ["k"] * 41,
        }
    )
    l_start = [s - 3_000 for s in starts]
    l_start[1] = starts[1] - launch_ns - 1_000
    api = pl.DataFrame(
        {
            "start": l_start,
            "end": [s - 1_000 for s in starts],
            "correlationId": list(range(1, 42)),
            "pid": [7] * 41,
            "tid": [7] * 41,
            "name": ["cudaLaunchKernel_v7000"] * 41,
        }
    )
    memcpy = pl.DataFrame(schema={"start": pl.Int64, "end": pl.Int64, "copyKind": pl.Int64, "bytes": pl.Int64})
    nvtx = pl.DataFrame(schema={"start": pl.Int64, "end": pl.Int64, "text": pl.Utf8, "domain": pl.Utf8})
    return choose_window(kernels, api, memcpy, nvtx, None)


def test_the_window_holds_the_first_launch_unless_loading_happened_inside_it():
    # a plain launch call: the window starts with it (its host time is the run's); a launch call that lasted the
    # loading gap (modules loaded lazily inside it, 900 ms) is loading: the window starts at its kernel
    short = _after_a_loading_gap(2_000)
    assert short.loading_end == 1_000_000_000 and short.start == 1_000_000_000 - 3_000
    long = _after_a_loading_gap(900_000_000)
    assert long.loading_end == 1_000_000_000 and long.start == 1_000_000_000


def _launched(names: list[str]) -> pl.DataFrame:
    """Launched kernels, one every 10 us, named ``names``; the ones named "conv" are the heaviest."""
    n = len(names)
    return pl.DataFrame(
        {
            "short": names,
            "gridX": [1] * n,
            "gridY": [1] * n,
            "gridZ": [1] * n,
            "dur": [50_000 if x == "conv" else 2_000 for x in names],
            "t_launch": [10_000 * i for i in range(n)],
        }
    )


def test_a_kernel_repeated_inside_one_pass_does_not_cut_steps():
    from nsys_doctor.analysis.phases import _repeating_marker

    # one forward pass of 100 kernels: the heaviest one runs three times, evenly spaced, among its first 20
    one_pass = [f"k{i}" for i in range(100)]
    for i in (2, 9, 16):
        one_pass[i] = "conv"
    assert _repeating_marker(_launched(one_pass)) is None
    # a loop of 5 steps of 20 kernels, the heaviest once per step: its launches span the run, they cut the steps
    loop = [("conv" if i % 20 == 0 else f"k{i % 20}") for i in range(100)]
    found = _repeating_marker(_launched(loop))
    assert found is not None and found[0] == "conv" and found[1] == [0, 200_000, 400_000, 600_000, 800_000]


def test_library_ranges_never_give_the_window() -> None:
    # XLA's own ranges (domain TSL): a thunk per op of the jitted function, and compiler passes named "...forward";
    # they look like step names, yet they annotate the library's work: they never choose the window. A range the
    # program put around its steps does
    starts = [1_000_000 + 10_000 * i for i in range(40)]
    kernels = pl.DataFrame(
        {
            "start": starts,
            "end": [s + 5_000 for s in starts],
            "correlationId": list(range(1, 41)),
            "pid": [7] * 40,
            "deviceId": [0] * 40,
            "name": ["k"] * 40,
        }
    )
    api = pl.DataFrame(
        {
            "start": [s - 3_000 for s in starts],
            "end": [s - 1_000 for s in starts],
            "correlationId": list(range(1, 41)),
            "pid": [7] * 40,
            "tid": [7] * 40,
            "name": ["cudaLaunchKernel_v7000"] * 40,
        }
    )
    memcpy = pl.DataFrame(schema={"start": pl.Int64, "end": pl.Int64, "copyKind": pl.Int64, "bytes": pl.Int64})

    def ranges(rows: list[tuple[int, int, str, str | None]]) -> pl.DataFrame:
        return pl.DataFrame(
            {
                "start": [r[0] for r in rows],
                "end": [r[1] for r in rows],
                "text": [r[2] for r in rows],
                "domain": [r[3] for r in rows],
                "globalTid": [(7 << 24) + 7] * len(rows),
            },
            schema={"start": pl.Int64, "end": pl.Int64, "text": pl.Utf8, "domain": pl.Utf8, "globalTid": pl.Int64},
        )

    xla = [(s - 100, s + 6_000, "Thunk:#name=jit(forward)/conv_general_dilated,hlo_op=cudnn#", "TSL") for s in starts]
    xla += [(100, 900_000, "XlaPass:#name=collective-pipeliner-forward,module=jit_f#", "TSL")]
    w = choose_window(kernels, api, memcpy, ranges(xla), None)
    assert w.source == "data", (w.source, w.reason)
    # the same names in no domain are still the library's (LIBRARY_TEXT); a user's step range is a step
    w = choose_window(kernels, api, memcpy, ranges([(a, b, t, None) for a, b, t, _ in xla]), None)
    assert w.source == "data", (w.source, w.reason)
    steps = [(starts[4 * i] - 3_500, starts[4 * i + 3] + 6_000, "decode_step", None) for i in range(10)]
    w = choose_window(kernels, api, memcpy, ranges([*xla, *steps]), None)
    assert w.source == "nvtx-steps" and "'decode_step'" in w.reason, (w.source, w.reason)


# ------------------------------------------------------------------------------------- first-call compilation


def _frames(starts: list[int], names: list[str], loads: list[int]) -> tuple[pl.DataFrame, pl.DataFrame]:
    """Kernels of 1 us starting at ``starts`` with ``names``, and module loads (1 us calls) ending at ``loads``."""
    kernels = pl.DataFrame(
        {"start": starts, "end": [s + 1_000 for s in starts], "name": names},
        schema={"start": pl.Int64, "end": pl.Int64, "name": pl.Categorical},
    )
    api = pl.DataFrame(
        {"start": [e - 1_000 for e in loads], "end": loads, "name": ["cuModuleLoadData"] * len(loads)},
        schema={"start": pl.Int64, "end": pl.Int64, "name": pl.Categorical},
    )
    return kernels, api


def _compiled_loop(
    passes: int, late_load: bool = False, wait: int = 1_000_000_000, more: int | None = None
) -> tuple[pl.DataFrame, pl.DataFrame]:
    """Three kernels a pass; the first pass waits ``wait`` ns before each kernel for its compilation (a load at its
    end); ``more``: one more load, in a gap of 100 ms before kernel ``more`` (a kernel compiled later)."""
    names = ["norm", "matmul", "add"] * passes
    starts, loads, t = [], [], 0
    for i in range(len(names)):
        t += wait if i < 3 else 10_000
        if i < 3 or i == more:
            if i == more:
                t += 100_000_000
            loads.append(t - 5_000)
        starts.append(t)
    if late_load:  # a load in a long gap before the last pass too
        starts[-3:] = [s + 5_000_000_000 for s in starts[-3:]]
        loads.append(starts[-3] - 5_000)
    return _frames(starts, names, loads)


def test_the_window_of_a_run_without_passes_starts_after_first_call_compilation():
    kernels, api = _compiled_loop(40)
    assert _first_calls_end(*_compiled_loop(40, more=100), 0) is not None  # a load far later stays in the window
    # gaps between kernels: before the second and the third (the first has none before it); the window starts at
    # the third, after 2 gaps of 1 s less the microsecond of the kernel before each
    assert _first_calls_end(kernels, api, 0) == (int(kernels["start"][2]), 2, 2 * (1_000_000_000 - 1_000))


@pytest.mark.parametrize(
    ("case", "why"),
    [
        ("once", "the compiled kernels never run again: no steady part"),
        ("short", "fewer than 50 kernels after the compilation"),
        ("late", "a later gap holding a load idles the GPU longer than the early ones"),
        ("tiny", "gaps of microseconds around the loads: nothing compiled while the GPU waited"),
        ("past", "a load just past the first quarter of the kernels: the compilation did not end before it"),
    ],
)
def test_first_call_compilation_is_not_cut_when_nothing_steady_follows(case: str, why: str):
    kernels, api = _compiled_loop(
        40 if case != "short" else 17,
        late_load=case == "late",
        wait=5_000 if case == "tiny" else 1_000_000_000,
        more=31 if case == "past" else None,  # kernel 31 of 120: just past the 30 of the first quarter
    )
    if case == "once":
        kernels = kernels.with_columns(
            pl.Series("name", ["norm0", "matmul0", "add0"] + ["x"] * (kernels.height - 3), dtype=pl.Categorical)
        )
    assert _first_calls_end(kernels, api, 0) is None, why


def test_the_triton_model_is_analyzed_after_its_jit_and_the_nvfuser_test_whole():
    from .conftest import DATA

    f = TraceFrames(open_trace(DATA / "runs" / "triton_mlp_whole.sqlite"))
    w = choose_window(f.kernels, f.api, f.memcpy, f.nvtx, None)
    # kernel 49 of 597 (ordered by start): the first of the steady passes, after 4 compiling gaps (3.07 s)
    steady = int(f.kernels.sort("start")["start"][48])
    assert w.start <= steady < w.start + 1_000_000 and "4 GPU idle gap(s)" in w.reason
    fuser = TRACES / "public" / "fuser_report1_8fa9ec2.sqlite"
    if fuser.is_file():  # 19 kernels: fewer than the 50 a steady part needs after the compilation
        g = TraceFrames(open_trace(fuser))
        assert "first-call" not in choose_window(g.kernels, g.api, g.memcpy, g.nvtx, None).reason


@pytest.mark.parametrize("seed", range(40))
def test_steps_hold_the_times_their_rule_gives_them(seed: int) -> None:
    """A step's times are a range of the sorted times (``step_ranges``), and ``assign_to_steps`` gives each time
    its step: both as the rule, applied time by time, gives them, with steps that touch, overlap, share a start,
    end before they start, and times on their bounds."""
    import random

    import numpy as np

    from nsys_doctor.analysis.phases import assign_to_steps, step_ranges

    rng = random.Random(seed)
    n_steps = rng.randint(1, 12)
    starts = [rng.randint(0, 100) for _ in range(n_steps)]
    ends = [s + rng.randint(-5, 30) for s in starts]
    if seed % 3 == 0:  # a start shared, a step's end another's start
        starts[-1] = starts[0]
        ends[0] = starts[-1] + 1
    steps = pl.DataFrame({"idx": list(range(n_steps)), "start": starts, "end": ends}, schema={
        "idx": pl.Int64, "start": pl.Int64, "end": pl.Int64})  # fmt: skip
    times = sorted(rng.choice([*starts, *ends, rng.randint(-10, 140)]) for _ in range(rng.randint(0, 60)))
    # the rule, time by time: the latest-starting step (the last of those sharing a start) that starts at or before
    # the time, if the time is not past its end
    order = sorted(range(n_steps), key=lambda i: starts[i])
    rule: list[int | None] = []
    for t in times:
        before = [i for i in order if starts[i] <= t]
        rule.append(before[-1] if before and t <= ends[before[-1]] else None)
    want = {i: [t for t, j in zip(times, rule, strict=True) if j == i] for i in range(n_steps)}
    st = steps.sort("start", maintain_order=True)
    lo, hi = step_ranges(np.array(times, dtype=np.int64), st["start"].to_numpy(), st["end"].to_numpy())
    got = {idx: times[a:b] for idx, a, b in zip(st["idx"].to_list(), lo.tolist(), hi.tolist(), strict=True)}
    assert got == want
    assert all(b >= a for a, b in zip(lo.tolist(), hi.tolist(), strict=True))
    # assign_to_steps gives each time its step by the same rule (events out of time order: sorted first)
    shuffled = list(times)
    rng.shuffle(shuffled)
    given = assign_to_steps(pl.DataFrame({"t": shuffled}, schema={"t": pl.Int64}), steps, "t")
    assert given["t"].to_list() == times
    assert given["idx"].to_list() == rule


@pytest.mark.parametrize("order", ["in order", "nearly", "shuffled", "with nulls"])
def test_launch_keys_are_found_where_polars_finds_them(order: str) -> None:
    # numpy's search for keys in order (each from the last one's place), polars' otherwise: the same places
    import random

    from nsys_doctor.analysis.phases import _search

    rng = random.Random(len(order))
    srt = pl.Series("key", sorted(rng.sample(range(10_000), 3000)), dtype=pl.Int64)
    keys = sorted(rng.choice([*srt.to_list(), rng.randint(-5, 10_005)]) for _ in range(5000))
    if order == "nearly":
        for i in range(0, len(keys) - 3, 97):
            keys[i], keys[i + 3] = keys[i + 3], keys[i]
    elif order in ("shuffled", "with nulls"):
        rng.shuffle(keys)
    series = pl.Series("key", [None if order == "with nulls" and i % 50 == 0 else k for i, k in enumerate(keys)])
    want = srt.search_sorted(series, side="left").to_list()
    assert _search(srt, series).to_list() == want


@pytest.mark.parametrize("dtype", [pl.Categorical, pl.String])
def test_kernel_names_ranked_as_an_enum_of_the_sorted_names(dtype: pl.DataType) -> None:
    from nsys_doctor.analysis.structure.sequence import _rank_codes

    col = pl.Series("name", ["b<int>", "a", "é", "b<int>", "A", "a", "z,y"]).cast(dtype)
    names = col.unique().sort().to_list()
    want = col.cast(pl.Enum(names)).to_physical().cast(pl.Int64).to_list()
    assert _rank_codes(col, names).tolist() == want == [names.index(n) for n in col.cast(pl.String).to_list()]
    # a null name (a call whose name has no string): the code asked for, after the names
    with_null = pl.Series("name", ["b", None, "a", None]).cast(dtype)
    names = with_null.drop_nulls().unique().sort().to_list()
    assert _rank_codes(with_null, names, null=len(names)).tolist() == [1, 2, 0, 2]
