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
