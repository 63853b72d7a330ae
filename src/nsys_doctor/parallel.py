"""Per-rank work in parallel: threads or a process pool (``--jobs``), or an existing Dask cluster (``--dask``).

The unit of work is one rank: ``rank_summary(spec)`` opens the rank's trace itself, reads only that rank's events,
and returns a ``RankSummary`` (one row per collective instance and per step), so what crosses process boundaries
is small and a worker holds one trace at a time: its memory is bounded by the largest single rank trace, whatever
the number of ranks. The reduce (``nccl.analyze``) runs in the calling process on the summaries.

This module is the runner, not an analysis, so it sits beside the session layer: the workers open traces through
``TraceSession`` and the pure work happens in ``analysis/nccl`` (``summarize_rank``, ``analyze``). Results do not
depend on the runner: the same inputs give the same summaries in the same order with ``jobs=1``, a pool, or Dask.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from .errors import NsysDoctorError, UsageError
from .trace.damage import announce, collect_start, collect_stop

POLARS_THREADS_ENV = "POLARS_MAX_THREADS"
# Per rank: below this much trace, a spawned worker's start-up (a new interpreter importing polars, about a second
# or more) costs more than it saves, so ``--jobs N`` runs the ranks on N threads of this process instead (SQLite
# reads and polars release the GIL; nothing to start). See docs/multigpu.md for the measurements.
PROCESS_MIN_BYTES = 256 << 20
# Per rank: below this much trace, threads cost more than they save and the ranks run one after the other: ranks of
# 3 MiB ran at 0.87-0.92x the speed with ``--jobs 2`` as with ``--jobs 1`` (threads, 2 cores), ranks of 43 MiB ran 1.13x
# faster there and 1.46-1.62x on 16 cores (docs/multigpu.md).
THREAD_MIN_BYTES = 16 << 20


@dataclass(frozen=True)
class WorkerError:
    """An ``NsysDoctorError`` raised in a worker, carried back whole (exceptions lose their hint when pickled)."""

    kind: str
    message: str
    hint: str

    def reraise(self) -> None:
        from . import errors

        cls = getattr(errors, self.kind, NsysDoctorError)
        raise cls(self.message, self.hint)


def rank_summary(spec: Any, rules: list[Any] | None = None) -> Any:
    """Open one rank's trace and summarize its collectives and steps (top-level, picklable: runs in workers)."""
    from .session import TraceSession

    try:
        with TraceSession.open(spec.path, rules, rank=spec) as session:
            return session.rank_summary()
    except NsysDoctorError as exc:
        return WorkerError(type(exc).__name__, exc.message, exc.hint)


def _init_worker(threads: int) -> None:
    """Each worker gets its share of the cores for polars (read when polars first starts its thread pool)."""
    os.environ[POLARS_THREADS_ENV] = str(max(1, threads))


def worker_threads(workers: int, environ: dict[str, str] | os._Environ[str] = os.environ) -> int:
    """The polars threads of each of ``workers`` worker processes: its share of the cores, and no more than the
    command's own bound (``POLARS_MAX_THREADS``, set by the user or by the CLI) when there is one."""
    share = max(1, (os.cpu_count() or 1) // workers)
    own = environ.get(POLARS_THREADS_ENV, "")
    return min(share, int(own)) if own.isdigit() and int(own) > 0 else share


def _check(results: list[Any]) -> list[Any]:
    for r in results:
        if isinstance(r, WorkerError):
            r.reraise()
    return results


def map_ranks(
    specs: Sequence[Any],
    func: Callable[..., Any] = rank_summary,
    jobs: int = 1,
    dask: str | None = None,
    progress: Callable[[int, int], None] | None = None,
    **kwargs: Any,
) -> list[Any]:
    """``func(spec, **kwargs)`` for every spec, in spec order: in this process (``jobs=1``), on a pool of
    ``jobs`` processes, or on the Dask cluster at ``dask`` (``"local"`` or ``"local:N"`` starts one here)."""
    if jobs < 1:
        raise UsageError(f"--jobs {jobs} is not a number of workers", "give 1 or more")
    if dask:
        return _check(dask_map(list(specs), func, dask, **kwargs))
    n = len(specs)
    runner = pick_runner(specs, jobs)
    if runner == "serial":
        out = []
        for i, s in enumerate(specs):
            out.append(func(s, **kwargs))
            if progress:
                progress(i + 1, n)
        return _check(out)
    if runner == "threads":
        return _check(_thread_map(specs, func, min(jobs, n), progress, kwargs))
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor, as_completed

    workers = min(jobs, n)
    threads = worker_threads(workers)
    ctx = multiprocessing.get_context("spawn")  # never fork a process that runs polars threads
    results: list[Any] = [None] * n
    with ProcessPoolExecutor(workers, mp_context=ctx, initializer=_init_worker, initargs=(threads,)) as pool:
        futures = {pool.submit(_collecting, func, s, kwargs): i for i, s in enumerate(specs)}
        for done, fut in enumerate(as_completed(futures), 1):
            results[futures[fut]], damaged = fut.result()
            for summary in damaged:  # damaged rows a worker left out: told by this process's warning line
                announce(summary)
            if progress:
                progress(done, n)
    return _check(results)


def rank_bytes(specs: Sequence[Any]) -> list[int]:
    """The trace bytes each rank's work reads: its file's size, shared among the ranks split out of one file."""
    sharing: dict[str, int] = {}
    for s in specs:
        sharing[str(s.path)] = sharing.get(str(s.path), 0) + 1
    out = []
    for s in specs:
        try:
            size = os.stat(s.path).st_size
        except OSError:
            size = 0  # the worker reports the problem when it opens the trace
        out.append(size // sharing[str(s.path)])
    return out


def pick_runner(specs: Sequence[Any], jobs: int) -> str:
    """``serial`` for one job, one rank, or ranks too small to gain from threads (``THREAD_MIN_BYTES``),
    ``processes`` when every rank is large enough to pay a spawned worker's start-up (``PROCESS_MIN_BYTES``), else
    ``threads``: ``--jobs 2`` is never the slower choice. The smallest rank decides."""
    if jobs <= 1 or len(specs) <= 1:
        return "serial"
    smallest = min(rank_bytes(specs))
    if smallest >= PROCESS_MIN_BYTES:
        return "processes"
    return "threads" if smallest >= THREAD_MIN_BYTES else "serial"


def _thread_map(
    specs: Sequence[Any],
    func: Callable[..., Any],
    workers: int,
    progress: Callable[[int, int], None] | None,
    kwargs: dict[str, Any],
) -> list[Any]:
    """``func`` over ``specs`` on threads of this process; each thread runs inside the command's click context,
    so that damaged rows are announced by the command's one warning line as in serial runs."""
    from concurrent.futures import ThreadPoolExecutor, as_completed

    import click

    ctx = click.get_current_context(silent=True)

    def run(spec: Any) -> Any:
        if ctx is None:
            return func(spec, **kwargs)
        with ctx.scope(cleanup=False):
            return func(spec, **kwargs)

    n = len(specs)
    results: list[Any] = [None] * n
    with ThreadPoolExecutor(workers) as pool:
        futures = {pool.submit(run, s): i for i, s in enumerate(specs)}
        for done, fut in enumerate(as_completed(futures), 1):
            results[futures[fut]] = fut.result()
            if progress:
                progress(done, n)
    return results


def _collecting(func: Callable[..., Any], spec: Any, kwargs: dict[str, Any]) -> tuple[Any, list[Any]]:
    """Run ``func`` in a worker and hand back, with its result, the damaged-row summaries of the traces it read."""
    collect_start()
    try:
        return func(spec, **kwargs), collect_stop()
    finally:
        collect_stop()


def dask_map(specs: list[Any], func: Callable[..., Any], address: str, **kwargs: Any) -> list[Any]:
    """Run ``func`` over ``specs`` on a Dask cluster and gather the results in order. The traces must be readable
    at the same paths on the workers (a shared file system) and nsys-doctor installed there."""
    try:
        from distributed import Client, LocalCluster
    except ImportError as exc:
        raise UsageError(
            "--dask needs Dask's distributed scheduler, which is not installed",
            "pip install 'nsys-doctor[dask]' (or: pip install 'dask[distributed]')",
        ) from exc
    cluster = None
    try:
        if address == "local" or address.startswith("local:"):
            n = int(address.split(":", 1)[1]) if ":" in address else min(4, os.cpu_count() or 1)
            import logging

            cluster = LocalCluster(
                n_workers=n,
                threads_per_worker=1,
                processes=True,
                dashboard_address=None,
                silence_logs=logging.CRITICAL,  # its workers' shutdown chatter is not the user's business
            )
            client = Client(cluster)
        else:
            client = Client(address, timeout="10s")
    except (OSError, TimeoutError, ValueError) as exc:
        if cluster is not None:
            cluster.close()
        raise UsageError(
            f"cannot reach the Dask scheduler at {address} ({exc})",
            "give the scheduler address (tcp://host:8786), or --dask local to start a cluster here",
        ) from exc
    try:
        futures = client.map(func, specs, pure=False, **kwargs)
        return list(client.gather(futures))
    finally:
        client.close()
        if cluster is not None:
            cluster.close()
