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
import os
import re
import stat
import tempfile
import time
from collections.abc import Iterable, KeysView
from pathlib import Path
from typing import Any

from lenprof.errors import OutputError, write_failed
from lenprof.io.files import JSONL_SUFFIXES, PARQUET_SUFFIXES, TEMP_MARK
from lenprof.io.sinks import OpenFiles, ParquetSink, RowSink

ROW_SUFFIXES = JSONL_SUFFIXES + PARQUET_SUFFIXES + tuple(s + ".gz" for s in JSONL_SUFFIXES)
_STALE = re.compile(r"^\..*\.lenprof-(\d+)-[^.]+\.tmp$")


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
