"""HTML output: self-contained, well-formed, escaped, deterministic pages for report, diff and nccl; the plot data
behind them; and a real browser opening the page (when Chromium is installed)."""

from __future__ import annotations

import dataclasses
import json
import os
import re
import shutil
import subprocess
import sys
import zlib
from html.parser import HTMLParser
from pathlib import Path

import numpy as np
import polars as pl
import pytest

from nsys_doctor.analysis.findings import Finding
from nsys_doctor.analysis.plots import (
    MAX_POINTS,
    busy_time,
    diff_steps,
    kernel_histogram,
    kernel_pacing,
    step_series,
    utilization,
)
from nsys_doctor.cli.main import main
from nsys_doctor.report.html import esc, linear_ticks, log_ticks, nice_max, render_fragment, render_report
from nsys_doctor.session import TraceSession

from .conftest import DATA, REPO, SAMPLE, TRACES, needs_shared

RESNET = DATA / "runs" / "resnet50_fp16_cl_whole.sqlite"
MULTI = TRACES / "multigpu"
VOID = {"area", "base", "br", "col", "embed", "hr", "img", "input", "link", "meta", "source", "track", "wbr"}
REPORT_PLOTS = (
    "GPU busy and idle per step; host launch time per step",
    "share of GPU time per family",
    "GPU utilization over time per device",
    "duration histogram of ",
    "pacing of ",
)
NASTY = 'void k<float, (Op)3>::run<&foo, "q">(T*) & <script>alert(1)</script>'


class Checker(HTMLParser):
    """Every start tag closed by its own end tag, in order (void elements and ``<x/>`` aside)."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.stack: list[str] = []
        self.errors: list[str] = []
        self.tags: dict[str, int] = {}
        self.attrs: list[tuple[str, str, str | None]] = []
        self.text: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags[tag] = self.tags.get(tag, 0) + 1
        self.attrs += [(tag, k, v) for k, v in attrs]
        if tag not in VOID:
            self.stack.append(tag)

    def handle_startendtag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags[tag] = self.tags.get(tag, 0) + 1
        self.attrs += [(tag, k, v) for k, v in attrs]

    def handle_endtag(self, tag: str) -> None:
        if tag in VOID:
            return
        if not self.stack or self.stack[-1] != tag:
            self.errors.append(f"</{tag}> closes {self.stack[-1] if self.stack else 'nothing'}")
            return
        self.stack.pop()

    def handle_data(self, data: str) -> None:
        self.text.append(data)


def check_page(text: str, fragment: bool = False) -> Checker:
    """Well-formed and self-contained: balanced tags, no script, nothing fetched from anywhere."""
    c = Checker()
    c.feed(text)
    c.close()
    assert not c.errors, c.errors[:5]
    assert not c.stack, f"unclosed: {c.stack[-5:]}"
    if not fragment:
        assert text.startswith("<!DOCTYPE html>")
        assert c.tags.get("html") == 1 and c.tags.get("style") == 1
        assert "Content-Security-Policy" in text
    assert "script" not in c.tags and "link" not in c.tags and "img" not in c.tags and "iframe" not in c.tags
    for tag, key, value in c.attrs:
        if key in ("src", "href", "xlink:href", "action", "srcset"):
            assert not re.match(r"\s*(https?:)?//", value or ""), (tag, key, value)
            assert (value or "").startswith("#"), (tag, key, value)  # in-page links only
        assert not key.startswith("on"), (tag, key)
    assert "@import" not in text and "url(" not in text
    assert not re.search(r"""(src|href)\s*=\s*["']?\s*(https?:)?//""", text)
    return c


def run_cli(argv: list[str], out: Path) -> str:
    assert main([*argv, "-o", str(out)]) == 0
    return out.read_text(encoding="utf-8")


@pytest.fixture(scope="module")
def sample_html(tmp_path_factory: pytest.TempPathFactory) -> str:
    return run_cli(["report", str(SAMPLE), "--format", "html"], tmp_path_factory.mktemp("html") / "sample.html")


@pytest.fixture(scope="module")
def resnet_html(tmp_path_factory: pytest.TempPathFactory) -> str:
    return run_cli(["report", str(RESNET), "--format", "html"], tmp_path_factory.mktemp("html") / "resnet.html")


# ---------------------------------------------------------------------------------------------- report


def test_sample_report_page(sample_html: str) -> None:
    c = check_page(sample_html)
    for label in REPORT_PLOTS:
        assert f'aria-label="{label}' in sample_html, label
    assert sample_html.count('aria-label="duration histogram of ') == 6
    assert c.tags["svg"] >= 10
    text = " ".join(" ".join(c.text).split())
    with TraceSession.open(SAMPLE) as s:
        d = s.diagnose(10)
    for f in d.findings:  # every finding with its summary, as in the terminal report
        assert f.id in text and " ".join(f.summary.split()) in text
    assert " ".join(str(d.target["why"]).split()) in text
    for section in ("Diagnosis", "Findings", "Steps", "Top kernels", "Tails (by tail score)", "Host"):
        assert f"<h2>{section}</h2>" in sample_html
    assert "Window" in text and "LLM decode" in text
    # prefill and decode steps are marked in their own colors
    assert "GPU busy (prefill)" in text and "GPU busy (decode)" in text
    # C++ template names are escaped, never raw
    assert "elementwise_kernel&lt;MulFunctor&gt;" in sample_html
    assert "elementwise_kernel<MulFunctor>" not in sample_html
    assert len(sample_html.encode()) < 400_000


def test_non_llm_run_page(resnet_html: str) -> None:
    c = check_page(resnet_html)
    for label in REPORT_PLOTS:
        assert f'aria-label="{label}' in resnet_html, label
    text = " ".join(c.text)
    assert "GPU busy (iteration)" in text and "10 iterations of the window" in text
    assert "GPU busy (decode)" not in text and "GPU busy (prefill)" not in text
    assert "launch-bound" in text
    assert "batch_norm_transform_input_channels_last_kernel" in text
    assert len(resnet_html.encode()) < 400_000


def test_same_bytes_twice(tmp_path: Path, sample_html: str) -> None:
    again = run_cli(["report", str(SAMPLE), "--format", "html"], tmp_path / "again.html")
    assert again == sample_html
    # another process, another hash seed: the same bytes
    other = subprocess.run(
        [sys.executable, "-m", "nsys_doctor.cli.main", "report", str(SAMPLE), "--format", "html"],
        capture_output=True,
        check=True,
        env={**os.environ, "PYTHONHASHSEED": "12345"},
        timeout=300,
    )
    assert other.stdout.decode("utf-8") == sample_html
    with TraceSession.open(RESNET) as s:
        one = render_report(s.diagnose(10), s.plot_data())
    with TraceSession.open(RESNET) as s:
        two = render_report(s.diagnose(10), s.plot_data())
    assert one == two


def test_every_name_and_string_is_escaped() -> None:
    with TraceSession.open(SAMPLE) as s:
        d = s.diagnose(10)
        plots = s.plot_data()
    first = d.kernels["name"][0]
    kernels = d.kernels.with_columns(
        pl.when(pl.col("name") == first).then(pl.lit(NASTY)).otherwise(pl.col("name")).alias("name"),
        pl.when(pl.col("name") == first).then(pl.lit(NASTY)).otherwise(pl.col("label")).alias("label"),
    )
    fake = dataclasses.replace(
        d,
        kernels=kernels,
        findings=[Finding("launch-bound", "critical", f"summary with {NASTY}", cost_ns=5, cost_share=0.5)],
        notes=[f"note {NASTY}"],
        trace={**d.trace, "path": "/tmp/<b>&x.sqlite", "gpu": "<GPU & co>"},
        unmapped=[NASTY],
    )
    hist = dataclasses.replace(plots.histograms[0], name=NASTY, label=NASTY)
    pace = dataclasses.replace(plots.pacing, name=NASTY, label=NASTY)  # type: ignore[arg-type]
    fake_plots = dataclasses.replace(plots, histograms=[hist], pacing=pace)
    for text, fragment in ((render_report(fake, fake_plots), False), (render_fragment(fake), True)):
        c = check_page(text, fragment=fragment)
        assert NASTY not in text and "<script>" not in text and "<b>&x" not in text
        assert esc("<script>alert(1)</script>") in text
        assert NASTY in "".join(c.text) or esc(NASTY) in text


def test_fragment_for_notebooks() -> None:
    with TraceSession.open(SAMPLE) as s:
        frag = s.report()._repr_html_()
    check_page(frag, fragment=True)
    assert frag.startswith("<div style=") and "<html" not in frag and "<style" not in frag
    assert frag.count("<svg") == 1 and 'aria-label="share of GPU time per family"' in frag
    assert "profiler-inflation" in frag and "GEMV" in frag


def test_html_on_a_terminal_is_refused(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setattr(sys.stdout, "isatty", lambda: True)
    for argv in (["report", str(SAMPLE)], ["diff", str(SAMPLE), str(SAMPLE)], ["nccl", str(SAMPLE)]):
        assert main([*argv, "--format", "html"]) == 2
        err = capsys.readouterr().err
        assert err.count("\n") == 1 and "web page" in err and "-o report.html" in err


def test_html_to_a_pipe(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["report", str(SAMPLE), "--format", "html"]) == 0
    out = capsys.readouterr().out
    assert out.startswith("<!DOCTYPE html>") and out.endswith("</html>\n")


def test_output_folder_gets_an_html_name(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["report", str(SAMPLE), "--format", "html", "-o", f"{tmp_path}/"]) == 0
    assert (tmp_path / "sample_decode.report.html").is_file()


# ------------------------------------------------------------------------------------------ diff, nccl


def test_diff_page(tmp_path: Path) -> None:
    html = run_cli(["diff", str(SAMPLE), str(SAMPLE), "--format", "html"], tmp_path / "diff.html")
    check_page(html)
    assert 'aria-label="GPU time per step, before and after"' in html
    assert 'aria-label="change of GPU time per step per family"' in html
    assert "What explains the change" in html
    assert html == run_cli(["diff", str(SAMPLE), str(SAMPLE), "--format", "html"], tmp_path / "diff2.html")


@needs_shared
def test_diff_page_of_two_runs(tmp_path: Path) -> None:
    a, b = TRACES / "decode_eager.sqlite", TRACES / "decode_graph_node.sqlite"
    html = run_cli(["diff", str(a), str(b), "--format", "html"], tmp_path / "diff.html")
    c = check_page(html)
    text = " ".join(c.text)
    assert "cudaLaunchKernel" in text and "cudaGraphLaunch" in text
    assert "step time (host, traced)" in text


@needs_shared
def test_nccl_page(tmp_path: Path) -> None:
    ranks = [str(MULTI / "tp2_straggler_rank0.sqlite"), str(MULTI / "tp2_straggler_rank1.sqlite")]
    html = run_cli(["nccl", *ranks, "--format", "html"], tmp_path / "nccl.html")
    c = check_page(html)
    assert 'aria-label="arrival skew per collective"' in html
    assert 'aria-label="collective time per rank: waiting and moving"' in html
    text = " ".join(c.text)
    assert "nccl-rank-skew" in text and "rank 1 is the late rank" in text
    assert html == run_cli(["nccl", *ranks, "--format", "html"], tmp_path / "nccl2.html")


@needs_shared
def test_report_on_ranks_page(tmp_path: Path) -> None:
    ranks = [str(MULTI / "tp2_straggler_rank0.sqlite"), str(MULTI / "tp2_straggler_rank1.sqlite")]
    html = run_cli(["report", *ranks, "--format", "html"], tmp_path / "ranks.html")
    check_page(html)
    assert html.count('aria-label="GPU busy and idle per step') == 2
    assert 'id="rank-0"' in html and 'id="rank-1"' in html and 'id="across"' in html
    assert 'aria-label="arrival skew per collective"' in html


# ------------------------------------------------------------------------------------------- plot data


def test_busy_time_merges_overlaps() -> None:
    covered = busy_time(np.array([0, 5, 20, 21]), np.array([10, 12, 30, 25]))  # [0,12) and [20,30)
    assert covered(np.array([0]), np.array([100]))[0] == 22
    assert covered(np.array([6, 11, 12, 25]), np.array([8, 21, 20, 100])).tolist() == [2, 2, 0, 5]
    empty = busy_time(np.array([], dtype=np.int64), np.array([], dtype=np.int64))
    assert empty(np.array([0]), np.array([5])).tolist() == [0]


def test_step_series_busy_idle_gap_and_launches() -> None:
    kernels = pl.DataFrame({"start": [100, 150, 300, 310], "end": [140, 200, 320, 330]})
    api = pl.DataFrame({"name": ["cudaLaunchKernel", "cudaLaunchKernel", "cudaMalloc"], "start": [10, 260, 20],
                        "dur": [5, 7, 100]})  # fmt: skip
    steps = pl.DataFrame({
        "idx": [0, 1], "kind": ["prefill", "decode"], "start": [0, 250], "end": [249, 400], "wall": [249, 150],
        "gpu_start": [100, 300], "gpu_end": [200, 330],
    })  # fmt: skip
    s = step_series(kernels, api, steps)
    assert s.busy == [90, 30] and s.idle == [10, 0] and s.gap == [100, 0]
    assert s.launch == [5, 7] and s.kind == ["prefill", "decode"] and s.group == 1
    many = pl.DataFrame({
        "idx": list(range(1000)), "kind": ["prefill"] + ["decode"] * 999, "start": [i * 10 for i in range(1000)],
        "end": [i * 10 + 9 for i in range(1000)], "wall": [9] * 1000, "gpu_start": [None] * 1000,
        "gpu_end": [None] * 1000,
    }, schema_overrides={"gpu_start": pl.Int64, "gpu_end": pl.Int64})  # fmt: skip
    m = step_series(kernels, api, many, max_bars=100)
    assert m.group == 10 and len(m.idx) == 100 and m.total == 1000
    assert m.kind[0] == "prefill" and m.kind[1] == "decode" and m.wall[0] == 9


def test_histogram_bins() -> None:
    lin = kernel_histogram("k", "k", np.array([100, 101, 102, 110, 120]))
    assert not lin.log and sum(lin.counts) == 5 and len(lin.edges) == len(lin.counts) + 1
    assert lin.edges[0] <= 100 and lin.edges[-1] >= 120 and lin.p50 == 102 and lin.max == 120
    wide = kernel_histogram("k", "k", np.array([1_000, 2_000, 50_000, 1_000_000] * 10))
    assert wide.log and sum(wide.counts) == 40 and len(wide.counts) <= 40
    one = kernel_histogram("k", "k", np.array([7, 7, 7]))
    assert one.counts == [3]


def test_pacing_keeps_spikes_when_cut() -> None:
    n = 50_000
    starts = np.arange(n, dtype=np.int64) * 1000
    starts[30_000:] += 5_000_000  # one stall
    durs = np.full(n, 100, dtype=np.int64)
    durs[12_345] = 9_999
    p = kernel_pacing("k", "k", starts[::-1].copy(), durs[::-1].copy(), 0)
    assert p.sampled and p.count == n
    assert len(p.gap) <= MAX_POINTS and len(p.dur) <= MAX_POINTS
    assert max(p.gap) == 5_001_000 and max(p.dur) == 9_999 and min(p.gap) == 1000
    assert p.gap_index == sorted(p.gap_index) and p.dur_index[p.dur.index(9_999)] == 12_345  # start order


def test_utilization_per_device() -> None:
    k = pl.DataFrame({"start": [0, 50, 0], "end": [50, 100, 25], "deviceId": [0, 0, 1]})
    u = utilization(k, 0, 100, bins=4)
    assert u.devices == [0, 1] and u.shares == [[1.0, 1.0, 1.0, 1.0], [1.0, 0.0, 0.0, 0.0]]
    assert u.busy == [100, 25] and u.bin_ns == 25


def test_diff_steps_and_ticks() -> None:
    d = diff_steps(list(range(1000)), [5] * 10, "decode", max_points=100)
    assert d.before_group == 10 and len(d.before) == 100 and d.after == [5] * 10 and d.after_group == 1
    assert nice_max(4.23e6) == 5e6 and nice_max(0) == 1.0
    assert linear_ticks(0, 1e6, 4) == [0, 250_000, 500_000, 750_000, 1_000_000]
    assert log_ticks(1e3, 1e6) == [1e3, 1e4, 1e5, 1e6]


# --------------------------------------------------------------------------------------- real browser

SCRIPT = REPO / "scripts" / "screenshot_html.py"
CHROMIUM = next((p for p in ("chromium", "chromium-browser", "google-chrome") if shutil.which(p)), None)


def png_pixels_vary(data: bytes) -> tuple[int, int, int]:
    """(width, height, distinct byte values of the decompressed image data): a blank page gives a handful."""
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    pos, idat, width, height = 8, b"", 0, 0
    while pos < len(data):
        n = int.from_bytes(data[pos : pos + 4], "big")
        kind = data[pos + 4 : pos + 8]
        body = data[pos + 8 : pos + 8 + n]
        if kind == b"IHDR":
            width, height = int.from_bytes(body[:4], "big"), int.from_bytes(body[4:8], "big")
        elif kind == b"IDAT":
            idat += body
        pos += 12 + n
    return width, height, len(set(zlib.decompress(idat)))


@pytest.mark.skipif(CHROMIUM is None, reason="no chromium (apt-get install chromium)")
@pytest.mark.parametrize("which", ["sample", "resnet"])
def test_chromium_renders_without_console_errors(
    which: str, sample_html: str, resnet_html: str, tmp_path: Path
) -> None:
    page = tmp_path / f"{which}.html"
    page.write_text(sample_html if which == "sample" else resnet_html, encoding="utf-8")
    png = tmp_path / f"{which}.png"
    out = subprocess.run(
        [sys.executable, str(SCRIPT), str(page), "-o", str(png), "--size", "1400,2400"],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    result = json.loads(out.stdout.strip().splitlines()[-1])
    assert out.returncode == 0, result
    assert result["console"] == [] and result["returncode"] == 0
    assert result["dom_bytes"] > 10_000  # the page parsed and was laid out
    width, height, distinct = png_pixels_vary(png.read_bytes())
    assert (width, height) == (1400, 2400) and distinct > 32


@pytest.mark.skipif(CHROMIUM is None, reason="no chromium (apt-get install chromium)")
def test_screenshot_script_reports_console_errors(tmp_path: Path) -> None:
    page = tmp_path / "bad.html"
    page.write_text("<!DOCTYPE html><html><body><p>x</p><script>undefinedFn()</script></body></html>")
    out = subprocess.run(
        [sys.executable, str(SCRIPT), str(page), "-o", str(tmp_path / "bad.png"), "--size", "300,200"],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert out.returncode == 1
    assert any("undefinedFn" in m for m in json.loads(out.stdout)["console"])
