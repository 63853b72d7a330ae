"""Reading the input: files or standard input, traces and binary data refused, encodings decoded."""

from __future__ import annotations

import re
from pathlib import Path
from typing import IO

from ...errors import UsageError
from .model import PastedText
from .scan import parse_pasted

MAX_INPUT_BYTES = 64 * 1024 * 1024
"""The most text explain reads: a whole ``nsys profile --stats=true`` log is a few MB; more is not a paste."""
_CHUNK = 1024 * 1024
SQLITE_MAGIC = b"SQLite format 3\x00"
TRACE_SUFFIXES = (".nsys-rep", ".qdrep", ".qdstrm")
_TEXT_HINT = "pass a text file with pasted nsys stats output, or - for standard input"
_BOMS = (
    (b"\xff\xfe\x00\x00", "utf-32"),
    (b"\x00\x00\xfe\xff", "utf-32"),
    (b"\xff\xfe", "utf-16"),
    (b"\xfe\xff", "utf-16"),
)
_CONTROL = re.compile(r"[\x00-\x08\x0e-\x1a\x1c-\x1f\x7f-\x9f]")
_UTF8_MULTIBYTE = re.compile(rb"[\xc2-\xf4][\x80-\xbf]")


def _trace_error(label: str, what: str) -> UsageError:
    path = label if label != "standard input" else "TRACE"
    return UsageError(
        f"{label} is {what}, not pasted text",
        f"run `nsys-doctor report {path}` for the full report (explain reads the text output of `nsys stats`)",
    )


def _bom(data: bytes) -> str | None:
    return next((enc for bom, enc in _BOMS if data.startswith(bom)), None)


def _refuse_binary(data: bytes, label: str) -> None:
    """``UsageError`` for bytes that are a trace or binary data rather than text (``data`` holds NUL bytes)."""
    if data.startswith(SQLITE_MAGIC):
        raise _trace_error(label, "an SQLite database (an nsys trace export)")
    head = data[:4096]
    odd, even = head[1::2], head[0::2]
    if len(head) >= 16 and odd.count(0) >= 0.4 * len(odd) and even.count(0) < 0.1 * len(even):
        raise UsageError(
            f"{label} looks like UTF-16 text without a byte-order mark",
            "convert it to UTF-8 (iconv -f UTF-16LE -t UTF-8 FILE > FILE.txt) and pass that",
        )
    raise UsageError(f"{label} is binary data (it contains NUL bytes), not text", _TEXT_HINT)


def read_stream(stream: IO[bytes] | IO[str], label: str, limit: int = MAX_INPUT_BYTES) -> bytes:
    """The bytes of a stream, read in chunks up to ``limit``: ``UsageError`` when it holds more (an endless stream
    stops there), when it is binary (NUL bytes, stopping at the first chunk that has one) or cannot be read."""
    buf = bytearray()
    text_encoding: str | None = None
    while True:
        try:
            chunk = stream.read(min(_CHUNK, limit + 1 - len(buf)))
        except (OSError, ValueError) as exc:  # ValueError: a closed file
            reason = getattr(exc, "strerror", None) or str(exc) or type(exc).__name__
            raise UsageError(f"cannot read {label}: {reason}", _TEXT_HINT) from exc
        if not chunk:
            break
        if isinstance(chunk, str):
            chunk = chunk.encode("utf-8", "surrogateescape")
        if text_encoding is None and len(buf) + len(chunk) >= 4:
            text_encoding = _bom(bytes(buf[:4]) + chunk[:4]) or ""
        if not text_encoding and b"\x00" in chunk:
            _refuse_binary(bytes(buf[:4096]) + chunk[:4096], label)
        buf += chunk
        if len(buf) > limit:
            size = f"{limit // (1024 * 1024)} MiB" if limit % (1024 * 1024) == 0 else f"{limit:,} bytes"
            raise UsageError(
                f"{label} is larger than {size}: too big for pasted nsys stats output",
                "pass only the nsys stats tables (a whole `nsys profile --stats=true` log is a few MB), or run "
                "`nsys-doctor report TRACE` on the trace itself",
            )
    return bytes(buf)


def decode_text(data: bytes, label: str = "the input") -> str:
    """Text from bytes as pasted files come: UTF-8, UTF-16 or UTF-32 with a byte-order mark (PowerShell's ``>``
    writes UTF-16), else a legacy 8-bit encoding (Windows-1252). Traces, binary data and broken UTF-8 are refused
    with ``UsageError``."""
    enc = _bom(data)
    if enc is not None:
        try:
            text = data.decode(enc)
        except UnicodeDecodeError as exc:
            raise UsageError(
                f"{label} starts with a {enc.upper()} byte-order mark but is not valid {enc.upper()} "
                f"(at byte {exc.start})",
                "save the text as UTF-8 and pass that",
            ) from exc
        if "\x00" in text:
            raise UsageError(f"{label} is binary data (it contains NUL characters), not text", _TEXT_HINT)
    else:
        if b"\x00" in data:
            _refuse_binary(data, label)
        try:
            text = data.decode("utf-8-sig")
        except UnicodeDecodeError as exc:
            if _UTF8_MULTIBYTE.search(data):  # UTF-8 with broken bytes: reading it another way would garble it
                raise UsageError(
                    f"{label} is not valid UTF-8 (byte 0x{data[exc.start]:02x} at offset {exc.start})",
                    "save the text as UTF-8 (or copy it again from the terminal) and pass that",
                ) from exc
            text = data.decode("cp1252", errors="strict") if _cp1252_ok(data) else data.decode("latin-1")
    sample = text[: 1 << 20]
    controls = len(_CONTROL.findall(sample))
    if controls > 8 and controls > 0.01 * len(sample):
        raise UsageError(f"{label} is binary data (control characters), not text", _TEXT_HINT)
    return text


def _cp1252_ok(data: bytes) -> bool:
    try:
        data.decode("cp1252")
    except UnicodeDecodeError:
        return False
    return True


def read_source(path: str | Path, limit: int = MAX_INPUT_BYTES) -> tuple[str, str]:
    """(text, source label) of a file; ``UsageError`` naming the file when it cannot be read, is a trace or binary
    data, or is larger than ``limit``."""
    p = Path(path)
    label = str(p)
    if p.name.lower().endswith(TRACE_SUFFIXES) and p.exists():
        raise _trace_error(label, "an Nsight Systems report")
    try:
        with open(p, "rb") as f:  # a plain file object: FIFOs and devices are read in chunks too
            data = read_stream(f, label, limit)
    except IsADirectoryError as exc:
        raise UsageError(f"{p} is a directory", _TEXT_HINT) from exc
    except OSError as exc:
        raise UsageError(f"cannot read {p}: {exc.strerror or exc}", _TEXT_HINT) from exc
    return decode_text(data, label), label


def load_pasted(text: str, source: str) -> PastedText:
    """``parse_pasted``, refusing text in which no table was found, or whose tables' numbers cannot be read."""
    parsed = parse_pasted(text, source)
    if not parsed.tables:
        n = len(text.strip().splitlines())
        what = "is empty" if not n else f"has {n} line{'s' if n != 1 else ''} but no table"
        if parsed.refused:
            what += f"; {parsed.refused[0]}"
        raise UsageError(
            f"no nsys stats table found in {source} (it {what})",
            "paste the output of `nsys stats REPORT.nsys-rep` (or `nsys profile --stats=true`), e.g. "
            "nsys stats -r cuda_gpu_kern_sum,cuda_api_sum,cuda_gpu_mem_time_sum REPORT.nsys-rep",
        )
    if not any(t.readable for t in parsed.tables):
        t = parsed.tables[0]
        header, why = next(iter(t.unreadable.items()))
        raise UsageError(
            f"cannot read the numbers of the {t.report or 'pasted'} table at line {t.line} of {source}: "
            f"column {header!r}: {why}",
            "paste the table as nsys prints it in the C locale (LC_ALL=C nsys stats ...) or as CSV "
            "(nsys stats --format csv ...)",
        )
    return parsed
