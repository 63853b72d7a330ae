"""Units and rounding: the single place that turns integer nanoseconds and bytes into text.

nsys rounds with SQLite's ``round(x, n)``, which rounds the exact binary value half away from zero.
Python's ``round`` rounds half to even, so ``round_half_up`` reproduces SQLite here.
"""

from __future__ import annotations

import math
import sys

from .errors import UsageError


def round_half_up(x: float | int | None, ndigits: int = 1) -> float | None:
    """SQLite 3.46 ``round(x, ndigits)``: exact binary value, ties away from zero; always a float (a negative value
    that rounds to zero is -0.0). In integers: the float's exact ratio p/q (q a power of two) scaled by 10**ndigits
    and rounded half up in magnitude, then divided back, which Python rounds correctly."""
    if x is None:
        return None
    if isinstance(x, int):
        return float(x)
    if not math.isfinite(x):
        return x
    if ndigits == 1:  # a tie at one decimal is a float of which 4x is an odd integer; elsewhere round() agrees
        y = 4.0 * x
        if not (y.is_integer() and y % 2 == 1):
            return round(x, 1)
    p, q = x.as_integer_ratio()
    scale = 10**ndigits
    k = (2 * abs(p) * scale + q) // (2 * q)
    return -(k / scale) if math.copysign(1.0, x) < 0 else k / scale


# Time units accepted by --timeunit and in --filter-time values, in nanoseconds: the one table of time factors.
TIME_UNITS_NS: dict[str, int] = {
    "ns": 1,
    "nsec": 1,
    "us": 1_000,
    "usec": 1_000,
    "ms": 1_000_000,
    "msec": 1_000_000,
    "s": 1_000_000_000,
    "sec": 1_000_000_000,
    "m": 60_000_000_000,
    "min": 60_000_000_000,
    "h": 3_600_000_000_000,
    "hour": 3_600_000_000_000,
}
# Byte units, decimal and binary, in bytes: the one table of size factors.
BYTE_UNITS: dict[str, int] = {
    "B": 1,
    "KB": 1_000,
    "KiB": 1_024,
    "MB": 1_000_000,
    "MiB": 1_048_576,
    "GB": 1_000_000_000,
    "GiB": 1_073_741_824,
}

# Display units of nsys formatters: name -> (divisor, decimals).
DISPLAY_TIME_UNITS: dict[str, tuple[int, int]] = {
    u: (TIME_UNITS_NS[u], decimals) for u, decimals in (("ns", 0), ("us", 3), ("ms", 4), ("sec", 4))
}
DISPLAY_MEM_UNITS: dict[str, tuple[int, int]] = {
    u: (BYTE_UNITS[u], decimals)
    for u, decimals in (("B", 0), ("KB", 2), ("KiB", 2), ("MB", 3), ("MiB", 3), ("GB", 3), ("GiB", 3))
}


def parse_timeunit(text: str) -> str:
    """Prefix-match a display time unit the way nsys does (``u``, ``usec``, ``milli`` ...)."""
    t = text.strip().lower()
    aliases = {
        "ns": "ns",
        "nsec": "ns",
        "nanoseconds": "ns",
        "us": "us",
        "usec": "us",
        "microseconds": "us",
        "ms": "ms",
        "msec": "ms",
        "milliseconds": "ms",
        "s": "sec",
        "sec": "sec",
        "seconds": "sec",
    }
    if t in aliases:
        return aliases[t]
    matches = {v for k, v in aliases.items() if len(t) >= 1 and k.startswith(t)}
    if len(matches) == 1:
        return matches.pop()
    raise UsageError(f"unknown time unit '{text}'", "use one of ns, us, ms, sec")


_TIME_TOKEN = r"([-+]?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?)\s*([a-zA-Z]*)"


def parse_duration_ns(text: str) -> int:
    """Parse nsys time syntax into integer ns: ``1500``, ``1.5s``, ``1s2ms3us4ns``, ``-2e3us``."""
    import re
    from decimal import ROUND_HALF_UP, Decimal

    token = re.compile(_TIME_TOKEN)
    s = text.strip()
    if not s:
        raise UsageError("empty time value", "write a time such as 10s, 1500ms or 1s200ms")
    pos = 0
    total = Decimal(0)
    while pos < len(s):
        m = token.match(s, pos)
        if not m or m.end() == pos:
            raise UsageError(
                f"bad time value '{text}'", "write a time such as 10s, 1500ms, 1s2ms3us4ns (units: ns us ms s m h)"
            )
        unit = m.group(2).lower() or "ns"
        if unit not in TIME_UNITS_NS:
            raise UsageError(
                f"bad time unit '{m.group(2)}' in '{text}'", "use ns, us, ms, s, m or h (e.g. 10s or 1s500ms)"
            )
        total += Decimal(m.group(1)) * TIME_UNITS_NS[unit]
        pos = m.end()
    return int(total.to_integral_value(rounding=ROUND_HALF_UP))


def format_ns(ns: float | int | None) -> str:
    """Human-readable duration for reports (not nsys parity): 12.3 us, 4.56 ms, 1.234 s."""
    if ns is None:
        return "-"
    a = abs(ns)
    if a < 1_000:
        return f"{ns:.0f} ns"
    if a < 1_000_000:
        return f"{ns / 1_000:.1f} us"
    if a < 1_000_000_000:
        return f"{ns / 1_000_000:.2f} ms"
    return f"{ns / 1_000_000_000:.3f} s"


def format_bytes(n: float | int | None) -> str:
    if n is None:
        return "-"
    for unit, div in (("GB", 1e9), ("MB", 1e6), ("kB", 1e3)):
        if abs(n) >= div:
            return f"{n / div:.2f} {unit}"
    return f"{n:.0f} B"


def name_pattern(name: str) -> str:
    """A name with its numbers replaced by placeholders: ``layer_3_token_7`` -> ``layer_{N}_token_{M}``."""
    import re

    marks = iter("NMKLPQRSTUVW")
    return re.sub(r"\d+", lambda _m: "{" + next(marks, "X") + "}", name)


def format_names(names: list[str] | set[str], limit: int = 3, width: int = 60, quote: bool = True) -> str:
    """A short, stable list of names for one output line: numbered names grouped by their pattern (with a count),
    at most ``limit`` entries, each cut to ``width`` characters, then "and N more"."""
    groups: dict[str, int] = {}
    for n in sorted(set(names)):
        key = name_pattern(" ".join(n.split()))
        key = key if len(key) <= width else key[: width - 3] + "..."
        groups[key] = groups.get(key, 0) + 1
    items = []
    for key, count in sorted(groups.items(), key=lambda kv: (-kv[1], kv[0])):
        text = repr(key) if quote else key
        items.append(f"{text} ({count} names)" if count > 1 else text)
    more = len(items) - limit
    return ", ".join(items[:limit]) + (f" and {more} more" if more > 0 else "")


def _is_number(value: object) -> bool:
    """An int, a float or a ``decimal.Decimal`` (only loaded where something made one)."""
    if isinstance(value, (int, float)):
        return True
    decimal = sys.modules.get("decimal")
    return decimal is not None and isinstance(value, decimal.Decimal)


def scalar_int(value: object) -> int:
    """A polars aggregate of a numeric column (``Series.min()``, ``max()``, ``median()``, ``sum()``) as an int;
    TypeError for None or a value that is not a number, as ``int()`` raises for None."""
    if _is_number(value):
        return int(value)  # type: ignore[call-overload]
    raise TypeError(f"expected a number, got {value!r}")


def scalar_float(value: object) -> float:
    """A polars aggregate of a numeric column (``Series.mean()``, ``median()`` ...) as a float; TypeError for None
    or a value that is not a number."""
    if _is_number(value):
        return float(value)  # type: ignore[arg-type]
    raise TypeError(f"expected a number, got {value!r}")


def pct(x: object, digits: int = 1, *, scale: float = 100.0, signed: bool = False) -> str:
    """The one percent formatter (reports, explain): a share (0.123 -> ``12.3%``; ``scale=1`` for a value
    already in percent), ``digits`` decimals, ``signed`` for a change (``+4.0%``); ``-`` for anything not a number."""
    if not isinstance(x, int | float) or isinstance(x, bool):
        return "-"
    return f"{scale * x:{'+' if signed else ''}.{digits}f}%"
