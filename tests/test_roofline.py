"""Speed of light per linear-layer shape: model shapes, the GPU table, kernel-to-shape matching and the arithmetic,
checked against hand-computed values from the real traces' golden nsys output."""

from __future__ import annotations

import csv
import gzip
import json
import math
import os
from pathlib import Path

import polars as pl
import pytest

from nsys_doctor.analysis.distribution import percentile
from nsys_doctor.analysis.findings import Finding
from nsys_doctor.analysis.model import WeightFormat, model_from_config, model_from_shapes
from nsys_doctor.analysis.phases import Steps
from nsys_doctor.analysis.roofline import (
    FINDING_TEXT,
    Roofline,
    gpu_table,
    lookup_gpu,
    parse_mapping,
    resolve_peaks,
    roofline,
    roofline_findings,
    tile_check,
)
from nsys_doctor.cli.main import main
from nsys_doctor.cli.roofline import parse_bandwidth, parse_flops, roofline_trace
from nsys_doctor.errors import UsageError
from nsys_doctor.loaders import load_rules, read_model
from nsys_doctor.trace.meta import prompt_length

from .conftest import DATA, GOLDEN, SAMPLE, TRACES, needs_shared, open_trace

RULES = load_rules(None)
CONFIG = DATA / "llama_mini_config.json"
MINI = json.loads(CONFIG.read_text())
PEAK = 3_352_320_000_000  # TARGET_INFO_GPU.memoryBandwidth of the shared traces (B/s)
BYTES_PER_TOKEN = 2_471_493_632  # ../shared/traces/README.md
SHAPES = {  # name: (M, K, weight bytes), from the README's model
    "qkv": (3072, 2048, 3072 * 2048 * 2),
    "o": (2048, 2048, 2048 * 2048 * 2),
    "gate_up": (16384, 2048, 67_108_864),
    "down": (2048, 8192, 2048 * 8192 * 2),
    "lm_head": (128256, 2048, 525_336_576),
}
KERNELS = {  # the cuBLASLt kernel each decode shape runs in decode_graph_node / decode_eager
    "qkv": "nvjet_sm90_tst_64x8_64x16_4x1_v_bz_TNT",
    "o": "nvjet_sm90_tst_64x8_64x16_4x1_v_bz_TNT",
    "gate_up": "nvjet_sm90_tst_128x8_64x12_2x1_v_bz_TNT",
    "down": "nvjet_sm90_tst_64x8_64x16_2x1_v_bz_splitK_TNT + splitKreduce_kernel",
    "lm_head": "nvjet_sm90_tst_384x8_64x4_2x1_v_bz_TNT",
}
_CACHE: dict[tuple, Roofline] = {}


def T(name: str) -> Path:
    return TRACES / f"{name}.sqlite"


def result_of(path: Path, model: Path = CONFIG, **options: object) -> Roofline:
    key = (path, model, tuple(sorted(options.items())))
    if key not in _CACHE:
        _CACHE[key] = roofline_trace(open_trace(path), model, RULES, **options)  # type: ignore[arg-type]
    return _CACHE[key]


def golden_summary(trace: str) -> dict[str, dict[str, float]]:
    """The golden cuda_gpu_kern_sum rows by kernel name."""
    with open(GOLDEN / trace / "stats_cuda_gpu_kern_sum.csv", newline="") as f:
        return {r["Name"]: {k: float(v) for k, v in r.items() if k != "Name"} for r in csv.DictReader(f)}


def golden_launches(trace: str) -> list[tuple[int, int, str, str]]:
    """(start, duration, grid, name) of every kernel in the golden per-launch trace, in start order."""
    path = GOLDEN / trace / "stats_cuda_gpu_trace.csv"
    with gzip.open(f"{path}.gz", "rt", newline="") if not path.exists() else open(path, newline="") as f:
        rows = [
            (int(r["Start (ns)"]), int(r["Duration (ns)"]), f"{r['GrdX']}x{r['GrdY']}x{r['GrdZ']}", r["Name"])
            for r in csv.DictReader(f)
            if r["GrdX"]
        ]
    return sorted(rows)


# ------------------------------------------------------------------------------------------------ model shapes


def test_config_shapes_and_bytes_per_token():
    m = read_model(CONFIG)
    assert m.bytes_per_token == BYTES_PER_TOKEN
    fused = m.layouts[0]
    assert fused.name == "fused QKV, fused gate+up"
    assert [(s.name, s.M, s.K, s.bytes) for s in fused.layers[0]] == [
        (n, *SHAPES[n]) for n in ("qkv", "o", "gate_up", "down")
    ]
    assert [(s.name, s.M, s.K, s.bytes) for s in fused.final] == [("lm_head", *SHAPES["lm_head"])]
    assert fused.kernels_per_step == 16 * 4 + 1
    # the other splits have the same bytes and more kernels
    assert sorted(lay.kernels_per_step for lay in m.layouts) == [65, 81, 97, 113]
    assert {lay.bytes_per_step for lay in m.layouts} == {BYTES_PER_TOKEN}
    split = next(lay for lay in m.layouts if lay.kernels_per_step == 113)
    assert [(s.name, s.M, s.K) for s in split.layers[0]] == [
        ("q", 2048, 2048),
        ("k", 512, 2048),
        ("v", 512, 2048),
        ("o", 2048, 2048),
        ("gate", 8192, 2048),
        ("up", 8192, 2048),
        ("down", 2048, 8192),
    ]
    # 1,946,157,056 B in the layers + 525,336,576 B of LM head (README)
    assert sum(s.bytes for layer in fused.layers for s in layer) == 1_946_157_056


def test_weight_formats():
    assert WeightFormat("bf16").weight_bytes(3072, 2048) == 3072 * 2048 * 2
    assert WeightFormat("fp8").weight_bytes(3072, 2048) == 3072 * 2048
    # int4, group 128: half a byte per weight plus one bf16 scale per group of 128 along K
    assert WeightFormat("int4", 128).weight_bytes(3072, 2048) == 3072 * 2048 // 2 + 3072 * 16 * 2
    assert WeightFormat("int4", 64).weight_bytes(10, 100) == 10 * 100 // 2 + 10 * 2 * 2  # ceil(100 / 64) = 2 groups
    with pytest.raises(UsageError):
        WeightFormat("int4")


def test_dtype_override_and_quantized_configs():
    fp8 = model_from_config(MINI, dtype="fp8")
    lm = fp8.layouts[0].final[0]
    assert (lm.fmt.dtype, fp8.layouts[0].layers[0][0].fmt.dtype) == ("bf16", "fp8")  # the LM head stays bf16
    assert fp8.bytes_per_token == 1_946_157_056 // 2 + 525_336_576
    assert fp8.activation == "fp8"
    awq = model_from_config(MINI | {"quantization_config": {"quant_method": "awq", "bits": 4, "group_size": 128}})
    qkv = awq.layouts[0].layers[0][0]
    assert (qkv.fmt.dtype, qkv.fmt.group_size, qkv.bytes) == ("int4", 128, 3072 * 2048 // 2 + 3072 * 16 * 2)
    assert awq.activation == "bf16"
    g64 = model_from_config(MINI, dtype="int4", group_size=64)
    assert g64.layouts[0].layers[0][0].fmt.group_size == 64
    fp16 = model_from_config(MINI | {"torch_dtype": "float16"})
    assert fp16.fmt.dtype == "fp16" and fp16.bytes_per_token == BYTES_PER_TOKEN


def test_head_dim_and_multimodal_and_mla():
    # Qwen3-style: head_dim given, q = heads x head_dim differs from hidden
    cfg = MINI | {"hidden_size": 2560, "num_attention_heads": 32, "num_key_value_heads": 8, "head_dim": 128}
    layer = model_from_config(cfg).layouts[0].layers[0]
    assert [(s.name, s.M, s.K) for s in layer[:2]] == [("qkv", 4096 + 2 * 1024, 2560), ("o", 2560, 4096)]
    # no head_dim: hidden / heads; no num_key_value_heads: multi-head attention
    plain = {k: v for k, v in MINI.items() if k not in ("head_dim", "num_key_value_heads")}
    assert model_from_config(plain).layouts[0].layers[0][0].M == 3 * 2048
    wrapped = model_from_config({"architectures": ["Gemma3ForConditionalGeneration"], "text_config": MINI})
    assert wrapped.bytes_per_token == BYTES_PER_TOKEN and "text_config" in wrapped.notes[0]
    with pytest.raises(UsageError, match="latent attention"):
        model_from_config(MINI | {"kv_lora_rank": 512})
    with pytest.raises(UsageError, match="hidden_size"):
        model_from_config({k: v for k, v in MINI.items() if k != "hidden_size"})


def test_moe_config():
    # Mixtral-like: 8 experts, 2 per token, experts as separate kernels
    cfg = MINI | {"num_local_experts": 8, "num_experts_per_tok": 2, "intermediate_size": 4096, "num_hidden_layers": 2}
    m = model_from_config(cfg)
    layer = m.layouts[0].layers[0]
    assert [s.name for s in layer] == ["qkv", "o", "router", "expert_gate_up", "expert_down"] * 1 + [
        "expert_gate_up",
        "expert_down",
    ]
    expert = 2 * (2 * 4096 * 2048 * 2 + 2048 * 4096 * 2)  # two active experts: gate+up and down each
    per_layer = SHAPES["qkv"][2] + SHAPES["o"][2] + 8 * 2048 * 2 + expert
    assert m.bytes_per_token == 2 * per_layer + SHAPES["lm_head"][2]
    # Qwen-MoE-like: a shared expert after the routed ones, and a dense first layer
    qwen = MINI | {
        "num_experts": 4,
        "num_experts_per_tok": 1,
        "moe_intermediate_size": 1024,
        "shared_expert_intermediate_size": 2048,
        "mlp_only_layers": [0],
        "num_hidden_layers": 2,
    }
    q = model_from_config(qwen).layouts[0]
    assert [s.name for s in q.layers[0]] == ["qkv", "o", "gate_up", "down"]
    assert [s.name for s in q.layers[1]] == [
        "qkv",
        "o",
        "router",
        "expert_gate_up",
        "expert_down",
        "shared_gate_up",
        "shared_down",
    ]


def test_shapes_toml():
    doc = {
        "layers": 16,
        "shape": [
            {"name": "qkv", "M": 3072, "K": 2048},
            {"name": "o", "M": 2048, "K": 2048},
            {"name": "gate_up", "M": 16384, "K": 2048},
            {"name": "down", "M": 2048, "K": 8192},
            {"name": "lm_head", "M": 128256, "K": 2048, "per_layer": False},
        ],
    }
    m = model_from_shapes(doc)
    assert m.bytes_per_token == BYTES_PER_TOKEN and m.layouts[0].kernels_per_step == 65
    quant = model_from_shapes(
        doc | {"dtype": "int4"} | {"shape": [*doc["shape"][:4], doc["shape"][4] | {"dtype": "bf16"}]}
    )
    assert quant.layouts[0].final[0].fmt.dtype == "bf16" and quant.layouts[0].layers[0][0].fmt.group_size == 128
    two = model_from_shapes({"layers": 1, "shape": [{"name": "e", "M": 8, "K": 8, "count": 3}]})
    assert two.layouts[0].kernels_per_step == 3
    for bad in (
        {"shape": []},
        {"layers": 0, "shape": doc["shape"]},
        {"layers": 1, "shape": [{"name": "x", "M": 1}]},
        {"layers": 1, "shape": [{"name": "x", "M": 1, "K": 1, "rows": 2}]},
        {"layers": 1, "shape": [{"name": "x", "M": 1, "K": 1}, {"name": "x", "M": 1, "K": 1}]},
        {"layer": 1, "shape": doc["shape"]},
    ):
        with pytest.raises(UsageError):
            model_from_shapes(bad)


def test_read_model_files(tmp_path):
    toml = tmp_path / "m.toml"
    toml.write_text('layers = 2\n[[shape]]\nname = "w"\nM = 4\nK = 8\n')
    assert read_model(toml).bytes_per_token == 2 * 4 * 8 * 2
    bad = tmp_path / "bad.json"
    bad.write_text("{not json")
    with pytest.raises(UsageError, match="not valid JSON"):
        read_model(bad)
    with pytest.raises(UsageError, match="cannot read"):
        read_model(tmp_path / "missing.json")


# ------------------------------------------------------------------------------------------------ GPU table


def test_gpu_table_lookup():
    names = {
        "NVIDIA H100 80GB HBM3": "H100 SXM",
        "NVIDIA H100 PCIe": "H100 PCIe",
        "NVIDIA H100 NVL": "H100 NVL",
        "NVIDIA H200": "H200 SXM",
        "NVIDIA H800": "H800 SXM",
        "NVIDIA A100-SXM4-40GB": "A100 40GB SXM",
        "NVIDIA A100-SXM4-80GB": "A100 80GB SXM",
        "NVIDIA A100-PCIE-40GB": "A100 40GB PCIe",
        "NVIDIA A100 80GB PCIe": "A100 80GB PCIe",
        "NVIDIA L40S": "L40S",
        "NVIDIA L4": "L4",
        "NVIDIA A10": "A10",
        "NVIDIA GeForce RTX 4090": "GeForce RTX 4090",
        "NVIDIA B200": "B200",
        "NVIDIA GB200": "GB200",
    }
    for name, entry in names.items():
        spec = lookup_gpu(name)
        assert spec is not None and spec.name == entry, name
        assert spec.bandwidth_Bps > 1e11 and spec.tflops["bf16"] > 100
    assert lookup_gpu("NVIDIA A10G") is None and lookup_gpu(None) is None
    assert lookup_gpu("NVIDIA H100 80GB HBM3").tflops == {"bf16": 989.5, "fp16": 989.5, "fp8": 1979.0}  # type: ignore[union-attr]
    assert "fp8" not in lookup_gpu("NVIDIA A100-SXM4-80GB").tflops  # type: ignore[union-attr]
    # every entry cites its datasheet in the comment above it
    text = (Path(__file__).parents[1] / "src/nsys_doctor/data/gpus.toml").read_text()
    blocks = text.split("\n[[gpu]]\n")
    assert len(blocks) - 1 == len(gpu_table())
    for before in blocks[:-1]:
        comment = before.strip().splitlines()
        assert any("datasheet" in line or "whitepaper" in line for line in comment[-6:] if line.startswith("#"))


def test_peaks_precedence():
    gpu = {"name": "NVIDIA H100 80GB HBM3", "memoryBandwidth": PEAK, "smCount": 132, "l2CacheSize": 52428800}
    p = resolve_peaks(gpu)
    assert p.bandwidth_Bps == PEAK and "trace" in p.bandwidth_source
    assert p.flops == 989.5e12 and "H100 SXM" in p.flops_source
    assert p.ridge == pytest.approx(989.5e12 / PEAK)
    assert resolve_peaks(gpu, peak_bw_Bps=3e12, peak_flops=5e14).bandwidth_Bps == 3e12
    assert resolve_peaks(gpu, peak_bw_Bps=3e12, peak_flops=5e14).flops == 5e14
    table = resolve_peaks({"name": "NVIDIA H100 80GB HBM3"})
    assert table.bandwidth_Bps == 3.35e12 and "GPU table" in table.bandwidth_source
    assert resolve_peaks({"name": "NVIDIA H100 80GB HBM3"}, "fp8").flops == 1979e12
    unknown = resolve_peaks(None)
    assert unknown.bandwidth_Bps is None and unknown.flops is None and "--peak-bw" in unknown.bandwidth_source


def test_peaks_refuse_non_finite_rates_and_skip_damaged_trace_values():
    gpu = {"name": "NVIDIA H100 80GB HBM3"}
    for bad in (float("nan"), float("inf"), 0.0, -3e12):
        with pytest.raises(UsageError, match="--peak-bw"):
            resolve_peaks(gpu, peak_bw_Bps=bad)
        with pytest.raises(UsageError, match="--peak-flops"):
            resolve_peaks(gpu, peak_flops=bad)
    # a damaged TARGET_INFO_GPU.memoryBandwidth (0, NaN, text) is not a peak: the GPU table's 3.35 TB/s is used
    for damaged in (0, float("nan"), "n/a", -1):
        p = resolve_peaks(gpu | {"memoryBandwidth": damaged, "smCount": damaged, "l2CacheSize": damaged})
        assert p.bandwidth_Bps == 3.35e12 and "GPU table" in p.bandwidth_source
        assert p.sm_count is None and p.l2_bytes is None


def test_peak_options_units():
    assert parse_bandwidth("3.35") == pytest.approx(3.35e12)
    assert parse_bandwidth("2039GB/s") == pytest.approx(2.039e12)
    assert parse_bandwidth("3352320000000") == PEAK
    assert parse_bandwidth("3.35 TB/s") == pytest.approx(3.35e12)
    assert parse_flops("989.5") == pytest.approx(989.5e12)
    assert parse_flops("2.25PFLOPS") == pytest.approx(2.25e15)
    for bad in ("fast", "3.35 furlongs", "-1", "0", "0.0TB/s", "nan", "inf", "1e400", "1e300TB/s", ""):
        with pytest.raises(UsageError, match="--peak-bw"):
            parse_bandwidth(bad)
    for bad in ("-989", "0", "nan", "1e309", "1e300pflops"):
        with pytest.raises(UsageError, match="--peak-flops"):
            parse_flops(bad)


def test_prompt_length_from_command_and_tile_check():
    cmd = "python3 /app/workload.py --impl mini --prompt-len 2048 --output-len 1"
    assert prompt_length(cmd) == 2048
    assert prompt_length("serve --input-len=512") == 512
    assert prompt_length("python x.py") is None and prompt_length(None) is None
    assert prompt_length("bench --prompt-len 0") is None  # a prompt of no tokens is no token count
    # decode grids of the shared traces: one CTA per 64 (or 128) rows; split-K 4x; a persistent LM head
    assert tile_check("nvjet_sm90_tst_64x8_64x16_4x1_v_bz_TNT", 48, 3072, 1) == "agrees"
    assert tile_check("nvjet_sm90_tst_128x8_64x12_2x1_v_bz_TNT", 128, 16384, 1) == "agrees"
    assert tile_check("nvjet_sm90_tst_64x8_64x16_2x1_v_bz_splitK_TNT", 128, 2048, 1) == "agrees"
    assert tile_check("nvjet_sm90_tst_384x8_64x4_2x1_v_bz_TNT", 132, 128256, 1) == "unchecked"
    assert tile_check("nvjet_sm90_tst_256x128_64x4_1x2_h_bz_coopA_TNT", 128, 2048, 2048) == "agrees"
    # a QKV kernel with 48 CTAs of 64 rows cannot have computed 1536 rows; 6144 is left to the bandwidth check
    assert tile_check("nvjet_sm90_tst_64x8_64x16_4x1_v_bz_TNT", 48, 1536, 1) == "contradicts"
    assert tile_check("nvjet_sm90_tst_64x8_64x16_4x1_v_bz_TNT", 48, 6144, 1) == "unchecked"  # bandwidth check
    assert tile_check("gemv2T_kernel_val", 48, 1536, 1) == "unchecked"


def test_mapping_file_errors():
    rules = parse_mapping('[[map]]\nkernel = "nvjet.*128x8"\nshape = "gate_up"\ngrid = "2x64x1"\n', "m.toml")
    assert rules[0].shape == "gate_up" and rules[0].grid == "2x64x1"
    for bad in ("[map]\nkernel='a'\nshape='b'", "[[map]]\nkernel='('\nshape='b'", "[[map]]\nkernel='a'",
                "[[map]]\nkernel='a'\nshape='b'\ngrid='2x64'", "[[map]]\nkernel='a'\nshape='b'\nrows=1"):  # fmt: skip
        with pytest.raises(UsageError):
            parse_mapping(bad, "m.toml")


# ------------------------------------------------------------------------------------------------ synthetic


def _frames(steps: list[list[tuple[str, int]]]) -> tuple[pl.DataFrame, pl.DataFrame, Steps]:
    """Kernels (name, duration) per step, launched one by one, one step after the other."""
    krows, arows, srows = [], [], []
    corr = 0
    t = 1_000_000
    for i, kernels in enumerate(steps):
        begin = t
        for name, dur in kernels:
            corr += 1
            arows.append((t, t + 10, 10, 1, 1, 1, corr, "cudaLaunchKernel_v7000"))
            krows.append((t + 100, t + 100 + dur, dur, 0, 7, corr, 1 << 24, 1, name, name, 1, 1, 1))
            t += dur + 200
        srows.append((i, "decode", begin, t, t - begin, sum(d for _, d in kernels), len(kernels), len(kernels)))
        t += 1000
    kernels_df = pl.DataFrame(
        krows,
        schema=["start", "end", "dur", "deviceId", "streamId", "correlationId", "globalPid", "pid", "name", "short",
                "gridX", "gridY", "gridZ"],
        orient="row",
    )  # fmt: skip
    api = pl.DataFrame(
        arows, schema=["start", "end", "dur", "globalTid", "pid", "tid", "correlationId", "name"], orient="row"
    )
    table = pl.DataFrame(
        srows, schema=["idx", "kind", "start", "end", "wall", "gpu_time", "kernels", "launches"], orient="row"
    ).with_columns(pl.col("start").alias("gpu_start"), pl.col("end").alias("gpu_end"))
    return kernels_df, api, Steps("nvtx:decode_step", table)


def test_synthetic_arithmetic_and_split_k():
    # 2 layers of [gemv_a (1 MB), gemv_b (8 MB, split-K)], then a head; durations in ns
    model = model_from_shapes(
        {
            "layers": 2,
            "shape": [
                {"name": "a", "M": 512, "K": 1024},
                {"name": "b", "M": 2048, "K": 2048},
                {"name": "head", "M": 4096, "K": 1024, "per_layer": False},
            ],
        }
    )
    step = [("gemv_a", 1000), ("relu", 50), ("gemv_b", 3000), ("splitKreduce_kernel", 200)] * 2 + [("gemv_h", 4000)]
    slow = [(n, d * 2 if n == "gemv_a" else d) for n, d in step]
    kernels, api, steps = _frames([step, step, slow])
    peaks = resolve_peaks({"name": "test", "memoryBandwidth": 4e12})
    r = roofline(kernels, api, steps, RULES, model, peaks)
    d = r.decode
    assert d is not None and r.prefill is None
    assert d.fit.method == "position" and d.fit.steps_fit == 3 and d.fit.reductions == 6
    a, b, head = d.shape("a"), d.shape("b"), d.shape("head")
    assert (a.instances, a.per_step, a.weight_bytes) == (6, 2, 512 * 1024 * 2)
    assert a.p50_ns == 1000 and a.mean_ns == pytest.approx((4 * 1000 + 2 * 2000) / 6)
    assert b.kernels == ("gemv_b + splitKreduce_kernel",) and b.p50_ns == 3200  # the reduction's time is added
    assert b.achieved_Bps == pytest.approx(2048 * 2048 * 2 / 3200e-9)
    assert b.efficiency == pytest.approx(2048 * 2048 * 2 / 3200e-9 / 4e12)
    assert head.efficiency == pytest.approx(4096 * 1024 * 2 / 4000e-9 / 4e12)
    assert a.rating == "small"  # 1 MB
    assert d.step.bytes_per_step == 2 * (512 * 1024 * 2 + 2048 * 2048 * 2) + 4096 * 1024 * 2
    linear = (2 * (1000 + 3200) + 4000) * 2 / 3 + (2 * (2000 + 3200) + 4000) / 3
    assert d.step.linear_time_ns == pytest.approx(linear)
    # a step with one kernel too many is left out, with a note
    kernels, api, steps = _frames([step, step, [*step, ("gemv_x", 10)]])
    r2 = roofline(kernels, api, steps, RULES, model, peaks)
    assert r2.decode is not None and r2.decode.fit.steps_fit == 2 and "left out" in r2.decode.fit.notes[0]


def test_synthetic_no_decode_steps_and_no_steps():
    from nsys_doctor.report.roofline_text import render_json, render_markdown, render_terminal

    model = model_from_shapes({"layers": 1, "shape": [{"name": "a", "M": 512, "K": 1024}]})
    kernels, api, steps = _frames([[("gemv_a", 1000)]] * 3)
    peaks = resolve_peaks({"name": "test", "memoryBandwidth": 4e12})
    # every step is a prefill: no decode phase, and the prefill GEMV runs one token (the last position)
    prefill_only = Steps(steps.source, steps.table.with_columns(pl.lit("prefill").alias("kind")))
    r = roofline(kernels, api, prefill_only, RULES, model, peaks, prefill_tokens=None)
    assert r.decode is None and r.prefill is not None and r.prefill.shape("a").instances == 3
    assert roofline_findings(r) == []  # the findings are about decode GEMVs
    assert json.loads(render_json(r))["decode"] is None
    assert "a" in render_terminal(r, width=120, color=False) and render_markdown(r)
    with pytest.raises(UsageError, match="must be 1 or more"):
        roofline(kernels, api, prefill_only, RULES, model, peaks, prefill_tokens=0)
    no_steps = Steps("none", steps.table.clear())
    with pytest.raises(UsageError, match="no steps found"):
        roofline(kernels, api, no_steps, RULES, model, peaks)
    with pytest.raises(UsageError, match="no GEMV/GEMM kernels"):
        roofline(kernels.clear(), api.clear(), steps, RULES, model, peaks)


def test_synthetic_layout_choice():
    # HF eager attention and MLP: q, k, v, o, gate, up, down per layer; the separate layout is picked by count
    cfg = MINI | {"num_hidden_layers": 2}
    seq = [f"gemv_{n}" for n in ("q", "k", "v", "o", "gate", "up", "down")] * 2 + ["gemv_head"]
    kernels, api, steps = _frames([[(n, 200_000) for n in seq]] * 2)
    r = roofline(kernels, api, steps, RULES, model_from_config(cfg), resolve_peaks(None, peak_bw_Bps=1e13))
    assert r.decode is not None and r.decode.fit.layout == "separate Q/K/V, separate gate and up"
    assert [s.name for s in r.decode.shapes] == ["q", "k", "v", "o", "gate", "up", "down", "lm_head"]
    assert r.decode.shape("k").kernels == ("gemv_k",) and r.decode.shape("k").M == 512


# ------------------------------------------------------------------------------------------------ real traces


@needs_shared
def test_decode_graph_node_matching():
    r = result_of(T("decode_graph_node"))
    d = r.decode
    assert d is not None
    assert r.model.bytes_per_token == BYTES_PER_TOKEN == d.step.bytes_per_step
    assert r.peaks.bandwidth_Bps == PEAK and "trace" in r.peaks.bandwidth_source
    assert (d.fit.method, d.fit.layout, d.fit.expected_per_step) == ("position", "fused QKV, fused gate+up", 65)
    assert (d.fit.steps_fit, d.fit.steps_total, d.fit.reductions, d.fit.quality) == (127, 127, 2032, "exact")
    assert d.fit.observed == {65: 127}
    assert set(d.fit.tiles_agree) == {"qkv", "o", "gate_up", "down"} and d.fit.tiles_unchecked == ("lm_head",)
    assert [s.name for s in d.shapes] == list(SHAPES)
    for s in d.shapes:
        assert (s.M, s.K, s.weight_bytes) == SHAPES[s.name]
        assert s.kernels == (KERNELS[s.name],), s.name
        assert s.instances == (127 if s.name == "lm_head" else 127 * 16)
        assert s.consistency == 1.0 and s.bound == "memory" and s.N == 1
    assert r.prefill is not None and r.prefill.tokens == 1 and r.prefill.fit.steps_fit == 1


@needs_shared
def test_decode_graph_node_against_golden_launches():
    """p50 and mean of every shape equal those computed by hand from real nsys's per-launch trace, decode only
    (the first instances of each kernel belong to the prefill step, which runs first)."""
    r = result_of(T("decode_graph_node"))
    d = r.decode
    assert d is not None
    launches = golden_launches("decode_graph_node")

    def durations(kernel: str, grid: str | None = None) -> list[int]:
        return [dur for _, dur, g, n in launches if n == kernel and (grid is None or g == grid)]

    qkv = durations(KERNELS["qkv"], "4x12x1")[16:]
    o = durations(KERNELS["o"], "4x8x1")[16:]
    gate_up = durations(KERNELS["gate_up"])[16:]
    split = durations("nvjet_sm90_tst_64x8_64x16_2x1_v_bz_splitK_TNT")[16:]
    reduce = [dur for _, dur, _, n in launches if "splitKreduce_kernel" in n][16:]
    down = [a + b for a, b in zip(split, reduce, strict=True)]
    lm_head = durations(KERNELS["lm_head"])[1:]
    for name, values in (("qkv", qkv), ("o", o), ("gate_up", gate_up), ("down", down), ("lm_head", lm_head)):
        s = d.shape(name)
        assert s.instances == len(values), name
        assert s.p50_ns == percentile(values, 50), name
        assert s.mean_ns == pytest.approx(sum(values) / len(values)), name
        nbytes = SHAPES[name][2]
        assert s.efficiency == pytest.approx(nbytes / (percentile(values, 50) * 1e-9) / PEAK), name  # type: ignore[operator]
    # the hand numbers: gate+up reads 67,108,864 B in 25,952 ns -> 2.586 TB/s = 77.1% of 3.352 TB/s
    assert d.shape("gate_up").p50_ns == 25952
    assert d.shape("gate_up").efficiency == pytest.approx(0.7714, abs=1e-4)


@needs_shared
def test_decode_graph_node_against_golden_summary():
    """Per-shape efficiency from the golden kernel summary (all 2048 = 128 x 16 instances, prefill included) by
    hand: the decode-only figures agree within 0.5%."""
    d = result_of(T("decode_graph_node")).decode
    assert d is not None
    gold = golden_summary("decode_graph_node")
    reduce_name = next(n for n in gold if "splitKreduce_kernel" in n)
    gate = gold["nvjet_sm90_tst_128x8_64x12_2x1_v_bz_TNT"]
    assert gate["Instances"] == 2048
    eff_med = 67_108_864 / (gate["Med (ns)"] * 1e-9) / 3.352e12
    eff_avg = 67_108_864 / (gate["Avg (ns)"] * 1e-9) / 3.352e12
    assert d.shape("gate_up").efficiency == pytest.approx(eff_med, rel=5e-3)
    assert d.shape("gate_up").efficiency_mean == pytest.approx(eff_avg, rel=5e-3)
    down_avg = gold["nvjet_sm90_tst_64x8_64x16_2x1_v_bz_splitK_TNT"]["Avg (ns)"] + gold[reduce_name]["Avg (ns)"]
    assert d.shape("down").efficiency_mean == pytest.approx(33_554_432 / (down_avg * 1e-9) / 3.352e12, rel=5e-3)
    lm = gold["nvjet_sm90_tst_384x8_64x4_2x1_v_bz_TNT"]
    assert d.shape("lm_head").efficiency_mean == pytest.approx(
        525_336_576 / (lm["Avg (ns)"] * 1e-9) / 3.352e12, rel=5e-3
    )
    # QKV and O share one kernel name: together their mean is the golden mean
    both = gold["nvjet_sm90_tst_64x8_64x16_4x1_v_bz_TNT"]
    assert (d.shape("qkv").mean_ns + d.shape("o").mean_ns) / 2 == pytest.approx(both["Avg (ns)"], rel=5e-3)


@needs_shared
def test_decode_step_speed_of_light():
    d = result_of(T("decode_graph_node")).decode
    assert d is not None
    s = d.step
    assert s.sol_ns == pytest.approx(BYTES_PER_TOKEN / PEAK * 1e9)  # about 0.74 ms
    assert 0.73e6 < s.sol_ns < 0.75e6  # type: ignore[operator]
    assert s.efficiency == pytest.approx(BYTES_PER_TOKEN / (s.gpu_time_p50_ns * 1e-9) / PEAK)  # type: ignore[operator]
    per_step = sum(x.mean_ns * x.per_step for x in d.shapes)
    assert s.linear_time_ns == pytest.approx(per_step)
    assert s.linear_efficiency == pytest.approx(BYTES_PER_TOKEN / (per_step * 1e-9) / PEAK)
    assert 0.65 < s.linear_efficiency < 0.75  # type: ignore[operator]
    assert s.linear_share is not None and 0.3 < s.linear_share < 0.7


@pytest.mark.finding("gemv-near-bandwidth-limit", "gemv-bandwidth-headroom")
@needs_shared
def test_findings_name_the_shapes():
    r = result_of(T("decode_graph_node"))
    assert list(r.findings) == roofline_findings(r)  # computed once, when the result is built
    found = {f.id: f for f in r.findings}
    assert set(found) == set(FINDING_TEXT) == {"gemv-near-bandwidth-limit", "gemv-bandwidth-headroom"}
    near = found["gemv-near-bandwidth-limit"]
    assert isinstance(near, Finding) and near.severity == "info"
    assert [e["shape"] for e in near.evidence["shapes"]] == ["lm_head"]  # type: ignore[attr-defined]
    assert "LM head [128256 x 2048" in near.summary
    room = found["gemv-bandwidth-headroom"]
    assert room.severity == "warning"
    assert {e["shape"] for e in room.evidence["shapes"]} == {"qkv", "o", "down"}  # type: ignore[attr-defined]
    assert room.evidence["saving_per_step_ns"] > 0  # type: ignore[operator]
    for f in found.values():
        assert f.title and f.action


@needs_shared
def test_decode_eager_same_shapes():
    r = result_of(T("decode_eager"))
    d = r.decode
    assert d is not None and d.fit.quality == "exact" and d.fit.steps_fit == 127
    for s in d.shapes:
        assert s.kernels == (KERNELS[s.name],) and (s.M, s.K, s.weight_bytes) == SHAPES[s.name]
    gold = golden_summary("decode_eager")["nvjet_sm90_tst_128x8_64x12_2x1_v_bz_TNT"]
    assert d.shape("gate_up").mean_ns == pytest.approx(gold["Avg (ns)"], rel=5e-3)
    # eager decode: most of the step is outside the linear layers (launch gaps do not count as GPU time)
    assert d.step.gpu_time_p50_ns is not None and d.step.linear_efficiency is not None


@needs_shared
def test_prefill_2048_is_compute_bound():
    r = result_of(T("prefill_2048"))
    assert r.decode is None
    p = r.prefill
    assert p is not None and p.tokens == 2048 and "command line" in p.tokens_source
    assert r.peaks.flops == 989.5e12
    assert p.fit.quality == "exact"
    kernels = golden_launches("prefill_2048")
    qkv = [dur for _, dur, _, n in kernels if n == "nvjet_sm90_tst_192x128_64x5_1x2_h_bz_coopB_TNT"]
    big = [dur for _, dur, _, n in kernels if n == "nvjet_sm90_tst_256x128_64x4_1x2_h_bz_coopA_TNT"]
    hand = {"qkv": qkv, "o": big[0::3], "gate_up": big[1::3], "down": big[2::3]}  # per layer: O, gate+up, down
    gold = golden_summary("prefill_2048")["nvjet_sm90_tst_192x128_64x5_1x2_h_bz_coopB_TNT"]
    assert sum(qkv) / len(qkv) == pytest.approx(gold["Avg (ns)"], abs=0.05)
    for name, values in hand.items():
        s = p.shape(name)
        m, k, _ = SHAPES[name]
        flops = 2 * m * 2048 * k
        assert s.bound == "compute" and s.N == 2048 and s.flops == flops
        assert s.intensity is not None and s.intensity > r.peaks.ridge  # type: ignore[operator]
        assert s.p50_ns == percentile(values, 50)
        assert s.achieved_flops == pytest.approx(flops / (percentile(values, 50) * 1e-9))  # type: ignore[operator]
        assert s.flops_efficiency == pytest.approx(s.achieved_flops / 989.5e12)  # type: ignore[operator]
        assert 0.6 < s.flops_efficiency < 0.9  # type: ignore[operator]
    # by hand from the golden summary: QKV 2 x 3072 x 2048 x 2048 FLOP in 36,494.7 ns on average = 706 TFLOP/s
    assert 2 * 3072 * 2048 * 2048 / (p.shape("qkv").mean_ns * 1e-9) == pytest.approx(
        2 * 3072 * 2048 * 2048 / (gold["Avg (ns)"] * 1e-9), rel=1e-6
    )
    # the LM head runs on the last token only: a GEMV, memory-bound
    lm = p.shape("lm_head")
    assert lm.N == 1 and lm.bound == "memory" and lm.kernels == (KERNELS["lm_head"],)
    assert "compute-bound" in p.step.verdict
    # --tokens overrides the command line; token counts the kernels cannot have run are refused
    with pytest.raises(UsageError) as e:
        roofline_trace(open_trace(T("prefill_2048")), CONFIG, RULES, tokens=1024)
    assert "o [2048 x 2048] cannot be what" in e.value.message and "check --tokens" in e.value.hint
    with pytest.raises(UsageError, match="dense peak"):
        roofline_trace(open_trace(T("prefill_2048")), CONFIG, RULES, tokens=8192)


# ------------------------------------------------------------------------------------------------ mismatches


@needs_shared
def test_wrong_config_layer_count():
    # decode_pathologies runs an 8-layer model: 8 x 4 + 1 = 33 linear kernels per step, not 65
    with pytest.raises(UsageError) as e:
        result_of(T("decode_pathologies"))
    text = e.value.one_line()
    assert "does not fit the trace" in text and "run 33 GEMV/GEMM kernels" in text and "= 65" in text
    assert "8 layers of 4" in text and "--mapping" in text


@needs_shared
def test_wrong_config_sizes(tmp_path):
    small = tmp_path / "small.json"
    small.write_text(json.dumps({k: v for k, v in MINI.items() if k != "head_dim"} | {"hidden_size": 1024}))
    with pytest.raises(UsageError, match=r"shape qkv \[1536 x 1024\] cannot be what nvjet"):
        result_of(T("decode_graph_node"), small)
    big = tmp_path / "big.json"
    big.write_text(json.dumps(MINI | {"hidden_size": 4096, "intermediate_size": 14336, "head_dim": 128}))
    with pytest.raises(UsageError, match="peak bandwidth"):
        result_of(T("decode_graph_node"), big)
    # the right shapes in the wrong dtype: fp32 weights would need twice the bytes, more than the GPU can move
    with pytest.raises(UsageError, match="peak bandwidth"):
        result_of(T("decode_graph_node"), dtype="fp32")


@needs_shared
def test_cli_mismatch_is_one_line(capsys):
    code = main(["roofline", str(T("decode_pathologies")), "--model", str(CONFIG)])
    err = capsys.readouterr().err
    assert code == 2 and err.count("\n") == 1 and "does not fit the trace" in err


@needs_shared
def test_explicit_mapping_matches_position(tmp_path):
    mapping = tmp_path / "map.toml"
    mapping.write_text(
        "\n".join(
            f'[[map]]\nkernel = "{k}"\nshape = "{s}"\n' + (f'grid = "{g}"\n' if g else "")
            for k, s, g in (
                ("64x8_64x16_4x1", "qkv", "4x12x1"),
                ("64x8_64x16_4x1", "o", "4x8x1"),
                ("128x8_64x12", "gate_up", None),
                ("splitK_TNT", "down", None),
                ("384x8", "lm_head", None),
            )
        )
    )
    by_map = result_of(T("decode_graph_node"), mapping_path=mapping).decode
    by_pos = result_of(T("decode_graph_node")).decode
    assert by_map is not None and by_pos is not None
    assert by_map.fit.method == "mapping" and by_map.fit.steps_fit == 127
    for a, b in zip(by_map.shapes, by_pos.shapes, strict=True):
        assert (a.name, a.instances, a.p50_ns, a.mean_ns, a.kernels) == (
            b.name,
            b.instances,
            b.p50_ns,
            b.mean_ns,
            b.kernels,
        )
    bad = tmp_path / "bad.toml"
    bad.write_text('[[map]]\nkernel = "nvjet"\nshape = "attention"\n')
    with pytest.raises(UsageError, match=r"bad\.toml: shape\(s\) attention are not shapes of model"):
        result_of(T("decode_graph_node"), mapping_path=bad)
    mixed = tmp_path / "mixed.toml"  # fused QKV with separate gate and up exists; fused QKV with split Q does not
    mixed.write_text('[[map]]\nkernel = "a"\nshape = "qkv"\n[[map]]\nkernel = "b"\nshape = "q"\n')
    with pytest.raises(UsageError, match="do not all run in one layout"):
        result_of(T("decode_graph_node"), mapping_path=mixed)


# ------------------------------------------------------------------------------------------------ CLI


def test_cli_on_bundled_sample(tmp_path, capsys):
    assert main(["roofline", str(SAMPLE), "--model", str(CONFIG), "--format", "json"]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert doc["schema"] == "nsys-doctor/2" and doc["kind"] == "roofline"
    assert doc["model"]["bytes_per_token"] == BYTES_PER_TOKEN
    shapes = {s["shape"]: s for s in doc["decode"]["shapes"]}
    assert shapes["gate_up"]["kernels"] == [KERNELS["gate_up"]] and shapes["gate_up"]["M"] == 16384
    assert doc["decode"]["fit"]["method"] == "position"
    assert {f["id"] for f in doc["findings"]} <= set(FINDING_TEXT)
    out = tmp_path / "r.md"
    assert main(["roofline", str(SAMPLE), "--model", str(CONFIG), "-f", "markdown", "-o", str(out)]) == 0
    md = out.read_text()
    assert "| QKV (fused) | 3072 x 2048 |" in md and "### Decode" in md
    assert main(["roofline", str(SAMPLE), "--model", str(CONFIG), "--peak-bw", "3.35TB/s"]) == 0
    text = capsys.readouterr().out
    assert "peak DRAM bandwidth 3.350 TB/s from --peak-bw" in text and "LM head" in text
    assert main(["roofline", str(SAMPLE), "--model", str(CONFIG), "--group-size", "64"]) == 2
    assert main(["roofline", str(SAMPLE), "--model", str(CONFIG), "--whole-trace", "--window", "1s/2s"]) == 2


def test_roofline_json_is_finite():
    r = roofline_trace(open_trace(SAMPLE), CONFIG, RULES)
    doc = r.to_dict()
    for phase in ("decode", "prefill"):
        for s in doc[phase]["shapes"]:  # type: ignore[index]
            for v in s.values():
                assert not (isinstance(v, float) and (math.isnan(v) or math.isinf(v)))


@needs_shared
def test_graph_level_capture_says_recapture():
    with pytest.raises(UsageError) as e:
        result_of(T("decode_graph_graph"))
    assert "run no GEMV/GEMM kernels" in e.value.message and "--cuda-graph-trace=node" in e.value.hint


@needs_shared
def test_shapes_file_on_the_trace(tmp_path):
    shapes = tmp_path / "mini.toml"
    rows = [f'[[shape]]\nname = "{n}"\nM = {m}\nK = {k}\n' for n, (m, k, _) in SHAPES.items() if n != "lm_head"]
    shapes.write_text(
        "layers = 16\n" + "".join(rows) + '[[shape]]\nname = "lm_head"\nM = 128256\nK = 2048\nper_layer = false\n'
    )
    by_file = result_of(T("decode_graph_node"), shapes).decode
    by_config = result_of(T("decode_graph_node")).decode
    assert by_file is not None and by_config is not None
    assert by_file.step.bytes_per_step == BYTES_PER_TOKEN
    assert [(s.name, s.efficiency) for s in by_file.shapes] == [(s.name, s.efficiency) for s in by_config.shapes]


@needs_shared
def test_same_bytes_from_separate_processes() -> None:
    """Kernel signatures tied in count come in a fixed order: on this engine's trace the shapes' kernel lists came
    in the grouping's order, which changed from one process to the next."""
    import subprocess
    import sys

    trace = TRACES / "engines" / "cpp_llama3b_eager_whole.sqlite"
    if not trace.is_file():
        pytest.skip(f"{trace} is not present")
    code = "import sys; from nsys_doctor.cli.main import main; sys.exit(main(sys.argv[1:]))"
    args = [sys.executable, "-c", code, "roofline", str(trace), "--model", str(CONFIG), "--format", "json"]
    env = {**os.environ, "NSYS_DOCTOR_NO_CACHE": "1", "NSYS_DOCTOR_NO_RESULT_CACHE": "1"}
    outs = {subprocess.run(args, capture_output=True, check=True, env=env).stdout for _ in range(4)}
    assert len(outs) == 1
    assert b'"kernels"' in next(iter(outs))
