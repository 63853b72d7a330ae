"""Sorting the row keys of a per-row report in bounded memory.

A per-row report (``cuda_gpu_trace``) shows every row of several tables in start order. Its rows are ordered by
(first, second) pairs of integers: the start, then a key naming the row (``gputrace``: its table and rowid). The
pairs arrive a block at a time (``KeySorter.add``) and only the second values are kept, in order
(``SortedKeys``). Up to ``MEMORY_ROWS`` pairs are sorted in one buffer; beyond that each block is sorted on its own
and written to a temporary file as a run, and the runs are merged a window at a time into a second temporary file
of the keys, so that memory holds a block and the merge's windows whatever the number of rows (the files take 24
bytes a row, in ``tempfile.gettempdir()``, and are gone when the keys are).
"""

from __future__ import annotations

import os
from typing import IO, TYPE_CHECKING

from ..errors import NsysDoctorError

if TYPE_CHECKING:
    import numpy as np

EXACT = 1 << 53
"""Doubles hold every integer of magnitude below this exactly."""
STEP = 1 << 20  # elements converted at a time inside a buffer
MEMORY_ROWS = 1 << 22  # pairs sorted in memory (64 MiB of pairs); more are sorted as runs on disk
MERGE_BYTES = 64 << 20  # what the merge's windows may hold together
WINDOW_ROWS = (1 << 10, 1 << 16)  # the smallest and largest window of a run in the merge
PAIR = 16  # bytes of a (first, second) pair in a run file
KEY = 8  # bytes of a key in the keys file


def sort_pairs(pairs: np.ndarray, n: int) -> None:
    """Orders the first ``n`` (first, second) int64 pairs of ``pairs`` (interleaved: first, second, first, ...) by
    first, then second, in place.

    Where every value is below 2**53 in magnitude (times in ns under 104 days), the pairs become complex numbers in
    place, which numpy sorts by real part, then imaginary part: no index and no copy; elsewhere by ``lexsort``."""
    import numpy as np

    if n == 0:
        return
    first, second = pairs[0 : 2 * n : 2], pairs[1 : 2 * n : 2]
    exact = min(int(first.min()), int(second.min())) > -EXACT and max(int(first.max()), int(second.max())) < EXACT
    if not exact:
        order = np.lexsort((second, first))
        first[:], second[:] = first[order], second[order]
        return
    floats = pairs.view(np.float64)
    for a in range(0, 2 * n, STEP):  # each value to the double of the same integer, a slice at a time
        b = min(2 * n, a + STEP)
        floats[a:b] = pairs[a:b].astype(np.float64)
    floats[: 2 * n].view(np.complex128).sort()
    for a in range(0, 2 * n, STEP):  # and back
        b = min(2 * n, a + STEP)
        pairs[a:b] = floats[a:b].astype(np.int64)


def sorted_pairs(pairs: np.ndarray, n: int) -> np.ndarray:
    """The second values of the first ``n`` (first, second) int64 pairs of ``pairs`` (a buffer of at least 2n
    values, which this takes over), ordered by first, then second: ``second[np.lexsort((second, first))]``. The
    buffer is sorted in place (``sort_pairs``), then cut to the n second values."""
    import numpy as np

    if n == 0:
        return np.zeros(0, dtype=np.int64)
    sort_pairs(pairs, n)
    for a in range(0, n, STEP):  # the second values packed at the front of the buffer
        b = min(n, a + STEP)
        pairs[a:b] = pairs[2 * a + 1 : 2 * b : 2]
    pairs.resize(n, refcheck=False)  # gives the rest back
    return pairs


class SortedKeys:
    """The second values of sorted pairs, in order: held in memory, or in a temporary file read a slice at a time
    (``slice`` may be called from several threads)."""

    def __init__(self, keys: np.ndarray | None = None, file: IO[bytes] | None = None, size: int = 0) -> None:
        self._keys, self._file = keys, file
        self.size = int(keys.size) if keys is not None else size

    def slice(self, lo: int, hi: int) -> np.ndarray:
        """Keys ``lo`` to ``hi`` (exclusive), clipped to the keys there are."""
        import numpy as np

        lo, hi = max(0, lo), min(self.size, hi)
        if self._keys is not None:
            return self._keys[lo:hi]
        if hi <= lo or self._file is None:
            return np.zeros(0, dtype=np.int64)
        return _read(self._file, lo * KEY, (hi - lo) * KEY).view(np.int64)


def _read(file: IO[bytes], offset: int, size: int) -> np.ndarray:
    """``size`` bytes of ``file`` from ``offset``, as a writable byte array (``os.pread``: no shared position)."""
    import numpy as np

    out = np.empty(size, dtype=np.uint8)
    view, done = out.data, 0
    while done < size:
        got = os.preadv(file.fileno(), [view[done:]], offset + done)
        if got <= 0:
            raise OSError(f"temporary file ended {size - done} bytes early")
        done += got
    return out


def _write(file: IO[bytes], data: np.ndarray) -> None:
    import tempfile

    view = data.data.cast("B")  # a contiguous array's bytes
    try:
        while view:  # unbuffered: a write may take part of the bytes
            view = view[file.write(view) or 0 :]
    except OSError as exc:
        raise NsysDoctorError(
            f"could not write the sort's temporary file in {tempfile.gettempdir()}: {exc.strerror or exc}",
            "free space there or set TMPDIR to a folder with room for 24 bytes per row of the report",
        ) from exc


def _temporary() -> IO[bytes]:
    import tempfile

    try:
        return tempfile.TemporaryFile(prefix="nsys-doctor-sort-", buffering=0)
    except OSError as exc:
        raise NsysDoctorError(
            f"could not create a temporary file in {tempfile.gettempdir()}: {exc.strerror or exc}",
            "set TMPDIR to a writable folder",
        ) from exc


class KeySorter:
    """Sorts (first, second) int64 pairs given a block at a time (``add``) and gives the second values in order
    (``finish``). ``rows`` bounds how many pairs will come: at most ``MEMORY_ROWS`` are sorted in one buffer,
    more as runs on disk merged a window at a time."""

    def __init__(self, rows: int) -> None:
        import numpy as np

        self.n = 0
        self._spill = rows > MEMORY_ROWS
        self._pairs = np.empty(0 if self._spill else 2 * rows, dtype=np.int64)
        self._runs: list[tuple[int, int]] = []  # (offset in the run file, pairs)
        self._file: IO[bytes] | None = None

    def add(self, first: np.ndarray, second: np.ndarray) -> None:
        import numpy as np

        m = int(first.size)
        if m == 0:
            return
        if not self._spill:
            if 2 * (self.n + m) > self._pairs.size:
                raise ValueError(f"more than the {self._pairs.size // 2} pairs announced")
            self._pairs[2 * self.n : 2 * (self.n + m) : 2] = first
            self._pairs[2 * self.n + 1 : 2 * (self.n + m) : 2] = second
            self.n += m
            return
        run = np.empty(2 * m, dtype=np.int64)
        run[0::2], run[1::2] = first, second
        sort_pairs(run, m)
        if self._file is None:
            self._file = _temporary()
        self._runs.append((self._file.tell(), m))
        _write(self._file, run)
        self.n += m

    def finish(self) -> SortedKeys:
        """The second values in order; the sorter is spent."""
        if not self._spill:
            keys = sorted_pairs(self._pairs, self.n)
            self._pairs = keys[:0]
            return SortedKeys(keys)
        if self._file is None:
            return SortedKeys(size=0)
        out = _temporary()
        try:
            _merge(self._file, self._runs, out)
        finally:
            self._file.close()
            self._file = None
        if out.tell() != self.n * KEY:  # a merge that lost or made pairs is a bug, never a short report
            raise RuntimeError(f"the merge wrote {out.tell() // KEY} keys of {self.n}")
        return SortedKeys(file=out, size=self.n)


def _merge(file: IO[bytes], runs: list[tuple[int, int]], out: IO[bytes]) -> None:
    """Merges the sorted runs of ``file`` (interleaved pairs at the given offsets) and writes their second values to
    ``out`` in order. Each run is read a window at a time (``MERGE_BYTES`` for all windows together); a round takes,
    from every window, the pairs up to the smallest last pair of the windows whose run goes on, so that nothing
    after it can come from any run: those are sorted together and written, and windows under half full are topped
    up from their run. Each round empties at least one window of at least half a window's pairs."""
    import numpy as np

    width = min(WINDOW_ROWS[1], max(WINDOW_ROWS[0], MERGE_BYTES // (3 * PAIR * max(1, len(runs)))))
    read = [0] * len(runs)  # pairs of each run read so far
    firsts: list[np.ndarray] = [np.zeros(0, dtype=np.int64)] * len(runs)
    seconds: list[np.ndarray] = [np.zeros(0, dtype=np.int64)] * len(runs)

    def top_up(i: int) -> None:
        offset, total = runs[i]
        m = min(width, total - read[i])
        if m <= 0 or 2 * firsts[i].size >= width:
            return
        block = _read(file, offset + read[i] * PAIR, m * PAIR).view(np.int64)
        firsts[i] = np.concatenate([firsts[i], block[0::2]])
        seconds[i] = np.concatenate([seconds[i], block[1::2]])
        read[i] += m

    for i in range(len(runs)):
        top_up(i)
    while any(f.size for f in firsts):
        ends = [(int(firsts[i][-1]), int(seconds[i][-1])) for i in range(len(runs)) if read[i] < runs[i][1]]
        limit = min(ends) if ends else None
        takes: list[int] = []
        for f, s in zip(firsts, seconds, strict=True):
            if limit is None:
                takes.append(int(f.size))
                continue
            a = int(np.searchsorted(f, limit[0], side="left"))
            b = int(np.searchsorted(f, limit[0], side="right"))
            takes.append(a + int(np.searchsorted(s[a:b], limit[1], side="right")))
        m = sum(takes)
        batch = np.empty(2 * m, dtype=np.int64)
        at = 0
        for i, j in enumerate(takes):
            batch[2 * at : 2 * (at + j) : 2] = firsts[i][:j]
            batch[2 * at + 1 : 2 * (at + j) : 2] = seconds[i][:j]
            firsts[i], seconds[i] = firsts[i][j:], seconds[i][j:]
            at += j
        _write(out, sorted_pairs(batch, m))
        for i in range(len(runs)):
            top_up(i)
