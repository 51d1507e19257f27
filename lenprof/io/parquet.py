"""Reading Parquet inputs: shards cut from the file's footer alone, each read by a worker a
record batch at a time, rows too long to hold cut to their head.

A Parquet file is cut the way a JSONL file is cut at line starts, but at row groups: the driver
reads only the footer (each row group's rows and uncompressed bytes), gathers small groups into
a span of about ``--shard-size``, and slices a group bigger than that into spans of rows. A
worker opens the file, reads its span's groups in record batches (never a whole group at once)
and numbers nothing: a span's first row is known from the footer. Slicing a group costs decoding:
Arrow can start a read only at a row group, so a slice that starts inside one decodes the rows
before it. A worker keeps the reader of its last slice, so reading a group's slices in order
decodes it once.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from lenprof.errors import InputError
from lenprof.io import storage
from lenprof.io.files import LineTooLong

SUFFIXES = (".parquet", ".pq")
MAX_ROWS = 65536  # rows in a span at most, however small: each becomes a few Python objects
READ_BUFFER = 1 << 20  # bytes of a column chunk read at a time (Arrow's default holds it whole)
BATCH_BYTES = 1 << 20  # uncompressed bytes decoded at a time: Arrow's working set grows with it


@dataclass(frozen=True)
class RowSpan:
    """Rows ``[start, end)`` of a Parquet file: those of its row groups ``[groups[0], groups[1])``
    from the ``skip``-th row of the first. ``start`` is the number of rows before it in the file.

        >>> RowSpan((3, 4), 500, 3500, 4000).rows
        500
    """

    groups: tuple[int, int]
    skip: int
    start: int
    end: int

    @property
    def rows(self) -> int:
        return self.end - self.start


def _footer(path: str) -> Any:
    import pyarrow as pa
    import pyarrow.parquet as pq

    try:
        return pq.ParquetFile(storage.source(path)).metadata
    except (OSError, pa.ArrowException) as exc:
        raise InputError(f"{path}: not a readable Parquet file ({exc})") from exc


def row_spans(path: str, target_bytes: int) -> tuple[int, Iterator[RowSpan]]:
    """The file's rows, and its spans in order, each about ``target_bytes`` of uncompressed data
    and at most :data:`MAX_ROWS` rows, from its footer alone. A file with no rows is one empty span.

    Three groups of three rows, 72 bytes each: two groups a span with a target of 150 bytes;
    with a target of 30, each group is cut in three slices.

        >>> import pyarrow as pa, pyarrow.parquet as pq, tempfile
        >>> path = tempfile.mktemp(suffix=".parquet")
        >>> pq.write_table(pa.table({"q": ["x" * 6] * 9}), path, row_group_size=3)
        >>> rows, spans = row_spans(path, 150)
        >>> rows, [(s.groups, s.skip, s.start, s.end) for s in spans]
        (9, [((0, 2), 0, 0, 6), ((2, 3), 0, 6, 9)])
        >>> [(s.groups, s.skip, s.start, s.end) for s in row_spans(path, 30)[1]][:4]
        [((0, 1), 0, 0, 1), ((0, 1), 1, 1, 2), ((0, 1), 2, 2, 3), ((1, 2), 0, 3, 4)]
    """
    meta = _footer(path)
    return meta.num_rows, _spans(meta, max(1, target_bytes))


def _spans(meta: Any, target: int) -> Iterator[RowSpan]:
    row = 0  # rows of the groups before ``g``
    first = None  # the first of the groups gathered for the next span, and their rows and bytes
    rows = size = 0
    for g in range(meta.num_row_groups):
        group = meta.row_group(g)
        n, nbytes = group.num_rows, group.total_byte_size
        if first is not None and (size + nbytes > target or rows + n > MAX_ROWS):
            yield RowSpan((first, g), 0, row - rows, row)
            first = None
        if n > 1 and (nbytes > target or n > MAX_ROWS):  # too big for one shard: slices of its rows
            pieces = min(n, max(-(-nbytes // target), -(-n // MAX_ROWS)))
            for k in range(pieces):
                a, b = n * k // pieces, n * (k + 1) // pieces
                yield RowSpan((g, g + 1), a, row + a, row + b)
        else:
            if first is None:
                first, rows, size = g, 0, 0
            rows, size = rows + n, size + nbytes
        row += n
    if first is not None:
        yield RowSpan((first, meta.num_row_groups), 0, row - rows, row)
    elif row == 0:  # no row group at all: one empty span, as an empty JSONL file is one shard
        yield RowSpan((0, meta.num_row_groups), 0, 0, 0)


def read_span(path: str, span: RowSpan, max_row_bytes: int, keep: int) -> list:
    """The records of ``span`` (see ``io/readers/``): each row a dict, a row over
    ``max_row_bytes`` a :class:`LineTooLong` of its first ``keep`` bytes. A corrupt file raises
    :class:`InputError` naming the row it got to and its row group."""
    import pyarrow as pa

    global _kept
    records: list = []
    reader = None
    try:
        reader = _reader(path, span)
        for batch in reader.take(span.skip, span.rows):
            piece = capped_rows(batch, max_row_bytes, keep)
            records += piece if isinstance(piece, list) else piece.to_pylist()
    except (OSError, pa.ArrowException) as exc:
        _kept = None
        row = span.start + len(records)
        group = f", in row group {reader.group_of(span.skip + len(records))}" if reader else ""
        said = " ".join("".join(c if c.isprintable() else " " for c in str(exc)).split())[:300]  # one line
        raise InputError(f"{path}: not a readable Parquet file after {row:,} rows{group} ({said})") from exc
    if len(records) != span.rows:  # the footer is not the one the shards were cut from
        _kept = None
        raise InputError(
            f"{path} changed while it was being read (its rows {span.start + 1:,} to {span.end:,} are "
            "not where they were); scan a copy that nothing writes to"
        )
    _kept = reader if reader.at < reader.size else None  # a slice inside a group: the next may follow
    return records


class _Reader:
    """Row groups ``groups`` of a file, read front to back in record batches of about
    :data:`BATCH_BYTES`."""

    def __init__(self, path: str, groups: tuple[int, int]):
        import pyarrow.parquet as pq

        global _footer_kept
        identity = _identity(path)
        self.key = (path, groups, identity)
        meta = _footer_kept[1] if _footer_kept[0] == (path, identity) else None  # parsed once a file
        self.file = pq.ParquetFile(
            storage.source(path), metadata=meta, pre_buffer=False, buffer_size=READ_BUFFER
        )
        meta = self.file.metadata
        _footer_kept = ((path, identity), meta)
        found = [meta.row_group(g) for g in range(groups[0], min(groups[1], meta.num_row_groups))]
        self.sizes = [group.num_rows for group in found]
        self.size = sum(self.sizes) if groups[1] <= meta.num_row_groups else -1
        nbytes = sum(group.total_byte_size for group in found)
        batch_rows = max(1, min(MAX_ROWS, BATCH_BYTES * max(self.size, 1) // max(nbytes, 1)))
        self.batches = self.file.iter_batches(
            batch_size=batch_rows, row_groups=range(*groups), use_threads=False
        ) if self.size >= 0 else iter(())  # fmt: skip
        self.at = 0  # rows read (handed out or passed over)
        self.rest: Any = None  # rows of the last batch read past the last slice

    def take(self, skip: int, count: int) -> Iterator[Any]:
        """Batches of the ``count`` rows from the ``skip``-th (``skip >= self.at``)."""
        while count > 0:
            batch = self.rest if self.rest is not None else next(self.batches, None)
            self.rest = None
            if batch is None:
                return
            n = batch.num_rows
            lo = max(0, skip - self.at)
            if lo >= n:  # rows before the slice: decoded, passed over
                self.at += n
                continue
            out = batch.slice(lo, min(n - lo, count))
            if lo + out.num_rows < n:
                self.rest = batch.slice(lo + out.num_rows)
            self.at += lo + out.num_rows
            count -= out.num_rows
            yield out

    def group_of(self, row: int) -> int:
        """The row group of the span's ``row``-th row."""
        g = self.key[1][0]
        for n in self.sizes:
            if row < n:
                break
            row, g = row - n, g + 1
        return g


_kept: _Reader | None = None  # the reader of the last slice read, if it stopped inside its group
_footer_kept: tuple[Any, Any] = (None, None)  # the last file read and its footer (thousands of groups: MBs)


def _identity(path: str) -> tuple:
    if storage.is_url(path):
        return storage.stamp(path)  # size, modification time and ETag: one request
    st = os.stat(path)
    return (st.st_size, st.st_mtime_ns, st.st_dev, st.st_ino)


def _reader(path: str, span: RowSpan) -> _Reader:
    """The kept reader, when ``span`` goes on after it in the same group of the same file; else a new one."""
    kept = _kept
    if kept is not None and kept.key == (path, span.groups, _identity(path)) and kept.at <= span.skip:
        return kept
    return _Reader(path, span.groups)


def release() -> None:
    """Close the kept reader and forget the kept footer (a scan in this process is over)."""
    global _kept, _footer_kept
    _kept, _footer_kept = None, (None, None)


def value_bytes(values: Any) -> Any:
    """The bytes each value of an Arrow array holds (its strings and binaries, at any depth; 8
    for any other value), found from Arrow's lengths without making a Python object of any value.

        >>> import pyarrow as pa
        >>> value_bytes(pa.array([["ab", "c"], None, ["dddd"]])).tolist()
        [3, 0, 4]
    """
    import numpy as np
    import pyarrow as pa
    import pyarrow.compute as pc

    if isinstance(values, pa.ChunkedArray):
        parts = [value_bytes(c) for c in values.chunks]
        return np.concatenate(parts) if parts else np.zeros(0, np.int64)
    kind = values.type
    n = len(values)
    if pa.types.is_dictionary(kind):  # a text repeated through a dictionary is held once
        return value_bytes(values.dictionary)[values.indices.fill_null(0).to_numpy(zero_copy_only=False)]
    if pa.types.is_map(kind):
        values = values.cast(pa.list_(pa.struct([kind.key_field, kind.item_field])))
        kind = values.type
    if pa.types.is_string(kind) or pa.types.is_binary(kind) or pa.types.is_large_string(kind) or pa.types.is_large_binary(kind):  # fmt: skip
        return pc.binary_length(values).fill_null(0).to_numpy(zero_copy_only=False).astype(np.int64)
    if pa.types.is_list(kind) or pa.types.is_large_list(kind) or pa.types.is_fixed_size_list(kind):
        inner = value_bytes(pc.list_flatten(values))
        parent = pc.list_parent_indices(values).to_numpy(zero_copy_only=False)
        return np.bincount(parent, weights=inner, minlength=n).astype(np.int64)
    if pa.types.is_struct(kind):
        return sum((value_bytes(f) for f in values.flatten()), np.zeros(n, np.int64))
    return np.full(n, 8, np.int64)


def capped_rows(batch: Any, max_row_bytes: int, keep: int) -> Any:
    """``batch`` (a RecordBatch or Table) as it is when no row holds more than ``max_row_bytes``;
    else its rows as records (see ``io/readers/``), each row over the cap a :class:`LineTooLong`.

    Only the lengths Arrow keeps are read, so a row of hundreds of MiB is never made into Python
    strings or handed to the tokenizer (which needs about 64 bytes per character).
    """
    import numpy as np

    sizes = sum((value_bytes(c) for c in batch.columns), np.zeros(batch.num_rows, np.int64))
    over = np.flatnonzero(sizes > max_row_bytes)
    if not len(over):
        return batch
    records: list = []
    start = 0
    for r in over.tolist():
        records += batch.slice(start, r - start).to_pylist()
        records.append(LineTooLong(_row_head(batch.slice(r, 1), keep), int(sizes[r])))
        start = r + 1
    return records + batch.slice(start).to_pylist()


def _row_head(row: Any, keep: int) -> bytes:
    """The first ``keep`` bytes of a one-row batch as a JSON object, each long value cut short."""
    import pyarrow as pa
    import pyarrow.compute as pc

    from lenprof.io.jsontext import dumps

    head = {}
    for name, column in zip(row.schema.names, row.columns, strict=True):
        size = int(value_bytes(column)[0])
        if size <= keep:
            head[name] = column.to_pylist()[0]
        elif pa.types.is_string(column.type) or pa.types.is_large_string(column.type):
            head[name] = pc.utf8_slice_codeunits(column, 0, keep).to_pylist()[0]
        else:
            head[name] = f"<{size:,} bytes>"
    return dumps(head).encode("utf-8", "backslashreplace")[:keep]
