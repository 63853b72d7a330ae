"""``nsys-doctor roofline``: achieved bandwidth and FLOP/s per linear-layer shape against the GPU's peaks."""

from __future__ import annotations

import math
import re
import sys
from pathlib import Path
from typing import TYPE_CHECKING

import click

from .. import progress
from ..analysis.model import DTYPES, MAX_DIM, Model  # no polars: the options need DTYPES and MAX_DIM
from ..errors import UsageError
from .common import cache_option, emit, file_option, ops_option, render_text, window_options
from .report import FORMATS, project_rules, read_in_stages

if TYPE_CHECKING:
    from ..analysis.ops import OpRule
    from ..analysis.roofline import MapRule, Roofline
    from ..session import WindowChoice
    from ..trace import Trace

_NUMBER = r"([0-9]*\.?[0-9]+(?:[eE][-+]?[0-9]+)?)"
BANDWIDTH_UNITS = {"tb/s": 1e12, "tbps": 1e12, "gb/s": 1e9, "gbps": 1e9, "mb/s": 1e6, "b/s": 1.0, "bps": 1.0}
BANDWIDTH_RANGE = (1e8, 1e16, "B/s")  # 0.1 GB/s to 10 PB/s: far around every GPU's DRAM (0.1 to 10 TB/s)
FLOPS_RANGE = (1e9, 1e19, "FLOP/s")  # 1 GFLOP/s to 10 EFLOP/s
FLOPS_UNITS = {"pflop/s": 1e15, "pflops": 1e15, "tflop/s": 1e12, "tflops": 1e12, "gflop/s": 1e9, "flop/s": 1.0}


def _parse_rate(
    text: str,
    units: dict[str, float],
    default: str,
    base_from: float,
    what: str,
    eg: str,
    plausible: tuple[float, float, str],
) -> float:
    """A number with an optional unit; without one, values below ``base_from`` are in ``default`` units and
    larger ones are base units (B/s or FLOP/s). ``plausible`` is (low, high, unit name): rates outside it are
    typos (a unit or an exponent off), refused before they turn into impossible efficiencies."""
    m = re.fullmatch(_NUMBER + r"\s*([A-Za-z/]*)", text.strip())
    if not m:
        raise UsageError(f"bad {what} {text!r}: not a positive number with an optional unit", f"write e.g. {eg}")
    value, unit = float(m.group(1)), m.group(2).lower()
    if unit and unit not in units:
        raise UsageError(f"unknown unit {m.group(2)!r} in {what} {text!r}", f"use {', '.join(units)}")
    scale = units[unit] if unit else (units[default] if value < base_from else 1.0)
    rate = value * scale
    if not (math.isfinite(rate) and rate > 0):
        raise UsageError(f"bad {what} {text!r}: the rate must be positive and finite", f"write e.g. {eg}")
    low, high, name = plausible
    if not low <= rate <= high:
        raise UsageError(
            f"{what} {text!r} is {rate:.3g} {name}, outside what a GPU can have ({low:.0e} to {high:.0e} {name})",
            f"check the unit; write e.g. {eg}",
        )
    return rate


def parse_bandwidth(text: str) -> float:
    """``--peak-bw``: TB/s (``3.35``), or B/s for values of 1e9 and more, or with a unit (``2039GB/s``)."""
    eg = "3.35 (TB/s), 2039GB/s or 3.35e12 (B/s)"
    return _parse_rate(text, BANDWIDTH_UNITS, "tb/s", 1e9, "--peak-bw", eg, BANDWIDTH_RANGE)


def parse_flops(text: str) -> float:
    """``--peak-flops``: TFLOP/s (``989.5``), or FLOP/s for values of 1e9 and more, or with a unit."""
    eg = "989.5 (TFLOP/s) or 2.25PFLOPS"
    return _parse_rate(text, FLOPS_UNITS, "tflop/s", 1e9, "--peak-flops", eg, FLOPS_RANGE)


def roofline_trace(
    trace: Trace,
    model_path: Path | Model,
    rules: list[OpRule],
    dtype: str | None = None,
    group_size: int | None = None,
    peak_bw: float | None = None,
    peak_flops: float | None = None,
    mapping_path: Path | list[MapRule] | None = None,
    tokens: int | None = None,
    window: str | None = None,
    filter_nvtx: str | None = None,
    whole_trace: bool = False,
    warmup: int | None = None,
) -> Roofline:
    """Read what the roofline needs from an open trace and run it (options as on the command line).

    ``model_path`` and ``mapping_path`` may also be an already read ``Model`` and mapping (``dtype`` and
    ``group_size`` then apply only to a model read here)."""
    from ..analysis.roofline import read_mapping
    from ..loaders import read_model
    from ..session import TraceSession, WindowChoice

    model = model_path if isinstance(model_path, Model) else read_model(model_path, dtype, group_size)
    mapping = read_mapping(mapping_path) if isinstance(mapping_path, (str, Path)) else mapping_path
    session = TraceSession(trace, rules, WindowChoice(window, filter_nvtx, whole_trace, warmup=warmup))
    read_in_stages(session)
    with progress.stage("analyses"):
        return session.roofline(model, peak_bw, peak_flops, mapping, tokens)


@click.command()
@click.argument("trace_path", metavar="TRACE", type=click.Path(path_type=Path))
@file_option(
    "--model",
    "model_path",
    required=True,
    metavar="CONFIG.json|SHAPES.toml",
    help="The traced model: its Hugging Face config.json, or a shapes TOML (see docs/roofline.md).",
)
@click.option(
    "--dtype",
    type=click.Choice(list(DTYPES), case_sensitive=False),
    help="Weight format, overriding the config's (torch_dtype, quantization_config).",
)
@click.option(
    "--group-size", type=click.IntRange(1, MAX_DIM), metavar="G", help="Quantization group size for --dtype int4."
)
@click.option(
    "--peak-bw",
    metavar="BW",
    help="Peak DRAM bandwidth: TB/s (3.35), or B/s from 1e9 up, or with a unit (2039GB/s). Default: the trace's.",
)
@click.option(
    "--peak-flops", metavar="F", help="Dense peak for the compute dtype, TFLOP/s (989.5). Default: the GPU table."
)
@file_option(
    "--mapping",
    "mapping_path",
    help="Map kernels to shapes explicitly: TOML [[map]] tables (kernel regex, optional grid, shape).",
)
@click.option(
    "--tokens",
    type=click.IntRange(1, MAX_DIM),
    metavar="N",
    help="Tokens per prefill step (default: --prompt-len on the captured command line).",
)
@click.option("-f", "--format", "fmt", type=click.Choice(FORMATS), default="terminal", show_default=True)
@click.option("-o", "--output", metavar="FILE", help="Write the result to FILE instead of standard output.")
@window_options
@ops_option
@progress.quiet_option
@cache_option
def roofline(
    trace_path: Path,
    model_path: Path,
    dtype: str | None,
    group_size: int | None,
    peak_bw: str | None,
    peak_flops: str | None,
    mapping_path: Path | None,
    tokens: int | None,
    fmt: str,
    output: str | None,
    choice: WindowChoice,
    ops_file: Path | None,
) -> None:
    """Speed of light per linear-layer shape: achieved bandwidth and FLOP/s against the GPU's peaks.

    \b
    The GEMV/GEMM kernels of every step are matched to the model's shapes (QKV, O, gate/up, down per layer,
    then the LM head) by position, or by --mapping. Per shape: weight bytes, kernels, p50 and mean time,
    achieved bandwidth (weight bytes / time) and its share of peak; for prefill GEMMs with a known token count,
    FLOPs = 2 x M x N x K, achieved TFLOP/s and whether the shape is compute-bound. Then the whole step against
    the speed of light (weight bytes per token / peak bandwidth). Rule of thumb: over 80% of peak bandwidth
    leaves little headroom (quantize or batch); under 70% a better GEMV kernel can win; GEMVs under 5 MB are
    expected lower.
    """
    if group_size is not None and (dtype or "").lower() != "int4":
        raise UsageError("--group-size applies to --dtype int4 only", "add --dtype int4, or drop --group-size")
    bw = parse_bandwidth(peak_bw) if peak_bw is not None else None
    fl = parse_flops(peak_flops) if peak_flops is not None else None
    from ..analysis.roofline import read_mapping
    from ..report import roofline_text
    from ..trace import Trace

    rules = project_rules(ops_file)
    from ..loaders import read_model

    model = read_model(model_path, dtype.lower() if dtype else None, group_size)
    mapping = read_mapping(mapping_path) if mapping_path is not None else None
    with progress.task(), Trace.open(trace_path) as trace:
        result = roofline_trace(
            trace,
            model,
            rules,
            peak_bw=bw,
            peak_flops=fl,
            mapping_path=mapping,
            tokens=tokens,
            window=choice.window,
            filter_nvtx=choice.filter_nvtx,
            whole_trace=choice.whole_trace,
            warmup=choice.warmup,
        )
        with progress.stage("rendering"):
            tty = output is None and sys.stdout.isatty()
            text = render_text(fmt, roofline_text, result, width=None if tty else 180, color=tty)
    emit(text, output, fmt)


COMMANDS = [roofline]
