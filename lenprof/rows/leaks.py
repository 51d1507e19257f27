"""Evaluation data inside the training data: ``--against EVAL...``.

A query of a test set that is also a training query, or a test positive that the model is
trained to retrieve, inflates every score measured on that test set. The scan reads the
evaluation files first (any format and layout a scan reads), keeps a fingerprint of each query
and each positive, exactly and after normalising whitespace and case, and then checks every
training row: its query against the test queries, its positives against the test positives.

A hit is a warning (``eval_query_leak``, ``eval_pos_leak``), with the test file and line in the
example; ``--drop-leaks`` drops the row instead (``eval_leak``). Negatives are not compared: a
test passage among a row's negatives teaches the model nothing about finding it.

Fingerprints here are keyed like the scan's own (``hashing.fingerprints``), under a key
drawn for the index: the test set's are made once by the driver and looked up by every worker.

    >>> normalise("  What  IS\\tRAG? ")
    'what is rag?'
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field, replace

import numpy as np

from lenprof.hashing import RunKey, fingerprints
from lenprof.io.discover import discover
from lenprof.io.records import DEFAULT_SHARD_BYTES, records_of, shards
from lenprof.rows.checks import Checked, check_row
from lenprof.rows.options import ScanOptions


def normalise(text: str) -> str:
    return " ".join(text.split()).casefold()


@dataclass(frozen=True)
class _Texts:
    """Fingerprints of one kind of test text, sorted, with where each came from."""

    exact: np.ndarray
    normal: np.ndarray
    exact_at: np.ndarray  # index into ``EvalIndex.places`` of each fingerprint
    normal_at: np.ndarray
    key: RunKey = field(
        repr=False
    )  # the fingerprints', drawn for this index (the test set is read before the run)

    @classmethod
    def of(cls, texts: Sequence[str], places: Sequence[int]) -> _Texts:
        at, key = np.array(places, dtype=np.int64), RunKey()
        exact, normal = fingerprints(texts, key), fingerprints(list(map(normalise, texts)), key)
        e, n = np.argsort(exact, kind="stable"), np.argsort(normal, kind="stable")
        return cls(exact[e], normal[n], at[e], at[n], key)

    def places(self, texts: Sequence[str]) -> tuple[np.ndarray, np.ndarray]:
        """For each text, the place of the test text it equals exactly, and of the one it equals
        after normalising; -1 where none."""
        found = []
        for keys, at, mine in (
            (self.exact, self.exact_at, fingerprints(texts, self.key)),
            (self.normal, self.normal_at, fingerprints(list(map(normalise, texts)), self.key)),
        ):
            if not len(keys) or not len(mine):
                found.append(np.full(len(mine), -1, dtype=np.int64))
                continue
            i = np.searchsorted(keys, mine).clip(0, len(keys) - 1)
            found.append(np.where(keys[i] == mine, at[i], -1))
        return found[0], found[1]


@dataclass(frozen=True)
class EvalIndex:
    """The test queries and positives of the ``--against`` files."""

    paths: list[str]
    places: list[tuple[int, int]]  # (file, line) of each test row
    queries: _Texts
    positives: _Texts
    rows: int

    def check(self, rows: Sequence[Checked]) -> dict[int, tuple[str, str]]:
        """(reason, detail) by position, for the training rows that hold a test query or
        positive: the query first, then the first positive found exactly, then after normalising.
        One lookup for the whole list, not one per row."""
        q_exact, q_normal = self.queries.places([r.query for r in rows])
        pos = [p for r in rows for p in r.pos]
        owner = np.repeat(np.arange(len(rows)), [len(r.pos) for r in rows])
        p_exact, p_normal = self.positives.places(pos)
        first_exact, first_normal = (
            _first_per_row(owner, p_exact, len(rows)),
            _first_per_row(owner, p_normal, len(rows)),
        )
        found = {}
        for i in np.flatnonzero(
            (q_exact >= 0) | (q_normal >= 0) | (first_exact >= 0) | (first_normal >= 0)
        ).tolist():
            for reason, kind, place, normalised in (
                ("eval_query_leak", "query", q_exact[i], False),
                ("eval_query_leak", "query", q_normal[i], True),
                ("eval_pos_leak", "positive", first_exact[i], False),
                ("eval_pos_leak", "positive", first_normal[i], True),
            ):
                if place >= 0:
                    file, line = self.places[place]
                    how = " after normalising whitespace and case" if normalised else ""
                    found[i] = (reason, f"{kind} of {self.paths[file]} line {line}{how}")
                    break
        return found


def _first_per_row(owner: np.ndarray, places: np.ndarray, rows: int) -> np.ndarray:
    """Per row, the place of its first text that was found (texts in row order); -1 if none.

    >>> _first_per_row(np.array([0, 0, 1, 2]), np.array([-1, 7, -1, 3]), 4).tolist()
    [7, -1, 3, -1]
    """
    out = np.full(rows, -1, dtype=np.int64)
    hit = np.flatnonzero(places >= 0)
    hit = hit[::-1]  # assigning in reverse leaves each row's first hit
    out[owner[hit]] = places[hit]
    return out


def build(paths: Sequence[str], options: ScanOptions, resolve_fields) -> EvalIndex:
    """Read the test files; ``resolve_fields(item)`` gives the fields of each (its layout)."""
    items = discover(list(paths), whole=True)
    places: list[tuple[int, int]] = []
    queries: list[str] = []
    query_at: list[int] = []
    positives: list[str] = []
    pos_at: list[int] = []
    fields = [resolve_fields(item) for item in items]
    lines = [0] * len(items)  # lines of each file read so far
    keep = (options.max_line_bytes, options.line_head_bytes)
    for shard in shards(items, DEFAULT_SHARD_BYTES, *keep):
        records = records_of(shard, *keep)
        f = shard.input
        row_fields = replace(fields[f], strings=True) if shard.strings else fields[f]
        for r, record in enumerate(records):
            if record is None or (isinstance(record, bytes) and not record.strip()):
                continue
            if r == 0 and shard.first and isinstance(record, bytes):
                record = record.removeprefix(b"\xef\xbb\xbf")
            row = check_row(record, row_fields, min_neg=0)
            if not isinstance(row, Checked):
                continue
            places.append((f, lines[f] + r + 1))
            queries.append(row.query)
            query_at.append(len(places) - 1)
            positives += row.pos
            pos_at += [len(places) - 1] * len(row.pos)
        lines[f] += len(records)
    return EvalIndex(
        [i.path for i in items],
        places,
        _Texts.of(queries, query_at),
        _Texts.of(positives, pos_at),
        len(places),
    )
