"""The frame cache: a hit gives the frames, reports and damaged-row counts of a miss; it is keyed by the trace's
state, bounded, can be turned off, survives damaged entries, and never writes beside the trace."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import click
import polars as pl
import pytest
from click.testing import CliRunner

from nsys_doctor.cli.common import cache_option
from nsys_doctor.trace import Trace, cache
from nsys_doctor.trace.tables import FRAME_NAMES, FRAME_TABLES, TraceFrames

from .conftest import SAMPLE
from .test_fuzz import K, md5, mutated_copy, run_cli, set_values


def entries(root: Path) -> list[Path]:
    """The frame entries (not the temporary folders, nor the result cache's entries: tests/test_result_cache.py)."""
    return sorted(p for p in root.iterdir() if not p.name.startswith((".", "r-"))) if root.is_dir() else []


def read_frames(path: Path) -> tuple[dict[str, pl.DataFrame], dict[str, object]]:
    with Trace.open(path) as trace:
        f = TraceFrames(trace)
        return {n: getattr(f, n) for n in FRAME_NAMES}, f.damaged.to_dict()


def assert_same_frames(a: dict[str, pl.DataFrame], b: dict[str, pl.DataFrame]) -> None:
    assert list(a) == list(b)
    for name in a:
        assert a[name].schema == b[name].schema, name
        assert a[name].equals(b[name]), name


def test_hit_gives_the_frames_of_a_miss(cache_root: Path, trace_copy: Path) -> None:
    missed, _ = read_frames(trace_copy)
    assert len(entries(cache_root)) == 1
    files = sorted(p.name for p in entries(cache_root)[0].iterdir())
    assert files == sorted([*(f"{n}.parquet" for n in FRAME_NAMES), "meta.json"])
    hit, _ = read_frames(trace_copy)
    assert_same_frames(missed, hit)
    assert missed["kernels"].height > 1000 and missed["api"].height > 1000
    # and the cached frames are those of the cache being off
    os.environ[cache.ENV_OFF] = "1"
    bare, _ = read_frames(trace_copy)
    assert_same_frames(bare, hit)


def test_an_entry_stores_texts_once_and_gives_them_back_in_one_chunk(
    cache_root: Path, trace_copy: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # row groups of 1000 rows: read back, a column comes in many chunks unless they are joined
    write = pl.DataFrame.write_parquet
    monkeypatch.setattr(pl.DataFrame, "write_parquet", lambda df, f, **kw: write(df, f, row_group_size=1000, **kw))
    missed, _ = read_frames(trace_copy)
    folder = entries(cache_root)[0]
    stored = pl.read_parquet(folder / "kernels.parquet")
    assert stored["start"].n_chunks() > 1
    # the texts as a dictionary of the distinct ones (as a categorical), not once per row
    assert stored.schema["name"] == pl.Categorical and stored.schema["short"] == pl.Categorical
    assert stored["name"].n_unique() < stored.height / 10
    hit, _ = read_frames(trace_copy)
    assert_same_frames(missed, hit)
    for name, df in hit.items():
        assert df.schema == missed[name].schema  # texts are texts again
        assert all(df[c].n_chunks() == 1 for c in df.columns), name


def test_hit_is_used_and_not_the_trace(cache_root: Path, trace_copy: Path) -> None:
    """A second read comes from the entry: a marked entry (its kernel frame cut to 5 rows, the meta made to match)
    is what the frames hold."""
    read_frames(trace_copy)
    (entry,) = entries(cache_root)
    kernels = pl.read_parquet(entry / "kernels.parquet").head(5)
    kernels.write_parquet(entry / "kernels.parquet", compression="uncompressed", statistics=False)
    meta = json.loads((entry / "meta.json").read_text())
    meta["frames"]["kernels"].update(height=5, bytes=(entry / "kernels.parquet").stat().st_size)
    (entry / "meta.json").write_text(json.dumps(meta))
    frames, _ = read_frames(trace_copy)
    assert frames["kernels"].height == 5


def test_report_output_is_the_same_on_a_hit(cache_root: Path, trace_copy: Path) -> None:
    outs = []
    for fmt in ("json", "terminal", "json", "terminal"):
        code, out, err = run_cli(["report", str(trace_copy), "--format", fmt])
        assert code == 0, err
        outs.append(out)
    assert len(entries(cache_root)) == 1
    assert outs[0] == outs[2] and outs[1] == outs[3]
    assert json.loads(outs[0])["kernels"]


def test_damaged_rows_come_back_on_a_hit(cache_root: Path, tmp_path: Path) -> None:
    folder = tmp_path / "traces"
    folder.mkdir()
    damaged = mutated_copy(SAMPLE, folder / "damaged.sqlite", set_values(K, "start", "NULL", 50, 3))
    missed, miss_damage = read_frames(damaged)
    hit, hit_damage = read_frames(damaged)
    assert miss_damage["damaged"] > 0
    assert hit_damage == miss_damage
    assert_same_frames(missed, hit)
    runs = [run_cli(["report", str(damaged), "--format", "json"]) for _ in range(2)]
    assert runs[0] == runs[1]
    assert "nsys-doctor: warning: left out" in runs[1][2]


def test_changed_trace_invalidates(cache_root: Path, trace_copy: Path) -> None:
    read_frames(trace_copy)
    (first,) = entries(cache_root)
    st = trace_copy.stat()
    os.utime(trace_copy, ns=(st.st_atime_ns, st.st_mtime_ns + 1_000_000_000))  # touch
    read_frames(trace_copy)
    (second,) = entries(cache_root)  # a new entry; the old one of the same path is gone
    assert second != first
    # rewritten with other content (fewer kernels), same mtime as before the rewrite
    mutated_copy(SAMPLE, trace_copy, lambda con: con.execute(f"DELETE FROM {K} WHERE rowid % 2 = 0"))
    os.utime(trace_copy, ns=(st.st_atime_ns, st.st_mtime_ns + 1_000_000_000))
    frames, _ = read_frames(trace_copy)
    os.environ[cache.ENV_OFF] = "1"
    bare, _ = read_frames(trace_copy)
    assert_same_frames(frames, bare)
    assert len(entries(cache_root)) == 1


def test_env_turns_it_off(cache_root: Path, trace_copy: Path) -> None:
    os.environ[cache.ENV_OFF] = "1"
    read_frames(trace_copy)
    code, _, err = run_cli(["report", str(trace_copy), "--format", "json"])
    assert code == 0, err
    assert not cache_root.exists()


def test_no_cache_option(cache_root: Path, trace_copy: Path) -> None:
    @click.command()
    @click.argument("trace")
    @cache_option
    def cmd(trace: str) -> None:
        read_frames(Path(trace))

    assert CliRunner().invoke(cmd, [str(trace_copy), "--no-cache"]).exit_code == 0
    assert not cache_root.exists()
    assert not cache.enabled()
    os.environ[cache.ENV_OFF] = ""
    assert CliRunner().invoke(cmd, [str(trace_copy)]).exit_code == 0
    assert len(entries(cache_root)) == 1


def test_small_traces_are_not_cached(cache_root: Path, trace_copy: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(cache.ENV_MIN_TRACE_BYTES, str(trace_copy.stat().st_size + 1))
    read_frames(trace_copy)
    assert not cache_root.exists()


def test_bound_evicts_least_recently_used(cache_root: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    folder = tmp_path / "traces"
    folder.mkdir()
    paths = []
    for i in range(3):
        paths.append(folder / f"t{i}.sqlite")
        shutil.copyfile(SAMPLE, paths[-1])
    read_frames(paths[0])
    (one,) = entries(cache_root)
    size = sum(f.stat().st_size for f in one.iterdir())
    monkeypatch.setenv(cache.ENV_MAX_BYTES, str(2 * size + size // 2))  # room for two entries
    read_frames(paths[1])
    os.utime(one / "meta.json", (1, 1))  # t0's entry: used long ago
    read_frames(paths[2])
    kept = entries(cache_root)
    assert len(kept) == 2 and one not in kept
    assert sum(f.stat().st_size for e in kept for f in e.iterdir()) <= 2 * size + size // 2
    # a hit counts as a use: t1 is now the most recent, so the next write evicts t2
    read_frames(paths[1])
    t2 = [e for e in kept if e.name.startswith(cache.digest(str(paths[2].resolve()))[:16] + "-")]
    read_frames(paths[0])
    assert t2 and t2[0] not in entries(cache_root)
    # an entry over the bound on its own is not kept
    monkeypatch.setenv(cache.ENV_MAX_BYTES, "1000")
    shutil.rmtree(cache_root)
    read_frames(paths[0])
    assert entries(cache_root) == []


@pytest.mark.parametrize("damage", ["truncate", "garbage", "delete", "meta"])
def test_damaged_entry_is_rebuilt(cache_root: Path, trace_copy: Path, damage: str) -> None:
    missed, _ = read_frames(trace_copy)
    (entry,) = entries(cache_root)
    target = entry / "kernels.parquet"
    if damage == "truncate":
        target.write_bytes(target.read_bytes()[: target.stat().st_size // 2])
    elif damage == "garbage":
        size = target.stat().st_size
        target.write_bytes(b"PAR1" + b"\x00" * (size - 8) + b"PAR1")
    elif damage == "delete":
        target.unlink()
    else:
        (entry / "meta.json").write_text("{not json")
    frames, _ = read_frames(trace_copy)
    assert_same_frames(missed, frames)
    (rebuilt,) = entries(cache_root)  # written again, whole
    again, _ = read_frames(trace_copy)
    assert_same_frames(missed, again)
    assert (rebuilt / "kernels.parquet").stat().st_size > 0


def test_never_beside_the_trace_and_the_trace_is_unchanged(cache_root: Path, trace_copy: Path) -> None:
    before = md5(trace_copy)
    stat = trace_copy.stat()
    for _ in range(2):
        code, _, err = run_cli(["report", str(trace_copy), "--format", "json"])
        assert code == 0, err
    assert sorted(p.name for p in trace_copy.parent.iterdir()) == ["sample.sqlite"]
    assert md5(trace_copy) == before and trace_copy.stat().st_mtime_ns == stat.st_mtime_ns
    assert len(entries(cache_root)) == 1


def test_a_cache_folder_that_is_the_trace_folder_is_not_used(
    cache_root: Path, trace_copy: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(cache.ENV_DIR, str(trace_copy.parent))
    read_frames(trace_copy)
    assert sorted(p.name for p in trace_copy.parent.iterdir()) == ["sample.sqlite"]


def test_filtered_frames_do_not_use_the_cache(cache_root: Path, trace_copy: Path) -> None:
    from nsys_doctor.trace.window import EventFilter

    with Trace.open(trace_copy) as trace:
        part = TraceFrames(trace, EventFilter(start=0, end=20_000_000))
    assert not cache_root.exists()
    whole, _ = read_frames(trace_copy)
    assert 0 < part.kernels.height < whole["kernels"].height
    with Trace.open(trace_copy) as trace:  # a hit, then a filtered read: the filter is still applied
        assert TraceFrames(trace, EventFilter(start=0, end=20_000_000)).kernels.height == part.kernels.height


def test_two_writers_of_one_entry(cache_root: Path, trace_copy: Path) -> None:
    """A second process storing the entry another one stored first keeps the first, whole, and leaves nothing."""
    missed, _ = read_frames(trace_copy)
    (entry,) = entries(cache_root)
    meta = (entry / "meta.json").read_bytes()
    with Trace.open(trace_copy) as trace:
        s = cache.slot(trace, FRAME_TABLES)
        assert s is not None and s.folder == entry
        cache.write(s, {n: missed[n].head(3) for n in FRAME_NAMES}, ())  # loses the rename
    assert sorted(cache_root.iterdir()) == [entry]  # no temporary folder left
    assert (entry / "meta.json").read_bytes() == meta
    frames, _ = read_frames(trace_copy)
    assert_same_frames(missed, frames)


def test_damage_counted_before_the_frames_is_in_the_entry(cache_root: Path, tmp_path: Path) -> None:
    """Damage an earlier read had counted (a `stats` report before the frames) is stored with the entry too."""
    from nsys_doctor.trace import schema as S
    from nsys_doctor.trace.tables import load

    folder = tmp_path / "traces"
    folder.mkdir()
    damaged = mutated_copy(SAMPLE, folder / "damaged.sqlite", set_values(K, "start", "NULL", 40, 1))
    with Trace.open(damaged) as trace:
        load(trace, S.KERNEL, ["start", "end"])
        counted = trace.damaged.to_dict()
        assert counted["damaged"] > 0
        TraceFrames(trace)
        missed = trace.damaged.to_dict()
    _, hit = read_frames(damaged)
    assert hit == missed
