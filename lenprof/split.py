"""Cleaned rows split into length buckets, for FlagEmbedding's same-dataset mode.

FlagEmbedding trains long and short data apart when each length range is its own file
(``{name}_len-{lo}-{hi}.jsonl``, as its ``scripts/split_data_by_length.py`` writes them) and reads
a file's batch size from the rows' ``batch_size`` key. A row's length is the longest of its texts
as the trainer sees them. With a token budget, each bucket gets the batch size that keeps a padded
step under it: ``budget // ((1 + group size) * min(bucket top, model cap))`` (a query and its
group of passages, each padded at most to the bucket's top).

    >>> spec = SplitSpec.parse("0,128,512", "out", token_budget=65536, group_size=8)
    >>> spec.bucket_of(np.array([5, 128, 700])).tolist(), spec.name(2), spec.batch_size(1, cap=512)
    ([0, 1, 2], 'len-512-inf', 14)
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .io import InputError, InputFile, RowWriter


@dataclass(frozen=True)
class SplitSpec:
    edges: tuple[int, ...]
    folder: str
    token_budget: int | None = None
    group_size: int = 8

    @classmethod
    def parse(
        cls, edges: str, folder: str, token_budget: int | None = None, group_size: int = 8
    ) -> SplitSpec:
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

    def batch_size(self, bucket: int, cap: int | None) -> int | None:
        if self.token_budget is None:
            return None
        top = self.edges[bucket + 1] if bucket + 1 < len(self.edges) else None
        longest = min(x for x in (top, cap) if x is not None) if (top or cap) else None
        if longest is None:
            raise InputError("--token-budget needs a model cap or a last bucket edge to size the open bucket")
        return max(1, self.token_budget // ((1 + self.group_size) * longest))


def stem(path: str) -> str:
    name = os.path.basename(path)
    for suffix in (".gz", ".zst", ".jsonl", ".json", ".ndjson", ".parquet", ".pq"):
        name = name.removesuffix(suffix)
    return name


class SplitWriter:
    """One JSONL file per (input, bucket), written atomically; a summary of what went where."""

    def __init__(self, spec: SplitSpec, cap: int | None):
        self.spec, self.cap = spec, cap
        self._stems: dict[int, str] = {}  # input (by id) -> a stem unique in the folder
        self._writers: dict[tuple[str, int], RowWriter] = {}
        self.summary: dict[str, dict] = {}

    def _stem_for(self, item: InputFile) -> str:
        key = id(item)
        if key not in self._stems:
            base, n = stem(item.path), 1
            taken = set(self._stems.values())
            name = base
            while name in taken:
                n += 1
                name = f"{base}-{n}"
            self._stems[key] = name
        return self._stems[key]

    def write(self, item: InputFile, rows: list[dict], row_max: np.ndarray) -> None:
        buckets = self.spec.bucket_of(row_max)
        name = self._stem_for(item)
        for bucket in np.unique(buckets).tolist():
            chosen = np.flatnonzero(buckets == bucket)
            size = self.spec.batch_size(bucket, self.cap)
            out = [dict(rows[i], batch_size=size) if size is not None else rows[i] for i in chosen.tolist()]
            key = (name, bucket)
            if key not in self._writers:
                path = Path(self.spec.folder) / f"{name}_{self.spec.name(bucket)}.jsonl"
                self._writers[key] = RowWriter(path)
                self.summary[path.name] = {
                    "source": item.path,
                    "bucket": self.spec.name(bucket),
                    "rows": 0,
                    "max_len": 0,
                    "batch_size": size,
                }
            self._writers[key].write(out)
            entry = self.summary[f"{name}_{self.spec.name(bucket)}.jsonl"]
            entry["rows"] += len(out)
            entry["max_len"] = max(entry["max_len"], int(row_max[chosen].max()))

    def close(self) -> None:
        for w in self._writers.values():
            w.close()

    def abort(self) -> None:
        for w in self._writers.values():
            w.abort()
