"""Collectives across ranks: waiting versus moving, the late rank, and what it was doing.

A collective kernel (NCCL's ``nccl*`` kernels, and every kernel the op rules put in the ``communication`` family,
such as custom all-reduce kernels) cannot finish before the last rank has arrived: on the ranks that came early it
spins. So the duration of one instance on one rank is *waiting* (from its start to the last rank's start) plus
*moving* (the transfer, which is the duration on the last-arriving rank). The analysis:

1. ``summarize_rank`` (per rank, pure): the rank's collective instances in order per channel (device and stream,
   numbered by first use) and kernel name, on the common timeline (the rank's ``offset_ns`` added); for each, the
   step it belongs to, its position in the step, its overlap with compute kernels on the same device, and what the
   rank did just before (GPU idle time, time between the host's launches, long CUDA API and OS calls on the
   launching thread). Plus per-step times and the NCCL NVTX ranges. Small: one row per collective.
2. ``analyze`` (the reduce, pure): instances matched across ranks by order per channel and name. Sequences are
   aligned by their end times (every rank's kernel of one collective ends within microseconds), which also finds
   traces that start a few collectives apart and ranks that belong to different communicators; a constant clock
   difference between hosts is detected and corrected the same way. Per instance: arrival skew (latest start minus
   earliest start), transfer (duration on the last rank), the last rank and its context; per rank: waiting share,
   how often it is last, its median arrival delay; worst instances with their step; steps carrying the big skews
   and their period; communication/compute overlap; per-rank step time and work; findings.

Durations are integer nanoseconds. Percentiles are nearest-rank (``distribution.py``).

Modules: ``rank`` (``summarize_rank``), ``align`` (matching across ranks), ``reduce`` (``analyze``), ``findings``,
``prose`` (headline sentences), ``result`` (``NcclResult``, ``blame_late_rank``).
"""

from .findings import NCCL_CATALOGUE
from .rank import LONG_HOST_NS, summarize_rank
from .reduce import analyze
from .result import NcclResult, blame_late_rank

__all__ = [
    "LONG_HOST_NS",
    "NCCL_CATALOGUE",
    "NcclResult",
    "analyze",
    "blame_late_rank",
    "summarize_rank",
]
