"""Per-pass measures of the run structure (``structure/passes.py``) and the process filter of the call frame
(``phases.rows_where``), on small hand-made runs whose answers are counted by hand."""

from __future__ import annotations

import numpy as np
import polars as pl
import pytest

from nsys_doctor.analysis.phases import rows_where
from nsys_doctor.analysis.structure import passes
from nsys_doctor.analysis.structure.sequence import Api, Seq, kernel_sequence
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
    rare_k, rare_n = passes._rare_names(seq, FIRST, LAST)
    # "p" and "t" run in one pass each (rare); "w" in two of eight (2 >= max(2.0, 2.0): not rare); "g" in none
    assert rare_k.tolist() == [1.0, 0.0, 0.0, 0.0, 1.0, 0.0, 0.0, 0.0]
    assert rare_n.tolist() == [1.0, 0.0, 0.0, 0.0, 1.0, 0.0, 0.0, 0.0]
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
    rare_k, rare_n = passes._rare_names(seq, first, last)
    assert rare_k.tolist() == [0.0, 3.0, 0.0, 0.0, 0.0]
    assert rare_n.tolist() == [0.0, 1.0, 0.0, 0.0, 0.0]


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
