"""NVTX reports on a tiny hand-built trace, plus the containment and nesting helpers against brute force."""

from __future__ import annotations

import random
import sqlite3
from pathlib import Path

import polars as pl
import pytest

from nsys_doctor.stats import ReportContext, parse_report_arg, run_report
from nsys_doctor.stats.nvtx import SmallRange, _levels, _parents, _small_containing, containing
from nsys_doctor.trace import Trace
from nsys_doctor.trace.window import EventFilter

G = (10 << 24) | 10  # pid 10, tid 10
P = 10 << 24


@pytest.fixture
def tiny(tmp_path: Path):
    """Push/pop :outer [0,1000] > :inner [100,400]; open start/end :se from 50; a mark at 2000.

    Launches: corr 1 at [150,160] (in all three ranges), corr 2 at [500,510] (outer, se), corr 3 at
    [1500,1510] (in none); kernel of corr 9 has no API call.
    """
    path = tmp_path / "tiny.sqlite"
    con = sqlite3.connect(path)
    con.executescript("""
        CREATE TABLE StringIds (id INTEGER PRIMARY KEY, value TEXT);
        CREATE TABLE NVTX_EVENTS (start INT, end INT, eventType INT, globalTid INT, endGlobalTid INT, textId INT,
                                  text TEXT, domainId INT);
        CREATE TABLE CUPTI_ACTIVITY_KIND_KERNEL (start INT, end INT, deviceId INT, correlationId INT, globalPid INT,
                                                 demangledName INT, shortName INT, streamId INT DEFAULT 7);
        CREATE TABLE CUPTI_ACTIVITY_KIND_RUNTIME (start INT, end INT, globalTid INT, correlationId INT, nameId INT);
        INSERT INTO StringIds VALUES (0, 'void k1<int>()'), (1, 'k2'), (2, 'cudaLaunchKernel'), (3, 'k1');
    """)
    con.executemany(
        "INSERT INTO NVTX_EVENTS VALUES (?,?,?,?,NULL,NULL,?,NULL)",
        [
            (0, 1000, 59, G, "outer"),
            (100, 400, 59, G, "inner"),
            (50, None, 60, G, "se"),
            (2000, None, 34, G, "m"),
        ],
    )
    con.executemany(
        "INSERT INTO CUPTI_ACTIVITY_KIND_RUNTIME VALUES (?,?,?,?,2)",
        [(150, 160, G, 1), (500, 510, G, 2), (1500, 1510, G, 3)],
    )
    con.executemany(
        "INSERT INTO CUPTI_ACTIVITY_KIND_KERNEL VALUES (?,?,0,?,?,?,?,7)",
        [(200, 300, 1, P, 0, 3), (600, 650, 2, P, 1, 1), (1600, 1620, 3, P, 0, 3), (0, 5, 9, P, 1, 1)],
    )
    con.commit()
    con.close()
    trace = Trace.open(path)
    yield trace
    trace.close()


def _rows(trace: Trace, report: str) -> list[tuple]:
    return run_report(ReportContext(trace, EventFilter()), parse_report_arg(report)).rows


def test_nvtx_sum_open_range_runs_to_last_nvtx_event(tiny: Trace) -> None:
    assert _rows(tiny, "nvtx_sum") == [
        (60.0, 1950, 1, 1950.0, 1950.0, 1950, 1950, 0.0, "StartEnd", ":se"),
        (30.8, 1000, 1, 1000.0, 1000.0, 1000, 1000, 0.0, "PushPop", ":outer"),
        (9.2, 300, 1, 300.0, 300.0, 300, 300, 0.0, "PushPop", ":inner"),
    ]


def test_nvtx_kern_sum_every_enclosing_range_and_unranged_rows(tiny: Trace) -> None:
    assert _rows(tiny, "nvtx_kern_sum:base") == [
        (None, None, None, None, 0, 1, 5, 5.0, 5.0, 5, 5, 0.0, "k2"),  # no launching API call
        (None, None, 10, 10, 0, 1, 20, 20.0, 20.0, 20, 20, 0.0, "k1"),  # launched outside every range
        (":inner", "PushPop", 10, 10, 1, 1, 100, 100.0, 100.0, 100, 100, 0.0, "k1"),
        (":outer", "PushPop", 10, 10, 1, 1, 100, 100.0, 100.0, 100, 100, 0.0, "k1"),
        (":outer", "PushPop", 10, 10, 1, 1, 50, 50.0, 50.0, 50, 50, 0.0, "k2"),
        (":se", "StartEnd", 10, 10, 1, 1, 100, 100.0, 100.0, 100, 100, 0.0, "k1"),  # open: ends at 1000 here
        (":se", "StartEnd", 10, 10, 1, 1, 50, 50.0, 50.0, 50, 50, 0.0, "k2"),
    ]
    assert _rows(tiny, "nvtx_kern_sum")[2][-1] == "void k1<int>()"


def test_nvtx_gpu_proj_sum_levels_follow_tightest_parent(tiny: Trace) -> None:
    # :inner's tightest parent is :se (650 ns slack) not :outer (700), so its level is 2
    assert _rows(tiny, "nvtx_gpu_proj_sum") == [
        (":outer", "PushPop", 450, 1000, 1, 450.0, 450.0, 450, 450, 0.0, 2, 2.0, 0.0, 1.0),
        (":se", "StartEnd", 450, 950, 1, 450.0, 450.0, 450, 450, 0.0, 2, 2.0, 1.0, 1.0),
        (":inner", "PushPop", 100, 300, 1, 100.0, 100.0, 100, 100, 0.0, 1, 1.0, 2.0, 0.0),
    ]


def test_containing_matches_brute_force() -> None:
    rnd = random.Random(7)
    rng = []
    for rid in range(300):
        s = rnd.randint(0, 1000)
        rng.append((rid, rnd.randint(0, 2), s, s + rnd.choice([0, 1, 5, 50, 400])))
    qs = []
    for qid in range(500):
        s = rnd.randint(-10, 1500)
        qs.append((qid, rnd.randint(0, 3), s, s + rnd.choice([0, 1, 3, 30])))
    ranges = pl.DataFrame(rng, schema=["rid", "tid", "rs", "re"], orient="row")
    queries = pl.DataFrame(qs, schema=["qid", "tid", "s", "e"], orient="row")
    got = set(containing(queries, ranges).iter_rows())
    want = {(q, r) for q, qt, s, e in qs for r, rt, rs, re in rng if qt == rt and rs <= s and re >= e}
    assert got == want


@pytest.mark.parametrize("seed", range(6))
def test_stdlib_containing_matches_brute_force(seed: int) -> None:
    """The stdlib sweep (``_small_containing``: the open ranges filtered only when one may have ended, one list
    shared by the queries inside all of them) against the definition: long ranges nested in each other (many
    queries inside all the open ones), short ones, ties of starts and ends, open ranges (no end), threads without
    ranges and queries of a single instant."""
    rnd = random.Random(seed)
    ranges = []
    for rid in range(rnd.choice([1, 5, 60])):
        s = rnd.randint(0, 1000)
        end = None if rnd.random() < 0.05 else s + rnd.choice([0, 1, 5, 50, 400, 2000])
        ranges.append(SmallRange(rid, rnd.choice([0, 1, 2, None]), s, end, f"r{rid}", "PushPop"))
    queries = []
    for qid in range(800):
        s = rnd.randint(-10, 1500)
        queries.append((qid, rnd.randint(0, 3), s, s + rnd.choice([0, 0, 1, 3, 30, 300])))
    found = _small_containing(queries, ranges)
    assert found is not None
    for qid, tid, s, e in queries:
        want = [
            r.rid
            for r in sorted(ranges, key=lambda r: r.rs)
            if r.tid == tid and r.re is not None and r.rs <= s and r.re >= e
        ]
        assert sorted(found.get(qid, [])) == sorted(want), (seed, qid)


def test_levels_roots_chains_and_cycles() -> None:
    ranges = pl.DataFrame(
        [
            (0, 1, 0, 100),
            (1, 1, 10, 90),
            (2, 1, 20, 30),
            (3, 1, 40, 50),
            (4, 1, 41, 49),
            (5, 2, 0, 5),
            (6, 1, 200, 300),
            (7, 1, 200, 300),
            (8, 1, 210, 220),
        ],
        schema=["rid", "tid", "rs", "re"],
        orient="row",
    )
    parents = dict(_parents(ranges).iter_rows())
    assert parents == {0: None, 1: 0, 2: 1, 3: 1, 4: 3, 5: None, 6: 7, 7: 6, 8: 6}
    levels = dict(_levels(_parents(ranges)).iter_rows())
    # identical ranges are each other's tightest parent: nsys's tree never reaches them (no level)
    assert levels == {0: 0, 1: 1, 2: 2, 3: 2, 4: 3, 5: 0, 6: None, 7: None, 8: None}
