"""Copy a capture into tests/data with no path of the capturing machine in it (see tests/data/runs/README.md).

    python3 scripts/workloads/scrub_trace.py CAPTURED.sqlite tests/data/runs/NAME.sqlite CHECKOUT

Rewrites the home folder ``/root`` -> ``/tmp`` and the checkout folder CHECKOUT -> ``/app`` in every text cell
(the recorded environment in ``META_DATA_CAPTURE``, ``TARGET_INFO_SYSTEM_ENV``, ``StringIds``), then VACUUM, so
that no old page keeps them.
"""

from __future__ import annotations

import shutil
import sqlite3
import sys
from collections.abc import Iterator
from contextlib import contextmanager


def scrub(con: sqlite3.Connection, checkout: str) -> None:
    """Rewrite ``/root`` and ``checkout`` in every text cell of every table of ``con`` (not committed)."""
    tables = [r[0] for r in con.execute("SELECT name FROM sqlite_master WHERE type = 'table'")]
    for t in tables:
        cols = [r[1] for r in con.execute(f'PRAGMA table_info("{t}")') if r[2].upper() in ("TEXT", "")]
        for c in cols:
            for old, new in ((checkout, "/app"), ("/root", "/tmp")):
                con.execute(
                    f'UPDATE "{t}" SET "{c}" = replace("{c}", ?, ?) WHERE typeof("{c}") = \'text\' AND instr("{c}", ?)',
                    (old, new, old),
                )


@contextmanager
def scrubbed_copy(src: str, dst: str, checkout: str) -> Iterator[sqlite3.Connection]:
    """``dst``, a copy of ``src``, open for more edits; on leaving, its paths are rewritten (``scrub``), the edits
    committed and the file VACUUMed."""
    shutil.copyfile(src, dst)
    con = sqlite3.connect(dst)
    try:
        yield con
        scrub(con, checkout)
        con.commit()
        con.execute("VACUUM")
    finally:
        con.close()


def main(src: str, dst: str, checkout: str) -> None:
    with scrubbed_copy(src, dst, checkout):
        pass


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2], sys.argv[3])
