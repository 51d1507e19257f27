"""Readers for inputs that are not JSON Lines or Parquet files: one module per kind of input.

Each turns one input into *records*, the same things a JSONL or Parquet shard holds, so every
row meets the same checks (``rows.checks.check_row``) and the same rejects contract:

- ``bytes``: the JSON text of one row (a JSONL line, an element of a JSON array);
- ``dict``: a row already decoded (a CSV row, a ``datasets`` row);
- :class:`~lenprof.io.files.Unreadable`: a row that could not be read (a CSV row with the wrong
  number of cells), dropped with its reason and raw text;
- ``None``: a physical line that is no row of its own (a CSV header, the later lines of a cell
  that spans lines), so that a row's number stays the file's line.

``json_array``   a ``.json`` file that holds one array (split as it streams when it is large)
``delimited``    ``.csv``/``.tsv`` files, every cell a string
``stdin``        ``-``: JSON Lines or a JSON array from standard input
``hf``           ``datasets`` ``save_to_disk`` folders and hub datasets (``hf://org/name``)
``splits``       train/test files found together in one folder
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from lenprof.io.files import InputFile

PIECEWISE = ("json", "csv", "tsv", "datasets")  # the formats these readers cut into pieces


def pieces(
    item: InputFile, shard_bytes: int, max_line_bytes: int, keep: int = 4 * 4096
) -> Iterator[tuple[Any, int]]:
    """An input's records a piece of about ``shard_bytes`` at a time: a list of records, or an
    Arrow table of rows; each with the bytes of the input read once it is read (for progress).
    A row over ``max_line_bytes`` is a :class:`~lenprof.io.files.LineTooLong` with its first
    ``keep`` bytes, never held whole."""
    if item.format == "json":
        from lenprof.io.readers.json_array import pieces as read
    elif item.format == "datasets":
        from lenprof.io.readers.hf import pieces as read
    else:
        from lenprof.io.readers.delimited import pieces as read

        return read(item, shard_bytes, max_line_bytes)
    return read(item, shard_bytes, max_line_bytes, keep)
