"""Writing a run's outputs so that nothing is ever half-written or harmed.

Every output of a run (cleaned rows, rejects, length buckets, the JSON profile, the HTML report)
is written to a temporary file beside its target and moved into place only when all of them are
complete and flushed to disk (:class:`Transaction`): a run that fails, is interrupted or is
killed leaves the previous outputs as they were. Before any work, :func:`vet` refuses targets
that are not regular files (a device, FIFO, symlink or folder), that would overwrite an input or
each other, or whose folder cannot be written. Temporary names carry ``.lenprof-`` and the
writer's process id: input discovery skips them, and a later run removes those whose process is
gone.

An output in storage (``s3://``, ``gs://``, ``az://``) has no rename: its temporary file is local
(in ``TMPDIR``), and the commit uploads it (``io/upload.py``: each object whole or unchanged),
the objects first, then the local files moved into place, the profile last of all: the run's
manifest, which says the set is complete. Only each object is atomic, not the set.
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
from lenprof.io import storage
from lenprof.io.files import JSONL_SUFFIXES, PARQUET_SUFFIXES, TEMP_MARK
from lenprof.io.sinks import OpenFiles, ParquetSink, RowSink
from lenprof.io.upload import upload

ROW_SUFFIXES = JSONL_SUFFIXES + PARQUET_SUFFIXES + tuple(s + ".gz" for s in JSONL_SUFFIXES)
_STALE = re.compile(r"^\..*\.lenprof-(\d+)-[^.]+\.tmp$")


# --- vetting targets before any work ----------------------------------------------------------------


def _identity(path: str) -> tuple:
    """What two paths of one file share: the file's (device, inode) when it exists, else the
    path with its folders' symlinks resolved. Vetting compares these through a dict, so 20,000
    outputs cost 20,000 looks, not one per pair."""
    if storage.is_url(path):
        return ("url", path)
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
        if storage.is_url(path):  # an object: no inode, its URL is what it is
            if _identity(path) in inputs_at:
                raise OutputError(f"{path}: this output would overwrite an input; choose another path")
            outputs_at.setdefault(_identity(path), []).append(path)
            continue
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
    for folder in sorted({os.path.dirname(os.path.abspath(p)) for p in paths if not storage.is_url(p)}):
        check_folder(folder)
    objects = [p for p in paths if storage.is_url(p)]
    if objects:
        _vet_objects(objects)
        check_folder(tempfile.gettempdir())  # where their temporary files are written


def _vet_objects(urls: list[str]) -> None:
    """Outputs in storage: their buckets exist, and none names a prefix holding objects. Each
    look is a request, so 16 go at once (a mirror of 1,000 inputs has 1,000 outputs).
    Credentials that may write but not read or list are no reason to refuse: the upload tells."""
    from concurrent.futures import ThreadPoolExecutor

    buckets = {storage.bucket_of(url): url for url in urls}  # each bucket, named by an output in it
    with ThreadPoolExecutor(16) as pool:
        for url, (found, exc) in zip(buckets.values(), pool.map(_look, buckets), strict=True):
            _refuse(url, exc)
            if found is None and exc is None:
                raise OutputError(
                    f"{url}: cannot write (no such bucket {storage.split(url)[1]!r}); nothing was written"
                )
        for url, (found, exc) in zip(urls, pool.map(_look, urls), strict=True):
            _refuse(url, exc)
            if found == "dir":
                raise OutputError(
                    f"{url}: is a folder (objects lie under {url}/), not an object; name a file"
                )


def _look(url: str) -> tuple[str | None, OSError | None]:
    try:
        return storage.kind(url), None
    except OSError as exc:
        return None, exc


def _refuse(url: str, exc: OSError | None) -> None:
    """A look that failed refuses the output, unless it was denied: what may not read may write."""
    if exc is None:
        return
    why = storage.reason(url, exc)
    if not why.startswith("access denied"):
        raise OutputError(f"{url}: cannot write ({why}); nothing was written") from exc


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
        self._last: str | None = None  # the manifest: committed after every other output
        self._done: list[str] = []  # outputs in place, in the order the commit put them there

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
        remote = storage.is_url(target)  # its temporary file is local, uploaded at the commit
        try:
            if not remote:
                path.parent.mkdir(parents=True, exist_ok=True)
            fd, tmp = tempfile.mkstemp(
                prefix=f".{path.name}{TEMP_MARK}{os.getpid()}-",
                suffix=".tmp",
                dir=tempfile.gettempdir() if remote else path.parent,
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

    def text(self, target: str, text: str, last: bool = False) -> None:
        """Write ``text`` to ``target``; ``last``: the manifest (the profile), put in place after
        every other output, so that its presence says the set is complete."""
        tmp = self._temp(target)
        self._files[target] = (tmp, None)
        if last:
            self._last = target
        try:
            with open(tmp, "w", encoding="utf-8", errors="backslashreplace") as fh:
                fh.write(text)
                fh.flush()
                os.fsync(fh.fileno())
        except OSError as exc:
            raise write_failed(target, exc) from exc

    def commit(self) -> None:
        """Finish every file, then move them all into place, all stamped with one time: what a
        profile lists as its run's outputs is then no newer than the profile (see ``written.py``).
        Objects in storage are uploaded first, the profile (``last``) after everything else."""
        for _, sink in self._files.values():
            if sink is not None:
                sink.close()
        order = [t for t in self._files if t != self._last] + [t for t in self._files if t == self._last]
        objects = [t for t in order if storage.is_url(t)]
        for target in (t for t in objects if t != self._last):
            self._upload(target)
        now = time.time_ns()
        for target in order:
            if storage.is_url(target):
                continue
            tmp = self._files[target][0]
            try:
                os.utime(tmp, ns=(now, now))
                os.replace(tmp, target)
            except OSError as exc:
                raise self._failed(target, exc) if objects else write_failed(target, exc) from exc
            self._done.append(target)
        if self._last in objects:
            self._upload(self._last)  # type: ignore[arg-type]
        for target in objects:  # the local copies of what was uploaded
            with contextlib.suppress(OSError):
                os.unlink(self._files[target][0])
        self._files.clear()

    def _upload(self, target: str) -> None:
        try:
            upload(str(self._files[target][0]), target)
        except OSError as exc:
            raise self._failed(target, exc) from exc
        except BaseException as stop:  # an interrupt, once the object in flight was finished
            if getattr(stop, "uploaded", False):
                self._done.append(target)
            stop.replaced = list(self._done)  # type: ignore[attr-defined]  # the cli says which
            raise
        self._done.append(target)

    def _failed(self, target: str, exc: OSError) -> OutputError:
        """A commit that stopped part way: say what it had already replaced."""
        why = storage.reason(target, exc)
        if not self._done:
            return OutputError(f"{target}: cannot write ({why}); no output of this run was changed")
        done = ", ".join(self._done[:3]) + (f" and {len(self._done) - 3} more" if len(self._done) > 3 else "")
        manifest = f"; {self._last}, written last, was not" if self._last and self._last != target else ""
        return OutputError(
            f"{target}: cannot write ({why}); already replaced: {done} (outputs in storage are "
            f"replaced one by one){manifest}"
        )

    def abort(self) -> None:
        """Remove every temporary file; the targets stay as they were."""
        for tmp, sink in self._files.values():
            if sink is not None:
                sink.discard()
            with contextlib.suppress(OSError):
                os.unlink(tmp)
        self._files.clear()
