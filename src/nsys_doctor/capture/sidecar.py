"""The capture record beside a trace (``x.nsys-doctor.json``): where it lives, reading and writing it.

Light on purpose (json and paths only): the report reads it, and the result cache hashes it, without importing the
capture machinery."""

from __future__ import annotations

import json
from pathlib import Path

from ..safe_io import write_atomic

SIDECAR_SCHEMA = "nsys-doctor-capture/1"
SIDECAR_SUFFIX = ".nsys-doctor.json"


def sidecar_path(trace: str | Path) -> Path:
    """``target/profiling/x.sqlite`` -> ``target/profiling/x.nsys-doctor.json`` (also for x.nsys-rep)."""
    p = Path(trace)
    if p.suffix in (".sqlite", ".nsys-rep"):
        p = p.with_suffix("")
    return p.with_name(p.name + SIDECAR_SUFFIX)


def read_sidecar(trace: str | Path) -> dict[str, object] | None:
    """The capture record beside a trace, or None when there is none (or it is not ours)."""
    p = sidecar_path(trace)
    try:
        data = json.loads(p.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) and data.get("schema") == SIDECAR_SCHEMA else None


def write_sidecar(trace: str | Path, data: dict[str, object]) -> Path:
    p = sidecar_path(trace)
    write_atomic(p, json.dumps({"schema": SIDECAR_SCHEMA, **data}, indent=2, default=str) + "\n")
    return p
