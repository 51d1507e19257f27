"""A ``.json`` file that holds one JSON array of rows, pretty-printed or not.

FlagEmbedding and ``datasets.load_dataset("json")`` read such a file, so lenprof does too: a
``.json`` file (also ``.json.gz``/``.json.zst``, a UTF-8 BOM allowed) whose first byte after
whitespace is ``[`` is an array; any other ``.json`` file is JSON Lines, as before. Each element
is a row, and its 1-based position in the array is its "line" in rejects and examples.

An array has no line starts to cut it at, so an array of up to :data:`WHOLE_BELOW` bytes is read
whole and split by msgspec; a larger one is split as it streams (:func:`stream_elements`), so
memory holds one block and one element, never the array. Each element's own bytes then go
through the same checks as a JSONL line, so a malformed element, ``NaN``, a repeated key or an
element that is no object gets the usual reason, and the rest of the array is kept; an element
longer than ``--max-line-bytes`` is never held whole: it is dropped as ``line_too_long`` with its
first bytes. Only damage to the array itself (an unclosed string or bracket, text after the
closing ``]``) stops the scan: that is an :class:`InputError` naming the line and column.

    >>> elements(b'[{"query": "q"},\\n 3, ]', "x.json")
    [b'{"query": "q"}', b'3', Unreadable(reason='malformed_json', detail='an empty element: a comma with no value after it', text='')]
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from itertools import chain

import msgspec

from lenprof.errors import InputError
from lenprof.io.files import (
    _WHITESPACE,
    BOM,
    InputFile,
    LineTooLong,
    Unreadable,
    decompressed_blocks,
    file_blocks,
)

_as_elements = msgspec.json.Decoder(list[msgspec.Raw]).decode
# A whole string (escapes included), a lone quote (a string never closed), or a structural byte.
_TOKENS = re.compile(rb'"[^"\\]*(?:\\.[^"\\]*)*"|"|[\[\]{},]', re.S)
_AT_BYTE = re.compile(r"\(byte (\d+)\)")
_STRUCTURE = re.compile(rb'["\[\]{},]')  # what the streaming split looks at between strings
_STRING_REST = re.compile(rb'[^"\\]*(?:\\.[^"\\]*)*', re.S)  # up to a string's closing quote
WHOLE_BELOW = 64 << 20  # bytes of an array read whole (fast); a longer one streams
_QUOTE, _CLOSE, _CLOSE_OBJECT, _COMMA = b'"]},'  # as the ints a bytearray holds
HEAD_BYTES = 4 * 4096  # of an element too long to hold: enough for the rejects' raw text
EMPTY = Unreadable("malformed_json", "an empty element: a comma with no value after it", "")


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
    from lenprof.io.readers import stdin

    if item.path == stdin.NAME:
        return b"".join(stdin.blocks(item))
    return b"".join(decompressed_blocks(item) if item.compression else file_blocks(item.path))


def elements(data: bytes, path: str) -> list[bytes | Unreadable]:
    """The bytes of each element of the array ``data`` holds, in order."""
    data = data[len(BOM) :] if data.startswith(BOM) else data
    try:
        return [bytes(raw) for raw in _as_elements(data)]
    except (msgspec.DecodeError, RecursionError) as exc:
        # An element may be at fault, not the array (one nested deeper than the decoder goes is
        # dropped as in JSON Lines): split it by hand.
        first_error = exc
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


def _blocks(item: InputFile, where: dict[str, int]) -> Iterator[bytes]:
    from lenprof.io.readers import stdin

    if item.path == stdin.NAME:
        return stdin.blocks(item, where)
    if item.compression:
        return decompressed_blocks(item, where)
    return _counted(file_blocks(item.path), where)


def _counted(blocks: Iterator[bytes], where: dict[str, int]) -> Iterator[bytes]:
    where["disk"] = 0
    for block in blocks:
        where["disk"] += len(block)
        yield block


def pieces(
    item: InputFile, shard_bytes: int, max_line_bytes: int = 1 << 62, keep: int = HEAD_BYTES
) -> Iterator[tuple[list, int]]:
    """The array's elements in pieces of about ``shard_bytes``, each with the bytes of the file
    read once it is read (for progress); an element over ``max_line_bytes`` is a
    :class:`LineTooLong` holding its first ``keep`` bytes."""
    where: dict[str, int] = {}
    blocks = _blocks(item, where)
    head: list[bytes] = []
    held = 0
    for block in blocks:  # the first WHOLE_BELOW bytes: all of most arrays
        head.append(block)
        held += len(block)
        if held > WHOLE_BELOW:
            break
    else:
        yield from _whole_pieces(item, b"".join(head), shard_bytes, max_line_bytes, keep)
        return
    piece: list[bytes | LineTooLong | Unreadable] = []
    held = 0
    for e in stream_elements(chain(head, blocks), item.path, max_line_bytes, keep):
        piece.append(e)
        held += len(e) if isinstance(e, bytes) else 1
        if held >= shard_bytes:
            yield piece, where["disk"]
            piece, held = [], 0
    yield piece, item.size


def _whole_pieces(
    item: InputFile, data: bytes, shard_bytes: int, max_line_bytes: int, keep: int
) -> Iterator[tuple[list, int]]:
    elems = elements(data, item.path)
    del data
    size, total = item.size, max(1, sum(len(e) if isinstance(e, bytes) else 1 for e in elems))
    piece: list[bytes | LineTooLong | Unreadable] = []
    held = done = 0
    for e in elems:
        length = len(e) if isinstance(e, bytes) else 1
        piece.append(LineTooLong(e[:keep], length) if length > max_line_bytes else e)  # type: ignore[index]
        held += length
        if held >= shard_bytes:
            done += held
            yield piece, size * done // total
            piece, held = [], 0
    yield piece, size


def stream_elements(
    blocks: Iterator[bytes], path: str, max_bytes: int, keep: int
) -> Iterator[bytes | LineTooLong | Unreadable]:
    """The elements of the array a byte stream holds, as :func:`_split` finds them, holding at
    most a block and one element: an element over ``max_bytes`` is skipped as it streams, its
    first ``keep`` bytes kept in a :class:`LineTooLong`. Offsets below count from the stream's
    start; ``buf`` holds its bytes from ``gone`` on.

        >>> list(stream_elements(iter([b' [{"a": "x,', b']"}, ', b'"', b'long"]']), "x.json", 10, 3))
        [LineTooLong(head=b'{"a', length=12), b'"long"']
    """
    buf = bytearray()
    gone = gone_lines = 0  # bytes and newlines dropped from buf's front
    last_newline = -1  # the offset of the last newline dropped
    pos = 0  # where the scan is
    start = -1  # where the element being read starts; -1 before the '['
    depth = commas = 0
    string_at = -1  # where the string being read starts; -1 outside strings
    string_where: tuple[int, int] | None = None  # its line and column, once dropped from buf
    skipping: bytes | None = None  # the head of an element too long to hold
    closed = False

    def where(at: int) -> tuple[int, int]:
        rel = at - gone
        newline = buf.rfind(b"\n", 0, rel)
        column = rel - newline if newline >= 0 else at - last_newline
        return gone_lines + buf.count(b"\n", 0, rel) + 1, column

    def fail(at: int | tuple[int, int], what: str) -> None:
        line, column = where(at) if isinstance(at, int) else at
        raise InputError(
            f"{path}: starts as a JSON array but is not one: {what} (first fault at line {line}, "
            f"column {column}); fix the file, or write one JSON object per line (JSON Lines)"
        )

    for block in chain(filter(None, blocks), [b""]):
        if not gone and not buf and block.startswith(BOM):
            block = block[len(BOM) :]
        buf += block
        while True:
            rel = pos - gone
            if closed:
                rest = buf[rel:].lstrip(_WHITESPACE)
                if rest:
                    fail(gone + len(buf) - len(rest), "text after the closing ']'")
                pos = gone + len(buf)
                break
            if start < 0:  # only whitespace comes before the '[' (starts_array said so)
                at = buf.find(b"[", rel)
                if at < 0:
                    pos = gone + len(buf)
                    break
                start = pos = gone + at + 1
                continue
            if string_at >= 0:
                r = _STRING_REST.match(buf, rel).end()  # type: ignore[union-attr]
                if r >= len(buf) or buf[r] != _QUOTE:  # the string goes on in the next block
                    pos = gone + r
                    break
                pos, string_at, string_where = gone + r + 1, -1, None
                continue
            m = _STRUCTURE.search(buf, rel)
            if m is None:
                pos = gone + len(buf)
                break
            token, at, pos = buf[m.start()], gone + m.start(), gone + m.end()
            if token == _QUOTE:
                string_at = at
            elif token in b"[{":
                depth += 1
            elif token in b"]}" and depth:
                depth -= 1
            elif token == _CLOSE or (token == _COMMA and depth == 0):
                if skipping is not None:
                    yield LineTooLong(skipping, at - start)
                    skipping = None
                else:
                    element = bytes(buf[start - gone : at - gone].strip(_WHITESPACE))
                    if len(element) > max_bytes:
                        yield LineTooLong(element[:keep], len(element))
                    elif element:
                        yield element
                    elif token == _COMMA or commas:  # `[,`, `,,` or `,]`; but `[]` is an empty array
                        yield EMPTY
                closed = token == _CLOSE
                start, commas = pos, commas + 1
            elif token == _CLOSE_OBJECT:
                fail(at, "a '}' closes nothing")
        if not block:  # the end of the stream
            if string_at >= 0:
                fail(string_where or string_at, "a string is never closed")
            if not closed:
                fail(gone + len(buf), "the array is never closed")
            return
        if start >= 0 and skipping is None and not closed and pos - start > max_bytes:
            read = buf[start - gone : pos - gone]
            start += len(read) - len(read.lstrip(_WHITESPACE))  # whitespace around it is no part of it
            if len(read.strip(_WHITESPACE)) > max_bytes:
                skipping = bytes(buf[start - gone : start - gone + keep])
        # Hold the element being read (none of it once it is too long), and no more.
        cut = (pos if start < 0 or closed or skipping is not None else start) - gone
        if cut > 0:
            if string_at >= 0 and string_where is None and string_at - gone < cut:
                string_where = where(string_at)
            newlines = buf.count(b"\n", 0, cut)
            if newlines:
                gone_lines += newlines
                last_newline = gone + buf.rfind(b"\n", 0, cut)
            del buf[:cut]
            gone += cut
