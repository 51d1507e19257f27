"""The decisions a scan makes over the whole corpus, in corpus order, from fingerprints alone:
kept apart from the scheduling in ``driver.py`` so that they read as one pass over the shards'
reports.

- a row is a duplicate when an earlier row (in any shard) had its key: a ``FingerprintMap``
  from the key to the shard that held it first (12 bytes a kept row), so that the first
  duplicate rows, the examples a report shows, can name the earlier line;
- a distinct text is counted by the first shard that holds it, and its length is shared with
  every later shard: ``TextTable`` numbers each distinct text (12 bytes a text) and keeps, by
  number, its length by each tokenizer and the fields it was kept in (so the unique counts need
  no set per field);
- a shard's lines are numbered after the lines of the shards of its input before it.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from lenprof.engine.results import CheckReport
from lenprof.hashing import FingerprintMap
from lenprof.stats.scan_stats import EXAMPLES_PER_REASON, TEXT_FIELDS


class TextTable:
    """Every distinct text of the corpus, numbered in the order shards claim them: its length by
    each tokenizer, and in which fields of kept rows it was seen (a bit per text field)."""

    def __init__(self, tokenizers: int):
        self.numbers = FingerprintMap()
        self.lengths = np.zeros((1024, tokenizers), dtype=np.uint32)
        self.fields = np.zeros(1024, dtype=np.uint8)
        self.vectors: np.ndarray | None = None  # scan --model: float32 (texts, dim), by number

    def claim(self, texts: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(the texts no earlier shard held, each text's number), for a shard's sorted, distinct
        text fingerprints."""
        new, ids = self.numbers.number(texts)
        if len(self.numbers) > len(self.fields):  # room for them, grown geometrically
            more = max(len(self.numbers), 2 * len(self.fields)) - len(self.fields)
            self.lengths = np.concatenate([self.lengths, np.zeros((more, self.lengths.shape[1]), np.uint32)])
            self.fields = np.concatenate([self.fields, np.zeros(more, np.uint8)])
            if self.vectors is not None:
                self.vectors = np.concatenate(
                    [self.vectors, np.zeros((more, self.vectors.shape[1]), np.float32)]
                )
        return new, ids

    def embedded(self, ids: np.ndarray, vectors: np.ndarray) -> None:
        """Keep the embeddings of the texts numbered ``ids`` (``scan --model``)."""
        if self.vectors is None:
            self.vectors = np.zeros((len(self.fields), vectors.shape[1]), np.float32)
        self.vectors[ids] = vectors

    def unique(self) -> dict[str, int]:
        """Distinct texts of kept rows, per field (passage: pos or neg)."""
        return unique_counts(self.fields[: len(self.numbers)])

    @property
    def nbytes(self) -> int:
        vectors = self.vectors.nbytes if self.vectors is not None else 0
        return self.numbers.nbytes + self.lengths.nbytes + self.fields.nbytes + vectors


def unique_counts(fields: np.ndarray) -> dict[str, int]:
    """Distinct texts per field (passage: pos or neg), from each distinct text's field bits."""
    bits = {f: np.uint8(1 << i) for i, f in enumerate(TEXT_FIELDS)}
    counts = {f: int(np.count_nonzero(fields & bit)) for f, bit in bits.items()}
    return {**counts, "passage": int(np.count_nonzero(fields & (bits["pos"] | bits["neg"])))}


@dataclass
class Decision:
    """What the corpus decided about one checked shard."""

    first_line: int  # the line number of its first line in its input
    keep: np.ndarray  # of its rows, those no earlier row duplicates
    ids: np.ndarray  # of its distinct texts, each one's number in the text table
    need: np.ndarray  # of its distinct texts, those it is the first to hold: it counts them


class Decisions:
    """The corpus-wide decisions, made shard by shard in corpus order (:meth:`decide`)."""

    def __init__(self, tokenizers: int):
        self.rows = FingerprintMap()  # row key -> the shard that held it first
        self.texts = TextTable(tokenizers)
        self.next_line: dict[int, int] = {}  # per input: the line its next shard starts at
        self.first_lines: list[int] = []  # of each decided shard
        self.duplicates: list[tuple[int, int]] = []  # the first few duplicate rows: (key, earlier shard)

    def decide(self, index: int, source: int, report: CheckReport) -> Decision:
        """Decide about shard ``index`` of input ``source``; every shard before it is decided."""
        assert index == len(self.first_lines), "shards are decided in corpus order"
        first_line = self.next_line.get(source, 1)
        self.next_line[source] = first_line + report.lines
        self.first_lines.append(first_line)
        keep = self.rows.claim(report.dedup, index)
        if len(self.duplicates) < EXAMPLES_PER_REASON and not keep.all():
            keys = report.dedup[~keep][: EXAMPLES_PER_REASON - len(self.duplicates)]
            self.duplicates += zip(keys.tolist(), self.rows.get(keys).tolist(), strict=True)
        new, ids = self.texts.claim(report.texts)  # the texts no earlier shard holds are new
        return Decision(first_line, keep, ids, np.flatnonzero(new))

    @property
    def nbytes(self) -> int:
        """Memory the decisions hold: grows with the corpus (see ``external.py``)."""
        return self.rows.nbytes + self.texts.nbytes
