"""Writing a run's outputs so that nothing is ever half-written or harmed.

Every output of a run (cleaned rows, rejects, length buckets, the JSON profile, the HTML report)
is written to a temporary file beside its target and moved into place only when all of them are
complete and flushed to disk (:class:`Transaction`): a run that fails, is interrupted or is
killed leaves the previous outputs as they were. Before any work, :func:`vet` refuses targets
that are not regular files (a device, FIFO, symlink or folder), that would overwrite an input or
each other, or whose folder cannot be written. Temporary names carry ``.lenprof-`` and the
writer's process id: input discovery skips them, and a later run removes those whose process is
gone.
"""

from __future__ import annotations

import contextlib
import errno
import gzip
import os
import re
import stat
import tempfile
import time
from collections import Counter, OrderedDict
from collections.abc import Iterable, KeysView
from pathlib import Path
from typing import IO, Any

from .inputs import JSONL_SUFFIXES, PARQUET_SUFFIXES, TEMP_MARK, InputError, LineTooLong, Unreadable
from .jsontext import dumps

ROW_SUFFIXES = JSONL_SUFFIXES + PARQUET_SUFFIXES + tuple(s + ".gz" for s in JSONL_SUFFIXES)
_STALE = re.compile(r"^\..*\.lenprof-(\d+)-[^.]+\.tmp$")


class OutputError(InputError):
    """An output cannot be written. Exit code 2, and the previous outputs stay as they were."""


def write_failed(path: str | os.PathLike, exc: OSError) -> OutputError:
    why = {
        errno.ENOSPC: "the disk is full",
        errno.EFBIG: "the file is larger than this process may write (ulimit -f)",
        errno.EDQUOT: "the disk quota is exceeded",
        errno.EROFS: "the file system is read-only",
        errno.EACCES: "permission denied",
        errno.EPERM: "permission denied",
    }.get(exc.errno or 0, exc.strerror or str(exc))
    return OutputError(f"{path}: cannot write ({why}); no output of this run was changed")


# --- vetting targets before any work ----------------------------------------------------------------


def _identity(path: str) -> tuple:
    """What two paths of one file share: the file's (device, inode) when it exists, else the
    path with its folders' symlinks resolved. Vetting compares these through a dict, so 20,000
    outputs cost 20,000 looks, not one per pair."""
    try:
        st = os.stat(path)
    except OSError:
        return ("path", os.path.realpath(path))
    return ("file", st.st_dev, st.st_ino)


def remove_stale_temps(folder: str) -> None:
    """Remove temporary files that killed lenprof runs left in ``folder``."""
    try:
        names = os.listdir(folder or ".")
    except OSError:
        return
    for name in names:
        m = _STALE.match(name)
        if m is None:
            continue
        try:
            os.kill(int(m.group(1)), 0)
            continue  # that run is still going
        except ProcessLookupError:
            pass
        except (PermissionError, OverflowError, ValueError):
            continue
        with contextlib.suppress(OSError):
            os.unlink(os.path.join(folder or ".", name))


def vet(targets: dict[str, str], inputs: Iterable[str], row_outputs: Iterable[str] = ()) -> None:
    """Refuse, before any work, every output that could not be written or would do harm."""
    inputs = list(inputs)
    for kind in row_outputs:
        path = targets.get(kind)
        if path and not path.lower().endswith(ROW_SUFFIXES):
            raise OutputError(f"{path}: output must end in .jsonl, .json, .jsonl.gz or .parquet")
    paths = list(targets.values())
    inputs_at = {_identity(p) for p in inputs}
    outputs_at: dict[tuple, list[str]] = {}
    for path in paths:
        try:
            st = os.lstat(path)
        except FileNotFoundError:
            st = None
        except OSError as exc:
            raise OutputError(f"{path}: cannot use it as an output ({exc.strerror})") from exc
        if st is not None and not stat.S_ISREG(st.st_mode):
            what = (
                "a symlink" if stat.S_ISLNK(st.st_mode)
                else "a folder" if stat.S_ISDIR(st.st_mode)
                else "a device, FIFO or socket"
            )  # fmt: skip
            raise OutputError(f"{path}: is {what}, not a regular file; lenprof replaces only regular files")
        at = _identity(path)
        if at in inputs_at:
            raise OutputError(f"{path}: this output would overwrite an input; choose another path")
        outputs_at.setdefault(at, []).append(path)
    for same in outputs_at.values():
        if len(same) > 1:
            raise OutputError(f"{same[0]}: two outputs name the same file")
    for folder in sorted({os.path.dirname(os.path.abspath(p)) for p in paths}):
        check_folder(folder)


def check_folder(folder: str) -> None:
    """Make ``folder`` if needed and prove a file can be created in it; clear stale temps."""
    try:
        os.makedirs(folder, exist_ok=True)
        fd, probe = tempfile.mkstemp(dir=folder, prefix=f".probe{TEMP_MARK}{os.getpid()}-", suffix=".tmp")
        os.close(fd)
        os.unlink(probe)
    except OSError as exc:
        raise write_failed(folder, exc) from exc
    remove_stale_temps(folder)


# --- the transaction ----------------------------------------------------------------------------


class Transaction:
    """A run's outputs as temporary files, moved into place together by :meth:`commit`.

    As a context manager it commits when the block ends normally and aborts (every temporary
    file removed, every target as it was) when anything escapes it, an interrupt included."""

    def __init__(self) -> None:
        self._files: dict[str, tuple[Path, Any]] = {}  # target -> (temp path, sink)
        self._open = OpenFiles()  # the sinks whose file is open now: a few, however many targets

    def __enter__(self) -> Transaction:
        return self

    def __exit__(self, kind, exc, tb) -> None:
        if kind is None:
            try:
                self.commit()
                return
            except BaseException:
                self.abort()
                raise
        self.abort()

    def _temp(self, target: str) -> Path:
        path = Path(target)
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            fd, tmp = tempfile.mkstemp(
                prefix=f".{path.name}{TEMP_MARK}{os.getpid()}-", suffix=".tmp", dir=path.parent
            )
            os.close(fd)
            mask = os.umask(0)
            os.umask(mask)
            os.chmod(tmp, 0o666 & ~mask)  # mkstemp makes 0600; a finished output gets the usual mode
        except OSError as exc:
            raise write_failed(target, exc) from exc
        return Path(tmp)

    def rows(self, target: str, fill: dict[str, Any] | None = None) -> RowSink:
        """A sink for JSON rows (``.jsonl``, ``.jsonl.gz``), or for Parquet (``.parquet``);
        ``fill`` gives a key that some rows lack its value on them (null by default)."""
        if target not in self._files:
            tmp = self._temp(target)
            sink = (
                ParquetSink(target, tmp, fill, self._open)
                if target.lower().endswith(PARQUET_SUFFIXES)
                else RowSink(target, tmp, fill, self._open)
            )
            self._files[target] = (tmp, sink)
        return self._files[target][1]

    def targets(self) -> KeysView[str]:
        """The targets so far, in order: a live view, so that asking whether one is there is a
        lookup, not a list made and searched (thousands of targets with a mirrored output)."""
        return self._files.keys()

    def text(self, target: str, text: str) -> None:
        tmp = self._temp(target)
        self._files[target] = (tmp, None)
        try:
            with open(tmp, "w", encoding="utf-8", errors="backslashreplace") as fh:
                fh.write(text)
                fh.flush()
                os.fsync(fh.fileno())
        except OSError as exc:
            raise write_failed(target, exc) from exc

    def commit(self) -> None:
        """Finish every file, then move them all into place, all stamped with one time: what a
        profile lists as its run's outputs is then no newer than the profile (see ``written.py``)."""
        for _, sink in self._files.values():
            if sink is not None:
                sink.close()
        now = time.time_ns()
        for target, (tmp, _) in self._files.items():
            try:
                os.utime(tmp, ns=(now, now))
                os.replace(tmp, target)
            except OSError as exc:
                raise write_failed(target, exc) from exc
        self._files.clear()

    def abort(self) -> None:
        """Remove every temporary file; the targets stay as they were."""
        for tmp, sink in self._files.values():
            if sink is not None:
                sink.discard()
            with contextlib.suppress(OSError):
                os.unlink(tmp)
        self._files.clear()


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
        from .columns import ColumnKinds

        self.tmp = tmp
        self.kinds = ColumnKinds()
        super().__init__(target, tmp.with_name(tmp.name[: -len(".tmp")] + "-spool.tmp"), fill, files)

    def add_kinds(self, kinds) -> None:
        self.kinds += kinds

    def close(self) -> None:
        import msgspec
        import pyarrow.parquet as pq

        from .columns import schema, table

        spool = self._path
        self._flush()  # a missing key is filled as the rows are converted below
        arrow_schema = schema(self.kinds)
        decode = msgspec.json.Decoder().decode
        try:
            with pq.ParquetWriter(self.tmp, arrow_schema) as writer, open(spool, "rb") as fh:
                missing = {k: n for k, n in self.missing().items() if self.fill.get(k) is not None}
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
