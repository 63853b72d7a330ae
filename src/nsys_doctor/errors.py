"""The one exception family of nsys-doctor.

Every error a user can cause (bad path, bad flag, unsupported trace) is an ``NsysDoctorError`` with a message
naming the problem and a hint naming the fix. The CLI prints ``error: <message> (<hint>)`` on one line and exits
with code 2. Anything else that escapes is a bug and is allowed to raise.
"""

from __future__ import annotations

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any


class NsysDoctorError(Exception):
    """A problem with the user's input, with the fix to apply."""

    exit_code = 2

    def __init__(self, message: str, hint: str = "") -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint

    def one_line(self) -> str:
        text = self.message if not self.hint else f"{self.message}: {self.hint}"
        return " ".join(text.split())


class TraceError(NsysDoctorError):
    """The trace cannot be opened or read."""


class UsageError(NsysDoctorError):
    """A command-line argument is wrong."""


def parse_toml(text: str, file: str, kind: str, hint: str) -> dict[str, Any]:
    """``text`` as a TOML document; invalid TOML, or TOML nested too deeply to parse, is a ``UsageError`` naming
    ``file`` (``"mapping file m.toml"``) and the ``kind`` of file it should be, with ``hint``."""
    import tomllib

    try:
        return tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise UsageError(f"{file} is not valid TOML: {exc}", hint) from exc
    except RecursionError as exc:
        raise UsageError(f"{file} is nested too deeply to be a {kind}", hint) from exc
