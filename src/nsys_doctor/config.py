"""Project configuration: ``nsys-doctor.toml``, or ``[tool.nsys-doctor]`` in ``pyproject.toml``.

Looked up from the current directory upwards (the first directory that has either file wins). Keys used today:

    [tool.nsys-doctor]
    ops = "profiling/ops.toml"          # extra kernel-to-operation rules (relative to the config file)

    [[tool.nsys-doctor.ops-rule]]       # or rules written inline, same keys as in ops.toml
    pattern = "my_fused_gemv"
    family = "gemv"
    category = "GEMV"
    op = "linear (GEMV)"

    [tool.nsys-doctor.gate]             # defaults for `nsys-doctor diff --gate`
    threshold = 5                       # allowed regression of the GPU time per step, in percent
    families = { gemv = 3, attention-decode = 10 }   # allowed regression per operation family, in percent

In ``nsys-doctor.toml`` the same keys sit at the top level (``ops = ...``, ``[[ops-rule]]``, ``[gate]``).

Every value is checked where it is read, by the accessors below (``ops_path``, ``inline_op_rules``,
``gate_settings``): a value of the wrong type or out of range is a ``UsageError`` naming the file and the key.
"""

from __future__ import annotations

import math
import tomllib
from dataclasses import dataclass, field
from pathlib import Path

from .errors import UsageError

GATE_KEYS = ("threshold", "families")


@dataclass(frozen=True)
class Config:
    path: Path | None = None
    data: dict[str, object] = field(default_factory=dict)

    def relative(self, value: str) -> Path:
        p = Path(value)
        return p if p.is_absolute() or self.path is None else self.path.parent / p

    def key(self, name: str) -> str:
        """A key as the user wrote it: ``tool.nsys-doctor.gate.threshold`` in pyproject.toml, ``gate.threshold``
        in nsys-doctor.toml."""
        return f"tool.nsys-doctor.{name}" if self.path is not None and self.path.name == "pyproject.toml" else name

    def where(self, name: str) -> str:
        """``project config PATH, key KEY``: how errors name a value."""
        return f"project config {self.path}, key {self.key(name)}"


def find_config(start: Path | None = None) -> Config:
    here = (start or Path.cwd()).resolve()
    for d in (here, *here.parents):
        own = d / "nsys-doctor.toml"
        if own.is_file():
            return Config(own, _read(own))
        py = d / "pyproject.toml"
        if py.is_file():
            section = _read(py).get("tool", {})
            if isinstance(section, dict) and "nsys-doctor" in section:
                if not isinstance(section["nsys-doctor"], dict):
                    raise UsageError(
                        f"project config {py}: tool.nsys-doctor must be a table",
                        "write the settings under a [tool.nsys-doctor] header",
                    )
                return Config(py, section["nsys-doctor"])
    return Config()


def _read(path: Path) -> dict[str, object]:
    hint = "fix the TOML or remove the file"
    try:
        return tomllib.loads(path.read_text(encoding="utf-8-sig"))
    except UnicodeDecodeError as exc:
        raise UsageError(f"cannot read the project config {path}: not UTF-8 text (byte {exc.start})", hint) from exc
    except (OSError, tomllib.TOMLDecodeError) as exc:
        raise UsageError(f"cannot read the project config {path}: {exc}", hint) from exc
    except RecursionError as exc:
        raise UsageError(f"cannot read the project config {path}: nested too deeply", hint) from exc


def ops_path(cfg: Config) -> Path | None:
    """The op rules file named by ``ops`` (relative to the config file), or None when the key is absent.

    Raises ``UsageError`` naming the config file and key when ``ops`` is not a non-empty string."""
    if cfg.path is None or "ops" not in cfg.data:
        return None
    value = cfg.data["ops"]
    if not isinstance(value, str) or not value.strip():
        raise UsageError(
            f"{cfg.where('ops')}: must be the path of a TOML file of [[rule]] tables, not {value!r}",
            'e.g. ops = "profiling/ops.toml"',
        )
    return cfg.relative(value)


def inline_op_rules(cfg: Config) -> list[object]:
    """The ``[[ops-rule]]`` tables written in the config (unvalidated rule contents: ``analysis.ops`` checks them),
    or an empty list. Raises ``UsageError`` when ``ops-rule`` is not an array of tables."""
    if cfg.path is None or "ops-rule" not in cfg.data:
        return []
    value = cfg.data["ops-rule"]
    if not isinstance(value, list):
        raise UsageError(
            f"{cfg.where('ops-rule')}: must be an array of tables, not {type(value).__name__}",
            f"write each rule as a [[{cfg.key('ops-rule')}]] table",
        )
    return list(value)


def _percent(cfg: Config, key: str, value: object) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise UsageError(
            f"{cfg.where(key)}: must be a number (percent), not {value!r}", "e.g. 5 for a 5% allowed regression"
        )
    v = float(value)
    if not math.isfinite(v) or v < 0:
        raise UsageError(
            f"{cfg.where(key)}: must be a finite number >= 0 (percent), not {value!r}",
            "give the allowed regression in percent, e.g. 5",
        )
    return v


def gate_settings(cfg: Config) -> tuple[float | None, dict[str, float]]:
    """The ``diff --gate`` defaults from the ``gate`` table of the project config.

    Returns ``(threshold, families)``: ``threshold`` is the allowed regression of the GPU time per step in percent (None
    when the config sets none), ``families`` maps operation family ids (kebab-case, as the op rules name them,
    e.g. ``gemv``) to their allowed regression in percent (empty when unset). Every value is a finite float >= 0.

    Raises ``UsageError`` naming the config file and the key (``tool.nsys-doctor.gate.threshold``,
    ``gate.families.gemv`` ...) when ``gate`` is not a table, has an unknown key, ``families`` is not a table,
    or a value is not a number, is negative, nan or infinite.
    """
    if cfg.path is None or "gate" not in cfg.data:
        return None, {}
    gate = cfg.data["gate"]
    if not isinstance(gate, dict):
        raise UsageError(f"{cfg.where('gate')}: must be a table, not {gate!r}", f"write [{cfg.key('gate')}]")
    unknown = sorted(set(gate) - set(GATE_KEYS))
    if unknown:
        raise UsageError(
            f"{cfg.where('gate')}: unknown key(s) {', '.join(unknown)}", f"allowed keys: {', '.join(GATE_KEYS)}"
        )
    threshold = _percent(cfg, "gate.threshold", gate["threshold"]) if "threshold" in gate else None
    families: dict[str, float] = {}
    raw = gate.get("families", {})
    if not isinstance(raw, dict):
        raise UsageError(
            f"{cfg.where('gate.families')}: must be a table of family = percent, not {raw!r}",
            "e.g. families = { gemv = 3, attention-decode = 10 }",
        )
    from .analysis.ops import FAMILY_ID

    for name, value in raw.items():
        if not FAMILY_ID.match(name):
            raise UsageError(
                f"{cfg.where('gate.families')}: {name!r} is not an operation family id",
                "use the family ids of the op rules (lowercase kebab-case, e.g. gemv, attention-decode)",
            )
        families[name] = _percent(cfg, f"gate.families.{name}", value)
    return threshold, families
