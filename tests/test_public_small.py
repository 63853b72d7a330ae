"""Plain CUDA programs from public repositories (tests/data/public/README.md): the window holds the launch of its
first kernel and ends with the work (not with the teardown), CUDA context creation is set-up rather than
allocation churn, a trace whose launches were traced but whose GPU activity was not says so, no graph-level
warning without graph launches, per-op NVTX markers are not steps. Every expected number is
read from the trace with SQL or from what the program does, never from the tool."""

from __future__ import annotations

import contextlib
import io
import json
import sqlite3
from pathlib import Path

import pytest

from nsys_doctor.cli.main import main

from .conftest import DATA, TRACES, needs_shared

PUBLIC = DATA / "public"
VECADD = PUBLIC / "p4arth_vecadd_report1.sqlite"
WAVE = PUBLIC / "jorgedavyd_wave_report1.sqlite"
WSL = PUBLIC / "haroonsyed_sgemm_wsl_report1.sqlite"


def _sql(path: Path, query: str) -> list[tuple]:
    with contextlib.closing(sqlite3.connect(f"file:{path}?mode=ro", uri=True)) as c:
        return c.execute(query).fetchall()


def _run(*argv: str) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        rc = main(list(argv))
    return rc, out.getvalue(), err.getvalue()


def _report(path: Path) -> dict:
    rc, out, err = _run("report", str(path), "--format", "json", "--no-cache")
    assert rc == 0, err
    return json.loads(out)


def _calls(path: Path, like: str) -> list[tuple[int, int]]:
    return _sql(
        path,
        "SELECT r.start, r.end FROM CUPTI_ACTIVITY_KIND_RUNTIME r JOIN StringIds s ON s.id = r.nameId "
        f"WHERE s.value LIKE '{like}' ORDER BY r.start",
    )


def test_the_window_holds_the_launch_of_its_first_kernel() -> None:
    (k_start,) = _sql(VECADD, "SELECT start FROM CUPTI_ACTIVITY_KIND_KERNEL")[0]
    ((l_start, _),) = _calls(VECADD, "cudaLaunchKernel%")
    assert l_start < k_start  # the launch call starts before its kernel: a window from the kernel misses it
    d = _report(VECADD)
    assert d["window"]["start_ns"] <= l_start
    assert d["host"]["launches"] == 1
    assert d["steps"]["count"] == 1 and d["steps"]["per_step"][0]["launches"] == 1


def test_context_creation_is_set_up_not_allocation_churn() -> None:
    mallocs = _calls(WAVE, "cudaMalloc%")
    first_end = mallocs[0][1]
    assert mallocs[0][1] - mallocs[0][0] > 80_000_000  # the context's creation: 85.6 ms
    d = _report(WAVE)
    assert d["window"]["start_ns"] >= first_end
    churn = [f for f in d["findings"] if f["id"] == "alloc-churn"]
    # what is left: one cudaMalloc and two cudaFree, well under a millisecond
    assert all(f["cost_ns"] < 1_000_000 for f in churn), churn
    assert not any("graph" in m for m in d["trace"]["missing"])  # graph-level capture, but no graph was launched


def test_launches_without_gpu_activity_say_so() -> None:
    launches = len(_calls(WSL, "cudaLaunch%"))
    assert launches == 192
    rc, out, err = _run("info", str(WSL))
    assert rc == 0, err
    assert "no CUDA kernels although kernel launches were traced" in out and "--trace=cuda" not in out
    d = _report(WSL)
    (finding,) = [f for f in d["findings"] if f["id"] == "no-kernels"]
    assert f"although {launches} kernel launches were traced in it" in finding["summary"]


def test_a_skipped_report_writes_no_file(tmp_path: Path) -> None:
    dest = tmp_path / "kern.csv"
    rc, out, err = _run("stats", str(WSL), "-r", "cuda_gpu_kern_sum", "--format", "csv", "-o", str(dest))
    assert rc == 0 and out == "" and "SKIPPED" in err and "wrote" not in err
    assert not dest.exists()


@needs_shared
@pytest.mark.parametrize("name", ["llama3inf_demo.sqlite", "llama3inf_real_inference_simulation.sqlite"])
def test_no_graph_warning_without_graph_launches(name: str) -> None:
    path = TRACES / "public" / name
    assert _calls(path, "%GraphLaunch%") == []
    assert not any("graph" in m for m in _report(path)["trace"]["missing"])


def test_copies_on_top_are_never_passed_over_for_one_kernel() -> None:
    """A copy-bound run leads with its copies: the one-kernel lever (a kernel of another family that outweighs the
    top family's own largest kernel) compares kernels, and copies are not kernels (a CUTLASS benchmark: copies 62.6%
    of GPU time, one GEMM 37.4%)."""
    import polars as pl

    from nsys_doctor.analysis.diagnosis import _single_kernel_lever

    fam = pl.DataFrame(
        {"family": ["memcpy", "gemm"], "category": ["memcpy / memset", "GEMM"], "total": [626, 374], "kernels": [0, 1]}
    )
    kernels = pl.DataFrame({"name": ["Kernel"], "label": ["Kernel"], "family": ["gemm"], "total": [374]})
    assert _single_kernel_lever(fam, kernels) is None
    # the same numbers with a kernel family on top: the lever is the GEMM kernel
    lever = _single_kernel_lever(fam.with_columns(pl.Series("family", ["elementwise", "gemm"])), kernels)
    assert lever is not None and lever[0]["name"] == "Kernel" and lever[1]["family"] == "gemm"


@needs_shared
def test_per_op_markers_are_not_steps() -> None:
    """DLProf's per-op NVTX ranges are serialized dicts ("{'traceMarker': [... /forward ...]}"): annotations of one
    operation each, never steps (../shared/traces/public/README.md); the PyTorch CNN's time is its convolutions."""
    path = TRACES / "public" / "dlprof_nsys_profile_a.sqlite"
    names = _sql(path, "SELECT count(*) FROM NVTX_EVENTS WHERE text LIKE '{''traceMarker''%forward%'")
    assert names[0][0] > 0
    d = _report(path)
    assert d["window"]["source"] != "nvtx-steps" and not d["steps"]["source"].startswith("nvtx")
    assert d["diagnosis"]["family"] == "conv"


def test_teardown_after_the_last_gpu_operation_is_not_in_the_window() -> None:
    """``./wave`` frees its buffers after its kernel and copy back: those calls start after the GPU's last
    operation, and the window (found from data) ends with the work, not with the teardown."""
    (last_gpu,) = _sql(
        WAVE,
        "SELECT max(e) FROM (SELECT max(end) e FROM CUPTI_ACTIVITY_KIND_KERNEL UNION ALL "
        "SELECT max(end) FROM CUPTI_ACTIVITY_KIND_MEMCPY)",
    )[0]
    frees = [(a, b) for a, b in _calls(WAVE, "cudaFree%") if a > last_gpu]
    assert len(frees) == 2
    d = _report(WAVE)
    assert d["window"]["end_ns"] < frees[0][0]
    assert not any(f["id"] == "alloc-churn" for f in d["findings"])


@pytest.mark.parametrize(
    ("recorded", "shown"),
    [("5154304", "515.43.04"), ("5509007", "550.90.07"), ("535.129.03", "535.129.03"), ("", ""), ("12345", "12345")],
)
def test_driver_version_as_written(recorded: str, shown: str) -> None:
    from nsys_doctor.trace.meta import driver_text

    assert driver_text(recorded) == shown


@needs_shared
def test_info_shows_an_old_export_s_driver_dotted() -> None:
    path = TRACES / "public" / "dlprof_nsys_profile_a.sqlite"
    assert _sql(path, "SELECT value FROM TARGET_INFO_SYSTEM_ENV WHERE name = 'NvDriverVersion'") == [("5154304",)]
    rc, out, err = _run("info", str(path))
    assert rc == 0 and "driver 515.43.04" in out, err


TRT = PUBLIC / "realcugan_trt_profile.sqlite"


def test_a_tensorrt_engine_is_read_as_its_convolutions() -> None:
    # RealCUGAN super-resolution with TensorRT on an RTX 2080 Ti: its convolutions are cuDNN tensor-core kernels
    # built by TensorRT with the ReLU fused ("trt_turing_h1688cudnn_..._relu_...") and implicit-GEMM (de)convolutions;
    # they were read as activations ("fuse them into the convolution epilogue": they are the convolution)
    conv_like = "(s.value LIKE '%cudnn%' OR s.value LIKE '%xmma_fprop%' OR s.value LIKE '%xmma_deconv%')"
    ((conv_ns, all_ns),) = _sql(
        TRT,
        f"SELECT sum(CASE WHEN {conv_like} THEN k.end - k.start ELSE 0 END), sum(k.end - k.start) "
        "FROM CUPTI_ACTIVITY_KIND_KERNEL k JOIN StringIds s ON s.id = k.shortName",
    )
    assert conv_ns > all_ns / 2  # most of the GPU's kernel time is convolutions (SQL, whole trace)
    d = _report(TRT)
    assert d["diagnosis"]["family"] == "conv"
    assert d["next_actions"][0].startswith("convolutions dominate")
    assert all(k["family"] == "conv" for k in d["kernels"] if "cudnn" in k["name"] or "xmma_fprop" in k["name"])
    assert "activation" not in {f["family"] for f in d["families"]}
    # TensorRT's own pointwise fusions and reformat / pad kernels are elementwise work, not unmapped
    by_name = {k["short"]: k for k in d["kernels"]}
    assert by_name["generatedNativePointwise"]["family"] == "elementwise"
    assert by_name["pad"]["op"] == "reformat / pad / slice (TensorRT)"
    # they are long (SQL: 0.55 ms at the median for the pointwise fusions over a super-resolution image), so the
    # elementwise advice is about the bytes they stream, not about many small launches
    pointwise = "FROM CUPTI_ACTIVITY_KIND_KERNEL k JOIN StringIds s ON s.id = k.shortName WHERE s.value = "
    pointwise += "'generatedNativePointwise'"
    ((median_ns,),) = _sql(
        TRT, f"SELECT k.end - k.start AS d {pointwise} ORDER BY d LIMIT 1 OFFSET (SELECT count(*) / 2 {pointwise})"
    )
    assert median_ns > 500_000
    elementwise = [a for a in d["next_actions"] if "elementwise" in a]
    assert len(elementwise) == 1 and "elementwise kernels are long here" in elementwise[0], d["next_actions"]
    assert "many small elementwise kernels" not in " ".join(d["next_actions"])
