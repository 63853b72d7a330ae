"""The result cache: a command's finished output, kept in the frame cache's folder (``trace/cache.py``).

A second ``report`` of the same big trace with the same options prints the output the first one wrote, without
reading the trace or running an analysis: it costs the interpreter's start and a few ``stat`` calls. The frame
cache alone leaves the analyses, which dominate a second run (docs/performance.md).

* **Key**: everything the output depends on:
  - each trace's path as given and resolved, size, ``mtime_ns``, ``ctime_ns`` and inode (only plain ``.sqlite``
    files: a directory or an ``.nsys-rep`` is not cached);
  - the command and every option value that shapes the output (not ``-o``, ``-q``, ``--jobs``, ``--no-cache``);
  - the content of the other files the command reads: ``--ops``, ``--model``, the project config and the op rules
    file it names, each trace's capture record (``x.nsys-doctor.json``);
  - how the output is rendered: format, colour, the terminal's width, ``NO_COLOR``/``FORCE_COLOR``/``TERM``/
    ``COLUMNS``;
  - the code: every file of the installed package (path, size, ``mtime_ns``), the Python version, and the
    installed polars, numpy, rich and click (their package files' size and ``mtime_ns``).
* **Entry**: a folder ``r-<paths hash>-<trace state hash>-<key hash>/`` holding ``meta.json`` (the key, checked on
  read) and ``output`` (the text, UTF-8). Written in a hidden temporary folder and renamed into place; entries of
  older states of the same traces are removed when a new one is written; the frame cache's size bound and LRU
  eviction cover both kinds of entry.
* **Not stored**: a run that printed a damaged-rows warning (a hit could not print it again), traces smaller in
  total than the frame cache's threshold (a run is fast anyway), and any run while the cache is off
  (``--no-cache``, ``NSYS_DOCTOR_NO_CACHE=1``). ``NSYS_DOCTOR_NO_RESULT_CACHE=1`` turns off this cache only,
  keeping the frame cache (to time the analyses, as ``benchmarks/bench_report.py`` does).

Like the frame cache it is an optimisation only: an entry that cannot be read or does not match its key is a miss,
and a failure to write is silent.
"""

from __future__ import annotations

import contextlib
import importlib.util
import json
import os
import shutil
import sys
import tempfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from ..trace import cache

FORMAT_VERSION = 1
PREFIX = "r-"
OUTPUT = "output"
RENDER_ENV = ("NO_COLOR", "FORCE_COLOR", "TERM", "COLUMNS")
DEPENDENCIES = ("polars", "numpy", "rich", "click")
ENV_OFF = "NSYS_DOCTOR_NO_RESULT_CACHE"


def _file_digest(path: Path | None) -> str | None:
    """The content's hash (None for no file or one that cannot be read)."""
    if path is None:
        return None
    try:
        return cache.digest(Path(path).read_bytes())
    except OSError:
        return None


def code_fingerprint() -> list[object]:
    """What identifies the code that made an output: the package's files and the analysis dependencies."""
    pkg = Path(__file__).resolve().parent.parent
    files: list[object] = []
    for p in sorted(pkg.rglob("*")):
        if "__pycache__" in p.parts or p.suffix in (".pyc", ".sqlite"):
            continue
        with contextlib.suppress(OSError):
            st = p.stat()
            if p.is_file():
                files.append([str(p.relative_to(pkg)), st.st_size, st.st_mtime_ns])
    deps: list[object] = []
    for name in DEPENDENCIES:
        spec = None
        with contextlib.suppress(ImportError, ValueError):
            spec = importlib.util.find_spec(name)
        origin = spec.origin if spec is not None else None
        st_dep = None
        if origin:
            with contextlib.suppress(OSError):
                s = os.stat(origin)
                st_dep = [origin, s.st_size, s.st_mtime_ns]
        deps.append([name, st_dep])
    return [sys.version, files, deps]


@dataclass(frozen=True)
class ResultSlot:
    """Where one output lives: ``root / name``; ``paths_id`` and ``state_id`` name the traces and their state."""

    root: Path
    paths_id: str
    state_id: str
    key: str

    @property
    def folder(self) -> Path:
        return self.root / f"{PREFIX}{self.paths_id}-{self.state_id}-{cache.digest(self.key)[:24]}"


def slot(
    command: str,
    traces: Sequence[Path],
    options: Mapping[str, object],
    files: Mapping[str, Path | None],
    render: Mapping[str, object],
) -> ResultSlot | None:
    """The slot of this command's output, or None when it is not cached (cache off, traces that are not plain
    ``.sqlite`` files, traces too small to pay, the cache folder beside a trace, or anything that cannot be read)."""
    if not cache.enabled() or cache.switched_off(ENV_OFF):
        return None
    try:
        root = cache.cache_dir().resolve()
        states: list[list[object]] = []
        total = 0
        for t in traces:
            path = Path(t)
            resolved = path.resolve()
            st = os.stat(resolved)
            if path.suffix != ".sqlite" or not resolved.is_file() or root == resolved.parent:
                return None
            states.append([str(path), str(resolved), st.st_size, st.st_mtime_ns, st.st_ctime_ns, st.st_ino])
            total += st.st_size
        if not states or total < cache.min_trace_bytes():
            return None
        from ..capture.sidecar import sidecar_path

        contents = {name: _file_digest(p) for name, p in files.items()}
        contents |= {f"capture record {i}": _file_digest(sidecar_path(t)) for i, t in enumerate(traces)}
        env = {k: os.environ.get(k) for k in RENDER_ENV}
        from .. import __version__

        key = json.dumps(
            {
                "format": FORMAT_VERSION,
                "nsys_doctor": __version__,
                "command": command,
                "traces": states,
                "options": dict(options),
                "files": contents,
                "render": {**render, "env": env},
                "code": code_fingerprint(),
            },
            sort_keys=True,
            default=str,
        )
    except (OSError, RuntimeError, ValueError, TypeError):
        return None
    paths_id = cache.digest(json.dumps([s[1] for s in states]))[:16]
    state_id = cache.digest(json.dumps(states))[:16]
    return ResultSlot(root, paths_id, state_id, key)


def load(s: ResultSlot) -> str | None:
    """The stored output, or None (no entry, or one that does not hold this key)."""
    meta_path = s.folder / cache.META
    try:
        meta = json.loads(meta_path.read_text(encoding="utf-8"))
        if not isinstance(meta, dict) or meta.get("key") != s.key or meta.get("format") != FORMAT_VERSION:
            return None
        text = (s.folder / OUTPUT).read_bytes().decode("utf-8", "surrogatepass")
        if len(text) != meta.get("chars"):
            return None
        os.utime(meta_path)  # least recently used goes first
    except (OSError, ValueError):
        return None
    return text


def store(s: ResultSlot, text: str) -> None:
    """Keep ``text`` (atomically), drop the entries of older states of the same traces, keep the cache bounded."""
    tmp: Path | None = None
    try:
        s.root.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(prefix=f"{cache.TMP_PREFIX}{PREFIX}", dir=s.root))
        (tmp / OUTPUT).write_bytes(text.encode("utf-8", "surrogatepass"))
        meta = {"format": FORMAT_VERSION, "key": s.key, "chars": len(text)}
        (tmp / cache.META).write_text(json.dumps(meta, sort_keys=True) + "\n", encoding="utf-8")
        try:
            os.rename(tmp, s.folder)
        except OSError:  # the same entry was stored by another process first
            return
        tmp = None
        for old in s.root.glob(f"{PREFIX}{s.paths_id}-*"):
            if not old.name.startswith(f"{PREFIX}{s.paths_id}-{s.state_id}-"):
                cache.remove_entry(old)
        cache.evict(s.root, cache.max_bytes(), keep=s.folder)
    except Exception:
        return
    finally:
        if tmp is not None:
            shutil.rmtree(tmp, ignore_errors=True)
