"""The stats command: formats, output files and the sample trace."""

from __future__ import annotations

import csv
import io
import json

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
