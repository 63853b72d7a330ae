"""Time ``nsys-doctor report`` against ``nsys-doctor stats -r cuda_gpu_kern_sum`` on the same trace.

    python benchmarks/bench_report.py [TRACE] [--runs 3]

Both run as fresh processes (interpreter start and imports included, as a user sees them), best of N runs each,
measured in one go so that machine noise hits both. Target: report under 3x the kernel summary. Without TRACE,
the largest trace in ../shared/traces is used.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
TARGET = 3.0


def cli() -> list[str]:
    exe = shutil.which("nsys-doctor", path=str(Path(sys.executable).parent)) or shutil.which("nsys-doctor")
    return [exe] if exe else [sys.executable, "-m", "nsys_doctor.cli.main"]


def best_of(cmd: list[str], runs: int) -> float:
    best = float("inf")
    for _ in range(runs):
        t0 = time.perf_counter()
        subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        best = min(best, time.perf_counter() - t0)
    return best


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("trace", nargs="?", type=Path)
    ap.add_argument("--runs", type=int, default=3)
    a = ap.parse_args()
    trace = a.trace
    if trace is None:
        shared = ROOT.parent / "shared" / "traces"
        trace = max(shared.glob("*.sqlite"), key=lambda p: p.stat().st_size)
    base = cli()
    kern = [*base, "stats", str(trace), "-r", "cuda_gpu_kern_sum", "--format", "csv", "-o", "-"]
    rep = [*base, "report", str(trace), "--format", "terminal"]
    subprocess.run(kern, check=True, stdout=subprocess.DEVNULL)  # warm the page cache
    t_kern = best_of(kern, a.runs)
    t_rep = best_of(rep, a.runs)
    ratio = t_rep / t_kern
    print(f"trace: {trace} ({trace.stat().st_size / 1e6:.1f} MB), {os.cpu_count()} CPUs, best of {a.runs}")
    print(f"stats -r cuda_gpu_kern_sum : {t_kern:.3f} s")
    print(f"report                     : {t_rep:.3f} s")
    print(f"ratio report / kern_sum    : {ratio:.2f}x (target < {TARGET:.0f}x) {'PASS' if ratio < TARGET else 'FAIL'}")


if __name__ == "__main__":
    main()
