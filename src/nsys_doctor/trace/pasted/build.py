"""Raw cells into a typed ``PastedTable``: the report kind, column roles and units, numbers resolved."""

from __future__ import annotations

import re
from decimal import Decimal

from .columns import INTEGER_BASES, Title, column_role, inherit_units, read_head
from .layouts import Raw
from .model import PastedColumn, PastedTable
from .numbers import EMPTY_CELLS, is_numlike, plain_number, resolve_numbers
from .vocabulary import BYTE_FACTORS, OTHER_REPORTS, REPORT_KINDS, TIME_FACTORS

_API_NAME = re.compile(r"^(?:cuda|cu|nccl|cublas|cudnn|cusparse|nvtx)[A-Z_]\w*$")
_MEM_NAME = re.compile(r"^\[CUDA (?:Unified Memory )?mem(?:cpy|set)", re.IGNORECASE)
_OSRT_NAMES = {
    "poll",
    "ioctl",
    "sem_wait",
    "sem_timedwait",
    "pthread_cond_wait",
    "pthread_cond_timedwait",
    "pthread_create",
    "pthread_mutex_lock",
    "read",
    "write",
    "open",
    "open64",
    "mmap",
    "mmap64",
    "munmap",
    "fopen",
    "fclose",
    "epoll_wait",
    "nanosleep",
    "usleep",
    "select",
    "recvmsg",
    "sendmsg",
    "futex",
}


def _kind_from_columns(roles: set[str], names: list[str]) -> tuple[str, str]:
    """(kind, report) guessed from the columns and the names in them."""
    if {"srcmemkd", "dstmemkd"} & roles or {"grdx", "blkx"} <= roles:
        return "gpu_trace", "cuda_gpu_trace"
    if {"t_avg_ns", "k_avg_ns"} & roles or "q_count" in roles:
        return "kern_exec", "cuda_kern_exec_sum"
    if "total_bytes" in roles:
        return "mem_size", "cuda_gpu_mem_size_sum"
    if "category" in roles and "total_ns" in roles:
        return "gpu_sum", "cuda_gpu_sum"
    if "style" in roles and "total_ns" in roles and "range" not in roles:  # nvtx_kern_sum has range and name
        return "nvtx", "nvtx_sum"
    if "grid" in roles and ("total_ns" in roles or "share" in roles):
        return "kernels", "cuda_gpu_kern_gb_sum"
    if "name" not in roles or not ({"total_ns", "share", "count"} & roles):
        return "other", ""
    clean = [n for n in names if n]
    if not clean:
        return "kernels", "cuda_gpu_kern_sum"
    mem = sum(bool(_MEM_NAME.match(n)) for n in clean) / len(clean)
    api = sum(bool(_API_NAME.match(n)) for n in clean) / len(clean)
    osrt = sum(n in _OSRT_NAMES for n in clean) / len(clean)
    if mem >= 0.5:
        return "mem_time", "cuda_gpu_mem_time_sum"
    if api >= 0.6:
        return "api", "cuda_api_sum"
    if osrt >= 0.3:
        return "osrt", "osrt_sum"
    return "kernels", "cuda_gpu_kern_sum"


def build_table(raw: Raw, index: int, title: Title | None) -> PastedTable | None:
    heads = [read_head(h, i) for i, h in enumerate(raw.headers)]
    issues = list(raw.issues)
    issues += inherit_units(heads, title.title if title else "")
    n = len(heads)
    rows_text: list[list[str]] = []
    if raw.json_rows is not None:
        for obj in raw.json_rows:
            rows_text.append(["" if obj.get(h) is None else _json_cell(obj.get(h)) for h in raw.headers])
    else:
        for r in raw.rows:
            rows_text.append((r + [""] * n)[:n])
    # columns whose kind was unknown: numeric when every non-empty cell is a number
    for j, h in enumerate(heads):
        if h.kind == "any":
            cells = [r[j] for r in rows_text if r[j].strip()]
            if cells and all(is_numlike(c.strip()) for c in cells):
                h.kind, h.quantity = "num", h.quantity or "number"
            else:
                h.kind, h.quantity = "text", "text"
    roles: list[str] = []
    for h in heads:
        role = column_role(h)
        while role in roles:
            role += "_2"
        roles.append(role)
    # no "name" column: the kernel name (exec, NVTX kernel summary) or the range (NVTX summary) is the name
    if "name" not in roles:
        for alt in ("kernel_name", "range", "api_name"):
            if alt in roles:
                roles[roles.index(alt)] = "name"
                break
    # numbers: cells that are not numbers at all are read as empty; the rest are read with one convention
    bad_cells = 0
    number_cells: dict[int, list[str]] = {}
    for j, h in enumerate(heads):
        if h.kind == "num":
            cells = []
            for r in rows_text:
                t = r[j].strip()
                if t and t not in EMPTY_CELLS and not is_numlike(t):
                    bad_cells += 1
                    t = ""
                cells.append(t)
            number_cells[j] = cells
    integers = frozenset(
        j
        for j, h in enumerate(heads)
        if h.base in INTEGER_BASES
        or (h.quantity == "time" and h.unit.lower() == "ns" and h.base in ("total", "min", "max"))
    )  # counts, and totals/extremes of integer nanoseconds: nsys prints them without decimals
    numbers = resolve_numbers(number_cells, [h.header for h in heads], raw.fixed_decimal, integers)
    decimals = [0] * n
    columns_values: list[list[object]] = []
    for j, h in enumerate(heads):
        cells = [r[j] for r in rows_text]
        if h.kind != "num":
            if h.kind == "grid":
                columns_values.append([" ".join(c.split()) for c in cells])
            else:
                columns_values.append([c.strip() for c in cells])
            continue
        col = numbers.columns.get(j)
        if col is None:  # unreadable: no value rather than a wrong one
            columns_values.append([None] * len(cells))
            continue
        decimals[j] = col.decimals
        factor = TIME_FACTORS.get(h.unit.lower(), 1) if h.quantity == "time" else 1
        if h.quantity in ("bytes", "throughput"):
            factor = BYTE_FACTORS.get(h.unit.lower().removesuffix("/s"), 1)
        share = h.base == "share"
        seen: dict[Decimal, object] = {}  # values repeat a lot (counts, grid sizes, durations): convert each once
        out: list[object] = []
        for number in col.values:
            if number is None:
                out.append(None)
                continue
            value = seen.get(number)
            if value is None:
                value = seen[number] = float(number) if share else plain_number(number * factor)
            out.append(value)
        columns_values.append(out)
    rows: list[dict[str, object]] = [dict(zip(roles, vals, strict=True)) for vals in zip(*columns_values, strict=True)]
    partial = raw.partial
    if bad_cells:
        issues.append(f"{bad_cells} cells are not numbers where numbers belong; read as empty")
        partial = True
    for j, why in sorted(numbers.unreadable.items()):
        issues.append(f"column {heads[j].header!r} not read: {why}")
    columns = tuple(
        PastedColumn(
            h.header,
            h.label,
            h.unit,
            h.quantity or ("text" if h.kind == "text" else "number"),
            roles[j],
            decimals[j],
            numbers.unreadable.get(j, ""),
        )
        for j, h in enumerate(heads)
    )
    if not rows:
        return None
    names = [str(r.get("name") or "") for r in rows]
    kind_cols, report_cols = _kind_from_columns(set(roles), names)
    known = title is not None and (title.report in REPORT_KINDS or title.report in OTHER_REPORTS)
    if title is not None and title.report and (known or kind_cols == "other"):
        report = title.report
        kind = REPORT_KINDS.get(report, "other")
        kind_from = "title"
        if kind == "kernels" and kind_cols in ("api", "mem_time", "mem_size", "kern_exec"):
            issues.append(f"the title says {report} but the columns and names read as {report_cols}")
            kind, report, kind_from = kind_cols, report_cols, "columns"
        if report == "cuda_gpu_kern_sum" and "grid" in roles:
            report = "cuda_gpu_kern_gb_sum"  # 2021-2022 gpukernsum grouped by launch shape
    else:
        kind, report, kind_from = kind_cols, report_cols, "columns"
    clipped = sum(1 for nm in names if nm.endswith(("…", "...")))
    table = PastedTable(
        index=index,
        report=report,
        kind=kind,
        title=title.title if title else "",
        args=title.args if title else "",
        layout=raw.layout,
        line=raw.line + 1,
        end_line=raw.end,
        columns=columns,
        rows=rows,
        issues=issues,
        partial=partial,
        clipped_names=clipped,
        kind_from=kind_from,
    )
    share_col = table.column("share")
    if share_col is not None and not share_col.unreadable and kind in _SHARE_KINDS:
        total_share = sum(float(v) for v in table.values("share") if isinstance(v, int | float))
        slack = 0.5 + 0.05 * len(rows)  # each share is rounded to 0.1
        if total_share < 100 - slack:
            table.partial = True
            issues.append(f"the shares add up to {total_share:.1f}%: rows are missing from the paste")
    if clipped:
        what = "1 name is" if clipped == 1 else f"{clipped} names are"
        issues.append(f"{what} cut short (… or ...): the operation is read from the visible part")
    return table


_SHARE_KINDS = ("kernels", "api", "mem_time", "osrt", "nvtx", "gpu_sum")


def _json_cell(value: object) -> str:
    if isinstance(value, Decimal):
        return format(value, "f")
    if isinstance(value, bool):
        return str(value).lower()
    return str(value)
