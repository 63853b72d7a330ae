"""The diagnosis report on the real traces: acceptance checks, and for every finding a trace that has the
problem and one that does not."""

from __future__ import annotations

import json
import shutil
import sqlite3
from pathlib import Path

import polars as pl
import pytest

from nsys_doctor.analysis.diagnosis import Diagnosis, diagnose
from nsys_doctor.analysis.findings import CATALOGUE, severity_of
from nsys_doctor.cli.main import main
from nsys_doctor.cli.report import diagnose_trace
from nsys_doctor.loaders import load_rules
from nsys_doctor.report.diagnosis_json import render_json
from nsys_doctor.trace.meta import describe
from nsys_doctor.trace.tables import TraceFrames

from .conftest import SAMPLE, TRACES, needs_shared, open_trace

RULES = load_rules(None)
_CACHE: dict[tuple, Diagnosis] = {}


def report_of(path: Path, **options: object) -> Diagnosis:
    key = (path, tuple(sorted(options.items())))
    if key not in _CACHE:
        _CACHE[key] = diagnose_trace(open_trace(path), RULES, **options)  # type: ignore[arg-type]
    return _CACHE[key]


def ids(d: Diagnosis) -> list[str]:
    return [f.id for f in d.findings]


def finding(d: Diagnosis, fid: str):
    return next(f for f in d.findings if f.id == fid)


def T(name: str) -> Path:
    return TRACES / f"{name}.sqlite"


@pytest.fixture(scope="module")
def edited(tmp_path_factory: pytest.TempPathFactory):
    """Copies of the sample trace with one thing changed, for problems the real corpus does not have."""
    made: dict[str, Path] = {}

    def make(kind: str) -> Path:
        if kind in made:
            return made[kind]
        dst = tmp_path_factory.mktemp(kind) / f"{kind}.sqlite"
        shutil.copyfile(SAMPLE, dst)
        con = sqlite3.connect(dst)
        if kind == "sync-copies":  # the per-step async copy and memset become their synchronous forms
            con.execute("UPDATE StringIds SET value = 'cudaMemcpy_v3020' WHERE value = 'cudaMemcpyAsync_v3020'")
            con.execute("UPDATE StringIds SET value = 'cudaMemset_v3020' WHERE value = 'cudaMemsetAsync_v3020'")
        elif kind == "alloc":  # a per-step API call becomes an allocation
            con.execute("UPDATE StringIds SET value = 'cudaMalloc_v3020' WHERE value = 'cudaMemcpyAsync_v3020'")
        elif kind == "no-kernels":
            con.execute("DELETE FROM CUPTI_ACTIVITY_KIND_KERNEL")
        elif kind == "no-diagnostics":
            con.execute("DELETE FROM DIAGNOSTIC_EVENT")
        con.commit()
        con.close()
        made[kind] = dst
        return dst

    return make


# ---------------------------------------------------------------------------------------------- acceptance


@needs_shared
def test_pathologies_acceptance():
    d = report_of(T("decode_pathologies"))
    # the window is the three measured requests: model loading and warm-up are left out
    assert d.window.source == "structure"
    assert d.window.start > d.window.loading_end  # type: ignore[operator]
    assert (d.run["kind"], d.run["requests"], d.run["warmup_requests"]) == ("llm-decode", 3, 1)
    found = ids(d)
    for fid in ("host-sync-in-inference", "pageable-memcpy", "tail-outlier", "gpu-idle-gap"):
        assert fid in found, found
    sync = finding(d, "host-sync-in-inference")
    assert sync.evidence["per_step"] >= 1.0
    pageable = finding(d, "pageable-memcpy")
    assert pageable.evidence["per_step"] >= 1.0
    assert "1.05 MB" in pageable.summary  # 1 MiB per step, not a few bytes
    # severity follows the cost: the GPU idles a few ms while the host copies, far less than the launch overhead
    assert 0 < pageable.cost_ns < finding(d, "launch-bound").cost_ns  # type: ignore[operator]
    tail = finding(d, "tail-outlier")
    top = tail.evidence["kernels"][0]
    assert "MulFunctor" in top["name"] and top["label"] == "vectorized_elementwise_kernel<MulFunctor>"
    assert (top["typical_grid"], top["tail_grid"]) == ("16x1x1", "16384x1x1")
    assert "16384x1x1 instead of 16x1x1" in tail.summary
    gaps = finding(d, "gpu-idle-gap")
    assert gaps.evidence["gaps"] == 2  # the two 0.7 s sleeps between the three requests
    assert "between requests (the host paused before queuing the next request)" in gaps.summary, gaps.summary
    assert d.host.to_dict()["gaps_between_requests"] == 2
    assert all(650_000_000 < g["dur"] < 750_000_000 for g in gaps.evidence["longest"])
    assert gaps.evidence["loading_phase_gaps"] > 0  # loading gaps are counted as loading, not as findings
    assert d.steps.source.startswith("structure")
    assert d.step_summary["decode"]["count"] == 285  # 3 requests x 95 decode steps


@needs_shared
def test_graph_level_capture_first_finding():
    d = report_of(T("decode_graph_graph"))
    first = d.findings[0]
    assert first.id == "graph-trace-not-node"
    assert first.severity == "critical"
    assert "--cuda-graph-trace=node" in first.action
    assert first.evidence["flag"] == "--cuda-graph-trace=node"
    assert d.target["kind"] == "recapture"


@needs_shared
def test_graph_node_targets_gemv_without_host_findings():
    d = report_of(T("decode_graph_node"))
    assert d.target["family"] == "gemv"
    assert d.families.row(0, named=True)["category"] == "GEMV"
    for fid in ("host-sync-in-inference", "pageable-memcpy", "alloc-churn", "launch-bound", "sync-memcpy"):
        assert fid not in ids(d)
    assert d.step_summary["decode"]["count"] == 127
    assert d.step_summary["prefill"]["count"] == 1
    # graphed decode: the host runs ahead (NVTX step ~0.7-2.5 ms) while the GPU finishes a token every ~2.7 ms;
    # the README measures 0.348 s of GPU time for 128 traced tokens (2.72 ms/token)
    period = d.step_summary["decode"]["gpu_period"]["p50_ns"]
    assert 2_400_000 < period < 3_000_000


@needs_shared
def test_eager_is_launch_bound():
    d = report_of(T("decode_eager"))
    lb = finding(d, "launch-bound")
    assert 650 <= lb.evidence["launches_per_step"] <= 750
    assert "708 kernel launches per decode step" in lb.summary
    assert d.target.get("host_first") == "launch-bound"


@needs_shared
def test_prefill_gemm_and_attention_lead():
    d = report_of(T("prefill_2048"))
    fams = d.families["family"].to_list()
    assert fams[0] == "gemm"
    assert "attention-prefill" in fams[:3]  # a prefill-only run: its attention runs in prefill steps
    assert d.step_summary["count"] == 1
    assert d.step_summary["prefill"]["count"] == 1
    assert "tail-outlier" not in ids(d)  # the LM head's other grid is another layer, not an outlier


# -------------------------------------------------------------------- every finding: with and without it


@needs_shared
@pytest.mark.parametrize(
    ("fid", "has", "lacks"),
    [
        pytest.param(fid, has, lacks, marks=pytest.mark.finding(fid), id=fid)
        for fid, has, lacks in [
            ("launch-bound", "decode_eager", "decode_graph_node"),
            ("low-gpu-utilization", "decode_eager", "decode_graph_node"),
            ("gpu-idle-gap", "decode_pathologies", "decode_eager"),
            ("host-sync-in-inference", "decode_pathologies", "decode_graph_node"),
            ("pageable-memcpy", "decode_pathologies", "decode_graph_node"),
            ("tail-outlier", "decode_pathologies", "decode_graph_node"),
            ("dynamic-shapes", "decode_pathologies", "decode_graph_node"),
            ("profiler-inflation", "decode_graph_node", "decode_eager"),
            ("graph-trace-not-node", "decode_graph_graph", "decode_graph_node"),
        ]
    ],
)
def test_finding_on_real_traces(fid, has, lacks):
    assert fid in ids(report_of(T(has)))
    assert fid not in ids(report_of(T(lacks)))


@pytest.mark.finding("module-loading-in-window")
@needs_shared
def test_module_loading_only_when_loading_is_in_the_window():
    assert "module-loading-in-window" in ids(report_of(T("decode_pathologies"), whole_trace=True))
    assert "module-loading-in-window" not in ids(report_of(T("decode_pathologies")))


@pytest.mark.finding("sync-memcpy", "sync-memset")
def test_sync_copies_and_memsets(edited):
    d = diagnose_trace(open_trace(edited("sync-copies")), RULES)
    assert "sync-memcpy" in ids(d) and "sync-memset" in ids(d)
    assert finding(d, "sync-memcpy").evidence["in_steps"] >= 16
    clean = diagnose_trace(open_trace(SAMPLE), RULES)
    assert "sync-memcpy" not in ids(clean) and "sync-memset" not in ids(clean)


@pytest.mark.finding("alloc-churn")
def test_alloc_churn(edited):
    d = diagnose_trace(open_trace(edited("alloc")), RULES)
    churn = finding(d, "alloc-churn")
    assert churn.evidence["in_steps"] >= 16
    assert churn.cost_ns is not None and churn.severity == severity_of(churn.cost_share)
    assert "alloc-churn" not in ids(diagnose_trace(open_trace(SAMPLE), RULES))


@pytest.mark.finding("no-kernels")
def test_no_kernels(edited):
    d = diagnose_trace(open_trace(edited("no-kernels")), RULES)
    assert ids(d)[0] == "no-kernels"
    assert "no-kernels" not in ids(diagnose_trace(open_trace(SAMPLE), RULES))


@pytest.mark.finding("profiler-dropped-data")
def test_profiler_dropped_data(edited):
    assert "profiler-dropped-data" in ids(diagnose_trace(open_trace(SAMPLE), RULES))
    assert "profiler-dropped-data" not in ids(diagnose_trace(open_trace(edited("no-diagnostics")), RULES))


@pytest.mark.finding("tail-systematic")
@needs_shared
def test_systematic_tail_on_a_stretched_kernel():
    """Every 20th instance of the gate/up GEMV made 1.8x slower gives a systematic tail; the original has none."""
    trace = open_trace(T("decode_graph_node"))
    info, frames = describe(trace), TraceFrames(trace)
    target = "nvjet_sm90_tst_128x8_64x12_2x1_v_bz_TNT"

    def run(kernels: pl.DataFrame) -> list[str]:
        d = diagnose(
            kernels,
            frames.api,
            frames.memcpy,
            frames.gpu_parts,
            frames.nvtx,
            0,
            info.capture,
            [],
            frames.overhead,
            {},
            RULES,
        )
        return ids(d)

    assert "tail-systematic" not in run(frames.kernels)
    k = frames.kernels.with_row_index("_i")
    slow = (pl.col("name") == target) & (pl.col("_i") % 20 == 0)
    stretched = k.with_columns(pl.when(slow).then((pl.col("dur") * 1.8).cast(pl.Int64)).otherwise("dur").alias("dur"))
    stretched = stretched.with_columns((pl.col("start") + pl.col("dur")).alias("end")).drop("_i")
    assert "tail-systematic" in run(stretched)


def test_every_catalogued_finding_is_tested() -> None:
    """Every finding of the catalogue has a test that shows it raised (``@pytest.mark.finding(id)`` on that test,
    collected by conftest.py from every test file), so a new finding without a test fails here."""
    from .conftest import COLLECTED_FILES, FINDING_MARKS

    test_files = {p.name for p in Path(__file__).parent.glob("test_*.py")}
    if test_files != COLLECTED_FILES:
        pytest.skip("needs every test file collected (-k is fine, a file selection is not)")
    unknown, untested = set(FINDING_MARKS) - set(CATALOGUE), set(CATALOGUE) - set(FINDING_MARKS)
    assert not unknown, f"markers of findings the catalogue does not have: {sorted(unknown)}"
    assert not untested, f"findings without a test: {sorted(untested)}"


# ------------------------------------------------------------------------------------------------ outputs


def test_json_schema(capsys):
    assert main(["report", str(SAMPLE), "--format", "json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["schema"] == "nsys-doctor/2"
    for key in (
        "trace",
        "window",
        "steps",
        "kernels",
        "families",
        "findings",
        "diagnosis",
        "next_actions",
        "host",
        "tails",
        "unmapped_kernels",
    ):
        assert key in data
    assert data["window"]["source"] == "structure"
    assert "cudaProfilerApi capture range" in data["window"]["reason"]
    assert data["kind"] == "report"
    run = data["run"]
    assert (run["kind"], run["requests"], run["warmup_requests"]) == ("llm-decode", 1, 0)
    assert (run["prefill_steps"], run["decode_steps"], run["iterations"]) == (1, 16, 0)
    assert run["source"] and run["confidence"] in ("high", "medium", "low")
    assert all("cost_ns" in f and "cost_share" in f for f in data["findings"])
    assert data["families"][0]["family"] == "gemv"
    assert all(set(f) >= {"id", "severity", "title", "summary", "evidence", "action"} for f in data["findings"])
    assert data["steps"]["decode"]["count"] == 16
    assert abs(sum(f["share"] for f in data["families"]) - 1.0) < 1e-9


def test_markdown_and_output_file(tmp_path, capsys):
    out = tmp_path / "report.md"
    assert main(["report", str(SAMPLE), "--format", "markdown", "-o", str(out)]) == 0
    text = out.read_text()
    assert text.startswith("## nsys-doctor report")
    assert "### Diagnosis" in text and "| GEMV | gemv |" in text
    capsys.readouterr()


def test_terminal_report_leads_with_window_and_diagnosis(capsys):
    assert main(["report", str(SAMPLE)]) == 0
    out = capsys.readouterr().out
    lines = out.splitlines()
    assert lines[2].startswith("Window ") and "cudaProfilerApi capture range" in lines[2]
    assert any(line.startswith("Run     LLM decode; 1 measured request") for line in lines[3:6]), lines[:6]
    assert "Diagnosis" in out and "GEMV kernels take" in out
    assert "\x1b[" not in out  # no colour codes when not writing to a terminal


def test_window_options(capsys):
    d = diagnose_trace(open_trace(SAMPLE), RULES, filter_nvtx="decode_step/3")
    assert d.window.source == "user" and d.steps.count == 1
    assert main(["report", str(SAMPLE), "--window", "20ms/40ms", "--format", "json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert (data["window"]["start_ns"], data["window"]["end_ns"]) == (20_000_000, 40_000_000)
    assert main(["report", str(SAMPLE), "--window", "1s/2s", "--whole-trace"]) == 2


def test_user_ops_file_overrides(tmp_path, capsys):
    rules = tmp_path / "ops.toml"
    rules.write_text('[[rule]]\npattern = "^nvjet_"\nfamily = "my-linear"\ncategory = "GEMM"\nop = "linear"\n')
    assert main(["report", str(SAMPLE), "--ops", str(rules), "--format", "json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["families"][0]["family"] == "my-linear"


@needs_shared
@pytest.mark.parametrize(
    "path",
    sorted(TRACES.glob("*.sqlite"))
    + sorted(TRACES.glob("multigpu/*.sqlite"))
    + sorted(TRACES.glob("external/*/*.sqlite")),
    ids=lambda p: p.name,
)
def test_report_runs_on_every_shared_trace(path):
    d = report_of(path)
    data = json.loads(render_json(d))
    assert (data["schema"], data["kind"]) == ("nsys-doctor/2", "report")
    assert "schema" not in d.to_dict()  # to_dict() is the payload; the envelope is the serializer's
    assert d.window.end > d.window.start
    assert d.families.height > 0
    assert d.next_actions


def test_project_config_rules(tmp_path, monkeypatch, capsys):
    (tmp_path / "my_ops.toml").write_text(
        '[[rule]]\npattern = "^nvjet_"\nfamily = "file-linear"\ncategory = "GEMM"\nop = "linear"\n'
    )
    (tmp_path / "pyproject.toml").write_text('[tool.nsys-doctor]\nops = "my_ops.toml"\n')
    sub = tmp_path / "work"
    sub.mkdir()
    monkeypatch.chdir(sub)  # found from a subdirectory, path relative to the config file
    assert main(["report", str(SAMPLE), "--format", "json"]) == 0
    assert json.loads(capsys.readouterr().out)["families"][0]["family"] == "file-linear"
    (tmp_path / "nsys-doctor.toml").write_text(
        '[[ops-rule]]\npattern = "^nvjet_"\nfamily = "inline-linear"\ncategory = "GEMV"\nop = "linear"\n'
    )
    assert main(["report", str(SAMPLE), "--format", "json"]) == 0
    assert json.loads(capsys.readouterr().out)["families"][0]["family"] == "inline-linear"
    (tmp_path / "nsys-doctor.toml").write_text(
        "[[ops-rule]]\npattern = '('\nfamily = 'x'\ncategory = 'GEMV'\nop = 'y'\n"
    )
    code = main(["report", str(SAMPLE)])
    err = capsys.readouterr().err
    assert code == 2 and "nsys-doctor.toml" in err and len(err.strip().splitlines()) == 1


def test_tails_by_base_name_and_grid(capsys):
    assert main(["report", str(SAMPLE), "--format", "json"]) == 0
    tails = json.loads(capsys.readouterr().out)["tails"]
    assert {"kernels", "kernels_by_base_name", "kernels_by_grid", "api"} <= set(tails)
    assert all("grid" in r for r in tails["kernels_by_grid"])
    names = {r["name"] for r in tails["api"]}
    assert "cudaGraphLaunch_v10000" in names


MODEL = Path(__file__).resolve().parent / "data" / "llama_mini_config.json"


@needs_shared
def test_report_with_model_adds_roofline(capsys):
    assert main(["report", str(T("decode_graph_node")), "--model", str(MODEL), "--format", "json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["roofline"]["model"]["bytes_per_token"] == 2_471_493_632
    assert len(data["roofline"]["decode"]["shapes"]) == 5
    found = {f["id"]: f for f in data["findings"]}
    assert "LM head" in found["gemv-near-bandwidth-limit"]["summary"]
    assert "down" in found["gemv-bandwidth-headroom"]["summary"]
    assert any("GEMV" in a for a in data["next_actions"])


@needs_shared
def test_report_with_a_model_that_does_not_fit(capsys):
    # decode_pathologies runs 8 layers; the 16-layer config does not fit: a note, no wrong numbers, exit 0
    assert main(["report", str(T("decode_pathologies")), "--model", str(MODEL), "--format", "json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["roofline"] is None
    assert any(n.startswith("roofline skipped: model llama_mini_config.json does not fit") for n in data["notes"])
    assert not any(f["id"].startswith("gemv-") for f in data["findings"])


def test_report_shows_unprofiled_timing_from_the_capture_record(capsys):
    trace = Path(__file__).resolve().parent / "data" / "capture_decode.sqlite"
    assert main(["report", str(trace)]) == 0
    out = capsys.readouterr().out
    assert "Timing  unprofiled per_token_ms: 2.538ms" in out
    assert main(["report", str(trace), "--format", "json"]) == 0
    timing = json.loads(capsys.readouterr().out)["timing"]
    assert timing["baseline"]["value"] == 2.538 and timing["inflation"] > 20


def test_window_outside_the_trace_is_an_error(capsys):
    assert main(["report", str(SAMPLE), "--window", "100s/200s"]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "holds no events" in err and "--window" in err
    assert main(["report", str(SAMPLE), "--window", "5/1"]) == 2
    assert "bad --window" in capsys.readouterr().err


@needs_shared
def test_a_kernel_slow_in_every_step_is_not_an_outlier():
    # the long-context trace's repeat_interleave copies are slow in every decode step (a cost that grows with the
    # cache), not a rare outlier; the prefill's own instances are not counted in decode tails
    d = report_of(T("ctx_long_graph_node"))
    assert "tail-outlier" not in ids(d)
    copies = d.kernel_tails.filter(pl.col("label") == "elementwise_kernel<direct_copy_kernel_cuda>").row(0, named=True)
    assert copies["slow_step_share"] > 0.9
    pathology = report_of(T("decode_pathologies")).kernel_tails.row(0, named=True)
    assert pathology["label"] == "vectorized_elementwise_kernel<MulFunctor>" and pathology["slow_step_share"] < 0.1


def test_one_percent_formatter():
    from nsys_doctor.report.compare_text import change
    from nsys_doctor.report.diagnosis_text import pct

    assert pct(0.1234) == "12.3%" and pct(0.1234, 0) == "12%" and pct(1) == "100.0%"
    assert pct(12.5, 0, scale=1.0) == "12%" and change(4.0) == "+4.0%" and change(-0.25) == "-0.2%"
    assert pct(None) == pct("x") == pct(True) == change(None) == "-"


def test_fp32_gemms_on_the_cuda_cores_are_told_to_use_tensor_cores() -> None:
    """GEMMs that run mostly in cuBLAS's FP32 SIMT kernels (sgemm, ffma) get the TF32/BF16 advice, not "try FP8"
    (an A100 has no FP8, and a model left in FP32 leaves its tensor cores idle)."""
    from nsys_doctor.analysis.diagnosis import FAMILY_ADVICE, _gemm_advice

    def kernels(rows: list[tuple[str, str, int]]) -> pl.DataFrame:
        return pl.DataFrame(rows, schema={"name": pl.Utf8, "family": pl.Utf8, "total": pl.Int64}, orient="row")

    simt = kernels(
        [
            ("ampere_sgemm_128x32_tn", "gemm", 600),
            ("sm80_xmma_gemm_f32f32_f32f32_f32_tn_n_tilesize128x128x8_stage3_warpsize2x2x1_ffma_aligna4", "gemm", 300),
            ("sm80_xmma_gemm_f32f32_tf32f32_f32_tn_n_tilesize128x128x16_stage3", "gemm", 100),
            ("void at::native::vectorized_elementwise_kernel<4>", "elementwise", 5000),
        ]
    )
    advice = _gemm_advice(simt)
    assert advice is not None and "TF32" in advice and "FP8" not in advice
    assert "90% of its time" in advice and "ampere_sgemm_128x32_tn" in advice
    tensor = kernels([("nvjet_sm90_tst_256x8_64x6_2x1_v_bz_TNT", "gemm", 900), ("ampere_sgemm_128x32_tn", "gemm", 100)])
    assert _gemm_advice(tensor) is None  # the stock advice stands
    assert "FP8" in FAMILY_ADVICE["gemm"]
    assert _gemm_advice(kernels([("k", "elementwise", 10)])) is None


def test_long_elementwise_kernels_are_not_called_many_small_ones() -> None:
    """The elementwise advice speaks of the bytes streamed when the family's kernels average 50 us or more, of many
    small kernels otherwise (the stock advice)."""
    from nsys_doctor.analysis.diagnosis import LONG_ELEMENTWISE_NS, _long_elementwise

    def fam(rows: list[tuple[str, int, int]]) -> pl.DataFrame:
        return pl.DataFrame(rows, schema={"family": pl.Utf8, "total": pl.Int64, "count": pl.Int64}, orient="row")

    assert _long_elementwise(fam([("conv", 9_000_000, 10), ("elementwise", LONG_ELEMENTWISE_NS * 40, 40)]))
    assert not _long_elementwise(fam([("elementwise", LONG_ELEMENTWISE_NS * 40 - 1, 40)]))
    assert not _long_elementwise(fam([("conv", 9_000_000, 10)]))  # no elementwise work
    assert not _long_elementwise(fam([("elementwise", 0, 0)]))
    assert not _long_elementwise(fam([]))


def test_a_kernel_launched_more_often_in_some_steps_has_no_dynamic_shape():
    # 6 steps of 1 ms: "fill" runs once in even steps and twice in odd ones, always over 16 blocks (its work varies,
    # not its shape); "copy" runs once per step over 8 blocks, then 16 from step 3 on (its shape changes)
    from nsys_doctor.analysis.diagnosis import _dynamic_shapes

    rows = []
    for i in range(6):
        t = i * 1_000_000
        rows.append(("fill", 16, t + 100))
        if i % 2:
            rows.append(("fill", 16, t + 200))
        rows.append(("copy", 8 if i < 3 else 16, t + 300))
    lk = pl.DataFrame(
        {
            "name": [r[0] for r in rows],
            "gridX": [r[1] for r in rows],
            "gridY": [1] * len(rows),
            "gridZ": [1] * len(rows),
            "l_start": [r[2] for r in rows],
            "start": [r[2] + 50 for r in rows],
        }
    )
    steps = pl.DataFrame({"idx": list(range(6)), "start": [i * 1_000_000 for i in range(6)]}).with_columns(
        (pl.col("start") + 999_999).alias("end")
    )
    labels = pl.DataFrame({"name": ["fill", "copy"], "label": ["fill", "copy"]})
    out = _dynamic_shapes(lk, steps, labels)
    assert out.select("name", "signatures", "grids").rows() == [("copy", 2, 2)]
