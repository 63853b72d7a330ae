"""nsys-compatible reports (``nsys stats``) and rules (``nsys analyze``), one module per family."""

from __future__ import annotations

from .core import REGISTRY, ReportContext, ReportRequest, StatsTable, parse_report_arg


def load_all() -> None:
    """Import every report module so that each registers itself."""
    from . import api, combined, exec, gputrace, kernels, memops, nvtx, osrt, rules  # noqa: F401


def run_report(ctx: ReportContext, request: ReportRequest) -> StatsTable:
    load_all()
    spec = REGISTRY[request.name]
    ctx.flags = set(request.flags)
    ctx.options = dict(request.options)
    return spec.func(ctx)


__all__ = ["REGISTRY", "ReportContext", "ReportRequest", "StatsTable", "load_all", "parse_report_arg", "run_report"]
