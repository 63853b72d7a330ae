"""Guards against captures that measure the wrong thing: debug builds, graph-level tracing, serialized launches.

``build_guard(command)`` refuses (returns a reason for) a command that runs unoptimized code:

* ``cargo run`` / ``cargo test`` without ``-r``/``--release`` (or with ``--profile dev``/``test``): the dev
  profile builds at opt-level 0 and GPU-side host code is 10x slower. ``cargo bench`` builds with the optimized
  ``bench`` profile by default, so it is refused only with ``--profile dev``/``test``.
* an executable under ``target/debug/``;
* a CMake ``Debug`` build: ``-DCMAKE_BUILD_TYPE=Debug`` on the command line, or an executable whose build tree's
  ``CMakeCache.txt`` says ``CMAKE_BUILD_TYPE:STRING=Debug`` (an empty build type only warns: no -O flags).
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

CARGO_RUNNERS = {"run": "run", "r": "run", "test": "test", "t": "test", "bench": "bench", "b": "bench"}
DEBUG_PROFILES = ("dev", "test", "debug")
_ENV_ASSIGN = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*=")


@dataclass(frozen=True)
class GuardResult:
    refuse: str | None = None  # why the command must not be profiled (unless --allow-debug)
    warnings: list[str] = field(default_factory=list)


def strip_wrappers(command: Sequence[str]) -> tuple[list[str], dict[str, str]]:
    """Drop a leading ``env`` and ``VAR=value`` words; return the rest and the assignments."""
    words = list(command)
    assigned: dict[str, str] = {}
    while words:
        w = words[0]
        if os.path.basename(w) == "env":
            words.pop(0)
            while words and words[0].startswith("-"):
                words.pop(0)
        elif _ENV_ASSIGN.match(w):
            k, v = w.split("=", 1)
            assigned[k] = v
            words.pop(0)
        else:
            break
    return words, assigned


def cargo_reason(words: Sequence[str]) -> str | None:
    """Why a cargo command builds unoptimized code, or None."""
    if not words or os.path.basename(words[0]) != "cargo":
        return None
    rest = [w for w in words[1:]]
    while rest and rest[0].startswith("+"):  # toolchain: cargo +nightly run
        rest.pop(0)
    sub = None
    i = 0
    while i < len(rest):
        if not rest[i].startswith("-"):
            sub = rest[i]
            break
        i += 1
    if sub not in CARGO_RUNNERS:
        return None
    kind = CARGO_RUNNERS[sub]
    args = rest[i + 1 :]
    if "--" in args:
        args = args[: args.index("--")]  # what follows goes to the program
    profile = None
    release = False
    for j, a in enumerate(args):
        if a in ("-r", "--release") or (re.fullmatch(r"-[A-Za-z]+", a) and "r" in a[1:]):
            release = True
        elif a == "--profile" and j + 1 < len(args):
            profile = args[j + 1]
        elif a.startswith("--profile="):
            profile = a.split("=", 1)[1]
    line = " ".join([*words[:2], "..."])
    if profile is not None:
        if profile in DEBUG_PROFILES:
            return f"`{line}` builds with --profile {profile} (unoptimized): traces of debug builds mislead"
        return None
    if release or kind == "bench":
        return None
    return (
        f"`cargo {sub}` without -r/--release builds the dev profile (opt-level 0): GPU kernels launch 10x slower "
        "and the trace misleads"
    )


def read_cmake_cache(executable: str, depth: int = 4) -> str | None:
    """The ``CMakeCache.txt`` of the build tree an executable lives in (looked up ``depth`` levels), or None."""
    p = Path(executable)
    if not p.is_file():
        return None
    for d in list(p.resolve().parents)[:depth]:
        cache = d / "CMakeCache.txt"
        if cache.is_file():
            try:
                return cache.read_text(encoding="utf-8", errors="replace")
            except OSError:
                return None
    return None


def cmake_build_type(cache_text: str) -> str | None:
    m = re.search(r"^CMAKE_BUILD_TYPE:[A-Z]*=(.*)$", cache_text, re.M)
    return m.group(1).strip() if m else None


def build_guard(command: Sequence[str], cmake_cache: Callable[[str], str | None] = read_cmake_cache) -> GuardResult:
    words, env = strip_wrappers(command)
    warnings: list[str] = []
    if env.get("CUDA_LAUNCH_BLOCKING") == "1" or os.environ.get("CUDA_LAUNCH_BLOCKING") == "1":
        warnings.append("CUDA_LAUNCH_BLOCKING=1 serializes every launch: the trace will not show real overlap")
    if not words:
        return GuardResult(None, warnings)
    reason = cargo_reason(words)
    if reason:
        return GuardResult(reason, warnings)
    exe = words[0]
    if "/target/debug/" in f"/{exe}" or exe.startswith("target/debug/"):
        return GuardResult(f"{exe} is a cargo debug build (target/debug): build with --release", warnings)
    for w in words:
        if re.fullmatch(r"-DCMAKE_BUILD_TYPE(:STRING)?=Debug", w, re.I):
            return GuardResult(f"the command configures a CMake Debug build ({w})", warnings)
    text = cmake_cache(exe)
    if text is not None:
        bt = cmake_build_type(text)
        if bt is not None and bt.lower() == "debug":
            return GuardResult(
                f"{exe} comes from a CMake Debug build (CMAKE_BUILD_TYPE=Debug in CMakeCache.txt)", warnings
            )
        if bt == "":
            warnings.append(
                f"{exe} comes from a CMake build with an empty CMAKE_BUILD_TYPE (no optimization flags by default): "
                "configure with -DCMAKE_BUILD_TYPE=Release"
            )
    return GuardResult(None, warnings)


def graph_trace_warning(graph_trace: str) -> str | None:
    if graph_trace == "graph":
        return (
            "--cuda-graph-trace=graph: each CUDA graph replay is one opaque block; the kernels inside graphs will "
            "be missing from the kernel tables (use the default node to see them)"
        )
    return None
