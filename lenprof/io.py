"""Finding input files, reading them as numbered raw records, and writing outputs atomically.

Readers never judge content: a JSONL reader yields each non-blank physical line as bytes with its
1-based line number (a bad byte or a broken line stays inside its own record), a Parquet reader
yields each row as a dict with its 1-based row number. Validation lives in ``checks.py``.
"""

from __future__ import annotations

import base64
import contextlib
import datetime
import decimal
import glob
import gzip
import io
import json
import os
import shutil
import tempfile
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

JSONL_SUFFIXES = (".jsonl", ".json", ".ndjson")
PARQUET_SUFFIXES = (".parquet", ".pq")
COMPRESSIONS = {".gz": "gzip", ".zst": "zstd"}
BOM = b"\xef\xbb\xbf"


class InputError(Exception):
    """An input cannot be used at all (missing, unreadable, unknown format). Exit code 2."""


@dataclass(frozen=True)
class InputFile:
    path: str  # as found: relative paths stay relative, so outputs name what the user typed
    format: str  # "jsonl" or "parquet"
    compression: str | None = None  # "gzip", "zstd" or None

    def describe(self) -> dict[str, Any]:
        fmt = self.format if self.compression is None else f"{self.format}+{self.compression}"
        return {"path": self.path, "format": fmt}


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
    return None


def discover(paths: Sequence[str]) -> list[InputFile]:
    """Expand files, folders (their data files, recursively, sorted) and globs, in the order given."""
    found: list[InputFile] = []
    for spec in paths:
        if os.path.isdir(spec):
            names = sorted(str(p) for p in Path(spec).rglob("*") if p.is_file() and classify(str(p)))
            if not names:
                raise InputError(
                    f"{spec}: folder holds no data files "
                    f"(looked for {', '.join(JSONL_SUFFIXES + PARQUET_SUFFIXES)}, optionally .gz/.zst)"
                )
            found.extend(classify(n) for n in names)  # type: ignore[misc]
        elif os.path.exists(spec):
            item = classify(spec)
            if item is None:
                raise InputError(
                    f"{spec}: unknown file type; lenprof reads "
                    f"{', '.join(JSONL_SUFFIXES + PARQUET_SUFFIXES)} (JSONL also as .gz or .zst)"
                )
            found.append(item)
        elif glob.has_magic(spec):
            names = sorted(n for n in glob.glob(spec, recursive=True) if os.path.isfile(n))
            items = [classify(n) for n in names]
            if not any(items):
                raise InputError(f"{spec}: the pattern matches no data files")
            found.extend(i for i in items if i is not None)
        else:
            raise InputError(f"{spec}: no such file or folder")
    return found


# --- reading -------------------------------------------------------------------------------------


@dataclass
class Raw:
    """One record as read: JSONL bytes (newline, CR and a leading BOM removed) or a Parquet row."""

    source: str
    line: int
    data: bytes | dict


def _open_binary(item: InputFile) -> tuple[IO[bytes], IO[bytes]]:
    """The decompressed stream, and the file on disk under it (whose position is the progress)."""
    raw = open(item.path, "rb", buffering=1 << 20)
    if item.compression == "gzip":
        return gzip.GzipFile(fileobj=raw, mode="rb"), raw
    if item.compression == "zstd":
        import zstandard

        return io.BufferedReader(zstandard.ZstdDecompressor().stream_reader(raw)), raw
    return raw, raw


@dataclass(frozen=True)
class Shard:
    """A part of one input: a byte range of plain JSONL or a range of Parquet row groups.

    ``first`` is the number of its first line (or row); the distributed engine learns it from
    the shards before, so a shard's line numbers are the file's.
    """

    item: InputFile
    start: int = 0  # bytes (JSONL) or row group (Parquet)
    end: int | None = None  # exclusive; None = to the end
    first: int = 1


def read_jsonl(
    item: InputFile, batch_size: int, counts: dict[str, int], shard: Shard | None = None
) -> Iterator[list[Raw]]:
    """Yield batches of non-blank lines; count blank lines in ``counts["blank"]`` and every
    physical line in ``counts["lines"]``. A shard holds the lines that start inside its range."""
    start, end, first = (shard.start, shard.end, shard.first) if shard else (0, None, 1)
    batch: list[Raw] = []
    counts["total"] = os.path.getsize(item.path) if end is None else end - start
    try:
        fh, disk = _open_binary(item)
        with disk, fh:
            if start:
                fh.seek(start)
            pos, lines = start, 0
            for number, line in enumerate(fh, start=first):
                if end is not None and pos >= end:
                    break
                pos += len(line)
                lines += 1
                if pos == len(line) and line.startswith(BOM):  # the file's first line
                    line = line[len(BOM) :]
                if line.endswith(b"\n"):
                    line = line[:-1]
                if line.endswith(b"\r"):
                    line = line[:-1]
                if not line.strip():
                    counts["blank"] += 1
                    continue
                batch.append(Raw(item.path, number, line))
                if len(batch) >= batch_size:
                    counts["done"] = (disk.tell() if item.compression else pos) - start
                    yield batch
                    batch = []
            counts["lines"] = lines
    except (OSError, EOFError, ValueError) as exc:  # corrupt archive, unreadable file
        raise InputError(f"{item.path}: cannot be read ({exc})") from exc
    counts["done"] = counts["total"]
    if batch:
        yield batch


def read_parquet(item: InputFile, batch_size: int, shard: Shard | None = None) -> Iterator[list[Raw]]:
    import pyarrow as pa
    import pyarrow.parquet as pq

    try:
        pf = pq.ParquetFile(item.path)
        groups = None
        if shard is not None:
            groups = list(range(shard.start, shard.end if shard.end is not None else pf.num_row_groups))
        row = shard.first - 1 if shard else 0
        for record_batch in pf.iter_batches(batch_size=batch_size, row_groups=groups):
            rows = record_batch.to_pylist()
            yield [Raw(item.path, row + i + 1, r) for i, r in enumerate(rows)]
            row += len(rows)
    except (OSError, pa.ArrowException) as exc:
        raise InputError(f"{item.path}: not a readable Parquet file ({exc})") from exc


def read_batches(
    item: InputFile, batch_size: int, counts: dict[str, int], shard: Shard | None = None
) -> Iterator[list[Raw]]:
    if item.format == "parquet":
        return read_parquet(item, batch_size, shard)
    return read_jsonl(item, batch_size, counts, shard)


def split(item: InputFile, target_bytes: int) -> list[Shard]:
    """Cut an input into shards of about ``target_bytes`` (compressed JSONL stays whole)."""
    if item.format == "parquet":
        import pyarrow.parquet as pq

        meta = pq.ParquetFile(item.path).metadata
        shards, start, size = [], 0, 0
        for g in range(meta.num_row_groups):
            size += meta.row_group(g).total_byte_size
            if size >= target_bytes or g == meta.num_row_groups - 1:
                shards.append(Shard(item, start, g + 1))
                start, size = g + 1, 0
        return shards or [Shard(item, 0, 0)]
    if item.compression is not None:
        return [Shard(item)]
    total = os.path.getsize(item.path)
    cuts = [0]
    with open(item.path, "rb") as fh:
        while cuts[-1] + target_bytes < total:
            fh.seek(cuts[-1] + target_bytes)
            fh.readline()  # to the start of the next line
            if fh.tell() >= total:
                break
            cuts.append(fh.tell())
    return [Shard(item, a, b) for a, b in zip(cuts, cuts[1:] + [None], strict=True)]


# --- writing -------------------------------------------------------------------------------------


def json_default(value: Any) -> Any:
    """Values Parquet can hold but JSON cannot: dates as ISO text, decimals as text, bytes as
    UTF-8 text when they are text and base64 otherwise."""
    if isinstance(value, (datetime.date, datetime.time, datetime.timedelta)):
        return str(value) if isinstance(value, datetime.timedelta) else value.isoformat()
    if isinstance(value, decimal.Decimal):
        return str(value)
    if isinstance(value, bytes):
        try:
            return value.decode("utf-8")
        except UnicodeDecodeError:
            return base64.b64encode(value).decode("ascii")
    raise TypeError(f"cannot write a {type(value).__name__} as JSON")


def dumps(obj: Any) -> str:
    return json.dumps(obj, ensure_ascii=False, default=json_default)


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; move it into place only if the block succeeds."""
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".lenprof-tmp", dir=target.parent)
    os.close(fd)
    os.chmod(tmp, 0o666 & ~_umask())  # mkstemp makes 0600; a finished output gets the usual mode
    try:
        yield Path(tmp)
        os.replace(tmp, target)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise


def write_text(path: str | os.PathLike, text: str) -> None:
    with atomic_path(path) as tmp:
        tmp.write_text(text, encoding="utf-8")


def same_file(a: str | os.PathLike, b: str | os.PathLike) -> bool:
    try:
        return os.path.samefile(a, b)
    except OSError:
        return os.path.abspath(a) == os.path.abspath(b)


class RowWriter:
    """Streams dict rows to ``.jsonl`` (also ``.json``/``.jsonl.gz``) or ``.parquet``, atomically.

    Parquet needs one schema for the whole file, but rows from JSON carry none and keys may come
    and go between batches. Each batch is therefore spooled as its own small Parquet file with
    its inferred schema; ``close()`` unifies those schemas (null columns become typed, ints widen
    to floats) and streams every spooled file, cast to that schema, into the target.
    """

    def __init__(self, path: str | os.PathLike):
        self.path = Path(path)
        self.rows = 0
        self._stack = contextlib.ExitStack()
        self._tmp = self._stack.enter_context(atomic_path(self.path))
        name = self.path.name.lower()
        self.format = "parquet" if name.endswith(PARQUET_SUFFIXES) else "jsonl"
        if self.format == "jsonl":
            raw = open(self._tmp, "wb")
            fh = gzip.GzipFile(fileobj=raw, mode="wb", mtime=0) if name.endswith(".gz") else raw
            self._fh = io.TextIOWrapper(fh, encoding="utf-8", newline="\n")
            self._stack.callback(raw.close)
        else:
            self._spool = self._stack.enter_context(
                tempfile.TemporaryDirectory(prefix=".lenprof-spool-", dir=self.path.parent)
            )
            self._parts: list[str] = []

    @classmethod
    def check_suffix(cls, path: str) -> None:
        name = path.lower().removesuffix(".gz")
        if not name.endswith(JSONL_SUFFIXES + PARQUET_SUFFIXES):
            raise InputError(f"{path}: output must end in .jsonl, .json, .jsonl.gz or .parquet")

    def write(self, rows: list[dict]) -> None:
        if not rows:
            return
        self.rows += len(rows)
        if self.format == "jsonl":
            self._fh.write("".join(dumps(r) + "\n" for r in rows))
            return
        import pyarrow as pa
        import pyarrow.parquet as pq

        # Not pa.Table.from_pylist: it takes the columns from the first row alone and would
        # silently drop keys that only later rows carry.
        keys = dict.fromkeys(k for r in rows for k in r)
        table = pa.table({k: [r.get(k) for r in rows] for k in keys})
        part = os.path.join(self._spool, f"{len(self._parts):08d}.parquet")
        pq.write_table(table, part)
        self._parts.append(part)

    def append_parts(self, parts: list[str]) -> None:
        """Append files that other RowWriters wrote, in order (JSONL bytes; Parquet schemas unify)."""
        if self.format == "parquet":
            self._parts.extend(parts)
            return
        self._fh.flush()
        for part in parts:
            with open(part, "rb") as fh:
                shutil.copyfileobj(fh, self._fh.buffer)

    def close(self) -> None:
        """Finish the file and move it into place."""
        with self._stack:
            if self.format == "jsonl":
                self._fh.close()
            else:
                self._finish_parquet()

    def abort(self) -> None:
        """Discard everything written (the target is left as it was)."""
        try:
            self._stack.__exit__(RuntimeError, RuntimeError("aborted"), None)
        except RuntimeError:
            pass

    def _finish_parquet(self) -> None:
        import pyarrow as pa
        import pyarrow.parquet as pq

        schemas = [pq.read_schema(p) for p in self._parts]
        try:
            schema = pa.unify_schemas(schemas, promote_options="permissive") if schemas else None
        except (pa.ArrowTypeError, pa.ArrowInvalid) as exc:
            raise InputError(
                f"{self.path}: kept rows disagree on a column's type ({exc}); "
                "write the cleaned rows as .jsonl instead"
            ) from exc
        if schema is None:
            schema = pa.schema([])
        with pq.ParquetWriter(self._tmp, schema) as writer:
            for part in self._parts:
                table = pq.read_table(part)
                for name in schema.names:
                    if name not in table.column_names:
                        table = table.append_column(name, pa.nulls(len(table), schema.field(name).type))
                writer.write_table(table.select(schema.names).cast(schema))
