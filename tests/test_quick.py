"""Command lines run without click (``cli/quick.py``): read as click reads them, with the same output, errors and
exit codes, and loading none of click, dataclasses, pathlib, typing, re or json."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import click
import pytest

from nsys_doctor.cli import quick
from nsys_doctor.cli.app import _register, cli
from nsys_doctor.cli.info_run import FORMATS
from nsys_doctor.cli.stats_run import DEFAULTS
from nsys_doctor.trace.open import _uri, path_text
from nsys_doctor.values import Value

from .conftest import SAMPLE
from .test_fuzz import K, mutated_copy, set_values

S = str(SAMPLE)

# Command lines quick.parse must take (and read exactly as click does), and ones it must leave to click.
TAKEN = [
    ["info", S],
    ["info", S, "--format", "json"],
    ["info", "--format=text", S],
    ["stats", S],
    ["stats", "-r", "cuda_gpu_kern_sum", S],
    ["stats", S, "-rcuda_api_sum,nvtx_sum", "--format=csv"],
    ["stats", "-r", "cuda_gpu_kern_sum", "--report", "cuda_api_sum", "-f", "json", S, "-q"],
    ["stats", "--timeunit", "usec", "--memunit", "KiB", "-r", "cuda_gpu_mem_size_sum", S, "--quiet"],
    ["stats", "--filter-time", "0/1s", "-r", "gpu_gaps:gap=1", S, "-o", "-"],
    ["stats", "--filter-nvtx", "nope", "-r", "nvtx_sum", S],
    ["stats", "-r", "cuda_gpu_kern_sum", "--rank-from", "order", S],
    ["stats", "-f", "", S],
    ["stats", "-r", "bogus", S],
    ["stats", "-r", "-q", S],  # -q is -r's value, as click reads it
]
LEFT = [
    ["info"],
    ["info", S, S],
    ["info", S, "--format", "xml"],
    ["info", S, "--format"],
    ["info", S, "--debug"],
    ["info", "--help"],
    ["info", "-h", S],
    ["info", str(SAMPLE.parent)],
    ["info", "/no/such/trace.sqlite"],
    ["stats", S, S],
    ["stats", S, "-o", "out.csv"],
    ["stats", S, "--per-rank"],
    ["stats", S, "--help-reports"],
    ["stats", S, "--rank-from", "nope"],
    ["stats", S, "-qr", "cuda_api_sum"],
    ["stats", S, "--quiet=1"],
    ["stats", S, "--", "x"],
    ["stats", S, "--unknown"],
    ["report", S],
    [],
]


def _click_params(args: list[str]) -> dict[str, object]:
    """The parameters click hands the command's function for ``args``."""
    _register()
    command = cli.get_command(click.Context(cli), args[0])
    assert command is not None
    ctx = command.make_context(args[0], list(args[1:]), parent=click.Context(cli))
    return dict(ctx.params)


@pytest.mark.parametrize("args", TAKEN, ids=" ".join)
def test_quick_reads_a_command_line_as_click_does(args: list[str]) -> None:
    parsed = quick.parse(args)
    assert parsed is not None
    command, given = parsed
    assert command == args[0]
    params = _click_params(args)
    if command == "info":
        assert given.pop("trace") == str(params.pop("trace_path"))
        assert given == {k: v for k, v in params.items() if v != FORMATS[0] or k in given}
        return
    assert (given.pop("trace"),) == tuple(str(p) for p in params.pop("trace_paths"))  # type: ignore[attr-defined]
    quiet = "--quiet" in args or any(a == "-q" and args[i - 1] != "-r" for i, a in enumerate(args))
    assert bool(given.pop("quiet", False)) == quiet
    assert tuple(given.pop("reports", ())) == params.pop("reports")
    assert params.pop("per_rank") is False
    for name, value in params.items():
        assert given.get(name, DEFAULTS.get(name)) == value, name


@pytest.mark.parametrize("args", LEFT, ids=lambda a: " ".join(a) or "(none)")
def test_quick_leaves_other_command_lines_to_click(args: list[str]) -> None:
    assert quick.parse(args) is None


def test_the_defaults_are_clicks() -> None:
    _register()
    ctx = click.Context(cli)
    stats = cli.get_command(ctx, "stats")
    info = cli.get_command(ctx, "info")
    assert stats is not None and info is not None
    defaults = {p.name: p.default for p in stats.params if isinstance(p, click.Option)}
    for name, value in DEFAULTS.items():
        assert defaults[name] == value, name
    fmt = next(p for p in info.params if p.name == "fmt")
    assert fmt.default == FORMATS[0] and tuple(fmt.type.choices) == FORMATS  # type: ignore[attr-defined]
    declared = {o for p in stats.params if isinstance(p, click.Option) for o in (*p.opts, *p.secondary_opts)}
    assert set(quick.STATS_OPTIONS) <= declared
    assert quick.CHOICES[("stats", "rank_from")] == tuple(
        next(p for p in stats.params if p.name == "rank_from").type.choices  # type: ignore[attr-defined]
    )


def _both(args: list[str], cwd: Path | None = None) -> tuple[tuple[int, str, str], tuple[int, str, str]]:
    """(the entry point's run, click's run) of ``args``: exit code, stdout, stderr."""
    env = dict(os.environ, COLUMNS="80", NSYS_DOCTOR_NO_CACHE="1")
    out = []
    for code in (
        "import sys; from nsys_doctor.cli.main import main; sys.exit(main(sys.argv[1:]))",
        "import sys; from nsys_doctor.cli.app import run; sys.exit(run(sys.argv[1:], 0.0))",
    ):
        proc = subprocess.run(
            [sys.executable, "-c", code, *args], capture_output=True, text=True, env=env, cwd=cwd, check=False
        )
        out.append((proc.returncode, proc.stdout, proc.stderr))
    return out[0], out[1]


@pytest.mark.parametrize(
    "args",
    [
        ["info", S],
        ["info", S, "--format", "json"],
        ["stats", S],
        ["stats", "-r", "cuda_gpu_kern_sum,cuda_gpu_kern_gb_sum", "--format", "table", S],
        ["stats", "-r", "cuda_kern_exec_sum", "--timeunit", "ms", S, "-f", "csv"],
        ["stats", "-r", "gpu_gaps:gap=1", S],
        ["stats", "-r", "bogus", S],
        ["stats", "--memunit", "parsecs", S],
        ["stats", "--filter-time", "xyz", S],
        ["stats", "-r", "nvtx_sum", "--filter-nvtx", "no_such_range", S],
    ],
    ids=" ".join,
)
def test_quick_and_click_print_the_same(args: list[str]) -> None:
    assert quick.parse(args) is not None
    fast, slow = _both(args)
    assert fast == slow
    assert "Traceback" not in fast[2]


def test_damaged_rows_warn_after_the_output_both_ways(tmp_path: Path) -> None:
    damaged = mutated_copy(SAMPLE, tmp_path / "damaged.sqlite", set_values(K, "start", "NULL", 100, 1))
    args = ["stats", "-r", "cuda_gpu_kern_sum", str(damaged)]
    fast, slow = _both(args)
    assert fast == slow
    assert fast[0] == 0 and fast[1]
    assert fast[2].startswith("nsys-doctor: warning: left out ") and "NULL start" in fast[2]


def test_bad_traces_are_one_line_both_ways(tmp_path: Path) -> None:
    text = tmp_path / "notes.sqlite"
    text.write_text("not a database")
    for args in (["info", str(text)], ["stats", str(text)], ["stats", "-r", "cuda_api_sum", str(tmp_path)]):
        fast, slow = _both(args)
        assert fast == slow
        assert fast[0] == 2 and fast[1] == "" and len(fast[2].splitlines()) == 1, fast


LIGHT_FORBIDDEN = (
    "click",
    "dataclasses",
    "inspect",
    "pathlib",
    "typing",
    "re",
    "json",
    "decimal",
    "polars",
    "importlib",
)


@pytest.mark.parametrize(
    "args",
    [["info", S], ["stats", "-r", "cuda_gpu_kern_sum", S], ["stats", S], ["stats", "-f", "csv", S]],
    ids=" ".join,
)
def test_light_commands_load_only_what_they_use(args: list[str]) -> None:
    proc = subprocess.run(
        [sys.executable, "-X", "importtime", "-c", "from nsys_doctor.cli.main import entry; entry()", *args],
        capture_output=True,
        text=True,
        env=dict(os.environ, NSYS_DOCTOR_NO_CACHE="1"),
        check=False,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    seen = {line.rsplit("|", 1)[-1].strip() for line in proc.stderr.splitlines() if line.startswith("import time:")}
    assert "nsys_doctor.cli.quick" in seen  # the list is real
    assert sorted(m for m in LIGHT_FORBIDDEN if m in seen) == []


def test_quick_commands_collect_again_after_they_run(capsys: pytest.CaptureFixture[str]) -> None:
    import gc

    seen: list[bool] = []
    gc.callbacks.append(lambda phase, info: seen.append(phase == "start"))
    try:
        assert gc.isenabled()
        assert quick.run(["stats", "-r", "cuda_gpu_kern_sum", S], 0.0) == 0
        assert gc.isenabled()  # a command run in a process that goes on leaves the collector as it found it
        during = len(seen)
        gc.collect()
        assert len(seen) > during
    finally:
        gc.callbacks.pop()
    assert during == 0  # nothing collected while the rows were read
    assert "nvjet_sm90" in capsys.readouterr().out


@pytest.mark.parametrize(
    "text", ["a.sqlite", "./a.sqlite", "a//b", "a/./b/", "/x/y/", "//x", "///x", "", ".", "..", "a/../b", "./", "/"]
)
def test_path_text_is_how_pathlib_writes_a_path(text: str) -> None:
    assert path_text(text) == str(Path(text))


def test_uri_percent_encodes_as_urllib_does(tmp_path: Path) -> None:
    import urllib.parse

    for name in ("a b.sqlite", "ü€%?#.sqlite", "a~b_c-d.e"):
        p = tmp_path / name
        assert _uri(p) == "file:" + urllib.parse.quote(str(p.resolve())) + "?mode=ro"


class _Pair(Value):
    _fields = ("a", "b")

    def __init__(self, a: int, b: object = None) -> None:
        self.a = a
        self.b = b


def test_values_compare_hash_show_and_replace_by_their_fields() -> None:
    one, same, other = _Pair(1, "x"), _Pair(1, "x"), _Pair(2, "x")
    assert one == same and hash(one) == hash(same) and one != other
    assert one != (1, "x")
    assert repr(one) == "_Pair(a=1, b='x')"
    changed = one.replace(a=3)
    assert changed == _Pair(3, "x") and one.a == 1
    with pytest.raises(TypeError):
        one.replace(c=1)


@pytest.mark.parametrize(
    "args", [["info", S], ["stats", "-r", "cuda_gpu_kern_sum,cuda_api_sum", "-f", "csv", S]], ids=" ".join
)
def test_a_quick_command_ends_its_process_after_its_whole_output(
    args: list[str], capsys: pytest.CaptureFixture[str]
) -> None:
    """A quick command's process ends without the interpreter's teardown (``os._exit``), after flushing: what a
    pipe receives is the whole output, as the same command run in this process writes it, and the exit code."""
    assert quick.run(args, 0.0) == 0
    expected = capsys.readouterr().out
    at_exit = "import atexit, sys; atexit.register(lambda: sys.stderr.write('teardown ran'))"
    entry = f"{at_exit}; from nsys_doctor.cli.main import entry; entry()"
    proc = subprocess.run([sys.executable, "-c", entry, *args], capture_output=True, text=True, check=False)
    assert (proc.returncode, proc.stderr) == (0, "")  # no teardown: the exit handler never ran
    assert proc.stdout == expected
    assert len(expected) > 1000


def test_a_quick_command_whose_reader_leaves_exits_within_the_contract() -> None:
    """A reader that closes the pipe early (``| head -c 1``) gets no traceback: the fast exit's flush fails over to
    the ordinary exit, which the error contract governs."""
    entry = "from nsys_doctor.cli.main import entry; entry()"
    cmd = [sys.executable, "-c", entry, "stats", "-r", "cuda_gpu_trace", "-f", "csv", S]  # megabytes: past the pipe
    with subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE) as proc:
        assert proc.stdout is not None and proc.stderr is not None
        proc.stdout.read(1)
        proc.stdout.close()
        err = proc.stderr.read().decode()
        code = proc.wait()
    assert (code, err) == (0, "")
