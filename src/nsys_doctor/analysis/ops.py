"""Kernel name -> model operation (GEMV, attention, RMSNorm, ...), driven by ordered regex rules shipped as data.

The rules live in ``nsys_doctor/data/ops.toml`` (the one source of truth for the mapping; its header documents
the format). A user can add or override rules with a TOML file in the same format: its rules are tried before
the shipped ones, and the first rule that matches a kernel wins. Pure functions: ``parse_rules`` validates a rule
file's text (``loaders.load_rules`` reads the files), ``classify`` maps names to operations without any other
state. The shipped rules are package data, read once (``builtin_rules``).
"""

from __future__ import annotations

import importlib
import re
from collections.abc import Sequence
from dataclasses import dataclass
from functools import lru_cache
from importlib.resources import files
from typing import Any

import polars as pl

from ..errors import UsageError, parse_toml

CATEGORIES: tuple[str, ...] = (
    "GEMV",
    "GEMM",
    "convolution",
    "attention (prefill)",
    "attention (decode)",
    "attention",
    "KV cache",
    "norm",
    "activation",
    "RoPE / QK-norm",
    "sampling / top-k",
    "embedding",
    "communication",
    "memcpy / memset",
    "MoE",
    "elementwise / other",
)
"""The fixed display categories, in display order. Every rule's ``category`` is one of them."""

UNMAPPED_FAMILY = "other"
UNMAPPED_CATEGORY = "elementwise / other"
UNMAPPED_OP = "unmapped"
BUILTIN_SOURCE = "builtin"

REQUIRED_KEYS = ("pattern", "family", "category", "op")
OPTIONAL_KEYS = ("library", "match")
MATCH_KINDS = ("library", "meaning")  # a known library's kernel, or a name read by its meaning (less sure)
STRUCTURE_MATCH = "structure"
"""The ``match`` of an operation whose family comes from where the kernel runs in the run's steps (set by
``analysis/refine.py``'s ``refine_ops`` after ``classify``, never by a rule: not one of ``MATCH_KINDS``)."""
FAMILY_ID = re.compile(r"^[a-z0-9]+(?:-[a-z0-9]+)*$")

COLUMNS = ("name", "family", "category", "op", "library", "mapped", "match")


@dataclass(frozen=True)
class OpRule:
    """One mapping rule: kernels whose name matches ``pattern`` (``re.search``) are this operation."""

    pattern: str
    family: str
    category: str
    op: str
    library: str = ""
    source: str = BUILTIN_SOURCE
    match: str = "library"  # "meaning": the rule reads an engine's own name (attention, norm...), less sure


def builtin_rules() -> list[OpRule]:
    """The rules shipped in ``nsys_doctor/data/ops.toml``, in file order."""
    return list(_builtin_rules())


@lru_cache(maxsize=1)
def _builtin_rules() -> tuple[OpRule, ...]:
    text = (files("nsys_doctor") / "data" / "ops.toml").read_text(encoding="utf-8")
    return tuple(parse_rules(text, source=BUILTIN_SOURCE))


def parse_rules(text: str, source: str) -> list[OpRule]:
    """Parse and validate a rules file's text (``[[rule]]`` tables); ``source`` names it in errors and rules."""
    where = "the shipped ops.toml" if source == BUILTIN_SOURCE else source
    hint = "see the header of nsys_doctor/data/ops.toml for the format"
    doc = parse_toml(text, f"op rules file {where}", "rules file", hint)
    unknown = sorted(set(doc) - {"rule"})
    if unknown:
        raise UsageError(
            f"op rules file {where}: unknown top-level key(s) {', '.join(unknown)}",
            "write each rule as a [[rule]] table",
        )
    tables = doc.get("rule", [])
    if not isinstance(tables, list):
        raise UsageError(f"op rules file {where}: 'rule' must be an array of tables", "write [[rule]], not [rule]")
    return [_rule_from_table(table, f"op rules file {where}, rule {i}", source) for i, table in enumerate(tables, 1)]


def parse_rules_tables(tables: list[Any], source: str, where: str | None = None) -> list[OpRule]:
    """Validate rules given as already-parsed TOML tables (e.g. inline in a project config). Errors name each
    rule as ``<where> <index>`` (``where`` defaults to ``op rules file <source>, rule``)."""
    prefix = where or f"op rules file {source}, rule"
    return [_rule_from_table(table, f"{prefix} {i}", source) for i, table in enumerate(tables, start=1)]


def compile_pattern(pattern: str, label: str, hint: str) -> re.Pattern[str]:
    """``re.compile(pattern)``, with any failure (bad syntax, a repeat count too large, nesting too deep) raised as
    ``UsageError`` prefixed by ``label``."""
    try:
        return re.compile(pattern)
    except (re.error, OverflowError, RecursionError, ValueError) as exc:
        shown = repr(pattern) if len(pattern) <= 80 else f"{pattern[:77]!r}..."
        raise UsageError(f"{label}: pattern {shown} is not a valid regex: {exc}", hint) from exc


def _rule_from_table(table: Any, label: str, source: str) -> OpRule:
    if not isinstance(table, dict):
        raise UsageError(f"{label}: not a table", "write each rule as a [[rule]] table")
    missing = [k for k in REQUIRED_KEYS if k not in table]
    if missing:
        raise UsageError(
            f"{label}: missing key(s) {', '.join(missing)}",
            f"every rule needs {', '.join(REQUIRED_KEYS)} (and optionally library)",
        )
    unknown = sorted(set(table) - set(REQUIRED_KEYS) - set(OPTIONAL_KEYS))
    if unknown:
        raise UsageError(
            f"{label}: unknown key(s) {', '.join(unknown)}", f"allowed keys: {', '.join(REQUIRED_KEYS + OPTIONAL_KEYS)}"
        )
    for key in (*REQUIRED_KEYS, *OPTIONAL_KEYS):
        if key in table and not isinstance(table[key], str):
            raise UsageError(f"{label}: {key} must be a string, not {table[key]!r}", f'write {key} = "..."')
    pattern = table["pattern"]
    compile_pattern(pattern, label, "use Python re syntax; single-quoted TOML strings keep backslashes as written")
    if not pattern:
        raise UsageError(f"{label}: empty pattern", "an empty pattern would match every kernel")
    if not FAMILY_ID.match(table["family"]):
        raise UsageError(
            f"{label}: family {table['family']!r} is not a kebab-case id",
            "use lowercase letters, digits and dashes, e.g. attention-decode",
        )
    if table["category"] not in CATEGORIES:
        raise UsageError(f"{label}: unknown category {table['category']!r}", f"use one of: {', '.join(CATEGORIES)}")
    if not table["op"].strip():
        raise UsageError(f"{label}: empty op", 'name the model operation, e.g. "RMSNorm"')
    if table.get("match", "library") not in MATCH_KINDS:
        raise UsageError(f"{label}: match must be one of {', '.join(MATCH_KINDS)}, not {table['match']!r}", "")
    return OpRule(
        pattern=pattern,
        family=table["family"],
        category=table["category"],
        op=table["op"],
        library=table.get("library", ""),
        source=source,
        # a rule that names no library reads the kernel's name by its meaning
        match=table.get("match", "library" if table.get("library") else "meaning"),
    )


# --- matching -------------------------------------------------------------------------------------------------
# Demangled names are long (hundreds of characters of template arguments) and most names are tried against many
# rules before one matches, so each pattern gets a prefilter: literal strings one of which every match must
# contain, read from the parsed pattern. A name without any of them is skipped with a substring test instead of a
# regex search; for many names polars runs all the substring tests at once, columnar. The prefilter is only ever a
# necessary condition, so the results are exactly those of trying re.search rule after rule.

Literals = tuple[tuple[str, bool], ...]  # (text, ignore case): a match contains at least one of them
_Matcher = tuple[re.Pattern[str], Literals | None]


@lru_cache(maxsize=16)
def _matchers(patterns: tuple[str, ...]) -> tuple[_Matcher, ...]:
    return tuple((re.compile(p), _required_literals(p)) for p in patterns)


def _required_literals(pattern: str) -> Literals | None:
    """Literals one of which any match of ``pattern`` contains, or None when none can be derived."""
    try:
        # CPython's own pattern parser (private, untyped); any surprise only disables the prefilter
        tree = importlib.import_module("re._parser").parse(pattern)
        found = _seq_literals(tree.data, bool(tree.state.flags & re.IGNORECASE))
    except Exception:
        return None
    return tuple(sorted(found)) if found else None


def _seq_literals(items: Any, icase: bool) -> frozenset[tuple[str, bool]] | None:
    """Necessary literals of a concatenation: the most selective of its literal runs and required parts."""
    c = importlib.import_module("re._constants")  # the parser's opcodes

    repeats = {c.MAX_REPEAT, c.MIN_REPEAT, getattr(c, "POSSESSIVE_REPEAT", c.MAX_REPEAT)}
    candidates: list[frozenset[tuple[str, bool]]] = []
    run: list[str] = []

    def flush() -> None:
        text = "".join(run)
        if text and (not icase or text.isascii()):
            candidates.append(frozenset({(text.lower() if icase else text, icase)}))
        run.clear()

    for op, av in items:
        if op is c.LITERAL:
            run.append(chr(av))
            continue
        flush()
        sub: frozenset[tuple[str, bool]] | None = None
        if op is c.SUBPATTERN:
            _group, add_flags, del_flags, body = av
            sub_icase = (icase or bool(add_flags & re.IGNORECASE)) and not del_flags & re.IGNORECASE
            sub = _seq_literals(body.data, sub_icase)
        elif op is getattr(c, "ATOMIC_GROUP", None):
            sub = _seq_literals(av.data, icase)
        elif op is c.BRANCH:
            alternatives = [_seq_literals(branch.data, icase) for branch in av[1]]
            found = [alt for alt in alternatives if alt]
            if len(found) == len(alternatives):
                sub = frozenset(lit for alt in found for lit in alt)
        elif op in repeats and av[0] >= 1:
            sub = _seq_literals(av[2].data, icase)
        if sub:
            candidates.append(sub)
    flush()
    if not candidates:
        return None
    return max(candidates, key=lambda alts: min(len(text) for text, _ in alts))


COLUMNAR_FROM = 256  # distinct names from which the columnar prefilter beats a Python loop (its setup is ~20 ms)


def _first_rule_indices(names: pl.Series, shorts: pl.Series | None, matchers: Sequence[_Matcher]) -> list[int]:
    """For each name (and its short name), the index of the first rule that matches, or -1."""
    if names.len() >= COLUMNAR_FROM:
        return _first_rule_indices_columnar(names, shorts, matchers)
    short_list = shorts.to_list() if shorts is not None else [None] * names.len()
    return [_first_rule_index(n, s, matchers) for n, s in zip(names.to_list(), short_list, strict=True)]


def _first_rule_index(name: str | None, short: str | None, matchers: Sequence[_Matcher]) -> int:
    texts = [(t, t.lower() if t.isascii() else None) for t in (name, short) if t is not None]
    for i, (rx, literals) in enumerate(matchers):
        for text, lowered in texts:
            if _may_match(literals, text, lowered) and rx.search(text):
                return i
    return -1


def _may_match(literals: Literals | None, text: str, lowered: str | None) -> bool:
    if literals is None:
        return True
    for lit, icase in literals:
        if icase:
            if lowered is None or lit in lowered:  # lowered is None: non-ASCII text always goes to re.search
                return True
        elif lit in text:
            return True
    return False


def _first_rule_indices_columnar(names: pl.Series, shorts: pl.Series | None, matchers: Sequence[_Matcher]) -> list[int]:
    """``_first_rule_indices`` for many names: the literal prefilters of all rules are evaluated at once by
    polars; only the (name, rule) pairs that pass are checked with ``re.search``, in rule order."""
    cols = ["n"] if shorts is None else ["n", "s"]
    frame = pl.DataFrame([names.alias("n")] if shorts is None else [names.alias("n"), shorts.alias("s")])
    # lowered copies for case-insensitive literals; null for non-ASCII names, which then always go to re.search
    frame = frame.with_columns(
        pl.when(pl.col(c).str.contains(r"^[\x00-\x7f]*$")).then(pl.col(c).str.to_lowercase()).alias(f"{c}_lower")
        for c in cols
    )
    masks: list[pl.Expr] = []
    for i, (_rx, literals) in enumerate(matchers):
        if literals is None:
            masks.append(pl.lit(True).alias(f"r{i}"))
            continue
        tests = [
            pl.col(f"{c}_lower").str.contains(text, literal=True).fill_null(True)
            if icase
            else pl.col(c).str.contains(text, literal=True).fill_null(False)
            for text, icase in literals
            for c in cols
        ]
        masks.append(pl.any_horizontal(tests).alias(f"r{i}"))
    candidates = frame.select(masks) if masks else pl.DataFrame()

    name_list = names.to_list()
    short_list = shorts.to_list() if shorts is not None else [None] * len(name_list)
    first = [-1] * len(name_list)
    left = len(name_list)
    for i, (rx, _literals) in enumerate(matchers):
        if left == 0:
            break
        for j in candidates.get_column(f"r{i}").arg_true().to_list():
            if first[j] != -1:
                continue
            n, s = name_list[j], short_list[j]
            if (n is not None and rx.search(n)) or (s is not None and rx.search(s)):
                first[j] = i
                left -= 1
    return first


def _matchers_of(rules: Sequence[OpRule]) -> tuple[_Matcher, ...]:
    return _matchers(tuple(r.pattern for r in rules))


def classify(
    names: list[str] | pl.Series, rules: list[OpRule], short_names: list[str] | pl.Series | None = None
) -> pl.DataFrame:
    """Map kernel names to operations: one row per input name, in input order.

    Columns: ``name``, ``family``, ``category``, ``op``, ``library``, ``mapped`` (False where no rule matched:
    family "other", category "elementwise / other", op "unmapped") and ``match`` ("library" for a known library's
    kernel, "meaning" for an engine's own name read by what it says, "" when unmapped; ``refine_ops`` may later set
    ``STRUCTURE_MATCH``). ``names`` are demangled
    names (or whatever names a report shows); ``short_names``, when given, are the matching short names, tried
    too. Each distinct name is matched once.
    """
    name = _as_strings(names, "name")
    if short_names is None:
        short = pl.Series("short", [None] * name.len(), dtype=pl.String)
    else:
        short = _as_strings(short_names, "short")
        if short.len() != name.len():
            raise ValueError(f"short_names has {short.len()} entries for {name.len()} names")
    frame = pl.DataFrame([name, short])
    distinct = frame.unique(maintain_order=True)

    first = _first_rule_indices(
        distinct["name"], None if short_names is None else distinct["short"], _matchers_of(rules)
    )
    unmapped = (UNMAPPED_FAMILY, UNMAPPED_CATEGORY, UNMAPPED_OP, "", False, "")
    values = [
        unmapped if i < 0 else (rules[i].family, rules[i].category, rules[i].op, rules[i].library, True, rules[i].match)
        for i in first
    ]
    lookup = distinct.with_columns(
        pl.Series(column, [v[k] for v in values], dtype=pl.Boolean if column == "mapped" else pl.String)
        for k, column in enumerate(COLUMNS[1:])
    )
    out = frame.with_row_index("_row").join(lookup, on=["name", "short"], how="left", nulls_equal=True)
    return out.sort("_row").select(COLUMNS)


def keyed_like(lookup: pl.DataFrame, frame: pl.DataFrame, key: str = "name") -> pl.DataFrame:
    """``lookup`` with its ``key`` column of ``frame[key]``'s type, to be joined onto ``frame``: the trace's frames
    hold kernel and call names as categoricals (4 bytes a row, not 16), small tables of distinct names as text."""
    want = frame.schema[key]
    return lookup if lookup.schema[key] == want else lookup.with_columns(pl.col(key).cast(want))


def _as_strings(values: list[str] | pl.Series, alias: str) -> pl.Series:
    if isinstance(values, pl.Series):
        return values.cast(pl.String).alias(alias)
    return pl.Series(alias, list(values), dtype=pl.String)


# Generic PyTorch/CUTLASS kernel names say little; the functor or op in their template arguments says what runs.
_GENERIC_SHORT = re.compile(
    r"^(elementwise_kernel|vectorized_elementwise_kernel|unrolled_elementwise_kernel|reduce_kernel|"
    r"index_elementwise_kernel|elementwise_kernel_with_index|vectorized_gather_kernel|kernel|Kernel|device_kernel)$"
)
_DETAIL = re.compile(r"(\w+Functor\w*|\w+_kernel_cuda|\w+Ops|\w+_kernel_impl\w*|\w+_kernel(?=[<(]))")
_WORD = re.compile(r"\w+")
_MAX_TOKEN = 256  # identifiers longer than this name nothing a reader could use, and would cost time squared


def _details(name: str) -> list[str]:
    """``_DETAIL`` matches, found identifier by identifier: searching the whole name backtracks over every start
    position of a long identifier (quadratic in its length); each pattern starts with ``\\w+``, so a match inside
    an identifier also starts at the identifier's first character."""
    out = []
    for m in _WORD.finditer(name):
        tok = m.group(0)
        if len(tok) > _MAX_TOKEN:
            continue
        d = _DETAIL.match(tok + name[m.end() : m.end() + 1])
        if d:
            out.append(d.group(1))
    return out


def kernel_label(name: str, short: str | None) -> str:
    """A short, distinguishing label: the short name, plus the functor or op from the template arguments of
    generic PyTorch kernels (``vectorized_elementwise_kernel<MulFunctor>``)."""
    base = short or name
    if not _GENERIC_SHORT.match(base):
        return base
    tokens = [t for t in _details(name) if t != base and not t.startswith(("gpu_kernel", "launch_", "index_kernel"))]
    functors = [t for t in tokens if "Functor" in t]
    if functors:  # the innermost functor is the operation: BinaryFunctor<..., MulFunctor<float>> -> MulFunctor
        return f"{base}<{functors[-1]}>"
    return f"{base}<{tokens[0]}>" if tokens else base


def label_frame(df: pl.DataFrame, name: str = "name", short: str = "short") -> pl.DataFrame:
    """Add a ``label`` column (``kernel_label``), computed once per distinct (name, short) pair; null where either
    is null (as a join on the two texts gives). Rows find their pair by an integer made of the two texts' codes
    (``text_codes``), never by hashing each row's texts: at two million kernels a join on the texts held 700 MB."""
    from .distribution import text_codes

    name_codes, names = text_codes(df[name])
    short_codes, shorts = text_codes(df[short])
    key = name_codes.cast(pl.Int64) * (1 << 32) + short_codes.cast(pl.Int64)
    pairs = key.unique().drop_nulls().sort()
    by_name, by_short = names.to_list(), shorts.to_list()
    labels = [kernel_label(by_name[k >> 32], by_short[k & 0xFFFFFFFF]) for k in pairs.to_list()]
    label = key.replace_strict(pairs, pl.Series(labels, dtype=pl.String), default=None, return_dtype=pl.String)
    return df.with_columns(label.alias("label"))
