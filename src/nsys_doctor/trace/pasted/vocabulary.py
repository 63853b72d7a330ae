"""The words of nsys tables: unit factors, report names and titles of every era, column roles, text patterns."""

from __future__ import annotations

import re

from ...units import BYTE_UNITS, TIME_UNITS_NS

# --- units ------------------------------------------------------------------------------------------------------

# Header units of pasted tables, as factors of the units module's tables: nsys's spellings and the long names.
_NS, _US, _MS, _S = (TIME_UNITS_NS[u] for u in ("ns", "us", "ms", "s"))
TIME_FACTORS: dict[str, int] = {
    **{u: TIME_UNITS_NS[u] for u in ("ns", "nsec", "us", "usec", "ms", "msec", "s", "sec")},
    "nanoseconds": _NS,
    "µs": _US,
    "μs": _US,
    "microseconds": _US,
    "milliseconds": _MS,
    "seconds": _S,
}
BYTE_FACTORS: dict[str, int] = {"bytes": BYTE_UNITS["B"], **{u.lower(): n for u, n in BYTE_UNITS.items()}}

# --- report names -----------------------------------------------------------------------------------------------

REPORT_ALIASES: dict[str, str] = {
    "gpukernsum": "cuda_gpu_kern_sum",
    "cudaapisum": "cuda_api_sum",
    "gpumemtimesum": "cuda_gpu_mem_time_sum",
    "gpumemsizesum": "cuda_gpu_mem_size_sum",
    "nvtxsum": "nvtx_sum",
    "nvtxppsum": "nvtx_pushpop_sum",
    "nvtxpptrace": "nvtx_pushpop_trace",
    "osrtsum": "osrt_sum",
    "gpusum": "cuda_gpu_sum",
    "gputrace": "cuda_gpu_trace",
    "cudaapitrace": "cuda_api_trace",
    "kernexecsum": "cuda_kern_exec_sum",
    "kernexectrace": "cuda_kern_exec_trace",
}
"""Old (<= ~2022) report names -> current ones."""

REPORT_KINDS: dict[str, str] = {
    "cuda_gpu_kern_sum": "kernels",
    "cuda_gpu_kern_gb_sum": "kernels",
    "cuda_api_sum": "api",
    "cuda_gpu_mem_time_sum": "mem_time",
    "cuda_gpu_mem_size_sum": "mem_size",
    "cuda_kern_exec_sum": "kern_exec",
    "nvtx_sum": "nvtx",
    "nvtx_pushpop_sum": "nvtx",
    "nvtx_startend_sum": "nvtx",
    "osrt_sum": "osrt",
    "cuda_gpu_sum": "gpu_sum",
    "cuda_api_gpu_sum": "gpu_sum",
    "cuda_gpu_trace": "gpu_trace",
    "cuda_memcpy_async": "pageable_copies",
}
"""Report -> the kind of table explain works with; other reports are kind ``other`` (parsed, not interpreted)."""

OTHER_REPORTS = frozenset(
    {
        "nvtx_kern_sum",
        "nvtx_gpu_proj_sum",
        "nvtx_gpu_proj_trace",
        "nvtx_pushpop_trace",
        "nvtx_startend_trace",
        "cuda_api_trace",
        "cuda_kern_exec_trace",
        "cuda_gpu_mem_trace",
        "cuda_api_sync",
        "cuda_memcpy_sync",
        "cuda_memset_sync",
        "gpu_gaps",
        "gpu_time_util",
        "dx12_mem_ops",
        "um_sum",
        "um_total_sum",
        "um_cpu_page_faults_sum",
        "openmp_sum",
        "openacc_sum",
        "syscall_sum",
        "osrt_trace",
        "mpi_event_sum",
        "nccl_sum",
    }
)
"""Other nsys reports and rules: a title naming one of them is trusted over what the columns look like."""

OLD_TITLES: tuple[tuple[str, str], ...] = (
    ("cuda kernel statistics", "cuda_gpu_kern_sum"),
    ("cuda api statistics", "cuda_api_sum"),
    ("cuda memory operation statistics (by time)", "cuda_gpu_mem_time_sum"),
    ("cuda memory operation statistics (by size", "cuda_gpu_mem_size_sum"),
    ("operating system runtime api statistics", "osrt_sum"),
    ("nvtx push-pop range statistics", "nvtx_pushpop_sum"),
    ("nvtx start-end range statistics", "nvtx_startend_sum"),
    ("nvtx range statistics", "nvtx_sum"),
    ("cuda gpu kernel summary", "cuda_gpu_kern_sum"),
    ("cuda gpu kernel/grid/block summary", "cuda_gpu_kern_gb_sum"),
    ("cuda api summary", "cuda_api_sum"),
    ("cuda gpu memops summary (by time)", "cuda_gpu_mem_time_sum"),
    ("cuda gpu memops summary (by size)", "cuda_gpu_mem_size_sum"),
    ("cuda kernel launch & exec time summary", "cuda_kern_exec_sum"),
    ("nvtx range summary", "nvtx_sum"),
    ("os runtime summary", "osrt_sum"),
)
"""Title lines (old ``--stats=true`` headings and current display names) -> report."""

# --- roles ------------------------------------------------------------------------------------------------------

STATS = {
    "avg": "avg",
    "average": "avg",
    "mean": "avg",
    "med": "med",
    "median": "med",
    "min": "min",
    "minimum": "min",
    "max": "max",
    "maximum": "max",
    "stddev": "stddev",
    "std dev": "stddev",
    "stdev": "stddev",
    "std": "stddev",
    "total": "total",
    "total time": "total",
}
COUNTS = {"instances", "num calls", "calls", "count", "operations", "num", "launches"}
TEXT_ROLES = {
    "name": "name",
    "operation": "name",
    "kernel": "name",
    "function": "name",
    "range": "range",
    "nvtx range": "range",
    "kernel name": "kernel_name",
    "api name": "api_name",
    "api function": "api_name",
    "style": "style",
    "category": "category",
    "gridxyz": "grid",
    "blockxyz": "block",
}
NUMBER_ROLES = {"pid": "pid", "tid": "tid", "devid": "device", "device id": "device", "qcount": "q_count"}
SHARE_LABELS = {"time", "time(%)", "time %", "%", "share", "time%"}
EXEC_STAT = re.compile(r"^([tqak])(avg|med|min|max|stddev)$", re.IGNORECASE)
SUFFIX = {"time": "_ns", "bytes": "_bytes", "throughput": "_bps", "percent": "_pct"}

# --- text patterns ----------------------------------------------------------------------------------------------

HEAD_UNIT = re.compile(r"^(?P<label>.*?)\s*\((?P<unit>[^()]*)\)\s*$")
DASHES = re.compile(r"^\s*-{2,}(?:[ \t]+-{2,})+\s*$")
DASH_RUN = re.compile(r"-+")
BOX_RULE = re.compile(r"^\s*\+(?:-+\+)+\s*$")
MD_SEP = re.compile(r"^\s*\|?\s*:?-{3,}:?\s*(?:\|\s*:?-{3,}:?\s*)+\|?\s*$")
ELLIPSIS = re.compile(
    r"^\s*(?:\.{3,}|…+|⋮|<truncated>|\[(?:\.{3}|…|truncated)\]|\((?:\.{3}|…)\)|\[\s*\d+ more .*\])\s*$"
)
SPACES2 = re.compile(r"\s{2,}")


TITLE_STARS = re.compile(r"^\s*\*\*\s*(?P<title>.*?)\s*\((?P<report>[A-Za-z]\w*)\)\s*:?\s*$")
PROCESSING = re.compile(
    r"Processing\s*\[[^\]]*\]\s*with\s*\[(?P<path>[^\]]*?)(?P<report>[A-Za-z]\w*)\.py\]\s*(?:\((?P<args>[^)]*)\))?"
)
EXPORTING = re.compile(r"Exporting\s*\[(?P<path>\S*?)(?P<report>[A-Za-z]\w*)\.py\b")
EXECUTING = re.compile(r"Executing\s+'(?P<report>[A-Za-z]\w*)(?P<args>(?::[^']*)?)'\s+stats report")
BARE_REPORT = re.compile(
    r"^[\s#*`>]*(?P<report>[a-z][a-z0-9]*(?:_[a-z0-9]+)+|[a-z]+sum)(?P<args>(?::[\w=.-]+)*)[`\s:]*$"
)
NOTE_PATTERNS = re.compile(
    r"(might have been collected|events? (?:were |was )?(?:dropped|lost)|dropped \d+|data loss|buffer overflow|"
    r"SKIPPED:|WARNING:|Warning:)",
)
