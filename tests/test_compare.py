"""Comparing traces: significance on synthetic distributions, diff and scaling on the real traces, the gate."""

from __future__ import annotations

import json
import random

import pytest

from nsys_doctor.analysis.compare import Profile, Row, api_key, diff_profiles, gate, mann_whitney_p
from nsys_doctor.cli.main import main

from .conftest import SAMPLE, TRACES, needs_shared


def T(name: str) -> str:
    return str(TRACES / f"{name}.sqlite")


# ------------------------------------------------------------------------------------------- significance


def test_mann_whitney_same_distribution_is_not_significant():
    rng = random.Random(1)
    a = [rng.gauss(1000, 50) for _ in range(200)]
    b = [rng.gauss(1000, 50) for _ in range(200)]
    assert mann_whitney_p(a, b) > 0.05


def test_mann_whitney_shifted_distribution_is_significant():
    rng = random.Random(2)
    a = [rng.gauss(1000, 50) for _ in range(200)]
    b = [rng.gauss(1030, 50) for _ in range(200)]  # +3%, 0.6 sigma
    assert mann_whitney_p(a, b) < 1e-4


def test_mann_whitney_known_value():
    # two disjoint samples of 5: U = 0, z = -12.5 / sqrt(25 * 11 / 12) = -2.611, two-sided p = 0.00902
    # (normal approximation without continuity correction; the exact p is 0.0079)
    p = mann_whitney_p([1, 2, 3, 4, 5], [6, 7, 8, 9, 10])
    assert abs(p - 0.009023) < 1e-5
    assert mann_whitney_p([1, 1, 1], [1, 1, 1]) == 1.0  # all ties: no evidence


def _profile(values: list[int], name: str = "k") -> Profile:
    row = Row(
        key=name,
        family="gemv",
        category="GEMV",
        count=len(values),
        total=sum(values),
        per_step=values,
        sample=sorted(values),
    )
    return Profile(
        source=name,
        context_tokens=None,
        prompt_len=None,
        steps=len(values),
        step_kind="decode",
        step_wall=[v + 100 for v in values],
        step_gpu=values,
        step_launches=[1] * len(values),
        step_graph_launches=[0] * len(values),
        kernels={"name": {name: row}, "family": {"gemv": row}},
    )


def test_diff_and_gate_on_synthetic_profiles():
    rng = random.Random(3)
    base = [int(rng.gauss(100_000, 2_000)) for _ in range(100)]
    same = [int(rng.gauss(100_000, 2_000)) for _ in range(100)]
    slower = [int(rng.gauss(110_000, 2_000)) for _ in range(100)]
    quiet = diff_profiles(_profile(base), _profile(same))
    assert not quiet.headline.gpu_significant and not quiet.explaining()
    assert gate(quiet, 5).passed
    loud = diff_profiles(_profile(base), _profile(slower))
    assert loud.headline.gpu_significant and 8 < loud.headline.gpu_delta_pct < 12
    assert [r.key for r in loud.explaining()] == ["k"]
    assert not gate(loud, 5).passed and gate(loud, 15).passed
    assert not gate(loud, 50, {"gemv": 5}).passed  # a family threshold fails on its own


def test_api_version_suffixes():
    assert api_key("cudaLaunchKernel_v7000") == "cudaLaunchKernel"
    assert api_key("cudaStreamGetCaptureInfo_v2_v11030") == "cudaStreamGetCaptureInfo"
    assert api_key("cuGetProcAddress_v2") == "cuGetProcAddress"


# ---------------------------------------------------------------------------------------------- real traces


def _json(capsys, args: list[str]) -> tuple[int, dict]:
    code = main(args)
    return code, json.loads(capsys.readouterr().out)


@needs_shared
def test_same_workload_twice_is_no_change(capsys):
    code, d = _json(capsys, ["diff", T("decode_graph_node"), T("decode_graph_stop"), "--gate", "5", "--format", "json"])
    assert code == 0
    assert d["gate"]["passed"] is True
    assert d["headline"]["gpu_significant"] is False
    assert d["explaining"] == []
    assert not any(r["significant"] for r in d["rows"] + d["families"])


@needs_shared
def test_graphs_vs_eager_is_a_host_side_change(capsys):
    code, d = _json(capsys, ["diff", T("decode_graph_node"), T("decode_eager"), "--format", "json"])
    assert code == 0
    h = d["headline"]
    assert abs(h["gpu_delta_pct"]) < 3 and not h["gpu_significant"]  # same kernels, same GPU time per step
    assert h["step_time_significant"] and h["step_time_delta_pct"] > 300  # but the steps take far longer
    assert h["before_graph_launches_per_step"] == 1.0 and h["after_graph_launches_per_step"] == 0.0
    assert h["after_launches_per_step"] > 600
    explaining = {r["key"] for r in d["explaining"]}
    assert {"cudaLaunchKernel", "cudaGraphLaunch"} <= explaining


@needs_shared
def test_gate_fails_on_a_real_regression(capsys):
    # short context -> long context: GPU time per decode step grows ~19%, a regression for the gate
    code = main(["diff", T("decode_graph_node"), T("ctx_long_graph_node"), "--gate", "5"])
    out = capsys.readouterr().out
    assert code == 1
    assert "gate (5%): FAIL" in out


def test_gate_bad_input_exits_2(capsys, tmp_path):
    assert main(["diff", str(SAMPLE), str(tmp_path / "missing.sqlite"), "--gate", "5"]) == 2
    assert main(["diff", str(SAMPLE)]) == 2  # one trace and no baseline
    capsys.readouterr()


@needs_shared
def test_scaling_flags_non_attention_growth(capsys):
    code, s = _json(capsys, ["scaling", T("decode_graph_node"), T("ctx_long_graph_node"), "--format", "json"])
    assert code == 0
    assert s["contexts"][0] < 100 < 2000 < s["contexts"][1]
    fam = {r["key"]: r for r in s["families"]}
    assert fam["attention"]["status"] == "scales (expected)"  # kernel names differ: matched by family
    assert fam["attention"]["per_step"][1] > fam["attention"]["per_step"][0] * 1.3
    for flat in ("norm", "rope", "kv-cache", "sampling", "activation", "embedding"):
        assert fam[flat]["status"] == "flat", flat
    inv = {r["key"]: r for r in s["investigate"] if r["kind"] == "kernel"}
    assert "elementwise_kernel<direct_copy_kernel_cuda>" in inv  # the repeat_interleave copies
    gate_up = inv["nvjet_sm90_tst_128x8_64x12_2x1_v_bz_TNT"]
    assert 1.15 < gate_up["per_step"][1] / gate_up["per_step"][0] < 1.25  # 26.1 -> 31.4 us per instance
    assert all(r["family"] != "attention" for r in s["investigate"])


@needs_shared
def test_scaling_excludes_the_prefill(capsys):
    _, s = _json(capsys, ["scaling", T("decode_graph_node"), T("ctx_long_graph_node"), "--format", "json"])
    fam = {r["key"]: r for r in s["families"]}
    # the 2048-token prefill runs GEMMs; decode steps run none, so GEMM must not appear per decode step
    assert "gemm" not in fam


def test_baselines(capsys, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert main(["baseline", "save", "main", str(SAMPLE)]) == 0
    saved = tmp_path / ".nsys-doctor" / "baselines" / "main.json"
    assert saved.is_file() and saved.stat().st_size < 2_000_000
    assert json.loads(saved.read_text())["schema"] == "nsys-doctor-profile/1"
    assert main(["diff", "--baseline", "main", str(SAMPLE), "--gate", "5"]) == 0
    out = capsys.readouterr().out
    assert "gate (5%): PASS" in out
    assert main(["diff", "--baseline", "nope", str(SAMPLE)]) == 2
    assert "no baseline named 'nope'" in capsys.readouterr().err
    assert main(["baseline", "save", "bad/name", str(SAMPLE)]) == 2


@pytest.mark.parametrize("level", ["name", "base", "family"])
def test_diff_levels(capsys, level):
    code, d = _json(capsys, ["diff", str(SAMPLE), str(SAMPLE), "--by", level, "--format", "json"])
    assert code == 0 and d["level"] == level
    assert all(r["delta_per_step"] == 0 for r in d["rows"])


@needs_shared
def test_refuses_what_cannot_be_compared(capsys):
    # a graph-level capture has no kernels inside its graphs: comparing per-step kernel time would be a lie
    assert main(["diff", T("decode_graph_node"), T("decode_graph_graph")]) == 2
    assert "--cuda-graph-trace=node" in capsys.readouterr().err
    # two traces at the same context length give no scaling
    assert main(["scaling", T("decode_graph_node"), T("decode_eager")]) == 2
    assert "same context length" in capsys.readouterr().err
