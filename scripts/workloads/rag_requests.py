"""Retrieval then generation, per request (two models): a BERT encoder (transformers `BertModel`, random bf16
weights, --enc-layers) embeds the question and --docs candidate passages (one batch of --docs + 1 texts of
--enc-len tokens), the host reads the similarities back (`.cpu()`) and picks the --top best passages, whose ids
join the question's to make the prompt (so its length changes with the passages picked: 16 to 48 tokens each); a
small Llama (llama_size_options) then answers with `generate` (greedy, no EOS, dynamic KV cache, eager). No NVTX,
whole process captured. Truth: --warmup + --iters requests, each 1 encoder pass, 1 prefill pass and --new-tokens - 1
decode passes.

    python3 scripts/workloads/rag_requests.py --enc-layers 6 --layers 4 --docs 16 --top 3 --new-tokens 20
"""

import argparse

import torch
from _common import Timer, llama_size_options, random_causal_lm, result, setup
from transformers import BertConfig, BertModel, LlamaConfig

p = argparse.ArgumentParser()
llama_size_options(p, layers=4)
p.add_argument("--enc-layers", type=int, default=6)
p.add_argument("--enc-len", type=int, default=128)
p.add_argument("--docs", type=int, default=16)
p.add_argument("--top", type=int, default=3)
p.add_argument("--question-len", type=int, default=24)
p.add_argument("--new-tokens", type=int, default=20)
p.add_argument("--warmup", type=int, default=1)
p.add_argument("--iters", type=int, default=3)
a = p.parse_args()

dev = setup()
enc_cfg = BertConfig(hidden_size=768, num_hidden_layers=a.enc_layers, num_attention_heads=12, intermediate_size=3072,
                     vocab_size=30522)  # fmt: skip
with dev:
    encoder = BertModel(enc_cfg).to(torch.bfloat16).eval()
lm = random_causal_lm(LlamaConfig, dev, a)

g = torch.Generator().manual_seed(0)
passages = [torch.randint(2, a.vocab, (int(torch.randint(16, 49, (1,), generator=g)),), generator=g) for _ in range(64)]
times, prompt_lens, news = [], [], []
for _ in range(a.warmup + a.iters):
    question = torch.randint(2, a.vocab, (a.question_len,), generator=g)
    cand = torch.randperm(len(passages), generator=g)[: a.docs]
    enc_ids = torch.randint(0, 30522, (a.docs + 1, a.enc_len), generator=g)
    with Timer() as t, torch.inference_mode():
        h = encoder(input_ids=enc_ids.to(dev)).last_hidden_state.mean(1).float()
        h = torch.nn.functional.normalize(h, dim=1)
        best = (h[1:] @ h[0]).topk(a.top).indices.cpu()
        prompt = torch.cat([torch.ones(1, dtype=torch.long), question, *(passages[int(cand[i])] for i in best)])[None]
        out = lm.generate(
            input_ids=prompt.to(dev), attention_mask=torch.ones_like(prompt).to(dev), max_new_tokens=a.new_tokens,
            min_new_tokens=a.new_tokens, do_sample=False,
        )  # fmt: skip
    times.append(t.ms)
    prompt_lens.append(int(prompt.shape[1]))
    news.append(int(out.shape[1] - prompt.shape[1]))
result(
    workload="rag_requests",
    requests=a.warmup + a.iters,
    warmup_requests=a.warmup,
    encoder_passes_per_request=1,
    prompt_lens=prompt_lens,
    new_tokens=news,
    decode_passes_per_request=[n - 1 for n in news],
    request_ms=[round(t, 3) for t in times],
)
