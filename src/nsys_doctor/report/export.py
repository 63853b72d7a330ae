"""Exports of a trace's window for other tools: Chrome trace-event JSON (Perfetto, chrome://tracing) and Parquet.

Renderers only: they take an ``ExportData`` (the window's frames with names resolved, built by
``TraceSession.export_data()``) and know nothing about SQLite. Every event line is built by polars expressions over
whole columns (names escaped by polars' JSON encoder, times formatted with integer arithmetic), and the JSON is written
in chunks to a binary stream, so a million kernels cost seconds and the memory of one chunk of text.

The trace-event layout (docs/export.md):

- process ``nsys-doctor``: threads ``phases``, ``requests`` (warm-up marked), ``steps`` (host span of each step)
  and ``steps (GPU)`` (first kernel start to last kernel end of each step);
- one process per GPU (``GPU 0: NVIDIA H100 80GB HBM3``), one thread per stream: kernels, memcpys, memsets
  (and graph-level launches); work that overlaps on one stream (programmatic dependent launch) goes to extra
  threads ``Stream N (overlap k)``, because the viewers need the slices of one thread to nest;
- one process per host process, one thread per host thread: CUDA API calls and NVTX push/pop ranges; NVTX
  start/end ranges (which may overlap) on threads of their own;
- flow arrows from each CUDA API call to the first GPU operation with its correlation id (``--no-flows`` drops
  them).

Timestamps (``ts``) and durations (``dur``) are microseconds with exactly three decimals (``ns // 1000`` and
``ns % 1000``), on the trace's own clock (nanoseconds since the capture began), so that ``ts * 1000`` is the
nanosecond of the trace.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import IO

import polars as pl

from ..export_data import ExportData

__all__ = ["ExportData", "parquet_frames", "write_perfetto"]

GPU_PID_BASE = 1 << 24  # host pids fit in 24 bits (globalPid); GPU N is process GPU_PID_BASE + 1 + N
DOCTOR_PID = 1 << 25  # the process holding nsys-doctor's own tracks
LANE_SHIFT = 24  # thread id of overlap lane k > 0: (k << 24) | stream id (or | 0 for NVTX start/end lanes)
NVTX_LANE_TID = 1 << 31  # NVTX start/end ranges of a process: thread NVTX_LANE_TID + lane
CHUNK_ROWS = 200_000  # event lines built and written at once

DOCTOR_THREADS = {"phases": 1, "requests": 2, "steps": 3, "steps (GPU)": 4}
PUSHPOP_TYPES = (59, 70)  # NVTX push/pop ranges (nested on their thread); 60 and 71 are start/end ranges

UNKNOWN_DEVICE = -1


# ------------------------------------------------------------------------------------------------ Parquet


def parquet_frames(data: ExportData) -> dict[str, pl.DataFrame]:
    """The frames ``--parquet DIR`` writes, by file name (kernels.parquet ... requests.parquet)."""
    return {
        "kernels.parquet": data.kernels,
        "api.parquet": data.api,
        "memcpy.parquet": data.memcpy,
        "memset.parquet": data.memset,
        "nvtx.parquet": data.nvtx,
        "steps.parquet": data.steps,
        "requests.parquet": data.requests,
    }


# --------------------------------------------------------------------------------------------- expressions


def micros(col: str | pl.Expr) -> pl.Expr:
    """Non-negative integer nanoseconds as a JSON number of microseconds with three decimals (1234567 ->
    ``1234.567``), by integer arithmetic: no float rounding."""
    c = pl.col(col) if isinstance(col, str) else col
    return pl.concat_str([(c // 1000).cast(pl.Utf8), pl.lit("."), (c % 1000).cast(pl.Utf8).str.zfill(3)])


def json_object(*exprs: pl.Expr) -> pl.Expr:
    """A JSON object of the named expressions, one per row (strings escaped by polars' JSON encoder; nulls are
    ``null``)."""
    return pl.struct(*exprs).struct.json_encode()


def json_value(expr: pl.Expr) -> pl.Expr:
    """Each row's value as JSON (a string quoted and escaped, a number, ``null``)."""
    return json_object(expr.alias("v")).str.strip_prefix('{"v":').str.strip_suffix("}")


def json_members(*exprs: pl.Expr) -> pl.Expr:
    """``"a":1,"b":"x"``: the members of ``json_object`` without its braces."""
    return json_object(*exprs).str.strip_prefix("{").str.strip_suffix("}")


def by_distinct(frame: pl.DataFrame, key: pl.Expr, value: pl.Expr) -> pl.Expr:
    """An expression giving ``value`` row by row, computed once per distinct ``key`` (a non-null string
    expression that determines ``value``) and looked up: names repeat (a few hundred kernel names over a million
    launches), and escaping each distinct name once is what keeps the writer fast."""
    cols = sorted(set(key.meta.root_names()) | set(value.meta.root_names()))
    uniq = frame.select(cols).with_columns(key.alias("_key")).unique(subset="_key", keep="first", maintain_order=True)
    table = uniq.select("_key", value.alias("_value"))
    mapping = dict(zip(table["_key"].to_list(), table["_value"].to_list(), strict=True))
    return key.replace_strict(mapping, return_dtype=pl.Utf8) if mapping else pl.lit("null")


def _int(col: str) -> pl.Expr:
    """An integer column as JSON text (``null`` where missing)."""
    return pl.col(col).cast(pl.Utf8).fill_null("null")


def assign_lanes(df: pl.DataFrame, key: list[str]) -> pl.Series:
    """The lane (UInt32) of each row of ``df`` (which has ``start``, ``end`` and the ``key`` columns of its track), in
    row order: 0 for every row of a track where no two rows overlap; where some do, each row takes the first lane
    whose last row has ended (first fit in start order), so that no lane holds overlapping rows.

    A row that starts after every earlier row of its track has ended takes lane 0 and frees every lane, so the
    per-row loop runs only over the runs of overlapping rows that follow such a row (none in most traces, every row
    of a track whose every kernel overlaps the next one)."""
    n = df.height
    if n == 0:
        return pl.Series("lane", [], dtype=pl.UInt32)
    narrow = df.select(*key, "start", "end").with_row_index("_row").sort([*key, "start", "end", "_row"])
    prev_end = pl.col("end").cum_max().shift(1).over(key)
    narrow = narrow.with_columns((pl.col("start") < prev_end).fill_null(False).alias("_clash"))
    if not narrow["_clash"].any():
        return pl.repeat(0, n, dtype=pl.UInt32, eager=True).alias("lane")
    # runs: a row without a clash starts one; only runs holding a clash need the loop
    narrow = narrow.with_columns((~pl.col("_clash")).cum_sum().alias("_run"))
    busy = narrow.filter(pl.col("_clash").any().over("_run"))
    rows: list[int] = []
    lanes: list[int] = []
    ends: list[int] = []
    for row, start, end, clash in zip(busy["_row"], busy["start"], busy["end"], busy["_clash"], strict=True):
        if not clash:  # a new run (and a new track always starts one): every lane is free
            ends = [end]
            lanes.append(0)
        else:
            for i, last in enumerate(ends):
                if start >= last:
                    ends[i] = end
                    lanes.append(i)
                    break
            else:
                ends.append(end)
                lanes.append(len(ends) - 1)
        rows.append(row)
    lane = pl.repeat(0, n, dtype=pl.UInt32, eager=True).alias("lane")
    return lane.scatter(rows, pl.Series(lanes, dtype=pl.UInt32))


# ------------------------------------------------------------------------------------------------- tracks


@dataclass(frozen=True)
class Layer:
    """One kind of slice: a frame with start, end, pid, tid, and the expressions giving each slice's name (as a JSON
    string) and arguments (a JSON object), evaluated a chunk at a time when written."""

    cat: str
    frame: pl.DataFrame
    name: pl.Expr
    args: pl.Expr


def _dims(prefix: str) -> pl.Expr:
    """``"grid":"1056x1x1"`` (``?`` for a size the export lacks)."""
    cols = [f"{prefix}{a}" for a in "XYZ"]
    size = pl.concat_str([pl.col(c).cast(pl.Utf8).fill_null("?") for c in cols], separator="x")
    return pl.concat_str([pl.lit(f'"{prefix}":"'), size, pl.lit('"')])


def _kernel_name(demangled: bool) -> pl.Expr:
    if demangled:
        return pl.col("name").fill_null("")
    short = pl.col("short")
    return pl.coalesce(pl.when(short.is_not_null() & (short != "")).then(short), pl.col("name"), pl.lit(""))


def _gpu_layers(data: ExportData, demangled: bool) -> tuple[list[Layer], pl.DataFrame]:
    """Kernels, memcpys, memsets and graph launches on their GPU's process and stream's thread (overlap lanes
    where needed); and the narrow frame of all of them (cat, deviceId, streamId, lane, pid, tid, start, end, hpid,
    correlationId) for the metadata and the flows."""
    cats = ("kernel", "memcpy", "memset", "graph")
    sources = (data.kernels, data.memcpy, data.memset, data.graphs)
    narrow = pl.concat(
        [
            f.select(
                pl.lit(cat).alias("cat"),
                pl.col("deviceId").cast(pl.Int64).fill_null(UNKNOWN_DEVICE),
                pl.col("streamId").cast(pl.Int64).fill_null(0),
                pl.col("start").cast(pl.Int64),
                pl.col("end").cast(pl.Int64),
                pl.col("pid").cast(pl.Int64).alias("hpid"),
                pl.col("correlationId").cast(pl.Int64),
            )
            for cat, f in zip(cats, sources, strict=True)
        ],
        how="vertical",
    )
    narrow = narrow.with_columns(assign_lanes(narrow, ["deviceId", "streamId"])).with_columns(
        (GPU_PID_BASE + 1 + pl.col("deviceId")).alias("pid"),
        (pl.col("lane").cast(pl.Int64) * (1 << LANE_SHIFT) + pl.col("streamId")).alias("tid"),
    )
    framed: list[pl.DataFrame] = []
    off = 0
    for f in sources:
        framed.append(f.with_columns(narrow["pid"].slice(off, f.height), narrow["tid"].slice(off, f.height)))
        off += f.height
    k, mc, ms, gr = framed
    corr = pl.col("correlationId")
    by_name = pl.col("name").fill_null("")
    shown = _kernel_name(demangled)
    family_op = by_distinct(k, by_name, json_members(pl.col("family"), pl.col("op")))
    kernel_args = pl.concat_str(
        [pl.lit('{"correlationId":'), _int("correlationId"), pl.lit(","), _dims("grid"), pl.lit(","), _dims("block"),
         pl.lit(","), family_op, pl.lit("}")]
    )  # fmt: skip
    copy_name = pl.concat_str([pl.lit("[CUDA memcpy "), pl.col("copy_kind").fill_null("Unknown"), pl.lit("]")])
    layers = [
        Layer("kernel", k, by_distinct(k, shown, json_value(shown)), kernel_args),
        Layer("memcpy", mc, json_value(copy_name), json_object(pl.col("bytes"), pl.col("copy_kind"), corr)),
        Layer("memset", ms, pl.lit('"[CUDA memset]"'), json_object(pl.col("bytes"), corr)),
        Layer("graph", gr, pl.lit('"[CUDA graph]"'), json_object(corr)),
    ]
    return layers, narrow


def _host_layers(data: ExportData) -> tuple[list[Layer], pl.DataFrame, pl.DataFrame]:
    """CUDA API calls and NVTX push/pop ranges on their host threads, NVTX start/end ranges on lane threads of
    their process; and the (pid, tid) of the host threads, the (pid, lane) of the range threads."""
    from ..stats.api import api_name_expr

    api = data.api.with_columns(pl.col("pid", "tid").cast(pl.Int64))
    nv = data.nvtx.filter(pl.col("end").is_not_null()).with_columns(pl.col("pid", "tid").cast(pl.Int64))
    pushpop = nv.filter(pl.col("eventType").is_in(PUSHPOP_TYPES))
    ranges = nv.filter(~pl.col("eventType").is_in(PUSHPOP_TYPES))
    lanes = assign_lanes(ranges, ["pid"])
    ranges = ranges.with_columns(lanes, (NVTX_LANE_TID + lanes.cast(pl.Int64)).alias("tid"))
    nvtx_args = pl.when(pl.col("domain").is_null()).then(pl.lit("{}")).otherwise(json_object(pl.col("domain")))
    text = pl.col("text").fill_null("")
    api_name = by_distinct(api, pl.col("name").fill_null(""), json_value(api_name_expr("name").fill_null("")))
    api_args = pl.concat_str([pl.lit('{"correlationId":'), _int("correlationId"), pl.lit("}")])
    layers = [
        Layer("cuda_api", api, api_name, api_args),
        Layer("nvtx", pushpop, by_distinct(pushpop, text, json_value(text)), nvtx_args),
        Layer("nvtx", ranges, by_distinct(ranges, text, json_value(text)), nvtx_args),
    ]
    threads = pl.concat([api.select("pid", "tid").unique(), pushpop.select("pid", "tid").unique()]).unique()
    return layers, threads, ranges.select("pid", "lane").unique()


def _doctor_layer(data: ExportData) -> Layer:
    """Phases, requests, steps (host spans) and steps (GPU spans) on the nsys-doctor process (a few hundred rows:
    their names and arguments are made here)."""
    schema = {"start": pl.Int64, "end": pl.Int64, "name": pl.Utf8, "args": pl.Utf8, "track": pl.Int64}
    parts: list[pl.DataFrame] = []
    if data.phases.height:
        parts.append(
            data.phases.select(
                "start",
                "end",
                pl.col("kind").alias("name"),
                json_object(pl.col("kind"), pl.col("detail")).alias("args"),
                pl.lit(DOCTOR_THREADS["phases"]).alias("track"),
            )
        )
    if data.requests.height:
        warm = pl.when(pl.col("warmup")).then(pl.lit(" (warm-up)")).otherwise(pl.lit(""))
        parts.append(
            data.requests.select(
                "start",
                "end",
                pl.concat_str([pl.lit("request "), pl.col("index").cast(pl.Utf8), warm]).alias("name"),
                json_object(
                    pl.col("index"),
                    pl.col("warmup"),
                    pl.col("reason"),
                    pl.col("prefill_steps"),
                    pl.col("decode_steps"),
                    pl.col("iterations"),
                    pl.col("gpu_start").alias("gpu_start_ns"),
                    pl.col("gpu_end").alias("gpu_end_ns"),
                ).alias("args"),
                pl.lit(DOCTOR_THREADS["requests"]).alias("track"),
            )
        )
    st = data.steps
    if st.height:
        args = json_object(
            pl.col("idx"),
            pl.col("kind"),
            pl.col("wall").alias("wall_ns"),
            pl.col("gpu_time").alias("gpu_time_ns"),
            pl.col("kernels"),
            pl.col("launches"),
        ).alias("args")
        name = pl.concat_str([pl.col("kind").fill_null("step"), pl.lit(" "), pl.col("idx").cast(pl.Utf8)]).alias("name")
        host = st.filter(pl.col("start").is_not_null() & pl.col("end").is_not_null())
        parts.append(host.select("start", "end", name, args, pl.lit(DOCTOR_THREADS["steps"]).alias("track")))
        gpu = st.filter(pl.col("gpu_start").is_not_null() & (pl.col("gpu_end") >= pl.col("gpu_start")).fill_null(False))
        parts.append(
            gpu.select(
                pl.col("gpu_start").alias("start"),
                pl.col("gpu_end").alias("end"),
                name,
                args,
                pl.lit(DOCTOR_THREADS["steps (GPU)"]).alias("track"),
            )
        )
    ev = pl.concat([p.cast(schema) for p in parts], how="vertical") if parts else pl.DataFrame(schema=schema)  # type: ignore[arg-type]
    lanes = assign_lanes(ev, ["track"])
    ev = ev.with_columns(
        lanes,
        pl.lit(DOCTOR_PID, pl.Int64).alias("pid"),
        (lanes.cast(pl.Int64) * (1 << LANE_SHIFT) + pl.col("track")).alias("tid"),
    )
    return Layer("nsys-doctor", ev, json_value(pl.col("name")), pl.col("args"))


def flows(gpu: pl.DataFrame, api: pl.DataFrame) -> pl.DataFrame:
    """One arrow per CUDA API call whose correlation id reaches the GPU in the window: from the call to the first GPU
    operation with that id and process (a graph launch points at the graph's first kernel). Columns: id, s_pid,
    s_tid, s_ts, f_pid, f_tid, f_ts; each end is the middle of its slice, so that it binds to that slice.

    (process, correlation id) is packed into one integer for the join: joins on one integer column are several
    times faster than on two."""
    mid = (pl.col("start") + (pl.col("end") - pl.col("start")) // 2).alias("ts")
    g = gpu.filter(pl.col("correlationId").is_not_null() & pl.col("hpid").is_not_null())
    calls = api.filter(pl.col("correlationId").is_not_null() & pl.col("pid").is_not_null())
    if g.is_empty() or calls.is_empty():
        schema = dict.fromkeys(("id", "s_pid", "s_tid", "s_ts", "f_pid", "f_tid", "f_ts"), pl.Int64)
        return pl.DataFrame(schema=schema)
    top = max(int(g["correlationId"].max()), int(calls["correlationId"].max()), 0) + 1  # type: ignore[arg-type]
    g = g.select((pl.col("hpid") * top + pl.col("correlationId")).alias("_key"), "start", "end", "pid", "tid")
    g = g.filter(pl.col("start") == pl.col("start").min().over("_key"))
    if g["_key"].is_duplicated().any():  # two operations of one call starting together: the first in track order
        g = g.sort(["_key", "start", "end", "pid", "tid"]).unique(subset="_key", keep="first", maintain_order=True)
    first = g.select("_key", pl.col("pid").alias("f_pid"), pl.col("tid").alias("f_tid"), mid.alias("f_ts"))
    c = calls.select(
        (pl.col("pid").cast(pl.Int64) * top + pl.col("correlationId").cast(pl.Int64)).alias("_key"),
        pl.col("pid").cast(pl.Int64).alias("s_pid"),
        pl.col("tid").cast(pl.Int64).alias("s_tid"),
        "start",
        mid.alias("s_ts"),
    )
    fl = c.join(first, on="_key", how="inner", maintain_order="left")
    fl = fl.sort(["start", "_key"], maintain_order=True)
    return fl.with_row_index("id", offset=1).select(
        pl.col("id").cast(pl.Int64), "s_pid", "s_tid", "s_ts", "f_pid", "f_tid", "f_ts"
    )


# ---------------------------------------------------------------------------------------------- metadata


def _meta(kind: str, pid: int, tid: int, args: dict[str, object]) -> str:
    event = {"ph": "M", "name": kind, "pid": pid, "tid": tid, "args": args}
    return json.dumps(event, ensure_ascii=False, separators=(",", ":"))


def _metadata(
    data: ExportData, doctor: pl.DataFrame, gpu: pl.DataFrame, threads: pl.DataFrame, ranges: pl.DataFrame
) -> list[str]:
    """process_name, process_sort_index, thread_name and thread_sort_index events: nsys-doctor's tracks first, then
    the GPUs (streams in order), then the host processes (main thread first, then by thread id)."""
    out = [
        _meta("process_name", DOCTOR_PID, 0, {"name": "nsys-doctor"}),
        _meta("process_sort_index", DOCTOR_PID, 0, {"sort_index": 0}),
    ]
    names = {v: k for k, v in DOCTOR_THREADS.items()}
    for track, lane in doctor.select("track", "lane").unique().sort(["track", "lane"]).iter_rows():
        tid = lane * (1 << LANE_SHIFT) + track
        out.append(
            _meta("thread_name", DOCTOR_PID, tid, {"name": names[track] + (f" (overlap {lane})" if lane else "")})
        )
        out.append(_meta("thread_sort_index", DOCTOR_PID, tid, {"sort_index": track * 256 + lane}))
    streams = gpu.select("deviceId", "streamId", "lane").unique().sort(["deviceId", "streamId", "lane"])
    for dev in streams["deviceId"].unique().sort().to_list():
        pid = GPU_PID_BASE + 1 + dev
        name = data.devices.get(dev)
        label = "GPU ?" if dev == UNKNOWN_DEVICE else f"GPU {dev}" + (f": {name}" if name else "")
        out.append(_meta("process_name", pid, 0, {"name": label}))
        out.append(_meta("process_sort_index", pid, 0, {"sort_index": 2 + dev}))
        for _, stream, lane in streams.filter(pl.col("deviceId") == dev).iter_rows():
            tid = lane * (1 << LANE_SHIFT) + stream
            out.append(
                _meta("thread_name", pid, tid, {"name": f"Stream {stream}" + (f" (overlap {lane})" if lane else "")})
            )
            out.append(_meta("thread_sort_index", pid, tid, {"sort_index": stream * 256 + lane}))
    pids = pl.concat([threads["pid"], ranges["pid"]]).unique().sort().to_list()
    for rank, pid in enumerate(pids):
        out.append(_meta("process_name", pid, 0, {"name": data.processes.get(pid) or f"Process {pid}"}))
        out.append(_meta("process_sort_index", pid, 0, {"sort_index": 1000 + rank}))
        tids = sorted(threads.filter(pl.col("pid") == pid)["tid"].to_list(), key=lambda t: (t != pid, t))
        for i, tid in enumerate(tids):
            out.append(_meta("thread_name", pid, tid, {"name": data.threads.get((pid, tid)) or f"Thread {tid}"}))
            out.append(_meta("thread_sort_index", pid, tid, {"sort_index": i}))
        for lane in ranges.filter(pl.col("pid") == pid)["lane"].sort().to_list():
            tid = NVTX_LANE_TID + lane
            out.append(_meta("thread_name", pid, tid, {"name": "NVTX start/end" + (f" ({lane + 1})" if lane else "")}))
            out.append(_meta("thread_sort_index", pid, tid, {"sort_index": len(tids) + lane}))
    return out


# ------------------------------------------------------------------------------------------------ writing


def _x_line(layer: Layer, origin: int) -> pl.Expr:
    """A complete event ("ph":"X") per row of the layer's frame, starting with the comma that separates it."""
    return pl.concat_str(
        [
            pl.lit(f',{{"ph":"X","cat":{json.dumps(layer.cat)},"name":'),
            layer.name,
            pl.lit(',"pid":'),
            pl.col("pid").cast(pl.Utf8),
            pl.lit(',"tid":'),
            pl.col("tid").cast(pl.Utf8),
            pl.lit(',"ts":'),
            micros(pl.col("start") - origin),
            pl.lit(',"dur":'),
            micros(pl.col("end") - pl.col("start")),
            pl.lit(',"args":'),
            layer.args,
            pl.lit("}"),
        ]
    ).alias("line")


def _flow_line(ph: str, origin: int) -> pl.Expr:
    end = "s" if ph == "s" else "f"
    bind = ',"bp":"e"' if ph == "f" else ""
    return pl.concat_str(
        [
            pl.lit(f',{{"ph":"{ph}"{bind},"cat":"launch","name":"launch","id":'),
            pl.col("id").cast(pl.Utf8),
            pl.lit(',"pid":'),
            pl.col(f"{end}_pid").cast(pl.Utf8),
            pl.lit(',"tid":'),
            pl.col(f"{end}_tid").cast(pl.Utf8),
            pl.lit(',"ts":'),
            micros(pl.col(f"{end}_ts") - origin),
            pl.lit("}"),
        ]
    ).alias("line")


def _write_lines(fh: IO[bytes], df: pl.DataFrame, line: pl.Expr, chunk: int) -> int:
    """Write one event line per row of ``df`` (``line``, evaluated ``chunk`` rows at a time)."""
    for off in range(0, df.height, chunk):
        part = df.slice(off, chunk).select(line)
        part.write_csv(fh, include_header=False, quote_style="never", line_terminator="\n")
    return df.height


@dataclass(frozen=True)
class PerfettoSummary:
    """What ``write_perfetto`` wrote: events per category (metadata, nsys-doctor, kernel, memcpy, memset, graph,
    cuda_api, nvtx, flow) and the number of GPU streams that needed overlap lanes."""

    events: dict[str, int]
    overlapping_streams: int


def write_perfetto(
    data: ExportData, fh: IO[bytes], *, flows_on: bool = True, demangled: bool = False, chunk: int = CHUNK_ROWS
) -> PerfettoSummary:
    """Write ``data`` to ``fh`` as Chrome trace-event JSON (``{"traceEvents": [...], "displayTimeUnit": "ns"}``),
    the same bytes for the same data. ``flows_on``: arrows from CUDA API calls to their GPU work. ``demangled``:
    kernel slices named by demangled names (default: short names; the operation family is in the arguments)."""
    from .. import __version__

    doctor = _doctor_layer(data)
    gpu_layers, gpu = _gpu_layers(data, demangled)
    host_layers, threads, ranges = _host_layers(data)
    layers = [doctor, *gpu_layers, *host_layers]
    starts = [int(ly.frame["start"].min()) for ly in layers if ly.frame.height]  # type: ignore[arg-type]
    origin = min(0, *starts) if starts else 0  # the trace's own clock, shifted only if something starts before 0
    meta = _metadata(data, doctor.frame, gpu, threads, ranges)

    fh.write(b'{"traceEvents":[\n')
    fh.write((",\n".join(meta) + "\n").encode("utf-8"))
    counts: dict[str, int] = {"metadata": len(meta)}
    for ly in layers:
        counts[ly.cat] = counts.get(ly.cat, 0) + _write_lines(fh, ly.frame, _x_line(ly, origin), chunk)
    counts["flow"] = 0
    if flows_on:
        fl = flows(gpu, data.api)
        _write_lines(fh, fl, _flow_line("s", origin), chunk)
        _write_lines(fh, fl, _flow_line("f", origin), chunk)
        counts["flow"] = 2 * fl.height
    other = {
        "generator": f"nsys-doctor {__version__}",
        "source": data.source,
        "window": data.window,
        "clock": "ts and dur in microseconds of the trace's clock (nanoseconds since the capture began)"
        + (f", shifted by {-origin} ns" if origin else ""),
        "events": counts,
    }
    fh.write(b'],"displayTimeUnit":"ns","otherData":')
    fh.write(json.dumps(other, ensure_ascii=False, separators=(",", ":")).encode("utf-8") + b"}\n")
    busy = gpu.filter(pl.col("lane") > 0).select("deviceId", "streamId").unique().height
    return PerfettoSummary(counts, busy)
