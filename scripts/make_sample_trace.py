"""Cut the bundled sample trace from a real nsys export: keep only the events of the first N decode steps.

    python scripts/make_sample_trace.py ../shared/traces/decode_graph_node.sqlite \
        src/nsys_doctor/data/sample_decode.sqlite --steps 12

Host rows (API calls, NVTX, profiler overhead, graph events) that start before the end of the N-th
``decode_step`` NVTX range are kept, and the GPU rows (kernels, memcpy/memset, syncs) those API calls launched,
however late the GPU ran them; metadata tables are kept whole.
The result is a valid, smaller nsys export (same schema), then VACUUMed.
"""

from __future__ import annotations

import argparse
import shutil
import sqlite3
from pathlib import Path

HOST = ("CUPTI_ACTIVITY_KIND_RUNTIME", "PROFILER_OVERHEAD", "CUDA_GRAPH_NODE_EVENTS", "CUDA_GRAPH_EVENTS")
GPU = (
    "CUPTI_ACTIVITY_KIND_KERNEL",
    "CUPTI_ACTIVITY_KIND_MEMCPY",
    "CUPTI_ACTIVITY_KIND_MEMSET",
    "CUPTI_ACTIVITY_KIND_SYNCHRONIZATION",
)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("src", type=Path)
    ap.add_argument("dst", type=Path)
    ap.add_argument("--steps", type=int, default=12, help="decode steps to keep")
    a = ap.parse_args()
    shutil.copyfile(a.src, a.dst)
    a.dst.chmod(0o644)
    con = sqlite3.connect(a.dst)
    tables = {r[0] for r in con.execute("SELECT name FROM sqlite_master WHERE type='table'")}
    ends = [
        r[0]
        for r in con.execute(
            "SELECT n.end FROM NVTX_EVENTS n LEFT JOIN StringIds s ON s.id = n.textId "
            "WHERE coalesce(n.text, s.value) = 'decode_step' ORDER BY n.start"
        )
    ]
    if len(ends) < a.steps:
        raise SystemExit(f"{a.src} has only {len(ends)} decode_step ranges")
    cut = ends[a.steps - 1]
    for t in HOST:
        if t in tables:
            con.execute(f"DELETE FROM {t} WHERE start > ?", (cut,))
    for t in GPU:
        if t in tables:
            con.execute(
                f"DELETE FROM {t} WHERE correlationId NOT IN (SELECT correlationId FROM CUPTI_ACTIVITY_KIND_RUNTIME)"
            )
    last = con.execute("SELECT max(end) FROM CUPTI_ACTIVITY_KIND_KERNEL").fetchone()[0] or cut
    # NVTX: keep domain/marker rows and ranges that start before the cut; clip the enclosing range
    con.execute("DELETE FROM NVTX_EVENTS WHERE start > ?", (cut,))
    con.execute("UPDATE NVTX_EVENTS SET end = ? WHERE end > ?", (cut, cut))
    con.execute("UPDATE ANALYSIS_DETAILS SET stopTime = startTime + ?, duration = ?", (max(cut, last),) * 2)
    con.commit()
    con.execute("VACUUM")
    con.close()
    print(f"{a.dst}: {a.dst.stat().st_size / 1e6:.1f} MB, events up to {cut} ns ({a.steps} decode steps)")


if __name__ == "__main__":
    main()
