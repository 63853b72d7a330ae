"""Make tests/data/backtrace_decode.sqlite from the capture of capture_backtrace.sh (see tests/data/README.md).

    python3 scripts/workloads/trim_backtrace_trace.py CAPTURED.sqlite tests/data/backtrace_decode.sqlite CHECKOUT

1. Drops the backtraces of kernel launches: the CUDA-backtrace rows (eventClass 67) of launch calls and the call
   chains only they use. What remains is what ``--cudabacktrace=memory:500,sync:500,other:500`` records (the
   capture used ``all:500``, whose launch backtraces were 97% of the file). The CUPTI rows of the launches stay.
2. Keeps the GPU metric samples of the four metrics the report reads (SMs Active, DRAM Read Bandwidth, DRAM Write
   Bandwidth, Tensor Active; 4 of the 22 of the gh100 set, whose samples were 44% of the file);
   TARGET_INFO_GPU_METRICS still lists all 22.
3. Rewrites the home folder ``/root`` -> ``/tmp`` and the checkout folder CHECKOUT -> ``/app`` in every text cell.
4. VACUUM, so that no old page keeps what was dropped or rewritten.
"""

from __future__ import annotations

import sys

from scrub_trace import scrubbed_copy


def main(src: str, dst: str, checkout: str) -> None:
    with scrubbed_copy(src, dst, checkout) as con:
        launch = "SELECT id FROM StringIds WHERE value LIKE '%Launch%'"
        con.execute(f"DELETE FROM CUPTI_ACTIVITY_KIND_RUNTIME WHERE eventClass = 67 AND nameId IN ({launch})")
        con.execute(
            "DELETE FROM CUDA_CALLCHAINS WHERE id NOT IN "
            "(SELECT callchainId FROM CUPTI_ACTIVITY_KIND_RUNTIME WHERE callchainId IS NOT NULL)"
        )
        metrics = ("SMs Active", "DRAM Read", "DRAM Write", "Tensor Active")
        kept = " OR ".join(f"metricName LIKE '{m}%'" for m in metrics)
        con.execute(
            f"DELETE FROM GPU_METRICS WHERE (typeId, metricId) NOT IN "
            f"(SELECT typeId, metricId FROM TARGET_INFO_GPU_METRICS WHERE {kept})"
        )


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2], sys.argv[3])
