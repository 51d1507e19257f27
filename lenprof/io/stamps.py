"""An input that changes while it is read stops the scan: each input's size, mtime and inode
before and after (an object in storage: its size, Last-Modified and ETag)."""

from __future__ import annotations

import os

from lenprof.errors import InputError
from lenprof.io import storage
from lenprof.io.files import InputFile

FileStamp = tuple  # (size, mtime_ns, device, inode); an object: (size, Last-Modified, 0, ETag)
Stamp = FileStamp | tuple[tuple[str, FileStamp], ...]  # a datasets folder: (file, stamp) per data file


def stamp(item: InputFile) -> Stamp | None:
    """What tells that an input file changed: its size, modification time and identity (a file
    renamed over it is another file), taken when the scan finds it; for a ``datasets`` folder,
    those of each ``.arrow`` file its rows are read from. None for what is no file (stdin, a hub
    id, whose cache only ``datasets`` writes)."""
    if item.format == "datasets" and not item.path.startswith("hf://"):
        from lenprof.io.readers.hf import data_files

        try:
            files = data_files(item.path)
        except InputError:
            return None  # reading it will say why it cannot be read
        stamps = [(path, stamp(InputFile(path, "arrow"))) for path in files]
        return tuple((path, s) for path, s in stamps if s is not None) or None
    if storage.is_url(item.path):
        return _object_stamp(item.path)
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
    if storage.is_url(path):
        now = _object_stamp(path)
    else:
        try:
            st = os.stat(path)
            now = (st.st_size, st.st_mtime_ns, st.st_dev, st.st_ino)
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


def _object_stamp(url: str) -> FileStamp | None:
    """An object's stamp; None when it is gone. A server that fails otherwise is named as such:
    a scan that cannot tell whether its input changed cannot vouch for its result."""
    try:
        return storage.stamp(url)
    except FileNotFoundError:
        return None
    except OSError as exc:
        raise InputError(f"{url}: cannot be read ({storage.reason(url, exc)})") from exc


def stamp_all(items: list[InputFile]) -> list[Stamp | None]:
    """:func:`stamp` of each input; objects in storage are asked 16 at a time (a request each)."""
    if not any(storage.is_url(item.path) for item in items):
        return [stamp(item) for item in items]
    from concurrent.futures import ThreadPoolExecutor

    with ThreadPoolExecutor(16) as pool:
        return list(pool.map(stamp, items))


def unchanged_all(paths: list[str], befores: list[Stamp | None]) -> None:
    """:func:`unchanged` for each input with a stamp, in order: the first that changed is named."""
    pairs = [(path, before) for path, before in zip(paths, befores, strict=False) if before is not None]
    if any(storage.is_url(path) for path, _ in pairs):
        from concurrent.futures import ThreadPoolExecutor

        with ThreadPoolExecutor(16) as pool:
            asked = [pool.submit(_failure, pair) for pair in pairs]
            for answer in asked:  # in order: the first input that changed is the one named
                if (error := answer.result()) is not None:
                    for later in asked:
                        later.cancel()  # a server that stopped answering is not asked again
                    raise error
        return
    for path, before in pairs:
        unchanged(path, before)


def _failure(pair: tuple[str, Stamp]) -> InputError | None:
    try:
        unchanged(*pair)
    except InputError as exc:
        return exc
    return None
