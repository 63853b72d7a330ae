"""Speed of light: achieved memory bandwidth and compute per linear-layer shape, against the GPU's peaks.

Inside every step found by ``phases.find_steps`` the linear-layer kernels (the ``gemv`` and ``gemm`` families
of the op rules) run in layer order: QKV, O, gate/up, down per layer, then the LM head. ``roofline`` matches
them to the model's shapes (``analysis/model.py``):

- **by position** (the default): a step must run exactly ``layers x linears per layer + final`` linear kernels;
  of the model's candidate layouts (fused or separate QKV and gate/up) the one that fits most steps is used, the
  k-th kernel of a step is the k-th shape of the layout, and steps with another count are left out;
- **by an explicit mapping** (``--mapping FILE``): ``[[map]]`` tables with ``kernel`` (a regex searched in the
  short and demangled names), optional ``grid`` (``XxYxZ``) and ``shape``; a step fits when it runs every shape
  as often as the model says.

A split-K reduction (op rule "linear split-K reduction", e.g. cuBLASLt's ``splitKreduce_kernel``) finishes the
GEMV before it, so its time is added to that instance. The fit is checked three ways, and a model that does not
fit the trace raises ``UsageError`` instead of printing wrong numbers: the kernel count per step, the grid of
cuBLASLt ``nvjet`` kernels against the shape (tiles x tile rows must cover M, unless split-K or persistent), and
physics (no shape may beat the GPU's peak bandwidth or FLOP/s by more than ``IMPOSSIBLE``).

Per shape: ``M x K``, weight bytes, kernels, instances, p50 and mean time (nearest-rank, ``distribution.py``),
achieved bandwidth = weight bytes / p50 time and its share of peak; with a token count ``N`` (prefill GEMMs)
FLOPs = ``2 x M x N x K``, arithmetic intensity against the ridge point and achieved TFLOP/s. Per phase: weight
bytes per token / step GPU time, and the speed-of-light step time (bytes / peak bandwidth).

Pure functions over polars frames; ``gpu_table`` reads the shipped ``data/gpus.toml`` once.

Modules: ``peaks`` (GPU table and peaks), ``mapping`` (``--mapping`` rules), ``results`` (result types, ratings),
``match`` (kernels to shapes per phase, ``roofline``), ``findings``.
"""

from .findings import FINDING_TEXT, roofline_findings
from .mapping import MapRule, parse_mapping, read_mapping
from .match import roofline
from .peaks import gpu_table, lookup_gpu, resolve_peaks
from .results import RATINGS, PhaseResult, Roofline, ShapeResult, tile_check

__all__ = [
    "FINDING_TEXT",
    "RATINGS",
    "MapRule",
    "PhaseResult",
    "Roofline",
    "ShapeResult",
    "gpu_table",
    "lookup_gpu",
    "parse_mapping",
    "read_mapping",
    "resolve_peaks",
    "roofline",
    "roofline_findings",
    "tile_check",
]
