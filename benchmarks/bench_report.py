"""Time ``nsys-doctor report`` against a bare SQLite scan of the same trace (and against an earlier version).

    python benchmarks/bench_report.py [TRACE] [--runs 3] [--before OLD_SRC] [--json FILE]

Measured in one run, as whole processes (interpreter start and imports included, as a user sees them), with the
runs interleaved so that machine noise hits every command alike; each line is the best of ``--runs``:

* ``bare``: ``SELECT count(*), sum("end" - start)`` over the kernel and CUDA API tables with the stdlib sqlite3
  module (``python -c``, so it pays an interpreter start too): the least any tool reading those rows can spend;
* ``stats -r cuda_gpu_kern_sum`` (``--format csv -o -``): the kernel summary (the earlier target: report < 3x it);
* ``report`` (terminal format) of this source tree, and with ``--before OLD_SRC`` (a directory holding an earlier
  ``nsys_doctor`` package, e.g. an older checkout's ``src``) the same command run from there.

Printed: wall seconds, the ratio to ``bare``, and peak RSS (MB, the child's ``ru_maxrss``); then report / kernel
summary and before / after. With ``--before`` the two reports' outputs are also compared byte for byte. Without
TRACE the largest trace in ../shared/traces is used; a big one comes from benchmarks/make_large_trace.py.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sqlite3
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
KERNEL = "CUPTI_ACTIVITY_KIND_KERNEL"
RUNTIME = "CUPTI_ACTIVITY_KIND_RUNTIME"
TARGET = 3.0  # report / kernel summary


def run_measured(cmd: list[str], env: dict[str, str]) -> tuple[float, float, bytes]:
    """(wall s, peak RSS MB, standard output) of one run; the child's rusage comes from os.wait4."""
    with tempfile.TemporaryFile() as out:
        t0 = time.perf_counter()
        proc = subprocess.Popen(cmd, stdout=out, stderr=subprocess.DEVNULL, env=env)
        _, status, usage = os.wait4(proc.pid, 0)
        wall = time.perf_counter() - t0
        proc.returncode = os.waitstatus_to_exitcode(status)
        if proc.returncode != 0:
            raise SystemExit(f"failed ({proc.returncode}): {' '.join(cmd)}")
        out.seek(0)
        return wall, usage.ru_maxrss / 1024, out.read()


def row_counts(trace: Path) -> dict[str, int]:
    con = sqlite3.connect(f"file:{trace}?mode=ro", uri=True)
    try:
        have = {r[0] for r in con.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
        return {t: int(con.execute(f"SELECT count(*) FROM {t}").fetchone()[0]) for t in (KERNEL, RUNTIME) if t in have}
    finally:
        con.close()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("trace", nargs="?", type=Path)
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--before", type=Path, help="source directory of an earlier nsys_doctor (holding nsys_doctor/)")
    ap.add_argument("--json", type=Path, help="also write the numbers here")
    a = ap.parse_args()
    trace = a.trace
    if trace is None:
        shared = ROOT.parent / "shared" / "traces"
        trace = max(shared.glob("*.sqlite"), key=lambda p: p.stat().st_size)
    trace = trace.resolve()
    counts = row_counts(trace)
    py = sys.executable
    bare_sql = "; ".join(f"c.execute('SELECT count(*), sum(\"end\" - start) FROM {t}').fetchall()" for t in counts)
    bare = [py, "-c", f"import sqlite3; c = sqlite3.connect('file:{trace}?mode=ro', uri=True); {bare_sql}"]
    mod = [py, "-m", "nsys_doctor.cli.main"]
    after_env = dict(os.environ, PYTHONPATH=str(ROOT / "src"))
    commands: dict[str, tuple[list[str], dict[str, str]]] = {
        "bare scan (kernels + API)": (bare, dict(os.environ)),
        "stats -r cuda_gpu_kern_sum": (
            [*mod, "stats", str(trace), "-r", "cuda_gpu_kern_sum", "--format", "csv", "-o", "-"],
            after_env,
        ),
        "report (after)": ([*mod, "report", str(trace), "--format", "terminal"], after_env),
    }
    if a.before is not None:
        before_env = dict(os.environ, PYTHONPATH=str(a.before.resolve()))
        commands["report (before)"] = ([*mod, "report", str(trace), "--format", "terminal"], before_env)
    for cmd, env in commands.values():  # warm the page cache (and each tree's imports)
        run_measured(cmd, env)
    walls: dict[str, list[float]] = {k: [] for k in commands}
    peaks: dict[str, float] = dict.fromkeys(commands, 0.0)
    outputs: dict[str, bytes] = {}
    names = list(commands)
    for i in range(a.runs):
        for k in names[i % len(names) :] + names[: i % len(names)]:
            wall, peak, out = run_measured(*commands[k])
            walls[k].append(wall)
            peaks[k] = max(peaks[k], peak)
            outputs[k] = out
    best = {k: min(v) for k, v in walls.items()}
    ref = best[names[0]]
    rows = ", ".join(f"{t} {n:,}" for t, n in counts.items())
    print(f"trace: {trace} ({trace.stat().st_size / 2**20:.0f} MiB; {rows})")
    host = f"{platform.node() or '?'}, {os.cpu_count()} CPUs, Python {platform.python_version()}"
    print(f"host: {host}; best of {a.runs}")
    print()
    print(f"{'command':<28} {'wall s':>7} {'x bare':>7} {'peak MB':>8}")
    print(f"{'-' * 28} {'-' * 7} {'-' * 7} {'-' * 8}")
    for k in names:
        print(f"{k:<28} {best[k]:>7.3f} {best[k] / ref:>6.2f}x {peaks[k]:>8.0f}")
    print()
    ratio = best["report (after)"] / best["stats -r cuda_gpu_kern_sum"]
    print(f"report / kernel summary : {ratio:.2f}x (target < {TARGET:.0f}x) {'PASS' if ratio < TARGET else 'FAIL'}")
    result: dict[str, object] = {
        "trace": str(trace),
        "rows": counts,
        "runs": a.runs,
        "best_s": best,
        "peak_mb": peaks,
        "report_over_kern_sum": ratio,
    }
    if a.before is not None:
        speedup = best["report (before)"] / best["report (after)"]
        same = outputs["report (before)"] == outputs["report (after)"]
        print(f"report before / after   : {speedup:.2f}x faster; same output: {'yes' if same else 'NO'}")
        result.update(before_over_after=speedup, same_output=same)
    if a.json:
        a.json.write_text(json.dumps(result, indent=2) + "\n")


if __name__ == "__main__":
    main()
