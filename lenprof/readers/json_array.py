"""A ``.json`` file that holds one JSON array of rows, pretty-printed or not.

FlagEmbedding and ``datasets.load_dataset("json")`` read such a file, so lenprof does too: a
``.json`` file (also ``.json.gz``/``.json.zst``, a UTF-8 BOM allowed) whose first byte after
whitespace is ``[`` is an array; any other ``.json`` file is JSON Lines, as before. Each element
is a row, and its 1-based position in the array is its "line" in rejects and examples.

An array has no line starts to cut it at, so the file is read whole (JSON Lines stream). Each
element's own bytes then go through the same checks as a JSONL line, so a malformed element,
``NaN``, a repeated key or an element that is no object gets the usual reason, and the rest of
the array is kept. Only damage to the array itself (an unclosed string or bracket, text after
the closing ``]``) stops the scan: that is an :class:`InputError` naming the line and column.

    >>> elements(b'[{"query": "q"},\\n 3, ]', "x.json")
    [b'{"query": "q"}', b'3', Unreadable(reason='malformed_json', detail='an empty element: a comma with no value after it', text='')]
"""

from __future__ import annotations

import re
from collections.abc import Iterator

import msgspec

from ..inputs import BOM, InputError, InputFile, Unreadable, decompressed_blocks, file_blocks

_WHITESPACE = b" \t\r\n"
_as_elements = msgspec.json.Decoder(list[msgspec.Raw]).decode
# A whole string (escapes included), a lone quote (a string never closed), or a structural byte.
_TOKENS = re.compile(rb'"[^"\\]*(?:\\.[^"\\]*)*"|"|[\[\]{},]', re.S)
_AT_BYTE = re.compile(r"\(byte (\d+)\)")
EMPTY = Unreadable("malformed_json", "an empty element: a comma with no value after it", "")


def starts_array(head: bytes) -> bool:
    """Whether the first bytes of a ``.json`` input open an array (a BOM and whitespace aside)."""
    head = head[len(BOM) :] if head.startswith(BOM) else head
    return head.lstrip(_WHITESPACE)[:1] == b"["


def peek(item: InputFile) -> bytes:
    """The first bytes of a file (decompressed), enough to tell an array from JSON Lines."""
    blocks = decompressed_blocks(item) if item.compression else file_blocks(item.path)
    try:
        for block in blocks:
            if block.strip(_WHITESPACE):
                return block
        return b""
    finally:
        blocks.close()  # type: ignore[attr-defined]


def read_all(item: InputFile) -> bytes:
    from . import stdin

    if item.path == stdin.NAME:
        return b"".join(stdin.blocks(item))
    return b"".join(decompressed_blocks(item) if item.compression else file_blocks(item.path))


def elements(data: bytes, path: str) -> list[bytes | Unreadable]:
    """The bytes of each element of the array ``data`` holds, in order."""
    data = data[len(BOM) :] if data.startswith(BOM) else data
    try:
        return [bytes(raw) for raw in _as_elements(data)]
    except msgspec.DecodeError as exc:
        first_error = exc  # an element may be at fault, not the array: split it by hand
    return _split(data, path, first_error)


def _split(data: bytes, path: str, first_error: Exception) -> list[bytes | Unreadable]:
    """Split an array at its top-level commas, without judging the elements."""
    open_at = data.find(b"[")
    out: list[bytes | Unreadable] = []
    depth, start, commas = 0, open_at + 1, 0
    for m in _TOKENS.finditer(data, open_at + 1):
        token = m.group()
        if token == b'"':
            _fail(path, data, m.start(), "a string is never closed", first_error)
        elif token in (b"[", b"{"):
            depth += 1
        elif token in (b"]", b"}") and depth:
            depth -= 1
        elif token == b"]" or (token == b"," and depth == 0):
            element = data[start : m.start()].strip(_WHITESPACE)
            if element:
                out.append(element)
            elif token == b"," or commas:  # `[,`, `,,` or `,]`; but `[]` is an empty array
                out.append(EMPTY)
            if token == b"]":
                rest = data[m.end() :].lstrip(_WHITESPACE)
                if rest:
                    _fail(path, data, len(data) - len(rest), "text after the closing ']'", first_error)
                return out
            start, commas = m.end(), commas + 1
        elif token == b"}":
            _fail(path, data, m.start(), "a '}' closes nothing", first_error)
    _fail(path, data, len(data), "the array is never closed", first_error)
    raise AssertionError  # unreachable: _fail raises


def _fail(path: str, data: bytes, at: int, what: str, first_error: Exception) -> None:
    found = _AT_BYTE.search(str(first_error))
    if at == len(data) and found:  # "never closed" is found at the end; the decoder saw where
        at = int(found.group(1))
    line = data.count(b"\n", 0, at) + 1
    column = at - (data.rfind(b"\n", 0, at) + 1) + 1
    raise InputError(
        f"{path}: starts as a JSON array but is not one: {what} (first fault at line {line}, "
        f"column {column}); fix the file, or write one JSON object per line (JSON Lines)"
    )


def pieces(item: InputFile, shard_bytes: int) -> Iterator[tuple[list, int]]:
    """The array's elements in pieces of about ``shard_bytes``, each with the bytes of the file
    read once it is read (for progress)."""
    elems = elements(read_all(item), item.path)
    size, total = item.size, max(1, sum(len(e) if isinstance(e, bytes) else 1 for e in elems))
    piece: list[bytes | Unreadable] = []
    held = done = 0
    for e in elems:
        piece.append(e)
        held += len(e) if isinstance(e, bytes) else 1
        if held >= shard_bytes:
            done += held
            yield piece, size * done // total
            piece, held = [], 0
    yield piece, size
