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
from collections.abc import Callable, Mapping

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


def envelope(kind: str, payload: Mapping[str, object]) -> dict[str, object]:
    """``{"schema": ..., "kind": kind, **payload}``. The payload must not carry the envelope's own keys."""
    if kind not in KINDS:
        raise ValueError(f"unknown JSON output kind {kind!r}")
    clash = [k for k in ENVELOPE_KEYS if k in payload]
    if clash:
        raise ValueError(f"the {kind} payload already has {', '.join(clash)}: the envelope adds them")
    return {"schema": SCHEMA, "kind": kind, **payload}


def dumps_value(value: object) -> str:
    """Any JSON value as text under the policy (an envelope built with ``envelope``, usually): the bytes of
    ``json.dumps(value, indent=2, ensure_ascii=False, allow_nan=False)`` and a newline, with the policy applied
    first (NaN and infinities as null, keys as strings, tuples as lists), written in one pass
    (the standard encoder, given an indent, runs in Python a generator per level; a report's per-step lists hold
    hundreds of thousands of values). A value of another type is a ``TypeError``, as there."""
    from json.encoder import encode_basestring  # the json module's C function, where present (imported here: the
    # light commands' text output never loads json)

    out: list[str] = []
    _write(value, "\n", out, encode_basestring)
    out.append("\n")
    return "".join(out)


def _scalar(x: object, string: Callable[[str], str]) -> str | None:
    """The JSON text of a scalar (None for a container or an unknown type); ``string`` writes a text."""
    if isinstance(x, str):
        return string(x)
    if x is None:
        return "null"
    if x is True:
        return "true"
    if x is False:
        return "false"
    if isinstance(x, int):
        return int.__repr__(x)
    if isinstance(x, float):
        return "null" if math.isnan(x) or math.isinf(x) else float.__repr__(x)
    return None


def _write(x: object, nl: str, out: list[str], string: Callable[[str], str]) -> None:
    """Append the JSON text of ``x`` to ``out``; ``nl``: a newline and the indent of ``x``'s own level."""
    text = _scalar(x, string)
    if text is not None:
        out.append(text)
        return
    inner = nl + "  "
    if isinstance(x, Mapping):
        if not x:
            out.append("{}")
            return
        sep = "{" + inner
        for k, v in x.items():
            out.append(sep)
            out.append(string(k if isinstance(k, str) else str(k)))
            out.append(": ")
            _write(v, inner, out, string)
            sep = "," + inner
        out.append(nl + "}")
    elif isinstance(x, list | tuple):
        if not x:
            out.append("[]")
            return
        texts = [_scalar(v, string) for v in x]
        if None not in texts:  # a list of numbers or texts (most of a report's bulk): joined at once
            out.append("[" + inner + ("," + inner).join(texts) + nl + "]")  # type: ignore[arg-type]
            return
        sep = "[" + inner
        for v, t in zip(x, texts, strict=True):
            out.append(sep)
            if t is None:
                _write(v, inner, out, string)
            else:
                out.append(t)
            sep = "," + inner
        out.append(nl + "]")
    else:
        raise TypeError(f"Object of type {type(x).__name__} is not JSON serializable")


def dumps(kind: str, payload: Mapping[str, object]) -> str:
    """The JSON text of one output: the envelope around ``payload``, NaN and inf as null, trailing newline."""
    return dumps_value(envelope(kind, payload))
