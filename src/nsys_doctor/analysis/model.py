"""A model's linear layers for one decode step: shapes, weight formats and weight bytes.

Two inputs describe a model:

- a Hugging Face ``config.json`` (Llama, Qwen, Mistral, Gemma and Phi-style dense decoders, and MoE models with
  ``num_experts`` / ``num_local_experts`` / ``n_routed_experts`` and ``num_experts_per_tok``). A config does not
  say whether an engine fuses Q, K and V, or gate and up, so every plausible layout is derived and the matcher
  (``analysis/roofline.py``) keeps the one whose kernel count fits the trace;
- an explicit shapes file (TOML): ``layers``, an optional default ``dtype``, and ``[[shape]]`` tables with
  ``name``, ``M`` (output features), ``K`` (input features), ``count`` (kernels per layer, in a row), ``dtype``
  and ``per_layer`` (false for shapes that run once per step after the layers, such as the LM head), in the order
  they run.

A linear layer ``y = x W^T`` has a weight ``W`` of ``M x K``. Decoding one token reads all of ``W`` once, so the
weight bytes are the bytes a decode step must move at least. Bytes per format: bf16/fp16 2 per element, fp8 and
int8 1, fp32 4, int4 with group size g ``M*K/2`` plus one bf16 scale per group (``M * ceil(K/g) * 2``).

Pure functions (``model_from_config``, ``model_from_shapes``) turn parsed documents into a ``Model``;
``read_model`` is the thin wrapper that reads a file.
"""

from __future__ import annotations

import json
import math
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..errors import UsageError

DTYPES: dict[str, int] = {"bf16": 16, "fp16": 16, "fp32": 32, "fp8": 8, "int8": 8, "int4": 4}
"""Weight formats and their bits per element (int4 adds one bf16 scale per group)."""

DTYPE_ALIASES = {
    "bfloat16": "bf16",
    "float16": "fp16",
    "half": "fp16",
    "float32": "fp32",
    "float": "fp32",
    "float8": "fp8",
    "fp8_e4m3": "fp8",
    "float8_e4m3fn": "fp8",
    "e4m3": "fp8",
    "w4a16": "int4",
    "w8a16": "int8",
}
DEFAULT_GROUP_SIZE = 128
ACTIVATION_DTYPES = ("bf16", "fp16", "fp32")


def parse_dtype(text: str) -> str:
    """A dtype name (``bf16``, ``bfloat16``, ``fp8``, ``int4`` ...) in its canonical spelling."""
    t = text.strip().lower()
    t = DTYPE_ALIASES.get(t, t)
    if t not in DTYPES:
        raise UsageError(f"unknown dtype {text!r}", f"use one of {', '.join(DTYPES)}")
    return t


@dataclass(frozen=True)
class WeightFormat:
    """How a weight matrix is stored: ``dtype`` and, for int4, the quantization group size."""

    dtype: str = "bf16"
    group_size: int | None = None

    def __post_init__(self) -> None:
        if self.dtype not in DTYPES:
            raise UsageError(f"unknown dtype {self.dtype!r}", f"use one of {', '.join(DTYPES)}")
        if self.dtype == "int4" and (self.group_size is None or self.group_size <= 0):
            raise UsageError("int4 weights need a positive group size", "pass --group-size (e.g. 128)")

    def weight_bytes(self, m: int, k: int) -> int:
        """Bytes of an ``m x k`` weight matrix in this format."""
        if self.dtype == "int4":
            assert self.group_size is not None
            return m * k // 2 + m * math.ceil(k / self.group_size) * 2
        return m * k * DTYPES[self.dtype] // 8

    @property
    def label(self) -> str:
        return f"int4 (group {self.group_size})" if self.dtype == "int4" else self.dtype

    def to_dict(self) -> dict[str, object]:
        return {"dtype": self.dtype, "group_size": self.group_size}


@dataclass(frozen=True)
class LinearShape:
    """One linear layer's weight: ``M`` output features by ``K`` input features."""

    name: str  # stable id: qkv, q, k, v, o, gate_up, gate, up, down, lm_head, router, expert_gate_up, ...
    M: int
    K: int
    fmt: WeightFormat = field(default_factory=WeightFormat)
    label: str = ""

    @property
    def bytes(self) -> int:
        return self.fmt.weight_bytes(self.M, self.K)

    @property
    def title(self) -> str:
        return self.label or self.name

    def to_dict(self) -> dict[str, object]:
        return {
            "name": self.name,
            "label": self.title,
            "M": self.M,
            "K": self.K,
            "dtype": self.fmt.dtype,
            "group_size": self.fmt.group_size,
            "weight_bytes": self.bytes,
        }


@dataclass(frozen=True)
class Layout:
    """The order in which a decode step runs its linear kernels: per layer, then after the layers (LM head)."""

    name: str
    layers: tuple[tuple[LinearShape, ...], ...]  # one tuple per layer: its linear kernels in order
    final: tuple[LinearShape, ...]

    def sequence(self) -> list[tuple[LinearShape, int | None]]:
        """Every linear kernel of one step in order, with its layer index (None after the layers)."""
        out: list[tuple[LinearShape, int | None]] = [(s, i) for i, layer in enumerate(self.layers) for s in layer]
        return out + [(s, None) for s in self.final]

    @property
    def kernels_per_step(self) -> int:
        return sum(len(layer) for layer in self.layers) + len(self.final)

    @property
    def bytes_per_step(self) -> int:
        return sum(s.bytes for s, _ in self.sequence())

    def describe(self) -> str:
        """``16 layers x 4 linears (qkv, o, gate_up, down) + lm_head = 65``."""
        per = {len(layer) for layer in self.layers}
        tail = " + ".join(s.name for s in self.final)
        if len(per) == 1 and self.layers:
            names = ", ".join(s.name for s in self.layers[0])
            text = f"{len(self.layers)} layers x {len(self.layers[0])} linears ({names})"
        else:
            text = f"{len(self.layers)} layers of {'/'.join(str(n) for n in sorted(per))} linears"
        return f"{text}{' + ' + tail if tail else ''} = {self.kernels_per_step}"


@dataclass(frozen=True)
class Model:
    """A model as the roofline needs it: candidate layouts (same weights, different kernel splits)."""

    name: str
    source: str  # the file it came from
    kind: str  # "config" or "shapes"
    fmt: WeightFormat
    num_layers: int
    layouts: tuple[Layout, ...]  # the preferred (most common in engines) first
    dims: dict[str, int] = field(default_factory=dict)
    notes: tuple[str, ...] = ()
    activation: str = "bf16"  # the dtype GEMMs compute in (bf16 for weight-only int4/int8, fp8 for fp8)

    @property
    def bytes_per_token(self) -> int:
        """Weight bytes one decode step reads (the same for every layout)."""
        return self.layouts[0].bytes_per_step

    def shapes(self) -> list[LinearShape]:
        """Distinct shapes over all layouts, in first-seen order."""
        seen: dict[str, LinearShape] = {}
        for layout in self.layouts:
            for s, _ in layout.sequence():
                seen.setdefault(s.name, s)
        return list(seen.values())

    def to_dict(self) -> dict[str, object]:
        return {
            "name": self.name,
            "source": self.source,
            "kind": self.kind,
            "weights": self.fmt.to_dict(),
            "layers": self.num_layers,
            "activation_dtype": self.activation,
            "dims": self.dims,
            "bytes_per_token": self.bytes_per_token,
            "layouts": [{"name": lay.name, "kernels_per_step": lay.kernels_per_step} for lay in self.layouts],
            "notes": list(self.notes),
        }


# ------------------------------------------------------------------------------------------------ config.json


def _int(cfg: dict[str, Any], key: str, where: str, default: int | None = None) -> int:
    value = cfg.get(key, default)
    if value is None:
        raise UsageError(f"{where}: no {key!r}", "pass the model's Hugging Face config.json, or a shapes TOML")
    if not isinstance(value, int) or isinstance(value, bool) or value <= 0:
        raise UsageError(f"{where}: {key!r} must be a positive integer, not {value!r}", "fix the config")
    return value


def _first(cfg: dict[str, Any], *keys: str) -> Any:
    for k in keys:
        if cfg.get(k) is not None:
            return cfg[k]
    return None


def _config_format(
    cfg: dict[str, Any], dtype: str | None, group_size: int | None, notes: list[str]
) -> tuple[WeightFormat, str]:
    """The weights' format and the activations' dtype, from --dtype or the config (torch_dtype, quantization)."""
    raw = _first(cfg, "torch_dtype", "dtype")
    act = DTYPE_ALIASES.get(str(raw).lower(), str(raw).lower()) if raw is not None else None
    if act not in ACTIVATION_DTYPES:
        if raw is not None:
            notes.append(f"config dtype {raw!r} is not a float type: activations taken as bf16")
        act = "bf16"
    if dtype is not None:
        d = parse_dtype(dtype)
        g = (group_size or DEFAULT_GROUP_SIZE) if d == "int4" else None
        return WeightFormat(d, g), (d if d in ACTIVATION_DTYPES else act)
    if group_size is not None:
        notes.append("--group-size applies to --dtype int4 only: ignored")
    q = cfg.get("quantization_config")
    if isinstance(q, dict):
        method = str(q.get("quant_method", "")).lower()
        bits = q.get("bits", q.get("w_bit"))
        if method == "fp8":
            return WeightFormat("fp8"), act
        if method in ("awq", "gptq", "marlin", "gptq_marlin", "awq_marlin") and bits in (4, 8):
            if bits == 8:
                return WeightFormat("int8"), act
            g = q.get("group_size", q.get("q_group_size", DEFAULT_GROUP_SIZE))
            g = DEFAULT_GROUP_SIZE if not isinstance(g, int) or g <= 0 else g
            return WeightFormat("int4", g), act
        notes.append(f"quantization_config ({method or 'unknown method'}) not interpreted: pass --dtype")
    if raw is None:
        notes.append("the config names no dtype: weights taken as bf16 (pass --dtype)")
    return WeightFormat(act), act


MOE_EXPERT_KEYS = ("num_experts", "num_local_experts", "n_routed_experts")


def model_from_config(
    config: dict[str, Any],
    name: str = "config.json",
    dtype: str | None = None,
    group_size: int | None = None,
) -> Model:
    """The linear shapes of a Hugging Face decoder config (``text_config`` is used for multimodal wrappers).

    ``dtype`` (``--dtype``) overrides the config's dtype and quantization; quantized formats keep the LM head in
    the activation dtype, as AWQ, GPTQ and FP8 checkpoints do."""
    cfg = config.get("text_config") if isinstance(config.get("text_config"), dict) else config
    notes: list[str] = []
    if cfg is not config:
        notes.append("used the config's text_config (the language model of a multimodal config)")
    if any(k in cfg for k in ("kv_lora_rank", "q_lora_rank")):
        raise UsageError(
            f"{name}: multi-head latent attention (DeepSeek-style kv_lora_rank) is not derived from configs",
            "write the model's linear shapes in a shapes TOML (see docs/roofline.md)",
        )
    hidden = _int(cfg, "hidden_size", name)
    layers = _int(cfg, "num_hidden_layers", name)
    heads = _int(cfg, "num_attention_heads", name)
    kv_heads = _int(cfg, "num_key_value_heads", name, heads)
    head_dim = _int(cfg, "head_dim", name, hidden // heads)
    vocab = _int(cfg, "vocab_size", name)
    fmt, act = _config_format(cfg, dtype, group_size, notes)
    head_fmt = WeightFormat(act) if fmt.dtype not in ACTIVATION_DTYPES else fmt
    if head_fmt != fmt:
        notes.append(f"LM head kept in {act} (quantized checkpoints leave it unquantized)")
    q, kv = heads * head_dim, kv_heads * head_dim

    def lin(n: str, m: int, k: int, label: str) -> LinearShape:
        return LinearShape(n, m, k, fmt, label)

    attn_fused = (lin("qkv", q + 2 * kv, hidden, "QKV (fused)"),)
    attn_split = (lin("q", q, hidden, "Q"), lin("k", kv, hidden, "K"), lin("v", kv, hidden, "V"))
    o = lin("o", hidden, q, "O")

    def mlp(inter: int, prefix: str = "", title: str = "", fused: bool = True) -> tuple[LinearShape, ...]:
        t = f"{title} " if title else ""
        down = lin(f"{prefix}down", hidden, inter, f"{t}down")
        if fused:
            return (lin(f"{prefix}gate_up", 2 * inter, hidden, f"{t}gate+up (fused)"), down)
        return (lin(f"{prefix}gate", inter, hidden, f"{t}gate"), lin(f"{prefix}up", inter, hidden, f"{t}up"), down)

    n_experts = _first(cfg, *MOE_EXPERT_KEYS)
    dims = {
        "hidden_size": hidden,
        "num_hidden_layers": layers,
        "num_attention_heads": heads,
        "num_key_value_heads": kv_heads,
        "head_dim": head_dim,
        "vocab_size": vocab,
    }
    moe_layers: set[int] = set()
    if n_experts:
        top_k = _int(cfg, "num_experts_per_tok", name)
        expert_inter = _int(cfg, "moe_intermediate_size", name, cfg.get("intermediate_size"))
        shared_inter = cfg.get("shared_expert_intermediate_size")
        if not shared_inter and cfg.get("n_shared_experts"):
            shared_inter = int(cfg["n_shared_experts"]) * expert_inter
        dense_first = int(cfg.get("first_k_dense_replace") or 0)
        step = int(cfg.get("decoder_sparse_step") or 1)
        only_mlp = set(cfg.get("mlp_only_layers") or [])
        moe_layers = {i for i in range(layers) if i >= dense_first and (i + 1) % step == 0 and i not in only_mlp}
        dims |= {"num_experts": int(n_experts), "num_experts_per_tok": top_k, "moe_intermediate_size": expert_inter}
        if shared_inter:
            dims["shared_expert_intermediate_size"] = int(shared_inter)
        notes.append(
            f"MoE: {top_k} of {n_experts} experts per token; position matching expects the router, then one "
            "gate/up and one down kernel per active expert, then the shared expert; fused MoE kernels (one kernel "
            "for all experts) need --mapping"
        )
    if len(moe_layers) < layers:
        dims["intermediate_size"] = _int(cfg, "intermediate_size", name)

    def layer_mlp(i: int, fused: bool) -> tuple[LinearShape, ...]:
        if i not in moe_layers:
            return mlp(dims["intermediate_size"], fused=fused)
        router = lin("router", int(n_experts), hidden, "router")
        experts = mlp(dims["moe_intermediate_size"], "expert_", "expert", fused) * dims["num_experts_per_tok"]
        shared = (
            mlp(dims["shared_expert_intermediate_size"], "shared_", "shared expert", fused)
            if ("shared_expert_intermediate_size" in dims)
            else ()
        )
        return (router, *experts, *shared)

    head = (LinearShape("lm_head", vocab, hidden, head_fmt, "LM head"),)
    layouts = []
    for attn_name, attn, mlp_fused in (
        ("fused QKV, fused gate+up", attn_fused, True),
        ("separate Q/K/V, separate gate and up", attn_split, False),
        ("fused QKV, separate gate and up", attn_fused, False),
        ("separate Q/K/V, fused gate+up", attn_split, True),
    ):
        per_layer = tuple((*attn, o, *layer_mlp(i, mlp_fused)) for i in range(layers))
        layouts.append(Layout(attn_name, per_layer, head))
    compute = "fp8" if fmt.dtype == "fp8" else act
    return Model(name, name, "config", fmt, layers, tuple(layouts), dims, tuple(notes), compute)


# ------------------------------------------------------------------------------------------------ shapes TOML

SHAPE_KEYS = {"name", "M", "K", "count", "dtype", "per_layer", "label", "group_size"}
TOP_KEYS = {"name", "layers", "dtype", "group_size", "shape"}


def model_from_shapes(
    doc: dict[str, Any], name: str = "shapes.toml", dtype: str | None = None, group_size: int | None = None
) -> Model:
    """A model from a parsed shapes TOML. ``dtype`` (``--dtype``) replaces the file's default dtype; a shape's own
    ``dtype`` still wins."""
    where = f"shapes file {name}"
    unknown = sorted(set(doc) - TOP_KEYS)
    if unknown:
        raise UsageError(f"{where}: unknown key(s) {', '.join(unknown)}", f"allowed: {', '.join(sorted(TOP_KEYS))}")
    tables = doc.get("shape")
    if not isinstance(tables, list) or not tables:
        raise UsageError(f"{where}: no [[shape]] tables", "add one [[shape]] table per linear layer, in run order")
    default = parse_dtype(dtype) if dtype is not None else parse_dtype(str(doc.get("dtype", "bf16")))
    gsize = group_size or doc.get("group_size") or DEFAULT_GROUP_SIZE
    layers_n = doc.get("layers", 1)
    if not isinstance(layers_n, int) or layers_n <= 0:
        raise UsageError(f"{where}: layers must be a positive integer", "e.g. layers = 32")
    per_layer: list[LinearShape] = []
    final: list[LinearShape] = []
    names: set[str] = set()
    for i, t in enumerate(tables, start=1):
        label = f"{where}, shape {i}"
        if not isinstance(t, dict):
            raise UsageError(f"{label}: not a table", "write each shape as a [[shape]] table")
        bad = sorted(set(t) - SHAPE_KEYS)
        if bad:
            raise UsageError(f"{label}: unknown key(s) {', '.join(bad)}", f"allowed: {', '.join(sorted(SHAPE_KEYS))}")
        for key in ("name", "M", "K"):
            if key not in t:
                raise UsageError(f"{label}: missing {key}", "every shape needs name, M and K")
        sname = t["name"]
        if not isinstance(sname, str) or not sname.strip():
            raise UsageError(f"{label}: name must be a non-empty string", 'e.g. name = "qkv"')
        for key in ("M", "K", "count"):
            v = t.get(key, 1)
            if not isinstance(v, int) or isinstance(v, bool) or v <= 0:
                raise UsageError(f"{label} ({sname}): {key} must be a positive integer, not {v!r}", "fix the file")
        if sname in names:
            raise UsageError(f"{label}: shape name {sname!r} is used twice", "give every shape its own name")
        names.add(sname)
        d = parse_dtype(str(t["dtype"])) if "dtype" in t else default
        fmt = WeightFormat(d, int(t.get("group_size", gsize)) if d == "int4" else None)
        shape = LinearShape(sname, t["M"], t["K"], fmt, str(t.get("label", "")))
        (per_layer if t.get("per_layer", True) else final).extend([shape] * int(t.get("count", 1)))
    fmt = WeightFormat(default, int(gsize) if default == "int4" else None)
    layout = Layout("as listed in the shapes file", tuple(tuple(per_layer) for _ in range(layers_n)), tuple(final))
    title = str(doc.get("name", name))
    compute = default if default in (*ACTIVATION_DTYPES, "fp8") else "bf16"
    return Model(title, name, "shapes", fmt, layers_n, (layout,), {"num_hidden_layers": layers_n}, (), compute)


def read_model(path: str | Path, dtype: str | None = None, group_size: int | None = None) -> Model:
    """Read ``--model``: a config.json (JSON) or a shapes file (TOML), told apart by content."""
    p = Path(path)
    try:
        text = p.read_text(encoding="utf-8")
    except OSError as exc:
        raise UsageError(
            f"cannot read model file {p}: {exc.strerror or exc}", "pass a Hugging Face config.json or a shapes TOML"
        ) from exc
    if p.suffix.lower() == ".json" and not text.lstrip().startswith("{"):
        raise UsageError(
            f"model file {p} is not a JSON object",
            "pass a Hugging Face config.json (an object with hidden_size, num_hidden_layers, ...) or a shapes TOML",
        )
    if p.suffix.lower() == ".toml" or not text.lstrip().startswith("{"):
        try:
            doc = tomllib.loads(text)
        except tomllib.TOMLDecodeError as exc:
            raise UsageError(f"model file {p} is neither JSON nor valid TOML: {exc}", "check the file") from exc
        return model_from_shapes(doc, p.name, dtype, group_size)
    try:
        cfg = json.loads(text)
    except json.JSONDecodeError as exc:
        raise UsageError(f"model file {p} is not valid JSON: {exc}", "pass the model's config.json") from exc
    if not isinstance(cfg, dict):
        raise UsageError(f"model file {p}: a config.json holds one JSON object", "pass the model's config.json")
    return model_from_config(cfg, p.name, dtype, group_size)
