"""``-``: rows from standard input, JSON Lines or one JSON array (its first byte is ``[``).

A pipe cannot be read twice or cut into byte ranges, so the driver reads it as it reads a
``.gz`` file, in pieces of physical lines (an array is read whole). The first bytes are read at
discovery, to tell an array from JSON Lines, and kept in :attr:`InputFile.head`. Rows from stdin
are named ``<stdin>`` in the profile, the examples and the rejects.
"""

from __future__ import annotations

import os
import stat
import sys
from collections.abc import Iterator

from ..inputs import BLOCK, InputError, InputFile
from .json_array import starts_array

NAME = "<stdin>"
_MAGIC = {b"\x1f\x8b": "gzip", b"\x28\xb5\x2f\xfd": "zstd"}


def _stream():
    stream = getattr(sys.stdin, "buffer", None)
    if stream is None:
        raise InputError("-: there is no standard input to read")
    return stream


def open_stdin() -> InputFile:
    """stdin as an input, its format told from its first bytes; a terminal is refused."""
    stream = _stream()
    if stream.isatty():
        raise InputError(
            "-: stdin is a terminal, not data; pipe rows in (cat rows.jsonl | lenprof scan -) or name the files"
        )
    head = b""
    while not head.strip():  # to the first byte that is not whitespace, or the end
        block = stream.read1(BLOCK) if hasattr(stream, "read1") else stream.read(BLOCK)
        if not block:
            break
        head += block
    for magic, kind in _MAGIC.items():
        if head.startswith(magic):
            raise InputError(
                f"-: stdin holds {kind} data; decompress it first (e.g. zcat rows.jsonl.gz | lenprof scan -)"
            )
    return InputFile(NAME, "json" if starts_array(head) else "jsonl", known_size=_size(stream), head=head)


def _size(stream) -> int:
    """The size of a file redirected to stdin (``< rows.jsonl``); 0 for a pipe, which has none."""
    try:
        st = os.fstat(stream.fileno())
    except (OSError, ValueError, AttributeError):  # io.UnsupportedOperation is an OSError
        return 0
    return st.st_size if stat.S_ISREG(st.st_mode) else 0


def blocks(item: InputFile, where: dict[str, int] | None = None) -> Iterator[bytes]:
    """stdin's bytes: the head read at discovery, then the rest a block at a time."""
    where = where if where is not None else {}
    where["disk"] = where["decompressed"] = 0
    stream = _stream()
    block = item.head
    try:
        while block:
            where["decompressed"] += len(block)
            where["disk"] = min(where["decompressed"], item.size)
            yield block
            block = stream.read(BLOCK)
    except OSError as exc:
        raise InputError(f"{NAME}: cannot be read ({exc.strerror or exc})") from exc
