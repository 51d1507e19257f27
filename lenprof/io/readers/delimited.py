"""``.csv`` and ``.tsv`` files (also ``.gz``/``.zst``): the header row names the columns, and
every cell is a string.

CSV cannot hold a list, so a cell is always one text: in a CSV row every pos/neg column may hold
a plain string, which counts as a one-item list (as a ``--fields`` column does elsewhere), and a
cell that looks like a JSON list (``["a", "b"]``) is that one text, not parsed. Rows with lists
belong in JSON Lines or Parquet.

A row is numbered by the file line it starts on (the header is line 1), so with no cell that
spans lines the number is the row's line in any editor. A row whose number of cells differs
from the header's is dropped as ``malformed_csv`` with its raw text, like a malformed JSON line,
and the rest of the file is read; a row with bytes that are not UTF-8 is ``invalid_utf8``.

    >>> rows = list(records(iter([b'query,pos\\r\\nq1,"p\\n1"\\nq2\\n\\nq3,p3\\n']), ",", 1 << 20))
    >>> [r for piece in rows for r in piece[0]]  # doctest: +NORMALIZE_WHITESPACE
    [None, {'query': 'q1', 'pos': 'p\\n1'}, None,
     Unreadable(reason='malformed_csv', detail='1 cell where the header has 2', text='q2'), b'',
     {'query': 'q3', 'pos': 'p3'}]
"""

from __future__ import annotations

import csv
from collections.abc import Iterator

from lenprof.errors import InputError
from lenprof.io.files import InputFile, LineTooLong, Unreadable, decompressed_blocks, file_blocks, iter_lines

DELIMITERS = {"csv": ",", "tsv": "\t"}


def pieces(item: InputFile, shard_bytes: int, max_line_bytes: int) -> Iterator[tuple[list, int]]:
    """The records of a CSV/TSV file in pieces of about ``shard_bytes`` of its text."""
    where: dict[str, int] = {"disk": 0}
    if item.compression:
        blocks = decompressed_blocks(item, where)
    else:
        blocks = _counted(file_blocks(item.path), where)
    for piece, _ in records(blocks, DELIMITERS[item.format], max_line_bytes, shard_bytes, item.path):
        yield piece, where["disk"]
    yield [], item.size


def _counted(blocks: Iterator[bytes], where: dict[str, int]) -> Iterator[bytes]:
    for block in blocks:
        where["disk"] += len(block)
        yield block


def records(
    blocks: Iterator[bytes], delimiter: str, max_line_bytes: int, piece_bytes: int = 1 << 22, path: str = ""
) -> Iterator[tuple[list, int]]:
    """Records (see ``readers/__init__``) a piece at a time, with the bytes each piece held."""
    held: list[bytes | LineTooLong] = []  # the physical lines of the row being read
    # The csv reader asks for a line past a row's end only inside a quoted cell: a row read when
    # the lines ran out is a quote never closed, which took every line after it.
    ran_out = False

    def lines() -> Iterator[str]:
        nonlocal ran_out
        for part in iter_lines(blocks, max_line_bytes, 0):
            for line in part:
                held.append(line)
                # a line too long is never held whole: the row it is in is dropped for it
                yield (
                    "\n" if isinstance(line, LineTooLong) else line.decode("utf-8", "surrogateescape") + "\n"
                )
        ran_out = True

    csv.field_size_limit(max(csv.field_size_limit(), max_line_bytes))
    reader = csv.reader(lines(), delimiter=delimiter)
    header: list[str] | None = None
    piece: list = []
    size = 0
    line = 1  # the physical line the next row starts on
    while True:
        try:
            cells = next(reader)
            problem = None
        except StopIteration:
            break
        except csv.Error as exc:
            cells, problem = (
                [],
                Unreadable("malformed_csv", f"cannot be read as {_kind(delimiter)}: {exc}", ""),
            )
        rows_lines, held[:] = list(held), []
        size += sum(len(x) if isinstance(x, bytes) else x.length for x in rows_lines)
        if ran_out and problem is None:
            problem = _unclosed(delimiter, line, len(rows_lines))
        line += len(rows_lines)
        if header is None:
            if ran_out:
                raise InputError(f"{path}: the header (line 1): {problem.detail}")  # type: ignore[union-attr]
            header = _header(cells, rows_lines, path)
            piece += [None] * len(rows_lines)
            continue
        piece.append(_record(cells, header, rows_lines, problem))
        piece += [None] * (len(rows_lines) - 1)  # the later lines of a cell that spans lines
        if size >= piece_bytes:
            yield piece, size
            piece, size = [], 0
    if piece:
        yield piece, size


def _kind(delimiter: str) -> str:
    return "TSV" if delimiter == "\t" else "CSV"


def _unclosed(delimiter: str, first: int, lines: int) -> Unreadable:
    """A row whose quote is never closed: it holds every line to the end of the file."""
    span = f"line {first}" if lines == 1 else f"the {lines:,} lines {first:,} to {first + lines - 1:,}"
    return Unreadable(
        "malformed_csv",
        f"a quote opened in this row is never closed, so the row runs to the end of the file: it holds "
        f"{span}; close the quote, or double a quote inside a quoted {_kind(delimiter)} cell",
        "",
    )


def _header(cells: list[str], lines: list, path: str) -> list[str]:
    if cells:
        cells[0] = cells[0].removeprefix("\ufeff")  # a UTF-8 BOM
    if any(isinstance(x, LineTooLong) for x in lines) or any(_bad_text(c) for c in cells):
        raise InputError(f"{path}: the header (line 1) is too long or not UTF-8")
    repeated = sorted({c for c in cells if cells.count(c) > 1})
    if repeated:
        raise InputError(f"{path}: the header names the column {repeated[0]!r} twice; rename one")
    return cells


def _bad_text(text: str) -> bool:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return True
    return False


def _record(cells: list[str], header: list[str], lines: list, problem: Unreadable | None):
    """One row as a record: a dict of its cells, a blank line (``b""``) or why it is unreadable."""
    too_long = next((x for x in lines if isinstance(x, LineTooLong)), None)
    if too_long is not None:
        return too_long
    raw = b"\n".join(lines)  # type: ignore[arg-type]
    text = raw.decode("utf-8", "backslashreplace")
    if problem is not None:
        return Unreadable(problem.reason, problem.detail, text)
    if not raw.strip():
        return b""  # a blank line: counted as blank, not as a row
    try:
        raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        return Unreadable("invalid_utf8", f"invalid byte {raw[exc.start]:#04x} at byte {exc.start + 1}", text)
    if len(cells) != len(header):
        n = len(cells)
        return Unreadable(
            "malformed_csv", f"{n} cell{'s' * (n != 1)} where the header has {len(header)}", text
        )
    return dict(zip(header, cells, strict=True))
