"""Helpers shared by subcommands: common options, the analysis window they ask for, event filters, output."""

from __future__ import annotations

import functools
import math
from collections.abc import Callable
from pathlib import Path
from types import ModuleType
from typing import TYPE_CHECKING, TypeVar, cast

import click

from ..safe_io import resolve_output, write_atomic, write_stdout

if TYPE_CHECKING:
    pass

F = TypeVar("F", bound=Callable[..., object])


def window_options(func: F) -> F:
    """--window, --filter-nvtx, --whole-trace and --warmup (and --request, where the command has it), as report,
    roofline and export read them: the command gets them as one ``choice: WindowChoice``, which refuses those that
    exclude each other."""

    @functools.wraps(func)
    def with_choice(
        *args: object,
        window: str | None,
        filter_nvtx: str | None,
        whole_trace: bool,
        warmup: int | None,
        **kwargs: object,
    ) -> object:
        from ..session import WindowChoice

        request = cast("int | None", kwargs.pop("request", None))
        return func(*args, choice=WindowChoice(window, filter_nvtx, whole_trace, request, warmup), **kwargs)

    out = cast(F, with_choice)  # (not ``func``: the wrapper calls that one)
    out = click.option(
        "--warmup",
        type=click.IntRange(0),
        metavar="N",
        help="The first N requests of the run are warm-up, the others measured (when the data cannot tell).",
    )(out)
    out = click.option("--whole-trace", is_flag=True, help="Analyze the whole trace, loading and warm-up included.")(
        out
    )
    out = click.option("--filter-nvtx", metavar="RANGE[@DOMAIN][/N]", help="Analyze the window of this NVTX range.")(
        out
    )
    window_help = "Analyze this time window (nsys time syntax, e.g. 2s/5s)."
    return click.option("--window", metavar="START/END", help=window_help)(out)


def jobs_option(func: F) -> F:
    """-j/--jobs N: read rank traces on this many processes (report, nccl, diff)."""
    return click.option(
        "-j",
        "--jobs",
        type=click.IntRange(1, 1024),
        default=1,
        show_default=True,
        help="Read rank traces on this many processes.",
    )(func)


def file_option(*decls: str, help: str, metavar: str = "FILE", required: bool = False) -> Callable[[F], F]:
    """An option naming a file, handed to the command as a ``Path`` (``decls``: its flags, then its parameter)."""
    return click.option(*decls, metavar=metavar, type=click.Path(path_type=Path), required=required, help=help)


def ops_option(func: F) -> F:
    """--ops FILE: extra kernel-to-operation rules."""
    return file_option(
        "--ops",
        "ops_file",
        help="Extra kernel-to-operation rules (TOML, [[rule]] tables); they override the shipped ones.",
    )(func)


RANK_FROM_HELP = "Several traces: rank numbers from the recorded environment, the file name, or sorted order."


# trace.ranks.RANK_FROM, spelled here so that declaring the option does not import the rank discovery (a test keeps
# the two equal)
RANK_FROM = ("auto", "env", "file", "order")


def rank_from_option(help: str = RANK_FROM_HELP) -> Callable[[F], F]:
    """--rank-from: where the rank numbers of a rank set come from (report, stats, diff, nccl)."""
    return click.option("--rank-from", type=click.Choice(RANK_FROM), default="auto", show_default=True, help=help)


def request_option(verb: str) -> Callable[[F], F]:
    """--request N: one request of the run instead of the measured ones (``verb``: what the command does with it,
    report "Analyze", export "Export")."""
    return click.option(
        "--request",
        type=click.IntRange(0),
        metavar="N",
        help=f"{verb} request N of the run (0-based, warm-up requests included) instead of the measured ones.",
    )


def _no_cache(ctx: click.Context, param: click.Parameter, value: bool) -> None:
    if value:
        from ..trace.cache import disable

        disable()


def cache_option(func: F) -> F:
    """--no-cache: read the trace itself, neither reading nor writing the frame cache (for this process and the
    worker processes it starts; the environment's NSYS_DOCTOR_NO_CACHE=1 does the same)."""
    return click.option(
        "--no-cache",
        is_flag=True,
        expose_value=False,
        is_eager=True,
        callback=_no_cache,
        help="Do not use the frame cache (read the trace itself; write nothing to the cache folder).",
    )(func)


def render_text(fmt: str, renderers: ModuleType, result: object, **terminal: object) -> str:
    """``result`` as JSON, markdown or terminal text (``terminal``: the terminal renderer's options), by the
    renderer module's ``render_json``, ``render_markdown`` and ``render_terminal``."""
    if fmt == "json":
        render: Callable[..., str] = renderers.render_json
        return render(result)
    if fmt == "markdown":
        render = renderers.render_markdown
        return render(result)
    render = renderers.render_terminal
    return render(result, **terminal)


OUTPUT_PARAMS = frozenset({"output", "output_dir", "out"})


def command_inputs() -> list[Path]:
    """Every existing file the running command was given (arguments and options, files inside a folder argument):
    the paths an output must never resolve to."""
    ctx = click.get_current_context(silent=True)
    found: list[Path] = []

    def add(value: object) -> None:
        if isinstance(value, (list, tuple)):
            for v in value:
                add(v)
            return
        if not isinstance(value, (str, Path)) or not str(value) or str(value) == "-":
            return
        p = Path(value)
        try:
            if p.is_file():
                found.append(p)
            elif p.is_dir():
                found.extend(q for q in sorted(p.iterdir())[:4096] if q.is_file())
        except (OSError, ValueError):
            return

    while ctx is not None:
        for key, value in ctx.params.items():
            if key not in OUTPUT_PARAMS:
                add(value)
        ctx = ctx.parent
    return found


def default_output_name(ext: str) -> str:
    """The file name ``-o DIR/`` gets: the first input's stem, the command, the format's extension."""
    ctx = click.get_current_context(silent=True)
    inputs = command_inputs()
    stem = inputs[0].stem if inputs else "nsys-doctor"
    command = ctx.info_name if ctx is not None and ctx.info_name else "output"
    return f"{stem}.{command}.{ext}"


FORMAT_EXTENSIONS = {"terminal": "txt", "markdown": "md", "json": "json", "csv": "csv", "html": "html", "text": "txt"}


def emit(text: str, output: str | None, fmt: str = "terminal") -> None:
    """Write a command's output to ``output`` (a path, or a folder ending in ``/``; ``-`` or None for standard
    output). The path is refused when it is one of the command's inputs or an existing trace, and the file is
    written atomically (see ``safe_io``)."""
    if output and output != "-":
        dest = resolve_output(output, default_output_name(FORMAT_EXTENSIONS.get(fmt, "txt")))
        write_atomic(dest, text, inputs=command_inputs())
        click.echo(f"wrote {dest}", err=True)
    else:
        write_stdout(text)


class FiniteFloat(click.ParamType):
    """A float option with a range: nan and inf are refused (click's FloatRange lets nan through)."""

    name = "number"

    def __init__(self, low: float | None = None, high: float | None = None, *, low_open: bool = False,
                 high_open: bool = False, what: str = "") -> None:  # fmt: skip
        self.low, self.high, self.low_open, self.high_open, self.what = low, high, low_open, high_open, what

    def _range(self) -> str:
        lo = "" if self.low is None else f"{self.low:g} {'<' if self.low_open else '<='} "
        hi = "" if self.high is None else f" {'<' if self.high_open else '<='} {self.high:g}"
        return f"{lo}x{hi}" + (f" ({self.what})" if self.what else "")

    def convert(self, value: object, param: click.Parameter | None, ctx: click.Context | None) -> float:
        if isinstance(value, float) and math.isfinite(value) and self._inside(value):
            return value
        try:
            x = float(str(value))
        except ValueError:
            self.fail(f"'{value}' is not a number; expected {self._range()}", param, ctx)
        if not math.isfinite(x) or not self._inside(x):
            self.fail(f"{value} is out of range; expected {self._range()}", param, ctx)
        return x

    def _inside(self, x: float) -> bool:
        if self.low is not None and (x < self.low or (self.low_open and x == self.low)):
            return False
        return not (self.high is not None and (x > self.high or (self.high_open and x == self.high)))
