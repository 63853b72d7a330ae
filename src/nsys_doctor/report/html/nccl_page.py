"""The collectives' page: arrival skew and waiting per rank, matched collectives, findings."""

from __future__ import annotations

from ...analysis.nccl import NcclResult
from .charts import chart_rank_wait, chart_skew
from .page import page, section, sev_badge, table
from .svg import esc


def nccl_body(res: NcclResult) -> str:
    from ..nccl_text import nccl_tables, rank_line

    parts = [
        section(
            "Ranks",
            "<ul>" + "".join(f"<li>{esc(rank_line(r))}</li>" for r in res.ranks) + "</ul>",
            '<p class="cap">Times aligned by each trace\'s session start.</p>',
        ),
        section("Diagnosis", "<ul>" + "".join(f"<li>{esc(x)}</li>" for x in res.headline) + "</ul>"),
    ]
    if res.findings:
        rows = [
            [
                sev_badge(f.severity),
                f"<code>{esc(f.id)}</code>",
                f"<b>{esc(f.title)}</b>: {esc(f.summary)}<div class=action>→ {esc(f.action)}</div>",
            ]
            for f in res.findings
        ]
        parts.append(section("Findings", table(["severity", "id", "evidence and action"], rows)))
    if res.matched.height:
        parts.append(
            section(
                "Arrival skew per collective",
                chart_skew(res),
                '<p class="cap">Skew: latest start minus earliest start of one collective across ranks (time the '
                "early ranks wait). Transfer: its duration on the last rank to arrive (moving data).</p>",
            )
        )
    if res.ranks:
        parts.append(section("Waiting and moving per rank", chart_rank_wait(res)))
    for _key, title, header, rows in nccl_tables(res):
        numeric = [i > 0 and h not in ("cause", "late rank just before", "range") for i, h in enumerate(header)]
        parts.append(section(title, table(header, [[esc(c) for c in r] for r in rows], numeric)))
    if res.notes:
        parts.append(section("Notes", "<ul>" + "".join(f"<li>{esc(n)}</li>" for n in res.notes) + "</ul>"))
    return "".join(parts)


def render_nccl(res: NcclResult) -> str:
    """``nccl --format html``: the cross-rank analysis with skew per collective and waiting per rank."""
    body = f"<header><h1>nsys-doctor nccl: {len(res.ranks)} ranks</h1></header>\n" + nccl_body(res)
    return page(f"nsys-doctor nccl: {len(res.ranks)} ranks", body)
