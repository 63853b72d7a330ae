"""The page: inline CSS, the content security policy, sections, tables, figures and badges."""

from __future__ import annotations

from collections.abc import Sequence

from .svg import FONT, INK, MONO, MUTED, SEV_COLORS, esc

CSS = f"""
*{{box-sizing:border-box}}
body{{margin:0;background:#f8f9fa;color:{INK};font:14px/1.45 {FONT}}}
main{{max-width:1280px;margin:0 auto;padding:20px 24px 40px}}
h1{{font-size:22px;margin:0 0 6px}}
h2{{font-size:17px;margin:0 0 10px}}
h3{{font-size:13.5px;margin:0 0 4px;font-weight:600}}
section{{background:#fff;border:1px solid #dee2e6;border-radius:6px;padding:14px 18px;margin:14px 0}}
.meta{{color:#495057;margin:2px 0}}
.meta b{{color:{INK};display:inline-block;min-width:62px}}
.why{{font-size:15px;margin:0 0 8px}}
ol,ul{{margin:6px 0;padding-left:22px}} li{{margin:3px 0}}
table{{border-collapse:collapse;width:100%;font-size:13px;margin:4px 0}}
th,td{{padding:4px 8px;border-bottom:1px solid #f1f3f5;text-align:left;vertical-align:top}}
th{{background:#f1f3f5;font-weight:600;white-space:nowrap}}
td.n,th.n{{text-align:right;font-variant-numeric:tabular-nums;white-space:nowrap}}
code,.mono{{font-family:{MONO};font-size:12px}}
.name{{word-break:break-all}}
.nw{{white-space:nowrap}}
details summary{{cursor:pointer}}
.sev{{display:inline-block;padding:0 7px;border-radius:3px;font-size:11.5px;font-weight:600;color:#fff}}
{"".join(f".sev-{k}{{background:{v}}}" for k, v in SEV_COLORS.items())}
.action{{color:#495057;font-size:12.5px;margin-top:2px}}
.cap{{color:#495057;font-size:12.5px;margin:6px 0 0}}
.grid{{display:grid;grid-template-columns:repeat(auto-fill,minmax(370px,1fr));gap:14px 18px}}
figure{{margin:0;min-width:0}}
figure h3{{overflow:hidden;text-overflow:ellipsis;white-space:nowrap}}
.pass{{color:#2b8a3e;font-weight:700}} .fail{{color:#c92a2a;font-weight:700}}
pre{{background:#f8f9fa;border:1px solid #e9ecef;padding:10px;overflow-x:auto;font:12px/1.4 {MONO}}}
footer{{color:{MUTED};font-size:12px;text-align:center}}
"""

CSP = "default-src 'none'; style-src 'unsafe-inline'"


def page(title: str, body: str) -> str:
    """The whole document: inline CSS, no script, nothing loaded from anywhere (the CSP says so too)."""
    return (
        "<!DOCTYPE html>\n"
        '<html lang="en">\n<head>\n<meta charset="utf-8">\n'
        f'<meta http-equiv="Content-Security-Policy" content="{CSP}">\n'
        '<meta name="viewport" content="width=device-width, initial-scale=1">\n'
        f"<title>{esc(title)}</title>\n<style>{CSS}</style>\n</head>\n<body>\n<main>\n"
        f"{body}"
        "<footer>nsys-doctor · self-contained page: no script, nothing loaded from the network</footer>\n"
        "</main>\n</body>\n</html>\n"
    )


def section(title: str, *parts: str, sid: str | None = None) -> str:
    ident = f' id="{esc(sid)}"' if sid else ""
    return f"<section{ident}>\n<h2>{esc(title)}</h2>\n" + "\n".join(p for p in parts if p) + "\n</section>\n"


def table(header: Sequence[str], rows: Sequence[Sequence[str]], numeric: Sequence[bool] | None = None) -> str:
    """A table of already-escaped cells; ``numeric`` columns are right-aligned."""
    num = list(numeric) if numeric is not None else [False] * len(header)
    head = "".join(f"<th{' class=n' if num[i] else ''}>{esc(h)}</th>" for i, h in enumerate(header))
    body = "".join(
        "<tr>" + "".join(f"<td{' class=n' if num[i] else ''}>{c}</td>" for i, c in enumerate(r)) + "</tr>\n"
        for r in rows
    )
    return f"<table>\n<thead><tr>{head}</tr></thead>\n<tbody>\n{body}</tbody>\n</table>"


def figure(svg: str, caption: str = "", heading: str = "", heading_title: str = "") -> str:
    h = f'<h3 title="{esc(heading_title or heading)}">{esc(heading)}</h3>' if heading else ""
    cap = f'<p class="cap">{caption}</p>' if caption else ""
    return f"<figure>{h}{svg}{cap}</figure>"


def kernel_cell(label: str, name: str) -> str:
    """A kernel's short label, with its full (escaped) name one click away."""
    if label == name:
        return f'<code class="name">{esc(name)}</code>'
    return f'<details><summary><code>{esc(label)}</code></summary><code class="name">{esc(name)}</code></details>'


def sev_badge(severity: str) -> str:
    return f'<span class="sev sev-{esc(severity)}">{esc(severity)}</span>'
