#!/usr/bin/env python3
"""Time nsys-doctor's ``nsys stats`` reports on one trace against a bare SQLite scan and, optionally, real nsys.

    python benchmarks/bench_stats.py TRACE.sqlite [--nsys PATH] [--reports a,b] [--repeat 3] [--json FILE]

For each report (default: cuda_gpu_kern_sum, cuda_api_sum, cuda_kern_exec_sum, nvtx_kern_sum):

* ours: open the trace + run the report + render CSV (``Trace.open`` / ``run_report`` / ``render``), timed inside
  a fresh Python process per run (so peak RSS is per report), best of ``--repeat`` runs. ``proc`` is that whole
  process's wall time (interpreter start and imports included). Peak MB is the child's ``ru_maxrss`` (os.wait4).
* bare: ``SELECT count(*), sum(end - start) FROM <table>`` with the stdlib sqlite3 module on a fresh connection,
  best of ``--repeat``; for cuda_kern_exec_sum the kernel + runtime scans, for nvtx_kern_sum kernel + runtime +
  NVTX_EVENTS.
* ratio ours/bare, checked against the target (kernel and API summaries <= 3x, cuda_kern_exec_sum <= 10x;
  nvtx_kern_sum has none, its ratio is reported).

With ``--nsys PATH`` (or ``nsys`` found on PATH, unless ``--no-nsys``), each report is also run as whole commands:
``nsys stats --force-export=false --format csv -o - -r REPORT TRACE`` and ``nsys-doctor stats TRACE -r REPORT
--format csv -o -``, best of ``--nsys-repeat``; the speedup nsys/ours is checked against >= 10x for
cuda_kern_exec_sum and nvtx_kern_sum and >= 1x for every report. An nsys run past ``--nsys-timeout`` seconds is
killed and reported as a lower bound. The page cache is warmed first by reading the whole file and scanning each
table once.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import platform
import shutil
import signal
import sqlite3
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

KERNEL = "CUPTI_ACTIVITY_KIND_KERNEL"
RUNTIME = "CUPTI_ACTIVITY_KIND_RUNTIME"
NVTX = "NVTX_EVENTS"
REPORTS = ("cuda_gpu_kern_sum", "cuda_api_sum", "cuda_kern_exec_sum", "nvtx_kern_sum")
SCANS = {
    "cuda_gpu_kern_sum": (KERNEL,),
    "cuda_api_sum": (RUNTIME,),
    "cuda_kern_exec_sum": (KERNEL, RUNTIME),
    "nvtx_kern_sum": (KERNEL, RUNTIME, NVTX),
}
# ours/bare must be at most this (None: report the ratio only)
RATIO_TARGET: dict[str, float | None] = {
    "cuda_gpu_kern_sum": 3.0,
    "cuda_api_sum": 3.0,
    "cuda_kern_exec_sum": 10.0,
    "nvtx_kern_sum": None,
}
# nsys/ours must be at least this
SPEEDUP_TARGET = {"cuda_gpu_kern_sum": 1.0, "cuda_api_sum": 1.0, "cuda_kern_exec_sum": 10.0, "nvtx_kern_sum": 10.0}

CHILD = r"""
import json, resource, sys, time
path, report = sys.argv[1], sys.argv[2]
t0 = time.perf_counter()
from nsys_doctor.trace import Trace
from nsys_doctor.stats import ReportContext, parse_report_arg, run_report
from nsys_doctor.trace.window import EventFilter
from nsys_doctor.report.nsys_format import Units, render
t1 = time.perf_counter()
with Trace.open(path) as t:
    table = run_report(ReportContext(t, EventFilter()), parse_report_arg(report))
    text = render(table, "csv", Units())
t2 = time.perf_counter()
print(json.dumps({"import_s": t1 - t0, "work_s": t2 - t1, "chars": len(text), "lines": text.count("\n"),
                  "maxrss_kb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss}))
"""


@dataclass
class Proc:
    wall_s: float
    maxrss_mb: float
    rc: int
    stdout: str
    stderr: str
    timed_out: bool = False


def run_timed(cmd: list[str], timeout: float | None = None) -> Proc:
    """Run ``cmd``; wall time, peak RSS of the largest process in its tree (wait4), exit status and output."""
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        t0 = time.perf_counter()
        p = subprocess.Popen(cmd, stdout=out, stderr=err, stdin=subprocess.DEVNULL, start_new_session=True)
        killed = threading.Event()

        def kill() -> None:
            killed.set()
            with contextlib.suppress(ProcessLookupError):
                os.killpg(p.pid, signal.SIGKILL)

        timer = threading.Timer(timeout, kill) if timeout else None
        if timer:
            timer.start()
        try:
            _, status, usage = os.wait4(p.pid, 0)
        finally:
            if timer:
                timer.cancel()
        wall = time.perf_counter() - t0
        p.returncode = os.waitstatus_to_exitcode(status)
        out.seek(0)
        err.seek(0)
        return Proc(
            wall,
            usage.ru_maxrss / 1024,
            p.returncode,
            out.read().decode(errors="replace"),
            err.read().decode(errors="replace"),
            killed.is_set(),
        )


def warm(path: Path, tables: list[str]) -> float:
    t0 = time.perf_counter()
    with path.open("rb") as fh:
        while fh.read(1 << 24):
            pass
    for t in tables:
        bare_scan(path, t)
    return time.perf_counter() - t0


def bare_scan(path: Path, table: str) -> float:
    t0 = time.perf_counter()
    con = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    try:
        con.execute(f'SELECT count(*), sum("end" - start) FROM "{table}"').fetchone()
    finally:
        con.close()
    return time.perf_counter() - t0


def table_counts(path: Path) -> dict[str, int]:
    con = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    try:
        names = {r[0] for r in con.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
        return {
            t: con.execute(f'SELECT count(*) FROM "{t}"').fetchone()[0] for t in (KERNEL, RUNTIME, NVTX) if t in names
        }
    finally:
        con.close()


@dataclass
class Result:
    report: str
    ours_runs: list[float] = field(default_factory=list)
    proc_runs: list[float] = field(default_factory=list)
    peak_mb: float = 0.0
    bare_runs: dict[str, list[float]] = field(default_factory=dict)
    error: str = ""
    out_lines: int = 0
    nsys_runs: list[float] = field(default_factory=list)
    nsys_peak_mb: float = 0.0
    nsys_timeout: bool = False
    nsys_error: str = ""
    cli_runs: list[float] = field(default_factory=list)
    cli_peak_mb: float = 0.0
    cli_error: str = ""
    same_output: str = ""

    @property
    def ours(self) -> float | None:
        return min(self.ours_runs) if self.ours_runs else None

    @property
    def bare(self) -> float:
        return sum(min(v) for v in self.bare_runs.values())


def bench_ours(res: Result, path: Path, python: str, repeat: int) -> None:
    for _ in range(repeat):
        p = run_timed([python, "-c", CHILD, str(path), res.report])
        if p.rc != 0:
            lines = (p.stderr or p.stdout).strip().splitlines() or [f"exit {p.rc}"]
            res.error = lines[-1][:200]
            return
        info = json.loads(p.stdout.strip().splitlines()[-1])
        res.ours_runs.append(info["work_s"])
        res.proc_runs.append(p.wall_s)
        res.peak_mb = max(res.peak_mb, info["maxrss_kb"] / 1024, p.maxrss_mb)
        res.out_lines = info["lines"]


def csv_body(text: str, header_hint: str | None = None) -> list[str]:
    """The CSV lines of a report's output, without any banner lines printed before its header."""
    lines = [ln for ln in text.splitlines() if ln.strip()]
    if header_hint is not None and header_hint in lines:
        return lines[lines.index(header_hint) :]
    for i, ln in enumerate(lines):
        if "," in ln and not ln.startswith(("**", " ")):
            return lines[i:]
    return lines


def bench_nsys(
    res: Result,
    path: Path,
    nsys: str,
    cli: list[str],
    repeat: int,
    timeout: float,
    save: Path | None,
    long_s: float = 60.0,
    deadline: float | None = None,
) -> None:
    """Whole-command timings of our CLI and of ``nsys stats``. An nsys run longer than ``long_s`` is not repeated;
    each nsys run is killed after ``timeout`` s or at ``deadline`` (a perf_counter value), whichever comes first."""
    ours_text = nsys_text = None
    for _ in range(repeat):
        p = run_timed([*cli, "stats", str(path), "-r", res.report, "--format", "csv", "-o", "-"])
        if p.rc != 0:
            res.cli_error = ((p.stderr or p.stdout).strip().splitlines() or [f"exit {p.rc}"])[-1][:200]
            break
        res.cli_runs.append(p.wall_s)
        res.cli_peak_mb = max(res.cli_peak_mb, p.maxrss_mb)
        ours_text = p.stdout
    for i in range(repeat):
        limit = timeout if deadline is None else min(timeout, deadline - time.perf_counter())
        if limit <= 1:
            if i == 0:
                res.nsys_error = "not run: out of time (--deadline)"
            break
        if i and res.nsys_runs and res.nsys_runs[-1] > long_s:
            break
        p = run_timed(
            [nsys, "stats", "--force-export=false", "--format", "csv", "-o", "-", "-r", res.report, str(path)],
            timeout=limit,
        )
        res.nsys_peak_mb = max(res.nsys_peak_mb, p.maxrss_mb)
        if p.timed_out:
            res.nsys_timeout = True
            res.nsys_runs.append(p.wall_s)
            break
        if p.rc != 0:
            res.nsys_error = ((p.stderr or p.stdout).strip().splitlines() or [f"exit {p.rc}"])[-1][:200]
            break
        res.nsys_runs.append(p.wall_s)
        nsys_text = p.stdout
        if save is not None:
            (save / f"nsys_{res.report}.csv").write_text(p.stdout)
            (save / f"nsys_{res.report}.stderr").write_text(p.stderr)
    if save is not None and ours_text is not None:
        (save / f"ours_{res.report}.csv").write_text(ours_text)
    if ours_text is not None and nsys_text is not None:
        ours = csv_body(ours_text)
        theirs = csv_body(nsys_text, ours[0] if ours else None)
        res.same_output = "yes" if ours == theirs else f"NO ({len(ours)} vs {len(theirs)} lines)"


def fmt(v: float | None, spec: str = ".2f") -> str:
    return "-" if v is None else format(v, spec)


def table(headers: list[str], rows: list[list[str]]) -> str:
    widths = [max(len(h), *(len(r[i]) for r in rows)) for i, h in enumerate(headers)]

    def line(cells: list[str]) -> str:
        return "  ".join(c.rjust(w) if i else c.ljust(w) for i, (c, w) in enumerate(zip(cells, widths, strict=True)))

    return "\n".join([line(headers), line(["-" * w for w in widths]), *(line(r) for r in rows)])


def cpu_model() -> str:
    try:
        for ln in Path("/proc/cpuinfo").read_text().splitlines():
            if ln.startswith("model name"):
                return ln.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def default_cli(python: str) -> list[str]:
    script = Path(python).parent / "nsys-doctor"
    if script.exists():
        return [str(script)]
    return [python, "-m", "nsys_doctor.cli.main"]


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("trace", type=Path)
    ap.add_argument("--reports", default=",".join(REPORTS), help="comma-separated (default: %(default)s)")
    ap.add_argument("--repeat", type=int, default=3, help="runs per timing, best kept (default 3)")
    ap.add_argument("--python", default=sys.executable, help="Python with nsys_doctor installed")
    ap.add_argument("--cli", default=None, help="nsys-doctor command (default: beside --python, else -m)")
    ap.add_argument("--nsys", default=None, help="real nsys binary (default: nsys on PATH, if any)")
    ap.add_argument("--no-nsys", action="store_true", help="skip the comparison with real nsys")
    ap.add_argument("--nsys-repeat", type=int, default=None, help="runs per whole-command timing (default --repeat)")
    ap.add_argument("--nsys-timeout", type=float, default=900.0, help="kill an nsys run after this many s")
    ap.add_argument("--nsys-long", type=float, default=60.0, help="do not repeat an nsys run longer than this (s)")
    ap.add_argument("--deadline", type=float, default=None, help="stop starting nsys runs after this many s in all")
    ap.add_argument("--save", type=Path, default=None, help="folder for the CSV outputs of both tools")
    ap.add_argument("--json", type=Path, default=None, help="write all raw timings here")
    args = ap.parse_args(argv)

    t_start = time.perf_counter()
    deadline = None if args.deadline is None else t_start + args.deadline
    path: Path = args.trace.resolve()
    reports = [r.strip() for r in args.reports.split(",") if r.strip()]
    nsys = None if args.no_nsys else (args.nsys or shutil.which("nsys"))
    cli = args.cli.split() if args.cli else default_cli(args.python)
    if args.save:
        args.save.mkdir(parents=True, exist_ok=True)
    counts = table_counts(path)
    print(
        f"trace: {path} ({path.stat().st_size / 2**20:.0f} MiB); " + ", ".join(f"{t} {n:,}" for t, n in counts.items())
    )
    print(f"host: {platform.node()}, {cpu_model()}, {os.cpu_count()} CPUs; Python {platform.python_version()}")
    probe = "import nsys_doctor, polars; print(nsys_doctor.__version__, polars.__version__)"
    ver = run_timed([args.python, "-c", probe])
    print(
        f"nsys-doctor {ver.stdout.strip() or ver.stderr.strip()[-200:]} (nsys-doctor, polars); "
        f"best of {args.repeat}; ours = open + run_report + render csv in a fresh process"
    )
    if nsys:
        v = run_timed([nsys, "--version"])
        print(f"nsys: {nsys} ({v.stdout.strip()})")
    print(f"page cache warmed in {warm(path, [t for t in (KERNEL, RUNTIME, NVTX) if t in counts]):.2f} s", flush=True)

    results: list[Result] = []
    for rep in reports:
        res = Result(rep)
        for t in SCANS.get(rep, (KERNEL,)):
            if t in counts:
                res.bare_runs[t] = [bare_scan(path, t) for _ in range(args.repeat)]
        bench_ours(res, path, args.python, args.repeat)
        results.append(res)
        print(f"  {rep}: ours {fmt(res.ours, '.3f')} s, bare {res.bare:.3f} s {res.error}", flush=True)

    rows = []
    for r in results:
        target = RATIO_TARGET.get(r.report)
        ratio = r.ours / r.bare if r.ours is not None and r.bare > 0 else None
        if r.error:
            verdict = "ERROR"
        elif target is None:
            verdict = "n/a"
        else:
            verdict = "PASS" if ratio is not None and ratio <= target else "FAIL"
        rows.append(
            [
                r.report,
                fmt(r.ours, ".3f"),
                fmt(min(r.proc_runs) if r.proc_runs else None, ".3f"),
                f"{r.bare:.3f}",
                fmt(ratio, ".2f") + ("x" if ratio is not None else ""),
                f"<= {target:g}x" if target else "report",
                verdict,
                f"{r.peak_mb:.0f}",
            ]
        )
    print()
    print(table(["report", "ours s", "proc s", "bare s", "ours/bare", "target", "result", "peak MB"], rows))
    for r in results:
        if r.error:
            print(f"  {r.report}: {r.error}")

    if nsys:
        print(
            f"\nwhole commands, best of {args.nsys_repeat or args.repeat} (an nsys run over {args.nsys_long:g} s is "
            "not repeated): "
            f"nsys stats --force-export=false --format csv -o - -r R TRACE  vs  {' '.join(cli)} stats TRACE -r R "
            "--format csv -o -",
            flush=True,
        )
        for r in results:
            bench_nsys(
                r,
                path,
                nsys,
                cli,
                args.nsys_repeat or args.repeat,
                args.nsys_timeout,
                args.save,
                long_s=args.nsys_long,
                deadline=deadline,
            )
            runs_n = ", ".join(f"{v:.2f}" for v in r.nsys_runs) or "-"
            runs_o = ", ".join(f"{v:.2f}" for v in r.cli_runs) or "-"
            print(
                f"  {r.report}: nsys runs [{runs_n}] s{' (last one killed)' if r.nsys_timeout else ''}, "
                f"ours runs [{runs_o}] s {r.nsys_error} {r.cli_error}",
                flush=True,
            )
            if args.json:
                args.json.write_text(json.dumps([x.__dict__ for x in results], indent=1))
        rows = []
        for r in results:
            t_n = min(r.nsys_runs) if r.nsys_runs else None
            t_o = min(r.cli_runs) if r.cli_runs else None
            sp = t_n / t_o if t_n and t_o else None
            goal = SPEEDUP_TARGET.get(r.report, 1.0)
            if r.nsys_error.startswith("not run"):
                verdict = "NOT RUN"
            elif r.nsys_error or r.cli_error or sp is None:
                verdict = "ERROR"
            elif r.nsys_timeout:
                verdict = "PASS (lower bound)" if sp >= goal else "UNKNOWN (nsys killed)"
            else:
                verdict = "PASS" if sp >= goal else "FAIL"
            rows.append(
                [
                    r.report,
                    (">" if r.nsys_timeout else "") + fmt(t_n),
                    fmt(t_o),
                    (">" if r.nsys_timeout else "") + fmt(sp, ".1f") + ("x" if sp is not None else ""),
                    f">= {goal:g}x",
                    verdict,
                    f"{r.nsys_peak_mb:.0f}",
                    f"{r.cli_peak_mb:.0f}",
                    r.same_output or "-",
                ]
            )
        print()
        print(
            table(
                ["report", "nsys s", "ours s", "nsys/ours", "target", "result", "nsys MB", "ours MB", "same CSV"], rows
            )
        )
        for r in results:
            for e in (r.nsys_error, r.cli_error):
                if e:
                    print(f"  {r.report}: {e}")

    if args.json:
        args.json.write_text(json.dumps([r.__dict__ for r in results], indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
