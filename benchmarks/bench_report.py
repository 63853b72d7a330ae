"""Time ``nsys-doctor report`` against a bare SQLite scan of the same trace (and against an earlier version).

    python benchmarks/bench_report.py [TRACE] [--runs 3] [--before OLD_SRC] [--diff] [--json FILE] [--profile N]
    python benchmarks/bench_report.py --cache-costs TRACE [TRACE ...] [--runs 3]

Measured in one run, as whole processes (interpreter start and imports included, as a user sees them), with the
runs interleaved so that machine noise hits every command alike; each line is the best of ``--runs``:

* ``bare``: ``SELECT count(*), sum("end" - start)`` over the kernel and CUDA API tables with the stdlib sqlite3
  module (``python -c``, so it pays an interpreter start too): the least any tool reading those rows can spend;
* ``stats -r cuda_gpu_kern_sum`` (``--format csv -o -``): the kernel summary (the earlier target: report < 3x it;
  the target now: a first report, no cache, within 4x of ``bare``);
* ``report`` (terminal format) of this source tree, and with ``--before OLD_SRC`` (a directory holding an earlier
  ``nsys_doctor`` package, e.g. an older checkout's ``src``) the same command run from there;
* the frame cache (``trace/cache.py``), in a cache folder of the benchmark's own (a temporary folder, removed at the
  end; the trace's size threshold is lifted): ``report (no cache)`` with ``NSYS_DOCTOR_NO_CACHE=1``, ``report
  (cache write)`` starting from an empty cache folder each time (the first run, which writes the entry), and
  ``report (cache warm)`` with the entries in place (a second run: the output comes from the result cache,
  ``cli/result_cache.py``), and ``report (frames cached)``: a second run with the result cache off
  (``NSYS_DOCTOR_NO_RESULT_CACHE=1``), so only the reading is saved and the analyses run. The target: a warm
  report within 1.5x of ``bare``. The four outputs are compared byte for byte. ``--profile N`` then runs the
  frames-cached report once more under cProfile and prints its N most expensive functions (cumulative and own
  time), to show where the analyses go.

``--diff``: also ``diff TRACE COPY --format json`` (COPY: a copy of TRACE in the benchmark's folder; no cache), with
``--before`` from there too: its time and peak memory, held to the report's memory target (one side's frames
and run structure are read, its profile built, then the other's), and whether the two JSON outputs are the same.

``--cache-costs`` measures the cache's parts inside this process instead, per trace (best of ``--runs``):
``TraceFrames`` read from SQLite, the entry written, the frames read back from it (a hit), and the same frames
written and read as Parquet (uncompressed, snappy, zstd) and Arrow IPC (uncompressed, lz4) with their sizes: the
numbers behind the cache's format and its size threshold.

Printed: wall seconds, the ratio to ``bare``, and peak RSS (MB, the child's ``ru_maxrss``); then report / kernel
summary and before / after. With ``--before`` the two reports' outputs are also compared byte for byte. Without
TRACE the largest trace in ../shared/traces is used; a big one comes from benchmarks/make_large_trace.py.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import pstats
import shutil
import sqlite3
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from child_env import bytecode_env  # beside this script

ROOT = Path(__file__).resolve().parents[1]
KERNEL = "CUPTI_ACTIVITY_KIND_KERNEL"
RUNTIME = "CUPTI_ACTIVITY_KIND_RUNTIME"
TARGET = 3.0  # report / kernel summary
FIRST_RUN_TARGET = 4.0  # a first report (no cache) / bare scan, at 2M and 10M kernels
CACHE_TARGET = 1.5  # warm report / bare scan
MEMORY_TARGETS = ((2_500_000, 1024), (25_000_000, 2048))
"""report's peak memory (MiB) for traces up to that many kernels: under 1 GiB at 2M kernels, 2 GiB at 20M."""


def memory_target(kernels: int) -> int | None:
    """The peak memory target (MiB) of a report on ``kernels`` kernels (None beyond the largest)."""
    return next((mib for most, mib in MEMORY_TARGETS if kernels <= most), None)


def run_measured(cmd: list[str], env: dict[str, str]) -> tuple[float, float, bytes, float]:
    """(wall s, peak RSS MB, standard output, CPU s) of one run; the child's rusage comes from os.wait4. CPU time
    (user + system) is what the run itself spent, which the load of a shared machine inflates less than wall."""
    with tempfile.TemporaryFile() as out:
        t0 = time.perf_counter()
        proc = subprocess.Popen(cmd, stdout=out, stderr=subprocess.DEVNULL, env=env)
        _, status, usage = os.wait4(proc.pid, 0)
        wall = time.perf_counter() - t0
        proc.returncode = os.waitstatus_to_exitcode(status)
        if proc.returncode != 0:
            raise SystemExit(f"failed ({proc.returncode}): {' '.join(cmd)}")
        out.seek(0)
        return wall, usage.ru_maxrss / 1024, out.read(), usage.ru_utime + usage.ru_stime


def best_of(runs: int, fn: Callable[[], object]) -> float:
    times = []
    for _ in range(runs):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return min(times)


FORMATS = ("parquet", "parquet-snappy", "parquet-zstd", "ipc", "ipc-lz4")


def format_costs(frames: dict[str, Any], folder: Path, fmt: str, runs: int) -> tuple[float, float, float]:
    """(write s, read s, MiB) of ``frames`` stored as ``fmt``; the frames read back are checked."""
    import polars as pl

    folder.mkdir()
    ext = "parquet" if fmt.startswith("parquet") else "arrow"

    def put() -> None:
        for n, df in frames.items():
            if fmt.startswith("parquet"):
                comp = fmt.split("-")[1] if "-" in fmt else "uncompressed"
                df.write_parquet(folder / f"{n}.{ext}", compression=comp, statistics=False)
            else:
                df.write_ipc(folder / f"{n}.{ext}", compression="lz4" if fmt == "ipc-lz4" else "uncompressed")

    def get() -> None:
        for n in frames:
            p = folder / f"{n}.{ext}"
            df = pl.read_parquet(p) if ext == "parquet" else pl.read_ipc(p)
            assert df.equals(frames[n]) and df.schema == frames[n].schema

    w = best_of(runs, put)
    r = best_of(runs, get)
    size = sum(f.stat().st_size for f in folder.iterdir()) / 2**20
    shutil.rmtree(folder)
    return w, r, size


def cache_costs(traces: list[Path], runs: int) -> None:
    """In-process costs of the frame cache on each trace (see the module's docstring)."""
    sys.path.insert(0, str(ROOT / "src"))
    os.environ["NSYS_DOCTOR_CACHE_MIN_BYTES"] = "0"
    from nsys_doctor.trace import Trace, cache
    from nsys_doctor.trace.tables import FRAME_NAMES, FRAME_TABLES, TraceFrames

    print(f"host: {platform.node() or '?'}, {os.cpu_count()} CPUs, Python {platform.python_version()}; best of {runs}")
    print(f"{'trace':<28} {'MiB':>6} {'kernels':>10} {'read s':>7} {'write s':>7} {'hit s':>6} {'saved s':>7} "
          f"{'write/saved':>11} {'entry MiB':>9}")  # fmt: skip
    formats: list[tuple[str, list[tuple[str, float, float, float]]]] = []
    with tempfile.TemporaryDirectory(prefix="nsys-doctor-bench-") as tmp:
        root = Path(tmp)
        os.environ["NSYS_DOCTOR_CACHE_DIR"] = str(root / "cache")
        for trace in traces:
            with Trace.open(trace) as t:
                os.environ["NSYS_DOCTOR_NO_CACHE"] = "1"
                read_s = best_of(runs, lambda t=t: TraceFrames(t))
                tf = TraceFrames(t)
                os.environ["NSYS_DOCTOR_NO_CACHE"] = ""
                frames = {n: getattr(tf, n) for n in FRAME_NAMES}
                slot = cache.slot(t, FRAME_TABLES)
                assert slot is not None

                def write(s: cache.Slot = slot, f: dict[str, Any] = frames) -> None:
                    shutil.rmtree(s.folder, ignore_errors=True)
                    cache.write(s, f, ())

                write_s = best_of(runs, write)
                entry_mib = sum(f.stat().st_size for f in slot.folder.iterdir()) / 2**20
            with Trace.open(trace) as t:
                hit_s = best_of(runs, lambda t=t: TraceFrames(t))
            saved = read_s - hit_s
            print(
                f"{trace.name:<28} {trace.stat().st_size / 2**20:>6.1f} {frames['kernels'].height:>10,} "
                f"{read_s:>7.3f} {write_s:>7.3f} {hit_s:>6.3f} {saved:>7.3f} {write_s / saved:>11.2f} "
                f"{entry_mib:>9.1f}"
            )
            formats.append((trace.name, [(f, *format_costs(frames, root / f, f, runs)) for f in FORMATS]))
    for name, rows in formats:
        print(f"\n{name}: {'format':<15} {'write s':>7} {'read s':>7} {'MiB':>7}")
        for fmt, w, r, size in rows:
            print(f"{'':<{len(name) + 2}}{fmt:<15} {w:>7.3f} {r:>7.3f} {size:>7.1f}")


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
    ap.add_argument("--profile", type=int, default=0, metavar="N", help="profile: top N functions")
    ap.add_argument("--cache-costs", nargs="+", type=Path, metavar="TRACE", help="the cache's costs, in process")
    ap.add_argument("--diff", action="store_true", help="also diff TRACE against a copy of it")
    a = ap.parse_args()
    if a.cache_costs:
        cache_costs([p.resolve() for p in a.cache_costs], a.runs)
        return
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
    # the children import from cached bytecode, as an installed package does (an image that sets
    # PYTHONDONTWRITEBYTECODE would have every start compile polars, numpy and this package: 0.8-1.1 s more)
    base, pyc_dir = bytecode_env(no_bytecode=False)
    after_env = dict(
        base,
        PYTHONPATH=os.pathsep.join(filter(None, [str(ROOT / "src"), os.environ.get("PYTHONPATH")])),
        NSYS_DOCTOR_NO_CACHE="1",
    )
    scratch = Path(tempfile.mkdtemp(prefix="nsys-doctor-bench-"))
    cold_dir, warm_dir = scratch / "cold", scratch / "warm"
    cache_env = dict(after_env, NSYS_DOCTOR_NO_CACHE="", NSYS_DOCTOR_CACHE_MIN_BYTES="0")
    report_cmd = [*mod, "report", str(trace), "--format", "terminal"]
    try:
        if a.diff:
            shutil.copyfile(trace, scratch / "copy.sqlite")
        run(a, trace, counts, py, bare, mod, after_env, cache_env, cold_dir, warm_dir, report_cmd)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
        if pyc_dir is not None:
            shutil.rmtree(pyc_dir, ignore_errors=True)


def run(
    a: argparse.Namespace,
    trace: Path,
    counts: dict[str, int],
    py: str,
    bare: list[str],
    mod: list[str],
    after_env: dict[str, str],
    cache_env: dict[str, str],
    cold_dir: Path,
    warm_dir: Path,
    report_cmd: list[str],
) -> None:
    def empty_cold() -> None:  # the first run: nothing cached yet
        shutil.rmtree(cold_dir, ignore_errors=True)

    commands: dict[str, tuple[list[str], dict[str, str]]] = {
        "bare scan (kernels + API)": (bare, {k: v for k, v in after_env.items() if k != "PYTHONPATH"}),
        "stats -r cuda_gpu_kern_sum": (
            [*mod, "stats", str(trace), "-r", "cuda_gpu_kern_sum", "--format", "csv", "-o", "-"],
            after_env,
        ),
        "report (no cache)": (report_cmd, after_env),
        "report (cache write)": (report_cmd, dict(cache_env, NSYS_DOCTOR_CACHE_DIR=str(cold_dir))),
        "report (frames cached)": (
            report_cmd,
            dict(cache_env, NSYS_DOCTOR_CACHE_DIR=str(warm_dir), NSYS_DOCTOR_NO_RESULT_CACHE="1"),
        ),
        "report (cache warm)": (report_cmd, dict(cache_env, NSYS_DOCTOR_CACHE_DIR=str(warm_dir))),
    }
    prepare = {"report (cache write)": empty_cold}
    diff_cmd = [*mod, "diff", str(trace), str(cold_dir.parent / "copy.sqlite"), "--format", "json"]
    if a.diff:
        commands["diff (no cache)"] = (diff_cmd, after_env)
    if a.before is not None:
        before_env = dict(
            after_env,
            PYTHONPATH=os.pathsep.join(filter(None, [str(a.before.resolve()), os.environ.get("PYTHONPATH")])),
            NSYS_DOCTOR_NO_CACHE="1",
        )
        commands["report (before)"] = ([*mod, "report", str(trace), "--format", "terminal"], before_env)
        if a.diff:
            commands["diff (before)"] = (diff_cmd, before_env)
    for k, (cmd, env) in commands.items():  # warm the page cache (and each tree's imports); fills warm_dir
        prepare.get(k, lambda: None)()
        run_measured(cmd, env)
    walls: dict[str, list[float]] = {k: [] for k in commands}
    cpus: dict[str, list[float]] = {k: [] for k in commands}
    peaks: dict[str, float] = dict.fromkeys(commands, 0.0)
    outputs: dict[str, bytes] = {}
    names = list(commands)
    for i in range(a.runs):
        for k in names[i % len(names) :] + names[: i % len(names)]:
            prepare.get(k, lambda: None)()
            wall, peak, out, cpu = run_measured(*commands[k])
            walls[k].append(wall)
            cpus[k].append(cpu)
            peaks[k] = max(peaks[k], peak)
            outputs[k] = out
    best = {k: min(v) for k, v in walls.items()}
    best_cpu = {k: min(v) for k, v in cpus.items()}
    ref = best[names[0]]
    rows = ", ".join(f"{t} {n:,}" for t, n in counts.items())
    print(f"trace: {trace} ({trace.stat().st_size / 2**20:.0f} MiB; {rows})")
    host = f"{platform.node() or '?'}, {os.cpu_count()} CPUs, Python {platform.python_version()}"
    print(f"host: {host}; best of {a.runs}")
    print()
    ref_cpu = best_cpu[names[0]]
    print(f"{'command':<28} {'wall s':>7} {'x bare':>7} {'cpu s':>7} {'x bare':>7} {'peak MB':>8}")
    print(f"{'-' * 28} {'-' * 7} {'-' * 7} {'-' * 7} {'-' * 7} {'-' * 8}")
    for k in names:
        print(
            f"{k:<28} {best[k]:>7.3f} {best[k] / ref:>6.2f}x {best_cpu[k]:>7.3f} {best_cpu[k] / ref_cpu:>6.2f}x "
            f"{peaks[k]:>8.0f}"
        )
    print()
    ratio = best["report (no cache)"] / best["stats -r cuda_gpu_kern_sum"]
    print(f"report / kernel summary : {ratio:.2f}x (target < {TARGET:.0f}x) {'PASS' if ratio < TARGET else 'FAIL'}")
    first = best["report (no cache)"] / ref
    verdict = "PASS" if first <= FIRST_RUN_TARGET else "FAIL"
    print(f"first report / bare scan: {first:.2f}x (target <= {FIRST_RUN_TARGET:.0f}x, no cache) {verdict}")
    kernels = int(counts.get("CUPTI_ACTIVITY_KIND_KERNEL", 0))
    target_mib = memory_target(kernels)
    first_runs = ("report (no cache)", "report (cache write)", "report (frames cached)")
    worst = max(peaks[k] for k in first_runs)
    if target_mib is not None:
        verdict = "PASS" if worst < target_mib else "FAIL"
        shown = " / ".join(f"{peaks[k]:.0f}" for k in first_runs)
        print(
            f"report peak (no cache / cache write / frames cached): {shown} MiB, the highest of {a.runs} runs each "
            f"(target < {target_mib} MiB at {kernels:,} kernels) {verdict}"
        )
    if a.diff and target_mib is not None:
        verdict = "PASS" if peaks["diff (no cache)"] < target_mib else "FAIL"
        print(
            f"diff peak: {peaks['diff (no cache)']:.0f} MiB, the highest of {a.runs} runs (target < {target_mib} MiB "
            f"at {kernels:,} kernels) {verdict}"
        )
    warm = best["report (cache warm)"] / ref
    verdict = "PASS" if warm <= CACHE_TARGET else "FAIL"
    print(f"warm report / bare scan : {warm:.2f}x (target <= {CACHE_TARGET}x) {verdict}")
    for label, b in (("wall", best), ("cpu", best_cpu)):
        nc, wr, fr, wa = (b[f"report ({k})"] for k in ("no cache", "cache write", "frames cached", "cache warm"))
        print(
            f"cache ({label}): warm {nc / wa:.2f}x faster than no cache ({nc - wa:.3f} s saved), frames only "
            f"{nc / fr:.2f}x ({nc - fr:.3f} s saved); the first run (writing) costs {wr - nc:+.3f} s ({wr / nc:.2f}x)"
        )
    entry = [p for p in warm_dir.iterdir() if not p.name.startswith(".")] if warm_dir.is_dir() else []
    entry_mb = sum(f.stat().st_size for e in entry for f in e.iterdir()) / 2**20
    same_cache = (
        len(
            {
                outputs[k]
                for k in ("report (no cache)", "report (cache write)", "report (frames cached)", "report (cache warm)")
            }
        )
        == 1
    )
    verdict = "yes" if same_cache else "NO"
    print(f"cache entry: {entry_mb:.1f} MiB; same output without, writing and from the cache: {verdict}")
    result: dict[str, object] = {
        "trace": str(trace),
        "rows": counts,
        "runs": a.runs,
        "best_s": best,
        "best_cpu_s": best_cpu,
        "peak_mb": peaks,
        "report_over_kern_sum": ratio,
        "warm_over_bare": warm,
        "cache_entry_mib": entry_mb,
        "same_output_with_cache": same_cache,
    }
    if a.before is not None:
        speedup = best["report (before)"] / best["report (no cache)"]
        same = outputs["report (before)"] == outputs["report (no cache)"]
        print(f"report before / after   : {speedup:.2f}x faster; same output: {'yes' if same else 'NO'}")
        result.update(before_over_after=speedup, same_output=same)
        if a.diff:
            speedup = best["diff (before)"] / best["diff (no cache)"]
            same = outputs["diff (before)"] == outputs["diff (no cache)"]
            print(f"diff before / after     : {speedup:.2f}x faster; same output: {'yes' if same else 'NO'}")
            result.update(diff_before_over_after=speedup, diff_same_output=same)
    if a.json:
        a.json.write_text(json.dumps(result, indent=2) + "\n")
    if a.profile:
        profile(a.profile, py, report_cmd, commands["report (frames cached)"][1], warm_dir.parent / "warm.prof")


def profile(top: int, py: str, report_cmd: list[str], env: dict[str, str], out: Path) -> None:
    """The warm report once under cProfile: its ``top`` functions by cumulative time, then by own time."""
    cmd = [py, "-m", "cProfile", "-o", str(out), *report_cmd[1:]]
    subprocess.run(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=True)
    stats = pstats.Stats(str(out))
    print(f"\nwarm report under cProfile, top {top} functions of nsys_doctor by cumulative time:")
    stats.sort_stats("cumulative").print_stats("nsys_doctor", top)
    print(f"\nwarm report under cProfile, top {top} functions (any) by own time:")
    stats.sort_stats("tottime").print_stats(top)


if __name__ == "__main__":
    main()
