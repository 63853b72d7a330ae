"""Start-up: the static command table of ``cli.main`` matches the real commands, ``--help`` lists them as click
would, and the light commands import no heavy package (polars, numpy, rich). No wall-clock assertions here:
benchmarks/bench_startup.py measures the time."""

from __future__ import annotations

import importlib
import os
import pkgutil
import platform
import subprocess
import sys

import click
import pytest

from nsys_doctor.cli import main as cli_main
from nsys_doctor.cli.app import HELP_WIDTHS, _register, cli, help_paths, short_help
from nsys_doctor.cli.main import COMMAND_TABLE, help_width, quick_text, terminal_columns
from nsys_doctor.stats import MODULES

from .conftest import SAMPLE

HEAVY = ("polars", "numpy", "rich", "pandas", "pyarrow")


def _loaded_commands() -> dict[str, click.Command]:
    _register()
    ctx = click.Context(cli)
    out: dict[str, click.Command] = {}
    for name in COMMAND_TABLE:
        cmd = cli.get_command(ctx, name)
        assert cmd is not None, f"{name} is in COMMAND_TABLE but its module does not define it"
        out[name] = cmd
    return out


def test_command_table_names_modules_and_help_match_the_commands() -> None:
    commands = _loaded_commands()
    for name, (module, text) in COMMAND_TABLE.items():
        cmd = commands[name]
        assert cmd.name == name
        defined = importlib.import_module(f"nsys_doctor.cli.{module}")
        assert cmd in getattr(defined, "COMMANDS", ()), f"{name} is not in nsys_doctor.cli.{module}.COMMANDS"
        assert not cmd.hidden
        assert not cmd.short_help, f"{name}: a short_help= would be listed as is; the table assumes the docstring"
        assert text == cmd.get_short_help_str(limit=10**6), f"COMMAND_TABLE help of {name} is out of date"
        for limit in range(0, 140):
            assert short_help(text, limit) == cmd.get_short_help_str(limit), (name, limit)


def test_every_command_module_is_in_the_table() -> None:
    """A command added to a cli module must be added to COMMAND_TABLE too (else --help would not list it)."""
    import nsys_doctor.cli as pkg

    found: dict[str, str] = {}
    for info in pkgutil.iter_modules(pkg.__path__):
        module = importlib.import_module(f"nsys_doctor.cli.{info.name}")
        for cmd in getattr(module, "COMMANDS", ()):
            found[cmd.name] = info.name
    assert found == {name: module for name, (module, _) in COMMAND_TABLE.items()}


def _run(*args: str, columns: int = 80, importtime: bool = False) -> subprocess.CompletedProcess[str]:
    env = dict(os.environ, COLUMNS=str(columns))
    pre = ["-X", "importtime"] if importtime else []
    code = "import sys; from nsys_doctor.cli.main import main; sys.exit(main(sys.argv[1:]))"
    return subprocess.run(
        [sys.executable, *pre, "-c", code, *args],
        capture_output=True,
        text=True,
        env=env,
        check=False,
    )


@pytest.mark.parametrize("columns", [50, 80, 200])
def test_group_help_is_what_click_prints_with_every_command_loaded(columns: int) -> None:
    lazy = _run("--help", columns=columns)
    stock = subprocess.run(
        [
            sys.executable,
            "-c",
            "import click, sys, time; from nsys_doctor.cli.app import _register, cli, run; _register(); "
            "cli.format_commands = click.Group.format_commands.__get__(cli); "
            "sys.exit(run(['--help'], time.monotonic()))",
        ],
        capture_output=True,
        text=True,
        env=dict(os.environ, COLUMNS=str(columns)),
        check=False,
    )
    assert lazy.returncode == stock.returncode == 0
    assert lazy.stdout == stock.stdout
    for name in COMMAND_TABLE:
        assert f"\n  {name} " in lazy.stdout


def _heavy_imports(stderr: str) -> list[str]:
    seen = {line.rsplit("|", 1)[-1].strip() for line in stderr.splitlines() if line.startswith("import time:")}
    return [m for m in HEAVY if m in seen]


@pytest.mark.parametrize(
    "args",
    [
        ("--help",),
        ("stats", "--help"),
        ("info", "--help"),
        ("nccl", "--help"),
        ("sample", "--help"),
        ("info", str(SAMPLE)),
        ("info", str(SAMPLE), "--format", "json"),
    ],
)
def test_light_commands_import_no_heavy_package(args: tuple[str, ...]) -> None:
    proc = _run(*args, importtime=True)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert _heavy_imports(proc.stderr) == []


def _commands_and_subcommands() -> list[tuple[str, ...]]:
    """Every command of the table, and every subcommand of a command group (``baseline save``, ``session start``)."""
    out: list[tuple[str, ...]] = []
    for name, cmd in _loaded_commands().items():
        out.append((name,))
        if isinstance(cmd, click.Group):
            out += [(name, sub) for sub in sorted(cmd.commands)]
    return out


@pytest.mark.parametrize("command", _commands_and_subcommands(), ids=" ".join)
def test_every_command_help_imports_no_heavy_package(command: tuple[str, ...]) -> None:
    """`nsys-doctor COMMAND --help` in a fresh interpreter: the entry point runs, then the loaded modules are listed
    (polars, numpy, rich, pandas and pyarrow are imported by the code that runs a command, never for its help)."""
    code = (
        "import sys; from nsys_doctor.cli.main import main; rc = main(sys.argv[1:]); "
        "print('LOADED', ' '.join(sorted(m for m in sys.modules if '.' not in m)), file=sys.stderr); sys.exit(rc)"
    )
    proc = subprocess.run([sys.executable, "-c", code, *command, "--help"], capture_output=True, text=True, check=False)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "Usage: " in proc.stdout and "--help" in proc.stdout
    loaded = set(proc.stderr.rsplit("LOADED ", 1)[1].split())
    assert "nsys_doctor" in loaded  # the list is real
    assert sorted(loaded & set(HEAVY)) == []
    assert "click" not in loaded  # printed from helptext.py


def test_diff_levels_are_the_comparison_levels() -> None:
    """`diff --by` lists its choices without importing the comparison (which needs polars): the same tuple."""
    from nsys_doctor.analysis.compare import LEVELS
    from nsys_doctor.cli import diff

    assert diff.LEVELS == LEVELS


def test_rank_from_choices_are_the_rank_sources() -> None:
    """`--rank-from` lists its choices without importing the rank discovery: the same tuple."""
    from nsys_doctor.cli.common import RANK_FROM
    from nsys_doctor.trace import ranks

    assert RANK_FROM == ranks.RANK_FROM


@pytest.mark.parametrize("columns", [80, 100])  # printed from helptext.py; by click
def test_group_help_loads_no_command_module(columns: int) -> None:
    proc = _run("--help", columns=columns, importtime=True)
    seen = {line.rsplit("|", 1)[-1].strip() for line in proc.stderr.splitlines() if line.startswith("import time:")}
    front = {"nsys_doctor.cli.main", "nsys_doctor.cli.app", "nsys_doctor.cli.contract", "nsys_doctor.cli.helptext"}
    assert "nsys_doctor.cli.main" in seen  # the list is real
    assert sorted(m for m in seen if m.startswith("nsys_doctor.cli.") and m not in front) == []
    assert ("click" in seen) == (columns == 100)


def test_lazy_group_still_runs_commands() -> None:
    proc = _run("sample")
    assert proc.returncode == 0
    assert proc.stdout.strip().endswith("sample_decode.sqlite")
    assert cli_main.COMMAND_MODULES["scaling"] == "diff"


def test_api_names_are_the_api() -> None:
    import nsys_doctor
    from nsys_doctor import api

    assert tuple(api.__all__) == nsys_doctor.API_NAMES
    assert nsys_doctor.open is api.open
    with pytest.raises(AttributeError):
        nsys_doctor.no_such_name  # noqa: B018


@pytest.mark.parametrize(
    "args", [("--help",), ("info", str(SAMPLE)), ("stats", str(SAMPLE), "-r", "cuda_gpu_kern_sum")]
)
def test_light_commands_do_not_load_the_python_api(args: tuple[str, ...]) -> None:
    """``from nsys_doctor import progress`` (every command line) asked the package for an attribute, which once
    imported the Python API, its trace session and all they import, on every start."""
    proc = _run(*args, importtime=True)
    assert proc.returncode == 0, proc.stderr[-2000:]
    seen = {line.rsplit("|", 1)[-1].strip() for line in proc.stderr.splitlines() if line.startswith("import time:")}
    assert "nsys_doctor.cli.main" in seen  # the list is real
    assert sorted(seen & {"nsys_doctor.api", "nsys_doctor.session", "nsys_doctor.trace.ranks"}) == []


def test_report_modules_name_where_each_report_is_defined() -> None:
    from nsys_doctor.stats import MODULES, REGISTRY, load_all

    load_all()
    assert {name: spec.func.__module__ for name, spec in REGISTRY.items()} == {
        name: f"nsys_doctor.stats.{module}" for name, module in MODULES.items()
    }


@pytest.mark.parametrize(
    ("report", "module"),
    [("cuda_gpu_kern_sum", "kernels"), ("nvtx_sum", "nvtx"), ("gpu_gaps", "gpu_rules"), ("cuda_api_sync", "rules")],
)
def test_one_report_imports_its_module_only(report: str, module: str) -> None:
    code = (
        "import sys; from nsys_doctor.cli.main import main; rc = main(sys.argv[1:]); "
        "print('LOADED', ' '.join(sorted(m for m in sys.modules if m.startswith('nsys_doctor.stats.'))), "
        "file=sys.stderr); sys.exit(rc)"
    )
    proc = subprocess.run(
        [sys.executable, "-c", code, "stats", str(SAMPLE), "-r", report], capture_output=True, text=True, check=False
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    loaded = {m.rsplit(".", 1)[1] for m in proc.stderr.rsplit("LOADED ", 1)[1].split()} - {
        "core",
        "aggregate",
        "rulebase",
    }
    assert loaded == {module}


SMALL_REPORTS = sorted(MODULES)  # every report and rule (the per-kernel trace of the sample too: its stdlib path)


@pytest.mark.parametrize("report", SMALL_REPORTS)
def test_a_small_report_imports_no_slow_standard_module(report: str) -> None:
    """A report of the sample loads neither polars nor the standard modules whose import costs more than its
    work: dataclasses (with inspect and ast), typing and contextlib."""
    code = (
        "import sys; from nsys_doctor.cli.main import main; rc = main(sys.argv[1:]); "
        "print('LOADED', ' '.join(sorted(sys.modules)), file=sys.stderr); sys.exit(rc)"
    )
    proc = subprocess.run(
        [sys.executable, "-c", code, "stats", str(SAMPLE), "-r", report, "--format", "csv", "-o", "-"],
        capture_output=True,
        text=True,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    loaded = set(proc.stderr.rsplit("LOADED ", 1)[1].split())
    assert "nsys_doctor.stats.core" in loaded  # the list is real
    assert sorted(loaded & {"dataclasses", "inspect", "ast", "typing", "contextlib", *HEAVY}) == []


# ---- polars' allocator: bounded for the analysis commands, never for capture, never over the user's setting


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (["report", "t.sqlite"], True),
        (["--debug", "stats", "-r", "cuda_gpu_kern_sum", "t.sqlite"], True),
        (["diff", "a.sqlite", "b.sqlite"], True),
        (["capture", "--", "python", "serve.py"], False),  # the child is the user's program
        (["check"], False),
        (["session", "start", "--", "./engine"], False),
        (["--help"], False),
        (["no-such-command"], False),
        ([], False),
    ],
)
def test_allocator_setting_is_for_analysis_commands(args: list[str], expected: bool) -> None:
    env: dict[str, str] = {}
    assert cli_main.bound_allocator(args, env) is expected
    assert env == ({cli_main.ALLOCATOR_ENV: "narenas:1,dirty_decay_ms:250,muzzy_decay_ms:250"} if expected else {})


@pytest.mark.parametrize(
    ("args", "expected"),
    [(["report", "t.sqlite"], True), (["capture", "--", "python", "serve.py"], False), (["--help"], False)],
)
def test_the_c_heap_is_bounded_for_analysis_commands_only(
    args: list[str], expected: bool, monkeypatch: pytest.MonkeyPatch
) -> None:
    from nsys_doctor.cli import app

    called: list[bool] = []
    monkeypatch.setattr(app, "bound_native_heap", lambda: called.append(True) or True)
    monkeypatch.setattr(app, "_run", lambda argv: 0)
    monkeypatch.setitem(os.environ, cli_main.ALLOCATOR_ENV, "")  # the test process's allocator is left alone
    assert app.run(args, 0.0) == 0
    assert called == ([True] if expected else [])


@pytest.mark.skipif(not sys.platform.startswith("linux") or platform.libc_ver()[0] != "glibc", reason="glibc's mallopt")
def test_the_c_heap_bound_takes_with_glibc() -> None:
    assert cli_main.bound_native_heap() is True


def test_allocator_setting_never_replaces_the_users() -> None:
    for own in ("", "narenas:8"):
        env = {cli_main.ALLOCATOR_ENV: own}
        assert cli_main.bound_allocator(["report", "t.sqlite"], env) is False
        assert env == {cli_main.ALLOCATOR_ENV: own}


def test_a_command_process_sets_the_allocator_before_polars_loads() -> None:
    code = (
        "import os, sys\n"
        "from nsys_doctor.cli.main import main\n"
        f"rc = main(['stats', '-r', 'cuda_gpu_kern_sum', '--format', 'csv', '-o', os.devnull, {str(SAMPLE)!r}])\n"
        "print(rc, os.environ.get('_RJEM_MALLOC_CONF'))\n"
    )
    env = {k: v for k, v in os.environ.items() if k != cli_main.ALLOCATOR_ENV}
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, check=True).stdout
    assert out.split() == ["0", "narenas:1,dirty_decay_ms:250,muzzy_decay_ms:250"]


@pytest.mark.parametrize(
    ("args", "cores", "expected"),
    [
        (["report", "t.sqlite"], 16, True),
        (["--debug", "diff", "a.sqlite", "b.sqlite"], 5, True),
        (["report", "t.sqlite"], 4, False),  # no more cores than the bound
        (["stats", "-r", "cuda_gpu_kern_sum", "t.sqlite"], 16, False),  # timed against nsys with every core
        (["capture", "--", "python", "serve.py"], 16, False),
        (["--help"], 16, False),
    ],
)
def test_thread_bound_is_for_analysis_commands(args: list[str], cores: int, expected: bool) -> None:
    env: dict[str, str] = {}
    assert cli_main.bound_threads(args, env, cores) is expected
    assert env == ({cli_main.THREADS_ENV: "4"} if expected else {})


def test_thread_bound_never_replaces_the_users() -> None:
    env = {cli_main.THREADS_ENV: "12"}
    assert cli_main.bound_threads(["report", "t.sqlite"], env, 16) is False
    assert env == {cli_main.THREADS_ENV: "12"}


def test_a_report_process_starts_polars_with_the_bound() -> None:
    code = (
        "import os, sys\n"
        "os.cpu_count = lambda: 16\n"
        "from nsys_doctor.cli.main import main\n"
        f"rc = main(['report', '-q', '-o', os.devnull, {str(SAMPLE)!r}])\n"
        "import polars\n"
        "print(rc, polars.thread_pool_size())\n"
    )
    env = {k: v for k, v in os.environ.items() if k != cli_main.THREADS_ENV}
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, check=True).stdout
    assert out.split() == ["0", "4"]


def test_worker_processes_share_the_bound(monkeypatch: pytest.MonkeyPatch) -> None:
    from nsys_doctor.parallel import worker_threads

    monkeypatch.setattr(os, "cpu_count", lambda: 16)
    assert worker_threads(2, {}) == 8
    assert worker_threads(2, {"POLARS_MAX_THREADS": "4"}) == 4
    assert worker_threads(8, {"POLARS_MAX_THREADS": "4"}) == 2
    assert worker_threads(32, {}) == 1
    assert worker_threads(2, {"POLARS_MAX_THREADS": "many"}) == 8


def test_help_texts_are_what_click_prints() -> None:
    """helptext.py is up to date: written by scripts/gen_helptext.py from the commands as they are now."""
    import json

    from nsys_doctor.cli.helptext import TEXTS

    # in a fresh interpreter, as a user runs it: click makes a command's help option once, from the first context
    # that asks (a test invoking `export` alone would leave it without -h)
    code = "import json; from nsys_doctor.cli.app import help_texts; print(json.dumps(list(help_texts().items())))"
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    fresh = {(path, width): text for (path, width), text in json.loads(proc.stdout)}
    assert sorted(fresh) == sorted(TEXTS), "run scripts/gen_helptext.py: the commands changed"
    stale = [key for key in fresh if fresh[key] != TEXTS[key]]
    assert stale == [], f"run scripts/gen_helptext.py: help changed for {stale}"
    assert len(fresh) == len(HELP_WIDTHS) * len(help_paths()) > 2 * len(COMMAND_TABLE)
    assert fresh[("stats", 78)].startswith("Usage: nsys-doctor stats [OPTIONS] TRACES...\n")
    assert fresh[("report", 78)] != fresh[("report", 108)]  # wrapped at each width


@pytest.mark.parametrize("columns", [50, 80, 100, 110, 200])
@pytest.mark.parametrize(
    "args", [("--help",), ("-h",), (), ("--version",), ("stats", "--help"), ("session", "start", "-h")]
)
def test_help_without_click_is_what_click_prints(args: tuple[str, ...], columns: int) -> None:
    """The entry point prints help texts itself where helptext.py holds them for the terminal's width (80 and 110+
    columns), and leaves the rest to click: either way the output is click's, byte for byte."""
    code = (
        "import sys, time; from nsys_doctor.cli.{0} import {1}; rc = {1}(sys.argv[1:]{2}); "
        "print('CLICK' if 'click' in sys.modules else 'NO-CLICK', file=sys.stderr); sys.exit(rc)"
    )
    env = dict(os.environ, COLUMNS=str(columns))
    runs = [
        subprocess.run([sys.executable, "-c", code.format(*how), *args], capture_output=True, text=True, env=env)
        for how in (("main", "main", ""), ("app", "run", ", time.monotonic()"))
    ]
    quick, stock = runs
    assert quick.returncode == stock.returncode == 0, quick.stderr + stock.stderr
    assert quick.stdout == stock.stdout
    assert "Usage: nsys-doctor" in quick.stdout or quick.stdout.startswith("nsys-doctor, version ")
    held = help_width(columns) in HELP_WIDTHS or args == ("--version",)
    assert quick.stderr.split()[-1] == ("NO-CLICK" if held else "CLICK")


def test_quick_text_leaves_everything_else_to_click() -> None:
    width = HELP_WIDTHS[0]
    os.environ["COLUMNS"] = str(width + 2)
    try:
        assert quick_text(["stats", "--help"]) is not None
        for args in (
            ["stats"],
            ["info", str(SAMPLE)],
            ["no-such-command", "--help"],
            ["report", "trace.sqlite", "--help"],
            ["--debug", "--help"],
            ["--help", "stats"],
            ["--version", "--help"],
        ):
            assert quick_text(args) is None, args
    finally:
        del os.environ["COLUMNS"]


@pytest.mark.parametrize("value", ["", "0", "-3", "abc", "95"])
def test_terminal_columns_is_shutils(value: str, monkeypatch: pytest.MonkeyPatch) -> None:
    import shutil

    monkeypatch.setenv("COLUMNS", value)
    monkeypatch.setenv("LINES", "24")
    assert terminal_columns() == shutil.get_terminal_size().columns
    assert help_width(terminal_columns()) == max(min(shutil.get_terminal_size().columns, 110) - 2, 50)
