#!/usr/bin/env python3
"""Whole ``stats`` commands of this source tree against an earlier one, on one trace, alternated.

    python benchmarks/bench_commands.py TRACE.sqlite --before OLD_SRC [--reports a,b] [--runs 15]

Each report runs as a fresh process, ``--runs`` times from each tree (``python -c`` with the console script's lines,
``PYTHONPATH`` at the tree, cached bytecode as an installed package has it), the two trees alternated and their order
swapped every run so that machine noise hits both alike. Printed per report: the median and the least wall time of
each tree, the ratio of the medians (before / after: above 1, this tree is faster), and whether both printed the
same CSV. OLD_SRC is a directory holding an earlier ``nsys_doctor`` package (e.g. ``git archive`` of an earlier
commit's ``src``). Only the standard library is needed.
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path

from child_env import ENTRY, bytecode_env  # beside this script

ROOT = Path(__file__).resolve().parents[1]


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("trace")
    ap.add_argument("--before", required=True, help="a directory holding an earlier nsys_doctor package")
    ap.add_argument("--reports", default="cuda_gpu_mem_size_sum,cuda_gpu_mem_time_sum")
    ap.add_argument("--runs", type=int, default=15)
    args = ap.parse_args()
    trees = {"before": str(Path(args.before).resolve()), "after": str(ROOT / "src")}
    env, pyc_dir = bytecode_env(False)
    times: dict[tuple[str, str], list[float]] = {}
    outputs: dict[tuple[str, str], bytes] = {}
    try:
        for i in range(args.runs):
            for report in args.reports.split(","):
                order = list(trees) if i % 2 == 0 else list(trees)[::-1]
                for tree in order:
                    cmd = [sys.executable, "-c", ENTRY, "stats", "-r", report, "-f", "csv", args.trace]
                    t0 = time.perf_counter()
                    done = subprocess.run(cmd, capture_output=True, env={**env, "PYTHONPATH": trees[tree]}, check=True)
                    times.setdefault((tree, report), []).append(time.perf_counter() - t0)
                    outputs[(tree, report)] = done.stdout
    finally:
        if pyc_dir:
            shutil.rmtree(pyc_dir, ignore_errors=True)
    print(f"trace: {args.trace}; {args.runs} runs of each tree, alternated; wall ms, median (least)")
    for report in args.reports.split(","):
        b, a = times[("before", report)], times[("after", report)]
        same = outputs[("before", report)] == outputs[("after", report)]
        print(
            f"{report:28s} before {1e3 * statistics.median(b):7.1f} ({1e3 * min(b):6.1f})  "
            f"after {1e3 * statistics.median(a):7.1f} ({1e3 * min(a):6.1f})  "
            f"{statistics.median(b) / statistics.median(a):.2f}x  same CSV: {'yes' if same else 'NO'}"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
