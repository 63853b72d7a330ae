"""Capture: nsys command lines for every option and preset, output-name patterns, command files, the guards, the
preflight parsers on real tool output, validation and sidecar of a real capture, and the CLI end to end with a
stand-in nsys (the real end-to-end run on the GPU machine is in docs/capture.md; its trace is
tests/data/capture_decode.sqlite)."""

from __future__ import annotations

import json
import os
import stat
import sys
from pathlib import Path

import pytest

from nsys_doctor.capture import command as C
from nsys_doctor.capture import guards, preflight, run, session, sidecar, workload
from nsys_doctor.capture.plan import CaptureArgs, plan
from nsys_doctor.cli.main import main
from nsys_doctor.config import Config
from nsys_doctor.errors import UsageError
from nsys_doctor.trace import Trace
from nsys_doctor.trace.meta import describe
from nsys_doctor.trace.nsysbin import NsysLocation

from .conftest import DATA, TRACES, needs_shared, open_trace

CAPTURE = DATA / "capture_decode.sqlite"
FIXED = ["--force-overwrite=true", "--cuda-graph-trace=node", "--export=sqlite", "-o", "target/profiling/t"]
APP = ["python3", "bench.py"]


def argv(**options: object) -> list[str]:
    """The nsys flags for these options, without `nsys profile`, the fixed flags and the command."""
    o = C.CaptureOptions(output="target/profiling/t", **options)  # type: ignore[arg-type]
    full = C.profile_argv("nsys", o, APP)
    assert full[:2] == ["nsys", "profile"] and full[2:7] == FIXED and full[-2:] == APP
    return full[7:-2]


# ------------------------------------------------------------------------------------- command construction


def test_default_command_is_the_four_fixed_flags_and_cuda_nvtx():
    o = C.CaptureOptions(output="target/profiling/t")
    assert C.profile_argv("/usr/local/cuda/bin/nsys", o, APP) == [
        "/usr/local/cuda/bin/nsys",
        "profile",
        "--force-overwrite=true",
        "--cuda-graph-trace=node",
        "--export=sqlite",
        "-o",
        "target/profiling/t",
        "--trace=cuda,nvtx",
        "python3",
        "bench.py",
    ]


@pytest.mark.parametrize(
    ("spec", "flags"),
    [
        ("full", []),
        ("cuda-profiler", ["--capture-range=cudaProfilerApi", "--capture-range-end=stop"]),
        ("cudaProfilerApi", ["--capture-range=cudaProfilerApi", "--capture-range-end=stop"]),
        (
            "nvtx:decode_step@engine",
            [
                "--capture-range=nvtx",
                "--nvtx-capture=decode_step@engine",
                "--capture-range-end=stop",
                "--env-var=NSYS_NVTX_PROFILER_REGISTER_ONLY=0",
            ],
        ),
        ("delay:10", ["--delay=10"]),
        ("delay:10,duration:30", ["--delay=10", "--duration=30"]),
        ("delay:0,duration:5s", ["--duration=5"]),
        ("duration:30", ["--duration=30"]),
    ],
)
def test_capture_range_flags(spec: str, flags: list[str]):
    assert argv(range=C.parse_range(spec)) == ["--trace=cuda,nvtx", *flags]


def test_range_end_and_repeat():
    cp = C.parse_range("cuda-profiler")
    assert argv(range=cp, range_end="stop-shutdown") == [
        "--trace=cuda,nvtx",
        "--capture-range=cudaProfilerApi",
        "--capture-range-end=stop-shutdown",
    ]
    assert argv(range=cp, repeat=3) == [
        "--trace=cuda,nvtx",
        "--capture-range=cudaProfilerApi",
        "--capture-range-end=repeat:3",
    ]
    assert argv(range=C.parse_range("nvtx:iter"), repeat=2)[3] == "--capture-range-end=repeat:2"


@pytest.mark.parametrize(
    ("options", "flags"),
    [
        ({"start_later": True}, ["--trace=cuda,nvtx", "--start-later=true"]),
        ({"trace": C.parse_trace(["cuda,nvtx", "cublas", "osrt,cudnn"])}, ["--trace=cuda,nvtx,cublas,osrt,cudnn"]),
        ({"trace": C.parse_trace(["cuda,mpi,python-gil"])}, ["--trace=cuda,mpi,python-gil"]),
        ({"lighter": True}, ["--trace=cuda,nvtx", "--sample=none", "--cpuctxsw=none"]),
        ({"memory_usage": True}, ["--trace=cuda,nvtx", "--cuda-memory-usage=true"]),
        ({"backtrace": C.parse_backtrace("kernel:500")}, ["--trace=cuda,nvtx", "--cudabacktrace=kernel:500"]),
        ({"backtrace": C.parse_backtrace("KERNEL:500,sync")}, ["--trace=cuda,nvtx", "--cudabacktrace=kernel:500,sync"]),
        ({"gpu_metrics": True}, ["--trace=cuda,nvtx", "--gpu-metrics-devices=all"]),
        (
            {"gpu_metrics": True, "gpu_metrics_frequency": 20000},
            ["--trace=cuda,nvtx", "--gpu-metrics-devices=all", "--gpu-metrics-frequency=20000"],
        ),
        (
            {"plugins": ("nvml_metrics", "network_interface")},
            ["--trace=cuda,nvtx", "--enable=nvml_metrics", "--enable=network_interface"],
        ),
        ({"stats": True}, ["--trace=cuda,nvtx", "--stats=true"]),
        (
            {"extra": ("--osrt-threshold=2000", "--sample=none")},
            ["--trace=cuda,nvtx", "--osrt-threshold=2000", "--sample=none"],
        ),
    ],
)
def test_each_option_maps_to_its_nsys_flags(options: dict[str, object], flags: list[str]):
    assert argv(**options) == flags


def test_graph_trace_graph_only_when_asked():
    o = C.CaptureOptions(output="o", graph_trace="graph")
    assert C.profile_argv("nsys", o, APP)[3] == "--cuda-graph-trace=graph"
    assert "graph replay is one opaque block" in str(guards.graph_trace_warning("graph"))
    assert guards.graph_trace_warning("node") is None


def test_everything_at_once_in_order():
    o = C.CaptureOptions(
        output="target/profiling/all",
        range=C.parse_range("cuda-profiler"),
        repeat=2,
        trace=("cuda", "nvtx", "osrt"),
        memory_usage=True,
        backtrace="kernel:500",
        gpu_metrics=True,
        plugins=("nvml_metrics",),
        stats=True,
        extra=("--osrt-threshold=2000",),
    )
    assert C.profile_argv("nsys", o, ["cargo", "run", "-r"]) == [
        "nsys",
        "profile",
        "--force-overwrite=true",
        "--cuda-graph-trace=node",
        "--export=sqlite",
        "-o",
        "target/profiling/all",
        "--trace=cuda,nvtx,osrt",
        "--capture-range=cudaProfilerApi",
        "--capture-range-end=repeat:2",
        "--cuda-memory-usage=true",
        "--cudabacktrace=kernel:500",
        "--gpu-metrics-devices=all",
        "--enable=nvml_metrics",
        "--stats=true",
        "--osrt-threshold=2000",
        "cargo",
        "run",
        "-r",
    ]


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"repeat": 2}, "--repeat needs a cuda-profiler or nvtx capture range"),
        ({"repeat": 0, "range": C.Range("cuda-profiler")}, "--repeat must be 1 or more"),
        ({"start_later": True, "range": C.Range("delay", delay_s=5)}, "exclude each other"),
        ({"lighter": True, "backtrace": "kernel"}, "--backtrace needs CPU sampling"),
        ({"gpu_metrics": True, "gpu_metrics_frequency": 5}, "10 to 200000 Hz"),
        ({"graph_trace": "nodes"}, "--graph-trace"),
        ({"range_end": "kill"}, "--range-end"),
        ({"extra": ("-o", "x")}, "nsys-doctor sets -o itself"),
        ({"extra": ("--export=none",)}, "nsys-doctor sets --export itself"),
        ({"extra": ("--cuda-graph-trace=graph",)}, "nsys-doctor sets --cuda-graph-trace itself"),
    ],
)
def test_option_conflicts_are_refused(options: dict[str, object], message: str):
    with pytest.raises(UsageError, match=message.replace("(", r"\(").replace(")", r"\)")):
        C.CaptureOptions(output="o", **options)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ("nvtx:", "needs a range name"),
        ("delay:ten", "whole seconds"),
        ("delay:1.5", "whole seconds"),
        ("delay:3,duration:0", "must be positive"),
        ("delay:3,stop:4", "cannot read"),
        ("hotkey", "unknown capture range"),
    ],
)
def test_bad_ranges(spec: str, message: str):
    with pytest.raises(UsageError, match=message):
        C.parse_range(spec)


def test_range_describe_roundtrips():
    for spec in ("full", "cuda-profiler", "nvtx:iter@d", "delay:10,duration:30", "delay:4"):
        r = C.parse_range(spec)
        assert C.parse_range(r.describe()) == r


def test_bad_trace_and_backtrace_values():
    with pytest.raises(UsageError, match="unknown --trace value 'cuda-graph'"):
        C.parse_trace(["cuda,cuda-graph"])
    with pytest.raises(UsageError, match="--trace none excludes"):
        C.parse_trace(["none,cuda"])
    assert C.parse_trace(["cuda", "cuda,NVTX"]) == ("cuda", "nvtx")
    with pytest.raises(UsageError, match="unknown --backtrace kind 'kernels'"):
        C.parse_backtrace("kernels:500")
    with pytest.raises(UsageError, match="nanoseconds"):
        C.parse_backtrace("kernel:5us")


# ------------------------------------------------------------------------------------- output-name patterns


def test_output_patterns_are_expanded_like_nsys():
    out = C.expand_output_name(
        "traces/%h_rank%q{RANK}_%%x", hostname="gpu-node-01", env={"RANK": "0"}, taken=lambda g: False
    )
    assert out.path == "traces/gpu-node-01_rank0_%x"
    assert out.nsys_value == "traces/gpu-node-01_rank0_%%x"  # nsys turns %% back into %
    assert out.glob == "traces/gpu-node-01_rank0_%x"


def test_percent_n_takes_the_smallest_free_number():
    taken = {"t/run_1", "t/run_2"}
    out = C.expand_output_name("t/run_%n", hostname="h", env={}, taken=lambda g: g in taken)
    assert (out.path, out.nsys_value) == ("t/run_3", "t/run_3")
    out = C.expand_output_name("t/other_%n", hostname="h", env={}, taken=lambda g: g in taken)
    assert out.path == "t/other_1"


def test_percent_p_is_left_to_nsys_and_globbed_afterwards():
    out = C.expand_output_name("t/[x]_%p_%h", hostname="node", env={}, taken=lambda g: False)
    assert out.path is None
    assert out.nsys_value == "t/[x]_%p_node"
    assert out.glob == "t/[[]x]_*_node"  # glob characters of the literal part are escaped


def test_bad_patterns():
    with pytest.raises(UsageError, match="unknown pattern '%x'"):
        C.expand_output_name("t/a%x", hostname="h", env={})
    with pytest.raises(UsageError, match="unknown pattern '%'"):
        C.expand_output_name("t/a%", hostname="h", env={})
    with pytest.raises(UsageError, match="RANK is not set"):
        C.expand_output_name("t/a_%q{RANK}", hostname="h", env={})


# ------------------------------------------------------------------------------------- command files


def test_command_file_is_written_one_switch_per_line_without_comments():
    o = C.CaptureOptions(output="target/profiling/x", lighter=True, range=C.Range("cuda-profiler"))
    text = C.write_command_file(C.command_file_flags(o))
    assert text == (
        "--force-overwrite=true\n--cuda-graph-trace=node\n--export=sqlite\n--trace=cuda,nvtx\n--sample=none\n"
        "--cpuctxsw=none\n--capture-range=cudaProfilerApi\n--capture-range-end=stop\n"
    )
    assert "#" not in text and "-o" not in text.split()
    assert C.read_command_file(text) == C.command_file_flags(o)
    with pytest.raises(UsageError, match="cannot write '--trace=cuda nvtx' to a command file") as e:
        C.write_command_file(["--trace=cuda nvtx"])
    assert e.value.hint == "switches in a command file cannot hold spaces"


def test_command_file_with_a_comment_is_refused():
    with pytest.raises(UsageError, match="line 2 has a comment"):
        C.read_command_file("--trace=cuda,nvtx\n# decode profile\n--export=sqlite\n", "nsys_decode.cfg")
    with pytest.raises(UsageError, match="no switches"):
        C.read_command_file("\n  \n")


def test_command_file_several_switches_per_line_and_its_range():
    tokens = C.read_command_file("-t cuda,nvtx  -c cudaProfilerApi\n--capture-range-end=repeat:2 --stats=true\n")
    assert tokens == ["-t", "cuda,nvtx", "-c", "cudaProfilerApi", "--capture-range-end=repeat:2", "--stats=true"]
    assert C.flag_values(tokens) == {
        "--trace": "cuda,nvtx",
        "--capture-range": "cudaProfilerApi",
        "--capture-range-end": "repeat:2",
        "--stats": "true",
    }
    assert C.range_of_flags(tokens) == C.Range("cuda-profiler")
    assert C.range_of_flags(["--delay=10", "--duration=5"]) == C.Range("delay", delay_s=10, duration_s=5)
    assert C.range_of_flags(["--capture-range=nvtx", "--nvtx-capture=iter"]) == C.Range("nvtx", nvtx="iter")
    assert C.range_of_flags(["--trace=cuda"]) == C.Range("full")


def test_with_a_command_file_only_explicit_options_repeat_on_the_command_line():
    o = C.CaptureOptions(output="t/x", command_file="nsys.cfg", range=C.Range("nvtx", nvtx="iter"), stats=True)
    assert C.profile_argv("nsys", o, APP, only=set()) == [
        "nsys", "profile", "--force-overwrite=true", "--cuda-graph-trace=node", "--export=sqlite", "-o", "t/x",
        "--command-file=nsys.cfg", "python3", "bench.py",
    ]  # fmt: skip
    assert C.profile_argv("nsys", o, APP, only={"stats"})[8:] == ["--stats=true", "python3", "bench.py"]


# ------------------------------------------------------------------------------------- guards


@pytest.mark.parametrize(
    "command",
    [
        "cargo run --bin bench_serving -- request --prompt-len 1",
        "cargo run --bin bench_serving -- -r request",  # -r after -- goes to the program
        "cargo r --bin x",
        "cargo +nightly run --bin x",
        "env RUST_LOG=info cargo run --bin x",
        "CUDA_VISIBLE_DEVICES=0 cargo run --bin x",
        "cargo run --profile dev --bin x",
        "cargo run --profile=test --bin x",
        "cargo test --test e2e",
        "cargo bench --profile dev",
        "./target/debug/bench_serving request",
        "/src/app/target/debug/bench_serving",
        "cmake -DCMAKE_BUILD_TYPE=Debug ..",
    ],
)
def test_debug_builds_are_refused(command: str):
    g = guards.build_guard(command.split(), cmake_cache=lambda exe: None)
    assert g.refuse, command


@pytest.mark.parametrize(
    "command",
    [
        "cargo run -r --bin bench_serving -- request",
        "cargo run --release --bin x",
        "cargo run -rq --bin x",
        "cargo +nightly run --release --bin x",
        "cargo run --profile release-lto --bin x",
        "cargo bench",  # the bench profile is optimized
        "cargo test --release",
        "./target/release/bench_serving request",
        "python3 bench.py --cuda-graph false",
        "cmake -DCMAKE_BUILD_TYPE=Release ..",
    ],
)
def test_release_builds_pass(command: str):
    assert guards.build_guard(command.split(), cmake_cache=lambda exe: None).refuse is None, command


def test_cargo_refusal_message():
    g = guards.build_guard(["cargo", "run", "--bin", "x"], cmake_cache=lambda exe: None)
    assert g.refuse == (
        "`cargo run` without -r/--release builds the dev profile (opt-level 0): GPU kernels launch 10x slower "
        "and the trace misleads"
    )


def test_cmake_cache_of_the_executable_decides(tmp_path: Path):
    build = tmp_path / "build"
    (build / "bin").mkdir(parents=True)
    exe = build / "bin" / "bench"
    exe.write_text("")
    (build / "CMakeCache.txt").write_text("CMAKE_BUILD_TYPE:STRING=Debug\nCMAKE_CXX_COMPILER:FILEPATH=/usr/bin/c++\n")
    g = guards.build_guard([str(exe), "--iters", "3"])
    assert g.refuse == f"{exe} comes from a CMake Debug build (CMAKE_BUILD_TYPE=Debug in CMakeCache.txt)"
    (build / "CMakeCache.txt").write_text("CMAKE_BUILD_TYPE:STRING=\n")
    g = guards.build_guard([str(exe)])
    assert g.refuse is None and "empty CMAKE_BUILD_TYPE" in g.warnings[0]
    (build / "CMakeCache.txt").write_text("CMAKE_BUILD_TYPE:STRING=RelWithDebInfo\n")
    assert guards.build_guard([str(exe)]) == guards.GuardResult(None, [])


def test_launch_blocking_warns():
    g = guards.build_guard(["CUDA_LAUNCH_BLOCKING=1", "python3", "x.py"], cmake_cache=lambda exe: None)
    assert g.refuse is None and g.warnings[0].startswith("CUDA_LAUNCH_BLOCKING=1 serializes every launch")


# ------------------------------------------------------------------------------------- presets and templates

TEMPLATE = {
    "workload": {
        "command": "cargo run -r --bin bench_serving -- request --prompt-len {prompt_len} --output-len {output_len} "
        "--warmup {warmup} --iters {iters}",
        "profiler_capture_flag": "--cuda-profiler-capture",
        "no-graph-flag": "--cuda-graph false",
        "timing_regex": "per_token=([0-9.]+)ms",
        "presets": {"long-decode": {"prompt_len": 2048, "output_len": 128}},
    }
}


def template(data: dict[str, object] | None = None) -> workload.WorkloadTemplate:
    t = workload.template_from_config(Config(Path("/p/nsys-doctor.toml"), data or TEMPLATE))
    assert t is not None
    return t


BENCH = ["cargo", "run", "-r", "--bin", "bench_serving", "--", "request"]


@pytest.mark.parametrize(
    ("preset", "shape"),
    [("decode", ["1", "128"]), ("prefill", ["2048", "1"]), ("long-decode", ["2048", "128"])],
)
def test_presets_fill_the_template(preset: str, shape: list[str]):
    w = workload.render(template(), preset)
    assert w.argv == [*BENCH, "--prompt-len", shape[0], "--output-len", shape[1], "--warmup", "1", "--iters", "1"]


def test_profiler_and_no_graph_flags_are_appended_or_placed():
    w = workload.render(template(), "decode", {"iters": 3}, profiler_capture=True, no_graph=True)
    assert w.argv == [
        *BENCH, "--prompt-len", "1", "--output-len", "128", "--warmup", "1", "--iters", "3",
        "--cuda-profiler-capture", "--cuda-graph", "false",
    ]  # fmt: skip
    placed = {
        "workload": {**TEMPLATE["workload"], "command": "bench -- {profiler_capture} {no_graph} req {prompt_len}"}
    }
    assert workload.render(template(placed), "prefill", profiler_capture=True).argv == [
        "bench", "--", "--cuda-profiler-capture", "req", "2048",
    ]  # fmt: skip
    assert workload.render(template(placed), "prefill", no_graph=True).argv == [
        "bench", "--", "--cuda-graph", "false", "req", "2048",
    ]  # fmt: skip


def test_template_errors():
    with pytest.raises(UsageError, match="unknown preset 'decoding'"):
        workload.render(template(), "decoding")
    with pytest.raises(UsageError, match=r"needs \{output_len\}, \{prompt_len\}"):
        workload.render(template(), None)
    with pytest.raises(UsageError, match="no command"):
        template({"workload": {"timing_regex": "x=(1)"}})
    with pytest.raises(UsageError, match="has no group"):
        template({"workload": {"command": "x", "timing_regex": "per_token=[0-9.]+ms"}})
    no_flags = template({"workload": {"command": "bench {prompt_len} {output_len}"}})
    with pytest.raises(UsageError, match="--no-graph needs no_graph_flag"):
        workload.render(no_flags, "decode", no_graph=True)
    w = workload.render(no_flags, "decode", profiler_capture=True)
    assert w.argv == ["bench", "1", "128"] and "no profiler_capture_flag" in w.warnings[0]


def test_timing_regex_on_real_workload_output():
    line = "impl=mini prompt=1 out=128 graph=true path=none wall=324.8ms per_token=2.538ms\n"
    assert workload.timing_from_output("warm-up per_token=9.9ms\n" + line, "per_token=([0-9.]+)ms") == 2.538
    assert workload.timing_from_output(line, r"wall=([0-9.]+)ms") == 324.8
    assert workload.timing_from_output("nothing", "per_token=([0-9.]+)ms") is None
    assert workload.metric_name("per_token=([0-9.]+)ms", None) == "per_token_ms"
    assert workload.metric_name(r"TPOT: ([0-9.]+)", None) == "TPOT"
    assert workload.metric_name(None, None) == "wall_s"
    assert workload.metric_name("x=(1)", "tpot_ms") == "tpot_ms"
    assert [workload.metric_unit(m) for m in ("per_token_ms", "tpot_us", "wall_s", "tokens")] == ["ms", "us", "s", None]


# ------------------------------------------------------------------------------------- planning


def cfg_for(tmp_path: Path, data: dict[str, object] = TEMPLATE) -> Config:
    return Config(tmp_path / "nsys-doctor.toml", data)


def test_plan_from_template_uses_the_cuda_profiler_range_and_the_profiler_flag(tmp_path: Path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    p = plan(CaptureArgs(preset="decode", baseline=True), cfg_for(tmp_path), "nsys", {}, "host")
    app = [
        *BENCH,
        "--prompt-len",
        "1",
        "--output-len",
        "128",
        "--warmup",
        "1",
        "--iters",
        "1",
        "--cuda-profiler-capture",
    ]
    assert p.argv == [
        "nsys", "profile", "--force-overwrite=true", "--cuda-graph-trace=node", "--export=sqlite",
        "-o", "target/profiling/decode", "--trace=cuda,nvtx", "--capture-range=cudaProfilerApi",
        "--capture-range-end=stop", *app,
    ]  # fmt: skip
    assert p.baseline_argv == app
    assert (p.request.timing_regex, p.request.timing_metric) == ("per_token=([0-9.]+)ms", "per_token_ms")
    assert p.request.meta["workload"] == {"warmup": 1, "iters": 1, "prompt_len": 1, "output_len": 128}
    assert p.request.output_glob == "target/profiling/decode"


def test_plan_range_full_drops_the_profiler_flag_and_warns(tmp_path: Path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    p = plan(CaptureArgs(preset="prefill", range="full", name="pf"), cfg_for(tmp_path), "nsys", {}, "h")
    assert p.argv[5:8] == ["-o", "target/profiling/pf", "--trace=cuda,nvtx"]
    assert p.argv[8:] == [*BENCH, "--prompt-len", "2048", "--output-len", "1", "--warmup", "1", "--iters", "1"]
    assert any("model loading and warm-up are in the trace" in w for w in p.warnings)


def test_plan_refuses_to_overwrite_and_numbers_with_percent_n(tmp_path: Path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "target/profiling").mkdir(parents=True)
    (tmp_path / "target/profiling/decode.sqlite").write_text("x")
    with pytest.raises(UsageError, match=r"decode\.sqlite exists") as e:
        plan(CaptureArgs(preset="decode"), cfg_for(tmp_path), "nsys", {}, "h")
    assert "--overwrite" in e.value.hint
    assert plan(CaptureArgs(preset="decode", overwrite=True), cfg_for(tmp_path), "nsys", {}, "h").argv[6] == (
        "target/profiling/decode"
    )
    (tmp_path / "target/profiling/decode_1.nsys-rep").write_text("x")
    (tmp_path / "target/profiling/decode_2.3.sqlite").write_text("x")  # a --repeat file counts as taken
    p = plan(CaptureArgs(preset="decode", name="decode_%n"), cfg_for(tmp_path), "nsys", {}, "h")
    assert p.argv[6] == "target/profiling/decode_3"


def test_plan_refuses_a_debug_build_unless_allowed(tmp_path: Path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    debug = {"workload": {**TEMPLATE["workload"], "command": "cargo run --bin b -- {prompt_len} {output_len}"}}
    with pytest.raises(UsageError, match="refusing to profile a debug build") as e:
        plan(CaptureArgs(preset="decode"), cfg_for(tmp_path, debug), "nsys", {}, "h")
    assert e.value.hint == "build with --release, or pass --allow-debug"
    p = plan(CaptureArgs(preset="decode", allow_debug=True), cfg_for(tmp_path, debug), "nsys", {}, "h")
    assert p.warnings[0].startswith("profiling a debug build (--allow-debug)")


def test_plan_command_and_template_do_not_mix(tmp_path: Path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    with pytest.raises(UsageError, match="do not apply to a command given after --"):
        plan(CaptureArgs(command=APP, preset="decode"), cfg_for(tmp_path), "nsys", {}, "h")
    with pytest.raises(UsageError, match="no command to profile and no workload template"):
        plan(CaptureArgs(), Config(), "nsys", {}, "h")
    p = plan(CaptureArgs(command=APP, name="x"), Config(), "nsys", {}, "h")
    assert p.argv[-3:] == ["--trace=cuda,nvtx", *APP] and p.request.timing_metric == "wall_s"


def test_plan_writes_then_reads_a_command_file(tmp_path: Path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    cf = tmp_path / "nsys_decode.cfg"
    args = CaptureArgs(command=APP, name="x", lighter=True, range="cuda-profiler", command_file=str(cf))
    p = plan(args, Config(), "nsys", {}, "h")
    assert p.command_file_write == (
        cf,
        "--force-overwrite=true\n--cuda-graph-trace=node\n--export=sqlite\n--trace=cuda,nvtx\n--sample=none\n"
        "--cpuctxsw=none\n--capture-range=cudaProfilerApi\n--capture-range-end=stop\n",
    )
    assert p.argv[7:] == [f"--command-file={cf}", *APP]
    cf.write_text(p.command_file_write[1])
    # read back: the file's range counts (for validation); an explicit option is repeated and wins
    p2 = plan(
        CaptureArgs(command=APP, name="x", command_file=str(cf), stats=True, explicit={"stats"}),
        Config(),
        "nsys",
        {},
        "h",
    )
    assert p2.command_file_write is None and p2.command_file_read == cf
    assert p2.request.range == C.Range("cuda-profiler")
    assert p2.argv[7:] == [f"--command-file={cf}", "--stats=true", *APP]
    cf.write_text("--trace=cuda\n#--cuda-graph-trace=node\n")
    with pytest.raises(UsageError, match="line 2 has a comment"):
        plan(CaptureArgs(command=APP, name="x", command_file=str(cf)), Config(), "nsys", {}, "h")


# ------------------------------------------------------------------------------------- preflight on real output

# ../shared/reference/nsys-sqlite.md section 5 (nsys 2025.3.1 as root on the GPU machine)
STATUS_ROOT = """Timestamp counter supported: Yes

CPU Profiling Environment Check
Root privilege: enabled
Linux Kernel Paranoid Level = 2
Linux Distribution = Ubuntu
Linux Kernel Version = 6.18.44-fc-v657-gpu: OK
Linux perf_event_open syscall available: OK
Sampling trigger event available: OK
Intel(c) Last Branch Record support: Not Available
CPU Profiling Environment (process-tree): OK
CPU Profiling Environment (system-wide): OK

See the product documentation at https://docs.nvidia.com/nsight-systems for more information,
including information on how to set the Linux Kernel Paranoid Level.
"""
# the same machine, as uid 65534 (setpriv), recorded for docs/capture.md
STATUS_USER = STATUS_ROOT.replace("Root privilege: enabled", "Root privilege: disabled").replace(
    "(system-wide): OK", "(system-wide): Fail"
)
NSYS_VERSION = "NVIDIA Nsight Systems version 2025.3.1.0\n"
SMI_QUERY = "0, NVIDIA H100 80GB HBM3, 580.159.04, 81559 MiB, 9.0\n"
SMI_HEADER = """Tue Nov 24 23:29:04 2026
+-----------------------------------------------------------------------------------------+
| NVIDIA-SMI 580.159.04             Driver Version: 580.159.04     CUDA Version: 13.0     |
+-----------------------------------------+------------------------+----------------------+
"""
NVCC = """nvcc: NVIDIA (R) Cuda compiler driver
Copyright (c) 2005-2025 NVIDIA Corporation
Built on Wed_Aug_20_01:58:59_PM_PDT_2025
Cuda compilation tools, release 13.0, V13.0.88
Build cuda_13.0.r13.0/compiler.36424714_0
"""
SESSIONS = """              ID         TIME                                      STATE LAUNCH NAME
           10731        00:18                                   Launched      1 s2
"""


def test_parse_status_env_root():
    env = preflight.parse_status_env(STATUS_ROOT)
    assert env.fields["Linux Kernel Paranoid Level"] == "2"
    assert env.fields["Linux Kernel Version"] == "6.18.44-fc-v657-gpu: OK"
    assert len(env.fields) == 10  # the header and the docs pointer are not fields
    assert (env.paranoid_level, env.root, env.timestamp_counter) == (2, True, True)
    assert (env.perf_event, env.sampling_trigger, env.lbr) == (True, True, False)
    assert (env.cpu_profiling, env.system_wide) == (True, True)
    checks = preflight.status_checks(env)
    assert [(c.name, c.status) for c in checks] == [("paranoid", "ok"), ("cpu-profiling", "ok"), ("lbr", "info")]
    assert checks[0].message == "kernel paranoid level 2, but running as root: CPU sampling works"


def test_parse_status_env_without_root_explains_what_still_works():
    env = preflight.parse_status_env(STATUS_USER)
    assert (env.paranoid_level, env.root, env.cpu_profiling, env.system_wide) == (2, False, True, False)
    checks = preflight.status_checks(env)
    assert [(c.name, c.status) for c in checks] == [("paranoid", "warn"), ("cpu-profiling", "ok"), ("lbr", "info")]
    assert "paranoid level 2 > 1 without root" in checks[0].message
    assert "CUDA, NVTX, OS runtime tracing and GPU metrics still work" in checks[0].message
    assert checks[0].hint.startswith("sudo sysctl -w kernel.perf_event_paranoid=1")
    assert checks[1].message == "CPU profiling environment (process tree): OK (system-wide: Fail)"
    strict = preflight.parse_status_env(
        STATUS_USER.replace("Level = 2", "Level = 4").replace("(process-tree): OK", "(process-tree): Fail")
    )
    c = preflight.status_checks(strict)[0]
    assert c.status == "warn" and c.message.startswith("kernel paranoid level 4 > 1 without root: no CPU sampling")


def test_parse_tool_versions():
    assert preflight.parse_nsys_version(NSYS_VERSION) == "2025.3.1.0"
    assert preflight.parse_nsys_version("NVIDIA Nsight Systems version 2025.3.1.90-253135822126v0") == (
        "2025.3.1.90-253135822126v0"
    )
    assert preflight.parse_nsys_version("bash: nsys: command not found") is None
    assert preflight.parse_nvidia_smi_query(SMI_QUERY) == [
        preflight.Gpu(0, "NVIDIA H100 80GB HBM3", "580.159.04", "81559 MiB", "9.0")
    ]
    geforce = preflight.parse_nvidia_smi_query("0, NVIDIA GeForce RTX 5070 Ti, 575.64, 16303 MiB, [N/A]\n")[0]
    assert geforce.consumer and geforce.compute_cap is None
    assert preflight.parse_nvidia_smi_cuda(SMI_HEADER) == "13.0"
    assert preflight.parse_nvcc_version(NVCC) == preflight.Nvcc("13.0", "V13.0.88")
    params = preflight.parse_nvidia_params('EnableMSI: 1\nRmProfilingAdminOnly: 0\nRmMsg: ""\n')
    assert params["RmProfilingAdminOnly"] == "0"


def fake_runner(answers: dict[str, tuple[int, str]]):
    calls: list[list[str]] = []

    def runner(argv, timeout):
        calls.append(list(argv))
        key = " ".join([os.path.basename(argv[0]), *argv[1:]])
        for k, v in answers.items():
            if key.startswith(k):
                return v
        return 127, f"{argv[0]}: not found"

    runner.calls = calls  # type: ignore[attr-defined]
    return runner


GPU_MACHINE = {
    "nsys --version": (0, NSYS_VERSION),
    "nsys status -e": (0, STATUS_ROOT),
    "nvidia-smi --query-gpu": (0, SMI_QUERY),
    "nvidia-smi": (0, SMI_HEADER),
}
BUNDLED = "/opt/nvidia/nsight-compute/2025.3.1/host/target-linux-x64/nsys"


def test_preflight_on_the_gpu_machine_with_nsys_off_path():
    pf = preflight.preflight(
        fake_runner(GPU_MACHINE), env={"PATH": ""}, location=NsysLocation(BUNDLED, "off PATH"), params_text=""
    )
    assert pf.ok
    nsys = pf.checks[0]
    assert (nsys.name, nsys.status) == ("nsys", "warn")
    assert nsys.hint == 'export PATH="/opt/nvidia/nsight-compute/2025.3.1/host/target-linux-x64:$PATH"'
    assert "bundled with Nsight Compute" in nsys.message
    assert pf.versions() == {
        "nsys": "2025.3.1.0",
        "nsys_path": BUNDLED,
        "driver": "580.159.04",
        "cuda_driver": "13.0",
        "toolkit": None,
        "toolkit_build": None,
        "gpu": "NVIDIA H100 80GB HBM3",
    }


def test_preflight_fails_without_nsys_and_gpu():
    pf = preflight.preflight(fake_runner({}), env={"PATH": ""}, location=None, params_text="", is_root=False)
    assert not pf.ok
    assert [(c.name, c.status) for c in pf.failures] == [("nsys", "fail"), ("gpu", "fail")]
    assert pf.failures[1].message == "nvidia-smi not found: no NVIDIA driver here, so nothing to trace"


def test_preflight_broken_nsys_and_restricted_counters():
    answers = {**GPU_MACHINE, "nsys --version": (1, "error while loading shared libraries: libdw.so.1")}
    pf = preflight.preflight(
        fake_runner(answers),
        env={"PATH": ""},
        location=NsysLocation("/usr/local/cuda/bin/nsys", "PATH"),
        params_text="RmProfilingAdminOnly: 1\n",
        is_root=False,
    )
    assert [c.name for c in pf.failures] == ["nsys-version"]
    assert "libdw.so.1" in pf.failures[0].message
    metrics = next(c for c in pf.checks if c.name == "gpu-metrics")
    assert metrics.status == "warn" and "ERR_NVGPUCTRPERM" in metrics.message
    assert "NVreg_RestrictProfilingToAdminUsers=0" in metrics.hint


def test_check_cli_without_nsys_is_one_line_and_exit_1(monkeypatch, capsys):
    monkeypatch.setattr(preflight, "find_nsys", lambda env=None: None)
    monkeypatch.setattr(preflight, "run_tool", fake_runner({}))
    monkeypatch.setattr(preflight, "find_nvcc", lambda env: None)
    assert main(["check"]) == 1
    out, err = capsys.readouterr()
    assert out.splitlines()[0].startswith("fail  nsys          nsys not found")
    assert err.count("\n") == 1
    assert err.startswith("nsys-doctor: error: capture will not work: nsys not found")
    assert "(and 1 more above)" in err


def test_check_cli_on_the_gpu_machine_exit_0(monkeypatch, capsys):
    monkeypatch.setattr(preflight, "find_nsys", lambda env=None: NsysLocation("/usr/bin/nsys", "PATH"))
    monkeypatch.setattr(preflight, "run_tool", fake_runner(GPU_MACHINE))
    monkeypatch.setattr(preflight, "find_nvcc", lambda env: None)
    assert main(["check"]) == 0
    out = capsys.readouterr().out
    assert out.splitlines()[-1] == "capture will work"
    assert "ok    gpu           GPU 0: NVIDIA H100 80GB HBM3, 81559 MiB, driver 580.159.04" in out


# ------------------------------------------------------------------------------------- validation and sidecar


def test_the_real_capture_validates_and_report_analyzes_it():
    info = describe(open_trace(CAPTURE))
    v = run.validate(info, C.Range("cuda-profiler"))
    assert v.ok and v.problems == []
    assert {
        k: v.facts[k] for k in ("kernels", "cuda_graph_trace", "range", "range_hit", "profiler_start_in_trace")
    } == {
        "kernels": 17774,
        "cuda_graph_trace": "node",
        "range": "cuda-profiler",
        "range_hit": True,
        "profiler_start_in_trace": True,
    }
    assert v.facts["dropped"] == [
        "Not all NVTX events might have been collected.",
        "Not all CUDA events might have been collected.",
    ]
    assert info.capture["command"] == (
        "python3 .nsys-kit/workload.py --impl mini --warmup 1 --iters 1 --nvtx --prompt-len 1 --output-len 128 "
        "--cuda-profiler-capture"
    )
    from nsys_doctor.cli.report import diagnose_trace, project_rules

    d = diagnose_trace(open_trace(CAPTURE), project_rules(None))
    assert d.window.reason.startswith("inside the cudaProfilerApi capture range, 1 measured request")
    # GEMV is 47.7% of kernel time; the few small copies of the window count in the GPU time too
    fam = d.families
    assert fam["family"][0] == "gemv" and 0.470 < fam["share"][0] < 0.477
    assert d.step_summary["decode"]["count"] == 24


def test_the_real_sidecar_schema():
    data = sidecar.read_sidecar(CAPTURE)
    assert data is not None and data["schema"] == "nsys-doctor-capture/1"
    assert data["baseline"] == {
        "metric": "per_token_ms",
        "exit_code": 0,
        "wall_s": 10.447,
        "value": 2.538,
        "unit": "ms",
        "source": "regex per_token=([0-9.]+)ms on the unprofiled output",
    }
    assert data["traced"]["value"] == 74.264 and data["inflation"] == 29.2608
    assert data["trace_timing"]["metric"] == "decode_step_p50_ms" and data["trace_timing"]["value"] == 2.4948
    assert data["trace_inflation"] == 0.983
    assert data["versions"]["nsys"] == "2025.3.1.0" and data["versions"]["driver"] == "580.159.04"
    assert (data["preset"], data["range"], data["validation"]["kernels"]) == ("decode", "cuda-profiler", 91007)


@needs_shared
def test_graph_level_capture_is_unusable_unless_asked():
    info = describe(open_trace(TRACES / "decode_graph_graph.sqlite"))
    v = run.validate(info, C.Range("cuda-profiler"))
    assert v.problems == ["graph-level CUDA graph tracing: kernels inside graphs are missing"]
    v = run.validate(info, C.Range("cuda-profiler"), graph_asked=True)
    assert v.ok and v.warnings[0] == "graph-level CUDA graph tracing: kernels inside graphs are missing"


def test_empty_capture_is_a_problem():
    info = describe(open_trace(CAPTURE))
    info.counts = {**info.counts, "CUPTI_ACTIVITY_KIND_KERNEL": 0}
    v = run.validate(info, C.Range("cuda-profiler"))
    assert not v.ok and v.facts["range_hit"] is False
    assert v.problems[0].startswith("no CUDA kernels between cudaProfilerStart and cudaProfilerStop")
    assert run.validate(info, C.Range("nvtx", nvtx="iter")).problems == [
        "no CUDA kernels in the trace (was the capture range ever entered?)"
    ]


def test_sidecar_paths_and_repeat_files(tmp_path: Path):
    assert sidecar.sidecar_path("t/decode.sqlite") == Path("t/decode.nsys-doctor.json")
    assert sidecar.sidecar_path("t/rep.2.nsys-rep") == Path("t/rep.2.nsys-doctor.json")
    for n in ("r.1.sqlite", "r.2.sqlite", "r.10.sqlite", "r.1.nsys-rep", "r.2.nsys-rep", "rx.sqlite", "r.a.sqlite"):
        (tmp_path / n).write_text("x")
    found = run.find_traces(str(tmp_path / "r"), since=0)
    assert [p.name for p in found] == ["r.1.sqlite", "r.2.sqlite", "r.10.sqlite"]


def test_timing_and_inflation():
    r = run.RunResult(0, "per_token=2.5ms\n", 12.25)
    b = run.timing(r, "per_token=([0-9.]+)ms", "per_token_ms", "unprofiled")
    t = run.timing(run.RunResult(0, "per_token=3.0ms", 20.0), "per_token=([0-9.]+)ms", "per_token_ms", "profiled")
    assert b["value"] == 2.5 and b["unit"] == "ms" and run.inflation(b, t) == 1.2
    w = run.timing(r, None, "wall_s", "unprofiled")
    assert (w["value"], w["unit"], w["source"]) == (12.25, "s", "wall time of the unprofiled command")
    assert run.inflation(b, {"value": None}) is None


def test_git_revision_with_a_fake_git():
    rev = "0123456789abcdef0123456789abcdef01234567"
    runner = fake_runner({"git -C /p rev-parse HEAD": (0, rev + "\n"), "git -C /p status": (0, " M src/x.py\n")})
    assert run.git_revision("/p", runner) == {"revision": rev, "dirty": True}
    assert run.git_revision("/p", fake_runner({})) is None


# ------------------------------------------------------------------------------------- the CLI end to end

FAKE_NSYS = """#!{python}
import os, shutil, subprocess, sys
a = sys.argv[1:]
if a[:1] == ["--version"]:
    print("NVIDIA Nsight Systems version 2025.3.1.0"); sys.exit(0)
i, out = 1, None
while i < len(a) and a[i].startswith("-"):
    if a[i] == "-o":
        out = a[i + 1]; i += 1
    i += 1
rc = subprocess.call(a[i:])
if os.environ.get("FAKE_TRACE"):
    shutil.copyfile(os.environ["FAKE_TRACE"], out + ".sqlite")
    open(out + ".nsys-rep", "w").close()
else:
    print("Generated:\\n    No reports were generated")
sys.exit(rc)
"""


@pytest.fixture
def project(tmp_path: Path, monkeypatch):
    """A project with a workload template and a stand-in nsys that copies the real capture to its -o path."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    nsys = bin_dir / "nsys"
    nsys.write_text(FAKE_NSYS.format(python=sys.executable))
    nsys.chmod(nsys.stat().st_mode | stat.S_IEXEC)
    (tmp_path / "nsys-doctor.toml").write_text(
        "[workload]\n"
        f'command = "{sys.executable} -c \'print(\\"per_token={{prompt_len}}.5ms\\")\'"\n'
        'profiler_capture_flag = "--cuda-profiler-capture"\n'
        'timing_regex = "per_token=([0-9.]+)ms"\n'
    )
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("PATH", f"{bin_dir}{os.pathsep}{os.environ['PATH']}")
    monkeypatch.delenv("NSYS", raising=False)
    monkeypatch.setenv("FAKE_TRACE", str(CAPTURE))
    monkeypatch.setattr(preflight, "run_tool", fake_runner({"nsys --version": (0, NSYS_VERSION)}))
    return tmp_path


def test_capture_dry_run_prints_the_exact_commands(project: Path, capsys):
    assert main(["capture", "--preset", "decode", "--baseline-run", "--name", "e2e", "--dry-run"]) == 0
    out = capsys.readouterr().out.splitlines()
    app = f"{sys.executable} -c 'print(\"per_token=1.5ms\")' --cuda-profiler-capture"
    assert out == [
        "# baseline (no nsys)",
        app,
        "# capture",
        f"{project}/bin/nsys profile --force-overwrite=true --cuda-graph-trace=node --export=sqlite "
        f"-o target/profiling/e2e --trace=cuda,nvtx --capture-range=cudaProfilerApi --capture-range-end=stop {app}",
    ]
    assert not (project / "target/profiling").exists()


def test_capture_runs_validates_writes_the_sidecar_and_summarizes(project: Path, capsys):
    assert main(["capture", "--preset", "decode", "--baseline-run", "--name", "e2e"]) == 0
    out, err = capsys.readouterr()
    assert "trace: target/profiling/e2e.sqlite (17,774 kernels, graph trace node, range cuda-profiler hit)" in out
    assert "timing: per_token_ms: unprofiled 1.5ms; under nsys 1.5ms (x1.00); in the trace decode_step_p50_ms" in out
    assert "nsys-doctor report  target/profiling/e2e.sqlite" in out and "Diagnosis" in out
    assert "Families" not in out  # only the top of the report
    assert out.rstrip().endswith("full report: nsys-doctor report target/profiling/e2e.sqlite")
    assert "nsys-doctor: baseline run without nsys" in err
    data = json.loads((project / "target/profiling/e2e.nsys-doctor.json").read_text())
    assert data["schema"] == "nsys-doctor-capture/1"
    assert data["baseline"]["value"] == 1.5 and data["traced"]["value"] == 1.5 and data["inflation"] == 1.0
    assert data["trace_timing"]["metric"] == "decode_step_p50_ms" and data["trace_timing"]["steps"] == 24
    assert data["nsys_command"][:2] == [str(project / "bin/nsys"), "profile"]
    assert data["versions"]["nsys"] == "2025.3.1.0"
    assert data["validation"]["ok"] is True and data["range"] == "cuda-profiler"
    assert (project / "target/profiling/e2e.capture.log").read_text().startswith("per_token=1.5ms")
    # the guard: no second capture over it
    assert main(["capture", "--preset", "decode", "--name", "e2e"]) == 2
    assert "target/profiling/e2e.nsys-rep exists: pass --overwrite" in capsys.readouterr().err


def test_empty_capture_fails_loudly(project: Path, monkeypatch, capsys):
    monkeypatch.delenv("FAKE_TRACE")
    assert main(["capture", "--name", "empty", "--range", "cuda-profiler", "--", sys.executable, "-c", "pass"]) == 2
    err = capsys.readouterr().err.strip().splitlines()[-1]
    assert err == (
        "nsys-doctor: error: nsys exited with 0 and wrote no trace at target/profiling/empty.sqlite (Generated: | "
        "No reports were generated): pass the workload's profiler-capture flag (profiler_capture_flag in the "
        "workload template) or use --range full"
    )


def test_capture_without_nsys_is_one_line_exit_2(tmp_path: Path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    import nsys_doctor.cli.capture as cli_capture

    monkeypatch.setattr(cli_capture, "find_nsys", lambda env=None: None)
    assert main(["capture", "--", "python3", "bench.py"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("nsys-doctor: error: nsys not found (looked in PATH, $NSYS")
    assert main(["capture", "--dry-run", "--", "python3", "bench.py"]) == 0
    assert capsys.readouterr().out.startswith("nsys profile --force-overwrite=true")


# ------------------------------------------------------------------------------------- sessions


def test_session_commands():
    assert session.launch_argv("nsys", "srv", ["cargo", "run", "-r"], memory_usage=True) == [
        "nsys", "launch", "--session-new=srv", "--trace=cuda,nvtx", "--cuda-graph-trace=node",
        "--cuda-memory-usage=true", "cargo", "run", "-r",
    ]  # fmt: skip
    assert session.start_argv("nsys", "srv", "target/profiling/srv_1", lighter=True) == [
        "nsys", "start", "--session=srv", "--force-overwrite=true", "--export=sqlite", "-o", "target/profiling/srv_1",
        "--sample=none", "--cpuctxsw=none",
    ]  # fmt: skip
    assert session.stop_argv("nsys", "srv") == ["nsys", "stop", "--session=srv"]
    assert session.shutdown_argv("nsys", "srv") == ["nsys", "shutdown", "--session=srv"]
    assert session.list_argv("nsys") == ["nsys", "sessions", "list"]
    with pytest.raises(UsageError, match="bad session name '1srv'") as e:
        session.check_name("1srv")
    assert e.value.hint.startswith("start with a letter")
    with pytest.raises(UsageError, match="no command to launch"):
        session.launch_argv("nsys", "srv", [])


def test_parse_real_sessions_list():
    assert session.parse_sessions_list(SESSIONS) == ["s2"]
    assert session.parse_sessions_list(SESSIONS.splitlines()[0] + "\n") == []
    assert session.parse_sessions_list("") == []


def test_session_state_roundtrip(tmp_path: Path):
    s = session.SessionState("srv", 4242, ["app"], ["nsys", "launch", "app"], "log", "2025-01-01T00:00:00Z", "/p")
    p = session.save_state(tmp_path, s)
    assert p == tmp_path / ".sessions" / "srv.json"
    assert session.load_state(tmp_path, "srv") == s
    assert session.all_states(tmp_path) == [s]
    session.remove_state(tmp_path, "srv")
    assert session.load_state(tmp_path, "srv") is None


def test_session_capture_of_an_unknown_session(tmp_path: Path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    assert main(["session", "capture", "nope", "--seconds", "1"]) == 2
    assert capsys.readouterr().err == (
        "nsys-doctor: error: no session nope: start one: nsys-doctor session start NAME -- COMMAND\n"
    )


@pytest.mark.parametrize(
    ("patch", "named"),
    [
        ({"warmup": True}, "workload.warmup"),
        ({"iters": 0}, "workload.iters"),
        ({"prompt_len": -5}, "workload.prompt_len"),
        ({"output_len": "128"}, "workload.output_len"),
        ({"presets": {"long": {"prompt_len": -1}}}, "workload.presets.long.prompt_len"),
        ({"presets": {"long": {"batch": [1, 2]}}}, "workload.presets.long.batch"),
    ],
)
def test_workload_counts_are_checked(patch, named):
    from nsys_doctor.errors import UsageError

    data = {"workload": {**TEMPLATE["workload"], **patch}}  # type: ignore[dict-item]
    with pytest.raises(UsageError, match=named.replace(".", r"\.")):
        template(data)


@needs_shared
def test_the_counts_are_counted_only_when_asked_for():
    # a report describes the trace without counting its tables (a count reads every page of a table); what the
    # trace lacks is the same as from the counts, and the counts are the same when asked for
    for path in (CAPTURE, TRACES / "decode_graph_graph.sqlite", TRACES / "public" / "weatherbench2_report1.sqlite"):
        with Trace.open(path) as trace:
            counted = describe(trace)
            statements: list[str] = []
            trace.con.set_trace_callback(statements.append)
            lazy = describe(trace, counted=False)
            assert lazy.missing == counted.missing and lazy.gpus == counted.gpus
            assert not [s for s in statements if "count(" in s.lower()]
            assert lazy.counts == counted.counts and any("count(" in s.lower() for s in statements)
            trace.con.set_trace_callback(None)
    with Trace.open(CAPTURE) as trace:
        kernels = trace.rows("SELECT count(*) FROM CUPTI_ACTIVITY_KIND_KERNEL")[0][0]
        assert kernels > 0 and describe(trace, counted=False).counts["CUPTI_ACTIVITY_KIND_KERNEL"] == kernels
