"""Parse time of ``nsys-doctor explain`` input against its size: it must grow linearly, also on hostile text.

    python benchmarks/bench_explain_parse.py [--sizes 1,2,4] [--repeat 2]

For each kind of text (a long kernel table in column layout, the same rows without their header, and inputs made
to trip a quadratic scan: many JSON-looking lines, many Markdown separators with unknown headers, thousands of
tiny titled tables, a wide dash line, many ``...`` lines) the CPU time of ``parse_pasted`` is measured at each size
in MB (best of ``--repeat``). The last column is the time per MB at the largest size over the time per MB at the
smallest: about 1 for a linear parser, about the size ratio for a quadratic one.
"""

from __future__ import annotations

import argparse
import time

from nsys_doctor.trace.pasted import parse_pasted

ROW = "     19.0      285,118,634      3,040   93,789.0   92,512.0    88,320   120,416    5,123.4  kernel_{i}\n"
HEADER = (
    " Time (%)  Total Time (ns)  Instances  Avg (ns)   Med (ns)   Min (ns)  Max (ns)  StdDev (ns)  Name\n"
    " --------  ---------------  ---------  ---------  ---------  --------  --------  -----------  ----\n"
)


def texts(size: int) -> dict[str, str]:
    return {
        "column table": HEADER + "".join(ROW.format(i=i) for i in range(size // len(ROW))),
        "headerless rows": "".join(ROW.format(i=i) for i in range(size // len(ROW))),
        "json-like lines": '[{"Time (%)": 1, "Total Time (ns)": 2,\n' * (size // 40),
        "markdown, unknown headers": "| a | b |\n| --- | --- |\n" * (size // 24),
        "tiny titled tables": (
            " ** CUDA GPU Kernel Summary (cuda_gpu_kern_sum):\n Time (%)  Name\n --------  ----\n 100.0  k\n\n"
        )
        * (size // 90),
        "wide dash line": "a " * (size // 6) + "\n" + "-- " * (size // 6) + "\n" + "1\n" * (size // 6),
        "ellipsis lines": "...\n" * (size // 4),
    }


def cpu_seconds(text: str, repeat: int) -> float:
    best = float("inf")
    for _ in range(repeat):
        t0 = time.process_time()
        parse_pasted(text)
        best = min(best, time.process_time() - t0)
    return best


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sizes", default="1,2,4", help="sizes in MB, comma-separated")
    ap.add_argument("--repeat", type=int, default=2)
    args = ap.parse_args()
    sizes = [float(s) for s in args.sizes.split(",")]
    print(f"{'input':<28}" + "".join(f"{f'{s:g} MB (s)':>12}" for s in sizes) + f"{'growth/MB':>12}")
    for name in texts(1000):
        times = [cpu_seconds(texts(int(s * 1_000_000))[name], args.repeat) for s in sizes]
        growth = (times[-1] / sizes[-1]) / (times[0] / sizes[0]) if times[0] > 0 else float("nan")
        print(f"{name:<28}" + "".join(f"{t:>12.2f}" for t in times) + f"{growth:>12.2f}")


if __name__ == "__main__":
    main()
