"""Same input, same bytes: three runs of ``report --format json`` on every shared trace, each in its own process
(hash seeds and thread scheduling differ between processes, which is where ties used to flip)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from .conftest import SAMPLE, TRACES

SHARED_TRACES = sorted(
    p
    for sub in ("", "engines", "public", "multigpu")
    for p in ((TRACES / sub).glob("*.sqlite") if (TRACES / sub).is_dir() else [])
)


def _run(*args: str, threads: int | None = None) -> tuple[int, bytes]:
    env = None if threads is None else {**os.environ, "POLARS_MAX_THREADS": str(threads)}
    r = subprocess.run(
        [sys.executable, "-c", "from nsys_doctor.cli.main import entry; entry()", *args],
        capture_output=True,
        timeout=600,
        env=env,
    )
    return r.returncode, r.stdout


@pytest.mark.parametrize("trace", [SAMPLE, *SHARED_TRACES], ids=lambda p: Path(p).name)
def test_report_json_is_byte_identical_over_three_runs(trace: Path) -> None:
    runs = [_run("report", str(trace), "--format", "json") for _ in range(3)]
    assert runs[0][0] == 0
    assert runs[0][1].startswith(b"{")
    assert runs[1] == runs[0] and runs[2] == runs[0]


@pytest.mark.parametrize(
    "trace",
    [SAMPLE, *(TRACES / n for n in ("decode_pathologies.sqlite", "engines/hf_qwen2_generate.sqlite"))],
    ids=lambda p: Path(p).name,
)
def test_report_json_does_not_depend_on_the_thread_count(trace: Path) -> None:
    """polars splits a frame into as many chunks as it has threads, and some of its arithmetic rounds differently
    per chunk layout (a share divided on one chunk of the sample came out one bit off): a 2-core CI machine and a
    16-core workstation must print the same report."""
    if not trace.is_file():
        pytest.skip(f"{trace} is not present")
    first = _run("report", str(trace), "--format", "json", threads=1)
    assert first[0] == 0 and first[1].startswith(b"{")
    for threads in (2, 3, 8):
        assert _run("report", str(trace), "--format", "json", threads=threads) == first, f"{threads} threads"


@pytest.mark.parametrize(
    "name", ["engines/jax_decode_small.sqlite", "public/dlprof_nsys_profile_a.sqlite"]
)  # ties among unmapped kernels and grids used to flip the order here
def test_terminal_and_markdown_are_byte_identical(name: str) -> None:
    trace = TRACES / name
    if not trace.is_file():
        pytest.skip(f"{trace} is not present")
    for fmt in ("terminal", "markdown"):
        first = _run("report", str(trace), "--format", fmt)
        assert first[0] == 0 and first[1]
        assert _run("report", str(trace), "--format", fmt) == first


@pytest.mark.parametrize(
    "args",
    [
        ["nccl", "multigpu/tp2_straggler_rank0.sqlite", "multigpu/tp2_straggler_rank1.sqlite"],
        ["diff", "decode_graph_node.sqlite", "decode_eager.sqlite"],
        ["report", "multigpu/tp2_straggler_rank0.sqlite", "multigpu/tp2_straggler_rank1.sqlite"],
    ],
    ids=["nccl", "diff", "report-ranks"],
)
def test_other_json_outputs_are_byte_identical(args: list[str]) -> None:
    paths = [str(TRACES / a) if a.endswith(".sqlite") else a for a in args]
    if not all(Path(p).is_file() for p in paths if p.endswith(".sqlite")):
        pytest.skip("../shared/traces is not present")
    first = _run(*paths, "--format", "json")
    assert first[0] == 0 and first[1].startswith(b"{")
    assert _run(*paths, "--format", "json") == first
