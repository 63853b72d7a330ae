"""Project configuration: ``nsys-doctor.toml``, or ``[tool.nsys-doctor]`` in ``pyproject.toml``.

Looked up from the current directory upwards (the first directory that has either file wins). Keys used today:

    [tool.nsys-doctor]
    ops = "profiling/ops.toml"          # extra kernel-to-operation rules (relative to the config file)

    [[tool.nsys-doctor.ops-rule]]       # or rules written inline, same keys as in ops.toml
    pattern = "my_fused_gemv"
    family = "gemv"
    category = "GEMV"
    op = "linear (GEMV)"

In ``nsys-doctor.toml`` the same keys sit at the top level (``ops = ...``, ``[[ops-rule]]``).
"""

from __future__ import annotations

import tomllib
from dataclasses import dataclass, field
from pathlib import Path

from .errors import UsageError


@dataclass(frozen=True)
class Config:
    path: Path | None = None
    data: dict[str, object] = field(default_factory=dict)

    def relative(self, value: str) -> Path:
        p = Path(value)
        return p if p.is_absolute() or self.path is None else self.path.parent / p


def find_config(start: Path | None = None) -> Config:
    here = (start or Path.cwd()).resolve()
    for d in (here, *here.parents):
        own = d / "nsys-doctor.toml"
        if own.is_file():
            return Config(own, _read(own))
        py = d / "pyproject.toml"
        if py.is_file():
            section = _read(py).get("tool", {})
            if isinstance(section, dict) and isinstance(section.get("nsys-doctor"), dict):
                return Config(py, section["nsys-doctor"])
    return Config()


def _read(path: Path) -> dict[str, object]:
    try:
        return tomllib.loads(path.read_text(encoding="utf-8"))
    except (OSError, tomllib.TOMLDecodeError) as exc:
        raise UsageError(f"cannot read the project config {path}: {exc}", "fix the TOML or remove the file") from exc
