"""User NVTX ranges grouped by name, and regular strides of a signal across step boundaries."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import polars as pl

from ..phases import user_ranges
from .patterns import STRIDE_MIN_CUTS
from .sequence import is_empty_frame


@dataclass(frozen=True)
class NvtxGroup:
    name: str  # digits replaced by N
    texts: list[str]
    start: np.ndarray
    end: np.ndarray


def nvtx_groups(nvtx: pl.DataFrame | None, pid: int | None) -> list[NvtxGroup]:
    """User NVTX ranges of the analyzed process grouped by name (numbers as N), outermost ranges of one thread
    per group; library ranges and per-op annotations are left out."""
    if is_empty_frame(nvtx):
        return []
    assert nvtx is not None
    nv = nvtx.filter(pl.col("end").is_not_null() & pl.col("text").is_not_null() & (pl.col("end") >= pl.col("start")))
    if pid is not None and "globalTid" in nv.columns:
        nv = nv.filter(((pl.col("globalTid") // (1 << 24)) % (1 << 24)) == pid)
    if nv.is_empty():
        return []
    nv = user_ranges(nv).filter(pl.col("text").str.len_chars() <= 80)
    if nv.is_empty():
        return []
    nv = nv.with_columns(pl.col("text").str.replace_all(r"\d+", "N").alias("_g"))
    out = []
    for g in sorted(nv["_g"].unique().to_list()):
        part = nv.filter(pl.col("_g") == g)
        tid = part.group_by("globalTid").len().sort(["len", "globalTid"], descending=[True, False])["globalTid"][0]
        part = part.filter(pl.col("globalTid") == tid).sort("start", "end")
        part = part.with_columns(pl.col("end").cum_max().shift(1).alias("_pe")).filter(
            pl.col("_pe").is_null() | (pl.col("start") >= pl.col("_pe"))
        )
        out.append(NvtxGroup(g, sorted(set(part["text"].to_list())), part["start"].to_numpy(), part["end"].to_numpy()))
    return out


def regular_stride(at: np.ndarray, cut: np.ndarray) -> int | None:
    """The stride k when the step boundaries ``at`` (boundary i lies between step i and i + 1) are every k-th
    boundary (k >= 2, at least ``STRIDE_MIN_CUTS`` of them, the last k steps after the last one) and the k steps
    before the first one start at the first step or at a boundary of ``cut``: equal groups of k steps. None
    otherwise (an irregular signal, one at every boundary, one seen once)."""
    idx = np.nonzero(at)[0]
    if idx.size < STRIDE_MIN_CUTS:
        return None
    d = np.diff(idx)
    k = int(d[0])
    if k < 2 or not bool((d == k).all()) or at.size - int(idx[-1]) != k:
        return None
    before = int(idx[0]) - k
    if before < -1 or (before >= 0 and not bool(cut[before])):
        return None
    return k


def count_inside(points: np.ndarray, start: np.ndarray, end: np.ndarray) -> np.ndarray:
    """How many of the sorted ``points`` each [start, end] range holds."""
    return np.searchsorted(points, end, side="right") - np.searchsorted(points, start, side="left")
