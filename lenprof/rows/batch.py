r"""A shard's rows laid out once for work over all of them (see ``screen.py``): their texts, every
query, then every positive, then every negative, as the scan lays them out, with keyed
fingerprints; their lines as one buffer of bytes.

    >>> from lenprof.hashing import RunKey
    >>> t = RowTexts([{"q": "a", "p": ["b "], "n": ["b", "c"]}], Fields("q", "p", "n"), RunKey(b"k" * 16))
    >>> t.sizes[0].tolist(), t.sizes[1].tolist(), t.clear(min_neg=1).tolist()  # "b " stripped is "b"
    ([1], [2], [False])
    >>> (x := LineBytes([b'{"a": "x\\"y"}', b'{"b": "\\u0007"}'])).per_line(x.quotes()).tolist()  # not the escaped one
    [4, 4]
    >>> LineBytes([b"{}", b'{"a": "\\u0007"}', b'{"a": "\x7f"}']).control().tolist()
    [1, 2]
"""

from __future__ import annotations

from itertools import chain
from operator import is_not, itemgetter

import numpy as np

from lenprof.hashing import SPREAD, RunKey, distinct, fingerprints, rows_of_prints, unique
from lenprof.rows.checks import Checked, dedup_key
from lenprof.rows.fields import Fields


class RowTexts:
    """The typed rows' texts, laid out as the scan lays them out (every query, every positive,
    every negative), with their keyed fingerprints: ``ids`` places each text among the shard's
    ``distinct`` texts (``prints``, sorted, as ``np.unique`` gives them), and ``bare`` is each
    text's fingerprint once stripped. A text is stripped once however often it appears."""

    def __init__(self, objs: list[dict], fields: Fields, key: RunKey):
        self.objs, self.n = objs, len(objs)
        self.query, self.pos, self.neg = (
            list(map(itemgetter(f), objs)) for f in (fields.query, fields.pos, fields.neg)
        )
        self.sizes = (
            np.fromiter(map(len, self.pos), np.int64, self.n),
            np.fromiter(map(len, self.neg), np.int64, self.n),
        )
        texts = self.query.copy()
        texts += chain.from_iterable(self.pos)
        texts += chain.from_iterable(self.neg)
        self.prints, first, self.ids = unique(fingerprints(texts, key))
        self.distinct = list(map(texts.__getitem__, first.tolist()))
        self.lengths = np.fromiter(map(len, self.distinct), np.int64, len(self.distinct))  # characters
        stripped = list(map(str.strip, self.distinct))  # the text itself where nothing is stripped
        bare, empty = self.prints, self.lengths == 0
        changed = np.flatnonzero(np.fromiter(map(is_not, stripped, self.distinct), bool, len(stripped)))
        if len(changed):
            bare = bare.copy()
            bare[changed] = fingerprints([stripped[i] for i in changed.tolist()], key)
            empty[changed] = [not stripped[i] for i in changed.tolist()]
        self.bare, self.empty = bare[self.ids], empty[self.ids]
        rows = np.arange(self.n)
        self.row = np.concatenate([rows, np.repeat(rows, self.sizes[0]), np.repeat(rows, self.sizes[1])])
        self.bounds = np.cumsum([0, self.n, int(self.sizes[0].sum()), int(self.sizes[1].sum())]).tolist()

    def part(self, values: np.ndarray, k: int) -> np.ndarray:
        """``values`` of the queries (0), the positives (1) or the negatives (2)."""
        return values[self.bounds[k] : self.bounds[k + 1]]

    def clear(self, min_neg: int) -> np.ndarray:
        """Which rows ``check_row`` keeps as they are, as far as their texts go: the query and every
        positive and negative hold text, the query is no positive, no negative is a positive or
        another negative (stripped texts compared by fingerprint: two that meet only send their
        row to ``check_row``), and there are ``min_neg`` negatives or more."""
        bad = (self.sizes[0] == 0) | (self.sizes[1] < min_neg)
        bad[self.row[self.empty]] = True
        # a stripped text's fingerprint mixed with its row's number: the same text in the same
        # row is the same number; anything else meets only by chance, and then looks closer
        mixed = self.bare ^ (self.row.astype(np.uint64) * SPREAD)
        q, p, n = (self.part(mixed, k) for k in range(3))
        positives = distinct(p)
        bad |= _among(q, positives)
        both = np.sort(np.concatenate([positives, n]))
        bad[self.part(self.row, 2)[_among(n, both[1:][both[1:] == both[:-1]])]] = True
        return ~bad

    def kept(
        self, rows: list[Checked], typed: np.ndarray, repaired: list[int], fields: Fields, key: RunKey
    ) -> tuple[np.ndarray, np.ndarray]:
        """For the kept ``rows`` (the typed rows ``typed``; those at ``repaired`` may be): their
        texts' places among ``distinct`` in the scan's layout, and each row's :func:`dedup_key`
        fingerprint."""
        chosen = np.zeros(self.n, dtype=bool)
        chosen[typed] = True
        keep = chosen[self.row]
        starts = [np.cumsum(s) - s for s in self.sizes]
        for r in repaired:  # a repair removes texts, in place
            for _, column, i, _ in rows[r].removed:
                k = 1 if column == fields.pos else 2
                keep[self.bounds[k] + starts[k - 1][typed[r]] + i] = False
        # a row's dedup key: its stripped query and the set of its stripped positives; most rows
        # hold one positive, and their key is two fingerprints known already
        pos_kept = self.part(keep, 1)
        single = np.bincount(self.part(self.row, 1)[pos_kept], minlength=self.n)[typed] == 1
        sizes = np.where(single, 2, 0)
        others = np.flatnonzero(~single).tolist()
        keys = [dedup_key(rows[i]) for i in others]
        sizes[others] = list(map(len, keys))
        at = np.cumsum(sizes) - sizes
        first_pos = np.zeros(self.n, dtype=np.int64)
        first_pos[self.part(self.row, 1)[pos_kept]] = np.flatnonzero(pos_kept)
        flat = np.empty(int(sizes.sum()), dtype=np.uint64)
        flat[at[single]] = self.part(self.bare, 0)[typed[single]]
        flat[at[single] + 1] = self.part(self.bare, 1)[first_pos[typed[single]]]
        if others:
            spots = np.repeat(at[others], sizes[others]) + _within(sizes[others])
            flat[spots] = fingerprints(list(chain.from_iterable(keys)), key)
        return self.ids[keep], rows_of_prints(flat, sizes, key)


def _among(values: np.ndarray, distinct: np.ndarray) -> np.ndarray:
    """Whether each of ``values`` is among the sorted ``distinct`` (``np.isin``, which imports numpy.ma)."""
    if not len(distinct):
        return np.zeros(len(values), dtype=bool)
    at = np.minimum(np.searchsorted(distinct, values), len(distinct) - 1)
    return distinct[at] == values


def _within(counts: np.ndarray) -> np.ndarray:
    """Each item's place within its group, for groups of ``counts`` items laid end to end.

    >>> _within(np.array([2, 0, 3])).tolist()
    [0, 1, 0, 1, 2]
    """
    return np.arange(int(counts.sum())) - np.repeat(np.cumsum(counts) - counts, counts)


class LineBytes:
    """A shard's lines as one buffer, for what is counted in every line at once."""

    def __init__(self, lines: list[bytes]):
        self.lines = len(lines)
        self.buffer = np.frombuffer(b"\n\n" + b"\n".join(lines), dtype=np.uint8)  # two bytes before each
        self.starts = np.cumsum(np.fromiter(chain((2,), map(len, lines)), np.int64, len(lines) + 1) + 1) - 1

    def per_line(self, at: np.ndarray) -> np.ndarray:
        """How many of the bytes ``at`` each line holds."""
        return np.bincount(np.searchsorted(self.starts, at, side="right") - 1, minlength=self.lines)[
            : self.lines
        ]

    def quotes(self) -> np.ndarray:
        """Where the lines' quotes are, but those after one lone backslash (a quote in a string):
        at least two for each string of a line's JSON text (``per_line`` counts them a line)."""
        b = self.buffer
        at = np.flatnonzero(b == ord('"'))
        return at[~((b[at - 1] == ord("\\")) & (b[at - 2] != ord("\\")))]

    def control(self) -> np.ndarray:
        """The lines with a DEL byte or an escape that may stand for a control character (a
        backslash before u, b or f, as ``CONTROL_ESCAPE`` finds them)."""
        b = self.buffer
        at = np.flatnonzero(b == ord("\\"))
        at = at[np.isin(b[np.minimum(at + 1, len(b) - 1)], np.frombuffer(b"ubf", dtype=np.uint8))]
        return np.flatnonzero(self.per_line(np.concatenate([at, np.flatnonzero(b == 0x7F)])))
