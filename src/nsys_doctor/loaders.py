"""Reading the files the analyses take as data: op-mapping rules (TOML) and model descriptions (a Hugging Face
``config.json`` or a shapes TOML).

The analyses stay pure functions of parsed data: ``analysis/ops.py`` validates rule text (``parse_rules``) and
``analysis/model.py`` builds a ``Model`` from a parsed document (``model_from_text``). This module opens the files;
every failure is a ``UsageError`` naming the file (one line, exit 2).
"""

from __future__ import annotations

from pathlib import Path

from .analysis.model import Model, model_from_text
from .analysis.ops import OpRule, builtin_rules, parse_rules
from .errors import UsageError

RULES_HINT = "pass a TOML file of [[rule]] tables (see the header of nsys_doctor/data/ops.toml)"
MODEL_HINT = "pass a Hugging Face config.json or a shapes TOML"


def _read_text(path: Path, what: str, not_text: str, hint: str) -> str:
    """The file's text (UTF-8, a byte-order mark dropped); a ``UsageError`` when it cannot be read or is not text."""
    try:
        return path.read_text(encoding="utf-8-sig")
    except UnicodeDecodeError as exc:
        raise UsageError(f"{what} {path} is not UTF-8 text (byte {exc.start}): {not_text}", hint) from exc
    except OSError as exc:
        raise UsageError(f"cannot read {what} {path}: {exc.strerror or exc}", hint) from exc


def read_rules_file(user_file: str | Path) -> list[OpRule]:
    """The rules of one user TOML file (``[[rule]]`` tables), validated."""
    path = Path(user_file)
    return parse_rules(_read_text(path, "op rules file", "not a TOML file", RULES_HINT), source=str(path))


def load_rules(user_file: str | Path | None = None, extra: list[OpRule] | None = None) -> list[OpRule]:
    """The rules to classify with: the user's file (if any) first, so that they override, then ``extra`` (e.g.
    the project config's), then the shipped ones.

    Raises ``UsageError`` naming the file and the rule for a missing file, bad TOML, a missing or unknown key, an
    unknown category, a family that is not a kebab-case id, or a pattern that is not a valid Python regex.
    """
    user = read_rules_file(user_file) if user_file is not None else []
    return [*user, *(extra or []), *builtin_rules()]


def read_model(path: str | Path, dtype: str | None = None, group_size: int | None = None) -> Model:
    """Read ``--model``: a config.json (JSON) or a shapes file (TOML), told apart by content.

    Raises ``UsageError`` naming the file (and the key) when it cannot be read, is not UTF-8 text, not JSON or
    TOML, or holds a value of the wrong type or out of range."""
    p = Path(path)
    text = _read_text(p, "model file", "not a config.json or TOML", MODEL_HINT)
    return model_from_text(text, p.name, p.suffix, dtype, group_size, f"model file {p}")
