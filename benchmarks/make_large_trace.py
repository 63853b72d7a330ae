#!/usr/bin/env python3
"""Build a large nsys SQLite export by replicating the activity of a real one.

    python benchmarks/make_large_trace.py SRC.sqlite DST.sqlite [--kernels 2000000] [--api 4000000]

SRC is copied to DST, then the rows of the activity tables (CUDA kernels, CUDA runtime API calls, memcpy, memset,
synchronization and NVTX events) are appended to themselves ``copies - 1`` times with ``INSERT ... SELECT`` inside
SQLite. Copy ``k`` has every ``start``/``end`` shifted by ``k * span`` (``span`` covers the whole trace, so copies
follow one another in time and never overlap) and every ``correlationId`` offset by ``k * (max correlationId + 1)``
(so each copy's kernel -> API joins stay 1:1 and never cross copies). All other columns are copied unchanged.
NVTX DomainCreate events (type 75) are not replicated, so domains stay unique. ANALYSIS_DETAILS' duration and
stopTime are stretched over all copies. The number of copies is the smallest that reaches both ``--kernels``
kernel rows and ``--api`` CUDA API rows. Only Python's standard library is needed.
"""

from __future__ import annotations

import argparse
import math
import shutil
import sqlite3
import sys
import time
from pathlib import Path

KERNEL = "CUPTI_ACTIVITY_KIND_KERNEL"
RUNTIME = "CUPTI_ACTIVITY_KIND_RUNTIME"
MEMCPY = "CUPTI_ACTIVITY_KIND_MEMCPY"
MEMSET = "CUPTI_ACTIVITY_KIND_MEMSET"
SYNC = "CUPTI_ACTIVITY_KIND_SYNCHRONIZATION"
NVTX = "NVTX_EVENTS"
# Tables replicated per copy; those missing from the source are skipped.
TABLES = (KERNEL, RUNTIME, MEMCPY, MEMSET, SYNC, NVTX)
CORRELATED = (KERNEL, RUNTIME, MEMCPY, MEMSET, SYNC)
NVTX_DOMAIN_CREATE = 75
# Gap between the end of one copy's activity and the start of the next (ns).
GAP_NS = 1_000_000


def _tables(con: sqlite3.Connection) -> set[str]:
    return {r[0] for r in con.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}


def _columns(con: sqlite3.Connection, table: str) -> list[str]:
    return [r[1] for r in con.execute(f'PRAGMA table_info("{table}")')]


def _count(con: sqlite3.Connection, table: str) -> int:
    return int(con.execute(f'SELECT count(*) FROM "{table}"').fetchone()[0])


def plan_copies(kernels: int, api: int, want_kernels: int, want_api: int) -> int:
    """Fewest copies (>= 1) giving at least ``want_kernels`` kernel rows and ``want_api`` API rows."""
    need = 1
    if want_kernels > 0:
        if kernels == 0:
            raise SystemExit(f"source has no {KERNEL} rows; cannot reach {want_kernels} kernels")
        need = max(need, math.ceil(want_kernels / kernels))
    if want_api > 0:
        if api == 0:
            raise SystemExit(f"source has no {RUNTIME} rows; cannot reach {want_api} API rows")
        need = max(need, math.ceil(want_api / api))
    return need


def time_span(con: sqlite3.Connection, tables: list[str]) -> tuple[int, int, int]:
    """(first start, last end, shift per copy) over the replicated tables and ANALYSIS_DETAILS."""
    starts: list[int] = []
    ends: list[int] = []
    for t in tables:
        a, b, c = con.execute(f'SELECT min(start), max(end), max(start) FROM "{t}"').fetchone()
        starts += [v for v in (a,) if v is not None]
        ends += [v for v in (b, c) if v is not None]
    if not starts or not ends:
        raise SystemExit("source has no timestamped activity to replicate")
    lo, hi = min(starts), max(ends)
    shift = hi - lo + GAP_NS
    if "ANALYSIS_DETAILS" in _tables(con):
        row = con.execute("SELECT min(startTime), max(stopTime) FROM ANALYSIS_DETAILS").fetchone()
        if row[0] is not None and row[1] is not None:
            shift = max(shift, int(row[1]) - int(row[0]))
    return lo, hi, shift


def correlation_offset(con: sqlite3.Connection, tables: list[str]) -> int:
    top = 0
    for t in tables:
        if "correlationId" in _columns(con, t):
            v = con.execute(f'SELECT max(correlationId) FROM "{t}"').fetchone()[0]
            top = max(top, int(v or 0))
    return top + 1


def replicate(con: sqlite3.Connection, table: str, copies: int, shift: int, corr_step: int) -> int:
    """Append ``copies - 1`` shifted copies of ``table``'s current rows; returns the rows added."""
    cols = _columns(con, table)
    max_rowid = con.execute(f'SELECT max(rowid) FROM "{table}"').fetchone()[0]
    if max_rowid is None:
        return 0
    exprs = []
    for c in cols:
        if c in ("start", "end"):
            exprs.append(f'"{c}" + :k * :shift')
        elif c == "correlationId":
            exprs.append(f'"{c}" + :k * :corr')
        else:
            exprs.append(f'"{c}"')
    where = "rowid <= :top"
    if table == NVTX and "eventType" in cols:
        where += f" AND eventType IS NOT {NVTX_DOMAIN_CREATE}"
    names = ", ".join(f'"{c}"' for c in cols)
    sql = f'INSERT INTO "{table}" ({names}) SELECT {", ".join(exprs)} FROM "{table}" WHERE {where} ORDER BY rowid'
    before = _count(con, table)
    for k in range(1, copies):
        con.execute(sql, {"k": k, "shift": shift, "corr": corr_step, "top": max_rowid})
    return _count(con, table) - before


def build(src: Path, dst: Path, want_kernels: int, want_api: int, force: bool = False) -> dict[str, int]:
    if dst.exists():
        if not force:
            raise SystemExit(f"{dst} exists (pass --force to overwrite)")
        dst.unlink()
    if src.resolve() == dst.resolve():
        raise SystemExit("SRC and DST are the same file")
    shutil.copyfile(src, dst)
    con = sqlite3.connect(dst, isolation_level=None)
    try:
        con.execute("PRAGMA journal_mode = OFF")
        con.execute("PRAGMA synchronous = OFF")
        con.execute("PRAGMA cache_size = -262144")  # 256 MiB
        present = _tables(con)
        tables = [t for t in TABLES if t in present]
        kernels = _count(con, KERNEL) if KERNEL in present else 0
        api = _count(con, RUNTIME) if RUNTIME in present else 0
        copies = plan_copies(kernels, api, want_kernels, want_api)
        _lo, _hi, shift = time_span(con, tables)
        corr = correlation_offset(con, [t for t in CORRELATED if t in present])
        con.execute("BEGIN")
        added = {t: replicate(con, t, copies, shift, corr) for t in tables}
        if "ANALYSIS_DETAILS" in present:
            con.execute(
                "UPDATE ANALYSIS_DETAILS SET stopTime = stopTime + :d, duration = duration + :d",
                {"d": (copies - 1) * shift},
            )
        con.execute("COMMIT")
        counts = {t: _count(con, t) for t in tables}
    finally:
        con.close()
    return {"copies": copies, "shift_ns": shift, "corr_step": corr, **{f"+{t}": n for t, n in added.items()}, **counts}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("src", type=Path, help="real nsys .sqlite export")
    ap.add_argument("dst", type=Path, help="output .sqlite (must not exist unless --force)")
    ap.add_argument("--kernels", type=int, default=2_000_000, help="minimum kernel rows (default 2000000)")
    ap.add_argument("--api", type=int, default=4_000_000, help="minimum CUDA runtime API rows (default 4000000)")
    ap.add_argument("--force", action="store_true", help="overwrite DST")
    args = ap.parse_args(argv)
    t0 = time.perf_counter()
    info = build(args.src, args.dst, args.kernels, args.api, args.force)
    dt = time.perf_counter() - t0
    size = args.dst.stat().st_size / 2**20
    print(f"{args.dst}: {info['copies']} copies, shift {info['shift_ns']} ns, correlationId step {info['corr_step']}")
    for t in TABLES:
        if t in info:
            print(f"  {t:40s} {info[t]:>12,d} rows")
    print(f"  built in {dt:.1f} s, {size:.0f} MiB")
    return 0


if __name__ == "__main__":
    sys.exit(main())
