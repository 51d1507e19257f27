"""Reading Parquet inputs a batch of rows at a time, rows too long to hold cut to their head."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from lenprof.errors import InputError
from lenprof.io import storage
from lenprof.io.files import InputFile, LineTooLong

SUFFIXES = (".parquet", ".pq")


# --- Parquet -------------------------------------------------------------------------------------


def parquet_batches(item: InputFile, rows_per_batch: int) -> Iterator[Any]:
    """Record batches of a Parquet file; a corrupt file raises :class:`InputError` naming the row."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    done = 0
    try:
        pf = pq.ParquetFile(storage.source(item.path))
        for batch in pf.iter_batches(batch_size=rows_per_batch):
            done += batch.num_rows
            yield batch
    except (OSError, pa.ArrowException) as exc:
        raise InputError(f"{item.path}: not a readable Parquet file after {done:,} rows ({exc})") from exc


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


def parquet_rows_per_batch(item: InputFile, target_bytes: int) -> int:
    """Rows that hold about ``target_bytes`` of (uncompressed) data."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    try:
        meta = pq.ParquetFile(storage.source(item.path)).metadata
    except (OSError, pa.ArrowException) as exc:
        raise InputError(f"{item.path}: not a readable Parquet file ({exc})") from exc
    size = sum(meta.row_group(g).total_byte_size for g in range(meta.num_row_groups))
    return max(1, min(65536, target_bytes * max(meta.num_rows, 1) // max(size, 1)))
