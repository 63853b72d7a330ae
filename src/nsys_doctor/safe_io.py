"""Writing outputs without ever touching an input: the one place every command writes a file.

Rules (tested in ``tests/test_outputs.py``):

- An output that resolves to an input (the same file, also through symlinks or hard links) is refused.
- An existing file that is a trace (SQLite or ``.nsys-rep``) is never overwritten by an output, whatever the
  command's inputs are: a trace took an hour to capture, a report a second to make.
- Files are written atomically: a temporary file beside the destination, flushed, then renamed over it. A reader
  never sees half a report, and a failed write leaves the old file as it was.
- ``-o DIR/`` (a trailing slash, or an existing folder) means a folder: the file gets the command's default name.
- A symlink is never written through where the caller asks for that (the baseline store).
- Special files (``/dev/stdout``, a FIFO) are written in place, since they cannot be renamed over.
- Every failure is a one-line :class:`~nsys_doctor.errors.UsageError` naming the path and the fix.
"""

from __future__ import annotations

import errno
import os
import stat
import sys
from collections.abc import Iterable, Iterator

from .errors import UsageError

TYPE_CHECKING = False
if TYPE_CHECKING:
    from contextlib import AbstractContextManager
    from pathlib import Path
    from typing import IO

SQLITE_MAGIC = b"SQLite format 3\x00"
TRACE_SUFFIXES = (".sqlite", ".nsys-rep", ".qdrep", ".sqlite-wal", ".sqlite-journal")


def is_trace_file(path: Path) -> bool:
    """True for an existing regular file that holds a trace: SQLite content or an nsys report by its suffix."""
    try:
        if not path.is_file():
            return False
        if path.name.lower().endswith(TRACE_SUFFIXES):
            return True
        with path.open("rb") as fh:
            return fh.read(len(SQLITE_MAGIC)) == SQLITE_MAGIC
    except OSError:
        return False


def _same(a: Path, b: Path) -> bool:
    try:
        return os.path.samefile(a, b)
    except (OSError, ValueError):
        return False


def check_output(path: Path, inputs: Iterable[Path | str] = ()) -> None:
    """Refuse an output path that would overwrite an input or a trace (raises UsageError)."""
    from pathlib import Path

    for inp in inputs:
        p = Path(inp)
        if _same(p, path):
            raise UsageError(
                f"output {path} is the input {inp}",
                "choose another output path; nsys-doctor never writes over its inputs",
            )
    if is_trace_file(path):
        raise UsageError(
            f"output {path} is an existing trace",
            "choose another output path; nsys-doctor never writes over a trace",
        )


def resolve_output(output: str | Path, default_name: str | None = None) -> Path:
    """``-o`` as given: a folder (trailing slash or an existing folder) gets ``default_name`` inside it."""
    from pathlib import Path

    text = str(output)
    path = Path(text)
    if text.endswith(("/", os.sep)) or path.is_dir():
        if not default_name:
            raise UsageError(f"output {text} is a folder", "name a file for -o")
        if not path.is_dir():
            raise UsageError(f"output folder {text} does not exist", f"create it first (mkdir -p {text})")
        return path / default_name
    return path


def _fail(path: Path, exc: OSError) -> UsageError:
    reason = exc.strerror or str(exc)
    if exc.errno == errno.ENOENT:
        return UsageError(f"cannot write {path}: folder {path.parent} does not exist", "create it or choose another -o")
    if exc.errno in (errno.EACCES, errno.EPERM, errno.EROFS):
        return UsageError(f"cannot write {path}: {reason.lower()}", "choose a writable -o path")
    if exc.errno == errno.ENOSPC:
        return UsageError(f"cannot write {path}: no space left on device", "free space or choose another -o")
    if exc.errno == errno.EISDIR:
        return UsageError(f"cannot write {path}: it is a folder", "name a file for -o")
    return UsageError(f"cannot write {path}: {reason}", "choose another -o path")


def write_atomic(
    path: Path | str,
    data: str | bytes,
    *,
    inputs: Iterable[Path | str] = (),
    refuse_symlink: bool = False,
) -> Path:
    """Write ``data`` to ``path`` safely (see the module docstring); returns the path written."""
    from pathlib import Path

    path = Path(path)
    raw = data.encode("utf-8") if isinstance(data, str) else data
    with open_atomic(path, inputs, refuse_symlink=refuse_symlink) as fh:
        fh.write(raw)
    return path


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def write_stdout(text: str) -> None:
    """Standard output, with a closed or failing stream as a one-line error instead of a traceback."""
    out = sys.stdout
    if out is None:
        raise UsageError("standard output is closed", "redirect it to a file, or use -o FILE")
    try:
        out.write(text)
        out.flush()
    except BrokenPipeError:
        raise
    except (OSError, ValueError) as exc:
        raise UsageError(f"cannot write to standard output: {exc}", "use -o FILE") from None


GZIP_LEVEL = 3  # 200 MB/s and a tenth of the size on a trace-event JSON; level 6 halves the speed for 1.4x


def open_atomic(
    path: Path, inputs: Iterable[Path | str] = (), compress: bool = False, refuse_symlink: bool = False
) -> AbstractContextManager[IO[bytes]]:
    """A binary stream that becomes ``path`` only once the ``with`` body finishes (the one writer of every output
    file; ``write_atomic`` writes whole texts through it): refused when ``path`` is an input or a trace (or, with
    ``refuse_symlink``, a symlink); written to a temporary file beside it, flushed, then renamed over it; special
    files (``/dev/stdout``) written in place. ``compress``: gzip, with no time or name in its header, so the bytes
    are the same every time."""
    import contextlib  # here: a command writing to standard output (a small trace's report) never imports it

    return contextlib.contextmanager(_open_atomic)(path, inputs, compress, refuse_symlink)


def _open_atomic(path: Path, inputs: Iterable[Path | str], compress: bool, refuse_symlink: bool) -> Iterator[IO[bytes]]:
    import contextlib
    from pathlib import Path

    path = Path(path)
    check_output(path, inputs)
    if refuse_symlink and path.is_symlink():
        raise UsageError(f"refusing to write through the symlink {path}", "remove the link and run again")
    try:
        st = path.stat()
    except FileNotFoundError:
        st = None
    except OSError as exc:
        raise _fail(path, exc) from None
    if st is not None and stat.S_ISDIR(st.st_mode):
        raise UsageError(f"cannot write {path}: it is a folder", "name a file for the output")
    if st is not None and not stat.S_ISREG(st.st_mode):
        try:
            with path.open("wb") as raw, _maybe_gzip(raw, compress) as fh:
                yield fh
        except OSError as exc:
            raise _fail(path, exc) from None
        return
    if not path.parent.is_dir():
        raise UsageError(f"cannot write {path}: folder {path.parent} does not exist", "create it or choose another -o")
    tmp: str | None = None
    try:
        import tempfile  # (here: a command printing to standard output never needs it)

        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
        with os.fdopen(fd, "wb") as raw:
            with _maybe_gzip(raw, compress) as fh:
                yield fh
            raw.flush()
            os.fsync(raw.fileno())
        os.chmod(tmp, (st.st_mode & 0o7777) if st is not None else (0o666 & ~_umask()))
        if refuse_symlink and path.is_symlink():  # planted between the check and the rename
            raise UsageError(f"refusing to write through the symlink {path}", "remove the link and run again")
        os.replace(tmp, path)
        tmp = None
    except OSError as exc:
        raise _fail(path, exc) from None
    finally:
        if tmp is not None:
            with contextlib.suppress(OSError):
                os.unlink(tmp)


def _maybe_gzip(raw: IO[bytes], compress: bool) -> AbstractContextManager[IO[bytes]]:
    import contextlib

    return contextlib.contextmanager(_gzipped)(raw, compress)


def _gzipped(raw: IO[bytes], compress: bool) -> Iterator[IO[bytes]]:
    if not compress:
        yield raw
        return
    import gzip

    with gzip.GzipFile(filename="", mode="wb", fileobj=raw, mtime=0, compresslevel=GZIP_LEVEL) as gz:
        yield gz  # type: ignore[misc]  # a GzipFile is a binary file, which typeshed does not declare an IO[bytes]


def write_error(path: Path, exc: OSError) -> UsageError:
    """The one-line error for an OSError met while writing ``path`` (no space, read-only, missing folder ...)."""
    return _fail(path, exc)
