"""A generation loop written by hand around a transformers model (no ``generate``), as custom Python engines do.

A small Llama (LlamaConfig with --layers layers, hidden 1024, 16 heads, 4 KV heads, MLP 2816, vocab 32000, random
bf16 weights; --model gpt2: GPT-2 with --layers, --hidden, --heads), batch --batch, prompt --prompt-len random
tokens. Each request runs the prompt through ``model(input_ids, past_key_values=DynamicCache(), use_cache=True)``,
then --new-tokens - 1 steps that each feed the last token and the cache back (``logits[:, -1].argmax(-1,
keepdim=True)`` on the GPU, or with --sample 1 a draw from the softmax with ``torch.multinomial``; no host sync per
token); the tokens are read back at the end of the request (``.cpu()``). With --no-cache 1 there is no KV cache:
each step runs the whole sequence so far again (``use_cache=False``), the naive loop of a first engine. --warmup
warm-up requests, then --iters measured ones, each followed by a 20 ms sleep. No NVTX, whole process captured. The
truth:
--warmup + --iters requests of 1 prompt pass and --new-tokens - 1 token steps (over 1 token each with the cache,
over the whole growing sequence without it).

    python3 scripts/workloads/hf_manual_decode.py --layers 2 --prompt-len 48 --new-tokens 24 --warmup 1 --iters 3
"""

import argparse
import time

import torch
from _common import llama_size_options, random_causal_lm, result, setup, sync
from transformers import DynamicCache, GPT2Config, LlamaConfig

p = argparse.ArgumentParser()
p.add_argument("--model", choices=("llama", "gpt2"), default="llama")
llama_size_options(p)
p.add_argument("--batch", type=int, default=1)
p.add_argument("--prompt-len", type=int, default=48)
p.add_argument("--new-tokens", type=int, default=24)
p.add_argument("--no-cache", type=int, default=0)
p.add_argument("--sample", type=int, default=0, help="draw each token (softmax, torch.multinomial) instead of argmax")
p.add_argument("--warmup", type=int, default=1)
p.add_argument("--iters", type=int, default=3)
a = p.parse_args()

dev = setup()
if a.model == "gpt2":
    model = random_causal_lm(GPT2Config, dev, a, n_layer=a.layers, n_embd=a.hidden, n_head=a.heads, n_positions=1024)
else:
    model = random_causal_lm(LlamaConfig, dev, a)


def pick(logits: torch.Tensor) -> torch.Tensor:
    """The next token of each sequence: argmax, or a draw from the softmax with --sample 1 (on the GPU)."""
    if a.sample:
        return torch.multinomial(torch.softmax(logits.float(), dim=-1), 1)
    return logits.argmax(-1, keepdim=True)


g = torch.Generator().manual_seed(0)
times = []
with torch.inference_mode():
    for _ in range(a.warmup + a.iters):
        prompt = torch.randint(3, a.vocab, (a.batch, a.prompt_len), generator=g)
        sync()
        t0 = time.perf_counter()
        ids = prompt.to(dev)
        if a.no_cache:
            seq = ids
            for _ in range(a.new_tokens):
                tok = pick(model(input_ids=seq, use_cache=False).logits[:, -1])
                seq = torch.cat([seq, tok], dim=1)
            generated = seq[:, a.prompt_len :].cpu()
        else:
            cache = DynamicCache()
            out = model(input_ids=ids, past_key_values=cache, use_cache=True)
            tok = pick(out.logits[:, -1])
            tokens = [tok]
            for _ in range(a.new_tokens - 1):
                out = model(input_ids=tok, past_key_values=out.past_key_values, use_cache=True)
                tok = pick(out.logits[:, -1])
                tokens.append(tok)
            generated = torch.cat(tokens, dim=1).cpu()
        times.append((time.perf_counter() - t0) * 1e3)
        time.sleep(0.02)
result(
    workload="hf_manual_decode",
    model=a.model,
    sample=a.sample,
    no_cache=a.no_cache,
    requests=a.warmup + a.iters,
    warmup_requests=a.warmup,
    passes_per_request=a.new_tokens,
    request_ms=[round(t, 3) for t in times],
    checksum=int(generated.sum()),
)
