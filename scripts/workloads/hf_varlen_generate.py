"""transformers `generate` with requests of different lengths: each request has its own prompt length and its own
number of new tokens (the lists cycle), greedy, batch 1, dynamic KV cache, eager, no NVTX, whole process captured.
--model llama: a small dense Llama (random bf16 weights); --model qwen2: the same sizes as a Qwen2 (biased QKV
projections); --model mamba: a small Mamba (state-space layers, no
attention; transformers' PyTorch path when the mamba-ssm kernels are absent). EOS is disabled, so request i makes
exactly its new-token count: 1 prefill pass + (new_tokens - 1) decode passes (printed per request).

    python3 scripts/workloads/hf_varlen_generate.py --model llama --prompt-lens 24,96,48,160 --new-tokens 8,24,16,32
    python3 scripts/workloads/hf_varlen_generate.py --model llama --cudnn-sdp off   # no per-length cuDNN attention
    python3 scripts/workloads/hf_varlen_generate.py --model mamba --layers 4 --new-tokens 16 --warmup 1 --iters 2
"""

import argparse

import torch
from _common import Timer, llama_size_options, random_causal_lm, result, setup

p = argparse.ArgumentParser()
p.add_argument("--model", choices=("llama", "qwen2", "mamba"), default="llama")
llama_size_options(p)
p.add_argument("--prompt-lens", default="32")
p.add_argument("--new-tokens", default="16")
p.add_argument("--warmup", type=int, default=1)
p.add_argument("--iters", type=int, default=3)
p.add_argument(
    "--cudnn-sdp", choices=("on", "off"), default="on",
    help="off: torch.backends.cuda.enable_cudnn_sdp(False), attention without cuDNN's per-shape fused kernels",
)  # fmt: skip
a = p.parse_args()
prompt_lens = [int(x) for x in a.prompt_lens.split(",")]
new_tokens = [int(x) for x in a.new_tokens.split(",")]

dev = setup()
if a.cudnn_sdp == "off":
    torch.backends.cuda.enable_cudnn_sdp(False)
if a.model == "mamba":
    from transformers import AutoModelForCausalLM, MambaConfig

    cfg = MambaConfig(
        hidden_size=a.hidden, num_hidden_layers=a.layers, vocab_size=a.vocab, bos_token_id=1, eos_token_id=None,
        pad_token_id=0,
    )  # fmt: skip
    with dev:
        model = AutoModelForCausalLM.from_config(cfg, dtype=torch.bfloat16).eval()
elif a.model == "qwen2":
    from transformers import Qwen2Config

    model = random_causal_lm(Qwen2Config, dev, a)
else:
    from transformers import LlamaConfig

    model = random_causal_lm(LlamaConfig, dev, a)

times, plan = [], []
with torch.inference_mode():
    for i in range(a.warmup + a.iters):
        n_prompt, n_new = prompt_lens[i % len(prompt_lens)], new_tokens[i % len(new_tokens)]
        prompt = torch.randint(3, a.vocab, (1, n_prompt), device=dev)
        gen = dict(max_new_tokens=n_new, min_new_tokens=None, do_sample=False, eos_token_id=None, pad_token_id=0)
        with Timer() as t:
            out = model.generate(input_ids=prompt, attention_mask=torch.ones_like(prompt), **gen)
        assert out.shape[1] == n_prompt + n_new, out.shape
        times.append(t.ms)
        plan.append({"prompt": n_prompt, "new_tokens": n_new, "passes": n_new, "warmup": i < a.warmup})
        print(f"request {i} ({'warmup' if i < a.warmup else 'measured'}): prompt {n_prompt}, {n_new} new tokens "
              f"(1 prefill + {n_new - 1} decode passes), {t.ms:.1f} ms", flush=True)  # fmt: skip
result(workload="hf_varlen_generate", model=a.model, cudnn_sdp=a.cudnn_sdp, requests=plan, request_ms=times)
