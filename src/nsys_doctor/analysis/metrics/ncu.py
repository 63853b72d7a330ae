"""The next command: the kernel to look at and the ncu command line that profiles it."""

from __future__ import annotations

import re
import shlex
from collections.abc import Mapping

import polars as pl

from ..phases import Window


def _ncu_name(short: str) -> str:
    return "ncu_" + (re.sub(r"[^A-Za-z0-9_.-]+", "_", short).strip("_") or "kernel")[:60]


def target_kernel(target: Mapping[str, object], top_kernels: pl.DataFrame) -> dict[str, object] | None:
    """The kernel the diagnosis says to work on: the largest kernel of the target family among the top kernels."""
    if target.get("kind") != "family" or top_kernels.is_empty() or "family" not in top_kernels.columns:
        return None
    rows = top_kernels.filter(pl.col("family") == target.get("family"))
    return rows.row(0, named=True) if rows.height else None


def ncu_commands(
    kernel: dict[str, object] | None,
    kernels: pl.DataFrame,
    window: Window,
    argv: list[str] | None,
    command: str | None,
    cwd: str | None,
    capture: dict[str, object],
) -> list[dict[str, object]]:
    """The ``ncu`` command that profiles one instance of ``kernel`` in the same program, the first of the analysis
    window (past warm-up): ``--launch-skip N`` skips the N launches of kernels with the same base name (what
    ``--kernel-name regex:^NAME$`` matches) made before it, in launch order (``l_start``, the launch call's time,
    else the kernel's start). ``kernels``: all kernels of the trace (name, short, start, pid, l_start)."""
    if kernel is None:
        return []
    name, short = str(kernel["name"]), str(kernel.get("short") or "")
    if not short:
        short = str(kernels.filter(pl.col("name") == name)["short"].head(1).to_list()[0]) if kernels.height else name
    k = kernels.with_columns(pl.coalesce("l_start", "start").alias("_t"))
    mine = k.filter((pl.col("name") == name) & (pl.col("start") >= window.start) & (pl.col("start") <= window.end))
    if mine.is_empty():
        return []
    first = mine.sort(["_t", "start"]).row(0, named=True)
    same = k.filter(pl.col("short") == short)
    notes: list[str] = []
    pids = same["pid"].unique().drop_nulls().to_list()
    if len(pids) > 1 and first.get("pid") is not None:
        same = same.filter(pl.col("pid") == first["pid"])
        notes.append(f"counted in process {first['pid']} only; ncu counts the launches of every process it follows")
    before = same.filter(
        (pl.col("_t") < first["_t"]) | ((pl.col("_t") == first["_t"]) & (pl.col("start") < first["start"]))
    )
    n = before.height
    regex = "regex:^" + re.escape(short) + "$"
    opts = ["ncu"]
    if capture.get("capture_range") == "cudaProfilerApi":
        opts += ["--profile-from-start", "off"]
        notes.append("the trace starts at cudaProfilerStart: with --profile-from-start off ncu also counts from there")
    elif capture.get("start_delay_ms"):
        notes.append(
            f"the capture started {capture['start_delay_ms']} ms after launch: launches before it are not in the "
            "trace, so the skip count is too small by those"
        )
    opts += ["--kernel-name", regex, "--launch-skip", str(n), "--launch-count", "1", "--set", "full"]
    opts += ["-o", _ncu_name(short)]
    head = shlex.join(opts)
    if argv:
        program, recorded = shlex.join(argv), True
    elif command:
        program, recorded = command, True
    else:
        program, recorded = "<your command line>", False
    label = str(kernel.get("label") or short)
    why = (
        f"profiles one instance of {label}, the first in the analysis window (at {int(first['start']) / 1e9:.6f} s): "
        f"--launch-skip {n} skips the {n} launches of kernels named {short} before it (loading and warm-up "
        "included); --set full replays it many times to collect every section"
    )
    if not recorded:
        why += "; the trace does not record the command line: put the program and its arguments after --"
    if notes:
        why += "; " + "; ".join(notes)
    return [
        {
            "what": f"profile the target kernel {label} with Nsight Compute",
            "tool": "ncu",
            "command": f"{head} -- {program}",
            "cwd": cwd,
            "kernel": name,
            "base_name": short,
            "launch_skip": n,
            "command_recorded": recorded,
            "why": why,
        }
    ]
