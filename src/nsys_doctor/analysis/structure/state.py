"""The builder's state: the trace's frames, what was found so far, and the evidence and notes collected."""

from __future__ import annotations

import numpy as np
import polars as pl

from .nvtx import NvtxGroup
from .patterns import ATTENTION_FAMILIES, AUTOTUNE_KERNELS, CONV_FAMILIES
from .result import Evidence, Phase
from .sequence import Api, Cluster, Seq
from .signals import Signals
from .speculative import Rounds


class BuilderState:
    # set by run() once the analyzed process is known
    pid: int | None
    api_index: Api
    seq: Seq
    sig: Signals
    fams: list[str]
    groups: list[NvtxGroup]
    cluster: Cluster | None
    nvtx_step_group: NvtxGroup
    # set by nvtx_check()
    nv_llm: bool
    nv_decode: bool
    nv_requests_inside: np.ndarray | None

    def __init__(
        self,
        kernels: pl.DataFrame,
        api: pl.DataFrame,
        memcpy: pl.DataFrame | None,
        nvtx: pl.DataFrame | None,
        capture_range: str | None,
        ops: pl.DataFrame | None,
        graph_launches: pl.DataFrame | None,
        launched: pl.DataFrame | None = None,
    ) -> None:
        self.kernels = kernels
        self.launched = launched  # phases.launched_kernels(kernels, api) when the caller has it
        self.api = api
        self.memcpy = memcpy
        self.nvtx = nvtx
        self.capture = capture_range == "cudaProfilerApi"
        self.ops = ops
        self.graph_launches = graph_launches
        self.evidence: list[Evidence] = []
        self.notes: list[str] = []
        self.markers: np.ndarray | None = None
        self.marker: str | None = None  # the once-per-pass kernel the passes were cut at
        self.lead_phases: list[Phase] | None = None  # set on the analysis of the kernels after a setup
        self.slow_passes: np.ndarray | None = None  # leading passes far slower on the host (warmup_passes)
        self.spec: Rounds | None = None  # a speculative run's rounds, its steps (speculative.py)
        self.growing: float | None = None  # passes that grow (no KV cache): the median share of kernels grown

    def autotune_positions(self) -> np.ndarray:
        """Sequence positions of the autotuning kernels (cuDNN, XLA), in order."""
        seq = self.seq
        codes = [c for c, n in enumerate(seq.names) if AUTOTUNE_KERNELS.search(n)]
        return np.sort(np.concatenate([seq.positions(c) for c in codes])) if codes else np.zeros(0, dtype=np.int64)

    def codes_used(self, a: int, b: int) -> list[int]:
        """The name codes of the kernels ``a`` to ``b`` (exclusive) of the sequence, in code order."""
        seq = self.seq
        return np.nonzero(np.bincount(seq.code[a:b], minlength=len(seq.names)))[0].tolist() if b > a else []

    def convolution_share(self, a: int, b: int) -> tuple[float, bool]:
        """Of the kernels ``a`` to ``b`` (exclusive) of the sequence: the share of their GPU time in convolutions,
        and whether any of them is attention."""
        seq = self.seq
        if b <= a:
            return 0.0, False
        t = np.bincount(seq.code[a:b], weights=seq.dur[a:b].astype(np.float64), minlength=len(seq.names))
        used = self.codes_used(a, b)
        total = float(t.sum())
        conv = sum(float(t[c]) for c in used if self.fams[c] in CONV_FAMILIES)
        return (conv / total if total > 0 else 0.0), any(self.fams[c] in ATTENTION_FAMILIES for c in used)

    def ev(self, fact: str, source: str, confidence: str, detail: str) -> None:
        self.evidence.append(Evidence(fact, source, confidence, detail))
