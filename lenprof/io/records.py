"""A shard, a piece of one input in corpus order, and its records: the one way rows are read, by the scan and by ``--against``."""

from __future__ import annotations

from bisect import bisect_left
from collections.abc import Iterator
from dataclasses import dataclass
from itertools import accumulate
from typing import Any

from lenprof.io.files import (
    InputFile,
    LineTooLong,
    Unreadable,
    cut_points,
    decompressed_blocks,
    file_blocks,
    iter_lines,
)
from lenprof.io.parquet import RowSpan, read_span, row_spans
from lenprof.io.readers import PIECEWISE, pieces, stdin

DEFAULT_SHARD_BYTES = 4 << 20  # a worker's piece of the corpus: a few thousand rows


@dataclass(frozen=True)
class Shard:
    """A piece of one input, in corpus order. Exactly one of (a byte range), ``span``, ``lines``
    or ``rows`` says where its data is: the first two are read by the worker that gets the shard,
    the others travel with it."""

    input: int  # position of its input in the plan
    path: str
    start: int = 0  # plain JSONL: the byte range [start, end) of whole lines
    end: int = 0
    lines: list[bytes | LineTooLong | Unreadable | dict | None] | None = None  # records: see io/readers/
    rows: Any = None  # a Parquet or datasets piece: a pyarrow RecordBatch or Table
    done: int = 0  # bytes of the input on disk read once this shard is read (for progress)
    first: bool = True  # the input's first shard: its first line may start with a UTF-8 BOM
    strings: bool = False  # CSV: every pos/neg column may hold a plain string (one-item list)
    span: RowSpan | None = None  # Parquet: the rows of row groups it is, from the file's footer


def records_of(shard: Shard, max_line_bytes: int, keep: int) -> list:
    """A shard's records, one per physical line (JSON lines) or row: see ``io/readers/``. A line
    over ``max_line_bytes`` is a :class:`LineTooLong` holding its first ``keep`` bytes."""
    if shard.span is not None:
        return read_span(shard.path, shard.span, max_line_bytes, keep)
    if shard.rows is not None:
        return shard.rows.to_pylist()
    if shard.lines is not None:
        return shard.lines
    blocks = file_blocks(shard.path, shard.start, shard.end)
    return [line for part in iter_lines(blocks, max_line_bytes, keep) for line in part]


def shards(inputs: list[InputFile], shard_bytes: int, max_line_bytes: int, keep: int) -> Iterator[Shard]:
    """The inputs' shards in corpus order, each about ``shard_bytes``: byte ranges at line starts
    for plain JSONL, pieces of the stream for the rest; streamed inputs are read as the iteration
    reaches them; Parquet files as spans of rows of their row groups. A record over
    ``max_line_bytes`` keeps its first ``keep`` bytes."""
    for i, item in enumerate(inputs):
        if item.format == "parquet":
            size, (total, spans) = item.size, row_spans(item.path, shard_bytes)
            for span in spans:  # progress: the share of the file's rows read
                yield Shard(i, item.path, span=span, done=size * span.end // total if total else size)
        elif item.format in PIECEWISE:
            for piece, done in pieces(item, shard_bytes, max_line_bytes, keep):
                table = not isinstance(piece, list)
                yield Shard(i, item.path, lines=None if table else piece, rows=piece if table else None,
                            done=done, first=False, strings=item.format in ("csv", "tsv"))  # fmt: skip
        elif item.compression or item.path == stdin.NAME:
            yield from _stream(i, item, shard_bytes, max_line_bytes, keep)
        else:
            cuts = cut_points(item.path, shard_bytes) + [item.size]
            for a, b in zip(cuts, cuts[1:], strict=False):
                yield Shard(i, item.path, a, b, done=b, first=a == 0)


def _stream(i: int, item: InputFile, shard_bytes: int, max_line_bytes: int, keep: int) -> Iterator[Shard]:
    """A stream's shards: each ends at the first line end past ``shard_bytes`` of lines, so
    every read of the stream cuts the same shards, whatever blocks it comes in (stdin is read
    from the pipe, then from its spool: an out-of-core scan reads each shard three times)."""
    where: dict[str, int] = {}
    blocks = stdin.blocks(item, where) if item.path == stdin.NAME else decompressed_blocks(item, where)
    pending: list[bytes | LineTooLong] = []
    total, cut_at, first = 0, shard_bytes, True  # bytes of lines so far, with their newlines
    for lines in iter_lines(blocks, max_line_bytes, keep):
        ends = list(accumulate((x.length if type(x) is LineTooLong else len(x)) + 1 for x in lines))
        start = 0
        while ends and total + ends[-1] >= cut_at:
            end = bisect_left(ends, cut_at - total) + 1  # the line that reaches cut_at, included
            pending += lines[start:end]
            yield Shard(i, item.path, lines=pending, done=where["disk"], first=first)
            pending, cut_at, first, start = [], total + ends[end - 1] + shard_bytes, False, end
        pending += lines[start:]
        total += ends[-1] if ends else 0
    yield Shard(i, item.path, lines=pending, done=item.size, first=first)
