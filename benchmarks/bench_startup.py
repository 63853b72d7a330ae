#!/usr/bin/env python3
"""Start-up cost of small commands against a bare interpreter that imports sqlite3.

    python benchmarks/bench_startup.py [TRACE] [--runs 21] [--python PYTHON] [--no-bytecode] [--before OLD_SRC]

Each command runs as a fresh process, as a user starts it, ``--runs`` times; the runs are interleaved (run i of
every command, in a rotating order, before run i + 1 of any) so that machine noise hits all of them alike. Printed:
the median wall time (and CPU time, user + system, which load on the machine disturbs less) of each and its
ratio to the reference, ``PYTHON -c "import sqlite3"``, measured in the same
run. PYTHON defaults to the interpreter running this script (the one the ``nsys-doctor`` script starts): a
``python3`` found on PATH may be a wrapper (pyenv's shim is a shell script costing ~0.2 s), which would flatter
every ratio. ``import sqlite3, click`` is the floor of any click command line; ``import sqlite3, pathlib,
dataclasses, json, re, typing`` that of any command written with those standard modules. TRACE defaults to the bundled
sample (``nsys-doctor sample``).

Bytecode: by default the children write and read cached bytecode under a temporary PYTHONPYCACHEPREFIX (as an
installed package has its .pyc files; the source tree is left alone); ``--no-bytecode`` measures a Python that
compiles every module at every start (PYTHONDONTWRITEBYTECODE=1, as in some sandboxes).

With ``--before OLD_SRC`` (a directory holding an earlier ``nsys_doctor`` package) every command also runs from
there; both trees then run the console script's lines (``python -c``, as a user's ``nsys-doctor`` starts it;
``-m`` would add runpy's imports) with each first on PYTHONPATH (before what it held: the dependencies may be there).

Timed: ``--help``, ``<command> --help`` for every command of the command table, ``info`` and ``stats -r
cuda_gpu_kern_sum`` on TRACE. Then each command runs once more under ``-X importtime`` to say whether it imported
polars, numpy, rich, pandas or pyarrow. Target: ``--help``, ``info`` and a summary report within 2x of the
reference where the work allows; ``--help`` and ``<command> --help`` never import a heavy package (a test checks
that: tests/test_perf_startup.py).
"""

from __future__ import annotations

import argparse
import os
import platform
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path

from child_env import ENTRY, bytecode_env, entry_script  # beside this script

ROOT = Path(__file__).resolve().parents[1]
SAMPLE = ROOT / "src" / "nsys_doctor" / "data" / "sample_decode.sqlite"
HEAVY = ("polars", "numpy", "rich", "pandas", "pyarrow")
TARGET = 2.0
STDLIB_FLOOR = "import sqlite3, pathlib, dataclasses, json, re, typing"


def commands(python: str, env: dict[str, str]) -> list[str]:
    """Every command of the command table (of the tree ``env`` points at)."""
    code = "from nsys_doctor.cli.main import COMMAND_TABLE; print(' '.join(COMMAND_TABLE))"
    return subprocess.run([python, "-c", code], check=True, capture_output=True, text=True, env=env).stdout.split()


def once(cmd: list[str], env: dict[str, str]) -> tuple[float, float]:
    """(wall, CPU) seconds of one run of ``cmd``; CPU is the child's user + system time (os.wait4)."""
    t0 = time.perf_counter()
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env)
    _, status, usage = os.wait4(proc.pid, 0)
    wall = time.perf_counter() - t0
    proc.returncode = os.waitstatus_to_exitcode(status)
    if proc.returncode != 0:
        raise SystemExit(f"{' '.join(cmd)} exited {proc.returncode}")
    return wall, usage.ru_utime + usage.ru_stime


def heavy_imports(python: str, cmd: list[str], env: dict[str, str]) -> list[str]:
    """The heavy top-level packages ``cmd`` imports (run once under ``python -X importtime``)."""
    argv = [python, "-X", "importtime", *cmd] if cmd[0] != python else [python, "-X", "importtime", *cmd[1:]]
    proc = subprocess.run(argv, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, env=env)
    seen = {line.rsplit("|", 1)[-1].strip() for line in proc.stderr.splitlines() if line.startswith("import time:")}
    return [m for m in HEAVY if m in seen]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("trace", nargs="?", type=Path, default=SAMPLE)
    ap.add_argument("--runs", type=int, default=21)
    ap.add_argument("--python", default=sys.executable, help="interpreter of the reference (default: this one)")
    ap.add_argument(
        "--no-bytecode",
        action="store_true",
        help="run with PYTHONDONTWRITEBYTECODE=1 and no cached bytecode (every module compiled at every start)",
    )
    ap.add_argument("--before", type=Path, help="also run the commands from this earlier source directory")
    a = ap.parse_args()
    env, pyc_dir = bytecode_env(a.no_bytecode)
    base = entry_script(a.python)
    trace = str(a.trace)
    runs: dict[str, tuple[list[str], dict[str, str]]] = {
        'python -c "import sqlite3"': ([a.python, "-c", "import sqlite3"], env),
        'python -c "import click" (floor)': ([a.python, "-c", "import sqlite3, click"], env),
        # the standard library that reading a trace and printing a table in Python commonly takes (paths, data
        # classes, JSON, regular expressions, typing), without any code of ours: how far 2x is from any program
        # written that way
        'python -c "import sqlite3, pathlib, ..."': ([a.python, "-c", STDLIB_FLOOR], env),
    }
    trees = [("", base, env)]
    if a.before is not None:  # both trees run the console script's lines, each from its own source directory
        module = [a.python, "-c", ENTRY]
        rest = [p for p in env.get("PYTHONPATH", "").split(os.pathsep) if p]  # where the dependencies may be

        def first(tree: Path) -> str:
            return os.pathsep.join([str(tree), *rest])

        trees = [
            (" [after]", module, dict(env, PYTHONPATH=first(ROOT / "src"))),
            (" [before]", module, dict(env, PYTHONPATH=first(a.before.resolve()))),
        ]
    for tag, cli, tree_env in trees:
        runs[f"--help{tag}"] = ([*cli, "--help"], tree_env)
        for command in commands(a.python, tree_env):
            runs[f"{command} --help{tag}"] = ([*cli, command, "--help"], tree_env)
        runs[f"info SAMPLE{tag}"] = ([*cli, "info", trace], tree_env)
        runs[f"stats -r cuda_gpu_kern_sum SAMPLE{tag}"] = ([*cli, "stats", "-r", "cuda_gpu_kern_sum", trace], tree_env)
    for cmd, run_env in runs.values():  # warm the page cache and the bytecode caches
        subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=run_env)
    times: dict[str, list[float]] = {k: [] for k in runs}
    cpu: dict[str, list[float]] = {k: [] for k in runs}
    names = list(runs)
    for i in range(a.runs):
        for k in names[i % len(names) :] + names[: i % len(names)]:
            wall, used = once(*runs[k])
            times[k].append(wall)
            cpu[k].append(used)
    med = {k: statistics.median(v) for k, v in times.items()}
    med_cpu = {k: statistics.median(v) for k, v in cpu.items()}
    ref_name = names[0]
    ref, ref_cpu = med[ref_name], med_cpu[ref_name]
    print(f"host: {platform.node() or '?'}, {os.cpu_count()} CPUs, Python {platform.python_version()}")
    shown = " ".join(trees[0][1]) + ("" if a.before is None else f" (PYTHONPATH: src; before: {a.before})")
    print(f"nsys-doctor: {shown}; trace: {trace}")
    mode = "no bytecode cache (PYTHONDONTWRITEBYTECODE=1)" if a.no_bytecode else "bytecode cached (PYTHONPYCACHEPREFIX)"
    print(f"median of {a.runs} interleaved runs each, whole processes; {mode}")
    print()
    print(f"{'command':<46} {'wall s':>7} {'min s':>7} {'ratio':>7} {'CPU s':>7} {'ratio':>7}  imports")
    print(f"{'-' * 46} {'-' * 7} {'-' * 7} {'-' * 7} {'-' * 7} {'-' * 7}  {'-' * 18}")
    for k in names:
        heavy = "" if k == ref_name else (", ".join(heavy_imports(a.python, *runs[k])) or "none heavy")
        print(
            f"{k:<46} {med[k]:>7.3f} {min(times[k]):>7.3f} {med[k] / ref:>6.2f}x "
            f"{med_cpu[k]:>7.3f} {med_cpu[k] / ref_cpu:>6.2f}x  {heavy}"
        )
    print()
    print(f"target: within {TARGET:.0f}x of the reference where the work allows (the stats report needs polars)")
    if pyc_dir is not None:
        shutil.rmtree(pyc_dir, ignore_errors=True)


if __name__ == "__main__":
    main()
