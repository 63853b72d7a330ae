"""Counts one can verify in an nsys SQLite export with plain SQL (used for tests/data/runs/README.md).

    python3 scripts/workloads/trace_facts.py tests/data/runs/*.sqlite

Prints per trace: size, kernels (and how many ran inside CUDA graphs), launch/sync/graph API calls,
NVTX ranges by name, and the kernel names whose instance count is a multiple of the given numbers
(--per N: kernels that ran exactly N or 2N times, to find once-per-forward-pass kernels such as the LM head).
"""

import argparse
import os
import re
import sqlite3
from collections import Counter

p = argparse.ArgumentParser()
p.add_argument("traces", nargs="+")
p.add_argument("--per", type=int, action="append", default=[])
a = p.parse_args()

APIS = [
    "cudaLaunchKernel",
    "cuLaunchKernel",
    "cuLaunchKernelEx",
    "cudaLaunchKernelExC",
    "cudaGraphLaunch",
    "cudaGraphInstantiateWithFlags",
    "cudaStreamBeginCapture",
    "cudaStreamSynchronize",
    "cudaDeviceSynchronize",
    "cudaEventSynchronize",
    "cudaMemcpyAsync",
    "cudaMemcpy",
    "cudaProfilerStart",
    "cudaProfilerStop",
    "cuModuleLoadData",
    "cuLibraryLoadData",
    "cudaMalloc",
]

for f in a.traces:
    c = sqlite3.connect(f)
    tables = {r[0] for r in c.execute("select name from sqlite_master where type='table'")}
    k = c.execute(
        "select count(*), sum(graphNodeId is not null), min(start), max(end) from CUPTI_ACTIVITY_KIND_KERNEL"
    ).fetchone()
    print(f"== {os.path.basename(f)}  {os.path.getsize(f)} bytes")
    print(f"kernels {k[0]} (in graphs {k[1]}), kernel span {(k[3] - k[2]) / 1e9:.3f} s")
    api = Counter()
    for name, n in c.execute(
        "select s.value, count(*) from CUPTI_ACTIVITY_KIND_RUNTIME r join StringIds s "
        "on r.nameId = s.id group by s.value"
    ):
        api[re.sub(r"_v\d+$", "", name)] += n
    print("api:", ", ".join(f"{x} {api[x]}" for x in APIS if api.get(x)))
    if "CUPTI_ACTIVITY_KIND_MEMCPY" in tables:
        m = c.execute("select copyKind, count(*) from CUPTI_ACTIVITY_KIND_MEMCPY group by 1").fetchall()
        print("memcpy by copyKind (1 HtoD, 2 DtoH, 8 DtoD):", dict(m))
    if "NVTX_EVENTS" in tables:
        rows = c.execute(
            "select coalesce(n.text, s.value), count(*) from NVTX_EVENTS n left join StringIds s "
            "on n.textId = s.id where n.end is not null group by 1"
        ).fetchall()
        names = Counter()
        for t, n in rows:
            names[re.sub(r"\d+$", "N", t or "")] += n
        print("nvtx ranges:", dict(names))
    if a.per:
        for name, n in c.execute(
            "select s.value, count(*) from CUPTI_ACTIVITY_KIND_KERNEL k join StringIds s "
            "on k.shortName = s.id group by 1 order by 2 desc"
        ):
            if n in a.per:
                print(f"  {n:6d}  {name[:110]}")
    print()
