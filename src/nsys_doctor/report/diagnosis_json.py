"""JSON renderer of a ``Diagnosis``: the public, versioned ``nsys-doctor/2`` schema (docs/report-json.md)."""

from __future__ import annotations

import json
import math

from ..analysis.diagnosis import Diagnosis


def clean_json(x: object) -> object:
    if isinstance(x, float):
        return None if math.isnan(x) or math.isinf(x) else x
    if isinstance(x, dict):
        return {str(k): clean_json(v) for k, v in x.items()}
    if isinstance(x, list | tuple):
        return [clean_json(v) for v in x]
    return x


def render_json(d: Diagnosis) -> str:
    return json.dumps(clean_json(d.to_dict()), indent=2, ensure_ascii=False) + "\n"
