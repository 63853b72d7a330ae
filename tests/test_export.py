"""``nsys-doctor export``: the window as Chrome trace-event JSON (Perfetto) and as Parquet, checked against the
session's own frames on real traces."""

from __future__ import annotations

import gzip
import hashlib
import json
from collections import defaultdict
from decimal import Decimal
from pathlib import Path

import polars as pl
import pytest
from click.testing import CliRunner, Result
from jsonschema import Draft202012Validator

from nsys_doctor.cli.export import export
from nsys_doctor.report.export import (
    DOCTOR_PID,
    DOCTOR_THREADS,
    ExportData,
    assign_lanes,
    micros,
    write_perfetto,
)
from nsys_doctor.session import TraceSession, WindowChoice

from .conftest import DATA, SAMPLE

LLAMA = DATA / "runs" / "hf_llama_generate_whole.sqlite"
TRACES = [SAMPLE, LLAMA]
PHASES = {"X", "M", "s", "f", "i"}


def run(*args: object) -> Result:
    return CliRunner().invoke(export, [str(a) for a in args])


def load_events(path: Path) -> list[dict[str, object]]:
    """The events, with every number that has a decimal point read exactly (Decimal), so that ``ts * 1000`` is the
    nanosecond that was written."""
    raw = gzip.decompress(path.read_bytes()) if path.name.endswith(".gz") else path.read_bytes()
    doc = json.loads(raw, parse_float=Decimal)
    assert doc["displayTimeUnit"] == "ns"
    return doc["traceEvents"]


def ns(value: object) -> int:
    """A written microsecond value back to integer nanoseconds (exactly: three decimals)."""
    d = Decimal(value) * 1000  # type: ignore[arg-type]
    assert d == d.to_integral_value(), value
    return int(d)


def window_frames(path: Path, choice: WindowChoice | None = None) -> dict[str, object]:
    """What the export should hold, counted from the session's frames independently of the exporter."""
    with TraceSession.open(path, choice=choice) as s:
        w, f = s.window, s.frames
        in_w = (pl.col("start") >= w.start) & (pl.col("start") <= w.end)
        overlaps = (pl.col("start") <= w.end) & (pl.col("end").is_null() | (pl.col("end") >= w.start))
        k = f.kernels.filter(in_w)
        return {
            "kernels": k.height,
            "kernel_ns": int(k["dur"].sum()),
            "kernel_names": set(k["name"].to_list()),
            "api": f.api.filter(in_w).height,
            "memcpy": f.memcpy.filter(in_w).height,
            "memset": f.memset.filter(in_w).height,
            "nvtx": f.nvtx.filter(overlaps).height,
            "nvtx_closed": f.nvtx.filter(overlaps & pl.col("end").is_not_null()).height,
            "steps": s.step_set.count,
            "requests": sum(1 for r in s.structure.requests if r.start <= w.end and r.end >= w.start),
            "warmup": sum(1 for r in s.structure.requests if r.warmup and r.start <= w.end and r.end >= w.start),
        }


@pytest.fixture(scope="module")
def exported(tmp_path_factory: pytest.TempPathFactory) -> dict[Path, tuple[Path, Path]]:
    """Each trace exported once (Perfetto JSON and Parquet) with the default window."""
    out: dict[Path, tuple[Path, Path]] = {}
    for trace in TRACES:
        d = tmp_path_factory.mktemp(trace.stem)
        js, pq = d / "trace.json", d / "pq"
        res = run(trace, "--perfetto", js, "--parquet", pq)
        assert res.exit_code == 0, res.output
        out[trace] = (js, pq)
    return out


def thread_names(events: list[dict[str, object]]) -> dict[tuple[int, int], str]:
    return {
        (e["pid"], e["tid"]): e["args"]["name"]  # type: ignore[index]
        for e in events
        if e["ph"] == "M" and e["name"] == "thread_name"
    }


# ------------------------------------------------------------------------------------------ the JSON itself


@pytest.mark.parametrize("trace", TRACES, ids=lambda p: p.stem)
def test_events_are_what_perfetto_reads(exported: dict[Path, tuple[Path, Path]], trace: Path) -> None:
    events = load_events(exported[trace][0])
    assert events
    for e in events:
        assert e["ph"] in PHASES, e
        assert isinstance(e["pid"], int) and isinstance(e["tid"], int), e
        assert 0 <= e["pid"] < 2**32 and 0 <= e["tid"] < 2**32, e  # the legacy importers read them as uint32
        if e["ph"] != "M":
            assert isinstance(e["ts"], (int, Decimal)) and e["ts"] >= 0, e
        if e["ph"] == "X":
            assert {"ts", "dur", "pid", "tid", "name"} <= e.keys(), e
            assert isinstance(e["name"], str) and e["dur"] >= 0, e
    names = {e["name"] for e in events if e["ph"] == "M"}
    assert {"process_name", "thread_name", "process_sort_index", "thread_sort_index"} <= names


def trace_event_validator() -> Draft202012Validator:
    """The Chrome trace-event schema (tests/data/trace_event.schema.json, from the Trace Event Format document)."""
    schema = json.loads((DATA / "trace_event.schema.json").read_text(encoding="utf-8"))
    Draft202012Validator.check_schema(schema)
    return Draft202012Validator(schema)


@pytest.mark.parametrize("trace", TRACES, ids=lambda p: p.stem)
def test_the_file_matches_the_trace_event_schema(exported: dict[Path, tuple[Path, Path]], trace: Path) -> None:
    document = json.loads(exported[trace][0].read_text(encoding="utf-8"))
    errors = [f"{list(e.absolute_path)}: {e.message}" for e in trace_event_validator().iter_errors(document)]
    assert not errors, errors[:5]


@pytest.mark.parametrize(
    "event",
    [
        {"ph": "X", "name": "k", "pid": 1, "tid": 1, "ts": 1.0},  # no dur
        {"ph": "X", "name": "k", "pid": 1, "tid": 1, "ts": 1.0, "dur": -1},
        {"ph": "X", "name": "k", "pid": -1, "tid": 1, "ts": 1.0, "dur": 1},
        {"ph": "X", "name": "k", "pid": 1, "tid": 2**32, "ts": 1.0, "dur": 1},
        {"ph": "X", "name": "k", "pid": 1, "tid": 1, "ts": "1.0", "dur": 1},
        {"ph": "f", "name": "launch", "cat": "launch", "id": 1, "pid": 1, "tid": 1, "ts": 2.0},  # no bp
        {"ph": "s", "name": "launch", "cat": "launch", "pid": 1, "tid": 1, "ts": 2.0},  # no id
        {"ph": "M", "name": "thread_name", "pid": 1, "tid": 1, "args": {"label": "x"}},
        {"ph": "M", "name": "process_sort_index", "pid": 1, "tid": 0, "args": {"sort_index": "1"}},
        {"ph": "B", "name": "k", "pid": 1, "tid": 1, "ts": 1.0},
    ],
)
def test_the_schema_rejects_what_the_viewers_cannot_read(event: dict[str, object]) -> None:
    good = {"ph": "X", "name": "k", "pid": 1, "tid": 1, "ts": 1.0, "dur": 0.5}
    validator = trace_event_validator()
    assert validator.is_valid({"traceEvents": [good], "displayTimeUnit": "ns"})
    assert not validator.is_valid({"traceEvents": [good, event], "displayTimeUnit": "ns"})


@pytest.mark.parametrize("trace", TRACES, ids=lambda p: p.stem)
def test_slices_of_one_thread_nest(exported: dict[Path, tuple[Path, Path]], trace: Path) -> None:
    """The viewers need the slices of one thread to nest: overlapping GPU work went to overlap lanes, NVTX
    start/end ranges to threads of their own."""
    tracks: dict[tuple[object, object], list[tuple[int, int]]] = defaultdict(list)
    for e in load_events(exported[trace][0]):
        if e["ph"] == "X":
            start = ns(e["ts"])
            tracks[(e["pid"], e["tid"])].append((start, start + ns(e["dur"])))
    for key, slices in tracks.items():
        stack: list[int] = []
        for start, end in sorted(slices, key=lambda x: (x[0], -x[1])):
            while stack and stack[-1] <= start:
                stack.pop()
            assert not stack or end <= stack[-1], f"slices cross on {key} at {start}"
            stack.append(end)


@pytest.mark.parametrize("trace", TRACES, ids=lambda p: p.stem)
def test_the_window_is_all_there(exported: dict[Path, tuple[Path, Path]], trace: Path) -> None:
    want = window_frames(trace)
    events = load_events(exported[trace][0])
    by_cat: dict[str, list[dict[str, object]]] = defaultdict(list)
    for e in events:
        if e["ph"] == "X":
            by_cat[str(e["cat"])].append(e)
    kernels = by_cat["kernel"]
    assert len(kernels) == want["kernels"]
    assert sum(ns(e["dur"]) for e in kernels) == want["kernel_ns"]  # exact, in nanoseconds
    assert len(by_cat["cuda_api"]) == want["api"]
    assert len(by_cat["memcpy"]) == want["memcpy"]
    assert len(by_cat["memset"]) == want["memset"]
    assert len(by_cat["nvtx"]) == want["nvtx_closed"]
    for e in kernels:
        args = e["args"]
        assert {"correlationId", "grid", "block", "family", "op"} <= args.keys()  # type: ignore[union-attr]
        assert "?" not in args["block"]  # type: ignore[index]
    for e in by_cat["memcpy"]:
        assert e["name"].startswith("[CUDA memcpy ") and isinstance(e["args"]["bytes"], int)  # type: ignore[index, union-attr]
    # nsys-doctor's own tracks: one slice per step (host spans), one per request
    names = thread_names(events)
    doctor = by_cat["nsys-doctor"]
    steps = [e for e in doctor if names[(e["pid"], e["tid"])].split(" (overlap")[0] == "steps"]
    requests = [e for e in doctor if names[(e["pid"], e["tid"])].split(" (overlap")[0] == "requests"]
    assert len(steps) == want["steps"] > 0
    assert {e["name"].split()[0] for e in steps} <= {"prefill", "decode", "iteration", "step"}  # type: ignore[union-attr]
    assert len(requests) == want["requests"] > 0
    assert all(e["pid"] == DOCTOR_PID for e in doctor)


def test_flows_join_a_call_to_its_gpu_work(exported: dict[Path, tuple[Path, Path]]) -> None:
    events = load_events(exported[SAMPLE][0])
    slices: dict[tuple[object, object], list[tuple[int, int, str]]] = defaultdict(list)
    for e in events:
        if e["ph"] == "X":
            start = ns(e["ts"])
            slices[(e["pid"], e["tid"])].append((start, start + ns(e["dur"]), str(e["cat"])))

    def inside(e: dict[str, object]) -> str:
        t = ns(e["ts"])
        around = [(start, -end, cat) for start, end, cat in slices[(e["pid"], e["tid"])] if start <= t <= end]
        assert around, e
        return max(around)[2]  # the innermost slice: the one that started last

    starts = {e["id"]: e for e in events if e["ph"] == "s"}
    ends = {e["id"]: e for e in events if e["ph"] == "f"}
    assert starts and starts.keys() == ends.keys()
    for fid, s in starts.items():
        assert inside(s) == "cuda_api"
        assert inside(ends[fid]) in {"kernel", "memcpy", "memset", "graph"}
        assert ends[fid]["bp"] == "e"


def test_the_sample_shows_its_overlapping_kernels_on_a_lane(exported: dict[Path, tuple[Path, Path]]) -> None:
    """The sample's split-K GEMMs overlap the next kernel on stream 7 (programmatic dependent launch)."""
    names = set(thread_names(load_events(exported[SAMPLE][0])).values())
    assert {"Stream 7", "Stream 7 (overlap 1)", "steps", "requests", "python3"} <= names


def test_same_bytes_twice(tmp_path: Path) -> None:
    for name in ("a.json", "b.json", "a.json.gz", "b.json.gz"):
        assert run(SAMPLE, "--perfetto", tmp_path / name).exit_code == 0
    assert (tmp_path / "a.json").read_bytes() == (tmp_path / "b.json").read_bytes()
    assert (tmp_path / "a.json.gz").read_bytes() == (tmp_path / "b.json.gz").read_bytes()
    assert gzip.decompress((tmp_path / "a.json.gz").read_bytes()) == (tmp_path / "a.json").read_bytes()
    assert not list(tmp_path.glob(".*.tmp"))  # no temporary file left behind


def test_standard_output(tmp_path: Path) -> None:
    assert run(SAMPLE, "--perfetto", tmp_path / "a.json").exit_code == 0
    res = CliRunner().invoke(export, [str(SAMPLE), "--perfetto", "-"])
    assert res.exit_code == 0 and res.stdout_bytes == (tmp_path / "a.json").read_bytes()
    assert not Path("-").exists()


def test_demangled_names_survive_escaping(tmp_path: Path) -> None:
    """Demangled names are full of < > & and commas: each one comes back exactly."""
    out = tmp_path / "t.json"
    assert run(SAMPLE, "--perfetto", out, "--demangled", "--no-flows").exit_code == 0
    events = load_events(out)
    names = {e["name"] for e in events if e.get("cat") == "kernel"}
    assert names == window_frames(SAMPLE)["kernel_names"]
    assert any("<" in n and ">" in n for n in names)
    assert not any(e["ph"] in ("s", "f") for e in events)


def test_names_with_markup_and_control_characters(tmp_path: Path) -> None:
    """Names are JSON-escaped by polars' encoder: quotes, backslashes, control characters, markup, non-ASCII."""
    odd = ['a<b>&c "quoted" \\ back', "tab\there\nnewline\x01", "Grüße → ∑", "</script><!--", ""]
    n = len(odd)
    kernels = pl.DataFrame(
        {
            "start": [1000 * i for i in range(n)],
            "end": [1000 * i + 500 for i in range(n)],
            "deviceId": [0] * n,
            "streamId": [7] * n,
            "correlationId": list(range(n)),
            "pid": [10] * n,
            "name": odd,
            "short": [None] * n,
            **{c: [1] * n for c in ("gridX", "gridY", "gridZ", "blockX", "blockY", "blockZ")},
            "family": ["f&<>"] * n,
            "op": ['op "x"'] * n,
        }
    )
    empty = kernels.clear()
    api = pl.DataFrame(
        {"start": [0], "end": [10], "pid": [10], "tid": [11], "correlationId": [0], "name": ['cuda"Odd<>_v7000']}
    )
    nvtx = pl.DataFrame(
        {"start": [0], "end": [5000], "eventType": [59], "pid": [10], "tid": [11], "text": odd[:1], "domain": ["d&"]}
    )
    steps = pl.DataFrame(
        schema={"idx": pl.Int64, "kind": pl.Utf8, "start": pl.Int64, "end": pl.Int64, "wall": pl.Int64,
                "gpu_time": pl.Int64, "kernels": pl.UInt32, "launches": pl.UInt32, "gpu_start": pl.Int64,
                "gpu_end": pl.Int64}
    )  # fmt: skip
    data = ExportData(
        kernels=kernels,
        api=api,
        memcpy=empty.select("start", "end", "deviceId", "streamId", "correlationId", "pid").with_columns(
            pl.lit(0).alias("bytes"), pl.lit("x").alias("copy_kind")
        ),
        memset=empty.select("start", "end", "deviceId", "streamId", "correlationId", "pid").with_columns(
            pl.lit(0).alias("bytes")
        ),
        graphs=empty.select("start", "end", "deviceId", "streamId", "correlationId", "pid"),
        nvtx=nvtx,
        steps=steps,
        requests=pl.DataFrame(),
        phases=pl.DataFrame(),
        window={"start_ns": 0, "end_ns": 10_000, "reason": 'a <window> & "more"'},
        devices={0: 'GPU "zero" <&>'},
        processes={10: "proc\\name"},
        threads={(10, 11): "thr\u2028ead"},
    )
    out = tmp_path / "odd.json"
    with out.open("wb") as fh:
        summary = write_perfetto(data, fh)
    doc = json.loads(out.read_bytes())
    events = doc["traceEvents"]
    assert [e["name"] for e in events if e.get("cat") == "kernel"] == odd
    kernel = next(e for e in events if e.get("cat") == "kernel")
    assert kernel["args"]["family"] == "f&<>" and kernel["args"]["op"] == 'op "x"'
    assert next(e for e in events if e.get("cat") == "cuda_api")["name"] == 'cuda"Odd<>'
    assert next(e for e in events if e.get("cat") == "nvtx")["args"] == {"domain": "d&"}
    labels = {e["args"]["name"] for e in events if e["ph"] == "M" and e["name"].endswith("_name")}
    assert {'GPU 0: GPU "zero" <&>', "proc\\name", "thr\u2028ead"} <= labels
    assert doc["otherData"]["window"]["reason"] == 'a <window> & "more"'
    assert summary.events["kernel"] == n and summary.events["flow"] == 2


# ------------------------------------------------------------------------------------------------ windows


def test_whole_trace_and_request_windows(tmp_path: Path) -> None:
    out = tmp_path / "w.json"
    assert run(LLAMA, "--perfetto", out, "--whole-trace").exit_code == 0
    events = load_events(out)
    want = window_frames(LLAMA, WindowChoice(whole_trace=True))
    assert sum(1 for e in events if e.get("cat") == "kernel") == want["kernels"]
    requests = [e for e in events if e.get("cat") == "nsys-doctor" and str(e["name"]).startswith("request ")]
    assert len(requests) == want["requests"] == 3
    assert sum(1 for e in requests if "(warm-up)" in str(e["name"])) == want["warmup"] == 1
    assert all(e["args"]["warmup"] == ("(warm-up)" in e["name"]) for e in requests)  # type: ignore[index, operator]
    assert run(LLAMA, "--perfetto", out, "--request", "0").exit_code == 0
    want = window_frames(LLAMA, WindowChoice(request=0))
    assert sum(1 for e in load_events(out) if e.get("cat") == "kernel") == want["kernels"] > 0


def test_window_options_exclude_each_other(tmp_path: Path) -> None:
    from .test_fuzz import run_cli

    out = tmp_path / "x.json"
    code, _, err = run_cli(["export", str(SAMPLE), "--perfetto", str(out), "--whole-trace", "--request", "0"])
    assert code == 2
    assert err == "nsys-doctor: error: --whole-trace and --request exclude each other: give at most one\n"
    assert not out.exists()


# ------------------------------------------------------------------------------------------------ Parquet


@pytest.mark.parametrize("trace", TRACES, ids=lambda p: p.stem)
def test_parquet_reads_back(exported: dict[Path, tuple[Path, Path]], trace: Path) -> None:
    want = window_frames(trace)
    folder = exported[trace][1]
    counts = {p.stem: pl.read_parquet(p).height for p in folder.glob("*.parquet")}
    assert counts == {
        "kernels": want["kernels"],
        "api": want["api"],
        "memcpy": want["memcpy"],
        "memset": want["memset"],
        "nvtx": want["nvtx"],
        "steps": want["steps"],
        "requests": want["requests"],
    }
    k = pl.read_parquet(folder / "kernels.parquet")
    assert {"start", "end", "dur", "name", "short", "family", "op", "blockX", "gridX"} <= set(k.columns)
    assert k["blockX"].null_count() == 0 and int(k["dur"].sum()) == want["kernel_ns"]
    assert pl.read_parquet(folder / "api.parquet")["name"].dtype == pl.Utf8
    kinds = set(pl.read_parquet(folder / "steps.parquet")["kind"].to_list())
    assert kinds <= {"prefill", "decode", "iteration", "step"}


def test_parquet_folder_is_created_but_not_its_parents(tmp_path: Path) -> None:
    assert run(SAMPLE, "--parquet", tmp_path / "new").exit_code == 0
    assert len(list((tmp_path / "new").glob("*.parquet"))) == 7
    res = run(SAMPLE, "--parquet", tmp_path / "missing" / "deeper")
    assert res.exit_code == 2 and "does not exist" in res.output
    assert not (tmp_path / "missing").exists()


# ------------------------------------------------------------------------------------------- refusals


def digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_outputs_never_touch_the_input(tmp_path: Path) -> None:
    trace = tmp_path / "run.sqlite"
    trace.write_bytes(SAMPLE.read_bytes())
    before = digest(trace)
    for args in (("--perfetto", trace), ("--parquet", trace), ("--perfetto", SAMPLE), ("--perfetto", LLAMA)):
        res = run(trace, *args)
        assert res.exit_code == 2, (args, res.output)
        assert len(res.output.strip().splitlines()) == 1, res.output
    assert digest(trace) == before
    assert not list(tmp_path.glob(".*.tmp"))


def test_nothing_to_write_is_a_usage_error() -> None:
    res = run(SAMPLE)
    assert res.exit_code == 2 and "--perfetto" in res.output and "--parquet" in res.output


def test_bad_traces_are_one_line_errors(tmp_path: Path) -> None:
    out = tmp_path / "t.json"
    res = run(tmp_path / "nope.sqlite", "--perfetto", out)
    assert res.exit_code == 2 and "trace not found" in res.output
    text = tmp_path / "notes.sqlite"
    text.write_text("not a database\n")
    res = run(text, "--perfetto", out)
    assert res.exit_code == 2 and len(res.output.strip().splitlines()) == 1, res.output
    assert not out.exists()


# ----------------------------------------------------------------------------------------------- helpers


def test_micros_is_exact() -> None:
    values = [0, 1, 999, 1000, 1001, 1_234_567, 15_906_863_714, 2**53 + 1]
    got = pl.DataFrame({"v": values}, schema={"v": pl.Int64}).select(micros("v"))["v"].to_list()
    assert got == ["0.000", "0.001", "0.999", "1.000", "1.001", "1234.567", "15906863.714", "9007199254740.993"]


def test_lanes_never_overlap() -> None:
    # a chain where each kernel overlaps the next (PDL) alternates between two lanes; a nested one needs a third
    df = pl.DataFrame(
        {
            "track": [1, 1, 1, 1, 1, 2, 2, 1],
            "start": [0, 8, 18, 28, 40, 0, 5, 19],
            "end": [10, 20, 30, 38, 50, 4, 9, 21],
        }
    )
    lanes = assign_lanes(df, ["track"])
    assert lanes.to_list() == [0, 1, 0, 1, 0, 0, 0, 2]
    ends: dict[tuple[int, int], int] = {}
    rows = sorted(zip(df["track"], lanes, df["start"], df["end"], strict=True), key=lambda r: r[2])
    for track, lane, start, end in rows:
        assert start >= ends.get((track, lane), -1)
        ends[(track, lane)] = end
    assert assign_lanes(df.clear(), ["track"]).len() == 0
    assert set(DOCTOR_THREADS) == {"phases", "requests", "steps", "steps (GPU)"}


def test_block_sizes_are_the_kernel_table_s() -> None:
    """``TraceSession.kernels(blocks=True)``: each kernel's block size as the kernel table holds it (read here with
    the stdlib driver), in the same rows as ``kernels()``."""
    import sqlite3

    with TraceSession.open(SAMPLE) as s:
        plain, with_blocks = s.kernels(), s.kernels(blocks=True)
        w = s.window
    assert with_blocks.drop("blockX", "blockY", "blockZ").equals(plain)
    con = sqlite3.connect(f"file:{SAMPLE}?mode=ro", uri=True)
    want = sorted(
        con.execute(
            "SELECT start, correlationId, blockX, blockY, blockZ FROM CUPTI_ACTIVITY_KIND_KERNEL "
            "WHERE start >= ? AND start <= ?",
            (w.start, w.end),
        ).fetchall()
    )
    con.close()
    got = sorted(with_blocks.select("start", "correlationId", "blockX", "blockY", "blockZ").iter_rows())
    assert got == want and len({r[2:] for r in want}) > 1  # several block shapes, each on its own kernel


def test_block_sizes_of_other_rows_are_joined_by_the_kernel_s_keys() -> None:
    """Kernels that are not the table's rows in order (here: every other one, reversed) get their block sizes by
    their start, process, device, stream and correlation id: the same as the table's rows in order give them,
    with the frame's column types kept."""
    from nsys_doctor.trace import Trace
    from nsys_doctor.trace.extras import with_block_sizes
    from nsys_doctor.trace.tables import TraceFrames

    with Trace.open(SAMPLE) as trace:
        k = TraceFrames(trace).kernels
        aligned = with_block_sizes(trace, k)
        rows = pl.Series(list(range(k.height - 1, -1, -2)))
        some = k.select(pl.all().gather(rows))
        joined = with_block_sizes(trace, some)
    assert joined.schema == aligned.schema and joined.height == some.height
    assert joined.equals(aligned.select(pl.all().gather(rows)))
