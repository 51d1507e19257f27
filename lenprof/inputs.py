"""Finding input files and reading them as numbered physical lines or Parquet rows (other
kinds of input, such as JSON arrays, CSV, stdin and ``datasets`` folders, live in ``readers/``).

Readers never judge content: a JSONL reader yields each physical line as bytes (a bad byte or a
broken line stays inside its own line), a Parquet reader yields record batches. Validation
lives in ``checks.py``. Readers do guard the machine: a line longer than ``max_line_bytes`` is
never held whole (only its first bytes are kept, as a :class:`LineTooLong`), a truncated or
corrupt ``.gz``/``.zst``/Parquet stream is an :class:`InputError` naming the file and how far it
got, never fewer rows and exit 0, and only regular files are read.
"""

from __future__ import annotations

import glob
import gzip
import os
import stat
import zlib
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

JSONL_SUFFIXES = (".jsonl", ".json", ".ndjson")
PARQUET_SUFFIXES = (".parquet", ".pq")
DELIMITED_SUFFIXES = {".csv": "csv", ".tsv": "tsv"}
COMPRESSIONS = {".gz": "gzip", ".zst": "zstd"}
BOM = b"\xef\xbb\xbf"
BLOCK = 1 << 20  # bytes read at a time
TEMP_MARK = ".lenprof-"  # in the name of every temporary file or folder lenprof makes


class InputError(Exception):
    """An input or output cannot be used at all (missing, unreadable, corrupt). Exit code 2."""


@dataclass(frozen=True)
class InputFile:
    path: str  # as found: relative paths stay relative, so outputs name what the user typed
    format: str  # "jsonl", "json" (one array), "csv", "tsv", "parquet" or "datasets"
    compression: str | None = None  # "gzip", "zstd" or None
    split: str | None = None  # a dataset's split, or the split a file's name gives (readers/splits.py)
    known_size: int | None = None  # for what is no file: stdin (0 from a pipe), a dataset, a hub id
    head: bytes = field(default=b"", repr=False, compare=False)  # stdin: the bytes read to tell its format

    def describe(self) -> dict[str, Any]:
        fmt = self.format if self.compression is None else f"{self.format}+{self.compression}"
        return {"path": self.path, "format": fmt}

    @property
    def size(self) -> int:
        return self.known_size if self.known_size is not None else os.path.getsize(self.path)


def classify(path: str) -> InputFile | None:
    """The format of a data file from its name, or None when it is not one."""
    name = path.lower()
    compression = None
    for suffix, kind in COMPRESSIONS.items():
        if name.endswith(suffix):
            compression, name = kind, name[: -len(suffix)]
    if name.endswith(JSONL_SUFFIXES):
        return InputFile(path, "jsonl", compression)
    if name.endswith(PARQUET_SUFFIXES) and compression is None:
        return InputFile(path, "parquet")
    for suffix, kind in DELIMITED_SUFFIXES.items():
        if name.endswith(suffix):
            return InputFile(path, kind, compression)
    return None


def _readable_file(path: str) -> None:
    """Refuse what is not a regular, readable file (a FIFO or a device would never end)."""
    try:
        st = os.stat(path)
    except OSError as exc:
        raise InputError(f"{path}: cannot be read ({exc.strerror})") from exc
    if not stat.S_ISREG(st.st_mode):
        raise InputError(f"{path}: not a regular file (a device, FIFO or socket); lenprof reads files only")
    if not os.access(path, os.R_OK):
        raise InputError(f"{path}: permission denied")


def _walk(folder: str, own: bool = False) -> list[str]:
    """Data files under ``folder``, following symlinked folders once each (no loops); lenprof's
    own outputs (profiles, and the files a profile there lists) only with ``own``."""
    found: list[str] = []
    seen: set[tuple[int, int]] = set()
    stack = [folder]
    while stack:
        current = stack.pop()
        try:
            st = os.stat(current)
            if (st.st_dev, st.st_ino) in seen:
                continue  # a symlink loop, or a folder reached twice
            seen.add((st.st_dev, st.st_ino))
            entries = list(os.scandir(current))
        except OSError as exc:
            raise InputError(f"{current}: folder cannot be read ({exc.strerror})") from exc
        for entry in entries:
            if TEMP_MARK in entry.name:
                continue  # a temporary file of a lenprof run, perhaps one that was killed
            path = str(Path(current) / entry.name)
            try:
                is_dir = entry.is_dir()  # follows symlinks
            except OSError:
                is_dir = False
            if is_dir and _saved_dataset(path):
                found.append(path)  # a datasets save_to_disk folder: one input, not its files
            elif is_dir:
                stack.append(path)
            elif classify(path) is not None:
                _readable_file(path)
                found.append(path)
    if own:
        return sorted(found)
    from .written import own_outputs

    skipped = own_outputs(found)  # written beside the data by an earlier run: see written.py
    return sorted(p for p in found if p not in skipped)


def skipped_outputs(folder: str) -> dict[str, str]:
    """The files a scan of ``folder`` skips as lenprof's own outputs, each with why."""
    from .written import own_outputs

    return own_outputs(_walk(folder, own=True))


def _once(paths: list[str]) -> list[str]:
    """Each file once, by its first path (``**`` follows symlinked folders, loops included)."""
    seen: set[tuple[int, int]] = set()
    out = []
    for path in paths:
        try:
            st = os.stat(path)
        except OSError:
            out.append(path)  # reported by _readable_file
            continue
        if (st.st_dev, st.st_ino) not in seen:
            seen.add((st.st_dev, st.st_ino))
            out.append(path)
    return out


KNOWN = ", ".join(JSONL_SUFFIXES + PARQUET_SUFFIXES + tuple(DELIMITED_SUFFIXES))


def _saved_dataset(folder: str) -> bool:
    from .readers.hf import saved_kind

    return saved_kind(folder) is not None


def _item(path: str, split: str | None) -> InputFile:
    """A found path as an input: a ``datasets`` folder, a JSON array or a file by its name."""
    from .readers import hf, json_array

    if os.path.isdir(path):
        return hf.saved(path, split)
    item = classify(path)
    assert item is not None
    name = path.lower()
    for suffix in COMPRESSIONS:
        name = name.removesuffix(suffix)
    if name.endswith(".json") and json_array.starts_array(json_array.peek(item)):
        return InputFile(path, "json", item.compression)
    return item


def discover(paths: Sequence[str], split: str | None = None) -> list[InputFile]:
    """Expand files, folders (their data files, recursively, sorted) and globs, in the order given;
    ``-`` is stdin, ``hf://ORG/NAME`` a hub dataset and ``split`` the split of a ``datasets`` input."""
    from .readers import hf, splits, stdin

    found: list[InputFile] = []
    if list(paths).count("-") > 1:
        raise InputError("-: stdin is given twice; it can be read once")
    for spec in paths:
        if spec == "-":
            found.append(stdin.open_stdin())
        elif spec.startswith(hf.HUB):
            found.append(hf.hub(spec, split))
        elif os.path.isdir(spec) and _saved_dataset(spec):
            found.append(hf.saved(spec, split))
        elif os.path.isdir(spec):
            names = _walk(spec)
            if not names:
                raise InputError(
                    f"{spec}: folder holds no data files (looked for {KNOWN}, optionally .gz/.zst, "
                    "and datasets save_to_disk folders)"
                )
            found.extend(_item(n, split) for n in names)
        elif os.path.lexists(spec):
            if classify(spec) is None:
                raise InputError(f"{spec}: unknown file type; lenprof reads {KNOWN} (also as .gz or .zst)")
            _readable_file(spec)
            found.append(_item(spec, split))
        elif glob.has_magic(spec):
            names = sorted(
                n for n in glob.glob(spec, recursive=True) if TEMP_MARK not in n and classify(n) is not None
            )
            names = _once([n for n in names if not os.path.isdir(n)])
            if not names:
                raise InputError(f"{spec}: the pattern matches no data files")
            for n in names:
                _readable_file(n)
            found.extend(_item(n, split) for n in names)
        else:
            raise InputError(f"{spec}: no such file or folder")
    if split is not None and not any(i.format == "datasets" for i in found):
        raise InputError(f"--split {split}: only a datasets folder or a hub id (hf://ORG/NAME) has splits")
    return splits.tag(found)


# --- lines ---------------------------------------------------------------------------------------


@dataclass(frozen=True)
class LineTooLong:
    """A line longer than ``max_line_bytes``: its first bytes and its whole length."""

    head: bytes
    length: int


@dataclass(frozen=True)
class Unreadable:
    """A row a reader could not make a record of (a CSV row with the wrong number of cells, an
    empty array element): dropped with this ``reason`` and ``detail``, and ``text`` as its raw text."""

    reason: str
    detail: str
    text: str


def iter_lines(blocks: Iterator[bytes], max_line_bytes: int, keep: int) -> Iterator[list]:
    """Physical lines of a byte stream, a list per block, each without its newline (a CR is
    kept). A line over ``max_line_bytes`` is yielded as a :class:`LineTooLong` holding its
    first ``keep`` bytes; memory never holds more than one block plus ``max_line_bytes``.

        >>> [line for part in iter_lines(iter([b"ab\\nc", b"d\\n\\nxyzzy"]), 3, 2) for line in part]
        [b'ab', b'cd', b'', LineTooLong(head=b'xy', length=5)]
    """
    carry = b""
    skipping: LineTooLong | None = None  # the over-long line being skipped
    for block in blocks:
        if skipping is not None:
            end = block.find(b"\n")
            if end < 0:
                skipping = LineTooLong(skipping.head, skipping.length + len(block))
                continue
            yield [LineTooLong(skipping.head, skipping.length + end)]
            skipping, block = None, block[end + 1 :]
        data = carry + block if carry else block
        lines = data.split(b"\n")
        carry = lines.pop()  # the start of a line that the next block finishes
        if len(carry) > max_line_bytes:
            skipping, carry = LineTooLong(carry[:keep], len(carry)), b""
        if len(data) > max_line_bytes:  # only then can a whole line be too long
            lines = [LineTooLong(x[:keep], len(x)) if len(x) > max_line_bytes else x for x in lines]
        if lines:
            yield lines
    if skipping is not None:
        yield [skipping]
    elif carry:
        yield [carry]


def file_blocks(path: str, start: int = 0, end: int | None = None) -> Iterator[bytes]:
    """The bytes of ``path`` from ``start`` to ``end``, a block at a time; a file that ends
    before ``end`` was cut short since its ranges were measured: an :class:`InputError`."""
    try:
        with open(path, "rb", buffering=0) as fh:
            fh.seek(start)
            left = (end - start) if end is not None else None
            while left is None or left > 0:
                block = fh.read(BLOCK if left is None else min(BLOCK, left))
                if not block:
                    if left:
                        raise InputError(
                            f"{path}: ends at byte {end - left:,}, before byte {end:,} where it ended "
                            f"when the scan began; {CHANGED_HINT}"
                        )
                    return
                if left is not None:
                    left -= len(block)
                yield block
    except OSError as exc:
        raise InputError(f"{path}: cannot be read ({exc.strerror or exc})") from exc


# --- a file that changes while it is read ------------------------------------------------------

CHANGED_HINT = "it changed while it was being read; scan a copy that nothing writes to"
FileStamp = tuple[int, int, int, int]  # (size, mtime_ns, device, inode)
Stamp = FileStamp | tuple[tuple[str, FileStamp], ...]  # a datasets folder: (file, stamp) per data file


def stamp(item: InputFile) -> Stamp | None:
    """What tells that an input file changed: its size, modification time and identity (a file
    renamed over it is another file), taken when the scan finds it; for a ``datasets`` folder,
    those of each ``.arrow`` file its rows are read from. None for what is no file (stdin, a hub
    id, whose cache only ``datasets`` writes)."""
    if item.format == "datasets" and not item.path.startswith("hf://"):
        from .readers.hf import data_files

        try:
            files = data_files(item.path)
        except InputError:
            return None  # reading it will say why it cannot be read
        stamps = [(path, stamp(InputFile(path, "arrow"))) for path in files]
        return tuple((path, s) for path, s in stamps if s is not None) or None
    if item.known_size is not None or item.format == "datasets":
        return None
    try:
        st = os.stat(item.path)
    except OSError:
        return None  # reading it will say why it cannot be read
    return (st.st_size, st.st_mtime_ns, st.st_dev, st.st_ino)


def unchanged(path: str, before: Stamp) -> None:
    """Raise :class:`InputError` if ``path`` is not the file it was at ``before``: a result from
    a file that was truncated, appended to or rewritten while it was read may miss rows, hold
    half a line, or mix two versions, and a file that has changed since cannot be checked. A
    ``datasets`` folder's stamp checks each of its data files, and names the one that changed."""
    if before and isinstance(before[0], tuple):
        for file, its in before:
            unchanged(file, its)
        return
    try:
        st = os.stat(path)
        now: FileStamp | None = (st.st_size, st.st_mtime_ns, st.st_dev, st.st_ino)
    except OSError:
        now = None
    if now == before:
        return
    if now is None:
        how = f"size {before[0]:,} bytes -> removed"
    elif now[0] != before[0]:
        how = f"size {before[0]:,} -> {now[0]:,} bytes"
    elif now[2:] != before[2:]:
        how = f"size {before[0]:,} bytes, replaced by another file"
    else:
        how = f"size {before[0]:,} bytes, rewritten in place"
    raise InputError(f"{path} changed while it was being read ({how}); scan a copy that nothing writes to")


def decompressed_blocks(item: InputFile, where: dict[str, int] | None = None) -> Iterator[bytes]:
    """The decompressed bytes of a ``.gz``/``.zst`` input; a truncated or corrupt stream raises
    :class:`InputError` saying how much was read, never ends early in silence. ``where`` is
    kept up to date with the bytes read on disk and decompressed."""
    where = where if where is not None else {}
    where["disk"] = where["decompressed"] = 0
    try:
        with open(item.path, "rb") as raw:
            blocks = _gzip_blocks(raw) if item.compression == "gzip" else _zstd_blocks(raw)
            for block in blocks:
                where["disk"] = raw.tell()
                where["decompressed"] += len(block)
                yield block
    except (OSError, EOFError, zlib.error) as exc:
        raise InputError(
            f"{item.path}: corrupt or truncated {item.compression} data after "
            f"{where['decompressed']:,} decompressed bytes ({exc})"
        ) from exc
    except InputError as exc:
        raise InputError(f"{item.path}: {exc}") from exc


def _gzip_blocks(raw) -> Iterator[bytes]:
    with gzip.GzipFile(fileobj=raw, mode="rb") as fh:
        while block := fh.read(BLOCK):
            yield block


def _zstd_blocks(raw) -> Iterator[bytes]:
    import zstandard

    # Small input pieces bound the output of one call (a zstd block can expand 32,768-fold).
    piece = 4096
    dobj = zstandard.ZstdDecompressor().decompressobj()
    done, pending = 0, b""
    started = False
    while True:
        data = pending or raw.read(piece)
        pending = b""
        if not data:
            break
        started = True
        try:
            out = dobj.decompress(data)
        except zstandard.ZstdError as exc:
            raise InputError(f"corrupt zstd data after {done:,} decompressed bytes ({exc})") from exc
        if out:
            done += len(out)
            yield out
        if dobj.eof:  # one frame ended: another may follow
            pending = dobj.unused_data
            dobj = zstandard.ZstdDecompressor().decompressobj()
            started = bool(pending)
    if started and not dobj.eof:
        raise InputError(
            f"truncated zstd data: the stream ends inside a frame after {done:,} decompressed bytes"
        )


def cut_points(path: str, target_bytes: int) -> list[int]:
    """Offsets at line starts that cut a plain file into ranges of about ``target_bytes``."""
    total = os.path.getsize(path)
    cuts = [0]
    with open(path, "rb") as fh:
        while cuts[-1] + target_bytes < total:
            pos = cuts[-1] + target_bytes
            fh.seek(pos)
            while True:  # to the start of the next line, reading a block at a time
                block = fh.read(BLOCK)
                if not block:
                    return cuts
                end = block.find(b"\n")
                if end >= 0:
                    pos += end + 1
                    break
                pos += len(block)
            if pos >= total:
                break
            cuts.append(pos)
    return cuts


# --- Parquet -------------------------------------------------------------------------------------


def parquet_batches(item: InputFile, rows_per_batch: int) -> Iterator[Any]:
    """Record batches of a Parquet file; a corrupt file raises :class:`InputError` naming the row."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    done = 0
    try:
        pf = pq.ParquetFile(item.path)
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
    else its rows as records (see ``readers/``), each row over the cap a :class:`LineTooLong`.

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

    from .jsontext import dumps

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
        meta = pq.ParquetFile(item.path).metadata
    except (OSError, pa.ArrowException) as exc:
        raise InputError(f"{item.path}: not a readable Parquet file ({exc})") from exc
    size = sum(meta.row_group(g).total_byte_size for g in range(meta.num_row_groups))
    return max(1, min(65536, target_bytes * max(meta.num_rows, 1) // max(size, 1)))
