#!/usr/bin/env python3
"""Write ``src/nsys_doctor/cli/helptext.py``: every help text of the command line as click prints it, at the widths
``cli.app.HELP_WIDTHS``, so that ``nsys-doctor --help`` and ``nsys-doctor COMMAND --help`` print without importing
click (``cli/main.py``). Run it after changing a command's options or help; ``tests/test_perf_startup.py`` fails
until it has been run.

    python scripts/gen_helptext.py
"""

from __future__ import annotations

import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
TARGET = ROOT / "src" / "nsys_doctor" / "cli" / "helptext.py"


def module_text(texts: dict[tuple[str, int], str]) -> str:
    """The module holding ``texts``: one string literal per line of each text, so that no line is long."""
    out = [
        '"""Every help text of the command line, as click prints it at the widths of ``cli.app.HELP_WIDTHS``.',
        "",
        "Written by scripts/gen_helptext.py: do not edit (tests/test_perf_startup.py checks it against click).",
        '"""',
        "",
        "TEXTS: dict[tuple[str, int], str] = {",
    ]
    for (path, width), text in sorted(texts.items()):
        out.append(f"    ({path!r}, {width}): (")
        out += [f"        {line!r}" for line in text.splitlines(keepends=True)]
        out.append("    ),")
    out.append("}")
    return "\n".join(out) + "\n"


def main() -> int:
    sys.path.insert(0, str(ROOT / "src"))
    from nsys_doctor.cli.app import help_texts

    TARGET.write_text(module_text(help_texts()), encoding="utf-8")
    print(f"wrote {TARGET.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
