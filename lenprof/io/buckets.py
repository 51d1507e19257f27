"""Cleaned rows in length buckets, for FlagEmbedding's same-dataset mode (``--split-by-length``).

FlagEmbedding trains long and short data apart when each length range is its own file
(``{name}_len-{lo}-{hi}.jsonl``, as its ``scripts/split_data_by_length.py`` writes them) and reads
a file's batch size from the rows' ``batch_size`` key. A row's length is the longest of its texts
as the trainer sees them. With a token budget, each bucket gets the batch size that keeps a padded
step under it: ``budget // ((1 + group size) * min(bucket top, model cap))`` (a query and its
group of passages, each padded at most to the bucket's top).

    >>> b = LengthBuckets.parse("0,128,512", "out", token_budget=65536, group_size=8)
    >>> b.bucket_of(np.array([5, 128, 700])).tolist(), b.name(2), b.batch_size(1, cap=512)
    ([0, 1, 2], 'len-512-inf', 14)
    >>> stems(["a/x.jsonl", "b/x.jsonl.gz", "y.parquet"])
    ['x', 'x-2', 'y']
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass

import numpy as np

from lenprof.errors import InputError


@dataclass(frozen=True)
class LengthBuckets:
    edges: tuple[int, ...]
    folder: str
    token_budget: int | None = None
    group_size: int = 8

    @classmethod
    def parse(
        cls, edges: str, folder: str, token_budget: int | None = None, group_size: int = 8
    ) -> LengthBuckets:
        try:
            values = sorted({int(e) for e in re.split(r"[,\s]+", edges.strip()) if e})
        except ValueError as exc:
            raise InputError(
                f"--split-by-length {edges!r}: expected token lengths like 0,256,512,1024"
            ) from exc
        if not values or values[0] < 0:
            raise InputError(
                f"--split-by-length {edges!r}: expected non-negative token lengths like 0,256,512"
            )
        if values[0] != 0:
            values.insert(0, 0)
        return cls(tuple(values), folder, token_budget, group_size)

    def bucket_of(self, lengths: np.ndarray) -> np.ndarray:
        return np.searchsorted(np.array(self.edges), lengths, side="right") - 1

    def name(self, bucket: int) -> str:
        hi = self.edges[bucket + 1] if bucket + 1 < len(self.edges) else "inf"
        return f"len-{self.edges[bucket]}-{hi}"

    def path(self, stem: str, bucket: int) -> str:
        return os.path.join(self.folder, f"{stem}_{self.name(bucket)}.jsonl")

    def batch_size(self, bucket: int, cap: int | None) -> int | None:
        if self.token_budget is None:
            return None
        top = self.edges[bucket + 1] if bucket + 1 < len(self.edges) else None
        longest = min(x for x in (top, cap) if x is not None) if (top or cap) else None
        if longest is None:
            raise InputError("--token-budget needs a model cap or a last bucket edge to size the open bucket")
        return max(1, self.token_budget // ((1 + self.group_size) * longest))

    def every_path(self, input_paths: list[str]) -> list[str]:
        """Every file this split could write for these inputs (to vet them before the scan)."""
        return [self.path(s, b) for s in stems(input_paths) for b in range(len(self.edges))]


def stem(path: str) -> str:
    name = os.path.basename(path).strip("<>")  # <stdin> -> stdin
    for suffix in (".gz", ".zst", ".jsonl", ".json", ".ndjson", ".parquet", ".pq", ".csv", ".tsv"):
        name = name.removesuffix(suffix)
    return name


def stems(paths: list[str]) -> list[str]:
    """A file-name stem per input, made unique in the split folder (``x``, ``x-2``, ...)."""
    out: list[str] = []
    for path in paths:
        base, n = stem(path), 1
        name = base
        while name in out:
            n += 1
            name = f"{base}-{n}"
        out.append(name)
    return out
