"""Train and test files found together in one folder, so that a scan never merges them silently.

Hugging Face layouts keep splits side by side (``data/train-00000-of-00001.parquet`` beside
``data/test-00000-of-00001.parquet``, or ``train.jsonl`` beside ``test.jsonl``, or ``train/`` beside
``test/``). Scanned as one folder they become one corpus, and the test rows then surface only as
duplicates of training rows. Each such input is tagged with its split; the profile lists them
and the text report names them in one line.

    >>> [i.split for i in tag([InputFile("d/train.jsonl", "jsonl"), InputFile("d/test.jsonl", "jsonl")])]
    ['train', 'test']
    >>> [i.split for i in tag([InputFile("d/train.jsonl", "jsonl"), InputFile("e/test.jsonl", "jsonl")])]
    [None, None]
"""

from __future__ import annotations

import dataclasses
import os
import re

from lenprof.io.files import InputFile

_WORD = re.compile(r"(?:^|[^a-z0-9])(train|training|test|testing|val|valid|validation|dev|eval|evaluation)(?=[^a-z0-9]|$)")  # fmt: skip
_CANONICAL = {"training": "train", "testing": "test", "val": "validation", "valid": "validation", "evaluation": "eval"}  # fmt: skip


def split_of(path: str) -> tuple[str, str] | None:
    """The split a path's file name gives, else its folder's name, and the folder they share.

    >>> split_of("data/train-00000-of-00001.parquet"), split_of("ds/validation/0.jsonl")
    (('train', 'data'), ('validation', 'ds'))
    """
    folder, name = os.path.split(path)
    for text, home in ((name, folder), (os.path.basename(folder), os.path.dirname(folder))):
        found = _WORD.search(text.lower())
        if found:
            return _CANONICAL.get(found.group(1), found.group(1)), home
    return None


def tag(inputs: list[InputFile]) -> list[InputFile]:
    """``inputs`` with each one's split set where files of two or more splits share a folder."""
    named = {i: split_of(item.path) for i, item in enumerate(inputs) if item.format != "datasets"}
    homes: dict[str, set[str]] = {}
    for found in named.values():
        if found is not None:
            homes.setdefault(found[1], set()).add(found[0])
    out = []
    for i, item in enumerate(inputs):
        found = named.get(i)
        if found is not None and len(homes[found[1]]) > 1:
            item = dataclasses.replace(item, split=found[0])
        out.append(item)
    return out


def summary(inputs: list[tuple[str, str | None]]) -> str | None:
    """One line naming the splits of (path, split) inputs found together, or None.

    >>> summary([("d/train.jsonl", "train"), ("d/test.jsonl", "test"), ("d/x.jsonl", None)])
    'train d/train.jsonl; test d/test.jsonl: scanned as one corpus (scan each split on its own to keep them apart)'
    """
    by_split: dict[str, list[str]] = {}
    for path, split in inputs:
        if split is not None:
            by_split.setdefault(split, []).append(path)
    if len(by_split) < 2:
        return None
    parts = [
        f"{split} {', '.join(paths)}"
        if len(paths) <= 2
        else f"{split} {paths[0]} and {len(paths) - 1} more files"
        for split, paths in by_split.items()
    ]
    return "; ".join(parts) + ": scanned as one corpus (scan each split on its own to keep them apart)"
