"""Row sinks: the cleaned rows and rejects a transaction writes, as JSON lines or Parquet, a few files open at a time."""

from __future__ import annotations

import contextlib
import gzip
import os
from collections import Counter, OrderedDict
from pathlib import Path
from typing import IO, Any

from lenprof.errors import write_failed
from lenprof.io.files import LineTooLong, Unreadable
from lenprof.io.jsontext import dumps

OPEN_AT_ONCE = 8  # files a transaction holds open; any more are closed, least recently written first


class OpenFiles:
    """The sinks whose file is open, at most ``limit``: a scan of 20,000 files mirrored by
    ``--clean-out DIR/`` writes 20,000 targets, more than a process may open (``ulimit -n``).
    Writing to a sink makes it the most recent; the least recent is closed (:meth:`RowSink.rest`)
    and opens again, to append, when it is next written. A mirrored target gets its input's rows
    together, so in a scan each file is closed about once."""

    def __init__(self, limit: int = OPEN_AT_ONCE):
        self.limit = limit
        self._sinks: OrderedDict[int, RowSink] = OrderedDict()

    def touch(self, sink: RowSink) -> None:
        self._sinks[id(sink)] = sink
        self._sinks.move_to_end(id(sink))
        while len(self._sinks) > self.limit:
            self._sinks.popitem(last=False)[1].rest()

    def forget(self, sink: RowSink) -> None:
        self._sinks.pop(id(sink), None)


class RowSink:
    """Bytes of JSON lines, appended in order (gzip-compressed for ``.gz`` targets). Every row
    of the finished file has the same keys: those some rows lack are added to them at
    :meth:`close` (a second pass, only then), because ``datasets`` refuses a file whose rows
    disagree. Its file is open only while it is among the :class:`OpenFiles` written last; a
    ``.gz`` file closed before the end ends a gzip member there and goes on with another, which
    every gzip reader reads as one stream (in a scan only a mirrored ``.gz`` target can be, and
    its rows are written together)."""

    def __init__(self, target: str, tmp: Path, fill: dict[str, Any] | None = None, files: OpenFiles | None = None):  # fmt: skip
        self.target = target
        self.fill = fill or {}
        self.keys: Counter[str] = Counter()  # rows holding each key
        self.count = 0
        self._path = tmp
        self._gz = target.lower().endswith(".gz")
        self._files = files if files is not None else OpenFiles()
        self._raw: IO[bytes] | None = None  # the file, while it is open
        self._fh: IO[bytes] | None = None  # what writes to it: the file, or a gzip member
        self._opened = False  # ever: a .gz file gets its (empty) member even with no row
        try:
            open(tmp, "wb").close()
        except OSError as exc:
            raise write_failed(target, exc) from exc

    def _open(self) -> IO[bytes]:
        if self._fh is None:
            try:
                self._raw = open(self._path, "ab")
            except OSError as exc:
                raise write_failed(self.target, exc) from exc
            self._fh = (
                # the header names the target, not the temporary file: the same rows, the same bytes
                gzip.GzipFile(filename=os.path.basename(self.target), fileobj=self._raw, mode="wb", mtime=0)
                if self._gz
                else self._raw
            )
            self._opened = True
        self._files.touch(self)
        return self._fh

    def write(self, lines: bytes) -> None:
        if not lines:
            return
        fh = self._open()
        try:
            fh.write(lines)
        except OSError as exc:
            raise write_failed(self.target, exc) from exc

    def rest(self, sync: bool = False) -> None:
        """Close the file (a ``.gz`` file's member ends); the next write opens it again."""
        self._files.forget(self)
        if self._fh is None:
            return
        raw, fh = self._raw, self._fh
        self._raw = self._fh = None
        try:
            if fh is not raw:
                fh.close()
            raw.flush()  # type: ignore[union-attr]
            if sync:
                os.fsync(raw.fileno())  # type: ignore[union-attr]
            raw.close()  # type: ignore[union-attr]
        except OSError as exc:
            with contextlib.suppress(OSError):
                raw.close()  # type: ignore[union-attr]
            raise write_failed(self.target, exc) from exc

    def add_keys(self, keys: Counter[str], rows: int) -> None:
        self.keys.update(keys)
        self.count += rows

    def require(self, key: str) -> None:
        """Give every row ``key``, even when none of them has it."""
        self.keys[key] = self.keys.get(key, 0)

    def missing(self) -> dict[str, int]:
        """Keys some rows lack, and how many rows lack each."""
        return {k: self.count - n for k, n in self.keys.items() if n < self.count}

    def filled(self, row: dict, missing: dict[str, int]) -> dict:
        return {**row, **{k: self.fill.get(k) for k in missing if k not in row}}

    def _flush(self) -> None:
        """Finish the file as written: compressed, flushed to disk, closed."""
        if self._gz and not self._opened:
            self._open()
        if self._fh is not None:
            self.rest(sync=True)
            return
        try:  # closed before: what it wrote may not be on disk yet
            fd = os.open(self._path, os.O_RDONLY)
            try:
                os.fsync(fd)
            finally:
                os.close(fd)
        except OSError as exc:
            raise write_failed(self.target, exc) from exc

    def close(self) -> None:
        self._flush()
        missing = self.missing()
        if missing:
            self._unify(self._path, missing)

    def _unify(self, path: Path, missing: dict[str, int]) -> None:
        """Rewrite the finished file with every row holding every key."""
        import msgspec

        gz = self._gz
        decode = msgspec.json.Decoder().decode
        full = path.with_name(path.name[: -len(".tmp")] + "-keys.tmp")
        try:
            with gzip.open(path, "rb") if gz else open(path, "rb") as src, open(full, "wb") as raw:
                dst = gzip.GzipFile(filename=os.path.basename(self.target), fileobj=raw, mode="wb", mtime=0) if gz else raw  # fmt: skip
                for line in src:
                    dst.write((dumps(self.filled(decode(line), missing)) + "\n").encode("utf-8"))
                if gz:
                    dst.close()
                raw.flush()
                os.fsync(raw.fileno())
            os.replace(full, path)
        except OSError as exc:
            with contextlib.suppress(OSError):
                full.unlink()
            raise write_failed(self.target, exc) from exc

    def discard(self) -> None:
        self._files.forget(self)
        with contextlib.suppress(OSError, ValueError):
            if self._raw is not None:
                self._raw.close()
        self._raw = self._fh = None


class ParquetSink(RowSink):
    """Rows spooled as JSON lines beside the target; at :meth:`close` one schema is decided
    from the kinds of every value (see ``columns.py``) and the Parquet file is written."""

    def __init__(self, target: str, tmp: Path, fill: dict[str, Any] | None = None, files: OpenFiles | None = None):  # fmt: skip
        from lenprof.io.columns import ColumnKinds

        self.tmp = tmp
        self.kinds = ColumnKinds()
        super().__init__(target, tmp.with_name(tmp.name[: -len(".tmp")] + "-spool.tmp"), fill, files)

    def add_kinds(self, kinds) -> None:
        self.kinds += kinds

    def close(self) -> None:
        import msgspec
        import pyarrow.parquet as pq

        from lenprof.io.columns import schema, table

        spool = self._path
        self._flush()  # a missing key is filled as the rows are converted below
        missing = {k: n for k, n in self.missing().items() if self.fill.get(k) is not None}
        self.kinds.add([{k: self.fill[k] for k in missing}])  # a column no row had, if required
        arrow_schema = schema(self.kinds)
        decode = msgspec.json.Decoder().decode
        try:
            with pq.ParquetWriter(self.tmp, arrow_schema) as writer, open(spool, "rb") as fh:
                while lines := fh.readlines(64 << 20):
                    rows = [decode(line) for line in lines]
                    if missing:  # a null is what a Parquet column holds anyway
                        rows = [self.filled(row, missing) for row in rows]
                    writer.write_table(table(rows, arrow_schema))
        except OSError as exc:
            raise write_failed(self.target, exc) from exc
        finally:
            with contextlib.suppress(OSError):
                spool.unlink()

    def discard(self) -> None:
        super().discard()
        with contextlib.suppress(OSError):
            self._path.unlink()


def reject_record(source: str, line: int, reason: str, detail: str, raw: Any, raw_limit: int) -> str:
    """The JSON line the rejects file holds for one dropped row: where, why, and the row as text
    (invalid bytes escaped as ``\\xNN``, cut at ``raw_limit`` characters)."""
    if isinstance(raw, LineTooLong):
        text, full = raw.head.decode("utf-8", "backslashreplace"), raw.length
    elif isinstance(raw, Unreadable):
        text, full = raw.text, len(raw.text)
    else:
        text = raw.decode("utf-8", "backslashreplace") if isinstance(raw, bytes) else dumps(raw)
        full = len(text)
    record = {"source": source, "line": line, "reason": reason, "detail": detail, "raw": text[:raw_limit]}
    if full > raw_limit or len(text) > raw_limit:
        record["raw_truncated_from"] = full
    return dumps(record) + "\n"
