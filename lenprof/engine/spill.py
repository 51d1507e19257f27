"""Records spilled to local disk for the out-of-core scan (``external.py``): partitioned by
fingerprint on the way in, read back by shard on the way out.

- :class:`Partitions` appends structured records whose first field is a fingerprint (``fp``) to
  one of ``2**bits`` files by the fingerprint's top bits, through a bounded buffer, so that all
  records of one fingerprint meet in one file and each file can be decided alone.
  :meth:`Partitions.groups` reads a partition back; one that outgrew its share of the memory
  budget is split again by the next bits of the fingerprint, as often as needed, in fingerprint
  order.
- :class:`Runs` holds what the partitions decided about each shard: files of records sorted by
  shard (``shard`` field), one per partition (or part of one), in fingerprint order.
  :meth:`Runs.take` gives a shard's records from every file, shards asked in corpus order, each
  file read forward in chunks: one file open at a time, memory a chunk per file.

Fingerprints are keyed per run (``hashing.py``), so partitions are even whatever the corpus.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import numpy as np

from lenprof.errors import OutputError

BUFFER_BYTES = 16 << 20  # records held, at most, before they are written out to their partitions


class SpillFailed(OutputError):
    """The spill could not be written or read back (no room in TMPDIR, most often)."""


@contextmanager
def spilling(folder: Path):
    """Any error of the spill's files, as one line that says what to do."""
    try:
        yield
    except OSError as exc:
        why = exc.strerror or str(exc)
        raise SpillFailed(
            f"{folder}: the out-of-core scan could not write its spill there ({why}); set TMPDIR to a "
            "local disk with room (about 50 bytes per text and 16 per row of the corpus), or raise "
            "--memory-budget"
        ) from exc


# The spill's files are written and read here, not by numpy's tofile/fromfile: those ask
# ``isinstance(file, os.PathLike)``, which runs Python code, and take its error for a yes, so a
# signal arriving there (Ctrl-C, SIGTERM) came out as "TypeError: expected str, bytes or
# os.PathLike object, not BufferedWriter" instead of a stop.
def _write(file, records: np.ndarray) -> None:
    """Append ``records``' bytes to the open binary ``file``."""
    file.write(np.ascontiguousarray(records).view(np.uint8).data)


def _read(file, dtype: np.dtype, count: int = -1, offset: int = 0) -> np.ndarray:
    """Up to ``count`` records (all that are left: -1) from ``file`` (a path: from byte
    ``offset``; an open file: from where it is); fewer at the end of the file."""
    if not isinstance(file, (str, Path)):
        return _read_open(file, dtype, count)
    with open(file, "rb") as fh:
        fh.seek(offset)
        return _read_open(fh, dtype, count)


def _read_open(fh, dtype: np.dtype, count: int) -> np.ndarray:
    left = os.fstat(fh.fileno()).st_size - fh.tell()
    records = np.empty(left // dtype.itemsize if count < 0 else count, dtype)
    got = fh.readinto(records.view(np.uint8).data) or 0
    if got % dtype.itemsize or (count < 0 and left % dtype.itemsize):
        # a torn record: the spill is ours, so only a failing disk does this
        raise OSError(f"{getattr(fh, 'name', 'spill')}: cut inside a record")
    return records[: got // dtype.itemsize]


class Partitions:
    """Records of one dtype (with a ``uint64`` field ``fp``), partitioned by its top ``bits``."""

    def __init__(self, folder: Path, name: str, dtype: np.dtype, bits: int, buffer: int = BUFFER_BYTES):
        self.folder, self.name, self.dtype, self.bits = folder, name, np.dtype(dtype), bits
        self.buffer = buffer
        self._held: list[np.ndarray] = []
        self._held_bytes = 0

    def path(self, part: int) -> Path:
        return self.folder / f"{self.name}-{part}.bin"

    def add(self, records: np.ndarray) -> None:
        if len(records):
            self._held.append(records)
            self._held_bytes += records.nbytes
        if self._held_bytes > self.buffer:
            self.flush()

    def flush(self) -> None:
        if not self._held:
            return
        held = np.concatenate(self._held)
        self._held, self._held_bytes = [], 0
        with spilling(self.folder):
            _scatter(held, self.bits, 0, lambda p: self.path(p))

    def groups(
        self, part: int, limit: int, *others: Partitions, keep: bool = False
    ) -> Iterator[list[np.ndarray]]:
        """Partition ``part``'s records, with those of ``others`` (partitioned alike), in groups
        of at most ``limit`` bytes where splitting can make them so: each group holds every
        record of its fingerprints, groups come in fingerprint order. The partition's files are
        removed as they are read, unless ``keep``."""
        files = [(p.path(part), p.dtype) for p in (self, *others)]
        with spilling(self.folder):
            yield from _groups(files, self.bits, limit, self.folder, keep)


def _scatter(records: np.ndarray, bits: int, used: int, path_of) -> None:
    """Append ``records`` to ``path_of(p)`` for ``p`` the ``bits`` fingerprint bits after the
    first ``used``."""
    part = ((records["fp"] << np.uint64(used)) >> np.uint64(64 - bits)).astype(np.int64)
    order = np.argsort(part, kind="stable")
    records, part = records[order], part[order]
    bounds = np.searchsorted(part, np.arange(2**bits + 1))
    for p in np.flatnonzero(np.diff(bounds)).tolist():
        with open(path_of(p), "ab") as f:
            _write(f, records[bounds[p] : bounds[p + 1]])


SPLIT_BITS = 4  # a partition over its budget is split 16 ways by its next fingerprint bits


def _groups(
    files: list[tuple[Path, np.dtype]], used: int, limit: int, folder: Path, keep: bool
) -> Iterator[list[np.ndarray]]:
    size = sum(path.stat().st_size for path, _ in files if path.exists())
    if not size:
        return
    if size <= limit or used > 64 - SPLIT_BITS:
        yield [_read(path, dtype) if path.exists() else np.zeros(0, dtype) for path, dtype in files]
    else:
        tag = os.urandom(6).hex()
        sub = [[folder / f"split-{tag}-{j}-{q}.bin" for q in range(2**SPLIT_BITS)] for j in range(len(files))]
        for (path, dtype), paths in zip(files, sub, strict=True):
            if path.exists():
                with open(path, "rb") as f:
                    while len(records := _read(f, dtype, max(1, limit // dtype.itemsize))):
                        _scatter(records, SPLIT_BITS, used, paths.__getitem__)
        for q in range(2**SPLIT_BITS):
            parts = [(paths[q], dtype) for paths, (_, dtype) in zip(sub, files, strict=True)]
            yield from _groups(parts, used + SPLIT_BITS, limit, folder, False)
    if not keep:
        for path, _ in files:
            path.unlink(missing_ok=True)


class Runs:
    """Files of records sorted by ``shard``, read shard after shard in corpus order."""

    def __init__(self, folder: Path, name: str, dtype: np.dtype, chunk: int = 1 << 16):
        self.folder, self.name, self.dtype = folder, name, np.dtype(dtype)
        self.chunk = chunk  # records read at once from a file
        self._files: list[list] = []  # [path, records read from it, what is read and not taken, at its end]

    def write(self, records: np.ndarray) -> None:
        """Add a file of ``records``, sorted by shard, after the files before it."""
        if len(records):
            path = self.folder / f"{self.name}-{len(self._files)}.bin"
            with spilling(self.folder), open(path, "wb") as f:
                _write(f, records)
            self._files.append(
                [path, 0, np.empty(0, self.dtype), False]
            )  # not records[:0]: a view keeps them all

    def take(self, shard: int) -> np.ndarray:
        """Shard ``shard``'s records from every file, file after file; every earlier shard has
        been taken."""
        parts = []
        for f in self._files:
            path, at, buf, ended = f
            while not ended and (not len(buf) or buf["shard"][-1] <= shard):
                with spilling(self.folder):
                    more = _read(path, self.dtype, self.chunk, at * self.dtype.itemsize)
                at += len(more)
                ended = len(more) < self.chunk
                buf = np.concatenate([buf, more])
            n = int(np.searchsorted(buf["shard"], shard, side="right"))
            assert not n or buf["shard"][0] == shard, "shards are taken in order"
            if n:
                parts.append(buf[:n])
            f[1:] = at, buf[n:], ended
        return np.concatenate(parts) if parts else np.zeros(0, self.dtype)

    def fit(self, budget: int) -> None:
        """Read in chunks that together, one per file, stay within ``budget`` bytes."""
        self.chunk = max(256, budget // (max(1, len(self._files)) * self.dtype.itemsize))

    def remove(self) -> None:
        for path, *_ in self._files:
            path.unlink(missing_ok=True)
        self._files = []
