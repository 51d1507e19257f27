"""What a worker sends back: a checked shard's report, measured lengths, a finished shard's result."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field

import numpy as np

from lenprof.io.columns import ColumnKinds
from lenprof.rows.checks import (
    Checked,
    Dropped,
)
from lenprof.stats.scan_stats import ScanStats


@dataclass
class CheckReport:
    index: int
    lines: int  # physical lines (JSONL) or rows (Parquet): where the next shard of the input starts
    dedup: np.ndarray  # uint64: duplicate-detection key of each row that passed the row checks
    texts: np.ndarray  # uint64: each distinct text of those rows, as the trainer sees it


@dataclass
class Measured:
    index: int
    lengths: np.ndarray  # uint32, (tokenizers, texts asked for)
    seconds: float
    fast: list[int]  # per tokenizer: of them counted through the piece caches
    checked: list[int]  # of those, counted by the full tokenizer too
    mismatch: str | None  # why the fast path stopped, if its self-check failed
    prints: np.ndarray | None = None  # the texts' fingerprints, out of core (``external.py``)
    vectors: np.ndarray | None = None  # float32 (texts asked for, dim): scan --model's embeddings
    truncated: int = 0  # of them, texts over the model's limit (embedded truncated)
    from_cache: int = 0  # of them, texts whose embedding was on disk from an earlier scan
    paths: list[str] = field(default_factory=list)  # per tokenizer: how it counts (FastCounter.path)


@dataclass
class ShardResult:
    index: int
    stats: ScanStats
    clean: bytes = b""  # kept rows as JSON lines
    keys: Counter[str] = field(default_factory=Counter)  # of the kept rows: how many hold each key
    kinds: ColumnKinds | None = None  # of the kept rows' values, for a Parquet clean output
    rejects: bytes = b""
    buckets: dict[int, tuple[bytes, int, int, Counter[str]]] = field(
        default_factory=dict
    )  # bucket -> (lines, rows, longest, rows holding each key)
    others: list[ScanStats] = field(default_factory=list)  # the same rows counted by each other tokenizer
    fields: np.ndarray = field(default_factory=lambda: np.zeros(0, np.uint8))  # see ``finish``
    prints: np.ndarray | None = None  # the distinct texts' fingerprints, out of core
    # scan --model: each kept row's texts (query, positives, negatives) as distinct indices
    groups: list[tuple[int, list[int], list[int]]] | None = None


@dataclass
class CheckedShard:
    """A checked shard (step 1), waiting for the driver's decisions (steps 2 and 3)."""

    input: int
    path: str
    read: int
    blank: int
    drops: list[tuple[int, Dropped, object]]  # (line within the shard, why, the row as read)
    rows: list[Checked]
    row_at: np.ndarray  # line within the shard of each row
    raws: list[object]  # each row as read (for a duplicate's reject)
    prints: np.ndarray  # distinct texts' fingerprints, sorted
    texts: list[str] | None  # distinct texts, in ``prints`` order, until measured
    seen: np.ndarray  # each distinct text's first place in the shard, row by row (see ``file_order``)
    chars: np.ndarray  # characters of each distinct text
    text_idx: dict[str, np.ndarray]  # per field: each text's distinct index
    text_row: dict[str, np.ndarray]  # per field: each text's row
    negatives: np.ndarray  # of each row
    repaired: list[int]  # rows with a repair
    control: list[int]  # rows with control characters
    leaks: list[tuple[int, str, str]]  # rows holding --against test data: (row, reason, detail)
    lines: int  # physical lines (JSONL) or rows (Parquet) the shard held
    dedup: np.ndarray  # each row's duplicate-detection key
    watched: np.ndarray  # bool, (rows, len(WATCHED_KEYS)): which of the optional keys each row carries

    def report(self, index: int) -> CheckReport:
        """What the driver needs of it: fingerprints only."""
        return CheckReport(index, self.lines, self.dedup, self.prints)


def file_order(
    inverse: np.ndarray, distinct: int, positives: np.ndarray, negatives: np.ndarray
) -> np.ndarray:
    """Each distinct text's first place in the shard as a reader meets them, row by row (query,
    positives, negatives), from ``inverse``: the distinct text of each of the shard's texts laid
    out field by field (every query, then every positive, then every negative).

        >>> # rows: ("a", ["b"], ["a"]), ("c", [], ["b"]): laid out a c | b | a b
        >>> file_order(np.array([0, 2, 1, 0, 1]), 3, np.array([1, 0]), np.array([1, 1])).tolist()
        [0, 1, 3]
    """
    start = np.cumsum(1 + positives + negatives) - (1 + positives + negatives)  # each row's first place

    def within(counts: np.ndarray) -> np.ndarray:  # each item's place among its row's items
        return np.arange(int(counts.sum())) - np.repeat(np.cumsum(counts) - counts, counts)

    place = np.concatenate(
        [
            start,
            np.repeat(start + 1, positives) + within(positives),
            np.repeat(start + 1 + positives, negatives) + within(negatives),
        ]
    )
    seen = np.full(distinct, place.max(initial=0) + 1, dtype=np.int64)
    np.minimum.at(seen, inverse, place)
    return seen
