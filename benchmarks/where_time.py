"""Where ``report``'s analyses spend their wall time: every function of ``nsys_doctor.analysis`` timed inclusively.

    python benchmarks/where_time.py TRACE [--top 40] [--before OLD_SRC]

cProfile charges numpy and polars calls made from Python unevenly (a function that calls numpy on millions of rows
can show several times its wall time, or a fraction of it), so this measures instead: in a fresh process (the frame
and result caches off), every function and method defined in the ``nsys_doctor.analysis`` modules is wrapped in a
wall-clock timer (in its module and wherever another module imported it by name), then the trace is read
(``frames``) and analyzed (``launched`` + ``structure``, then ``diagnose``) as ``report`` does. Printed: the wall
time of each stage, then per function its calls and inclusive wall seconds (a function's time includes what it
calls: nested entries overlap), the ``--top`` most expensive. With ``--before OLD_SRC`` (a directory holding an
earlier ``nsys_doctor`` package) the same runs from there, in the same call, side by side.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

CHILD = r"""
import functools, importlib, json, pkgutil, sys, time, types
import nsys_doctor.analysis
for m in pkgutil.walk_packages(nsys_doctor.analysis.__path__, "nsys_doctor.analysis."):
    importlib.import_module(m.name)
from nsys_doctor.loaders import load_rules
from nsys_doctor.session import TraceSession, WindowChoice
from nsys_doctor.trace import Trace

times = {}

def timed(fn, name):
    @functools.wraps(fn)
    def run(*args, **kwargs):
        t = time.perf_counter()
        try:
            return fn(*args, **kwargs)
        finally:
            entry = times.setdefault(name, [0, 0.0])
            entry[0] += 1
            entry[1] += time.perf_counter() - t
    return run

mods = {n: m for n, m in sys.modules.items() if n.startswith("nsys_doctor.analysis") and m is not None}
wrapped = {}
for name, mod in mods.items():
    short = name.removeprefix("nsys_doctor.analysis.")
    for obj in list(vars(mod).values()):
        if isinstance(obj, types.FunctionType) and obj.__module__ == name:
            wrapped[id(obj)] = timed(obj, f"{short}.{obj.__name__}")
        elif isinstance(obj, type) and obj.__module__ == name:
            for attr, member in list(vars(obj).items()):
                if isinstance(member, types.FunctionType) and not attr.startswith("__"):
                    setattr(obj, attr, timed(member, f"{short}.{obj.__name__}.{attr}"))
for mod in [m for n, m in sys.modules.items() if n.startswith("nsys_doctor") and m is not None]:
    for attr, obj in list(vars(mod).items()):
        if isinstance(obj, types.FunctionType) and id(obj) in wrapped:
            setattr(mod, attr, wrapped[id(obj)])

stages = {}
with TraceSession(Trace.open(sys.argv[1]), load_rules(None), WindowChoice(None, None, False, None, None)) as s:
    for stage, work in (
        ("read", lambda: s.frames),
        ("launched + structure", lambda: (s.launched, s.structure)),
        ("diagnose", lambda: s.diagnose(10)),
    ):
        t = time.perf_counter()
        work()
        stages[stage] = time.perf_counter() - t
print(json.dumps({"stages": stages, "functions": times}))
"""


def measure(trace: Path, src: Path) -> dict:
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(src), *filter(None, [os.environ.get("PYTHONPATH")])]))
    env.update(NSYS_DOCTOR_NO_CACHE="1", NSYS_DOCTOR_NO_RESULT_CACHE="1")
    out = subprocess.run([sys.executable, "-c", CHILD, str(trace)], env=env, capture_output=True, check=True)
    return json.loads(out.stdout.decode().splitlines()[-1])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("trace", type=Path)
    ap.add_argument("--top", type=int, default=40)
    ap.add_argument("--before", type=Path, help="an earlier source directory, measured in the same call")
    a = ap.parse_args()
    runs = {"after": measure(a.trace, ROOT / "src")}
    if a.before is not None:
        runs["before"] = measure(a.trace, a.before.resolve())
    tags = list(runs)
    print(f"trace: {a.trace}; wall seconds, one run each" + (" (after = this tree)" if a.before else ""))
    print(f"{'stage':<44}" + "".join(f"{t:>10}" for t in tags))
    for stage in runs["after"]["stages"]:
        print(f"{stage:<44}" + "".join(f"{runs[t]['stages'].get(stage, float('nan')):>10.3f}" for t in tags))
    print()
    print(f"{'function (inclusive: nested entries overlap)':<60}{'calls':>7}" + "".join(f"{t:>10}" for t in tags))
    after = runs["after"]["functions"]
    names = set(after) | (set(runs["before"]["functions"]) if a.before else set())
    top = sorted(names, key=lambda n: -max(runs[t]["functions"].get(n, [0, 0.0])[1] for t in tags))[: a.top]
    for name in top:
        calls = after.get(name, runs.get("before", {}).get("functions", {}).get(name, [0, 0.0]))[0]
        cells = "".join(
            f"{runs[t]['functions'][name][1]:>10.3f}" if name in runs[t]["functions"] else f"{'-':>10}" for t in tags
        )
        print(f"{name[:59]:<60}{calls:>7}{cells}")


if __name__ == "__main__":
    main()
