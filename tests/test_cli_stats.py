"""The stats command: formats, output files and the sample trace."""

from __future__ import annotations

import csv
import io
import json

import pytest

from nsys_doctor.cli.main import main

from .conftest import SAMPLE


def test_sample_kernel_summary_csv(capsys):
    assert main(["stats", str(SAMPLE), "-r", "cuda_gpu_kern_sum:base", "--format", "csv"]) == 0
    rows = list(csv.reader(io.StringIO(capsys.readouterr().out)))
    assert rows[0][:3] == ["Time (%)", "Total Time (ns)", "Instances"]
    top = rows[1]
    assert top[-1] == "elementwise_kernel"
    assert int(top[2]) == 4352
    total = sum(int(r[1]) for r in rows[1:])
    assert abs(float(top[0]) - round(int(top[1]) * 100 / total, 1)) < 1e-9


def test_output_file_naming(tmp_path, capsys):
    base = tmp_path / "out"
    assert (
        main(
            [
                "stats",
                str(SAMPLE),
                "-r",
                "cuda_api_sum",
                "-r",
                "cuda_gpu_kern_sum:base",
                "--format",
                "csv",
                "-o",
                str(base),
            ]
        )
        == 0
    )
    assert (tmp_path / "out_cuda_api_sum.csv").read_text().startswith("Time (%)")
    assert (tmp_path / "out_cuda_gpu_kern_sum_base.csv").exists()
    single = tmp_path / "k.json"
    assert main(["stats", str(SAMPLE), "-r", "cuda_gpu_kern_sum", "--format", "json", "-o", str(single)]) == 0
    assert json.loads(single.read_text())[0]["Name"] == "nvjet_sm90_tst_128x8_64x12_2x1_v_bz_TNT"
    capsys.readouterr()


def test_one_format_per_report(capsys):
    assert (
        main(
            [
                "stats",
                str(SAMPLE),
                "-r",
                "cuda_api_sum",
                "-r",
                "cuda_gpu_kern_sum",
                "--format",
                "csv,json",
                "--timeunit",
                "ms",
            ]
        )
        == 0
    )
    out = capsys.readouterr().out
    assert out.startswith("Time (%),Total Time (ms)")
    assert '"Total Time (ms)":' in out


def test_help_reports_lists_everything(capsys):
    code = main(["stats", "--help-reports"])
    out = capsys.readouterr().out
    assert code == 0
    for name in ("cuda_gpu_kern_sum", "cuda_kern_exec_sum", "nvtx_gpu_proj_sum", "gpu_gaps", "osrt_sum"):
        assert name in out


def test_filter_nvtx_restricts_to_one_step(capsys):
    assert main(["stats", str(SAMPLE), "-r", "cuda_api_sum", "--filter-nvtx", "decode_step/2", "--format", "csv"]) == 0
    rows = list(csv.reader(io.StringIO(capsys.readouterr().out)))
    names = {r[-1]: int(r[2]) for r in rows[1:]}
    assert names["cudaGraphLaunch_v10000"] == 1


def test_report_list_with_commas_as_in_nsys(capsys):
    assert main(["stats", str(SAMPLE), "-r", "cuda_gpu_kern_sum:base,cuda_api_sum", "--format", "csv"]) == 0
    out = capsys.readouterr().out
    assert out.count("Time (%),Total Time (ns)") == 2


@pytest.mark.parametrize(
    ("arg", "words"),
    [
        ("gpu_gaps:rows=99999999999999999999999", ("rows=99999999999999999999999 is out of range", "-1 for no limit")),
        ("gpu_gaps:rows=" + "9" * 5000, ("is out of range", "rows takes an integer")),
        ("gpu_gaps:rows=-5", ("rows=-5 is out of range", "-1 for no limit, else 0..1000000000")),
        ("gpu_gaps:rows=abc", ("bad value 'abc' for rows=", "rows takes an integer")),
        ("gpu_gaps:rows=1.5", ("bad value '1.5' for rows=",)),
        ("gpu_gaps:rows=\u0663", ("for rows=",)),  # an Arabic-Indic digit: not an ASCII integer
        ("gpu_gaps:gap=-1", ("gap=-1 is out of range", "milliseconds, 0..1000000000")),
        ("gpu_gaps:gap=99999999999999999999", ("gap=99999999999999999999 is out of range",)),
        ("gpu_gaps:start=-1", ("start=-1 is out of range", "a time in ns")),
        ("gpu_gaps:end=9223372036854775808", ("end=9223372036854775808 is out of range",)),
        ("gpu_time_util:threshold=101", ("threshold=101 is out of range", "0..100")),
        ("gpu_time_util:chunks=1001", ("chunks=1001 is out of range", "0..1000")),
        ("cuda_api_sync:process=16777216", ("process=16777216 is out of range", "0..16777215")),
        ("cuda_api_sync:thread=-2", ("thread=-2 is out of range",)),
    ],
)
def test_rule_arguments_out_of_range(capsys, arg, words):
    assert main(["stats", str(SAMPLE), "-r", arg]) == 2
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("nsys-doctor: error: "), lines
    for w in words:
        assert w in lines[0]
    assert len(lines[0]) < 400


def test_rule_arguments_at_their_limits(capsys):
    for arg in ("gpu_gaps:rows=-1", "gpu_gaps:rows=1000000000:gap=0", "gpu_time_util:threshold=100:chunks=0"):
        assert main(["stats", str(SAMPLE), "-r", arg]) == 0, arg
    assert main(["stats", str(SAMPLE), "-r", "gpu_gaps:start=0:end=9223372036854775807"]) == 0
    capsys.readouterr()
