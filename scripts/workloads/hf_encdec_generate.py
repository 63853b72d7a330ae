"""transformers `generate` with an encoder-decoder: T5 (or BART with --model bart; random bf16 weights from a
config), greedy, batch 1 (--batch).

One encoder pass over the --input-len tokens, then --new-tokens decoder passes (min_new_tokens = max_new_tokens;
the first decoder pass starts from the decoder start token). After each request torch.cuda.synchronize(), then a
pause of --pause-ms (50 ms; 0: the next request at once). --warmup warm-up requests, then --iters measured ones; no
NVTX, whole process captured.

    python3 scripts/workloads/hf_encdec_generate.py --layers 4 --input-len 64 --new-tokens 24 --warmup 1 --iters 2
"""

import argparse
import time

import torch
from _common import Timer, result, setup
from transformers import BartConfig, BartForConditionalGeneration, T5Config, T5ForConditionalGeneration

p = argparse.ArgumentParser()
p.add_argument("--layers", type=int, default=4)
p.add_argument("--input-len", type=int, default=64)
p.add_argument("--new-tokens", type=int, default=24)
p.add_argument("--warmup", type=int, default=1)
p.add_argument("--iters", type=int, default=2)
p.add_argument("--model", default="t5", choices=["t5", "bart"])
p.add_argument("--batch", type=int, default=1)
p.add_argument("--pause-ms", type=float, default=50.0)
p.add_argument("--no-cache", type=int, default=0, help="use_cache=False: every decoder pass over all tokens so far")
a = p.parse_args()

dev = setup()
if a.model == "bart":
    bart = BartConfig(
        d_model=512,
        encoder_layers=a.layers,
        decoder_layers=a.layers,
        encoder_attention_heads=8,
        decoder_attention_heads=8,
        encoder_ffn_dim=2048,
        decoder_ffn_dim=2048,
        vocab_size=32000,
        decoder_start_token_id=2,
        pad_token_id=1,
        bos_token_id=0,
        eos_token_id=2,
        forced_bos_token_id=None,
        forced_eos_token_id=None,
    )
    model = BartForConditionalGeneration(bart).to(dev, torch.bfloat16).eval()
else:
    cfg = T5Config(
        d_model=512,
        d_ff=2048,
        num_layers=a.layers,
        num_decoder_layers=a.layers,
        num_heads=8,
        decoder_start_token_id=0,
        pad_token_id=0,
        eos_token_id=1,
    )
    model = T5ForConditionalGeneration(cfg).to(dev, torch.bfloat16).eval()
x = torch.randint(3, 32000, (a.batch, a.input_len), device=dev)
gen = dict(max_new_tokens=a.new_tokens, min_new_tokens=a.new_tokens, do_sample=False)
if a.no_cache:
    gen["use_cache"] = False
times = []
with torch.inference_mode():
    for i in range(a.warmup + a.iters):
        with Timer() as t:
            out = model.generate(input_ids=x, attention_mask=torch.ones_like(x), **gen)
        times.append(t.ms)
        print(f"request {i}: {t.ms:.1f} ms, output {tuple(out.shape)}", flush=True)
        time.sleep(a.pause_ms / 1000)
meas = times[a.warmup :]
result(
    workload="hf_encdec_generate",
    model=a.model,
    batch=a.batch,
    pause_ms=a.pause_ms,
    request_ms=times,
    ms_per_token_measured=sum(meas) / len(meas) / a.new_tokens,
)
