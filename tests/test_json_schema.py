"""Every command's ``--format json`` output validates against its JSON Schema (docs/schemas/<kind>.schema.json),
every schema property is described, and docs/report-json.md names every top-level field of every kind."""

from __future__ import annotations

import json
import random
import re
from pathlib import Path

import pytest
from click.testing import CliRunner
from jsonschema import Draft202012Validator

from nsys_doctor.cli.app import cli
from nsys_doctor.report.serialize import KINDS, SCHEMA, dumps, dumps_value, envelope

from .conftest import DATA, REPO, SAMPLE, TRACES

SCHEMAS = REPO / "docs" / "schemas"
DOC = REPO / "docs" / "report-json.md"
CONFIG = DATA / "llama_mini_config.json"
PASTED = DATA / "pasted"

# (case id, expected kind, arguments; "{T}" is the shared traces folder, "{D}" tests/data, "{S}" the bundled sample)
LOCAL_CASES = [
    ("report-sample", "report", ["report", "{S}"]),
    ("report-sample-model", "report", ["report", "{S}", "--model", "{D}/llama_mini_config.json"]),
    ("report-backtrace", "report", ["report", "{D}/backtrace_decode.sqlite"]),
    ("report-capture", "report", ["report", "{D}/capture_decode.sqlite"]),
    ("report-bert", "report", ["report", "{D}/runs/bert_base_nvtx_whole.sqlite"]),
    ("report-moe", "report", ["report", "{D}/runs/hf_moe_generate_sample_capture.sqlite"]),
    ("diff-sample", "diff", ["diff", "{S}", "{D}/capture_decode.sqlite"]),
    ("diff-gate", "diff", ["diff", "{S}", "{S}", "--gate", "5"]),
    ("scaling-local", "scaling", ["scaling", "{S}", "{D}/capture_decode.sqlite", "--ctx", "1,64"]),
    ("roofline-sample", "roofline", ["roofline", "{S}", "--model", "{D}/llama_mini_config.json"]),
    ("info-sample", "info", ["info", "{S}"]),
    ("info-backtrace", "info", ["info", "{D}/backtrace_decode.sqlite"]),
    *(
        (f"explain-{p.stem}", "explain", ["explain", str(p)])
        for p in sorted(PASTED.glob("*"))
        if p.suffix in (".txt", ".md", ".csv") and p.name not in ("SOURCES.md", "synth_ambiguous_mem_size.txt")
    ),
]
SHARED_CASES = [
    ("report-pathologies", "report", ["report", "{T}/decode_pathologies.sqlite"]),
    ("report-graph", "report", ["report", "{T}/decode_graph_graph.sqlite"]),
    ("report-prefill", "report", ["report", "{T}/prefill_2048.sqlite"]),
    ("report-hf-qwen2", "report", ["report", "{T}/engines/hf_qwen2_generate.sqlite"]),
    ("report-vit", "report", ["report", "{T}/engines/vit_b16_infer.sqlite"]),
    ("report-public-llama3", "report", ["report", "{T}/public/llama3inf_demo.sqlite"]),
    ("report-public-rodinia", "report", ["report", "{T}/public/rodinia_gaussian_report2.sqlite"]),
    (
        "report-ranks",
        "report-ranks",
        ["report", "{T}/multigpu/tp2_straggler_rank0.sqlite", "{T}/multigpu/tp2_straggler_rank1.sqlite"],
    ),
    ("report-ranks-one-trace", "report-ranks", ["report", "{T}/multigpu/tp2_allranks.sqlite"]),
    ("diff-repeat", "diff", ["diff", "{T}/repeat.1.sqlite", "{T}/repeat.2.sqlite"]),
    ("diff-eager-graph", "diff", ["diff", "{T}/decode_eager.sqlite", "{T}/decode_graph_node.sqlite", "--gate", "1"]),
    ("diff-ranks", "diff-ranks", ["diff", "{T}/multigpu/tp2_allranks.sqlite", "{T}/multigpu/tp2_allranks.sqlite"]),
    ("scaling-ctx", "scaling", ["scaling", "{T}/decode_graph_node.sqlite", "{T}/ctx_long_graph_node.sqlite"]),
    (
        "nccl-straggler",
        "nccl",
        ["nccl", "{T}/multigpu/tp2_straggler_rank0.sqlite", "{T}/multigpu/tp2_straggler_rank1.sqlite"],
    ),
    ("nccl-one-trace", "nccl", ["nccl", "{T}/multigpu/tp2_allranks.sqlite"]),
    (
        "roofline-graph",
        "roofline",
        ["roofline", "{T}/decode_graph_node.sqlite", "--model", "{D}/llama_mini_config.json"],
    ),
    ("info-public", "info", ["info", "{T}/public/gpu4_report.sqlite"]),
    (
        "roofline-prefill",
        "roofline",
        ["roofline", "{T}/prefill_2048.sqlite", "--model", "{D}/llama_mini_config.json", "--tokens", "2048"],
    ),
    ("report-prefill-model", "report", ["report", "{T}/prefill_2048.sqlite", "--model", "{D}/llama_mini_config.json"]),
    ("report-external-old-nsys", "report", ["report", "{T}/external/extrap/ex-gpu.s10.sqlite"]),
    ("info-external-old-nsys", "info", ["info", "{T}/external/extrap/ex-gpu.s10.sqlite"]),
    ("report-external-memory", "report", ["report", "{T}/external/extrap/con_kernel.sqlite"]),
]


def _args(args: list[str]) -> list[str]:
    return [a.replace("{T}", str(TRACES)).replace("{D}", str(DATA)).replace("{S}", str(SAMPLE)) for a in args]


def run_json(args: list[str]) -> dict[str, object]:
    """The command's JSON output (exit 0, or 1 for a failed gate)."""
    result = CliRunner().invoke(cli, [*_args(args), "--format", "json"], catch_exceptions=False)
    assert result.exit_code in (0, 1), result.output
    doc: dict[str, object] = json.loads(result.stdout)
    return doc


def schema_of(kind: str) -> dict[str, object]:
    doc: dict[str, object] = json.loads((SCHEMAS / f"{kind}.schema.json").read_text(encoding="utf-8"))
    return doc


def validate(kind: str, doc: dict[str, object]) -> None:
    validator = Draft202012Validator(schema_of(kind))
    errors = sorted(validator.iter_errors(doc), key=lambda e: list(e.absolute_path))
    assert not errors, "\n".join(f"{'/'.join(map(str, e.absolute_path))}: {e.message[:300]}" for e in errors[:10])


def _check(kind: str, args: list[str]) -> None:
    doc = run_json(args)
    assert doc["schema"] == SCHEMA and doc["kind"] == kind
    assert list(doc)[:2] == ["schema", "kind"]
    validate(kind, doc)


@pytest.mark.parametrize(("kind", "args"), [c[1:] for c in LOCAL_CASES], ids=[c[0] for c in LOCAL_CASES])
def test_local_trace_json_matches_schema(kind: str, args: list[str]) -> None:
    _check(kind, args)


@pytest.mark.parametrize(("kind", "args"), [c[1:] for c in SHARED_CASES], ids=[c[0] for c in SHARED_CASES])
def test_shared_trace_json_matches_schema(kind: str, args: list[str]) -> None:
    missing = [a for a in _args(args) if a.endswith(".sqlite") and not Path(a).is_file()]
    if missing:
        pytest.skip(f"shared trace not present: {missing[0]}")
    _check(kind, args)


def test_every_kind_has_a_schema() -> None:
    names = sorted(p.name.removesuffix(".schema.json") for p in SCHEMAS.glob("*.schema.json"))
    assert names == sorted([*KINDS, "capture"])
    for kind in KINDS:
        s = schema_of(kind)
        assert s["$schema"] == "https://json-schema.org/draft/2020-12/schema"
        Draft202012Validator.check_schema(s)
        props = s["properties"]
        assert isinstance(props, dict)
        assert props["schema"] == {"description": props["schema"]["description"], "const": SCHEMA}
        assert props["kind"] == {"description": props["kind"]["description"], "const": kind}


def _undescribed(node: object, where: str) -> list[str]:
    out: list[str] = []
    if isinstance(node, dict):
        for name, sub in (node.get("properties") or {}).items():
            if not isinstance(sub, dict) or not str(sub.get("description", "")).strip():
                out.append(f"{where}/{name}")
            out += _undescribed(sub, f"{where}/{name}")
        for key in ("items", "additionalProperties"):
            if isinstance(node.get(key), dict):
                out += _undescribed(node[key], f"{where}[]" if key == "items" else f"{where}{{}}")
        for key in ("anyOf", "oneOf", "allOf", "prefixItems"):
            for i, sub in enumerate(node.get(key) or []):
                out += _undescribed(sub, f"{where}<{key}{i}>")
        for name, sub in (node.get("$defs") or {}).items():
            out += _undescribed(sub, f"#/$defs/{name}")
    return out


@pytest.mark.parametrize("kind", [*KINDS, "capture"])
def test_every_schema_property_is_described(kind: str) -> None:
    assert _undescribed(schema_of(kind), kind) == []


@pytest.mark.parametrize("kind", KINDS)
def test_report_json_doc_names_every_top_level_field(kind: str) -> None:
    text = DOC.read_text(encoding="utf-8")
    heading = re.search(rf"^## `{re.escape(kind)}`.*?(?=^## |\Z)", text, re.M | re.S)
    section = heading.group(0) if heading else (text.split("\n## ", 1)[0] if kind == "report" else "")
    assert section, f"docs/report-json.md has no section for {kind}"
    props = schema_of(kind)["properties"]
    assert isinstance(props, dict)
    undocumented = [name for name in props if f"`{name}`" not in section]
    assert undocumented == []


def test_schemas_are_strict_about_top_level_keys() -> None:
    """A new top-level field must be added to the schema (and so to the docs) before it can be emitted."""
    for kind in KINDS:
        s = schema_of(kind)
        assert s["additionalProperties"] is False
        required, props = s["required"], s["properties"]
        assert isinstance(required, list) and isinstance(props, dict)
        assert {"schema", "kind"} <= set(required) <= set(props)


def test_a_missing_field_fails_validation() -> None:
    """The schema test can fail: a report without its findings is rejected."""
    doc = run_json(["info", "{S}"])
    validator = Draft202012Validator(schema_of("info"))
    assert not list(validator.iter_errors(doc))
    broken = {k: v for k, v in doc.items() if k != "info"}
    assert list(validator.iter_errors(broken))


def test_serializer_policy() -> None:
    payload = {"info": {"a": float("nan"), "b": [float("inf"), -float("inf"), 1.5], 3: ("é",)}}
    text = dumps("info", payload)
    assert text.endswith("}\n") and not text.endswith("\n\n")
    expected = {"a": None, "b": [None, None, 1.5], "3": ["é"]}
    assert json.loads(text) == {"schema": SCHEMA, "kind": "info", "info": expected}
    assert "é" in text  # UTF-8, not \\u escapes
    assert text == dumps("info", payload)
    with pytest.raises(ValueError, match="envelope"):
        envelope("report", {"schema": "x"})
    with pytest.raises(ValueError, match="unknown"):
        envelope("nope", {})


def clean(x: object) -> object:
    """The policy by its definition (module docstring of serialize.py), for the standard encoder."""
    import math
    from collections.abc import Mapping

    if isinstance(x, float):
        return None if math.isnan(x) or math.isinf(x) else x
    if isinstance(x, Mapping):
        return {str(k): clean(v) for k, v in x.items()}
    if isinstance(x, list | tuple):
        return [clean(v) for v in x]
    return x


def _random_value(rng: random.Random, depth: int) -> object:
    kind = rng.randrange(12 if depth < 4 else 8)
    scalars: list[object] = [
        None,
        True,
        False,
        rng.randrange(-(10**20), 10**20),
        rng.choice([0.1, -2.5e-300, 1e300, float("nan"), float("inf"), -0.0, 3.0]),
        rng.choice(["", "a", 'q"uote\\', "é\n\t\x01", "\u2028"]),
        rng.randrange(-5, 5),
        rng.random(),
    ]
    if kind < 8:
        return scalars[kind]
    n = rng.randrange(4)
    if kind == 8:
        return [_random_value(rng, depth + 1) for _ in range(n)]
    if kind == 9:
        return tuple(rng.randrange(100) for _ in range(n))  # a list of numbers only
    keys: list[object] = ["k", "é", 1, 2.5, None, True, "z"]
    return {rng.choice(keys): _random_value(rng, depth + 1) for _ in range(n)}


def test_serializer_writes_the_bytes_of_the_standard_encoder() -> None:
    """``dumps_value`` writes in one pass what ``json.dumps(clean(x), indent=2, ensure_ascii=False)`` writes."""
    for seed in range(300):
        rng = random.Random(seed)
        value = {"v": _random_value(rng, 0), "w": [_random_value(rng, 1) for _ in range(3)]}
        expected = json.dumps(clean(value), indent=2, ensure_ascii=False, allow_nan=False) + "\n"
        assert dumps_value(value) == expected, seed
    out = CliRunner().invoke(cli, ["report", str(SAMPLE), "--format", "json"]).output
    assert json.loads(out)["kind"] == "report" and len(out) > 10_000
    assert dumps_value(json.loads(out)) == out == json.dumps(json.loads(out), indent=2, ensure_ascii=False) + "\n"
    for bad in ({"a": object()}, [1, {2, 3}], b"x"):
        with pytest.raises(TypeError):
            dumps_value(bad)
        with pytest.raises(TypeError):
            json.dumps(clean(bad))


def test_capture_record_matches_its_schema() -> None:
    """The capture record beside a trace (written by capture/run.py, docs/capture.md) has a schema too."""
    schema = schema_of("capture")
    Draft202012Validator.check_schema(schema)
    record = json.loads((DATA / "capture_decode.nsys-doctor.json").read_text(encoding="utf-8"))
    validator = Draft202012Validator(schema)
    assert not list(validator.iter_errors(record))
    assert list(validator.iter_errors({**record, "schema": "nsys-doctor-capture/0"}))
    assert list(validator.iter_errors({k: v for k, v in record.items() if k != "validation"}))
