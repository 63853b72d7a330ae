"""nsys-compatible reports (``nsys stats``) and rules (``nsys analyze``), one module per family."""

from __future__ import annotations

from .core import REGISTRY, ReportContext, ReportRequest, StatsTable, parse_report_arg

MODULES = {
    "cuda_api_sum": "api",
    "cuda_gpu_kern_gb_sum": "kernels",
    "cuda_gpu_kern_sum": "kernels",
    "cuda_gpu_mem_size_sum": "memops",
    "cuda_gpu_mem_time_sum": "memops",
    "cuda_api_gpu_sum": "combined",
    "cuda_gpu_sum": "combined",
    "cuda_kern_exec_sum": "exec",
    "cuda_gpu_trace": "gputrace",
    "nvtx_gpu_proj_sum": "nvtx",
    "nvtx_kern_sum": "nvtx",
    "nvtx_sum": "nvtx",
    "osrt_sum": "osrt",
    "cuda_api_sync": "rules",
    "cuda_memcpy_async": "rules",
    "cuda_memcpy_sync": "rules",
    "cuda_memset_sync": "rules",
    "dx12_mem_ops": "rules",
    "gpu_gaps": "gpu_rules",
    "gpu_time_util": "gpu_rules",
}
"""The module that defines each report (a test checks it against ``REGISTRY``): a command that runs one report
imports that module only."""


def load_all() -> None:
    """Import every report module so that each registers itself."""
    from . import api, combined, exec, gpu_rules, gputrace, kernels, memops, nvtx, osrt, rules  # noqa: F401


def load(name: str) -> None:
    """Import the module of report ``name`` (every module when the name is not a report's: the error lists
    the names that come close). ``__import__``, not ``importlib``: importing that package costs more than a small
    report's work."""
    module = MODULES.get(name)
    if module is None:
        load_all()
    else:
        __import__(f"{__name__}.{module}")


def run_report(ctx: ReportContext, request: ReportRequest) -> StatsTable:
    load(request.name)
    spec = REGISTRY[request.name]
    ctx.flags = set(request.flags)
    ctx.options = dict(request.options)
    return spec.func(ctx)


__all__ = [
    "MODULES",
    "REGISTRY",
    "ReportContext",
    "ReportRequest",
    "StatsTable",
    "load",
    "load_all",
    "parse_report_arg",
    "run_report",
]
