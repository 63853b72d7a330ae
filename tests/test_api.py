"""The Python API (docs/api.md): every example of the page runs, and the frames hold what the page says."""

from __future__ import annotations

import os
import re
from pathlib import Path

import polars as pl
import pytest

import nsys_doctor as nd
from nsys_doctor.errors import UsageError

from .conftest import DATA, REPO, SAMPLE

DOC = REPO / "docs" / "api.md"
EXAMPLES = re.findall(r"```python\n(.*?)```", DOC.read_text(), flags=re.S)


def test_the_page_has_examples() -> None:
    assert len(EXAMPLES) >= 7


@pytest.mark.parametrize("index", range(len(EXAMPLES)))
def test_every_example_of_the_page_runs(index: int, capsys: pytest.CaptureFixture[str]) -> None:
    code = EXAMPLES[index]
    if "to_pandas" in code:
        pytest.importorskip("pandas")
        pytest.importorskip("pyarrow")
    cwd = os.getcwd()
    os.chdir(REPO)  # the examples name files relative to the repository root
    try:
        exec(compile(code, f"docs/api.md example {index + 1}", "exec"), {})
    finally:
        os.chdir(cwd)
    assert capsys.readouterr().out.strip()  # each example prints what it shows


def test_sample_is_the_bundled_trace() -> None:
    assert nd.sample() == SAMPLE.resolve() or nd.sample().samefile(SAMPLE)


def test_stats_frames_keep_nsys_numbers_as_numbers() -> None:
    with nd.open(SAMPLE) as t:
        kern = t.stats("cuda_gpu_kern_sum")
        table = t.stats_table("cuda_gpu_kern_sum")
    assert kern.height == len(table.rows)
    assert kern.columns == [
        "Time (%)", "Total Time (ns)", "Instances", "Avg (ns)", "Med (ns)", "Min (ns)", "Max (ns)", "StdDev (ns)",
        "Name",
    ]  # fmt: skip
    assert kern["Total Time (ns)"].dtype.is_integer() and kern["Instances"].dtype.is_integer()
    assert kern["Avg (ns)"].dtype.is_float()
    # the same rows, in the same order, as the nsys-compatible table
    assert [tuple(r) for r in kern.iter_rows()] == [tuple(r) for r in table.rows]
    # the top kernel of the sample: nvjet GEMV, 272 instances (its nsys golden, shared/traces/golden, agrees)
    assert kern.row(0, named=True)["Instances"] == 272


def test_an_unknown_report_is_a_usage_error() -> None:
    with nd.open(SAMPLE) as t, pytest.raises(UsageError):
        t.stats("cuda_gpu_kern_summ")


def test_frames_of_the_window() -> None:
    # a whole-process capture of HF generate: 1 warm-up + 2 measured requests of 1 prefill + 19 decode passes
    with nd.open(DATA / "runs" / "hf_llama_generate_whole.sqlite") as t:
        k, a, steps, w = t.kernels(), t.api(), t.steps(), t.window
        whole = t.frames.kernels
    assert k.height and a.height
    assert k["start"].min() >= w.start and k["start"].max() <= w.end  # type: ignore[operator]
    assert k.height < whole.height  # loading, model construction and the warm-up request lie outside the window
    assert {"family", "op", "match"} <= set(k.columns)
    assert k["family"].null_count() == 0
    assert k["start"].is_sorted()
    assert sorted(steps.group_by("kind").len().rows()) == [("decode", 38), ("prefill", 2)]
    # names as text (the session's frames hold them as categoricals)
    assert k.schema["name"] == k.schema["short"] == a.schema["name"] == pl.String
    assert whole.schema["name"] == pl.Categorical
    assert k["name"].str.contains("gemm|gemv|nvjet").any() and a["name"].str.starts_with("cudaLaunch").any()


def test_window_choice_through_open() -> None:
    with nd.open(SAMPLE, whole_trace=True) as t:
        assert t.window.source == "whole-trace"
    with pytest.raises(UsageError):
        nd.open(SAMPLE, whole_trace=True, request=0)


def test_report_renders_like_the_command(tmp_path: Path) -> None:
    import json

    from nsys_doctor.cli.main import main

    out = tmp_path / "r.json"
    assert main(["report", str(SAMPLE), "--format", "json", "-o", str(out)]) == 0
    with nd.open(SAMPLE) as t:
        r = t.report()
    assert r.to_dict() == json.loads(out.read_text())
    assert "<svg" in r._repr_html_() or "<div" in r._repr_html_()
    assert repr(r).startswith("<Report ")


def test_diff_of_a_trace_with_itself_is_flat() -> None:
    result = nd.diff(SAMPLE, SAMPLE)
    assert result.headline.gpu_delta_pct == 0.0
