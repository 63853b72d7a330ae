"""Call sites: the host code behind the slowest CUDA API calls, from the captured call chains."""

from __future__ import annotations

import re

import polars as pl

from ...units import format_ns
from ..phases import Window
from .memory import number

# modules of the CUDA runtime, driver and profiler: the frames below the application's own call
_CUDA_MODULES = re.compile(r"(libcupti|libcuda\.so|libcudart|libToolsInjection|libnvToolsExt|libnvperf)", re.I)
_INTERPRETER = re.compile(r"(^|/)(python[\d.]*|libpython[\d.]*\.so[\d.]*)$")
_PROGRAM_ENTRY = frozenset({"main", "__libc_start_main", "_start", "__libc_start_call_main"})
# frames that only pass a call along (PyTorch's dispatcher, std::function): left out of the shown path
_PLUMBING = re.compile(
    r"^(c10::impl::|c10::Dispatcher|c10::BoxedKernel|c10::KernelFunction|at::_ops::|std::|"
    r"torch::autograd::VariableType::|c10::detail::)"
)


def short_symbol(symbol: str) -> str:
    """A C++ symbol without parameters, template arguments, return type and lambda parts:
    ``at::native::_local_scalar_dense_cuda(at::Tensor const&)::{lambda()#1}::operator()() const`` ->
    ``at::native::_local_scalar_dense_cuda``."""
    depth, out = 0, []
    for ch in symbol:
        if ch in "<(":
            depth += 1
        elif ch in ">)" and depth:
            depth -= 1
        elif depth == 0:
            out.append(ch)
    s = "".join(out).strip()
    s = re.sub(r"\s+const$", "", s)
    s = s.split("::{lambda")[0]
    s = s.rsplit(" ", 1)[-1] if " " in s else s
    s = re.sub(r"(::)+", "::", s).strip(":")
    return s or symbol


Frame = tuple[str | None, str | None, bool | None]  # symbol, module, unresolved


def _site(frames: tuple[Frame, ...]) -> tuple[str | None, str | None, list[str], list[str]]:
    """(issuer, entry, path, stack) of one call chain (innermost first): the first frame outside the CUDA
    libraries, the last native frame before the interpreter (or the program's entry), the meaningful frames
    between them, and the stack as short names."""
    stack: list[str] = []
    own: list[str] = []
    for sym, mod, unres in frames:
        name = short_symbol(str(sym)) if sym and not unres else f"?? ({str(mod or '?').rsplit('/', 1)[-1]})"
        stack.append(name)
        module = str(mod or "")
        if _INTERPRETER.search(module) or name in _PROGRAM_ENTRY:
            break
        if _CUDA_MODULES.search(module) or unres or not sym:
            continue
        if not own or own[-1] != name:
            own.append(name)
    issuer = own[0] if own else None
    entry = own[-1] if own else None
    path = [n for n in own if not _PLUMBING.search(n)]
    if entry is not None and (not path or path[-1] != entry):
        path.append(entry)
    return issuer, entry, path, stack


def callchain_summary(
    calls: pl.DataFrame, frames: pl.DataFrame, window: Window, top: int = 8
) -> dict[str, object] | None:
    """The ``callchains`` section: CUDA API calls with a host call stack in the window, grouped by API and call
    site (the application frames between the CUDA library and the interpreter), the most time first."""
    c = calls.filter((pl.col("start") >= window.start) & (pl.col("start") <= window.end))
    if c.is_empty():
        return None
    # the frames of each chain, innermost first; chains with the same frames are read once
    stacks: dict[int, list[Frame]] = {}
    used = frames.filter(pl.col("chain").is_in(c["chain"].unique().to_list())).sort(["chain", "depth"])
    for chain, sym, mod, unres in used.select("chain", "symbol", "module", "unresolved").iter_rows():
        stacks.setdefault(int(chain), []).append((sym, mod, unres))
    by_frames: dict[tuple[Frame, ...], tuple[str | None, str | None, list[str], list[str]]] = {}
    sites: dict[int, tuple[str | None, str | None, list[str], list[str]]] = {}
    for chain, st in stacks.items():
        key = tuple(st)
        if key not in by_frames:
            by_frames[key] = _site(key)
        sites[chain] = by_frames[key]
    chains = c["chain"].unique().to_list()
    paths = pl.DataFrame(
        {"chain": chains, "path_key": [" <- ".join(sites.get(int(x), (None, None, [], []))[2]) for x in chains]},
        schema={"chain": pl.Int64, "path_key": pl.Utf8},
    )
    keyed = c.join(paths, on="chain", how="left")
    groups = (
        keyed.group_by("name", "path_key")
        .agg(
            pl.len().alias("count"),
            pl.col("dur").sum().alias("total_ns"),
            pl.col("dur").max().alias("max_ns"),
            pl.col("dur").median().alias("p50_ns"),
            pl.col("chain").sort_by(["dur", "chain"], descending=[True, False]).first().alias("slowest_chain"),
        )
        .sort(["total_ns", "name", "path_key"], descending=[True, False, False])
    )
    rows = []
    for g in groups.head(top).iter_rows(named=True):
        issuer, entry, path, stack = sites.get(int(g["slowest_chain"]), (None, None, [], []))
        rows.append(
            {
                "api": g["name"],
                "count": g["count"],
                "total_ns": int(g["total_ns"]),
                "max_ns": int(g["max_ns"]),
                "p50_ns": int(g["p50_ns"]),
                "issuer": issuer,
                "entry": entry,
                "path": path,
                "stack": stack[:24],
            }
        )
    return {
        "calls": c.height,
        "api_time_ns": int(c["dur"].sum()),
        "sites": rows,
        "note": "only calls longer than the --cudabacktrace threshold carry a stack; collecting stacks slows the "
        "host, so host-side times of this trace are inflated",
    }


def describe_callsite(s: dict[str, object], frames: int = 3) -> str:
    """One line per call site: the API, how often and how long, and its path (the first ``frames`` application
    frames, then the frame where the program entered native code)."""
    listed = s.get("path")
    path = [str(p) for p in listed] if isinstance(listed, list | tuple) else []
    if len(path) > frames + 1:
        path = [*path[:frames], "...", path[-1]]
    text = " <- ".join(path) or "(no application frame)"
    total, longest = format_ns(number(s["total_ns"])), format_ns(number(s["max_ns"]))
    return f"{s['api']} x{s['count']} ({total} in all, max {longest}): {text}"
