"""Per-pass measures of the run structure (``structure/passes.py``) and the process filter of the call frame
(``phases.rows_where``), on small hand-made runs whose answers are counted by hand."""

from __future__ import annotations

import numpy as np
import polars as pl
import pytest

from nsys_doctor.analysis.phases import rows_where
from nsys_doctor.analysis.structure import passes
from nsys_doctor.analysis.structure.sequence import Api, Level, Seq, kernel_sequence
from nsys_doctor.trace.tables import call_column

from .test_structure import kernel_frame, launches_and_syncs


def _sequence(names: list[str]) -> Seq:
    starts = [1_000_000 + 10_000 * i for i in range(len(names))]
    k = kernel_frame(names, starts, [5_000] * len(names))
    return kernel_sequence(k, Api(launches_and_syncs(starts, []), 42), 42)


# 8 passes of "a b c"; the first also runs "p" (a prompt-only kernel), the fifth "t"; "g" runs between passes 3
# and 4, outside every pass; "w" runs in passes 6 and 7 (a name is rare in fewer than max(2, a quarter of the
# passes): 2 of 8 is not)
RUN = (
    ["p", "a", "b", "c"]
    + ["a", "b", "c"] * 2
    + ["a", "b", "c", "g"]
    + ["a", "t", "b", "c"]
    + ["a", "b", "c"]
    + ["a", "b", "w", "c", "w"]
    + ["a", "w", "b", "c"]
)
FIRST = np.array([0, 4, 7, 10, 14, 18, 21, 26])
LAST = np.array([4, 7, 10, 13, 18, 21, 26, 30])  # pass 3 ends before "g" (position 13)


@pytest.mark.parametrize("table", [True, False], ids=["table", "sort"])
def test_rare_names_counts_the_kernels_and_names_of_few_passes(monkeypatch: pytest.MonkeyPatch, table: bool) -> None:
    if not table:
        monkeypatch.setattr(passes, "SEEN_TABLE_MAX", 0)
    seq = _sequence(RUN)
    assert len(seq) == 30
    c = np.array([i for i, name in enumerate(RUN) if name == "c"])  # each pass's last once-per-pass kernel
    rare_k, rare_n, after = passes._rare_names(seq, FIRST, LAST, c)
    # "p" and "t" run in one pass each (rare); "w" in two of eight (2 >= max(2.0, 2.0): not rare); "g" in none
    assert rare_k.tolist() == [1.0, 0.0, 0.0, 0.0, 1.0, 0.0, 0.0, 0.0]
    assert rare_n.tolist() == [1.0, 0.0, 0.0, 0.0, 1.0, 0.0, 0.0, 0.0]
    assert after.tolist() == [0.0] * 8  # both run before "c"
    assert rare_k.dtype == np.float64 and rare_n.dtype == np.float64


@pytest.mark.parametrize("table", [True, False], ids=["table", "sort"])
def test_rare_names_counts_a_name_once_per_pass(monkeypatch: pytest.MonkeyPatch, table: bool) -> None:
    if not table:
        monkeypatch.setattr(passes, "SEEN_TABLE_MAX", 0)
    # 5 passes of "a b"; the second runs "x" three times: 3 rare kernels, 1 rare name; kernels before the first
    # pass ("z") belong to none
    names = ["z", "z"] + ["a", "b"] + ["a", "x", "x", "b", "x"] + ["a", "b"] * 3
    seq = _sequence(names)
    first = np.array([2, 4, 9, 11, 13])
    last = np.array([4, 9, 11, 13, 15])
    b = np.array([3, 7, 10, 12, 14])  # each pass's "b", its last once-per-pass kernel
    rare_k, rare_n, after = passes._rare_names(seq, first, last, b)
    assert rare_k.tolist() == [0.0, 3.0, 0.0, 0.0, 0.0]
    assert rare_n.tolist() == [0.0, 1.0, 0.0, 0.0, 0.0]
    assert after.tolist() == [0.0, 1.0, 0.0, 0.0, 0.0]  # the "x" after the second pass's "b"


def _naive_positions(n: int, first: np.ndarray, last: np.ndarray) -> tuple[list[int], list[int]]:
    """Each position's pass, one position at a time: the last pass starting at or before it, if it ends after it."""
    pos, pid = [], []
    for i in range(n):
        starting = [p for p in range(first.size) if first[p] <= i]
        if starting and i < last[starting[-1]]:
            pos.append(i)
            pid.append(starting[-1])
    return pos, pid


def _random_passes(rng: np.random.Generator, n: int, p: int, shape: int) -> tuple[np.ndarray, np.ndarray]:
    """``p`` passes [first, last) over ``n`` kernels: tiling them (shape 0), with kernels between them (1), or
    overlapping, some starting together (2)."""
    if shape == 0:
        cuts = np.sort(rng.integers(0, n + 1, size=p + 1))
        first, last = cuts[:-1], cuts[1:]
    elif shape == 1:
        ends = np.sort(rng.integers(0, n + 1, size=2 * p))
        first, last = ends[0::2], ends[1::2]
    else:
        first = np.sort(rng.integers(0, n, size=p))
        last = np.minimum(first + rng.integers(0, 12, size=p), n)
    return first.astype(np.int64), last.astype(np.int64)


def test_pass_positions_of_tiled_gapped_and_overlapping_passes() -> None:
    # passes that tile the kernels, passes with kernels between them, empty passes and overlapping ones (the last
    # pass starting at or before a kernel takes it)
    rng = np.random.default_rng(7)
    shapes = {"tiled": 0, "gapped": 0, "overlapping": 0}
    for trial in range(600):
        n = int(rng.integers(1, 40))
        first, last = _random_passes(rng, n, int(rng.integers(1, 7)), trial % 3)
        lay = (
            "tiled" if (first[1:] == last[:-1]).all() else "gapped" if (first[1:] >= last[:-1]).all() else "overlapping"
        )
        shapes[lay] += 1
        pos, pid = passes._pass_positions(n, first, last)
        assert (pos.tolist(), pid.tolist()) == _naive_positions(n, first, last), (n, first, last)
    assert min(shapes.values()) >= 50, shapes


class _Codes:
    """The part of a ``Seq`` that ``_rare_names`` reads: the kernels' name codes and the names."""

    def __init__(self, code: np.ndarray, ncodes: int) -> None:
        self.code = code
        self.names = [f"k{i}" for i in range(ncodes)]

    def __len__(self) -> int:
        return int(self.code.size)


def _naive_rare(
    code: np.ndarray, ncodes: int, first: np.ndarray, last: np.ndarray, mark_last: np.ndarray
) -> tuple[list[float], list[float], list[float]]:
    """``_rare_names`` one kernel at a time, from ``_naive_positions``."""
    pos, pid = _naive_positions(code.size, first, last)
    runs: list[set[int]] = [set() for _ in range(first.size)]
    for j, i in zip(pos, pid, strict=True):
        runs[i].add(int(code[j]))
    rare = [sum(c in r for r in runs) < max(2.0, 0.25 * first.size) for c in range(ncodes)]
    rare_k, after = [0.0] * first.size, [0.0] * first.size
    for j, i in zip(pos, pid, strict=True):
        if rare[code[j]]:
            rare_k[i] += 1
            after[i] += j > mark_last[i]
    return rare_k, [float(sum(rare[c] for c in r)) for r in runs], after


@pytest.mark.parametrize("chunk", [1, 3, 8, 1 << 22])
@pytest.mark.parametrize("table", [True, False], ids=["table", "sort"])
def test_rare_names_by_groups_of_passes_are_those_of_each_kernel(
    monkeypatch: pytest.MonkeyPatch, chunk: int, table: bool
) -> None:
    """The passes' kernels read a group of passes at a time (tiled, gapped, overlapping passes; passes starting
    together) give the counts of a walk over every kernel."""
    monkeypatch.setattr(passes, "RARE_CHUNK", chunk)
    if not table:
        monkeypatch.setattr(passes, "SEEN_TABLE_MAX", 0)
    rng = np.random.default_rng(chunk)
    some_rare = 0
    for trial in range(300):
        n = int(rng.integers(1, 40))
        p = int(rng.integers(1, 9))
        first, last = _random_passes(rng, n, p, trial % 3)
        ncodes = int(rng.integers(1, 6))
        code = rng.integers(0, ncodes, n)
        mark_last = first + rng.integers(-1, 4, size=p)
        got = passes._rare_names(_Codes(code, ncodes), first, last, mark_last)  # type: ignore[arg-type]
        want = _naive_rare(code, ncodes, first, last, mark_last)
        assert [g.tolist() for g in got] == list(want), (n, first, last, code)
        some_rare += sum(want[0]) > 0
    assert some_rare > 50


def _calls(tids: list[int]) -> pl.DataFrame:
    return pl.DataFrame({"start": list(range(len(tids))), "globalTid": tids, "name": ["cudaLaunchKernel"] * len(tids)})


def test_rows_where_keeps_a_call_frame_of_one_process_as_it_is() -> None:
    own = _calls([(42 << 24) + 7, (42 << 24) + 9, (42 << 24) + 7])
    assert rows_where(own, call_column(own, "pid"), 42) is own  # not a copy
    assert rows_where(own, call_column(own, "pid"), 43).height == 0
    # the thread ids (not the pid) differ: an expression other than the pid is filtered row by row
    assert rows_where(own, call_column(own, "tid"), 7).height == 2


def test_rows_where_filters_the_calls_of_several_processes() -> None:
    mixed = _calls([(42 << 24) + 7, (43 << 24) + 1, (42 << 24) + 8, (1 << 48) + (42 << 24) + 7])
    got = rows_where(mixed, call_column(mixed, "pid"), 42)
    # the last one has bits above the pid (a hardware id): its pid is still 42
    assert got["start"].to_list() == [0, 2, 3]
    assert rows_where(mixed, call_column(mixed, "pid"), 43)["start"].to_list() == [1]
    with_null = pl.DataFrame({"start": [0, 1], "globalTid": [(42 << 24) + 1, None]})
    assert rows_where(with_null, call_column(with_null, "pid"), 42)["start"].to_list() == [0]


# passes of "a b c x" after a prompt's pass "p a b c x" ("x": an argmax, a token sampled per pass); the blocks of
# "a" and "b" grow pass after pass by a token's rows (a decode pass over the whole sequence: no KV cache), "c" and
# "x" keep their grids; pass 4 is the next prompt (its kernels shrink back)
GROW_NAMES = ["p", "a", "b", "c", "argmax"] + ["a", "b", "c", "argmax"] * 3 + ["p", "a", "b", "c", "argmax"]
GROW_NAMES += ["a", "b", "c", "argmax"] * 2
GROW_BLOCKS = [*(10, 10, 20, 5, 1), *(11, 22, 5, 1), *(12, 24, 5, 1), *(13, 26, 5, 1), *(10, 10, 20, 5, 1)]
GROW_BLOCKS += [*(11, 22, 5, 1), *(12, 24, 5, 1)]
GROW_FIRST = np.array([0, 5, 9, 13, 17, 22, 26])
GROW_LAST = np.array([5, 9, 13, 17, 22, 26, 30])


def _growing_sequence(blocks: list[int], names: list[str] = GROW_NAMES) -> Seq:
    from dataclasses import replace

    return replace(_sequence(names), blocks=np.array(blocks, dtype=np.int64))


def test_pass_growth_compares_each_pass_with_the_one_before_by_position() -> None:
    seq = _growing_sequence(GROW_BLOCKS)
    matched, grew, fell, step = passes.pass_growth(seq, GROW_FIRST, GROW_LAST)
    # pass 1 against the prompt's pass: counted from the first kernels no name matches (a, b, c, argmax against p, a,
    # b, c), from the last ones all four do; passes 4 and 5 the same way
    assert all(np.isnan(x[0]) for x in (matched, grew, fell, step))
    assert matched[1:].tolist() == [1.0] * 6
    assert np.allclose(grew[1:], [0.5, 0.5, 0.5, 0.0, 0.5, 0.5])
    assert np.allclose(fell[1:], [0.0, 0.0, 0.0, 0.5, 0.0, 0.0])
    # the grown kernels' step: the geometric mean of their blocks over the pass before's (11/10 and 22/20: 1.1)
    assert np.allclose(step[[1, 2, 3, 5, 6]], [1.1, 12 / 11, 13 / 12, 1.1, 12 / 11]) and np.isnan(step[4])


def test_pass_growth_without_grids_or_common_names_is_nan() -> None:
    seq = _growing_sequence([0] * len(GROW_NAMES))  # no grid recorded
    assert all(np.isnan(x).all() for x in passes.pass_growth(seq, GROW_FIRST, GROW_LAST))
    # two passes with no name in common: nothing to compare
    seq = _sequence(["a", "b", "x", "y"])
    out = passes.pass_growth(replace_blocks(seq, [1, 2, 3, 4]), np.array([0, 2]), np.array([2, 4]))
    assert all(np.isnan(x).all() for x in out)


def replace_blocks(seq: Seq, blocks: list[int]) -> Seq:
    from dataclasses import replace

    return replace(seq, blocks=np.array(blocks, dtype=np.int64))


def _cutter(seq: Seq) -> object:
    from nsys_doctor.analysis.structure.requests import RequestCutting

    cutter = RequestCutting.__new__(RequestCutting)  # only its sequence is read
    cutter.seq = seq
    return cutter


def _growing(blocks: list[int], names: list[str] = GROW_NAMES, passes_: int = 7) -> object:
    from types import SimpleNamespace

    from nsys_doctor.analysis.structure.requests import RequestCutting

    ps = SimpleNamespace(first=GROW_FIRST[:passes_], last=GROW_LAST[:passes_])
    return RequestCutting.growing_passes(_cutter(_growing_sequence(blocks, names)), ps)  # type: ignore[arg-type]


def test_growing_passes_start_requests_where_the_kernels_shrink_back() -> None:
    found = _growing(GROW_BLOCKS)
    assert found is not None
    share, starts = found  # type: ignore[misc]
    assert share == pytest.approx(0.5)  # the median pair: 2 of 4 kernels grew
    assert starts.tolist() == [True, False, False, False, True, False, False]


def test_growing_passes_need_small_steps_sampled_tokens_and_enough_pairs() -> None:
    # the same kernels at constant grids (a KV cache): nothing grows
    flat = [*(10, 10, 20, 5, 1), *(1, 2, 5, 1) * 3, *(10, 10, 20, 5, 1), *(1, 2, 5, 1) * 2]
    assert _growing(flat) is None
    # prompts of doubling length, one pass each (a prefill sweep): "a" and "b" grow by far more than a token's rows
    sweep = [*(10, 10, 20, 5, 1), *(20, 40, 5, 1), *(40, 80, 5, 1), *(80, 160, 5, 1), *(10, 10, 20, 5, 1)]
    sweep += [*(20, 40, 5, 1), *(40, 80, 5, 1)]
    assert _growing(sweep) is None
    # no token sampled in the passes (no argmax or draw): not a decode run
    assert _growing(GROW_BLOCKS, [n.replace("argmax", "relu") for n in GROW_NAMES]) is None
    # growth in fewer than GROWING_PAIRS pairs of passes decides nothing
    assert _growing(GROW_BLOCKS, passes_=4) is None


def test_pass_growth_of_some_passes_only() -> None:
    seq = _growing_sequence(GROW_BLOCKS)
    every = passes.pass_growth(seq, GROW_FIRST, GROW_LAST)
    some = passes.pass_growth(seq, GROW_FIRST, GROW_LAST, np.array([0, 2, 4]))  # the first pass has none before it
    for all_passes, picked in zip(every, some, strict=True):
        assert np.isnan(picked[[0, 1, 3, 5, 6]]).all()
        assert np.array_equal(picked[[2, 4]], all_passes[[2, 4]], equal_nan=True)


def _stalled_run(stall_ns: int, head: tuple[str, ...] = ()) -> tuple[Seq, list[int]]:
    """Four requests of three passes. A pass launches "k" (a generic kernel that also runs inside it), "conv" and
    "mark" (its once-per-pass kernels), six more, and ends with "pool"; a request's first pass starts with ``head``
    and "conv" (no "k" before it) after a 1 ms host round trip. Launches 10 us apart; a stall of ``stall_ns`` on
    the host (a garbage collection) before the "k" in the middle of pass 4 (a request's second pass). Returns the
    sequence and each pass's first position."""
    body = ["conv", "mark", "a", "b", "k", "c", "d", "e", "pool"]
    names: list[str] = []
    starts: list[int] = []
    firsts: list[int] = []
    t = 1_000_000
    for p in range(12):
        t += 1_000_000 if p % 3 == 0 else 40_000
        firsts.append(len(names))
        for i, name in enumerate([*head, *body] if p % 3 == 0 else ["k", *body]):
            if p == 4 and name == "k" and i > len(head):
                t += stall_ns
            names.append(name)
            starts.append(t)
            t += 10_000
    k = kernel_frame(names, starts, [5_000] * len(names))
    return kernel_sequence(k, Api(launches_and_syncs(starts, []), 42), 42), firsts


def _conv_level(seq: Seq) -> Level:
    conv, mark = seq.names.index("conv"), seq.names.index("mark")
    return Level(12, [conv, mark], mark, 9.7, 1.0, 1.0, 1.0, 1.0)


@pytest.mark.parametrize("stall", [0, 5_000_000])
def test_a_host_stall_inside_a_pass_is_no_pass_boundary(stall: int) -> None:
    seq, firsts = _stalled_run(stall)
    found = passes.passes_from_level(seq, _conv_level(seq))
    # every pass starts at its own first kernel: "k" inside a request, "conv" at a request's start (the kernel
    # before it there, "pool", is not the usual first kernel); the stall inside pass 4, its largest launch gap,
    # 500 times the others, is no boundary
    assert found.first.tolist() == firsts
    assert np.diff(found.first).tolist() == [9, 10, 10] * 3 + [9, 10]
    assert found.last.tolist() == [*firsts[1:], len(seq)]


def test_a_pass_with_a_longer_head_keeps_it() -> None:
    # a request's first pass starts with three kernels more ("emb", "x", "y") and a "k": the usual first kernel
    # lies inside its head, but moving the boundary there would take its first kernels into the pass before (both
    # passes further from the median length), so the boundary stays at the largest launch gap
    seq, firsts = _stalled_run(5_000_000, head=("emb", "x", "y", "k"))
    found = passes.passes_from_level(seq, _conv_level(seq))
    assert found.first.tolist()[1:] == firsts[1:]  # (the first pass starts at the usual head before "conv")
    assert [seq.names[seq.code[f]] for f in found.first.tolist()[1:4]] == ["k", "k", "emb"]


def test_closing_work_is_left_out_only_where_passes_end_with_their_once_per_pass_kernels() -> None:
    # 6 passes of "a m b" with the once-per-pass kernel "m" in the middle; the last pass closes with "x y" (rare):
    # where "m" ends the passes (tail 0) those are the request's closing work and leave the pass's kernel mix
    # plain; where passes run on after "m" (here a tail of 1 of 2 kernels, over a quarter), they count
    names = ["a", "m"] * 5 + ["a", "m", "x", "y"]
    seq = _sequence(names)
    first = np.array([0, 2, 4, 6, 8, 10])
    last = np.array([2, 4, 6, 8, 10, 14])
    m = np.array([i for i, n in enumerate(names) if n == "m"])
    ends = passes.pass_stats(seq, first, last, m)
    assert ends.rare_share[-1] == 0.5 and ends.own_rare_share()[-1] == 0.0
    names = ["m", "a"] * 5 + ["m", "a", "x", "y"]
    seq = _sequence(names)
    m = np.array([i for i, n in enumerate(names) if n == "m"])
    runs_on = passes.pass_stats(seq, first, last, m)
    assert runs_on.rare_share[-1] == 0.5 and runs_on.own_rare_share()[-1] == 0.5
