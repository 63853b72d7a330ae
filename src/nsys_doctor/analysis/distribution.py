"""Tail statistics, defined once for all of nsys-doctor's own analyses (not for nsys parity).

Percentiles use the **nearest-rank** method: pXX is the smallest observed value such that at least XX% of the
values are less than or equal to it, i.e. the value at 1-based rank ceil(XX/100 * n) of the sorted durations.
Every percentile is therefore a duration that really happened; p50 of an even count is the lower middle value.

Derived figures:
- ``p99/p50`` and ``max/p50``: tail ratios (1.0 = no tail);
- tail score = ``max_us * log2(count + 1) * max(1, max/p50)``, the formula inference engines already use;
- tail excess = sum over instances above p99 of (duration - p50), in ns: what fixing the tail would save.
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Mapping, Sequence

import numpy as np
import polars as pl

from ..trace.schema import GRID
from ..units import scalar_float as scalar_float  # the analyses' name for them
from ..units import scalar_int as scalar_int

PERCENTILES = (50, 95, 99)


def percentile(values: Sequence[int | float] | pl.Series, pct: int) -> int | float | None:
    """Nearest-rank percentile of a list or a polars Series (None when empty). A Series without nulls is sorted
    by polars (millions of values: no Python list is built; not again when polars knows it is sorted); the value
    is the same."""
    if isinstance(values, pl.Series):
        if values.null_count():
            return percentile(values.to_list(), pct)
        if values.is_empty():
            return None
        by_size = values if values.flags["SORTED_ASC"] else values.sort()
        return by_size[nearest_rank(len(values), pct) - 1]
    if not values:
        return None
    ordered = sorted(values)
    return ordered[nearest_rank(len(ordered), pct) - 1]


def nearest_rank(n: int, pct: int) -> int:
    """The 1-based rank of the nearest-rank ``pct`` percentile among ``n`` values: ceil(n * pct / 100), at least 1."""
    return max(1, (n * pct + 99) // 100)


def percentiles_in_place(values: np.ndarray, pcts: Sequence[int]) -> list[int | float | None]:
    """``percentile`` of ``values`` (integers or floats without NaN) at each of ``pcts``, by one partition of the
    array in place (the caller gives it up; its order is lost): millions of values are neither copied nor fully
    sorted. None for each when it is empty."""
    if not values.size:
        return [None] * len(pcts)
    at = sorted({nearest_rank(values.size, p) - 1 for p in pcts})
    values.partition(at)
    return [values[nearest_rank(values.size, p) - 1].item() for p in pcts]


def sorted_unique(a: np.ndarray, owned: bool = False) -> np.ndarray:
    """``np.unique(a)`` (the distinct values, sorted) by a sort: numpy 2's unique hashes, which on integers is
    4x slower at a million values of 300 kinds and 40x at a million distinct ones (numpy 2.4). Floats go to
    ``np.unique`` (its NaNs are one value). ``owned``: the caller gives ``a`` up, and it is sorted in place (no
    copy of millions of values)."""
    if a.dtype.kind == "f":
        return np.unique(a)
    s = a if owned else np.sort(a)
    if owned:
        s.sort()
    if s.size < 2:
        return s
    keep = np.empty(s.size, dtype=bool)
    keep[0] = True
    np.not_equal(s[1:], s[:-1], out=keep[1:])
    return s[keep]


ROW_CHUNK = 1 << 20
"""Rows that a pass over millions of rows (a comparison, a lookup, a count) takes at a time: its temporary arrays
stay a few MB, where whole columns of 20M kernels would be hundreds."""


def row_chunks(n: int, first: int = 0) -> Iterator[slice]:
    """Consecutive slices of at most ``ROW_CHUNK`` rows covering [first, n)."""
    return (slice(lo, min(n, lo + ROW_CHUNK)) for lo in range(first, n, ROW_CHUNK))


def span_sums(values: np.ndarray, first: np.ndarray, last: np.ndarray) -> np.ndarray:
    """The sum of ``values`` over each span [first, last) (integers, exact; booleans counted as integers)."""
    c = np.empty(values.size + 1, dtype=np.result_type(values.dtype, np.int64))
    c[0] = 0
    np.cumsum(values, dtype=c.dtype, out=c[1:])  # (into one array: no second copy of millions of sums)
    return c[last] - c[first]


def span_reduce(ufunc: np.ufunc, values: np.ndarray, idx: np.ndarray) -> np.ndarray:
    """``ufunc.reduceat(values + [values[-1]], idx)[0::2]`` (``idx``: each span's first and last position, side by
    side, a last position at most ``values.size``): each span's reduction, an empty span's value at its first
    position, without a padded copy of the whole array. Spans that reach the end (or start past it) are reduced
    one by one."""
    n = values.size
    at_end = (idx[0::2] >= n) | (idx[1::2] >= n)
    safe = idx.copy()
    safe[np.repeat(at_end, 2)] = 0
    out = ufunc.reduceat(values, safe)[0::2]
    for i in np.flatnonzero(at_end):
        lo, hi = int(idx[2 * i]), int(idx[2 * i + 1])
        out[i] = ufunc.reduce(values[lo:hi]) if lo < hi else values[min(lo, n - 1)]
    return out


def inside(ts: np.ndarray, starts: np.ndarray, ends: np.ndarray) -> np.ndarray:
    """Whether each time falls inside one of the intervals [starts, ends) (overlapping or not; one that ends
    before it starts holds none): one search among the starts, the ends carried forward."""
    if ts.size == 0 or starts.size == 0:
        return np.zeros(ts.size, dtype=bool)
    order = np.argsort(starts, kind="stable")
    s, e = starts[order], np.maximum.accumulate(ends[order])
    i = np.searchsorted(s, ts, side="right") - 1
    ok = i >= 0
    hit = np.zeros(ts.size, dtype=bool)
    hit[ok] = ts[ok] < e[i[ok]]
    return hit


def downsample(values: np.ndarray, k: int) -> list[int]:
    """At most ``k`` values, sorted, evenly spaced in rank from the smallest to the largest (all when fewer): the
    sample a profile keeps of a row's durations."""
    s = np.sort(values)
    if len(s) <= k:
        return [int(v) for v in s]
    idx = np.linspace(0, len(s) - 1, k).round().astype(int)
    return [int(v) for v in s[idx]]


def tail_score(max_ns: float, count: float, p50_ns: float) -> float:
    """The tail score of one group: ``max / 1000 * log2(count + 1) * max(1, max / p50)`` (max in ns; a p50 of 0 or
    less counts as ratio 1). ``tail_table`` computes the same over whole frames (``tail_score`` column)."""
    ratio = max_ns / p50_ns if p50_ns > 0 else 1.0
    return max_ns / 1000.0 * math.log2(count + 1) * max(1.0, ratio)


def text_codes(col: pl.Series) -> tuple[pl.Series, pl.Series]:
    """A text column as codes: (a UInt32 code per row, null where the text is null; the texts by code: the text of
    code ``c`` is ``texts[c]``, null for a code no row has). Grouping, sorting or joining millions of rows by their
    codes instead of their texts never copies the texts' bytes; ``decode_texts`` turns codes back into texts.

    The codes are polars' categorical ids (a cast, no hash table of the texts' rows: 2x faster than replacing
    each text by its position among the distinct ones, and a tenth of the memory at two million kernels); they are
    arbitrary numbers, never an order."""
    codes = col.cast(pl.Categorical).to_physical().cast(pl.UInt32).rename(col.name)
    first = codes.arg_unique()  # one row of each code (and of null)
    present = codes.gather(first)
    keep = present.is_not_null()
    present, texts = present.filter(keep), col.gather(first).filter(keep).cast(pl.String)
    # in code order: polars 1.36 refuses to scatter a string column at unsorted indices ("set indices must be
    # sorted"), and the categorical ids of a column's first rows need not rise
    order = present.arg_sort()
    present, texts = present.gather(order), texts.gather(order)
    size = scalar_int(present.max()) + 1 if present.len() else 0
    by_code = pl.Series(col.name, [None] * size, dtype=pl.String)
    if present.len():
        by_code = by_code.scatter(present, texts)
    return codes, by_code


def decode_texts(codes: pl.Series, texts: pl.Series) -> pl.Series:
    """The texts of ``text_codes``' codes (null stays null), named as ``codes``."""
    if texts.is_empty():
        from ..trace.tables import null_column

        return null_column(codes.name, codes.len(), pl.String())
    return texts.gather(codes).rename(codes.name)


def ratio(values: pl.Series, denominator: float, name: str) -> pl.Series:
    """``values / denominator`` (null stays null), each quotient correctly rounded, as Python divides. Polars
    divides a column by a number as a multiplication by its reciprocal on some chunk layouts and not on others,
    and a frame's chunks follow the thread count that built it: the last bit of a share would differ from one
    machine to the next. For small frames (families, kernels)."""
    return pl.Series(name, [None if v is None else v / denominator for v in values.to_list()], dtype=pl.Float64)


def _rank(pct: int) -> pl.Expr:
    """0-based index of the nearest-rank percentile in a sorted group (an aggregation expression)."""
    return ((pl.len() * pct + 99) // 100).clip(lower_bound=1) - 1


def percentile_expr(col: str, pct: int) -> pl.Expr:
    """Nearest-rank percentile as a polars aggregation (use inside ``group_by(...).agg``)."""
    return pl.col(col).sort().get(_rank(pct))


def duration_summary(col: str = "dur") -> list[pl.Expr]:
    """The summary of a group's durations as aggregations: count (Int64), total, p50, p99 (nearest rank), max."""
    return [
        pl.len().cast(pl.Int64).alias("count"),
        pl.col(col).sum().alias("total"),
        percentile_expr(col, 50).alias("p50"),
        percentile_expr(col, 99).alias("p99"),
        pl.col(col).max().alias("max"),
    ]


def tail_table(df: pl.DataFrame, keys: list[str], value: str = "dur") -> pl.DataFrame:
    """Per group: count, total, mean, p50, p95, p99, max, ratios, tail score and tail excess (ns)."""
    return tail_tables(df, [keys], value)[0]


TAIL_COLUMNS = ("count", "total", "mean", "p50", "p95", "p99", "max", "p99_p50", "max_p50", "tail_score", "tail_excess")


def tail_tables(
    df: pl.DataFrame,
    key_sets: list[list[str]],
    value: str = "dur",
    coded: Mapping[str, pl.Series] | None = None,
    grid_types: Mapping[str, pl.DataType] | None = None,
) -> list[pl.DataFrame]:
    """``tail_table(df, keys)`` for each ``keys`` of ``key_sets``, from one sort of the values and one coding of
    each text key (the tails of one frame by name, by name and grid, by short name share them). ``coded``: key
    columns of ``df`` that already hold ``text_codes``' codes, with their texts (the tables show the texts).
    ``grid_types``: ``df`` holds the launch grid as one packed column (``pack_grid``), not the three dimensions,
    which the tables show with these types."""
    if grid_types is not None and PACKED_GRID in df.columns:
        return _tails_of(df, key_sets, value, coded, dict(grid_types))
    packed = not df.is_empty() and _packable_grid(df, key_sets)
    return _tails_of(df, key_sets, value, coded, {g: df.schema[g] for g in GRID} if packed else {})


def _tails_of(
    df: pl.DataFrame,
    key_sets: list[list[str]],
    value: str,
    coded: Mapping[str, pl.Series] | None,
    grid_types: dict[str, pl.DataType],
) -> list[pl.DataFrame]:
    """``tail_tables``' work; ``grid_types``: the grid is grouped as one packed key (empty: as its columns)."""
    v = pl.col(value)
    if df.is_empty():  # the tables show texts, and a packed grid as its dimensions
        types = {k: coded[k].dtype if coded is not None and k in coded else df.schema[k] for k in df.columns}
        types = {k: pl.String() if t == pl.Categorical else t for k, t in types.items()} | grid_types
        return [
            pl.DataFrame(schema={**{k: types[k] for k in keys}, **dict.fromkeys(TAIL_COLUMNS, pl.Float64)})
            for keys in key_sets
        ]
    # text keys (kernel and API names) are grouped by a code per distinct text: sorting and grouping millions of
    # strings copies their bytes (hundreds of MB at two million kernels), their codes cost 4 bytes a row
    texts: dict[str, pl.Series] = {}
    cols: list[pl.Series] = []
    for k in dict.fromkeys(k for keys in key_sets for k in keys):
        if grid_types and k in GRID:
            if k == GRID[0]:  # a launch grid as one key of 8 bytes, not three
                cols.append(df[PACKED_GRID] if PACKED_GRID in df.columns else df.select(pack_grid()).to_series())
            continue
        col = df[k]
        if coded is not None and k in coded:
            texts[k] = coded[k]
        elif col.dtype in (pl.String, pl.Categorical):  # the tables show texts
            col, texts[k] = text_codes(col)
        cols.append(col)
    # each key set as one integer key (its columns' codes combined): each group a range of one sort by key and value
    by_name = {c.name: c for c in cols}
    ranged = [_combined_tails([by_name[k] for k in _group_keys(keys, grid_types)], df[value]) for keys in key_sets]
    if all(r is not None for r in ranged):
        return [
            _finish_tails(r, keys, texts, grid_types) for r, keys in zip(ranged, key_sets, strict=True) if r is not None
        ]
    # sort once: group_by keeps the row order inside each group, so ranks are read without sorting again, and the
    # instances above p99 (the tail excess) are summed in the same pass
    packed = _sorted_by_value(cols[0], df[value]) if len(cols) == 1 else None
    ordered = pl.DataFrame([*cols, df[value]]).sort(value) if packed is None else packed
    del cols, packed
    at50, at99 = v.get(_rank(50)), v.get(_rank(99))
    return [_tails(ordered, keys, v, at50, at99, texts, grid_types) for keys in key_sets]


def _group_keys(keys: list[str], grid_types: Mapping[str, pl.DataType]) -> list[str]:
    """The columns a key set is grouped by: the grid as its packed key where ``grid_types`` says it is packed."""
    if grid_types and GRID[0] in keys:
        return list(dict.fromkeys(PACKED_GRID if k in GRID else k for k in keys))
    return keys


def _combined_tails(cols: list[pl.Series], values: pl.Series) -> pl.DataFrame | None:
    """``_ranged_tails`` of the groups of several integer key columns (a kernel name's code and its packed grid):
    the columns after the first are ranked among their distinct values (few: a trace's grids) and combined with
    the first into one key, then taken apart again; None (the frame's path decides) where a column is not an
    integer, holds a null, or the combined key and the values do not fit 63 bits."""
    if len(cols) == 1:
        return _ranged_tails(cols[0], values)
    if any(not c.dtype.is_integer() or c.null_count() for c in cols) or cols[0].is_empty():
        return None
    distinct = [c.unique().sort() for c in cols[1:]]
    first = cols[0]
    if scalar_int(first.min()) < 0 or packed_widths(scalar_int(first.max()), *(d.len() - 1 for d in distinct)) is None:
        return None
    # combined in one array of its own (millions of rows: no column made per step)
    key = first.to_numpy().astype(np.int64, copy=True)
    for c, d in zip(cols[1:], distinct, strict=True):
        key *= d.len()
        key += d.search_sorted(c).to_numpy()
    out = _ranged_tails(pl.Series("_key", key, dtype=pl.Int64), values, owned=key)
    del key
    if out is None:
        return None
    combined = out["_key"]
    parts = []
    for c, d in zip(reversed(cols[1:]), reversed(distinct), strict=True):
        parts.append(d.gather(combined % d.len()).rename(c.name))
        combined = combined // d.len()
    return out.select(combined.cast(cols[0].dtype).rename(cols[0].name), *reversed(parts), pl.exclude("_key"))


def _ranged_tails(key: pl.Series, values: pl.Series, owned: np.ndarray | None = None) -> pl.DataFrame | None:
    """``_tails``' aggregates (before ``_finish_tails``) of the groups of one integer key column, from one sort of
    the key and the value packed into 63 bits (numpy's): each group is then a range of the sorted values, its
    count, total, ranks, maximum and tail excess read off the range (cumulative sums, a search for the values
    above p99), with no hashing of millions of rows into groups (5M API calls: a third of the time). None (the
    frame's path decides) when a key or a value is null or negative, or the two do not fit together. The mean is
    the total over the count, as polars divides an integer column's exact sum (the groups come in key order).
    ``owned``: the key's values as an Int64 array the caller gives up (packed in place, not copied)."""
    if not (key.dtype.is_integer() and values.dtype == pl.Int64) or key.is_empty():
        return None
    if key.null_count() or values.null_count():
        return None
    lo_key, hi_key, lo, hi = (scalar_int(x) for x in (key.min(), key.max(), values.min(), values.max()))
    widths = packed_widths(hi_key, hi)
    if lo_key < 0 or lo < 0 or widths is None or hi * values.len() >= 1 << 63:  # (the sums fit 64 bits)
        return None
    bits = widths[1]
    mask = (1 << bits) - 1
    # one array of millions of rows, packed and sorted in place (every step below writes into it or into ``sums``)
    packed = owned if owned is not None else key.to_numpy().astype(np.int64, copy=True)
    np.left_shift(packed, bits, out=packed)
    packed += values.to_numpy()
    packed.sort()
    first = _key_changes(packed, bits)
    keys = packed[first] >> bits
    last = np.append(first[1:], packed.size)  # each group's range [first, last)
    count = last - first

    def value(at: np.ndarray) -> np.ndarray:
        return packed[at] & mask

    def rank(pct: int) -> np.ndarray:  # the nearest-rank percentile's value in each range
        return value(first + np.maximum((count * pct + 99) // 100, 1) - 1)

    p50, p99 = rank(50), rank(99)
    # the instances above p99 (a range's values are sorted: those after the last value equal to p99)
    above = np.searchsorted(packed, (keys << bits) + p99, side="right")
    # the values' sums before each range's first row, its last, and its first above p99 (no array of every row's
    # running sum)
    before = _prefix_sums_at(packed, mask, np.concatenate([first, last, above]))
    at_first, at_last, at_above = np.split(before, 3)
    total = at_last - at_first
    excess = (at_last - at_above) - (last - above) * p50
    return pl.DataFrame(
        [
            pl.Series(key.name, keys).cast(key.dtype),
            pl.Series("count", count, dtype=pl.UInt32),
            pl.Series("total", total, dtype=pl.Int64),
            pl.Series("mean", [t / n for t, n in zip(total.tolist(), count.tolist(), strict=True)], dtype=pl.Float64),
            pl.Series("p50", p50, dtype=pl.Int64),
            pl.Series("p95", rank(95), dtype=pl.Int64),
            pl.Series("p99", p99, dtype=pl.Int64),
            pl.Series("max", value(last - 1), dtype=pl.Int64),
            pl.Series("tail_excess", excess, dtype=pl.Int64),
        ]
    )


def _prefix_sums_at(packed: np.ndarray, mask: int, at: np.ndarray) -> np.ndarray:
    """Per position ``p`` of ``at`` (0 <= p <= len(packed)): the sum of ``packed & mask`` over rows [0, p). A
    chunk of rows at a time: the running sum of millions of rows is never one array."""
    order = np.argsort(at, kind="stable")
    where = at[order]
    out = np.zeros(at.size, dtype=np.int64)  # (position 0: nothing before it)
    done = 0  # the sum of the chunks before
    for chunk in row_chunks(packed.size):
        run = np.bitwise_and(packed[chunk], mask)
        np.cumsum(run, out=run)
        # positions chunk.start < p <= chunk.stop end inside this chunk
        lo, hi = np.searchsorted(where, [chunk.start, chunk.stop], side="right")
        out[order[lo:hi]] = done + run[where[lo:hi] - chunk.start - 1]
        done += int(run[-1])
    return out


def _key_changes(packed: np.ndarray, bits: int) -> np.ndarray:
    """The positions of a sorted packed array where its key (``packed >> bits``) changes, 0 included (none when it
    is empty): a chunk of rows at a time, never an array of every row's key."""
    found = [np.zeros(min(packed.size, 1), dtype=np.intp)]
    for at in row_chunks(packed.size, 1):
        k = packed[at.start - 1 : at.stop] >> bits
        found.append(np.flatnonzero(k[1:] != k[:-1]) + at.start)
    return np.concatenate(found)


def packed_widths(*tops: int) -> list[int] | None:
    """The bits of each of several non-negative integers at most ``tops`` (in order, the first the most
    significant) packed side by side into one Int64 that stays positive: None when they need more than 63 bits."""
    widths = [max(top, 1).bit_length() for top in tops]
    return widths if sum(widths) <= 63 else None


def pack_ints(cols: Sequence[pl.Series], widths: Sequence[int]) -> pl.Series:
    """Non-negative integer columns side by side in one Int64 column, the first the most significant, each in its
    ``packed_widths`` bits: sorting it sorts by the columns in order."""
    key = cols[0].cast(pl.Int64)
    for col, bits in zip(cols[1:], widths[1:], strict=True):
        key = key * (1 << bits) + col.cast(pl.Int64)
    return key


def unpack_ints(key: pl.Series, widths: Sequence[int]) -> list[pl.Series]:
    """``pack_ints``' columns back out of ``key`` (Int64, in the order packed)."""
    out = []
    below = sum(widths)
    for i, bits in enumerate(widths):
        below -= bits
        field = key // (1 << below) if below else key
        out.append(field if i == 0 else field % (1 << bits))  # the first field is all the bits above the others
    return out


def _sorted_by_value(key: pl.Series, values: pl.Series) -> pl.DataFrame | None:
    """``DataFrame([key, values]).sort(values)`` (ties in any order: tied rows of a group are alike) by sorting one
    integer column, the value and the key packed into 63 bits: polars sorts a column several times faster than it
    reorders a frame by one of its columns (5M API calls: 45 ms against 313 ms). None (sort the frame) when a key or
    a value is null or negative, the key is not an integer, or the two do not fit together."""
    if not (key.dtype.is_integer() and values.dtype.is_integer()) or key.is_empty():
        return None
    if key.null_count() or values.null_count():
        return None
    lo_key, hi_key, lo, hi = (scalar_int(x) for x in (key.min(), key.max(), values.min(), values.max()))
    widths = packed_widths(hi, hi_key)
    if lo_key < 0 or lo < 0 or widths is None:
        return None
    packed = pack_ints([values, key], widths)
    # numpy's sort of one integer column (vectorized where the CPU allows) is 3x polars' here: 5M calls 67 ms
    by_value, code = unpack_ints(pl.Series(packed.name, np.sort(packed.to_numpy())), widths)
    return pl.DataFrame([code.cast(key.dtype).rename(key.name), by_value.cast(values.dtype).rename(values.name)])


GRID_BITS = 21
"""Bits of each launch grid dimension in a packed grid key (``pack_grid``)."""
PACKED_GRID = "_grid"


def _packable_grid(df: pl.DataFrame, key_sets: list[list[str]]) -> bool:
    """Whether the grid columns of ``key_sets`` can be grouped as one packed key: every key set that names a grid
    dimension names all three, and every dimension is known and below ``2**GRID_BITS`` (always so in practice)."""
    named = [keys for keys in key_sets if any(g in keys for g in GRID)]
    if not named or any(not set(GRID) <= set(keys) for keys in named):
        return False
    limits = df.select(
        *(pl.col(g).null_count().alias(f"{g}_nulls") for g in GRID),
        *(pl.col(g).min().alias(f"{g}_min") for g in GRID),
        *(pl.col(g).max().alias(f"{g}_max") for g in GRID),
    ).row(0, named=True)
    return all(
        limits[f"{g}_nulls"] == 0 and limits[f"{g}_min"] >= 0 and limits[f"{g}_max"] < (1 << GRID_BITS) for g in GRID
    )


def packable_grid(df: pl.DataFrame) -> bool:
    """Whether the launch grids of ``df`` can be held as one packed key (``pack_grid``): every dimension known and
    below ``2**GRID_BITS`` (False for an empty frame)."""
    return not df.is_empty() and _packable_grid(df, [list(GRID)])


def pack_grid() -> pl.Expr:
    """The launch grid as one Int64 key, ``PACKED_GRID`` (x, y, z in ``GRID_BITS`` bits each; ``packable_grid``)."""
    x, y, z = (pl.col(g).cast(pl.Int64) for g in GRID)
    return ((x * (1 << (2 * GRID_BITS))) + (y * (1 << GRID_BITS)) + z).alias(PACKED_GRID)


def _tails(
    ordered: pl.DataFrame,
    keys: list[str],
    v: pl.Expr,
    at50: pl.Expr,
    at99: pl.Expr,
    texts: dict[str, pl.Series],
    grid_types: dict[str, pl.DataType],
) -> pl.DataFrame:
    """One tail table of the value-sorted frame (text keys as codes, their texts in ``texts``; with ``grid_types``,
    the grid as one packed key, unpacked into columns of those types)."""
    group_keys = _group_keys(keys, grid_types)
    out = ordered.group_by(group_keys).agg(
        pl.len().alias("count"),
        v.sum().alias("total"),
        v.mean().alias("mean"),
        *(v.get(_rank(p)).alias(f"p{p}") for p in PERCENTILES),
        v.last().alias("max"),
        (v.filter(v > at99) - at50).sum().alias("tail_excess"),
    )
    return _finish_tails(out, keys, texts, grid_types)


def _finish_tails(
    out: pl.DataFrame, keys: list[str], texts: dict[str, pl.Series], grid_types: dict[str, pl.DataType]
) -> pl.DataFrame:
    """A tail table from its groups' aggregates (key columns as grouped: text keys as codes, a packed grid): the
    keys shown (texts, grid dimensions), the ratios and the tail score added."""
    group_keys = _group_keys(keys, grid_types)
    for k in keys:
        if k in texts:
            out = out.with_columns(decode_texts(out[k], texts[k]))
    if group_keys is not keys:
        g = pl.col(PACKED_GRID)
        shifts = dict(zip(GRID, (2 * GRID_BITS, GRID_BITS, 0), strict=True))
        out = out.with_columns(
            ((g // (1 << shifts[d])) % (1 << GRID_BITS)).cast(grid_types[d]).alias(d) for d in GRID
        ).select(*keys, pl.exclude(*keys, PACKED_GRID))
    # a group with a null key has no tail excess: it was defined by a join on the keys, where nulls never match
    null_key = pl.any_horizontal(*(pl.col(k).is_null() for k in keys))
    if out.select(null_key.any()).item():
        out = out.with_columns(
            pl.when(null_key)
            .then(pl.lit(0, out.schema["tail_excess"]))
            .otherwise(pl.col("tail_excess"))
            .alias("tail_excess")
        )
    p50 = pl.when(pl.col("p50") > 0).then(pl.col("p50")).otherwise(None)
    return out.with_columns(
        (pl.col("p99") / p50).alias("p99_p50"),
        (pl.col("max") / p50).alias("max_p50"),
    ).with_columns(
        (
            pl.col("max") / 1000.0 * (pl.col("count") + 1).log(2) * pl.max_horizontal(pl.lit(1.0), pl.col("max_p50"))
        ).alias("tail_score"),
    )
