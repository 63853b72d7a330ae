"""Speedup of the per-rank work (``nsys-doctor nccl``) with 1, 2 and 4 worker processes, on replicated rank traces.

    python benchmarks/bench_ranks.py [--ranks 16] [--scale 16] [--workers 1,2,4] [--repeat 2] [--dask [ADDRESS]]
        [--report] [--sources DIR]

The two real rank traces of ``../shared/traces/multigpu`` (``tp2_straggler_rank0/1.sqlite``, 10k kernels each)
are first made ``--scale`` times longer (their activity replicated in time with ``make_large_trace.replicate``,
the same time shift for both ranks so that their collectives still line up), then copied into a temporary
directory as ``trace_rank0.sqlite`` .. ``trace_rank{N-1}.sqlite`` (even ranks are copies of rank 0, odd of
rank 1), then discover + read + summarize every rank + the cross-rank reduce are timed with each worker count
(best of ``--repeat``; pool start-up included, as a user pays it). The results must be identical for every
worker count (and for a Dask cluster with ``--dask``). The peak resident memory of any worker process is
printed too: a worker holds one rank trace at a time, so it does not grow with the number of ranks.

``--report`` also times the whole ``nsys-doctor report DIR --jobs N --format json`` command (a fresh process, the
caches off) for each worker count, and checks that its output is the same for every count. ``--sources DIR`` reads
the two rank traces from DIR instead of ``../shared/traces/multigpu`` (a machine without the shared folder).

Speedup is bounded by the machine's cores (``os.cpu_count()`` is printed): on 2 cores, 4 workers cannot beat 2.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import resource
import shutil
import sqlite3
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SOURCES = [ROOT.parent / "shared" / "traces" / "multigpu" / f"tp2_straggler_rank{r}.sqlite" for r in (0, 1)]


def enlarge(dest: Path, scale: int, sources: list[Path]) -> list[Path]:
    """The two rank traces with their activity repeated ``scale`` times (one common time shift)."""
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    import make_large_trace as mlt

    out = [dest / f"base{r}.sqlite" for r in (0, 1)]
    spans = []
    for src in sources:
        with sqlite3.connect(f"file:{src}?mode=ro", uri=True) as con:
            tables = [t for t in mlt.TABLES if t in mlt._tables(con)]
            spans.append(mlt.time_span(con, tables)[2])
    shift = max(spans)
    for src, dst in zip(sources, out, strict=True):
        shutil.copyfile(src, dst)
        con = sqlite3.connect(dst, isolation_level=None)
        try:
            present = mlt._tables(con)
            tables = [t for t in mlt.TABLES if t in present]
            corr = mlt.correlation_offset(con, [t for t in mlt.CORRELATED if t in present])
            con.execute("BEGIN")
            for t in tables:
                mlt.replicate(con, t, scale, shift, corr)
            con.execute("COMMIT")
        finally:
            con.close()
    return out


def replicate(dest: Path, bases: list[Path], ranks: int) -> list[Path]:
    out = []
    for r in range(ranks):
        p = dest / f"trace_rank{r}.sqlite"
        shutil.copyfile(bases[r % 2], p)
        out.append(p)
    return out


def cpu_seconds() -> float:
    """User + system CPU of this process and its finished children."""
    own, kids = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + kids.ru_utime + kids.ru_stime


def run_once(directory: Path, jobs: int, dask: str | None) -> tuple[float, str, float]:
    from nsys_doctor.analysis.nccl import analyze
    from nsys_doctor.parallel import map_ranks
    from nsys_doctor.report.nccl_text import render_json
    from nsys_doctor.trace.ranks import discover

    t0, c0 = time.perf_counter(), cpu_seconds()
    specs = discover([directory])
    summaries = map_ranks(specs, jobs=jobs, dask=dask)
    result = analyze(summaries)
    elapsed = time.perf_counter() - t0
    return elapsed, render_json(result), cpu_seconds() - c0


def time_reduce(bases: list[Path], counts: list[int]) -> None:
    """The reduce (``nccl.analyze``) alone, on many ranks made of relabeled copies of the two rank summaries."""
    from nsys_doctor.analysis.nccl import analyze
    from nsys_doctor.parallel import map_ranks
    from nsys_doctor.trace.ranks import discover

    base = map_ranks(discover(bases, rank_from="order"))
    for n in counts:
        summaries = [dataclasses.replace(base[r % 2], rank=r) for r in range(n)]
        t0 = time.perf_counter()
        analyze(summaries)
        rows = sum(s.instances.height for s in summaries)
        print(f"reduce over {n} ranks ({rows:,} collective instances): {time.perf_counter() - t0:.2f} s")


def time_report(directory: Path, jobs: int) -> tuple[float, bytes]:
    """Wall seconds and output of the whole ``report`` command on the rank set (caches off)."""
    env = dict(
        os.environ,
        NSYS_DOCTOR_NO_CACHE="1",
        PYTHONPATH=os.pathsep.join(filter(None, [str(ROOT / "src"), os.environ.get("PYTHONPATH")])),
    )
    cmd = [sys.executable, "-m", "nsys_doctor.cli.main", "report", str(directory), "--jobs", str(jobs)]
    t0 = time.perf_counter()
    proc = subprocess.run([*cmd, "--format", "json", "-q"], env=env, capture_output=True)
    if proc.returncode:
        sys.exit(f"report --jobs {jobs} failed ({proc.returncode}): {proc.stderr.decode(errors='replace')[-2000:]}")
    return time.perf_counter() - t0, proc.stdout


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--ranks", type=int, default=16)
    ap.add_argument("--scale", type=int, default=16, help="repeat each rank trace's activity this many times")
    ap.add_argument("--workers", default="1,2,4")
    ap.add_argument("--repeat", type=int, default=2)
    ap.add_argument(
        "--dask",
        nargs="?",
        const="local:2",
        metavar="ADDRESS",
        help="also time a Dask cluster (default local:2: a local cluster of 2 worker processes; local:N for N)",
    )
    ap.add_argument("--report", action="store_true", help="also time the whole report command per worker count")
    ap.add_argument("--sources", type=Path, help="folder holding tp2_straggler_rank0/1.sqlite")
    ap.add_argument(
        "--reduce",
        default="",
        metavar="N,N",
        help="also time the cross-rank reduce alone on N ranks (relabeled copies of the two summaries), e.g. 64,256",
    )
    a = ap.parse_args()
    sources = [a.sources / p.name for p in SOURCES] if a.sources else SOURCES
    if not all(p.is_file() for p in sources):
        sys.exit(f"missing {sources[0].parent}: the shared multi-GPU traces are needed")
    workers = [int(w) for w in a.workers.split(",")]
    with tempfile.TemporaryDirectory(prefix="nsys-doctor-ranks-") as tmp, tempfile.TemporaryDirectory() as tmp2:
        bases = enlarge(Path(tmp2), a.scale, sources)
        with sqlite3.connect(bases[0]) as con:
            kernels = con.execute("SELECT count(*) FROM CUPTI_ACTIVITY_KIND_KERNEL").fetchone()[0]
        print(
            f"{a.ranks} rank traces: copies of {sources[0].name} and {sources[1].name} x{a.scale} "
            f"({kernels:,} kernels, {bases[0].stat().st_size / 2**20:.0f} MiB each); cpu_count={os.cpu_count()}"
        )
        d = Path(tmp)
        replicate(d, bases, a.ranks)
        run_once(d, 1, None)  # warm the page cache and this process's imports
        base = None
        reference = None
        for w in workers:
            best, text, cpu = min(run_once(d, w, None) for _ in range(a.repeat))
            if reference is None:
                reference = text
            same = text == reference
            base = base or best
            print(
                f"workers={w}: {best:6.2f} s  speedup {base / best:4.2f}x  per rank {best / a.ranks * 1e3:6.1f} ms  "
                f"CPU {cpu:6.1f} s ({cpu / best:3.1f} cores busy)  results identical to workers=1: {same}"
            )
        if a.dask:
            best, text, _ = min(run_once(d, 1, a.dask) for _ in range(a.repeat))
            print(f"dask {a.dask}: {best:6.2f} s  speedup {base / best:4.2f}x  results identical: {text == reference}")
        if a.reduce:
            time_reduce(bases, [int(n) for n in a.reduce.split(",")])
        if a.report:
            first: tuple[float, bytes] | None = None
            for w in workers:
                wall, out = min(time_report(d, w) for _ in range(a.repeat))
                first = first or (wall, out)
                print(
                    f"report --jobs {w}: {wall:6.2f} s  speedup {first[0] / wall:4.2f}x  "
                    f"output identical to --jobs {workers[0]}: {out == first[1]}"
                )
    peak = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
    own = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"peak RSS of one worker process: {peak:.0f} MB (this process, which ran workers=1 itself: {own:.0f} MB)")
    summary = json.loads(reference or "{}")
    print(f"late rank found: {summary.get('late', {}).get('late_rank')} of {len(summary.get('ranks', []))} ranks")


if __name__ == "__main__":
    main()
