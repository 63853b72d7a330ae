"""The result cache (cli/result_cache.py): a second identical ``report`` prints the stored output without reading
the trace; any change to the trace, an option, a file the report reads or the rendering is a miss; damaged-row
warnings are never lost; the cache can be turned off; entries of older trace states are dropped."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from nsys_doctor import session
from nsys_doctor.cli import result_cache
from nsys_doctor.trace import cache

from .conftest import SAMPLE
from .test_fuzz import K, mutated_copy, run_cli, set_values


def results(root: Path) -> list[Path]:
    return sorted(p for p in root.iterdir() if p.name.startswith(result_cache.PREFIX)) if root.is_dir() else []


class Analyzed:
    """Counts the traces the report really opens (a hit opens none)."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.count = 0
        real = session.TraceSession.open.__func__  # type: ignore[attr-defined]

        def counting(cls: type[session.TraceSession], *args: object, **kwargs: object) -> object:
            self.count += 1
            return real(cls, *args, **kwargs)

        monkeypatch.setattr(session.TraceSession, "open", classmethod(counting))


def report(*argv: str) -> str:
    code, out, err = run_cli(["report", *argv])
    assert code == 0, err
    return out


def test_second_run_is_the_stored_output(cache_root: Path, trace_copy: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    opened = Analyzed(monkeypatch)
    first = report(str(trace_copy), "--format", "json")
    assert opened.count == 1 and len(results(cache_root)) == 1
    second = report(str(trace_copy), "--format", "json")
    assert opened.count == 1  # not analyzed again
    assert second == first and json.loads(second)["kernels"]
    # the stored output is what the command prints: a marked entry comes back as it is
    (entry,) = results(cache_root)
    marked = first.replace('"kernels"', '"KERNELS"')
    (entry / result_cache.OUTPUT).write_text(marked, encoding="utf-8")
    assert report(str(trace_copy), "--format", "json") == marked
    # and it equals the output with the cache off
    monkeypatch.setenv(cache.ENV_OFF, "1")
    assert report(str(trace_copy), "--format", "json") == first
    assert opened.count == 2


def test_options_and_formats_are_part_of_the_key(
    cache_root: Path, trace_copy: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    opened = Analyzed(monkeypatch)
    base = report(str(trace_copy), "--format", "json")
    top3 = report(str(trace_copy), "--format", "json", "--top", "3")
    md = report(str(trace_copy), "--format", "markdown")
    whole = report(str(trace_copy), "--format", "json", "--whole-trace")
    assert opened.count == 4 and len(results(cache_root)) == 4
    assert len(json.loads(top3)["kernels"]) == 3 < len(json.loads(base)["kernels"])
    assert md.startswith("#") and json.loads(whole)["window"] != json.loads(base)["window"]
    # the options that do not change the output share the entry
    out = cache_root.parent / "out.json"
    code, _, err = run_cli(["report", str(trace_copy), "--format", "json", "-q", "--jobs", "2", "-o", str(out)])
    assert code == 0 and f"wrote {out}" in err
    assert out.read_text(encoding="utf-8") == base and opened.count == 4


def test_files_the_report_reads_are_part_of_the_key(
    cache_root: Path, trace_copy: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    opened = Analyzed(monkeypatch)
    ops = tmp_path / "ops.toml"
    rule = '[[rule]]\npattern = ".*"\nfamily = "{}"\ncategory = "GEMV"\nop = "gemv"\n'
    ops.write_text(rule.format("gemv"), encoding="utf-8")
    report(str(trace_copy), "--ops", str(ops), "--format", "json")
    report(str(trace_copy), "--ops", str(ops), "--format", "json")
    assert opened.count == 1
    ops.write_text(rule.format("mine"), encoding="utf-8")
    changed = report(str(trace_copy), "--ops", str(ops), "--format", "json")
    assert opened.count == 2
    assert "mine" in {f["family"] for f in json.loads(changed)["families"]}
    # a capture record appearing beside the trace
    record = trace_copy.with_name("sample.nsys-doctor.json")
    record.write_text('{"schema": "x"}\n', encoding="utf-8")
    report(str(trace_copy), "--ops", str(ops), "--format", "json")
    assert opened.count == 3


def test_a_changed_trace_is_a_miss_and_old_entries_go(
    cache_root: Path, trace_copy: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    opened = Analyzed(monkeypatch)
    first = report(str(trace_copy), "--format", "json")
    (old,) = results(cache_root)
    st = trace_copy.stat()
    mutated_copy(SAMPLE, trace_copy, lambda con: con.execute(f"DELETE FROM {K} WHERE rowid % 2 = 0"))
    os.utime(trace_copy, ns=(st.st_atime_ns, st.st_mtime_ns))  # the old mtime back: ctime and size still differ
    second = report(str(trace_copy), "--format", "json")
    assert opened.count == 2 and second != first
    (new,) = results(cache_root)
    assert new != old
    monkeypatch.setenv(cache.ENV_OFF, "1")
    assert report(str(trace_copy), "--format", "json") == second


def test_damaged_rows_warning_is_never_lost(cache_root: Path, tmp_path: Path) -> None:
    damaged = mutated_copy(SAMPLE, tmp_path / "damaged.sqlite", set_values(K, "start", "NULL", 50, 3))
    runs = [run_cli(["report", str(damaged), "--format", "json"]) for _ in range(2)]
    assert runs[0] == runs[1]
    assert "nsys-doctor: warning: left out" in runs[1][2]
    assert results(cache_root) == []


@pytest.mark.parametrize("how", ["--no-cache", "env", "result-env", "small", "directory"])
def test_not_stored(cache_root: Path, trace_copy: Path, monkeypatch: pytest.MonkeyPatch, how: str) -> None:
    opened = Analyzed(monkeypatch)
    argv = [str(trace_copy), "--format", "json"]
    if how == "--no-cache":
        argv.append("--no-cache")
    elif how == "env":
        monkeypatch.setenv(cache.ENV_OFF, "1")
    elif how == "result-env":
        monkeypatch.setenv(result_cache.ENV_OFF, "1")
    elif how == "small":
        monkeypatch.setenv(cache.ENV_MIN_TRACE_BYTES, str(trace_copy.stat().st_size + 1))
    else:
        argv[0] = str(trace_copy.parent)
    report(*argv)
    report(*argv)
    assert results(cache_root) == [] and opened.count == 2


@pytest.mark.parametrize("damage", ["key", "truncated", "missing", "not json"])
def test_a_damaged_entry_is_a_miss(
    cache_root: Path, trace_copy: Path, monkeypatch: pytest.MonkeyPatch, damage: str
) -> None:
    opened = Analyzed(monkeypatch)
    first = report(str(trace_copy), "--format", "json")
    (entry,) = results(cache_root)
    meta = entry / cache.META
    if damage == "key":
        data = json.loads(meta.read_text(encoding="utf-8"))
        meta.write_text(json.dumps({**data, "key": data["key"] + " "}), encoding="utf-8")
    elif damage == "truncated":
        out = entry / result_cache.OUTPUT
        out.write_bytes(out.read_bytes()[:100])
    elif damage == "missing":
        (entry / result_cache.OUTPUT).unlink()
    else:
        meta.write_text("{", encoding="utf-8")
    assert report(str(trace_copy), "--format", "json") == first
    assert opened.count == 2


def test_the_code_is_part_of_the_key(cache_root: Path, trace_copy: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    opened = Analyzed(monkeypatch)
    report(str(trace_copy), "--format", "json")
    real = result_cache.code_fingerprint
    monkeypatch.setattr(result_cache, "code_fingerprint", lambda: [*real(), "another build"])
    report(str(trace_copy), "--format", "json")
    assert opened.count == 2
    fp = real()
    assert any(f[0] == "analysis/diagnosis.py" for f in fp[1])  # type: ignore[index, union-attr]
    assert [d[0] for d in fp[2]] == list(result_cache.DEPENDENCIES)  # type: ignore[index, union-attr]
