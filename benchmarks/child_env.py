"""How the benchmarks start nsys-doctor as a user's installed command does (standard library only).

``entry_script``: the console script beside the interpreter, else its lines through ``python -c`` (not ``python
-m``, whose runpy imports the installed script does not make). ``bytecode_env``: the environment of those children,
with cached bytecode as an installed package has it (pip compiles the ``.pyc`` files at install) under a temporary
PYTHONPYCACHEPREFIX, so the source tree is left alone; PYTHONDONTWRITEBYTECODE, which some images set, is cleared.
With ``no_bytecode`` every module is compiled at every start instead (as in such images).
"""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path

ENTRY = "import sys; from nsys_doctor.cli.main import entry; sys.exit(entry())"
"""The console script's lines (``[project.scripts]``), for ``python -c``."""


def entry_script(python: str) -> list[str]:
    """How a user starts nsys-doctor: the console script beside the interpreter, else its lines by ``python -c``."""
    exe = shutil.which("nsys-doctor", path=str(Path(python).parent))
    return [exe] if exe else [python, "-c", ENTRY]


def bytecode_env(no_bytecode: bool) -> tuple[dict[str, str], str | None]:
    """(environment for the children, the temporary bytecode folder to remove at the end, or None)."""
    env = dict(os.environ)
    if no_bytecode:
        env["PYTHONDONTWRITEBYTECODE"] = "1"
        env.pop("PYTHONPYCACHEPREFIX", None)
        return env, None
    env.pop("PYTHONDONTWRITEBYTECODE", None)
    pyc_dir = tempfile.mkdtemp(prefix="nsys-doctor-pyc-")
    env["PYTHONPYCACHEPREFIX"] = pyc_dir
    return env, pyc_dir
