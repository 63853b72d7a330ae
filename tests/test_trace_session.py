"""TraceSession: one reading of a trace, one answer about its structure, shared by every analysis."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from nsys_doctor.analysis.phases import analyze_structure
from nsys_doctor.cli.app import cli
from nsys_doctor.errors import UsageError
from nsys_doctor.session import TraceSession, WindowChoice
from nsys_doctor.trace import tables
from nsys_doctor.trace.ranks import discover

from .conftest import DATA, SAMPLE, TRACES, needs_shared

LLAMA_CONFIG = DATA / "llama_mini_config.json"


def _count_reads(monkeypatch: pytest.MonkeyPatch) -> list[Path]:
    """Patch TraceFrames so that every reading of a trace's tables is recorded."""
    reads: list[Path] = []
    real = tables.TraceFrames.__init__

    def counting(self: tables.TraceFrames, trace: object, flt: object = None) -> None:
        reads.append(trace.path)  # type: ignore[attr-defined]
        real(self, trace, flt)  # type: ignore[arg-type]

    monkeypatch.setattr(tables.TraceFrames, "__init__", counting)
    return reads


def test_structure_window_and_steps_are_those_of_the_one_path() -> None:
    with TraceSession.open(SAMPLE) as s:
        f = s.frames
        structure, window, steps = analyze_structure(
            f.kernels, f.api, f.memcpy, f.nvtx, s.capture_range, s.rules, None, None, f.graph_launches
        )
        assert s.structure.to_dict() == structure.to_dict()
        assert s.window == window
        assert s.steps().equals(steps.table)
        # the sample is an NVTX-annotated LLM decode run: the session's answer is the structure's
        assert s.structure.kind == "llm-decode"
        assert s.step_set.count == structure.count("prefill") + structure.count("decode")


def test_analyses_share_one_reading(monkeypatch: pytest.MonkeyPatch) -> None:
    reads = _count_reads(monkeypatch)
    with TraceSession.open(SAMPLE) as s:
        d = s.diagnose(top=5)
        assert s.diagnose(top=5) is d  # cached
        p = s.profile()
        assert s.frames is s.frames
    assert reads == [SAMPLE]
    # the diagnosis and the profile judge the same steps
    assert d.run["decode_steps"] + d.run["prefill_steps"] == s.step_set.count  # type: ignore[operator]
    assert p.steps == s.step_set.of_kind("decode").height == d.run["decode_steps"]


@pytest.mark.parametrize("name", ["sample", "hf_llama_generate_whole.sqlite", "jax_lax_cnn_whole.sqlite"])
def test_last_profile_lets_go_of_the_frames(name: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """``profile(last=True)``: the same profile, built after the session dropped its frames (only the columns
    ``PROFILE_COLUMNS`` names stay alive); asked again, the session reads the trace again."""
    import gc
    import weakref

    from nsys_doctor.analysis.compare import PROFILE_COLUMNS

    path = SAMPLE if name == "sample" else DATA / "runs" / name
    with TraceSession.open(path) as s:
        expected = s.profile().to_dict()
    reads = _count_reads(monkeypatch)
    from nsys_doctor.analysis import compare

    real, taken = compare.build_profile, []

    def recording(source: str, *frames: object, **kw: object) -> object:
        taken.append([f.columns for f in frames[:4]])  # type: ignore[attr-defined]
        return real(source, *frames, **kw)  # type: ignore[arg-type]

    monkeypatch.setattr(compare, "build_profile", recording)
    with TraceSession.open(path) as s:
        kernels = weakref.ref(s.frames.kernels)
        launched = weakref.ref(s.launched)
        assert set(PROFILE_COLUMNS["launched"]) <= set(s.launched.columns)
        assert s.profile(last=True).to_dict() == expected
        assert "frames" not in s.__dict__ and "launched" not in s.__dict__
        gc.collect()
        assert kernels() is None and launched() is None  # nothing else held them
        assert s.profile().to_dict() == expected  # read again
    assert reads == [path, path]
    assert taken[0] == [PROFILE_COLUMNS[k] for k in ("launched", "api", "memcpy", "memset")]
    assert all(set(a) <= set(b) for a, b in zip(taken[0], taken[1], strict=True))


def test_report_with_model_reads_the_trace_once(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    reads = _count_reads(monkeypatch)
    out = tmp_path / "r.json"
    res = CliRunner().invoke(
        cli, ["report", str(SAMPLE), "--model", str(LLAMA_CONFIG), "--format", "json", "-o", str(out)]
    )
    assert res.exit_code == 0, res.output
    assert len(reads) == 1
    data = json.loads(out.read_text())
    assert data["kind"] == "report"


def test_window_options_exclude_each_other() -> None:
    with pytest.raises(UsageError, match="exclude each other"):
        WindowChoice(window="1s/2s", whole_trace=True)
    with pytest.raises(UsageError, match="exclude each other"):
        WindowChoice(filter_nvtx="step", request=0)
    assert WindowChoice(request=0).request == 0


def test_whole_trace_choice_changes_the_window_not_the_structure() -> None:
    with TraceSession.open(SAMPLE) as default, TraceSession.open(SAMPLE, choice=WindowChoice(whole_trace=True)) as w:
        assert w.window.source == "whole-trace"
        assert w.window.start <= default.window.start and w.window.end >= default.window.end
        assert w.structure.to_dict() == default.structure.to_dict()


def test_a_session_given_an_open_trace_leaves_it_open() -> None:
    from nsys_doctor.trace import Trace

    with Trace.open(SAMPLE) as trace:
        with TraceSession(trace) as s:
            assert s.window.end > s.window.start
        assert trace.rows("SELECT 1") == [(1,)]  # still open


def test_rank_summary_needs_a_rank() -> None:
    with TraceSession.open(SAMPLE) as s, pytest.raises(UsageError, match="needs a rank"):
        s.rank_summary()


@needs_shared
def test_rank_report_and_collective_summary_use_one_window() -> None:
    """The per-rank report and the cross-rank summary of the same rank read the same window (they used to find
    it twice, one of them without the window options)."""
    paths = [str(TRACES / "multigpu" / f"tp2_straggler_rank{i}.sqlite") for i in (0, 1)]
    for spec in discover(paths, "auto"):
        with TraceSession.open(spec.path, rank=spec, choice=WindowChoice(whole_trace=True)) as s:
            d = s.diagnose()
            summary = s.rank_summary()
            assert summary.info["window"] == d.window.to_dict()  # type: ignore[attr-defined]
            assert summary.info["window"]["source"] == "whole-trace"  # type: ignore[attr-defined]
            assert summary.info["steps"] == s.step_set.count  # type: ignore[attr-defined]
