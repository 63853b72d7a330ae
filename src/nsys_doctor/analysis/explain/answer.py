"""The whole answer: the ``Explanation`` and ``explain``, which puts the sections and findings together."""

from __future__ import annotations

from dataclasses import dataclass, field, replace

from ...trace.pasted import PastedText
from ...units import pct
from ..diagnosis import FAMILY_ADVICE, Target, conclude
from ..findings import Finding
from ..ops import OpRule
from .cannot_tell import INTERPRETED, partial_why, what_cannot_tell
from .findings import explain_findings
from .sections import (
    DIRECTION_WORDS,
    api_section,
    graph_section,
    kernels_and_families,
    memory_section,
    nccl_section,
    nvtx_section,
)
from .tables import kernel_stats, num

"""The capture that answers what a pasted summary cannot; ``nsys-doctor report run.sqlite`` then reads it."""
COPY_SHARE_ACTION = 0.3  # copies this share of GPU time (kernels + copies) get their own next action


@dataclass(frozen=True)
class Explanation:
    source: dict[str, object]
    kernels: list[dict[str, object]]
    families: list[dict[str, object]]
    api: dict[str, object]
    memory: dict[str, object]
    nccl: dict[str, object]
    graphs: dict[str, object]
    nvtx: dict[str, object]
    findings: list[Finding]
    diagnosis: Target
    next_actions: list[str]
    cannot_tell: list[str]
    notes: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, object]:
        """The JSON payload of `explain` (docs/report-json.md); report/serialize.py adds the envelope."""
        return {
            "source": self.source,
            "findings": [f.to_dict() for f in self.findings],
            "kernels": self.kernels,
            "families": self.families,
            "api": self.api,
            "memory": self.memory,
            "nccl": self.nccl,
            "graphs": self.graphs,
            "nvtx": self.nvtx,
            "diagnosis": self.diagnosis,
            "next_actions": self.next_actions,
            "cannot_tell": self.cannot_tell,
            "notes": self.notes,
        }


def explain(parsed: PastedText, rules: list[OpRule], top: int = 10) -> Explanation:
    """Explain pasted nsys stats tables: kernels and families, host overhead, copies, NCCL, graphs, findings,
    the diagnosis and next actions, and what the text cannot tell.

    Tables whose numbers could not be read are listed, never interpreted. Partial tables (rows cut, no header,
    shares short of 100%) are used for what their rows show; nothing is concluded from what they lack."""
    everything = parsed
    parsed = replace(parsed, tables=[t for t in parsed.tables if t.readable])
    stats, kernel_table, kernel_source = kernel_stats(parsed)
    kernel_complete = kernel_table is not None and not kernel_table.partial
    instances = sum(s.count or 0 for s in stats)
    kernels_all, fam, kernel_ns, share_of = kernels_and_families(stats, rules, 10_000)
    api = api_section(parsed)
    memory = memory_section(parsed, kernel_ns, kernel_complete)
    nccl = nccl_section(kernels_all, fam)
    graphs = graph_section(api, kernel_table, instances, kernel_complete)
    nvtx = nvtx_section(parsed)
    findings = explain_findings(parsed, api, memory, graphs, kernels_all, kernel_ns, instances, nvtx, kernel_complete)
    partial = [t for t in parsed.tables if t.partial and t.kind in INTERPRETED]

    families = [
        {
            "family": r["family"],
            "category": r["category"],
            "share": round(r["share"], 6),
            "total_ns": r["total"],
            "count": r["count"],
            "kernels": r["kernels"],
        }
        for r in fam.iter_rows(named=True)
    ]
    if fam.height:
        target, actions = conclude(fam, findings, None)  # type: ignore[arg-type]
        if "why" in target:
            target["why"] = str(target["why"]).replace(" in the window", " in the pasted kernel table")
        if kernel_table is not None and kernel_table.partial and target.get("kind") == "family":
            target["kernel_table_partial"] = True
            target["why"] = f"{target['why']}; the kernel table is partial ({partial_why(kernel_table)})"
    else:
        target = {
            "kind": "need-data",
            "why": "the text has no kernel table, so where GPU time goes is unknown"
            + ("; what the host does is read from the CUDA API table" if api else ""),
        }
        actions = [f"{f.title}: {f.action}." for f in findings if f.severity in ("critical", "warning")]
        actions.append("Paste the kernel summary (nsys stats -r cuda_gpu_kern_sum REPORT.nsys-rep) for a diagnosis.")
    if memory and graphs.get("inferred_trace") == "graph" and memory.get("share_of_gpu_time") is not None:
        memory["share_of_gpu_time"] = None  # the graphs' kernel time is missing from the kernel table
        memory["note"] = "no share of GPU time: the kernels inside CUDA graphs are missing from the kernel table"
    copy_share = memory.get("share_of_gpu_time") if memory else None
    if isinstance(copy_share, float) and copy_share >= COPY_SHARE_ACTION:
        text, first = _copy_action(memory, copy_share)
        actions.insert(0 if first else len(actions), text)
        actions = [a for a in actions if not a.startswith("No problem stands out")]
        target["copies"] = {
            "share_of_gpu_time": copy_share,
            "dominant": memory.get("dominant"),
            "look_like": memory.get("copies_look_like"),
        }
    nccl_share = num(nccl.get("share")) if nccl else None
    family_target = target.get("kind") == "family" and target.get("family") != "communication"
    if family_target and nccl_share is not None and nccl_share >= 0.2:
        advice = FAMILY_ADVICE["communication"]
        actions.append(f"Communication (NCCL) takes {pct(nccl_share)} of kernel time: {advice}.")
    if partial and any(a.startswith("No problem stands out") for a in actions):
        # "nothing found" is a conclusion from absence: only whole tables support it
        names = ", ".join(f"{t.report or t.kind} (line {t.line})" for t in partial)
        actions = [a for a in actions if not a.startswith("No problem stands out")]
        actions.append(
            f"Nothing stands out in the rows shown, but {names} {'is' if len(partial) == 1 else 'are'} partial: "
            "paste the whole tables before concluding there is no problem."
        )

    interpreted = [t for t in parsed.tables if t.kind in INTERPRETED]
    source = {
        "path": parsed.source,
        "lines": parsed.lines,
        "tables": [t.describe() for t in everything.tables],
        "kernel_table": kernel_source,
        "kernel_shares_of": share_of,
        "kernel_time_ns": kernel_ns or None,
        "kernel_instances": int(instances) if stats else None,
        "complete": {
            "kernels": kernel_complete if kernel_table is not None else None,
            "api": api.get("complete") if api else None,
            "memory": memory.get("complete") if memory else None,
        },
        "partial_tables": [
            {"line": t.line, "report": t.report or t.kind, "why": partial_why(t)}
            for t in everything.tables
            if t.partial
        ],
        "unreadable_tables": [
            {"line": t.line, "report": t.report or t.kind, "columns": t.unreadable}
            for t in everything.tables
            if not t.readable
        ],
        "scope": "whole run" if parsed.whole_run else "window",
        "scope_evidence": parsed.scope[:5],
    }
    notes = list(parsed.notes[:10])
    for t in everything.tables:
        if not t.readable:
            header, why = next(iter(t.unreadable.items()))
            notes.append(
                f"the {t.report or t.kind} table at line {t.line} is not interpreted: its column {header!r} cannot be "
                f"read without guessing ({why})"
            )
    for kind, what in (("kernels", "kernel"), ("api", "CUDA API"), ("mem_time", "memory")):
        tables = parsed.of_kind(kind)
        if len(tables) > 1:
            others = ", ".join(str(t.line) for t in tables[1:])
            notes.append(
                f"{len(tables)} {what} tables (before/after?): the first one (line {tables[0].line}) is explained; "
                f"the others start at line {others}: paste them alone to explain them"
            )
    if not interpreted and parsed.tables:
        notes.insert(0, "tables were found, but none of them is a report explain reads (kernel, API, memory, NVTX)")
    notes += parsed.refused[:5]
    unmapped = [r["name"] for r in kernels_all if not r["mapped"]][:10]
    if unmapped:
        notes.append(f"{len(unmapped)} of the top kernels match no op rule (add rules with --ops FILE)")
    return Explanation(
        source=source,
        kernels=kernels_all[: max(top, 1)],
        families=families,
        api=api,
        memory=memory,
        nccl=nccl,
        graphs=graphs,
        nvtx=nvtx,
        findings=findings,
        diagnosis=target,
        next_actions=actions,
        cannot_tell=what_cannot_tell(parsed, kernel_table, api, memory, graphs, nccl, nvtx),
        notes=notes,
    )


def _copy_action(memory: dict[str, object], copy_share: float) -> tuple[str, bool]:
    """The next action for heavy copies, and whether it goes first. Advice against per-step copies only when the
    copies look per-step; a whole-run table of loading copies gets the steady-state capture instead."""
    dom = DIRECTION_WORDS.get(str(memory.get("dominant", "other")).removeprefix("unified-"), "copies")
    least = "at least " if memory.get("share_at_least") else ""
    head = f"Memory copies take {least}{100 * copy_share:.0f}% of GPU time (kernels + copies), {dom} copies most"
    look, why = memory.get("copies_look_like"), memory.get("copies_why")
    steady = (
        "capture only steady-state inference (--capture-range=cudaProfilerApi) or use nsys stats --filter-nvtx "
        "RANGE to see the copies inside steps"
    )
    if look == "per-step":
        return f"{head} ({why}): {FAMILY_ADVICE['memcpy']}.", copy_share >= 0.5
    if look == "loading":
        return f"{head}, but {why}: that is start-up, not per-step work; {steady} before working on copies.", False
    return f"{head}; {why}: {steady} before working on copies.", False
