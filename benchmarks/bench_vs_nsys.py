#!/usr/bin/env python3
"""Time every ``nsys stats`` report and ``nsys analyze`` rule against nsys-doctor's, as whole commands, on the
machine where real nsys runs (the GPU machine: ``../shared/device``), and check that both print the same CSV.

    python3 benchmarks/bench_vs_nsys.py TRACE.sqlite [TRACE2.sqlite ...] [--nsys PATH] [--reports a,b]
        [--skip-nsys-over 120] [--deadline 500] [--json FILE]

For each trace and each report R, in this order, one run each (an nsys run is seconds to a minute, so runs are not
repeated; the two commands of one report run back to back so that machine noise hits both alike):

* nsys: ``nsys stats --force-export=false --format csv -o - -r R TRACE`` (``nsys analyze --format csv -o - -r R
  TRACE`` for a rule); its ``Processing [...]`` banner is left out of the comparison;
* ours: ``nsys-doctor stats TRACE -r R --format csv -o -`` (the whole process: interpreter start, imports, reading,
  rendering), started as the installed ``nsys-doctor`` script starts it: the console script beside the interpreter
  when there is one, else the same few lines (import ``entry`` from ``nsys_doctor.cli.main`` and call it) through
  ``python -c``. ``python -m`` would add runpy's imports, which the installed command does not make.

Bytecode: by default our commands write and read cached bytecode under a temporary PYTHONPYCACHEPREFIX, as an
installed package has its ``.pyc`` files (pip compiles them at install); the source tree is left alone, and
PYTHONDONTWRITEBYTECODE, which some images set, is cleared for them. ``--no-bytecode`` measures a Python that
compiles every module of ours at every start. The interpreter's own start (``python -c "import sqlite3"``, median of
``--repeat`` runs or at least 5) is printed first: the floor under every one of our times.

With ``--repeat N`` (small traces, where one run is a fraction of a second) the two commands run N times each,
alternated, and their median wall times are compared. Printed per row: both wall times, nsys/ours (the speedup;
target >= 1.5x), and whether the CSVs are identical. nsys is run on a copy of each trace (nsys may add tables to a
file it reads); the copy's md5 is checked after.
With ``--deadline S`` no new report starts after S seconds; ``--skip-nsys-over S`` leaves out the reports whose
nsys run took longer than S on an earlier trace of the list (big traces after small ones).
Only the standard library is needed (and nsys-doctor importable by ``python3 -m``).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from child_env import bytecode_env, entry_script  # beside this script

STATS = [
    "cuda_api_sum",
    "cuda_api_gpu_sum",
    "cuda_gpu_kern_sum",
    "cuda_gpu_kern_gb_sum",
    "cuda_gpu_mem_size_sum",
    "cuda_gpu_mem_time_sum",
    "cuda_gpu_sum",
    "cuda_kern_exec_sum",
    "nvtx_sum",
    "nvtx_kern_sum",
    "nvtx_gpu_proj_sum",
    "osrt_sum",
    "cuda_gpu_trace",
]
RULES = [
    "cuda_api_sync",
    "cuda_memcpy_async",
    "cuda_memcpy_sync",
    "cuda_memset_sync",
    "gpu_gaps",
    "gpu_time_util",
]
TARGET = 1.5


def run(cmd: list[str], timeout: float, env: dict[str, str] | None = None) -> tuple[float, int, bytes]:
    t0 = time.perf_counter()
    try:
        p = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, timeout=timeout, env=env)
        return time.perf_counter() - t0, p.returncode, p.stdout
    except subprocess.TimeoutExpired:
        return time.perf_counter() - t0, -9, b""


def body(out: bytes) -> list[str]:
    """The CSV lines of an output, without nsys's banner, its SKIPPED notices (nsys prints them on standard output,
    nsys-doctor on standard error; both write no table then) and blank lines."""
    lines = out.decode("utf-8", errors="replace").splitlines()
    return [ln for ln in lines if ln.strip() and not ln.startswith(("Processing [", "SKIPPED: "))]


def md5(path: Path) -> str:
    h = hashlib.md5()
    with path.open("rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("traces", nargs="+", type=Path)
    ap.add_argument("--nsys", default=shutil.which("nsys") or "nsys")
    ap.add_argument("--reports", default=",".join(STATS + RULES))
    ap.add_argument("--timeout", type=float, default=300.0, help="kill one command after this many s")
    ap.add_argument("--skip-nsys-over", type=float, default=None)
    ap.add_argument("--deadline", type=float, default=None)
    ap.add_argument("--json", type=Path, default=None)
    ap.add_argument("--repeat", type=int, default=1, help="runs of each command (alternated); medians are compared")
    ap.add_argument(
        "--no-bytecode",
        action="store_true",
        help="run ours with PYTHONDONTWRITEBYTECODE=1 and no cached bytecode (every module compiled at every start)",
    )
    a = ap.parse_args()
    t_start = time.perf_counter()
    reports = [r for r in a.reports.split(",") if r]
    env, pyc_dir = bytecode_env(a.no_bytecode)
    ours_cmd = [*entry_script(sys.executable), "stats"]
    version = subprocess.run([a.nsys, "--version"], capture_output=True, text=True).stdout.strip()
    print(f"nsys: {version}; python {sys.version.split()[0]}; {os.cpu_count()} CPUs")
    floor = [run([sys.executable, "-c", "import sqlite3"], a.timeout, env)[0] for _ in range(max(5, a.repeat))]
    how = "the console script" if len(ours_cmd) == 2 else "python -c (the console script's lines)"
    cached = "not cached" if a.no_bytecode else "cached"
    print(f"interpreter start (python -c 'import sqlite3'), median: {statistics.median(floor):.3f} s; ours run as "
          f"{how}, bytecode {cached}")  # fmt: skip
    slow: set[str] = set()
    passed = identical = 0
    results: list[dict[str, object]] = []
    work = Path(tempfile.mkdtemp(prefix="bench_vs_nsys_"))
    try:
        for trace in a.traces:
            copy = work / trace.name
            shutil.copyfile(trace, copy)
            before = md5(copy)
            print(f"\n{trace.name} ({trace.stat().st_size / 2**20:.1f} MiB)")
            print(f"{'report':<22} {'nsys s':>8} {'ours s':>8} {'nsys/ours':>10} {'target':>7} {'same CSV':>9}")
            for r in reports:
                if a.deadline is not None and time.perf_counter() - t_start > a.deadline:
                    print(f"{r:<22} (not run: past the deadline)")
                    continue
                if r in slow:
                    print(f"{r:<22} (not run: nsys took over {a.skip_nsys_over:g} s on a smaller trace)")
                    continue
                tool = "analyze" if r in RULES else "stats"
                nsys = [a.nsys, tool, "--format", "csv", "-o", "-", "-r", r, str(copy)]
                if tool == "stats":
                    nsys.insert(2, "--force-export=false")
                times_n, times_o = [], []
                for _ in range(a.repeat):  # alternated, so that machine noise hits both alike
                    tn, rc_n, out_n = run(nsys, a.timeout)
                    ours = [*ours_cmd, str(trace), "-r", r, "--format", "csv", "-o", "-"]
                    to, rc_o, out_o = run(ours, a.timeout, env)
                    times_n.append(tn)
                    times_o.append(to)
                tn, to = statistics.median(times_n), statistics.median(times_o)
                same = rc_n == 0 and rc_o == 0 and body(out_n) == body(out_o)
                speed = tn / to if to > 0 else float("inf")
                verdict = "PASS" if speed >= TARGET else "FAIL"
                passed += speed >= TARGET
                identical += same
                status = "" if rc_n == 0 and rc_o == 0 else f" (rc nsys {rc_n}, ours {rc_o})"
                print(f"{r:<22} {tn:>8.2f} {to:>8.2f} {speed:>9.1f}x {verdict:>7} {'yes' if same else 'NO':>9}{status}")
                results.append({"trace": trace.name, "report": r, "nsys_s": tn, "ours_s": to, "same": same,
                                "rc_nsys": rc_n, "rc_ours": rc_o})  # fmt: skip
                if a.skip_nsys_over is not None and tn > a.skip_nsys_over:
                    slow.add(r)
            after = md5(copy)
            print(f"copy md5 unchanged by nsys: {'yes' if after == before else 'NO'}")
            copy.unlink()
    finally:
        shutil.rmtree(work, ignore_errors=True)
        if pyc_dir is not None:
            shutil.rmtree(pyc_dir, ignore_errors=True)
    n = len(results)
    print(f"\n{passed} of {n} at least {TARGET}x faster than nsys; {identical} of {n} identical CSVs")
    if a.json:
        a.json.write_text(json.dumps(results, indent=2) + "\n")


if __name__ == "__main__":
    main()
