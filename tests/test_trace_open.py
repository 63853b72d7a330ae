"""Every shared trace opens; schema detection; metadata; filters."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from nsys_doctor.cli.main import main
from nsys_doctor.trace.meta import describe
from nsys_doctor.trace.window import MAX_TS, parse_filter_nvtx, parse_filter_time

from .conftest import SAMPLE, TRACES, needs_shared, open_trace

ALL_TRACES = (
    sorted(TRACES.glob("*.sqlite"))
    + sorted(TRACES.glob("multigpu/*.sqlite"))
    + sorted(TRACES.glob("external/*/*.sqlite"))
)


@needs_shared
@pytest.mark.parametrize("path", ALL_TRACES, ids=[p.name for p in ALL_TRACES])
def test_every_shared_trace_opens_and_is_described(path: Path):
    info = describe(open_trace(path))
    assert info.gpus, "GPU table read"
    assert info.counts.get("CUPTI_ACTIVITY_KIND_KERNEL", 0) > 0
    if "external" in path.parts:
        assert info.era == "legacy"
        assert any("old export schema" in m for m in info.missing)
    else:
        assert info.schema_version == "3.20.3"
        assert info.product_version == "2025.3.2.0"


@needs_shared
def test_graph_level_capture_is_reported_missing():
    info = describe(open_trace(TRACES / "decode_graph_graph.sqlite"))
    assert info.capture["cuda_graph_trace"] == "graph"
    assert any("--cuda-graph-trace=node" in m for m in info.missing)
    node = describe(open_trace(TRACES / "decode_graph_node.sqlite"))
    assert node.capture["cuda_graph_trace"] == "node"
    assert node.capture["capture_range"] == "cudaProfilerApi"
    assert node.capture["command"].startswith("python3 /app/workload.py --impl mini")
    assert not any("graph" in m for m in node.missing)


@needs_shared
def test_whole_run_capture_and_gpu_peak():
    info = describe(open_trace(TRACES / "decode_pathologies.sqlite"))
    assert info.capture["capture_range"] == "none (whole run)"
    assert info.gpus[0]["memoryBandwidth"] == 3_352_320_000_000
    assert info.gpus[0]["smCount"] == 132


def test_sample_info_json(capsys):
    assert main(["info", str(SAMPLE), "--format", "json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["schema"] == "nsys-doctor/2"
    assert data["info"]["gpus"][0]["name"] == "NVIDIA H100 80GB HBM3"
    assert data["info"]["counts"]["CUPTI_ACTIVITY_KIND_KERNEL"] == 12086


def test_filter_parsing():
    f = parse_filter_time("10s/20s")
    assert (f.start, f.end) == (10_000_000_000, 20_000_000_000)
    f = parse_filter_time("1s2ms/")
    assert (f.start, f.end) == (1_002_000_000, MAX_TS)
    assert parse_filter_time("/5ms").start == 0
    assert parse_filter_nvtx("decode_step") == ("decode_step", None, 0)
    assert parse_filter_nvtx("decode_step@engine/3") == ("decode_step", "engine", 3)
    assert parse_filter_nvtx(r"a\@b/x") == ("a@b/x", None, 0)


def test_nsys_rep_is_exported_once_with_nsys(tmp_path, monkeypatch):
    """A .nsys-rep is converted with `nsys export --type=sqlite` (a stand-in nsys here), then the fresh .sqlite
    beside it is reused."""
    calls = tmp_path / "calls.txt"
    fake = tmp_path / "nsys"
    fake.write_text(
        "#!/bin/sh\n"
        f'echo "$@" >> "{calls}"\n'
        'for a in "$@"; do case "$a" in --output=*) out="${a#--output=}";; esac; done\n'
        f'cp "{SAMPLE}" "$out"\n'
    )
    fake.chmod(0o755)
    monkeypatch.setenv("NSYS", str(fake))
    rep = tmp_path / "run.nsys-rep"
    rep.write_bytes(b"not really a report")
    from nsys_doctor.trace import Trace

    with Trace.open(rep) as t:
        assert t.path == tmp_path / "run.sqlite"
        assert t.count("CUPTI_ACTIVITY_KIND_KERNEL") == 12086
    first = calls.read_text().split()
    assert first[:2] == ["export", "--type=sqlite"] and first[-1] == str(rep)
    with Trace.open(rep):
        pass
    assert len(calls.read_text().splitlines()) == 1  # up to date: not exported again
