"""Pasted ``nsys stats`` text -> typed tables: the input layer of ``nsys-doctor explain``.

People paste nsys output into issues, pull requests and chats: whole ``nsys profile --stats=true`` logs, one
report, a few rows of one. This module finds every stats table in such text and reads it back into numbers.

What it understands:

* layouts: ``column`` (header, dashes, rows), ``table`` (``+---+`` box borders), Markdown pipe tables, CSV (also
  ``;`` and tab separated), JSON arrays, and headerless runs of rows (a fragment cut out of a column table);
* every era of headers: ``Time(%)`` and ``Time (%)``, ``Average/Minimum/Maximum`` and ``Avg/Med/Min/Max/StdDev``,
  ``Operations`` and ``Count``, time units from the header (``(ns)``, ``(us)``, ``(ms)``, ``(s)``), byte units
  (``(MB)``, ``(KiB)``, ...) and extra columns (``GridXYZ``, ``BlockXYZ``, kernel-exec statistics);
* numbers as any locale writes them (``1,234.5``, ``1.234,5``, ``1 234,5``, ``1'234.5``): the convention is decided
  per table from all its numbers, never per cell; a column that reads two ways, or none, is marked unreadable;
* the report of each table, from the line before it (``** CUDA GPU Kernel Summary (cuda_gpu_kern_sum):``,
  ``Processing [...] with [.../cuda_gpu_kern_sum.py]``, ``Executing 'gpukernsum' stats report``, the old
  ``CUDA Kernel Statistics:``) or else from its columns and names;
* the noise around tables (prompts, notices, progress lines, ``SKIPPED`` lines, ``...`` where rows were cut).

Every column gets a normalized *role* (``share``, ``total_ns``, ``count``, ``avg_ns``, ``med_ns``, ``min_ns``,
``max_ns``, ``stddev_ns``, ``total_bytes``, ``name``, ``grid``, ...; unknown headers get a slug of their label).
Times are converted to nanoseconds and sizes to bytes with exact decimal arithmetic; every column records how many
decimals the text kept, so callers know the precision. Parsing never raises on odd input and stays linear in the
text's length; ``load_pasted`` refuses text without a table (or whose tables' numbers cannot be read), and the
readers (``read_source``, ``read_stream``, ``decode_text``) refuse traces, binary data, broken encodings and input
over ``MAX_INPUT_BYTES``, all with ``UsageError``.

Modules: ``vocabulary``, ``model`` (``PastedTable``, ``PastedText``), ``numbers``, ``columns``, ``layouts`` (one
parser per layout), ``build``, ``scan`` (``parse_pasted``), ``reading`` (``read_source``, ``load_pasted``).
"""

from .model import PastedTable, PastedText
from .numbers import parse_number, resolve_numbers
from .reading import MAX_INPUT_BYTES, SQLITE_MAGIC, decode_text, load_pasted, read_source, read_stream
from .scan import parse_pasted
from .vocabulary import REPORT_KINDS

__all__ = [
    "MAX_INPUT_BYTES",
    "REPORT_KINDS",
    "SQLITE_MAGIC",
    "PastedTable",
    "PastedText",
    "decode_text",
    "load_pasted",
    "parse_number",
    "parse_pasted",
    "read_source",
    "read_stream",
    "resolve_numbers",
]
