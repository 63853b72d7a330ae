"""``Value``: equality, hashing, ``repr`` and ``replace`` for the small record classes that every command loads
(the trace's schema, a report's table and columns, the event filter...). ``dataclasses`` would write them, but it
imports ``inspect`` (and with it ``ast``, ``dis`` and ``tokenize``), which takes longer than a summary report of a
small trace; these classes spell out their ``__init__`` and name their fields in ``_fields`` instead."""

from __future__ import annotations

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any, Self


class Value:
    """A record compared, hashed and shown by the fields named in ``_fields`` (in order), which are also the
    parameters of its ``__init__``: what ``@dataclass(frozen=True)`` gives, without the enforcement of
    ``frozen`` (a ``Value`` is never changed after it is made; ``replace`` makes a changed copy)."""

    __slots__ = ()
    _fields: tuple[str, ...] = ()

    def _key(self) -> tuple[Any, ...]:
        return tuple(getattr(self, f) for f in self._fields)

    def __eq__(self, other: object) -> bool:
        if other.__class__ is self.__class__:
            return self._key() == other._key()
        return NotImplemented

    def __hash__(self) -> int:
        return hash(self._key())

    def __repr__(self) -> str:
        return f"{type(self).__name__}({', '.join(f'{f}={getattr(self, f)!r}' for f in self._fields)})"

    def replace(self, **changes: Any) -> Self:
        """A copy with ``changes`` (field name -> value), made by ``__init__``."""
        unknown = set(changes) - set(self._fields)
        if unknown:
            raise TypeError(f"{type(self).__name__} has no field {sorted(unknown)[0]!r}")
        return type(self)(**{f: changes.get(f, getattr(self, f)) for f in self._fields})
