"""Finding the inputs: paths, globs and folders to a list of :class:`~lenprof.io.files.InputFile`, a run's own outputs left out."""

from __future__ import annotations

import dataclasses
import glob
import os
import stat
from collections.abc import Sequence
from pathlib import Path

from lenprof.errors import InputError
from lenprof.io import storage
from lenprof.io.files import (
    COMPRESSIONS,
    DELIMITED_SUFFIXES,
    JSONL_SUFFIXES,
    PARQUET_SUFFIXES,
    TEMP_MARK,
    InputFile,
    classify,
    starts_array,
)


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
            if entry.name.startswith((".", "__")):
                continue  # hidden (.git/, .backup.jsonl) or special (__pycache__/): datasets skips them too
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
    from lenprof.io.written import own_outputs

    skipped = own_outputs(found)  # written beside the data by an earlier run: see written.py
    return sorted(p for p in found if p not in skipped)


def skipped_outputs(folder: str) -> dict[str, str]:
    """The files a scan of ``folder`` skips as lenprof's own outputs, each with why."""
    from lenprof.io.written import own_outputs

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
    from lenprof.io.readers.hf import saved_kind

    return saved_kind(folder) is not None


def _item(path: str, split: str | None) -> InputFile:
    """A found path as an input: a ``datasets`` folder, a JSON array or a file by its name."""
    from lenprof.io.readers import hf, json_array

    if os.path.isdir(path):
        return hf.saved(path, split)
    item = classify(path)
    assert item is not None
    name = path.lower()
    for suffix in COMPRESSIONS:
        name = name.removesuffix(suffix)
    if name.endswith(".json") and starts_array(json_array.peek(item)):
        return InputFile(path, "json", item.compression)
    return item


def _remote(spec: str, split: str | None, whole: bool) -> tuple[list[InputFile], bool]:
    """The inputs a URL names, and whether it is a folder: an object; every data file under a
    prefix (``s3://bucket/data/``, or without the slash when no object has that name), sorted,
    with a folder's rules (splits, lenprof's own outputs and temporary files left out); or the
    objects a glob matches. Each keeps the size it was listed with."""
    from lenprof.io.readers import splits

    try:
        if glob.has_magic(spec.split("://", 1)[1]):
            listed = [(u, n) for u, n in storage.glob(spec) if TEMP_MARK not in u and classify(u) is not None]
            if not listed:
                raise InputError(f"{spec}: the pattern matches no data files")
            return [_sized(u, n, split) for u, n in listed], False
        if not spec.endswith("/") and storage.kind(spec) == "file":
            if classify(spec) is None:
                raise InputError(f"{spec}: unknown file type; lenprof reads {KNOWN} (also as .gz or .zst)")
            return [_sized(spec, storage.size(spec), split)], False
        listed = storage.files_under(spec)
        no_bucket = not listed and storage.kind(storage.bucket_of(spec)) is None
    except OSError as exc:
        raise InputError(f"{spec}: cannot be read ({storage.reason(spec, exc)})") from exc
    if no_bucket:
        raise InputError(f"{spec}: cannot be read (no such bucket {storage.split(spec)[1]!r})")
    if not listed:
        raise InputError(f"{spec}: no such object, and no object under this prefix")
    _refuse_saved_datasets(spec, [u for u, _ in listed])
    sizes = {u: n for u, n in listed if TEMP_MARK not in u.rsplit("/", 1)[-1] and classify(u) is not None}
    from lenprof.io.written import own_outputs

    try:
        skipped = own_outputs(list(sizes))  # written under the prefix by an earlier run
    except OSError as exc:
        raise InputError(f"{spec}: cannot be read ({storage.reason(spec, exc)})") from exc
    names = [u for u in sizes if u not in skipped]
    if not names:
        raise InputError(f"{spec}: no data files under this prefix (looked for {KNOWN}, optionally .gz/.zst)")
    chosen = dict.fromkeys(names) if whole else dict(splits.choose(spec, names, split))
    return [
        dataclasses.replace(_sized(u, sizes[u], None), split=chosen[u]) for u in names if u in chosen
    ], True


def _sized(url: str, size: int, split: str | None) -> InputFile:
    return dataclasses.replace(_item(url, split), known_size=size)


def _refuse_saved_datasets(spec: str, urls: list[str]) -> None:
    """A ``datasets`` save_to_disk folder is read through ``datasets``, from local disk only."""
    there = set(urls)
    for url in urls:
        folder, _, name = url.rpartition("/")
        if name == "dataset_dict.json" or (name == "state.json" and f"{folder}/dataset_info.json" in there):
            raise InputError(
                f"{folder}/: a datasets save_to_disk folder, which lenprof reads from local disk only; "
                "copy it down first, or scan its data as JSON Lines or Parquet files"
            )


def discover(paths: Sequence[str], split: str | None = None, whole: bool = False) -> list[InputFile]:
    """Expand files, folders (their data files, recursively, sorted) and globs, in the order given;
    ``-`` is stdin, ``hf://ORG/NAME`` a hub dataset and ``split`` the split of a folder or a
    ``datasets`` input. A folder of several splits is refused unless ``split`` picks one, or
    ``whole`` (evaluation data for --against: every split of it is test data to look for)."""
    from lenprof.io.readers import hf, splits, stdin

    found: list[InputFile] = []
    splittable = False  # a folder, a datasets folder or a hub dataset: what --split applies to
    if list(paths).count("-") > 1:
        raise InputError("-: stdin is given twice; it can be read once")
    for spec in paths:
        if spec == "-":
            found.append(stdin.open_stdin())
        elif spec.startswith(hf.HUB):
            found.append(hf.hub(spec, split))
        elif storage.is_url(spec):
            items, folder = _remote(spec, split, whole)
            found.extend(items)
            splittable = splittable or folder
        elif os.path.isdir(spec) and _saved_dataset(spec):
            found.append(hf.saved(spec, split))
        elif os.path.isdir(spec):
            names = _walk(spec)
            if not names:
                raise InputError(
                    f"{spec}: folder holds no data files (looked for {KNOWN}, optionally .gz/.zst, "
                    "and datasets save_to_disk folders)"
                )
            plain = [n for n in names if not os.path.isdir(n)]  # beside datasets folders, which take --split
            chosen = dict(splits.choose(spec, plain, split)) if plain and not whole else dict.fromkeys(plain)
            for n in names:
                if os.path.isdir(n):
                    found.append(_item(n, split))
                elif n in chosen:
                    found.append(dataclasses.replace(_item(n, None), split=chosen[n]))
            splittable = True
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
    if split is not None and not (splittable or any(i.format == "datasets" for i in found)):
        raise InputError(
            f"--split {split}: only a folder, a datasets folder or a hub id (hf://ORG/NAME) has splits; "
            "a file given on its own is scanned whole"
        )
    return splits.tag(found)
