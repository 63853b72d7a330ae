"""Opening nsys traces and reading them as typed, columnar tables."""

from .open import Trace

__all__ = ["Trace"]
