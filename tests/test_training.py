"""Training runs (tests/data/runs/README.md: `train_resnet18_whole`, `train_llama_accum_whole`), checked through
`nsys-doctor report`: a training step is told from inference (backward kernels), gradient accumulation from where
the optimizer runs, and the report speaks of training steps, not requests of forward passes, with advice that
holds in training. Every expected value is how the workload ran (scripts/workloads/train_steps.py)."""

from __future__ import annotations

import contextlib
import io
import json
from functools import cache
from pathlib import Path

import pytest

from nsys_doctor.cli.main import main

from .conftest import DATA

RUNS = DATA / "runs"
CNN = "train_resnet18_whole"  # SGD with momentum, 2 warm-up + 8 measured steps, batch 32, .item() per step
ACCUM = "train_llama_accum_whole"  # AdamW, 1 warm-up + 4 measured optimizer steps of 4 micro-batches
GPT2_ACCUM = "train_gpt2_accum_whole"  # AdamW, 1 warm-up + 4 measured optimizer steps of 3 micro-batches, no NVTX


def _path(name: str) -> Path:
    return RUNS / f"{name}.sqlite"


def _needs(name: str) -> pytest.MarkDecorator:
    return pytest.mark.skipif(not _path(name).is_file(), reason=f"tests/data/runs/{name}.sqlite is not present")


@cache
def _report(name: str, fmt: str) -> str:
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        rc = main(["report", str(_path(name)), "--format", fmt, "--no-cache", "--top", "1000"])
    assert rc == 0
    return out.getvalue()


def _text(name: str) -> str:
    return " ".join(_report(name, "markdown").split())


@_needs(CNN)
def test_cnn_training_steps() -> None:
    d = json.loads(_report(CNN, "json"))
    run = d["run"]
    assert run["kind"] == "iterations" and run["training"] is True and run["micro_batches"] is None
    # 10 optimizer steps; the first (35 lazy module loads) is left out, the second warm-up step cannot be told apart
    assert run["iterations"] == 9 and run["warmup_requests"] == 1
    text = _text(CNN)
    assert "training steps (forward, backward and optimizer; not inference)" in text
    assert "1 measured request (9 training steps)" in text
    # batch norm cannot be folded into the convolution while it trains
    assert "for inference" not in text and "batch norm cannot be folded into a convolution" in text


@_needs(CNN)
@_needs("resnet18_requests_whole")
def test_convolution_advice_in_training_and_inference() -> None:
    # both spend most GPU time in convolutions: the advice for them, first of the kernel advice; inference may fold
    # batch norm and the activation into the convolution, training may not
    for name, fold in ((CNN, False), ("resnet18_requests_whole", True)):
        d = json.loads(_report(name, "json"))
        assert d["diagnosis"]["family"] == "conv"
        advice = [a for a in d["next_actions"] if a.startswith("convolutions dominate")]
        assert len(advice) == 1, d["next_actions"]
        assert ("fold batch norm and the activation into the convolution" in advice[0]) is fold, advice
        assert ("mixed precision" in advice[0]) is not fold, advice


@_needs(ACCUM)
def test_gradient_accumulation_is_found_and_named() -> None:
    d = json.loads(_report(ACCUM, "json"))
    run = d["run"]
    assert run["training"] is True and run["micro_batches"] == 4
    assert run["requests"] == 4 and run["warmup_requests"] == 1 and run["iterations"] == 16
    text = _text(ACCUM)
    assert "4 measured optimizer steps (16 micro-batches)" in text and "1 warm-up optimizer step left out" in text
    assert "gradient accumulation (an optimizer step of 4 micro-batches" in text


@_needs(ACCUM)
def test_a_training_step_samples_nothing() -> None:
    d = json.loads(_report(ACCUM, "json"))
    fams = {f["family"] for f in d["families"]}
    assert "sampling" not in fams
    loss = [k for k in d["kernels"] if "cunn_SoftMaxForward" in k["name"]]
    assert loss and all(k["family"] == "reduction" for k in loss)
    # cuDNN's attention backward is attention, nothing unmapped
    assert not d["unmapped_kernels"]


@_needs(GPT2_ACCUM)
def test_gradient_accumulation_without_a_marker_of_its_own() -> None:
    # GPT-2's micro-batches have no sampling kernel and a host round trip only once per optimizer step (the loss's
    # .item()): the unit is a training step by its backward kernels (it was "no repeating forward pass")
    d = json.loads(_report(GPT2_ACCUM, "json"))
    run = d["run"]
    assert run["kind"] == "iterations" and run["training"] is True and run["micro_batches"] == 3
    # 5 optimizer steps of 3 micro-batches; the second loads a module too (lazy loading) and is left out with the
    # first
    assert [r["iterations"] for r in run["request_list"]] == [3] * 5
    assert run["requests"] + run["warmup_requests"] == 5 and run["iterations"] == 3 * run["requests"]
    assert any("backward kernels in the units" in e["detail"] for e in run["evidence"] if e["fact"] == "passes")
    assert "gradient accumulation (an optimizer step of 3 micro-batches" in _text(GPT2_ACCUM)


JAX_TRAIN = "jax_train_mlp_whole"  # jax_train.py: one jax.jit step (forward, grad, SGD), 2 warm-up + 8 measured
JAX_INFER = "jax_lax_cnn_whole"  # a jax.jit CNN forward, inference only


@_needs(JAX_TRAIN)
@_needs(JAX_INFER)
def test_jax_training_is_told_by_its_reverse_mode_ops() -> None:
    # XLA's kernels carry no "backward" (fusions, cuBLAS GEMMs); XLA's NVTX ranges name each op with JAX's name
    # stack, where reverse-mode differentiation writes transpose(jvp(...))
    run = json.loads(_report(JAX_TRAIN, "json"))["run"]
    assert run["kind"] == "iterations" and run["training"] is True and run["micro_batches"] is None
    # the 10 steps (each one CUDA graph launch); the 2 warm-up steps run like the others once compiled
    assert run["iterations"] + sum(r["iterations"] for r in run["request_list"] if r["warmup"]) == 10
    assert any("transpose(jvp" in e["detail"] for e in run["evidence"] if e["fact"] == "kind")
    assert "training steps (forward, backward and optimizer; not inference)" in _text(JAX_TRAIN)
    # a JAX model's inference has the same ranges without them
    assert json.loads(_report(JAX_INFER, "json"))["run"]["training"] is False
