"""Finding input files and reading them as numbered physical lines or Parquet rows (other
kinds of input, such as JSON arrays, CSV, stdin and ``datasets`` folders, live in ``io/readers/``).

Readers never judge content: a JSONL reader yields each physical line as bytes (a bad byte or a
broken line stays inside its own line), a Parquet reader yields record batches. Validation
lives in ``rows/checks.py``. Readers do guard the machine: a line longer than ``max_line_bytes`` is
never held whole (only its first bytes are kept, as a :class:`LineTooLong`), a truncated or
corrupt ``.gz``/``.zst``/Parquet stream is an :class:`InputError` naming the file and how far it
got, never fewer rows and exit 0, and only regular files are read.
"""

from __future__ import annotations

import gzip
import os
import zlib
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from lenprof.errors import InputError
from lenprof.io import storage

JSONL_SUFFIXES = (".jsonl", ".json", ".ndjson")
PARQUET_SUFFIXES = (".parquet", ".pq")
DELIMITED_SUFFIXES = {".csv": "csv", ".tsv": "tsv"}
COMPRESSIONS = {".gz": "gzip", ".zst": "zstd"}
BOM = b"\xef\xbb\xbf"
BLOCK = 1 << 20  # bytes read at a time
TEMP_MARK = ".lenprof-"  # in the name of every temporary file or folder lenprof makes


@dataclass(frozen=True)
class InputFile:
    path: str  # as found: relative paths stay relative, so outputs name what the user typed
    format: str  # "jsonl", "json" (one array), "csv", "tsv", "parquet" or "datasets"
    compression: str | None = None  # "gzip", "zstd" or None
    split: str | None = None  # a dataset's split, or the split a file's name gives (io/readers/splits.py)
    known_size: int | None = None  # stdin (0 from a pipe), a dataset, a hub id; an object: as listed
    head: bytes = field(default=b"", repr=False, compare=False)  # stdin: the bytes read to tell its format

    def describe(self) -> dict[str, Any]:
        fmt = self.format if self.compression is None else f"{self.format}+{self.compression}"
        return {"path": self.path, "format": fmt}

    @property
    def size(self) -> int:
        return self.known_size if self.known_size is not None else storage.size(self.path)


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
    before ``end`` was cut short since its ranges were measured: an :class:`InputError`. An
    object in storage is read the same way, a ranged GET per block (see ``io/storage.py``)."""
    step = storage.block(path, BLOCK)
    try:
        with storage.open_read(path) as fh:
            fh.seek(start)
            left = (end - start) if end is not None else None
            while left is None or left > 0:
                block = fh.read(step if left is None else min(step, left))
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
        raise InputError(f"{path}: cannot be read ({storage.reason(path, exc)})") from exc


# --- a file that changes while it is read ------------------------------------------------------

CHANGED_HINT = "it changed while it was being read; scan a copy that nothing writes to"


def decompressed_blocks(item: InputFile, where: dict[str, int] | None = None) -> Iterator[bytes]:
    """The decompressed bytes of a ``.gz``/``.zst`` input; a truncated or corrupt stream raises
    :class:`InputError` saying how much was read, never ends early in silence. ``where`` is
    kept up to date with the bytes read on disk and decompressed."""
    where = where if where is not None else {}
    where["disk"] = where["decompressed"] = 0
    try:
        with storage.open_stream(item.path) as raw:
            blocks = _gzip_blocks(raw) if item.compression == "gzip" else _zstd_blocks(raw)
            for block in blocks:
                where["disk"] = raw.tell()
                where["decompressed"] += len(block)
                yield block
    except (OSError, EOFError, zlib.error) as exc:
        if storage.is_url(item.path) and type(exc) in (OSError, FileNotFoundError, PermissionError):
            # the storage failed, not the data (gzip's own errors are subclasses)
            raise InputError(f"{item.path}: cannot be read ({storage.reason(item.path, exc)})") from exc
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
    if storage.is_url(path):
        return _remote_cut_points(path, target_bytes)
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


PROBE = 64 << 10  # bytes a remote probe for a line start reads (a longer line: another probe)


def _remote_cut_points(path: str, target_bytes: int) -> list[int]:
    """:func:`cut_points` of an object: the line start after each multiple of ``target_bytes``.
    Each probe stands alone, so they are asked at once (a request costs tens of milliseconds;
    one after another, a 10 GB object cut into 4 MiB shards would wait on 2,500 of them). The
    shards differ from a local file's; no result depends on where shards are cut."""
    from concurrent.futures import ThreadPoolExecutor

    total = storage.size(path)

    def line_start(pos: int) -> int:
        while pos < total:
            block = fh.read_at(PROBE, pos)
            if not block:
                break
            end = block.find(b"\n")
            if end >= 0:
                return pos + end + 1
            pos += len(block)
        return total

    try:
        with storage.open_read(path) as fh, ThreadPoolExecutor(16) as pool:
            found = set(pool.map(line_start, range(target_bytes, total, target_bytes)))
    except OSError as exc:
        raise InputError(f"{path}: cannot be read ({storage.reason(path, exc)})") from exc
    return sorted({0} | {cut for cut in found if cut < total})


_WHITESPACE = b" \t\r\n"


def starts_array(head: bytes) -> bool:
    """Whether the first bytes of a ``.json`` input open an array (a BOM and whitespace aside)."""
    head = head[len(BOM) :] if head.startswith(BOM) else head
    return head.lstrip(_WHITESPACE)[:1] == b"["
