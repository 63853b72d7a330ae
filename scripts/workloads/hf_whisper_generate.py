"""transformers Whisper `generate` (encoder-decoder speech model): WhisperForConditionalGeneration with random fp16
weights from a small WhisperConfig (whisper-tiny sizes by default: d_model 384, 4 + 4 layers, 6 heads), greedy,
batch 1, on a random log-mel input of 80 x 3000 frames (30 s, short-form: one segment).

Per request: one encoder pass over the 3000 mel frames (two convolutions, then 1500 positions), then exactly
--new-tokens decoder passes (min_new_tokens = max_new_tokens keeps EOS away; the generation config has no language
table, so no language-detection pass; the decoder starts from the single decoder start token). The first decoder
pass also projects the encoder output into every layer's cross-attention keys and values. After each request
torch.cuda.synchronize(), then a pause of --pause-ms (50 ms; 0: the next request at once). --warmup warm-up
requests, then --iters measured ones; no NVTX, whole process captured.

    python3 scripts/workloads/hf_whisper_generate.py --layers 4 --new-tokens 32 --warmup 1 --iters 2
"""

import argparse
import time

import torch
from _common import Timer, result, setup
from transformers import WhisperConfig, WhisperForConditionalGeneration

p = argparse.ArgumentParser()
p.add_argument("--layers", type=int, default=4)
p.add_argument("--d-model", type=int, default=384)
p.add_argument("--heads", type=int, default=6)
p.add_argument("--new-tokens", type=int, default=32)
p.add_argument("--warmup", type=int, default=1)
p.add_argument("--iters", type=int, default=2)
p.add_argument("--pause-ms", type=float, default=50.0)
a = p.parse_args()

dev = setup()
cfg = WhisperConfig(
    vocab_size=51865,
    num_mel_bins=80,
    encoder_layers=a.layers,
    decoder_layers=a.layers,
    encoder_attention_heads=a.heads,
    decoder_attention_heads=a.heads,
    d_model=a.d_model,
    encoder_ffn_dim=4 * a.d_model,
    decoder_ffn_dim=4 * a.d_model,
    max_source_positions=1500,
    max_target_positions=448,
)
dt = torch.float16 if dev.type == "cuda" else torch.float32
model = WhisperForConditionalGeneration(cfg).to(dev, dt).eval()
feats = torch.randn(1, 80, 3000, device=dev, dtype=dt)
gen = dict(max_new_tokens=a.new_tokens, min_new_tokens=a.new_tokens, do_sample=False)
times = []
with torch.inference_mode():
    for i in range(a.warmup + a.iters):
        with Timer() as t:
            out = model.generate(input_features=feats, **gen)
        times.append(t.ms)
        print(
            f"request {i} ({'warmup' if i < a.warmup else 'measured'}): {t.ms:.1f} ms, output {tuple(out.shape)}",
            flush=True,
        )
        time.sleep(a.pause_ms / 1000)
meas = times[a.warmup :]
result(
    workload="hf_whisper_generate",
    request_ms=times,
    output_len=int(out.shape[1]),
    ms_per_token_measured=sum(meas) / len(meas) / a.new_tokens,
)
