"""Combining per-rank results of one distributed run: pairing ranks of two runs, and one merged profile.

A merged profile reads like the profile of one GPU of the run, so ``diff`` and its gate treat it as they treat a
single trace: per step, the host step time is the slowest rank's (a synchronous step ends when the last rank ends),
and GPU time, launches and every kernel, API and memory-operation row are the mean over ranks. Steps are truncated
to the rank with the fewest. Pure functions.
"""

from __future__ import annotations

import numpy as np

from .compare import SAMPLE_MAX, Profile, Row, StepTotals
from .distribution import downsample


def _mean_rows(rows: list[Row | None], n: int, ranks: int) -> Row:
    present = [r for r in rows if r is not None]
    per = np.zeros(n, dtype=np.float64)
    for r in present:
        per += np.asarray(r.per_step[:n], dtype=np.float64)
    sample = np.asarray(sorted(v for r in present for v in r.sample), dtype=np.int64)
    first = present[0]
    return Row(
        key=first.key,
        family=first.family,
        category=first.category,
        count=sum(r.count for r in present),
        total=sum(r.total for r in present) // ranks,
        per_step=StepTotals(np.rint(per / ranks).astype(np.int64)),
        sample=downsample(sample, SAMPLE_MAX),
        label=first.label,
    )


def _merge_level(maps: list[dict[str, Row]], n: int) -> dict[str, Row]:
    keys = sorted(set().union(*(m.keys() for m in maps))) if maps else []
    return {k: _mean_rows([m.get(k) for m in maps], n, len(maps)) for k in keys}


def merge_profiles(profiles: list[Profile], source: str | None = None) -> Profile:
    """One profile for a set of ranks (see the module docstring)."""
    if not profiles:
        raise ValueError("no profiles to merge")
    if len(profiles) == 1:
        return profiles[0]
    n = min(p.steps for p in profiles)
    r = len(profiles)

    def col(name: str, how: str) -> list[int]:
        arr = np.asarray([getattr(p, name)[:n] for p in profiles], dtype=np.float64).reshape(r, n)
        vals = arr.max(axis=0) if how == "max" else arr.mean(axis=0)
        return np.rint(vals).astype(np.int64).tolist()

    levels = sorted(set().union(*(p.kernels.keys() for p in profiles)))
    first = profiles[0]
    return Profile(
        source=source or f"{r} ranks ({first.source}, ...)",
        context_tokens=first.context_tokens,
        prompt_len=first.prompt_len,
        steps=n,
        step_kind=first.step_kind,
        step_wall=col("step_wall", "max"),
        step_gpu=col("step_gpu", "mean"),
        step_launches=col("step_launches", "mean"),
        step_graph_launches=col("step_graph_launches", "mean"),
        kernels={lv: _merge_level([p.kernels.get(lv, {}) for p in profiles], n) for lv in levels},
        api=_merge_level([p.api for p in profiles], n),
        memops=_merge_level([p.memops for p in profiles], n),
    )


def pair_ranks(before: list[int], after: list[int]) -> tuple[list[int], list[str]]:
    """Rank numbers present on both sides, and notes about the others."""
    common = sorted(set(before) & set(after))
    notes = []
    only_b = sorted(set(before) - set(after))
    only_a = sorted(set(after) - set(before))
    if only_b:
        notes.append(f"ranks only in BEFORE: {', '.join(map(str, only_b))}")
    if only_a:
        notes.append(f"ranks only in AFTER: {', '.join(map(str, only_a))}")
    return common, notes
