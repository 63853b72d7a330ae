"""transformers `generate` with a small decoder of another model family (random bf16 weights).

The family's own modelling code from transformers (OPT, GPT-NeoX, Falcon, Phi, Gemma, BLOOM, GPT-J): their attention,
norms, activations and position schemes differ from Llama's, and with them the kernels. Greedy decoding, the dynamic
KV cache, eager PyTorch, no NVTX, no capture range: the whole process is meant to be captured (model construction,
--warmup warm-up requests, then --iters measured ones, --pause-ms between requests). EOS is disabled, so each request
is 1 prefill pass + (new_tokens - 1) decode passes.

    python3 scripts/workloads/hf_family_generate.py --family opt --layers 4 --prompt-len 64 --new-tokens 24
"""

import argparse

import torch
from _common import generate_requests, result, setup

p = argparse.ArgumentParser()
p.add_argument("--family", default="opt", choices=("opt", "gpt_neox", "falcon", "phi", "gemma", "bloom", "gptj"))
p.add_argument("--layers", type=int, default=4)
p.add_argument("--hidden", type=int, default=768)
p.add_argument("--heads", type=int, default=12)
p.add_argument("--vocab", type=int, default=32000)
p.add_argument("--batch", type=int, default=1)
p.add_argument("--prompt-len", type=int, default=64)
p.add_argument("--new-tokens", type=int, default=24)
p.add_argument("--pause-ms", type=float, default=30.0)
p.add_argument("--warmup", type=int, default=1)
p.add_argument("--iters", type=int, default=3)
a = p.parse_args()

h, n, ff = a.hidden, a.heads, 4 * a.hidden
sizes = {
    "opt": dict(hidden_size=h, num_hidden_layers=a.layers, num_attention_heads=n, ffn_dim=ff, word_embed_proj_dim=h),
    "gpt_neox": dict(hidden_size=h, num_hidden_layers=a.layers, num_attention_heads=n, intermediate_size=ff),
    "falcon": dict(hidden_size=h, num_hidden_layers=a.layers, num_attention_heads=n, multi_query=True),
    "phi": dict(hidden_size=h, num_hidden_layers=a.layers, num_attention_heads=n, intermediate_size=ff),
    "gemma": dict(
        hidden_size=h,
        num_hidden_layers=a.layers,
        num_attention_heads=n,
        num_key_value_heads=1,
        head_dim=h // n,
        intermediate_size=ff,
    ),
    "bloom": dict(hidden_size=h, n_layer=a.layers, n_head=n),
    "gptj": dict(n_embd=h, n_layer=a.layers, n_head=n, rotary_dim=32, n_positions=4096),
}[a.family]

dev = setup()
from transformers import AutoConfig, AutoModelForCausalLM  # noqa: E402

cfg = AutoConfig.for_model(
    a.family,
    vocab_size=a.vocab,
    max_position_embeddings=4096,
    bos_token_id=1,
    eos_token_id=None,
    pad_token_id=0,
    **sizes,
)
with dev:
    model = AutoModelForCausalLM.from_config(cfg, dtype=torch.bfloat16).eval()
gen = dict(max_new_tokens=a.new_tokens, min_new_tokens=None, do_sample=False, eos_token_id=None, pad_token_id=0)
prompt = torch.randint(3, a.vocab, (a.batch, a.prompt_len), device=dev)
mask = torch.ones_like(prompt)

times = generate_requests(model, prompt, mask, gen, a.warmup, a.iters, a.pause_ms)
meas = times[a.warmup :]
result(
    workload="hf_family_generate",
    family=a.family,
    request_ms=times,
    ms_per_token_measured=sum(meas) / len(meas) / a.new_tokens,
)
