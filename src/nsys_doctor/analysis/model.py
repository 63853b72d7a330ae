"""A model's linear layers for one decode step: shapes, weight formats and weight bytes.

Two inputs describe a model:

- a Hugging Face ``config.json`` (Llama, Qwen, Mistral, Gemma and Phi-style dense decoders, and MoE models with
  ``num_experts`` / ``num_local_experts`` / ``n_routed_experts`` and ``num_experts_per_tok``). A config does not
  say whether an engine fuses Q, K and V, or gate and up, so every plausible layout is derived and the matcher
  (``analysis/roofline/``) keeps the one whose kernel count fits the trace;
- an explicit shapes file (TOML): ``layers``, an optional default ``dtype``, and ``[[shape]]`` tables with
  ``name``, ``M`` (output features), ``K`` (input features), ``count`` (kernels per layer, in a row), ``dtype``
  and ``per_layer`` (false for shapes that run once per step after the layers, such as the LM head), in the order
  they run.

A linear layer ``y = x W^T`` has a weight ``W`` of ``M x K``. Decoding one token reads all of ``W`` once, so the
weight bytes are the bytes a decode step must move at least. Bytes per format: bf16/fp16 2 per element, fp8 and
int8 1, fp32 4, int4 with group size g ``M*K/2`` plus one bf16 scale per group (``M * ceil(K/g) * 2``).

Pure functions (``model_from_config``, ``model_from_shapes``, ``model_from_text``) turn parsed documents or a
file's text into a ``Model``; ``loaders.read_model`` reads the file.
"""

from __future__ import annotations

import json
import math
import tomllib
from dataclasses import dataclass, field
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
    if not isinstance(text, str):
        raise UsageError(f"unknown dtype {text!r}", f"use one of {', '.join(DTYPES)}")
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


MAX_DIM = 2**31 - 1
"""The largest size (features, heads, layers, experts, group size) a model file may give: anything larger is a typo."""
MAX_KERNELS_PER_STEP = 1_000_000
"""The most linear kernels one step of a model may run (layers x kernels per layer): more is not a real model."""


def _check_int(value: Any, what: str, where: str, minimum: int = 1) -> int:
    """``value`` as an int in ``[minimum, MAX_DIM]``, else ``UsageError`` naming ``what`` and ``where``."""
    if isinstance(value, bool) or not isinstance(value, int) or not minimum <= value <= MAX_DIM:
        kind = "a positive integer" if minimum == 1 else f"an integer >= {minimum}"
        if isinstance(value, int) and not isinstance(value, bool) and value > MAX_DIM:
            kind += f" no larger than {MAX_DIM:,}"
        shown = repr(value) if len(repr(value)) <= 60 else f"{repr(value)[:57]}..."
        raise UsageError(f"{where}: {what} must be {kind}, not {shown}", "fix the value in the file")
    return value


def _int(cfg: dict[str, Any], key: str, where: str, default: int | None = None, minimum: int = 1) -> int:
    """A required integer key (``null`` counts as missing: then ``default``, when there is one)."""
    value = cfg.get(key)
    if value is None:
        value = default
    if value is None:
        raise UsageError(
            f"{where}: no {key!r}", "pass the model's Hugging Face config.json (with this key), or a shapes TOML"
        )
    return _check_int(value, repr(key), where, minimum)


def _opt_int(cfg: dict[str, Any], key: str, where: str, minimum: int = 0) -> int | None:
    """An optional integer key: None when absent or null."""
    value = cfg.get(key)
    return None if value is None else _check_int(value, repr(key), where, minimum)


def _first(cfg: dict[str, Any], *keys: str) -> Any:
    for k in keys:
        if cfg.get(k) is not None:
            return cfg[k]
    return None


def _config_format(
    cfg: dict[str, Any], dtype: str | None, group_size: int | None, notes: list[str], where: str
) -> tuple[WeightFormat, str]:
    """The weights' format and the activations' dtype, from --dtype or the config (torch_dtype, quantization)."""
    raw = _first(cfg, "torch_dtype", "dtype")
    if raw is not None and not isinstance(raw, str):
        key = "torch_dtype" if cfg.get("torch_dtype") is not None else "dtype"
        raise UsageError(f"{where}: {key!r} must be a string, not {raw!r}", 'e.g. "torch_dtype": "bfloat16"')
    act = DTYPE_ALIASES.get(raw.lower(), raw.lower()) if raw is not None else None
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
    if q is not None and not isinstance(q, dict):
        raise UsageError(
            f"{where}: 'quantization_config' must be an object, not {type(q).__name__}",
            'e.g. "quantization_config": {"quant_method": "awq", "bits": 4, "group_size": 128}, or pass --dtype',
        )
    if isinstance(q, dict):
        method = str(q.get("quant_method", "")).lower()
        bits = q.get("bits", q.get("w_bit"))
        if method == "fp8":
            return WeightFormat("fp8"), act
        if method in ("awq", "gptq", "marlin", "gptq_marlin", "awq_marlin") and bits in (4, 8):
            if bits == 8:
                return WeightFormat("int8"), act
            gkey = next((k for k in ("group_size", "q_group_size") if q.get(k) is not None), None)
            g = DEFAULT_GROUP_SIZE
            if gkey is not None and q[gkey] == -1 and not isinstance(q[gkey], bool):
                notes.append(f"quantization_config.{gkey} = -1 (one scale per row) counted as group {g}")
            elif gkey is not None:
                g = _check_int(q[gkey], f"'quantization_config.{gkey}'", where)
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
    where: str | None = None,
) -> Model:
    """The linear shapes of a Hugging Face decoder config (``text_config`` is used for multimodal wrappers).

    ``dtype`` (``--dtype``) overrides the config's dtype and quantization; quantized formats keep the LM head in
    the activation dtype, as AWQ, GPTQ and FP8 checkpoints do. ``where`` names the config in errors (default:
    ``name``); a missing key, or a value of the wrong type or out of range, raises ``UsageError`` naming the key."""
    where = where or name
    text_config = config.get("text_config")
    if text_config is not None and not isinstance(text_config, dict):
        raise UsageError(
            f"{where}: 'text_config' must be an object, not {type(text_config).__name__}",
            "pass the model's Hugging Face config.json",
        )
    cfg = text_config if isinstance(text_config, dict) else config
    notes: list[str] = []
    if cfg is not config:
        notes.append("used the config's text_config (the language model of a multimodal config)")
        where = f"{where}, text_config"
    if any(k in cfg for k in ("kv_lora_rank", "q_lora_rank")):
        raise UsageError(
            f"{where}: multi-head latent attention (DeepSeek-style kv_lora_rank) is not derived from configs",
            "write the model's linear shapes in a shapes TOML (see docs/roofline.md)",
        )
    hidden = _int(cfg, "hidden_size", where)
    layers = _int(cfg, "num_hidden_layers", where)
    heads = _int(cfg, "num_attention_heads", where)
    kv_heads = _int(cfg, "num_key_value_heads", where, heads)
    if cfg.get("head_dim") is None and hidden % heads:
        raise UsageError(
            f"{where}: no 'head_dim', and 'hidden_size' {hidden} is not a multiple of 'num_attention_heads' {heads}",
            "add the model's head_dim, or fix hidden_size / num_attention_heads",
        )
    head_dim = _int(cfg, "head_dim", where, hidden // heads)
    vocab = _int(cfg, "vocab_size", where)
    fmt, act = _config_format(cfg, dtype, group_size, notes, where)
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

    expert_key = next((k for k in MOE_EXPERT_KEYS if cfg.get(k) is not None), None)
    n_experts = _int(cfg, expert_key, where, minimum=0) if expert_key else 0  # 0: a dense model
    dims = {
        "hidden_size": hidden,
        "num_hidden_layers": layers,
        "num_attention_heads": heads,
        "num_key_value_heads": kv_heads,
        "head_dim": head_dim,
        "vocab_size": vocab,
    }
    moe_layers: set[int] = set()
    top_k = 0
    if n_experts:
        top_k = _int(cfg, "num_experts_per_tok", where)
        if top_k > n_experts:
            raise UsageError(
                f"{where}: 'num_experts_per_tok' {top_k} is more than the {n_experts} experts ({expert_key!r})",
                "fix num_experts_per_tok or the number of experts",
            )
    if layers * (8 + (3 * top_k + 4 if top_k else 0)) > MAX_KERNELS_PER_STEP:
        raise UsageError(
            f"{where}: {layers} layers{f' with {top_k} active experts' if top_k else ''} make more than "
            f"{MAX_KERNELS_PER_STEP:,} linear kernels per step",
            "check num_hidden_layers (and num_experts_per_tok)",
        )
    if n_experts:
        expert_inter = _int(cfg, "moe_intermediate_size", where, cfg.get("intermediate_size"))
        shared_inter = _opt_int(cfg, "shared_expert_intermediate_size", where)
        n_shared = _opt_int(cfg, "n_shared_experts", where)
        if not shared_inter and n_shared:
            shared_inter = n_shared * expert_inter
        dense_first = _opt_int(cfg, "first_k_dense_replace", where) or 0
        step = _opt_int(cfg, "decoder_sparse_step", where, minimum=1) or 1
        raw_only = cfg.get("mlp_only_layers")
        if raw_only is not None and not isinstance(raw_only, list):
            raise UsageError(
                f"{where}: 'mlp_only_layers' must be a list of layer indices, not {raw_only!r}",
                'e.g. "mlp_only_layers": [0]',
            )
        only_mlp = {_check_int(i, "'mlp_only_layers' entry", where, minimum=0) for i in raw_only or []}
        moe_layers = {i for i in range(layers) if i >= dense_first and (i + 1) % step == 0 and i not in only_mlp}
        dims |= {"num_experts": n_experts, "num_experts_per_tok": top_k, "moe_intermediate_size": expert_inter}
        if shared_inter:
            dims["shared_expert_intermediate_size"] = shared_inter
        notes.append(
            f"MoE: {top_k} of {n_experts} experts per token; position matching expects the router, then one "
            "gate/up and one down kernel per active expert, then the shared expert; fused MoE kernels (one kernel "
            "for all experts) need --mapping"
        )
    if len(moe_layers) < layers:
        dims["intermediate_size"] = _int(cfg, "intermediate_size", where)

    def layer_mlp(i: int, fused: bool) -> tuple[LinearShape, ...]:
        if i not in moe_layers:
            return mlp(dims["intermediate_size"], fused=fused)
        router = lin("router", n_experts, hidden, "router")
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


def _file_dtype(value: Any, what: str, where: str) -> str:
    """A dtype written in a shapes file, in its canonical spelling; errors name the key."""
    if not isinstance(value, str):
        raise UsageError(
            f"{where}: {what} must be a string, not {value!r}", f'e.g. dtype = "bf16" ({", ".join(DTYPES)})'
        )
    try:
        return parse_dtype(value)
    except UsageError as exc:
        raise UsageError(f"{where}: {what}: {exc.message}", exc.hint) from exc


def model_from_shapes(
    doc: dict[str, Any],
    name: str = "shapes.toml",
    dtype: str | None = None,
    group_size: int | None = None,
    where: str | None = None,
) -> Model:
    """A model from a parsed shapes TOML. ``dtype`` (``--dtype``) replaces the file's default dtype; a shape's own
    ``dtype`` still wins. ``where`` names the file in errors (default: ``shapes file <name>``); a missing key, or a
    value of the wrong type or out of range, raises ``UsageError`` naming the shape and the key."""
    where = where or f"shapes file {name}"
    unknown = sorted(set(doc) - TOP_KEYS)
    if unknown:
        raise UsageError(f"{where}: unknown key(s) {', '.join(unknown)}", f"allowed: {', '.join(sorted(TOP_KEYS))}")
    tables = doc.get("shape")
    if not isinstance(tables, list) or not tables:
        raise UsageError(f"{where}: no [[shape]] tables", "add one [[shape]] table per linear layer, in run order")
    default = parse_dtype(dtype) if dtype is not None else _file_dtype(doc.get("dtype", "bf16"), "dtype", where)
    if group_size is not None:
        gsize = _check_int(group_size, "--group-size", where)
    else:
        gsize = _check_int(doc.get("group_size", DEFAULT_GROUP_SIZE), "group_size", where)
    layers_n = _check_int(doc.get("layers", 1), "layers", where)
    if layers_n > MAX_KERNELS_PER_STEP:
        raise UsageError(f"{where}: layers must be at most {MAX_KERNELS_PER_STEP:,}, not {layers_n:,}", "check layers")
    title = doc.get("name", name)
    if not isinstance(title, str) or not title.strip():
        raise UsageError(f"{where}: name must be a non-empty string, not {title!r}", 'e.g. name = "Llama-3.2-1B"')
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
            raise UsageError(f"{label}: name must be a non-empty string, not {sname!r}", 'e.g. name = "qkv"')
        label = f"{label} ({sname})"
        for key in ("M", "K", "count"):
            _check_int(t.get(key, 1), key, label)
        if not isinstance(t.get("per_layer", True), bool):
            raise UsageError(
                f"{label}: per_layer must be true or false, not {t['per_layer']!r}", "e.g. per_layer = false"
            )
        if not isinstance(t.get("label", ""), str):
            raise UsageError(f"{label}: label must be a string, not {t['label']!r}", 'e.g. label = "QKV (fused)"')
        if sname in names:
            raise UsageError(f"{label}: shape name {sname!r} is used twice", "give every shape its own name")
        names.add(sname)
        d = _file_dtype(t["dtype"], "dtype", label) if "dtype" in t else default
        g = _check_int(t["group_size"], "group_size", label) if "group_size" in t else gsize
        fmt = WeightFormat(d, g if d == "int4" else None)
        shape = LinearShape(sname, t["M"], t["K"], fmt, t.get("label", ""))
        count, in_layer = t.get("count", 1), t.get("per_layer", True)
        if layers_n * (len(per_layer) + count * in_layer) + len(final) + count * (not in_layer) > MAX_KERNELS_PER_STEP:
            raise UsageError(
                f"{where}: {layers_n} layers of these shapes make more than {MAX_KERNELS_PER_STEP:,} kernels per step",
                "check layers and the shapes' count",
            )
        (per_layer if in_layer else final).extend([shape] * count)
    fmt = WeightFormat(default, gsize if default == "int4" else None)
    layout = Layout("as listed in the shapes file", tuple(tuple(per_layer) for _ in range(layers_n)), tuple(final))
    compute = default if default in (*ACTIVATION_DTYPES, "fp8") else "bf16"
    return Model(title, name, "shapes", fmt, layers_n, (layout,), {"num_hidden_layers": layers_n}, (), compute)


def model_from_text(text: str, name: str, suffix: str, dtype: str | None, group_size: int | None, where: str) -> Model:
    """A model from the text of a config.json (JSON) or a shapes file (TOML), told apart by content (``suffix``:
    the file's, ``.json`` or ``.toml`` decide when present). ``where`` names the file in errors
    (``UsageError``)."""
    if suffix.lower() == ".json" and not text.lstrip().startswith("{"):
        raise UsageError(
            f"{where} is not a JSON object",
            "pass a Hugging Face config.json (an object with hidden_size, num_hidden_layers, ...) or a shapes TOML",
        )
    if suffix.lower() == ".toml" or not text.lstrip().startswith("{"):
        try:
            doc = tomllib.loads(text)
        except tomllib.TOMLDecodeError as exc:
            raise UsageError(f"{where} is neither JSON nor valid TOML: {exc}", "check the file") from exc
        except RecursionError as exc:
            raise UsageError(f"{where} is nested too deeply to be a shapes TOML", "check the file") from exc
        return model_from_shapes(doc, name, dtype, group_size, where)
    try:
        cfg = json.loads(text)
    except json.JSONDecodeError as exc:
        raise UsageError(f"{where} is not valid JSON: {exc}", "pass the model's config.json") from exc
    except RecursionError as exc:
        raise UsageError(f"{where} is nested too deeply to be a config.json", "check the file") from exc
    if not isinstance(cfg, dict):
        raise UsageError(f"{where}: a config.json holds one JSON object", "pass the model's config.json")
    return model_from_config(cfg, name, dtype, group_size, where)
