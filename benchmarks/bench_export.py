"""Time ``nsys-doctor export`` (Perfetto JSON and Parquet) against a bare SQLite scan of the same trace.

    python benchmarks/bench_export.py [TRACE] [--runs 2] [--json FILE]

Measured in one run, as whole processes (interpreter start and imports included), the commands interleaved so that
machine noise hits each alike; each line is the best of ``--runs``:

* ``bare``: ``SELECT count(*), sum("end" - start)`` over the kernel and CUDA API tables with the stdlib sqlite3
  module: the least any tool reading those rows can spend;
* ``report``: the analysis alone (terminal format), since an export runs the same analysis to find its window;
* ``export --perfetto``, ``export --perfetto FILE.gz`` and ``export --parquet DIR`` with ``--whole-trace`` (every
  event of the trace is written: the largest output the command makes).

Every command runs with the frame cache off (``NSYS_DOCTOR_NO_CACHE=1``): the numbers are those of a first run.
Printed: wall seconds, the ratio to ``bare``, peak RSS (MB, the child's ``ru_maxrss``), the output size, and the
events written per second. Without TRACE the largest trace in ../shared/traces is used; a big one comes from
benchmarks/make_large_trace.py (e.g. ``make_large_trace.py src/nsys_doctor/data/sample_decode.sqlite big.sqlite
--kernels 2000000``).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import shutil
import sqlite3
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
TABLES = ("CUPTI_ACTIVITY_KIND_KERNEL", "CUPTI_ACTIVITY_KIND_RUNTIME")


def run_measured(cmd: list[str], env: dict[str, str]) -> tuple[float, float, str]:
    """(wall s, peak RSS MB, standard error) of one run; the child's rusage comes from os.wait4."""
    with tempfile.TemporaryFile() as err:
        t0 = time.perf_counter()
        proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=err, env=env)
        _, status, usage = os.wait4(proc.pid, 0)
        wall = time.perf_counter() - t0
        if os.waitstatus_to_exitcode(status) != 0:
            err.seek(0)
            raise SystemExit(f"failed: {' '.join(cmd)}\n{err.read().decode(errors='replace')}")
        err.seek(0)
        return wall, usage.ru_maxrss / 1024, err.read().decode(errors="replace")


def size_of(path: Path) -> int:
    if path.is_dir():
        return sum(p.stat().st_size for p in path.iterdir())
    return path.stat().st_size if path.exists() else 0


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("trace", nargs="?", type=Path)
    ap.add_argument("--runs", type=int, default=2)
    ap.add_argument("--json", type=Path, help="also write the numbers here")
    a = ap.parse_args()
    trace = a.trace or max((ROOT.parent / "shared" / "traces").glob("*.sqlite"), key=lambda p: p.stat().st_size)
    trace = trace.resolve()
    con = sqlite3.connect(f"file:{trace}?mode=ro", uri=True)
    have = {r[0] for r in con.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
    counts = {t: int(con.execute(f"SELECT count(*) FROM {t}").fetchone()[0]) for t in TABLES if t in have}
    con.close()
    py = sys.executable
    bare_sql = "; ".join(f"c.execute('SELECT count(*), sum(\"end\" - start) FROM {t}').fetchall()" for t in counts)
    bare = [py, "-c", f"import sqlite3; c = sqlite3.connect('file:{trace}?mode=ro', uri=True); {bare_sql}"]
    mod = [py, "-m", "nsys_doctor.cli.main"]
    env = dict(os.environ, PYTHONPATH=str(ROOT / "src"), NSYS_DOCTOR_NO_CACHE="1")  # first runs: no frame cache
    out = Path(tempfile.mkdtemp(prefix="bench_export_"))
    outputs = {
        "export --perfetto": ("--perfetto", out / "t.json"),
        "export --perfetto .gz": ("--perfetto", out / "t.json.gz"),
        "export --parquet": ("--parquet", out / "pq"),
    }
    commands: dict[str, list[str]] = {"bare scan (kernels + API)": bare, "report": [*mod, "report", str(trace)]}
    for k, (flag, path) in outputs.items():
        commands[k] = [*mod, "export", str(trace), "--whole-trace", flag, str(path)]
    try:
        for cmd in commands.values():  # warm the page cache
            run_measured(cmd, env)
        names = list(commands)
        walls: dict[str, list[float]] = {k: [] for k in names}
        peaks = dict.fromkeys(names, 0.0)
        events: dict[str, int] = {}
        for i in range(a.runs):
            for k in names[i % len(names) :] + names[: i % len(names)]:
                wall, peak, err = run_measured(commands[k], env)
                walls[k].append(wall)
                peaks[k] = max(peaks[k], peak)
                m = re.search(r"\((\d+) events", err)
                if m:
                    events[k] = int(m[1])
        sizes = {k: size_of(p) for k, (_, p) in outputs.items()}
    finally:
        shutil.rmtree(out, ignore_errors=True)
    best = {k: min(v) for k, v in walls.items()}
    ref = best[names[0]]
    rows = ", ".join(f"{t} {n:,}" for t, n in counts.items())
    print(f"trace: {trace.name} ({trace.stat().st_size / 2**20:.0f} MiB; {rows})")
    print(
        f"host: {platform.node() or '?'}, {os.cpu_count()} CPUs, Python {platform.python_version()}; best of {a.runs}"
    )
    print()
    print(f"{'command':<26} {'wall s':>7} {'x bare':>7} {'peak MB':>8} {'output MB':>10} {'events/s':>10}")
    for k in names:
        size = f"{sizes[k] / 2**20:>10.1f}" if k in sizes else f"{'':>10}"
        rate = f"{events[k] / best[k]:>10,.0f}" if k in events else f"{'':>10}"
        print(f"{k:<26} {best[k]:>7.3f} {best[k] / ref:>6.2f}x {peaks[k]:>8.0f} {size} {rate}")
    print()
    over = best["export --perfetto"] - best["report"]
    share = best["export --perfetto"] / best["report"]
    print(f"export --perfetto beyond the analysis: {over:.3f} s ({share:.2f}x report)")
    if a.json:
        result = {"trace": trace.name, "rows": counts, "runs": a.runs, "best_s": best, "peak_mb": peaks,
                  "output_bytes": sizes, "events": events}  # fmt: skip
        a.json.write_text(json.dumps(result, indent=2) + "\n")


if __name__ == "__main__":
    main()
