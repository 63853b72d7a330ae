"""The frame cache: the unfiltered frames analyses read (``TraceFrames``), kept as Parquet in the user's cache folder.

A second ``report`` (``diff``, ``roofline``, ...) of the same big trace then reads a few compact column files
instead of scanning SQLite again. The cache is an optimisation only: any entry that cannot be read, or does not
match what it claims to hold, is dropped and rebuilt from the trace; nothing about it is ever an error.

* **Where**: ``$NSYS_DOCTOR_CACHE_DIR``, else ``$XDG_CACHE_HOME/nsys-doctor``, else ``~/.cache/nsys-doctor``.
  Never beside the trace (a cache folder that is the trace's own folder turns the cache off), and the trace is
  only ever ``stat``-ed, never opened for writing.
* **Key**: the trace's resolved path, size, ``mtime_ns`` (and ``ctime_ns`` and inode, which a rewrite that keeps
  the size and puts the old mtime back still changes), a fingerprint of its schema (tables, the columns of
  the tables read, export metadata), the cache format version, and the versions of nsys-doctor and polars. A
  changed file gets a new key; the old entry of that path is removed when the new one is written.
* **Entry**: a folder ``<path hash>-<key hash>/`` holding one Parquet file per frame (uncompressed: on a
  1.8M-kernel trace it read in 0.16 s against 0.45 s for uncompressed Arrow IPC, and took 40 MiB against
  223 MiB, because Parquet dictionary-encodes the repeated kernel names; see docs/performance.md) and
  ``meta.json`` (key, each frame's height, schema and file size, the damaged-row counts found while reading).
  It is written in a hidden temporary folder and renamed into place, so a reader sees a whole entry or none;
  when two processes write the same entry, the second rename fails and its copy is discarded.
* **Bound**: ``$NSYS_DOCTOR_CACHE_MAX_BYTES`` (default 2 GiB) over all entries; least recently used entries
  (a hit touches ``meta.json``) are evicted after each write.
* **Threshold**: traces smaller than ``$NSYS_DOCTOR_CACHE_MIN_BYTES`` (default 8 MiB) are not cached. Writing an
  entry costs 0.2 to 0.5 of what one later read saves, at every size measured (1.4 to 154 MiB), so it pays as
  soon as a trace is read again; below 8 MiB the saving is under about 0.3 s a run (0.08 s on the 1.4 MiB
  sample), less than the interpreter's start, and not worth the disk and the write for a trace read once.
* **Off**: ``NSYS_DOCTOR_NO_CACHE=1``, or ``--no-cache`` on the command line (``disable()``).
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import shutil
import tempfile
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from .damage import TableDamage

if TYPE_CHECKING:
    import polars as pl

    from .open import Trace

FORMAT_VERSION = 6  # 2: the frames' pid and tid are Int32, texts are stored as a dictionary; 3: kernel and call
# names are categoricals in the frames (and stay so); 4: the API frame has no pid and tid columns; 5: the kernels'
# grid is Int32; 6: the kernels' ids are Int32 and they hold no globalPid
ENV_DIR = "NSYS_DOCTOR_CACHE_DIR"
ENV_OFF = "NSYS_DOCTOR_NO_CACHE"
ENV_MAX_BYTES = "NSYS_DOCTOR_CACHE_MAX_BYTES"
ENV_MIN_TRACE_BYTES = "NSYS_DOCTOR_CACHE_MIN_BYTES"
DEFAULT_MAX_BYTES = 2 * 2**30
DEFAULT_MIN_TRACE_BYTES = 8 * 2**20
META = "meta.json"
# temporary folders (being written, or being deleted) start with this; entries never do
TMP_PREFIX = ".tmp-"
STALE_TMP_S = 3600  # a temporary folder this old was left by a process that died


def disable() -> None:
    """Turn the cache off for this process and the processes it starts (``--no-cache``)."""
    os.environ[ENV_OFF] = "1"


def switched_off(name: str) -> bool:
    """Whether the environment variable ``name`` turns something off (set, and not 0, false, no or off)."""
    return os.environ.get(name, "").strip().lower() not in ("", "0", "false", "no", "off")


def enabled() -> bool:
    return not switched_off(ENV_OFF)


def cache_dir() -> Path:
    """Where entries live (the folder need not exist yet)."""
    explicit = os.environ.get(ENV_DIR)
    if explicit:
        return Path(explicit).expanduser()
    xdg = os.environ.get("XDG_CACHE_HOME")
    base = Path(xdg).expanduser() if xdg and Path(xdg).is_absolute() else Path.home() / ".cache"
    return base / "nsys-doctor"


def _int_env(name: str, default: int) -> int:
    try:
        value = int(os.environ.get(name, "").strip() or default)
    except ValueError:
        return default
    return value if value >= 0 else default


def max_bytes() -> int:
    return _int_env(ENV_MAX_BYTES, DEFAULT_MAX_BYTES)


def min_trace_bytes() -> int:
    return _int_env(ENV_MIN_TRACE_BYTES, DEFAULT_MIN_TRACE_BYTES)


def digest(data: str | bytes) -> str:
    """The SHA-256 of ``data`` (text as UTF-8), in hex: the cache's one hash."""
    return hashlib.sha256(data.encode("utf-8", "surrogatepass") if isinstance(data, str) else data).hexdigest()


@dataclass(frozen=True)
class Slot:
    """Where the entry of one trace state lives: ``folder`` is ``root / f"{path_id}-{key_id}"``."""

    root: Path
    path_id: str  # hash of the trace's resolved path: entries of older states of the same file share it
    key_id: str  # hash of the whole key
    key: str  # the key itself (JSON), kept in meta.json and checked on read

    @property
    def folder(self) -> Path:
        return self.root / f"{self.path_id}-{self.key_id}"


def slot(trace: Trace, tables: Iterable[str]) -> Slot | None:
    """The cache slot of ``trace`` as it is now (``tables``: the tables the frames are read from), or None when
    the cache is off, the trace is too small to pay, or the cache folder is the trace's own folder."""
    if not enabled():
        return None
    try:
        path = trace.path.resolve()
        st = os.stat(path)
        root = cache_dir().resolve()
    except (OSError, RuntimeError, ValueError):
        return None
    if st.st_size < min_trace_bytes() or root == path.parent:
        return None
    import polars as pl

    from .. import __version__

    schema = trace.schema
    fingerprint = {
        "tables": sorted(schema.tables),
        "columns": {t: list(schema.columns(t)) for t in sorted(set(tables))},
        "export": sorted(schema.export_meta.items()),
    }
    key = json.dumps(
        {
            "format": FORMAT_VERSION,
            "nsys_doctor": __version__,
            "polars": pl.__version__,
            "path": str(path),
            "size": st.st_size,
            "mtime_ns": st.st_mtime_ns,
            # a rewrite in place that keeps the size and sets the old mtime back still changes these
            "ctime_ns": st.st_ctime_ns,
            "inode": st.st_ino,
            "schema": digest(json.dumps(fingerprint, sort_keys=True)),
        },
        sort_keys=True,
    )
    return Slot(root, digest(str(path))[:16], digest(key)[:32], key)


def _schema_text(df: pl.DataFrame) -> list[list[str]]:
    return [[name, str(dtype)] for name, dtype in df.schema.items()]


def _texts(col: pl.Series) -> pl.Series:
    """A dictionary-coded text column read from an entry, as the texts ``write`` stored (a String column). Each
    distinct text is held once and every row points at it, as in a frame read from the trace (a cast would copy
    the text into every row: 570 MiB instead of 30 for the names of 2M kernels)."""
    import polars as pl

    distinct = col.unique()
    small = pl.DataFrame({"_code": distinct.to_physical(), col.name: distinct.cast(pl.String)})
    codes = pl.DataFrame({"_code": col.to_physical()})
    return codes.join(small, on="_code", how="left", maintain_order="left")[col.name]


def read(s: Slot, names: Iterable[str]) -> tuple[dict[str, pl.DataFrame], tuple[TableDamage, ...]] | None:
    """The frames of an entry and the damage it recorded, or None (no entry; a damaged or mismatched entry is
    removed)."""
    folder = s.folder
    meta_path = folder / META
    try:
        raw = meta_path.read_bytes()
    except OSError:
        return None
    try:
        import polars as pl

        meta = json.loads(raw)
        if meta.get("format") != FORMAT_VERSION or meta.get("key") != s.key:
            raise ValueError("another key")
        frames: dict[str, pl.DataFrame] = {}
        for name in names:
            info = meta["frames"][name]
            file = folder / f"{name}.parquet"
            if file.stat().st_size != info["bytes"]:
                raise ValueError("size")
            df = pl.read_parquet(file)
            texts = set(info["texts"])  # the columns that were texts (the others were categoricals)
            df = df.with_columns(_texts(df[c]) for c, t in df.schema.items() if t == pl.Categorical and c in texts)
            for c in df.columns:  # one chunk per column, as a frame read from the trace has (not one per row group):
                df = df.with_columns(df[c].rechunk())  # slices and searches then copy nothing; a column at a time
            if df.height != info["height"] or _schema_text(df) != info["schema"]:
                raise ValueError("content")
            frames[name] = df
        damage = tuple(
            TableDamage(str(d["table"]), int(d["rows"]), tuple((str(w), int(n)) for w, n in d["reasons"]))
            for d in meta["damage"]
        )
    except Exception:  # anything wrong with the entry: drop it, the caller reads the trace
        remove_entry(folder)
        return None
    with contextlib.suppress(OSError):
        os.utime(meta_path)  # least recently used is decided by this time
    return frames, damage


def write(s: Slot, frames: Mapping[str, pl.DataFrame], damage: Iterable[TableDamage]) -> None:
    """Store an entry (atomically), remove older entries of the same trace path, then keep the cache under its
    bound. Failures (a full disk, a read-only folder) leave no entry and are not reported."""
    import polars as pl

    tmp: Path | None = None
    try:
        s.root.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(prefix=f"{TMP_PREFIX}{s.key_id}-", dir=s.root))
        info: dict[str, dict[str, object]] = {}
        for name, df in frames.items():
            file = tmp / f"{name}.parquet"
            # texts as a dictionary of the distinct ones, read back as codes that ``_texts`` turns into texts
            # sharing one copy of each (stored plainly, they came back one copy a row: 170 MiB more at 2M kernels)
            df.with_columns(pl.col(pl.String).cast(pl.Categorical)).write_parquet(
                file, compression="uncompressed", statistics=False
            )
            info[name] = {
                "height": df.height,
                "schema": _schema_text(df),
                "bytes": file.stat().st_size,
                "texts": [c for c, t in df.schema.items() if t == pl.String],
            }
        meta = {
            "format": FORMAT_VERSION,
            "key": s.key,
            "frames": info,
            "damage": [{"table": d.table, "rows": d.rows, "reasons": [list(r) for r in d.reasons]} for d in damage],
        }
        (tmp / META).write_text(json.dumps(meta, sort_keys=True) + "\n", encoding="utf-8")
        try:
            os.rename(tmp, s.folder)
        except OSError:  # another process stored the same entry first (or the rename is refused): keep theirs
            return
        tmp = None
        for old in s.root.glob(f"{s.path_id}-*"):
            if old.name != s.folder.name:
                remove_entry(old)
        evict(s.root, max_bytes(), keep=s.folder)
    except Exception:
        return
    finally:
        if tmp is not None:
            shutil.rmtree(tmp, ignore_errors=True)


def remove_entry(folder: Path) -> None:
    """Delete an entry: renamed out of sight first, so a reader never sees it half deleted."""
    gone = folder.with_name(f"{TMP_PREFIX}gone-{folder.name}-{os.getpid()}-{time.monotonic_ns()}")
    try:
        os.rename(folder, gone)
    except OSError:
        return
    shutil.rmtree(gone, ignore_errors=True)


def _size(folder: Path) -> int:
    total = 0
    with contextlib.suppress(OSError):
        for f in folder.iterdir():
            with contextlib.suppress(OSError):
                total += f.stat().st_size
    return total


def _last_used(folder: Path) -> float:
    try:
        return (folder / META).stat().st_mtime
    except OSError:
        return 0.0


def evict(root: Path, bound: int, keep: Path | None = None) -> None:
    """Remove least recently used entries until the cache holds at most ``bound`` bytes (``keep`` goes last: an
    entry over the bound on its own is removed too). Also removes temporary folders left by dead processes."""
    try:
        children = list(root.iterdir())
    except OSError:
        return
    now = time.time()
    entries: list[tuple[float, str, Path, int]] = []
    for child in children:
        if child.name.startswith(TMP_PREFIX):
            with contextlib.suppress(OSError):
                if now - child.stat().st_mtime > STALE_TMP_S:
                    shutil.rmtree(child, ignore_errors=True)
            continue
        if child.is_dir():
            used = float("inf") if keep is not None and child == keep else _last_used(child)
            entries.append((used, child.name, child, _size(child)))
    total = sum(e[3] for e in entries)
    for _, _, folder, size in sorted(entries):
        if total <= bound:
            break
        remove_entry(folder)
        total -= size
