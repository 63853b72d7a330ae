"""Shared helpers for the workload scripts in this folder (timing, result lines, seeds).

Every workload prints one line `RESULT {json}` at the end with its unprofiled-style timings
(wall-clock around torch.cuda.synchronize()), so the same script run without nsys gives the
unprofiled time per step / iteration.
"""

import json
import os
import sys
import time

import torch


def setup(seed: int = 0) -> torch.device:
    torch.manual_seed(seed)
    if not torch.cuda.is_available() and os.environ.get("WORKLOAD_ALLOW_CPU") != "1":
        sys.exit("CUDA is required (set WORKLOAD_ALLOW_CPU=1 for a CPU dry run)")
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


def sync():
    if torch.cuda.is_available():
        torch.cuda.synchronize()


class Timer:
    def __enter__(self):
        sync()
        self.t0 = time.perf_counter()
        return self

    def __exit__(self, *exc):
        sync()
        self.ms = (time.perf_counter() - self.t0) * 1e3


def profiler_start():
    if torch.cuda.is_available():
        torch.cuda.cudart().cudaProfilerStart()


def profiler_stop():
    if torch.cuda.is_available():
        torch.cuda.cudart().cudaProfilerStop()


# command-line size options of the workloads -> the transformers config fields they set
SIZE_ARGS = {
    "hidden": "hidden_size",
    "intermediate": "intermediate_size",
    "layers": "num_hidden_layers",
    "heads": "num_attention_heads",
    "kv_heads": "num_key_value_heads",
    "vocab": "vocab_size",
}


def llama_size_options(parser, layers=2):
    """The model-size options of a small Llama workload (``SIZE_ARGS``): --layers (``layers``), --hidden 1024,
    --intermediate 2816, --heads 16, --kv-heads 4, --vocab 32000."""
    parser.add_argument("--layers", type=int, default=layers)
    parser.add_argument("--hidden", type=int, default=1024)
    parser.add_argument("--intermediate", type=int, default=2816)
    parser.add_argument("--heads", type=int, default=16)
    parser.add_argument("--kv-heads", type=int, default=4)
    parser.add_argument("--vocab", type=int, default=32000)


def random_causal_lm(config_class, device, args, **config):
    """A transformers causal LM with random bf16 weights, built on ``device`` in eval mode from ``config_class``
    with the sizes the script's command line has (``SIZE_ARGS``), what every workload here sets (4096 positions,
    BOS 1, padding 0, no EOS: every request decodes exactly its --new-tokens), then ``config``, which wins."""
    from transformers import AutoModelForCausalLM

    sizes = {field: getattr(args, name) for name, field in SIZE_ARGS.items() if hasattr(args, name)}
    base = {"max_position_embeddings": 4096, "bos_token_id": 1, "eos_token_id": None, "pad_token_id": 0}
    cfg = config_class(**{**sizes, **base, **config})
    with device:
        return AutoModelForCausalLM.from_config(cfg, dtype=torch.bfloat16).eval()


def generate_requests(model, prompt, mask, gen, warmup, iters, pause_ms=0.0):
    """``model.generate`` once per request: ``warmup`` warm-up requests, then ``iters`` measured ones, each timed
    (``Timer``), checked to add exactly ``gen["max_new_tokens"]`` tokens to every sequence, and followed by a pause
    of ``pause_ms``; returns the requests' times (ms)."""
    times = []
    with torch.inference_mode():
        for i in range(warmup + iters):
            with Timer() as t:
                out = model.generate(input_ids=prompt, attention_mask=mask, **gen)
            assert out.shape == (prompt.shape[0], prompt.shape[1] + gen["max_new_tokens"]), out.shape
            times.append(t.ms)
            print(f"request {i} ({'warmup' if i < warmup else 'measured'}): {t.ms:.1f} ms", flush=True)
            if pause_ms:
                time.sleep(pause_ms / 1000)
    return times


def result(**kw):
    kw.setdefault("torch", torch.__version__)
    try:
        import transformers

        kw.setdefault("transformers", transformers.__version__)
    except Exception:
        pass
    if torch.cuda.is_available():
        kw.setdefault("gpu", torch.cuda.get_device_name())
    print("RESULT " + json.dumps(kw), flush=True)
