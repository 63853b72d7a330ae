"""One object per trace: its tables, window, run structure and results, each computed once and only when asked.

``TraceSession`` is what every command builds on (report, diff, scaling, baselines, roofline, the per-rank
analyses) so that they all read the same tables and the same answer about the run's structure. It only caches and
wires: the analyses stay pure functions of frames (``analysis/``), the renderers take their results (``report/``).

    with TraceSession.open("run.sqlite") as t:
        t.structure.kind, t.window, t.steps()
        d = t.diagnose(top=10)
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .errors import UsageError

if TYPE_CHECKING:
    import polars as pl

    from .analysis.compare import Profile
    from .analysis.diagnosis import Diagnosis, Target
    from .analysis.findings import Finding
    from .analysis.model import Model
    from .analysis.ops import OpRule
    from .analysis.phases import Steps, Window
    from .analysis.plots import PlotData
    from .analysis.roofline import MapRule, Roofline
    from .analysis.structure import RunStructure
    from .export_data import ExportData
    from .stats import StatsTable
    from .trace import Trace
    from .trace.meta import TraceInfo
    from .trace.ranks import RankSpec
    from .trace.tables import TraceFrames


@dataclass(frozen=True)
class WindowChoice:
    """What part of the run to analyze, as the command-line options say it (at most one of them).

    None of them: the measured requests of the run's structure (loading, compilation and warm-up left out)."""

    window: str | None = None  # --window START/END
    filter_nvtx: str | None = None  # --filter-nvtx RANGE[@DOMAIN][/N]
    whole_trace: bool = False  # --whole-trace
    request: int | None = None  # --request N (0-based, warm-up requests included)
    warmup: int | None = None  # --warmup N: the first N requests are warm-up, the others measured

    def __post_init__(self) -> None:
        options = ("--window", "--filter-nvtx", "--whole-trace", "--request")
        values = (self.window, self.filter_nvtx, self.whole_trace, self.request is not None)
        given = [o for o, v in zip(options, values, strict=True) if v]
        if len(given) > 1:
            raise UsageError(f"{', '.join(given[:-1])} and {given[-1]} exclude each other", "give at most one")
        if self.warmup is not None:
            if self.warmup < 0:
                raise UsageError(
                    f"--warmup {self.warmup}: a number of requests is 0 or more", "give --warmup N, N >= 0"
                )
            if given and given[0] != "--request":
                raise UsageError(
                    f"--warmup and {given[0]} exclude each other",
                    "--warmup chooses the measured requests; a window of your own replaces them",
                )


class TraceSession:
    """One trace (or one rank of it), read once: frames, trace facts, structure, window and steps are computed
    lazily and cached; the analyses (``diagnose``, ``roofline``, ``profile``, ``rank_summary``, ``stats``) reuse
    them.

    ``rules`` are the operation rules (default: the shipped ones); ``rank`` restricts everything to one rank's
    process and device; ``frames`` may be given when already read."""

    def __init__(
        self,
        trace: Trace,
        rules: list[OpRule] | None = None,
        choice: WindowChoice | None = None,
        rank: RankSpec | None = None,
        frames: TraceFrames | None = None,
    ) -> None:
        self.trace = trace
        self.choice = choice or WindowChoice()
        self.rank = rank
        self._rules = rules
        self._owns_trace = False
        if frames is not None:
            self.__dict__["frames"] = frames
        self._diagnoses: dict[int, Diagnosis] = {}

    @classmethod
    def open(
        cls,
        path: str | os.PathLike[str],
        rules: list[OpRule] | None = None,
        choice: WindowChoice | None = None,
        rank: RankSpec | None = None,
    ) -> TraceSession:
        """Open the trace at ``path`` (``.sqlite``, or ``.nsys-rep`` exported on the way); the session closes it."""
        from .trace import Trace

        s = cls(Trace.open(path), rules, choice, rank)
        s._owns_trace = True
        return s

    def close(self) -> None:
        if self._owns_trace:
            self.trace.close()

    def __enter__(self) -> TraceSession:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @property
    def path(self) -> Path:
        return self.trace.path

    # ------------------------------------------------------------------------------------------------ tables

    @cached_property
    def rules(self) -> list[OpRule]:
        from .loaders import load_rules

        return self._rules if self._rules is not None else load_rules()

    @cached_property
    def info(self) -> TraceInfo:
        """What the trace is: nsys version, GPUs, row counts (counted when first asked for, while the session is
        open), capture settings, nsys's own diagnostics."""
        from .trace.meta import describe

        return describe(self.trace, counted=False)  # counted when asked for: a report needs no count

    @cached_property
    def frames(self) -> TraceFrames:
        """The activity tables as typed frames (the rank's process and device only, with ``rank``)."""
        from .trace.ranks import rank_frames
        from .trace.tables import TraceFrames

        return rank_frames(self.trace, self.rank) if self.rank is not None else TraceFrames(self.trace)

    @cached_property
    def launched(self) -> pl.DataFrame:
        """Kernels with their launch call's time (``l_start``) where the runtime table has it."""
        from .analysis.phases import launched_kernels

        return launched_kernels(self.frames.kernels, self.frames.api)

    @property
    def capture_range(self) -> str | None:
        value = self.info.capture.get("capture_range")
        return value if isinstance(value, str) else None

    @cached_property
    def gpu(self) -> dict[str, Any]:
        """The GPU the analyzed kernels ran on: the rank's device, else the one that ran most kernels."""
        gpus = self.info.gpus
        if not gpus:
            return {}
        k = self.frames.kernels
        if self.rank is not None:
            used = set(k["deviceId"].drop_nulls().to_list())
            return next((g for g in gpus if g.get("deviceId") in used), gpus[0])
        if len(gpus) > 1 and k.height:
            dev = k.group_by("deviceId").len().sort(["len", "deviceId"], descending=[True, False])["deviceId"][0]
            return next((g for g in gpus if g.get("deviceId") == dev), gpus[0])
        return gpus[0]

    # ------------------------------------------------------------------------------- window and run structure

    @cached_property
    def chosen_window(self) -> Window | None:
        """The window the options ask for (None: the run structure decides)."""
        c = self.choice
        return resolve_window(self.trace, self.frames, c.window, c.filter_nvtx, c.whole_trace, self.rank)

    @cached_property
    def _analysis(self) -> tuple[RunStructure, Window, Steps]:
        from .analysis.phases import analyze_structure

        f = self.frames
        return analyze_structure(
            f.kernels,
            f.api,
            f.memcpy,
            f.nvtx,
            self.capture_range,
            self.rules,
            self.chosen_window,
            self.launched,
            f.graph_launches,
            self.choice.request,
            self.choice.warmup,
        )

    @property
    def structure(self) -> RunStructure:
        """The run's structure: kind, phases, requests (warm-up marked), steps, and where each fact came from."""
        return self._analysis[0]

    @property
    def window(self) -> Window:
        """The analysis window (by default the measured requests)."""
        return self._analysis[1]

    @property
    def step_set(self) -> Steps:
        """The window's steps (prefill, decode, iterations) with where they came from (``source``, ``notes``)."""
        return self._analysis[2]

    # ---------------------------------------------------------------------------------------------- analyses

    def trace_facts(self) -> dict[str, object]:
        """The ``trace`` section of a diagnosis: where the trace came from and how it was captured."""
        info, gpu = self.info, self.gpu
        out: dict[str, object] = {
            "path": str(self.trace.path),
            "nsys_version": info.product_version,
            "schema_version": info.schema_version,
            "gpu": gpu.get("name"),
            "gpu_peak_bandwidth_Bps": gpu.get("memoryBandwidth"),
            "gpu_sms": gpu.get("smCount"),
            "gpus": len(info.gpus),
            "cuda_graph_trace": info.capture.get("cuda_graph_trace"),
            "capture_range": info.capture.get("capture_range"),
            "command": info.capture.get("command"),
            "missing": info.missing,
        }
        if self.rank is not None:
            r = self.rank
            out["rank"] = {"rank": r.rank, "pid": r.pid, "device": r.device, "source": r.source}
        return out

    def diagnose(self, top: int = 10) -> Diagnosis:
        """Where GPU time goes in the window and what to optimize next (cached per ``top``)."""
        if top not in self._diagnoses:
            from .analysis.diagnosis import diagnose

            f, info = self.frames, self.info
            d = diagnose(
                f.kernels,
                f.api,
                f.memcpy,
                f.gpu_parts,
                f.nvtx,
                f.graph_launches.height,
                info.capture,
                info.diagnostics,
                f.overhead,
                self.trace_facts(),
                self.rules,
                window=self.window,
                top=top,
                prepared=(self.structure, self.window, self.step_set, self.launched),
            )
            self._diagnoses[top] = self.with_measurements(d)
        return self._diagnoses[top]

    # ------------------------------------------------------------------- optional capture data (analysis/metrics/)

    @property
    def _device(self) -> int | None:
        """The analyzed GPU: the rank's device, else the one that ran most kernels (``gpu``)."""
        if self.rank is not None and self.rank.device is not None:
            return int(self.rank.device)
        dev = self.gpu.get("deviceId")
        return int(dev) if isinstance(dev, int) else None

    def with_measurements(self, d: Diagnosis) -> Diagnosis:
        """A diagnosis of this session with what the optional capture data measures (``gpu_metrics``, ``memory``
        with its ``device-memory-growth`` finding, ``callchains``) and the runnable ``next_commands``; the target's
        ``measured`` line when GPU metrics confirm or refute what the target family is bound by."""
        from dataclasses import replace

        import polars as pl

        from .analysis import metrics as am
        from .trace import metrics as tm
        from .trace.tables import GPU_OP_KINDS

        f, w, trace = self.frames, self.window, self.trace
        gpu_metrics = memory = callchains = None
        target = d.target
        extra: list[Finding] = []
        device = self._device
        steps = self.step_set.table
        in_window = (pl.col("start") >= w.start) & (pl.col("start") <= w.end)
        on_device = pl.col("deviceId") == device if device is not None else pl.lit(True)
        samples = tm.gpu_metric_samples(trace, device)
        if samples is not None and samples.frame.height and d.kernel_families is not None:
            from .analysis.ops import keyed_like

            k = f.kernels.filter(in_window & on_device)
            k = k.join(keyed_like(d.kernel_families, k), on="name", how="left")
            kind = pl.Enum(GPU_OP_KINDS)
            parts = f.gpu_parts
            ops = pl.concat(  # the copies and memsets alone: never a sorted copy of every kernel
                [parts[op].with_columns(pl.lit(op, kind).alias("kind")) for op in ("memcpy", "memset")]
            ).sort("start")
            ops = ops.filter(in_window & on_device)
            top = d.kernels.select("name", "label", "family") if d.kernels.height else d.kernels
            gpu_metrics = am.gpu_metrics_summary(
                samples.frame, samples.names, samples.gpu, w, k, ops, steps, top, d.target
            )
            verdict = (gpu_metrics or {}).get("verdict")
            if isinstance(verdict, dict) and d.target.get("kind") == "family":
                target = {**d.target, "measured": verdict["text"]}
        events = tm.memory_usage_events(trace)
        if events is not None and events.height:
            failures = tm.allocation_failures(trace)
            if self.rank is not None and self.rank.pid is not None:
                events = events.filter(pl.col("pid") == self.rank.pid)
                failures = failures.filter(pl.col("pid") == self.rank.pid)
            requests: list[dict[str, object]] = [
                {"index": r.index, "start": r.start, "end": r.end, "warmup": r.warmup} for r in self.structure.requests
            ]
            ends = [w.end, *(int(x.max()) for x in (f.kernels["end"], f.api["end"]) if x.len())]  # type: ignore[arg-type]
            word = {"llm-decode": "decode step", "iterations": "iteration", "llm-prefill": "prefill pass"}
            memory, finding = am.memory_summary(
                events,
                device,
                w,
                steps,
                requests,
                self.gpu.get("totalMemory"),
                failures,
                max(ends),
                word.get(self.structure.kind, "step"),
            )
            if finding is not None and all(x.id != finding.id for x in d.findings):
                extra.append(finding)
        chains = tm.api_callchains(trace)
        if chains is not None:
            calls = chains.calls
            if self.rank is not None and self.rank.pid is not None:
                calls = calls.filter(pl.col("pid") == self.rank.pid)
            callchains = am.callchain_summary(calls, chains.frames, w)
        argv, cwd = tm.capture_argv(trace)
        command = self.info.capture.get("command")
        next_commands = am.ncu_commands(
            am.target_kernel(target, d.kernels),
            self.launched,
            w,
            argv,
            command if isinstance(command, str) else None,
            cwd,
            self.info.capture,
        )
        d = replace(
            d,
            target=target,
            gpu_metrics=gpu_metrics,
            memory=memory,
            callchains=callchains,
            next_commands=tuple(next_commands),
        )
        return d.with_findings(extra) if extra else d

    def roofline(
        self,
        model: Model,
        peak_bw: float | None = None,
        peak_flops: float | None = None,
        mapping: list[MapRule] | None = None,
        tokens: int | None = None,
    ) -> Roofline:
        """Achieved bandwidth and FLOP/s per linear-layer shape of ``model`` in the window's steps."""
        from .analysis.roofline import resolve_peaks, roofline
        from .trace.meta import prompt_length

        gpu = self.gpu or None
        peaks = resolve_peaks(gpu, model.activation, peak_bw, peak_flops)
        command = self.info.capture.get("command")
        n_tokens: int | None
        if tokens is not None:
            n_tokens, source = tokens, "--tokens"
        else:
            n_tokens = prompt_length(command if isinstance(command, str) else None)
            source = "the prompt length on the captured command line" if n_tokens else "unknown (pass --tokens N)"
        facts: dict[str, object] = {
            "path": str(self.trace.path),
            "nsys_version": self.info.product_version,
            "gpu": peaks.gpu,
            "command": command,
        }
        return roofline(
            self.frames.kernels,
            self.frames.api,
            self.step_set,
            self.rules,
            model,
            peaks,
            mapping,
            n_tokens,
            source,
            lk=self.launched,
            trace=facts,
            window=self.window.to_dict(),
        )

    def profile(self, source: str | None = None, context: int | None = None, last: bool = False) -> Profile:
        """The per-step profile ``diff``, ``scaling`` and baselines compare (refused for graph-level captures).

        ``last``: the profile is the last thing asked of this session (a command that compares profiles builds
        one per trace, then closes it): the session lets go of its frames first, keeping only the columns the
        profile reads (at two million kernels, a third of the frames); asked for more, it reads the trace again."""
        from .analysis.compare import PROFILE_COLUMNS, build_profile
        from .analysis.ops import classify
        from .trace.meta import workload_shape

        f = self.frames
        if f.graph_launches.height:  # graph-level records: the graphs' kernels are missing
            raise UsageError(
                f"{self.trace.path.name} was captured with --cuda-graph-trace=graph: the kernels inside CUDA graphs "
                "are missing, so its per-step kernel time cannot be compared",
                "recapture it with --cuda-graph-trace=node",
            )
        window, step_set, launched = self.window, self.step_set, self.launched
        api, memcpy, memset = f.api, f.memcpy, f.memset
        if last:  # the session lets go of its frames: only the columns selected here stay alive
            cols = PROFILE_COLUMNS
            launched, api = launched.select(cols["launched"]), api.select(cols["api"])
            memcpy, memset = memcpy.select(cols["memcpy"]), memset.select(cols["memset"])
            del f
            for cached in ("frames", "launched", "_analysis"):  # read again if asked again
                self.__dict__.pop(cached, None)
        ops = classify(launched["name"].unique().to_list(), self.rules)
        command = self.info.capture.get("command")
        prompt, output = workload_shape(command if isinstance(command, str) else None)
        return build_profile(
            source if source is not None else str(self.trace.path),
            launched,
            api,
            memcpy,
            memset,
            window,
            step_set,
            ops,
            context if context is not None else prompt,
            output,
        )

    def rank_summary(self) -> Any:
        """This rank's collectives and steps for the cross-rank analysis (``nccl``), in this session's window."""
        import polars as pl

        from .analysis.nccl import LONG_HOST_NS, summarize_rank
        from .trace.ranks import long_os_calls
        from .trace.tables import gpus

        spec = self.rank
        if spec is None:
            raise UsageError("a collective summary needs a rank", "open the session with rank=RankSpec(...)")
        f = self.frames
        devices = sorted(set(f.kernels["deviceId"].drop_nulls().to_list()))
        table = gpus(self.trace)
        names = table.filter(table["deviceId"].is_in(devices))["name"].to_list() if devices else []
        w, steps = self.window, self.step_set
        info = {
            **spec.to_dict(),
            "label": spec.label,
            "devices": devices,
            "gpu": names[0] if names else None,
            "window": w.to_dict(),
            "step_source": steps.source,
            "steps": steps.count,
            "cuda_graph_trace": self.info.capture.get("cuda_graph_trace"),
            "graph_launches": f.graph_launches.height,
        }
        # collectives after the steady state begins (warm-up left out, as in report); the end stays open, since a
        # step's GPU work can finish after its host range
        in_window = f.kernels.filter(pl.col("start") >= w.start)
        os_calls = long_os_calls(self.trace, spec, LONG_HOST_NS)
        return summarize_rank(
            spec.rank, in_window, f.api, f.nvtx, steps.table, os_calls, spec.offset_ns, info, self.rules
        )

    def stats_table(self, report: str, filter_time: str | None = None, filter_nvtx: str | None = None) -> StatsTable:
        """One ``nsys stats`` report or ``nsys analyze`` rule (``cuda_gpu_kern_sum``, ``nvtx_sum:base``, ...) as nsys
        computes it, with its columns' unit tags (what the nsys-format renderers take)."""
        from .stats import ReportContext, parse_report_arg, run_report

        request = parse_report_arg(report)
        from .trace.window import event_filter

        ctx = ReportContext(self.trace, event_filter(self.trace, filter_time, filter_nvtx))
        return run_report(ctx, request)

    def stats(self, report: str, filter_time: str | None = None, filter_nvtx: str | None = None) -> pl.DataFrame:
        """``stats_table`` as a polars DataFrame: nsys's column names with their base unit (``Total Time (ns)``,
        ``Bytes (B)``, ``Time (%)``), numbers as numbers (int nanoseconds, bytes), one row per nsys row. A report
        that cannot run on this trace (nsys prints SKIPPED) raises ``UsageError`` saying why."""
        return stats_frame(self.stats_table(report, filter_time, filter_nvtx))

    # ------------------------------------------------------------------------------------ frames of the window

    def kernels(self, blocks: bool = False) -> pl.DataFrame:
        """The window's kernels, one row each: start, end, dur (ns), name, short, grid, device, stream, and the
        operation each maps to (family, category, op, match), in start order (ties by correlation id, then as
        recorded). ``blocks``: with each kernel's block size too (blockX, blockY, blockZ; one more read)."""
        import polars as pl

        from .analysis.ops import classify

        w = self.window
        k = self.frames.kernels
        if blocks:
            from .trace.extras import with_block_sizes

            k = with_block_sizes(self.trace, k)
        # names as text here (categoricals in the frames, to keep them small)
        k = k.filter((pl.col("start") >= w.start) & (pl.col("start") <= w.end))
        k = k.with_columns(pl.col("name", "short").cast(pl.String))
        names = k.group_by("name").agg(pl.col("short").first()).sort("name")
        ops = classify(names["name"].to_list(), self.rules, short_names=names["short"].to_list())
        k = k.join(
            ops.select("name", "family", "category", "op", "match"), on="name", how="left", maintain_order="left"
        )
        return k.sort(["start", "correlationId"], maintain_order=True)

    def api(self) -> pl.DataFrame:
        """The window's CUDA runtime and driver API calls: start, end, dur (ns), name, pid, tid, correlationId."""
        import polars as pl

        from .trace.tables import call_column

        w = self.window
        a = self.frames.api
        a = a.filter((pl.col("start") >= w.start) & (pl.col("start") <= w.end)).sort(["start", "correlationId"])
        return a.with_columns(pl.col("name").cast(pl.String), call_column(a, "pid"), call_column(a, "tid"))

    def steps(self) -> pl.DataFrame:
        """The window's steps, one row each: idx, kind (prefill, decode, iteration, step), start and end (host
        span), wall, gpu_time, kernels, launches, gpu_start, gpu_end."""
        return self.step_set.table

    def report(self, top: int = 10) -> Report:
        """The diagnosis of the window (``diagnose``) with its renderers: ``to_dict()``, ``to_markdown()``,
        ``to_text()``, and an HTML view in notebooks."""
        return Report(self.diagnose(top))

    def export_data(self) -> ExportData:
        """The window as the exports (``export --perfetto/--parquet``) write it: kernels with block sizes, API
        calls, copies, memsets, graph launches and NVTX ranges, with the requests, phases and steps found."""
        from .export_data import build_export_data

        return build_export_data(self)

    def plot_data(self) -> PlotData:
        """The series behind the HTML report's plots (steps, top-kernel histograms and pacing, GPU utilization)
        for the window; the top kernels are those of the largest diagnosis already made (else ``diagnose()``)."""
        from .analysis.plots import build_plot_data

        d, f = self.diagnose(max(self._diagnoses, default=10)), self.frames
        return build_plot_data(f.kernels, f.gpu_ops, f.api, self.window, self.step_set.table, d.kernels)


def stats_frame(table: StatsTable) -> pl.DataFrame:
    """A ``StatsTable`` as a DataFrame: column names carry the base unit, values stay as computed."""
    import polars as pl

    if table.skipped:
        raise UsageError(f"{table.report}: {table.skipped}", "this report needs data the trace does not hold")
    suffix = {"dur_ns": " (ns)", "ts_ns": " (ns)", "mem_B": " (B)", "thru_B": " (B/s)", "ratio_%": " (%)"}
    names = [c.label + suffix.get(c.unit, "") for c in table.columns]
    if not table.rows:
        return pl.DataFrame(schema={n: pl.Null for n in names})
    return pl.DataFrame(table.rows, schema=names, orient="row", infer_schema_length=None)


class Report:
    """A diagnosis with its renderers (what ``TraceSession.report()`` returns)."""

    def __init__(self, diagnosis: Diagnosis) -> None:
        self.diagnosis = diagnosis

    @property
    def findings(self) -> list[Finding]:
        return list(self.diagnosis.findings)

    @property
    def target(self) -> Target:
        return self.diagnosis.target

    @property
    def run(self) -> dict[str, object]:
        return self.diagnosis.run

    def to_dict(self) -> dict[str, object]:
        """The report's JSON object (``docs/report-json.md``), NaN cleaned as in ``report --format json``."""
        import json

        from .report.diagnosis_json import render_json

        out: dict[str, object] = json.loads(render_json(self.diagnosis))
        return out

    def to_markdown(self) -> str:
        from .report.diagnosis_text import render_markdown

        return render_markdown(self.diagnosis)

    def to_text(self, width: int = 140) -> str:
        from .report.diagnosis_text import render_terminal

        return render_terminal(self.diagnosis, width=width, color=False)

    def _repr_html_(self) -> str:
        from .report.html import render_fragment

        return render_fragment(self.diagnosis)

    def __repr__(self) -> str:
        run = self.diagnosis.run
        first = self.diagnosis.findings[0].id if self.diagnosis.findings else "none"
        return (
            f"<Report {self.diagnosis.trace.get('path')}: {run.get('kind')}, target "
            f"{self.diagnosis.target.get('family')}, first finding {first}>"
        )


def resolve_window(
    trace: Trace,
    frames: TraceFrames,
    window: str | None,
    filter_nvtx: str | None,
    whole_trace: bool,
    rank: RankSpec | None = None,
) -> Window | None:
    """The window the options ask for (None: let ``choose_window`` decide). With ``rank``, an NVTX range is looked
    up in that rank's process only."""
    from .analysis.phases import Window, data_extent
    from .trace.window import parse_filter_time, resolve_nvtx_filter

    if window:
        try:
            f = parse_filter_time(window)
        except UsageError as exc:
            raise UsageError(exc.message.replace("--filter-time", "--window"), exc.hint) from exc
        lo, hi = data_extent(frames.kernels, frames.api, [frames.memcpy])
        start, end = max(f.start, lo), min(f.end, hi)
        if end <= start:
            raise UsageError(
                f"--window {window} holds no events of this trace",
                f"its events span {lo / 1e9:.3f}s to {hi / 1e9:.3f}s (e.g. --window {lo / 1e9:.3f}s/{hi / 1e9:.3f}s)",
            )
        return Window(start, end, "user", f"--window {window}")
    if filter_nvtx:
        if rank is not None:
            from .trace.ranks import rank_filter

            f = rank_filter(trace, rank, None, filter_nvtx)
        else:
            f = resolve_nvtx_filter(trace, filter_nvtx)
        return Window(f.start, f.end, "user", f"NVTX range {filter_nvtx}")
    if whole_trace:
        lo, hi = data_extent(frames.kernels, frames.api, [frames.memcpy])
        return Window(lo, hi, "whole-trace", "--whole-trace")
    return None
