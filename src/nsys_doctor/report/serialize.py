"""The one JSON writer of nsys-doctor: every ``--format json`` output goes through ``dumps``.

Every JSON document is an envelope, ``{"schema": "nsys-doctor/2", "kind": <output kind>, ...payload}``
(docs/report-json.md; one JSON Schema per kind in docs/schemas/<kind>.schema.json). The analyses' ``to_dict()``
methods return the payload only; the schema string and the kind are added here, from one place.

Policy, the same for every output:
- NaN, +inf and -inf become ``null`` (JSON has no such numbers; a ratio over an empty set is "unknown");
- mapping keys become strings; tuples become lists;
- keys keep the order the payload gives them (the documented order: deterministic, not sorted), the envelope's
  ``schema`` and ``kind`` first;
- non-ASCII text is written as is (UTF-8), indented by 2, with a trailing newline: the same input gives the same
  bytes.
"""

from __future__ import annotations

import math
from collections.abc import Mapping

from .. import JSON_SCHEMA

SCHEMA = JSON_SCHEMA

# Every kind of JSON document nsys-doctor writes; each has docs/schemas/<kind>.schema.json.
KINDS = (
    "report",
    "report-ranks",
    "diff",
    "diff-ranks",
    "scaling",
    "nccl",
    "roofline",
    "explain",
    "info",
)
ENVELOPE_KEYS = ("schema", "kind")


def clean(x: object) -> object:
    """``x`` with the NaN policy applied: NaN and infinities become None, keys strings, tuples lists."""
    if isinstance(x, float):
        return None if math.isnan(x) or math.isinf(x) else x
    if isinstance(x, Mapping):
        return {str(k): clean(v) for k, v in x.items()}
    if isinstance(x, list | tuple):
        return [clean(v) for v in x]
    return x


def envelope(kind: str, payload: Mapping[str, object]) -> dict[str, object]:
    """``{"schema": ..., "kind": kind, **payload}``. The payload must not carry the envelope's own keys."""
    if kind not in KINDS:
        raise ValueError(f"unknown JSON output kind {kind!r}")
    clash = [k for k in ENVELOPE_KEYS if k in payload]
    if clash:
        raise ValueError(f"the {kind} payload already has {', '.join(clash)}: the envelope adds them")
    return {"schema": SCHEMA, "kind": kind, **payload}


def dumps_value(value: object) -> str:
    """Any JSON value as text under the policy (an envelope built with ``envelope``, usually)."""
    import json

    return json.dumps(clean(value), indent=2, ensure_ascii=False, allow_nan=False) + "\n"


def dumps(kind: str, payload: Mapping[str, object]) -> str:
    """The JSON text of one output: the envelope around ``payload``, NaN and inf as null, trailing newline."""
    return dumps_value(envelope(kind, payload))
