"""Command lines run without click: ``info`` and ``stats`` on one trace file, written to standard output.

click costs about as much to import as the interpreter takes to start, and these two commands on a small trace
are otherwise work of a few milliseconds. ``parse`` reads such a command line as click would and hands the very
values click would to the command's body (``info_run.run_info``, ``stats_run.run_stats``); any command line it
is not sure to read exactly as click does (another command, an option it does not know, a flag in a form it does
not take, several traces, a folder, an output file, ``--help``) is left to click, which gives the same result or
the same error. A test runs each form both ways and compares."""

from __future__ import annotations

import os

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable

# Per command: option -> (parameter, takes a value, repeatable); the values an option may take where click checks
# them (click.Choice); the parameters' defaults (the command's own, so a test can hold them equal to click's).
INFO_OPTIONS = {"--format": ("fmt", True, False)}
STATS_OPTIONS = {
    "-r": ("reports", True, True),
    "--report": ("reports", True, True),
    "-f": ("formats", True, False),
    "--format": ("formats", True, False),
    "--timeunit": ("timeunit", True, False),
    "--memunit": ("memunit", True, False),
    "--filter-time": ("filter_time", True, False),
    "--filter-nvtx": ("filter_nvtx", True, False),
    "-o": ("output", True, False),
    "--output": ("output", True, False),
    "--rank-from": ("rank_from", True, False),
    "-q": ("quiet", False, False),
    "--quiet": ("quiet", False, False),
}
OPTIONS: dict[str, dict[str, tuple[str, bool, bool]]] = {"info": INFO_OPTIONS, "stats": STATS_OPTIONS}
CHOICES = {("info", "fmt"): ("text", "json"), ("stats", "rank_from"): ("auto", "env", "file", "order")}


def parse(args: list[str]) -> tuple[str, dict[str, object]] | None:
    """``(command, options given)`` for a command line this module runs (one existing trace file, known options
    as click reads them: ``--opt VALUE``, ``--opt=VALUE``, ``-o VALUE``, ``-oVALUE``; the last of a repeated
    option wins, a repeatable one collects), else None."""
    if not args or args[0] not in OPTIONS:
        return None
    command, spec = args[0], OPTIONS[args[0]]
    given: dict[str, object] = {}
    positional: list[str] = []
    i = 1
    while i < len(args):
        arg = args[i]
        i += 1
        if not arg.startswith("-") or arg == "-":
            positional.append(arg)
            continue
        name, value = arg, None
        if arg.startswith("--") and "=" in arg:
            name, value = arg.split("=", 1)
        elif not arg.startswith("--") and len(arg) > 2:
            name, value = arg[:2], arg[2:]
        found = spec.get(name)
        if found is None:
            return None
        param, takes_value, repeatable = found
        if not takes_value:
            if value is not None:
                return None
            given[param] = True
            continue
        if value is None:
            if i >= len(args):
                return None  # click's "requires an argument" error
            value = args[i]
            i += 1
        choices = CHOICES.get((command, param))
        if choices is not None and value not in choices:
            return None
        if repeatable:
            given[param] = (*given.get(param, ()), value)  # type: ignore[misc]  # a tuple, as click collects it
        else:
            given[param] = value
    if len(positional) != 1 or not os.path.isfile(positional[0]):
        return None
    if given.get("output", "-") != "-":
        return None  # files: the output guard asks click which paths the command was given
    given["trace"] = positional[0]
    return command, given


def body(command: str, given: dict[str, object]) -> Callable[[], int]:
    """The command line ``parse`` read, as a call of the command's body (its exit code)."""
    trace = str(given.pop("trace"))
    if command == "info":
        from .info_run import run_info

        def info() -> int:
            run_info(trace, **given)  # type: ignore[arg-type]
            return 0

        return info
    from .. import progress
    from .stats_run import run_stats

    progress.set_quiet(bool(given.pop("quiet", False)))  # for this command only, as click's option sets it

    def stats() -> int:
        run_stats((trace,), **given)  # type: ignore[arg-type]
        return 0

    return stats


def run(args: list[str], origin: float) -> int | None:
    """Run ``args`` without click when ``parse`` takes it (its exit code, under the error contract), else None."""
    if "--debug" in args:
        return None
    parsed = parse(args)
    if parsed is None:
        return None
    import gc

    from .contract import guarded
    from .main import bound_allocator

    bound_allocator(args)  # a big trace's report loads polars
    # a summary's rows are tuples of ints, freed by their counts (no cycles): the collector's passes over them
    # while they are read find nothing to free
    collecting = gc.isenabled()
    gc.disable()
    try:
        return guarded(body(*parsed), origin, False)
    finally:
        if collecting:
            gc.enable()
