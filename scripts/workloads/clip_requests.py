"""Image-text retrieval served as requests: transformers CLIPModel (random weights, the default ViT-B/32-sized
config), fp16, eager. Each request scores --images random images against --texts random token sequences of 77:
one call of the model (its vision encoder, then its text encoder, then the similarity GEMM), then the best text
per image is read back to the host (one D2H copy and sync).

--warmup requests, then --iters measured ones, back to back (no pause, no NVTX, whole process captured). Truth:
warmup + iters requests, each one model call (two encoders of 12 layers each).

    python3 scripts/workloads/clip_requests.py --images 8 --texts 16 --warmup 2 --iters 12
"""

import argparse

import torch
from _common import Timer, result, setup
from transformers import CLIPConfig, CLIPModel

p = argparse.ArgumentParser()
p.add_argument("--images", type=int, default=8)
p.add_argument("--texts", type=int, default=16)
p.add_argument("--warmup", type=int, default=2)
p.add_argument("--iters", type=int, default=12)
a = p.parse_args()

dev = setup()
model = CLIPModel(CLIPConfig()).eval().to(dev, torch.float16)
cfg = model.config
times = []
with torch.inference_mode():
    for i in range(a.warmup + a.iters):
        pixels = torch.randn(a.images, 3, cfg.vision_config.image_size, cfg.vision_config.image_size)
        ids = torch.randint(0, cfg.text_config.vocab_size, (a.texts, 77))
        with Timer() as t:
            out = model(input_ids=ids.to(dev), pixel_values=pixels.to(dev, torch.float16))
            best = out.logits_per_image.argmax(1).cpu()
        times.append(t.ms)
        print(f"request {i} ({'warmup' if i < a.warmup else 'measured'}): {t.ms:.1f} ms", flush=True)
result(workload="clip_requests", images=a.images, texts=a.texts, warmup=a.warmup, iters=a.iters,
       requests=a.warmup + a.iters, request_ms=times)  # fmt: skip
