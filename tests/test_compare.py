"""Comparing traces: significance on synthetic distributions, diff and scaling on the real traces, the gate."""

from __future__ import annotations

import dataclasses
import json
import random

import pytest

from nsys_doctor.analysis.compare import Profile, Row, StepTotals, api_key, diff_profiles, gate, mann_whitney_p
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


def test_step_totals_are_a_compact_sequence_of_ints():
    import pickle

    import numpy as np

    big = 3 * 10**15  # beyond a float's exact integers: kept exactly
    t = StepTotals([5, 0, big])
    assert len(t) == 3 and t[2] == big and type(t[0]) is int and all(type(v) is int for v in t)
    assert t == [5, 0, big] and t == (5, 0, big) and t != [5, 0] and t != [5, 0, big + 1] and t != "abc"
    assert t[1:] == [0, big] and isinstance(t[1:], StepTotals)
    assert np.asarray(t).dtype == np.int64 and np.asarray(t).nbytes == 24
    with pytest.raises(ValueError):
        np.asarray(t)[0] = 1  # read-only: a profile's rows are values
    assert pickle.loads(pickle.dumps(t)) == t
    with pytest.raises(ValueError):
        StepTotals([[1, 2]])
    row = Row("k", "gemm", "GEMM", 2, 5, [2, 3], [2, 3])
    assert isinstance(row.per_step, StepTotals) and row.to_dict()["per_step"] == [2, 3]
    assert type(row.to_dict()["per_step"]) is list


def test_profile_json_and_pickle_round_trip_keep_the_step_totals():
    import pickle

    import nsys_doctor.api as nd

    with nd.open(SAMPLE) as s:
        p = s.profile(str(SAMPLE))
    rows = [r for level in p.kernels.values() for r in level.values()]
    assert rows and all(isinstance(r.per_step, StepTotals) and len(r.per_step) == p.steps for r in rows)
    # per step totals add up to each row's total where every instance falls in a step
    assert any(sum(r.per_step) == r.total > 0 for r in rows)
    back = Profile.from_dict(json.loads(json.dumps(p.to_dict())))
    assert back.to_dict() == p.to_dict() and back == p
    assert pickle.loads(pickle.dumps(p)) == p


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


# ------------------------------------------------------------------------------------- a gate that can fail

PUBLIC = TRACES / "public"


def _emptied(src, dest, *tables: str):
    import shutil
    import sqlite3

    shutil.copy(src, dest)
    con = sqlite3.connect(dest)
    for t in tables:
        con.execute(f"DELETE FROM {t}")
    con.commit()
    con.close()
    return str(dest)


def test_min_p_value_known_values():
    # complete separation of 4 vs 4: z = 8 / sqrt(16 * 9 / 12) = 2.3094, p = erfc(z / sqrt 2) = 0.0209
    from nsys_doctor.analysis.compare import min_p_value

    assert abs(min_p_value(4, 4) - 0.02092) < 1e-4
    assert abs(min_p_value(5, 5) - 0.009023) < 1e-5  # the same value as the disjoint samples above
    assert min_p_value(1, 100) == 1.0


def test_gate_against_a_trace_without_kernels_refuses(capsys, tmp_path):
    zero = _emptied(
        SAMPLE,
        tmp_path / "zero.sqlite",
        "CUPTI_ACTIVITY_KIND_KERNEL",
        "CUPTI_ACTIVITY_KIND_MEMCPY",
        "CUPTI_ACTIVITY_KIND_MEMSET",
    )
    assert main(["diff", "--gate", "5", str(SAMPLE), zero]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "cannot gate" in err and "zero.sqlite" in err
    assert main(["diff", str(SAMPLE), zero]) == 2  # a plain diff against nothing is refused too
    assert "cannot compare" in capsys.readouterr().err
    # nor can a baseline of nothing be saved
    import os

    os.chdir(tmp_path)
    assert main(["baseline", "save", "zero", zero]) == 2
    assert "nothing to compare against" in capsys.readouterr().err
    assert not (tmp_path / ".nsys-doctor" / "baselines" / "zero.json").exists()


def test_gate_refuses_too_few_steps_and_sees_copies(capsys):
    if not PUBLIC.is_dir():
        pytest.skip("../shared/traces/public is not present")
    a, b = str(PUBLIC / "gpu4_report.sqlite"), str(PUBLIC / "gpu4_report2.sqlite")
    assert main(["diff", "--gate", "5", a, b]) == 2
    err = capsys.readouterr().err
    assert "too few for the gate" in err
    code, d = _json(capsys, ["diff", a, b, "--format", "json"])
    assert code == 0
    h = d["headline"]
    # the copies are 94% of GPU time in report2: 8,664,372 + 17,557,631 ns of copies and 1,801,798 ns of kernels
    # (nsys stats cuda_gpu_sum), against 60,127 ns of GPU work in report1; the headline counts the copies
    assert h["after_gpu_per_step"] > 5_000_000 and h["gpu_delta_pct"] > 10_000


def test_gate_refuses_runs_of_different_kinds():
    from nsys_doctor.analysis.compare import comparison_problem

    a = _profile([100] * 20)
    b = dataclasses.replace(_profile([100] * 20), step_kind="all")
    problem = comparison_problem(a, b, 0.01, gating=True)
    assert problem is not None and "differ in kind" in problem[0]
    assert comparison_problem(a, b, 0.01, gating=False) is None
    assert comparison_problem(a, _profile([100] * 20), 0.01, gating=True) is None


@pytest.mark.parametrize(
    ("option", "value"),
    [("--gate", "nan"), ("--gate", "-1"), ("--gate", "inf"), ("--alpha", "5"), ("--alpha", "0"), ("--alpha", "nan"),
     ("--min-effect", "-3"), ("--jobs", "0")],
)  # fmt: skip
def test_diff_option_ranges(capsys, option, value):
    assert main(["diff", str(SAMPLE), str(SAMPLE), option, value]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and option in err


def test_scaling_refuses_negative_contexts(capsys):
    assert main(["scaling", str(SAMPLE), str(SAMPLE), "--ctx", "-1,-5"]) == 2
    assert "bad --ctx" in capsys.readouterr().err


@pytest.mark.parametrize(
    ("content", "expect"),
    [
        ("[1, 2]", "not a JSON object"),
        ('{"schema": "other"}', "schema"),
        ("{", "not a valid nsys-doctor profile"),
        ("\xff\xfe", "not a valid"),
    ],
)
def test_baseline_of_the_wrong_shape(capsys, tmp_path, monkeypatch, content, expect):
    monkeypatch.chdir(tmp_path)
    d = tmp_path / ".nsys-doctor" / "baselines"
    d.mkdir(parents=True)
    (d / "b.json").write_text(content, encoding="utf-8")
    assert main(["diff", "--baseline", "b", str(SAMPLE)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and expect in err


def test_baseline_fields_of_the_wrong_type(capsys, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert main(["baseline", "save", "good", str(SAMPLE)]) == 0
    capsys.readouterr()
    path = tmp_path / ".nsys-doctor" / "baselines" / "good.json"
    good = json.loads(path.read_text())
    for field, bad, named in [
        ("steps", "16", "steps"),
        ("step_gpu", [1, 2], "step_gpu has 2 values"),
        ("step_kind", "weird", "step_kind"),
        ("api", {"cudaLaunchKernel": {"family": "x"}}, "api.cudaLaunchKernel.category"),
    ]:
        path.write_text(json.dumps({**good, field: bad}))
        assert main(["diff", "--baseline", "good", str(SAMPLE)]) == 2, field
        err = capsys.readouterr().err
        assert named in err, (field, err)


def test_baseline_store_never_writes_through_a_symlink(capsys, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    d = tmp_path / ".nsys-doctor" / "baselines"
    d.mkdir(parents=True)
    victim = tmp_path / "victim.txt"
    victim.write_text("keep me")
    (d / "main.json").symlink_to(victim)
    assert main(["baseline", "save", "main", str(SAMPLE)]) == 2
    assert "symlink" in capsys.readouterr().err
    assert victim.read_text() == "keep me"
