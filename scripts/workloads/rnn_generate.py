"""Token-by-token generation with a recurrent language model: embedding, a multi-layer LSTM or GRU (cuDNN,
--cell) and a linear head over the vocabulary, random weights, fp16.

Each request feeds a prompt of --prompt-len tokens (--batch sequences) through the LSTM in one call (cuDNN loops
over its time steps), then generates --new-tokens tokens one at a time: each step feeds the last token and the
recurrent state back in (one time step per layer), takes the argmax on the GPU and keeps it there; the tokens are
read back at the end of the request (``.cpu()``). --warmup warm-up requests, then --iters measured ones, each
followed by a 20 ms sleep. No NVTX, whole process captured. The truth: --warmup + --iters requests of 1 prompt pass
and --new-tokens - 1 decode steps (an LLM decode run whose model is no transformer).

    python3 scripts/workloads/rnn_generate.py --layers 2 --batch 4 --prompt-len 64 --new-tokens 32 --warmup 1 --iters 3
"""

import argparse
import time

import torch
from _common import result, setup, sync

p = argparse.ArgumentParser()
p.add_argument("--cell", choices=("lstm", "gru"), default="lstm")
p.add_argument("--layers", type=int, default=2)
p.add_argument("--hidden", type=int, default=1024)
p.add_argument("--vocab", type=int, default=32000)
p.add_argument("--batch", type=int, default=4)
p.add_argument("--prompt-len", type=int, default=64)
p.add_argument("--new-tokens", type=int, default=32)
p.add_argument("--warmup", type=int, default=1)
p.add_argument("--iters", type=int, default=3)
a = p.parse_args()

dev = setup()
embed = torch.nn.Embedding(a.vocab, a.hidden).to(dev, torch.float16)
cell = torch.nn.LSTM if a.cell == "lstm" else torch.nn.GRU
rnn = cell(a.hidden, a.hidden, num_layers=a.layers, batch_first=True).to(dev, torch.float16)
head = torch.nn.Linear(a.hidden, a.vocab).to(dev, torch.float16)
g = torch.Generator().manual_seed(0)
times = []
with torch.inference_mode():
    for _ in range(a.warmup + a.iters):
        prompt = torch.randint(3, a.vocab, (a.batch, a.prompt_len), generator=g)
        sync()
        t0 = time.perf_counter()
        out, state = rnn(embed(prompt.to(dev)))
        tok = head(out[:, -1]).argmax(-1, keepdim=True)
        tokens = [tok]
        for _ in range(a.new_tokens - 1):
            out, state = rnn(embed(tok), state)
            tok = head(out[:, -1]).argmax(-1, keepdim=True)
            tokens.append(tok)
        generated = torch.cat(tokens, dim=1).cpu()
        times.append((time.perf_counter() - t0) * 1e3)
        time.sleep(0.02)
result(
    workload="rnn_generate",
    cell=a.cell,
    requests=a.warmup + a.iters,
    warmup_requests=a.warmup,
    prefill_steps_per_request=1,
    decode_steps_per_request=a.new_tokens - 1,
    request_ms=[round(t, 3) for t in times],
    checksum=int(generated.sum()),
)
