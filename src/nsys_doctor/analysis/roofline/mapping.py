"""The mapping file: rules that map kernels to the model's linear shapes when position matching cannot."""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from ...errors import UsageError, parse_toml


@dataclass(frozen=True)
class MapRule:
    """``[[map]]``: kernels whose short or demangled name matches ``kernel`` (and whose grid is ``grid``) run
    ``shape``."""

    kernel: str
    shape: str
    grid: str | None = None
    source: str = ""  # the mapping file, for errors


def parse_mapping(text: str, source: str) -> list[MapRule]:
    """Parse and validate a mapping file (``[[map]]`` tables with ``kernel``, ``shape`` and optional ``grid``)."""
    hint = "write [[map]] tables with kernel = '<regex>', shape = '<shape name>' and optionally grid = 'XxYxZ'"
    doc = parse_toml(text, f"mapping file {source}", "mapping file", hint)
    tables = doc.get("map")
    if set(doc) - {"map"} or not isinstance(tables, list) or not tables:
        extra = sorted(set(doc) - {"map"})
        what = f"unknown top-level key(s) {', '.join(extra)}" if extra else "expected [[map]] tables"
        raise UsageError(f"mapping file {source}: {what}", hint)
    out = []
    for i, t in enumerate(tables, start=1):
        where = f"mapping file {source}, map {i}"
        if not isinstance(t, dict):
            raise UsageError(f"{where}: not a table", hint)
        for key in ("kernel", "shape"):
            if key not in t:
                raise UsageError(f"{where}: missing {key}", hint)
            if not isinstance(t[key], str) or not t[key].strip():
                raise UsageError(f"{where}: {key} must be a non-empty string, not {t[key]!r}", hint)
        if set(t) - {"kernel", "shape", "grid"}:
            raise UsageError(f"{where}: unknown key(s) {', '.join(sorted(set(t) - {'kernel', 'shape', 'grid'}))}", hint)
        try:
            re.compile(t["kernel"])
        except (re.error, OverflowError, RecursionError, ValueError) as exc:
            k = t["kernel"]
            shown = repr(k) if len(k) <= 80 else f"{k[:77]!r}..."
            raise UsageError(f"{where}: kernel {shown} is not a valid regex: {exc}", hint) from exc
        grid = t.get("grid")
        if grid is not None and not (isinstance(grid, str) and re.fullmatch(r"[1-9]\d*x[1-9]\d*x[1-9]\d*", grid)):
            raise UsageError(
                f"{where}: grid must be written XxYxZ with positive sizes, e.g. '2x64x1', not {grid!r}", hint
            )
        out.append(MapRule(t["kernel"], t["shape"], grid, source))
    return out


def read_mapping(path: str | Path) -> list[MapRule]:
    """Read ``--mapping``; ``UsageError`` naming the file (and the ``[[map]]`` entry) when it is not a valid one."""
    p = Path(path)
    hint = "pass a TOML file of [[map]] tables (kernel, shape, optional grid; see docs/roofline.md)"
    try:
        text = p.read_text(encoding="utf-8-sig")
    except UnicodeDecodeError as exc:
        raise UsageError(f"mapping file {p} is not UTF-8 text (byte {exc.start}): not a TOML file", hint) from exc
    except OSError as exc:
        raise UsageError(f"cannot read mapping file {p}: {exc.strerror or exc}", hint) from exc
    return parse_mapping(text, str(p))
