"""Splits in a folder, found as ``datasets.load_dataset`` finds them, so that a scan never merges
train and test rows silently.

Hugging Face layouts keep splits side by side: ``data/train-00000-of-00001.parquet`` beside
``data/test-00000-of-00001.parquet``, ``train.jsonl`` beside ``test.jsonl``, ``train/`` beside
``test/``. ``datasets.load_dataset(FOLDER)`` reads such a folder as one split per name, by the
rules of its ``data_files.py`` (mirrored here; the first rule that matches a file wins):

1. sharded files ``data/{split}-00000-of-00001.*`` name any split;
2. else a folder named for a split, its name being one of :data:`KEYWORDS` alone or set off by
   ``-._ `` or digits (``train/``, ``dev-2/``);
3. else a file name holding a keyword that way (``train.jsonl``, ``my_test_set.csv``);
4. else every file is the ``train`` split.

Scanned whole, a folder of two or more splits is refused (exit 2, listing them); ``--split NAME``
picks one, as ``load_dataset(FOLDER, split=NAME)`` does. Files given one by one keep their own
choice: each carries the split its name gives, the profile lists it, and a cleaned output that
would mix splits is refused (see :func:`refuse_mixed`).

    >>> layout("d", ["d/train.jsonl", "d/test.jsonl", "d/notes.jsonl"])
    {'train': ['d/train.jsonl'], 'test': ['d/test.jsonl']}
    >>> layout("d", ["d/data/train-00000-of-00001.parquet", "d/data/dev-00000-of-00001.parquet"])
    {'train': ['d/data/train-00000-of-00001.parquet'], 'dev': ['d/data/dev-00000-of-00001.parquet']}
    >>> layout("d", ["d/a.jsonl", "d/b.jsonl"])
    {}
"""

from __future__ import annotations

import dataclasses
import os
import re
from collections.abc import Sequence

from lenprof.errors import InputError, OutputError
from lenprof.io.files import InputFile

# datasets.data_files.SPLIT_KEYWORDS, in its order
KEYWORDS = {
    "train": ("train", "training"),
    "validation": ("validation", "valid", "dev", "val"),
    "test": ("test", "testing", "eval", "evaluation"),
}
_SEP = r"[-._ 0-9]"
_SHARDED = re.compile(r"data/(?P<split>\w+?)-\d{5}-of-\d{5}[^/]*\.[^/]*")
_ALONE = {split: re.compile(rf"(?:|.*{_SEP})(?:{'|'.join(words)})(?:{_SEP}.*)?") for split, words in KEYWORDS.items()}  # fmt: skip
_IN_NAME = {split: re.compile(rf"(?:|.*{_SEP})(?:{'|'.join(words)}){_SEP}.*") for split, words in KEYWORDS.items()}  # fmt: skip


def layout(root: str, files: Sequence[str]) -> dict[str, list[str]]:
    """The splits of the files under ``root``, each with its files, as ``datasets`` reads them;
    empty when no rule names a split (``datasets`` then reads every file as ``train``)."""
    relative = {f: os.path.relpath(f, root).replace(os.sep, "/") for f in files}
    sharded: dict[str, list[str]] = {}
    for f, rel in relative.items():
        found = _SHARDED.fullmatch(rel)
        if found:
            sharded.setdefault(found["split"], []).append(f)
    if sharded:
        known = [s for s in KEYWORDS if s in sharded]
        return {s: sharded[s] for s in known + sorted(set(sharded) - set(known))}
    folders = _by(
        relative, lambda rel, rule: any(rule.fullmatch(part) for part in rel.split("/")[:-1]), _ALONE
    )
    return folders or _by(relative, lambda rel, rule: bool(rule.fullmatch(rel.rsplit("/", 1)[-1])), _IN_NAME)


def _by(relative: dict[str, str], matches, rules: dict[str, re.Pattern]) -> dict[str, list[str]]:
    out: dict[str, list[str]] = {}
    for split, rule in rules.items():
        hits = [f for f, rel in relative.items() if matches(rel, rule)]
        if hits:
            out[split] = hits
    return out


def _files(paths: list[str], root: str | None = None) -> str:
    names = [os.path.relpath(p, root) if root else p for p in paths]
    return ", ".join(names) if len(names) <= 2 else f"{names[0]} and {len(names) - 1} more files"


def _listing(found: dict[str, list[str]], root: str | None = None) -> str:
    return "; ".join(f"{split} ({_files(paths, root)})" for split, paths in found.items())


def _by_split(inputs) -> dict[str, list[str]]:
    """The paths of (path, split) pairs that have a split, by split, in order."""
    found: dict[str, list[str]] = {}
    for path, split in inputs:
        if split is not None:
            found.setdefault(split, []).append(path)
    return found


def choose(root: str, files: list[str], split: str | None) -> list[tuple[str, str | None]]:
    """The files of folder ``root`` to scan, each with its split: all of them when the folder
    holds one split or none; with two or more, those of ``split``, which must then be given."""
    found = layout(root, files)
    outside = len(files) - sum(map(len, found.values()))
    if split is None:
        if len(found) > 1 or (outside and set(found) - {"train"}):  # test rows beside the others
            also = f", and {outside} files in no split" if outside else ""
            raise InputError(
                f"{root}: holds {len(found)} {'split' if len(found) == 1 else 'splits'}, as datasets.load_dataset "
                f"reads it: {_listing(found, root)}{also}; scan one with --split {next(iter(found))}, never "
                "all of them as one corpus"
            )
        return [(f, None) for f in files]  # one split alone is no finding
    if split in found:
        return [(f, split) for f in found[split]]
    if not found and split == "train":
        return [(f, split) for f in files]  # datasets reads a folder without splits as train
    there = _listing(found, root) if found else "none: datasets reads all its files as the train split"
    rest = f"; the {outside} files in no split are scanned by naming them" if found and outside else ""
    raise InputError(f"{root}: no split {split!r}; its splits are {there}{rest}")


def name_of(path: str) -> str | None:
    """The split a file given on its own names, by the rules above (its folder's name first).

    >>> name_of("data/train-00000-of-00001.parquet"), name_of("ds/dev/0.jsonl"), name_of("x.jsonl")
    ('train', 'validation', None)
    """
    found = layout(os.path.dirname(os.path.dirname(path)) or os.curdir, [path])
    return next(iter(found), None)


def tag(inputs: list[InputFile]) -> list[InputFile]:
    """``inputs`` with the split set on files given one by one, where two or more splits meet."""
    named = {i: name_of(item.path) for i, item in enumerate(inputs) if item.format != "datasets" and item.split is None}  # fmt: skip
    if len({s for s in named.values() if s is not None} | {i.split for i in inputs if i.split}) < 2:
        return inputs
    return [
        dataclasses.replace(item, split=named[i]) if named.get(i) is not None else item
        for i, item in enumerate(inputs)
    ]


def refuse_mixed(inputs: Sequence[InputFile], written: str) -> None:
    """A training output never holds the rows of two splits: it would train on the test."""
    found = _by_split((i.path, i.split) for i in inputs)
    if len(found) > 1:
        raise OutputError(
            f"{written}: the cleaned rows would mix splits {_listing(found)}; "
            "clean each split on its own (--split NAME for a folder)"
        )


def summary(inputs: list[tuple[str, str | None]]) -> str | None:
    """One line naming the splits of (path, split) inputs found together, or None.

    >>> summary([("d/train.jsonl", "train"), ("d/test.jsonl", "test"), ("d/x.jsonl", None)])
    'train d/train.jsonl; test d/test.jsonl: scanned as one corpus (scan each split on its own to keep them apart)'
    """
    by_split = _by_split(inputs)
    if len(by_split) < 2:
        return None
    return (
        "; ".join(f"{split} {_files(paths)}" for split, paths in by_split.items())
        + ": scanned as one corpus (scan each split on its own to keep them apart)"
    )
