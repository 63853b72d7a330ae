"""What optional capture data measures: GPU metrics per step, per kernel and per family (and whether the target
family is memory-bound), the device-memory watermark, the host call sites of the slowest CUDA API calls, and the
``ncu`` command that profiles one instance of the target kernel in the measured region.

Pure functions: frames and numbers in, plain dicts (the JSON sections ``gpu_metrics``, ``memory``, ``callchains``,
``next_commands`` of docs/report-json.md) and findings out. See docs/metrics.md for the methods.

GPU metrics are sampled (10 kHz by default): a sample at time t is the mean over the period [t, t + period) of a
throughput as a percentage of the GPU's peak. Kernels of a decode step last a few microseconds, so one sample mixes
several kernels. Within a sample the throughputs add up by time share (bytes moved in the period = the sum over
the kernels of their own rate times the time they ran in it), so the rate of each kernel (and of each family)
while it runs is found by least squares over all samples of the window: value = sum_k share_k * rate_k.

Modules: ``gpu`` (GPU metrics), ``memory`` (device memory), ``callchains`` (call sites), ``ncu`` (next command).
"""

from .callchains import callchain_summary, describe_callsite, short_symbol
from .gpu import METRIC_KEYS, METRIC_WORDS, coverage, fit_rates, gpu_metrics_summary, inside, sample_periods
from .memory import describe_memory, memory_summary
from .ncu import ncu_commands, target_kernel

__all__ = [
    "METRIC_KEYS",
    "METRIC_WORDS",
    "callchain_summary",
    "coverage",
    "describe_callsite",
    "describe_memory",
    "fit_rates",
    "gpu_metrics_summary",
    "inside",
    "memory_summary",
    "ncu_commands",
    "sample_periods",
    "short_symbol",
    "target_kernel",
]
