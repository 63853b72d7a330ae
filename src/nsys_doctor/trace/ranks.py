"""Rank sets: which traces (and which processes or devices inside them) are the ranks of one distributed run.

Users profile one trace per rank (``nsys profile -o trace_rank%q{RANK}``), one trace per node, or one trace of the
whole launcher (``nsys profile torchrun ...``: every rank's process in one report). ``discover`` turns command-line
inputs (files, directories of per-rank traces) into ``RankSpec``s, one per rank:

- a trace whose kernels come from several processes, or from one process on several devices, is split into one
  rank per process (per process and device when a process drives several GPUs), ordered by device then pid;
- across traces, the rank number comes from the environment recorded at capture (``META_DATA_CAPTURE``
  ``PROCESS_n:ENVIRONMENT_VARIABLE`` rows: ``RANK``, ``OMPI_COMM_WORLD_RANK``, ``PMI_RANK``, ``PMIX_RANK``,
  ``SLURM_PROCID``), else the file name (``rank3``, ``_r3``, ``-rank-3``, a trailing number), else
  ``LOCAL_RANK``, else the sorted order; a source is used only when it gives every trace a distinct number;
- time bases are aligned with ``TARGET_INFO_SESSION_START_TIME.utcEpochNs``: ``offset_ns`` is what to add to a
  rank's timestamps to put it on the common timeline (the earliest session start is time 0).

Reading a rank back is ``rank_frames(trace, spec)``: the ``TraceFrames`` of that process (an ``EventFilter`` on
the pid, pushed into SQL) and, when the spec names one, of that device only.
"""

from __future__ import annotations

import copy
import errno
import os
import re
import stat
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from ..errors import UsageError
from . import schema as S
from .open import Trace
from .window import MAX_TS, EventFilter, parse_filter_nvtx, resolve_nvtx_filter

if TYPE_CHECKING:
    import polars as pl

    from .tables import TraceFrames

TRACE_SUFFIXES = (".sqlite", ".nsys-rep", ".qdrep")
GLOBAL_RANK_VARS = ("RANK", "OMPI_COMM_WORLD_RANK", "PMI_RANK", "PMIX_RANK", "SLURM_PROCID", "MV2_COMM_WORLD_RANK")
LOCAL_RANK_VARS = ("LOCAL_RANK", "OMPI_COMM_WORLD_LOCAL_RANK", "SLURM_LOCALID", "MPI_LOCALRANKID")
RANK_FROM = ("auto", "env", "file", "order")
_FILE_RANK = re.compile(r"(?:rank|(?<![a-z0-9])r)[_.-]?(\d+)", re.IGNORECASE)
_TRAILING_NUMBER = re.compile(r"(\d+)$")
_ENV_ITEM = re.compile(r'^\s*([A-Za-z_][A-Za-z0-9_]*)\s*=\s*"?(.*?)"?\s*$')
MASK24 = (1 << 24) - 1


@dataclass(frozen=True)
class RankSpec:
    """One rank: a trace file, optionally restricted to one process and device, and its clock offset."""

    rank: int
    path: str
    pid: int | None = None  # only this process's events (None: the whole trace)
    device: int | None = None  # only this device's GPU work (None: every device of the process)
    source: str = "order"  # where the rank number came from
    offset_ns: int = 0  # add to this trace's timestamps to reach the common timeline
    host: str | None = None
    session_start_utc_ns: int | None = None

    @property
    def event_filter(self) -> EventFilter:
        return EventFilter(pid=self.pid, label=f"pid {self.pid}") if self.pid is not None else EventFilter()

    @property
    def label(self) -> str:
        parts = [Path(self.path).name]
        if self.pid is not None:
            parts.append(f"pid {self.pid}")
        if self.device is not None:
            parts.append(f"device {self.device}")
        return ", ".join(parts)

    def to_dict(self) -> dict[str, object]:
        return asdict(self)


@dataclass(frozen=True)
class _TraceFacts:
    path: Path
    env: dict[str, str]
    start_utc_ns: int | None
    host: str | None
    units: list[tuple[int, int]]  # (pid, device) with GPU work


def _kind(p: Path) -> str:
    """'dir', 'file' or 'other' for an input path; a symbolic link loop or an unreadable parent is a
    ``UsageError`` (a missing path is left to ``Trace.open``, which names it)."""
    try:
        st = os.stat(p)
    except FileNotFoundError:
        return "other"
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            raise UsageError(
                f"{p} is a symbolic link loop", "point it at a trace file or at a directory of traces"
            ) from exc
        raise UsageError(f"cannot read {p}: {exc.strerror or exc}", "check the path and its permissions") from exc
    except ValueError as exc:  # a NUL byte in the path
        raise UsageError(f"bad path {p!r}", "pass a trace file or a directory of traces") from exc
    return "dir" if stat.S_ISDIR(st.st_mode) else "file"


def _traces_in(d: Path) -> list[Path]:
    """The traces of directory ``d``, natural order; a ``.nsys-rep`` only when no ``.sqlite`` of it is there."""
    try:
        entries = list(d.iterdir())
    except OSError as exc:
        raise UsageError(
            f"cannot list directory {d}: {exc.strerror or exc}", "check its permissions, or pass the traces one by one"
        ) from exc
    found = sorted((f for f in entries if f.suffix in TRACE_SUFFIXES and f.is_file()), key=natural_key)
    sqlite_stems = {f.stem for f in found if f.suffix == ".sqlite"}
    return [f for f in found if f.suffix == ".sqlite" or f.stem not in sqlite_stems]


def _identity(p: Path) -> Path:
    try:
        return p.resolve()
    except (OSError, RuntimeError):  # a loop below a directory link: the path as written identifies it
        return p.absolute()


def expand_paths(inputs: list[str | os.PathLike[str]] | tuple[str | os.PathLike[str], ...]) -> list[Path]:
    """Files as given; directories replaced by their traces (``.sqlite``, or ``.nsys-rep`` without a ``.sqlite``
    beside it), in natural order (rank2 before rank10)."""
    out: list[Path] = []
    for raw in inputs:
        p = Path(raw)
        if _kind(p) == "dir":
            found = _traces_in(p)
            if not found:
                raise UsageError(
                    f"no traces in directory {p}", "put the per-rank .sqlite exports there (nsys export --type=sqlite)"
                )
            out.extend(found)
        else:
            out.append(p)
    if not out:
        raise UsageError("no traces given", "pass one trace per rank, a directory of them, or one multi-rank trace")
    seen: set[Path] = set()
    unique = []
    for p in out:
        key = _identity(p)
        if key not in seen:
            seen.add(key)
            unique.append(p)
    return unique


def natural_key(p: Path) -> tuple[object, ...]:
    return tuple(int(t) if t.isdigit() else t.lower() for t in re.split(r"(\d+)", p.name))


def capture_env(trace: Trace) -> dict[str, str]:
    """The environment of the profiled process as recorded at capture (first value of each variable)."""
    if not (
        trace.schema.has_column("META_DATA_CAPTURE", "name") and trace.schema.has_column("META_DATA_CAPTURE", "value")
    ):
        return {}
    rows = trace.rows("SELECT value FROM META_DATA_CAPTURE WHERE name LIKE 'PROCESS_%:ENVIRONMENT_VARIABLE'")
    env: dict[str, str] = {}
    for (value,) in rows:
        m = _ENV_ITEM.match(str(value or ""))
        if m:
            env.setdefault(m.group(1), m.group(2))
    return env


def session_start_ns(trace: Trace) -> int | None:
    """``TARGET_INFO_SESSION_START_TIME.utcEpochNs``: the UTC time of the trace's time 0."""
    if not trace.schema.has_column("TARGET_INFO_SESSION_START_TIME", "utcEpochNs"):
        return None
    r = trace.rows("SELECT utcEpochNs FROM TARGET_INFO_SESSION_START_TIME LIMIT 1")
    return r[0][0] if r and isinstance(r[0][0], int) else None


def hostname(trace: Trace) -> str | None:
    if not (
        trace.schema.has_column("TARGET_INFO_SYSTEM_ENV", "name")
        and trace.schema.has_column("TARGET_INFO_SYSTEM_ENV", "value")
    ):
        return None
    r = trace.rows("SELECT value FROM TARGET_INFO_SYSTEM_ENV WHERE name = 'Hostname' LIMIT 1")
    return str(r[0][0]) if r and r[0][0] is not None else None


def gpu_units(trace: Trace) -> list[tuple[int, int]]:
    """(pid, deviceId) pairs that ran GPU work (kernels, else graph launches), ordered by device then pid."""
    for table in (S.KERNEL, S.GRAPH_TRACE):
        if trace.schema.has_column(table, "globalPid") and trace.schema.has_column(table, "deviceId"):
            # the distinct raw pairs first (a third of the cost: no typeof() per row; rowid ranges in parallel).
            # When every pair that comes back is two integers, they are exactly the integer pairs: each stands for
            # itself, and an integer row can only have been merged into an equal integer pair (a REAL equal to it
            # would have come back as the pair's representative instead). Otherwise the exact query decides.
            raw = trace.rows_in_parts(table, f"SELECT DISTINCT globalPid, deviceId FROM {table} WHERE {{range}}")
            if all(type(g) is int and type(d) is int for g, d in raw):
                rows = [((g >> 24) & MASK24, d) for g, d in raw]
            else:
                rows = trace.rows(
                    f"SELECT DISTINCT {S.pid_sql('globalPid')}, deviceId FROM {table} "
                    "WHERE typeof(globalPid) = 'integer' AND typeof(deviceId) = 'integer'"
                )
            units = sorted({(int(p), int(d)) for p, d in rows}, key=lambda u: (u[1], u[0]))
            if units:
                return units
    return []


def _facts(path: Path) -> _TraceFacts:
    with Trace.open(path) as trace:
        return _TraceFacts(path, capture_env(trace), session_start_ns(trace), hostname(trace), gpu_units(trace))


def file_rank(path: Path) -> int | None:
    """The rank number in a file name: ``trace_rank3``, ``run.r3``, ``rank-3-of-8`` (the last such token)."""
    found = _FILE_RANK.findall(path.stem)
    return int(found[-1]) if found else None


def _distinct(values: list[int | None]) -> bool:
    return all(v is not None for v in values) and len(set(values)) == len(values)


def _env_rank(env: dict[str, str], names: tuple[str, ...]) -> int | None:
    for name in names:
        v = env.get(name, "").strip()
        if v.isdigit():
            return int(v)
    return None


def _split(facts: _TraceFacts) -> list[tuple[int | None, int | None]]:
    """The (pid, device) restrictions that make one trace's ranks: one per process, per process and device when a
    process drives several GPUs; a single unit is the whole trace."""
    if len(facts.units) <= 1:
        return [(None, None)]
    per_pid: dict[int, int] = {}
    for pid, _ in facts.units:
        per_pid[pid] = per_pid.get(pid, 0) + 1
    out: list[tuple[int | None, int | None]] = []
    seen: set[int] = set()
    for pid, dev in facts.units:
        if per_pid[pid] > 1:
            out.append((pid, dev))
        elif pid not in seen:
            out.append((pid, None))
        seen.add(pid)
    return out


def discover(
    inputs: list[str | os.PathLike[str]] | tuple[str | os.PathLike[str], ...], rank_from: str = "auto"
) -> list[RankSpec]:
    """The ranks of the given traces (files or directories), with rank numbers, sources and clock offsets."""
    if rank_from not in RANK_FROM:
        raise UsageError(f"unknown --rank-from '{rank_from}'", f"use one of {', '.join(RANK_FROM)}")
    facts = [_facts(p) for p in expand_paths(inputs)]
    starts = [f.start_utc_ns for f in facts if f.start_utc_ns is not None]
    aligned = len(starts) == len(facts)
    base = min(starts) if starts else 0
    source, numbers = _trace_numbers(facts, rank_from)
    order = sorted(range(len(facts)), key=lambda i: numbers[i])
    splits = [_split(f) for f in facts]

    def spec(rank: int, f: _TraceFacts, pid: int | None, dev: int | None, src: str) -> RankSpec:
        offset = f.start_utc_ns - base if aligned and f.start_utc_ns is not None else 0
        return RankSpec(rank, str(f.path), pid, dev, src, offset, f.host, f.start_utc_ns)

    if all(len(s) == 1 for s in splits):
        return [spec(numbers[i], facts[i], None, None, source) for i in order]
    if len(facts) > 1:
        multi = next(f for f, s in zip(facts, splits, strict=True) if len(s) > 1)
        raise UsageError(
            f"{multi.path.name} holds several ranks itself, and other traces were given with it: "
            "they are different runs",
            f"analyze {multi.path.name} alone, or the per-rank traces without it",
        )
    # traces holding several ranks: number them in trace order, then by device and pid inside each trace
    specs: list[RankSpec] = []
    for i in order:
        for pid, dev in splits[i]:
            src = "process order in the trace (device, pid)" if len(splits[i]) > 1 else source
            specs.append(spec(len(specs), facts[i], pid, dev, src))
    return specs


def _trace_numbers(facts: list[_TraceFacts], rank_from: str) -> tuple[str, list[int]]:
    """One number per trace and where it came from: the first source giving every trace a distinct number."""
    candidates: list[tuple[str, list[int | None]]] = []
    if rank_from in ("auto", "env"):
        candidates.append(
            (f"env {_which(facts, GLOBAL_RANK_VARS)}", [_env_rank(f.env, GLOBAL_RANK_VARS) for f in facts])
        )
    if rank_from in ("auto", "file"):
        names = [file_rank(f.path) for f in facts]
        if not _distinct(names):
            trailing = [_TRAILING_NUMBER.search(f.path.stem) for f in facts]
            names = [int(m.group(1)) if m else None for m in trailing]
        candidates.append(("file name", names))
    if rank_from in ("auto", "env"):
        candidates.append((f"env {_which(facts, LOCAL_RANK_VARS)}", [_env_rank(f.env, LOCAL_RANK_VARS) for f in facts]))
    for source, values in candidates:
        if _distinct(values):
            return source, [v for v in values if v is not None]
    if rank_from not in ("auto", "order"):
        raise UsageError(
            f"--rank-from {rank_from} does not give every trace a distinct rank",
            "use --rank-from auto or order (ranks in sorted file order)",
        )
    return "order", list(range(len(facts)))


def _which(facts: list[_TraceFacts], names: tuple[str, ...]) -> str:
    for name in names:
        if all(name in f.env for f in facts):
            return name
    return names[0]


# ------------------------------------------------------------------------------------------------ reading a rank


def rank_frames(trace: Trace, spec: RankSpec) -> TraceFrames:
    """The ``TraceFrames`` of one rank: its process (filter pushed into SQL) and, if set, its device only."""
    import polars as pl

    from .tables import TraceFrames

    frames = TraceFrames(trace, spec.event_filter if spec.pid is not None else None)
    if spec.device is None:
        return frames
    out = copy.copy(frames)
    on_dev = pl.col("deviceId") == spec.device
    out.kernels = frames.kernels.filter(on_dev)
    out.memcpy = frames.memcpy.filter(on_dev)
    out.memset = frames.memset.filter(on_dev)
    out.graph_launches = frames.graph_launches.filter(on_dev)
    return out


def rank_filter(trace: Trace, spec: RankSpec, filter_time: EventFilter | None, filter_nvtx: str | None) -> EventFilter:
    """The event filter of one rank: its process, narrowed by ``--filter-time`` (an ``EventFilter`` already
    parsed) or ``--filter-nvtx`` (the N-th range of that name *in this rank's process*, nsys semantics otherwise)."""
    import polars as pl

    if spec.pid is None:
        if filter_nvtx:
            return resolve_nvtx_filter(trace, filter_nvtx)
        return filter_time if filter_time is not None else EventFilter()
    if filter_nvtx:
        from .tables import nvtx_ranges

        name, domain, index = parse_filter_nvtx(filter_nvtx)
        ranges = nvtx_ranges(trace, spec.event_filter)
        cond = pl.col("text") == name
        cond = cond & (pl.col("domain") == domain) if domain is not None else cond & pl.col("domain").is_null()
        hits = ranges.filter(cond).sort("start", maintain_order=True)
        if hits.height <= index:
            raise UsageError(
                f"NVTX range '{filter_nvtx}' could not be found in rank {spec.rank} ({spec.label})",
                "ranges of this process: " + ", ".join(sorted(set(ranges["text"].drop_nulls().to_list()))[:8]),
            )
        row = hits.row(index, named=True)
        gtid = int(row["globalTid"] or 0)
        tid = gtid & MASK24
        end = row["end"] if row["end"] is not None else MAX_TS
        return EventFilter(
            start=int(row["start"]),
            end=int(end),
            pid=spec.pid,
            tid=None if tid == spec.pid else tid,
            label=f"nvtx {filter_nvtx} (rank {spec.rank})",
        )
    base = filter_time if filter_time is not None else EventFilter()
    return EventFilter(base.start, base.end, spec.pid, None, base.label or f"pid {spec.pid}")


def long_os_calls(trace: Trace, spec: RankSpec, min_ns: int) -> pl.DataFrame:
    """OS runtime calls (``--trace=osrt``) of the rank's process lasting at least ``min_ns``: start, end, dur,
    pid, tid, name. Empty when the OS runtime was not traced."""
    import polars as pl

    from .tables import load, pid_of, resolve_names, tid_of

    where = f'"end" - "start" >= {int(min_ns)}'
    o = load(trace, S.OSRT, ["start", "end", "globalTid", "nameId"], spec.event_filter, where=where)
    o = resolve_names(o, trace, "nameId", "name").drop("nameId")
    return o.with_columns((pl.col("end") - pl.col("start")).alias("dur"), pid_of("globalTid"), tid_of("globalTid"))


def frame_units(frames: TraceFrames) -> list[tuple[int, int]]:
    """``gpu_units`` of frames already read: the (pid, deviceId) pairs of the kernels, else of the graph launches,
    ordered by device then pid (the damaged rows, left out of the frames, are not counted)."""
    import polars as pl

    from .tables import pid_of

    for df in (frames.kernels, frames.graph_launches):
        if not df.height:
            continue
        pid = pl.col("pid") if "pid" in df.columns else pid_of("globalPid")
        pairs = df.select(pid.alias("pid"), pl.col("deviceId")).drop_nulls().unique()
        units = sorted(((int(p), int(d)) for p, d in pairs.iter_rows()), key=lambda u: (u[1], u[0]))
        if units:
            return units
    return []


def several_ranks(path: str | os.PathLike[str], units: list[tuple[int, int]]) -> bool:
    """Whether one trace whose GPU work ran in ``units`` (``gpu_units``) holds several ranks' processes."""
    return len(_split(_TraceFacts(Path(path), {}, None, None, units))) > 1


def multi_rank(inputs: list[str | os.PathLike[str]] | tuple[str | os.PathLike[str], ...]) -> bool:
    """True when the inputs are several traces, a directory, or one trace holding several ranks."""
    if len(inputs) != 1 or Path(inputs[0]).is_dir():
        return True
    p = Path(inputs[0])
    with Trace.open(p) as trace:
        return several_ranks(p, gpu_units(trace))


__all__ = [
    "RANK_FROM",
    "RankSpec",
    "capture_env",
    "discover",
    "expand_paths",
    "file_rank",
    "frame_units",
    "gpu_units",
    "long_os_calls",
    "multi_rank",
    "rank_filter",
    "rank_frames",
    "session_start_ns",
    "several_ranks",
]
