"""The one exception family of nsys-doctor.

Every error a user can cause (bad path, bad flag, unsupported trace) is an ``NsysDoctorError`` with a message
naming the problem and a hint naming the fix. The CLI prints ``error: <message> (<hint>)`` on one line and exits
with code 2. Anything else that escapes is a bug and is allowed to raise.
"""

from __future__ import annotations


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
