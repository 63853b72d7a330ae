"""Functions of the C library's allocator (glibc's ``mallopt``, ``malloc_trim``), where the C library has them.

Looked up once each, when first asked for: ctypes costs about 2 ms to import, so only commands that read big tables
(and load polars) ever load it. Used by ``cli/main.bound_native_heap`` (the mapping threshold, set at start) and
``trace/open.release_native_heap`` (free memory given back after a parallel read)."""

from __future__ import annotations

from collections.abc import Callable
from functools import cache


@cache
def libc_function(name: str) -> Callable[..., int] | None:
    """The C library's function ``name``, or None where there is none (macOS has no ``malloc_trim``, musl neither;
    Windows has no handle to the C library)."""
    try:
        import ctypes

        return getattr(ctypes.CDLL(None), name)
    except (AttributeError, OSError, TypeError, ImportError):
        return None
