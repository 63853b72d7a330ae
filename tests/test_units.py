"""Units, time syntax and SQLite-compatible rounding."""

from __future__ import annotations

import pytest

from nsys_doctor.errors import UsageError
from nsys_doctor.units import parse_duration_ns, parse_timeunit, round_half_up


@pytest.mark.parametrize(
    ("text", "ns"),
    [
        ("1500", 1500),
        ("10s", 10_000_000_000),
        ("1s2ms3us4ns", 1_002_003_004),
        ("1.5ms", 1_500_000),
        ("-2e3us", -2_000_000),
        ("2min", 120_000_000_000),
        ("1h", 3_600_000_000_000),
        ("250usec", 250_000),
    ],
)
def test_duration_syntax(text, ns):
    assert parse_duration_ns(text) == ns


@pytest.mark.parametrize("text", ["", "abc", "10 parsecs", "1s2"])
def test_bad_duration(text):
    if text == "1s2":  # a trailing bare number is nanoseconds, as in nsys
        assert parse_duration_ns(text) == 1_000_000_002
        return
    with pytest.raises(UsageError):
        parse_duration_ns(text)


@pytest.mark.parametrize(
    ("x", "nd", "want"),
    # SQLite 3.46 round(): exact binary value, ties away from zero (Python's round would give 2.2 and 0.12)
    [
        (2.25, 1, 2.3),
        (-2.25, 1, -2.3),
        (0.125, 2, 0.13),
        (2.675, 2, 2.67),
        (0.35, 1, 0.3),
        (1234567.25, 1, 1234567.3),
        (8672, 1, 8672.0),
    ],
)
def test_round_half_up_matches_sqlite(x, nd, want):
    assert round_half_up(x, nd) == want


def test_timeunit_prefixes():
    assert parse_timeunit("usec") == "us"
    assert parse_timeunit("msec") == "ms"
    assert parse_timeunit("seconds") == "sec"
    with pytest.raises(UsageError):
        parse_timeunit("fortnight")


def test_format_names_groups_numbered_names_and_stops_at_the_limit():
    from nsys_doctor.units import format_names, name_pattern

    assert name_pattern("layer_3_token_17") == "layer_{N}_token_{M}"
    names = [f"layer_{i}_token_{j}" for i in range(4) for j in range(3)] + ["token_0_processing", "decode"]
    assert format_names(names) == "'layer_{N}_token_{M}' (12 names), 'decode', 'token_{N}_processing'"
    assert format_names(["a", "b", "c", "d", "e"], limit=2) == "'a', 'b' and 3 more"
    long = ["x" * 100 + str(i) for i in range(3)]
    assert format_names(long, width=10, quote=False) == "xxxxxxx... (3 names)"


def _decimal_round(x: float | int, nd: int) -> float:
    """The reference: Python's decimal module, exact value quantized half up (an independent implementation)."""
    from decimal import ROUND_HALF_UP, Decimal

    return float(Decimal(x).quantize(Decimal(1).scaleb(-nd), rounding=ROUND_HALF_UP))


def test_round_half_up_is_decimals_on_many_values():
    import math
    import random

    rng = random.Random(7)
    values: list[float | int] = [0.0, -0.0, 0.05, -0.05, 0.04, -0.04, 1e-300, 5e-324, 123456789012345.65, 8672]
    values += [rng.uniform(-1e6, 1e6) for _ in range(20_000)]
    values += [k / 20 for k in range(-4000, 4000)]  # ties at one decimal (when exact) and their neighbours
    values += [k / 200 + 0.005 for k in range(-2000, 2000)]
    values += [rng.randrange(-(2**62), 2**62) / rng.choice([1, 10, 1000, 7, 3]) for _ in range(5_000)]
    values += [rng.randrange(0, 2**63) for _ in range(1_000)]
    # doubles of every exponent up to 2**40 (subnormals too), either sign
    values += [rng.choice([1, -1]) * rng.getrandbits(53) * 2.0 ** rng.randrange(-1127, -13) for _ in range(20_000)]
    for nd in (0, 1, 2, 3):
        for x in values:
            got, want = round_half_up(x, nd), _decimal_round(x, nd)
            assert got == want and math.copysign(1.0, got) == math.copysign(1.0, want), (x, nd, got, want)  # type: ignore[arg-type]
    assert round_half_up(None) is None
    assert math.isinf(round_half_up(math.inf))  # type: ignore[arg-type]
