"""A set of 64-bit fingerprints at 8 bytes per member, for duplicate detection and unique counts.

Python's ``set`` costs ~60 bytes per member; a corpus of 50M rows would need 3 GB just to find
duplicate rows. Here members live in a few sorted ``uint64`` arrays whose sizes are distinct
powers of two (like a binary counter, or an LSM tree): an insert merges equal-sized arrays, so
each member is re-sorted O(log n) times in total, and a lookup is one ``searchsorted`` per array.
Memory is 8 bytes per member, 16 transiently while two arrays merge.

Fingerprints are Python's own 64-bit string hash (SipHash-1-3): a string caches its hash, and
the scan has already hashed every text while de-duplicating a batch, so a fingerprint costs
nothing more. It is salted per process (PYTHONHASHSEED), which is fine: every fingerprint of a
scan is made and compared in the one process that runs it. Two different keys collide with
probability ~n²/2⁶⁵: about one in 300,000 for 10M distinct keys.

    >>> s = FingerprintSet()
    >>> s.add_new(np.array([5, 7, 5], dtype=np.uint64)).tolist()
    [True, True, False]
    >>> s.add_new(np.array([7, 9], dtype=np.uint64)).tolist(), len(s)
    ([False, True], 3)
    >>> t = FingerprintSet(); t.update(np.array([11, 9], dtype=np.uint64)); s.union_size(t)
    4
"""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np


def fingerprints(texts: Iterable[str]) -> np.ndarray:
    """64-bit fingerprints of texts, valid within this process."""
    return np.fromiter(map(hash, texts), dtype=np.int64).view(np.uint64)


class FingerprintSet:
    def __init__(self) -> None:
        self._runs: list[np.ndarray] = []  # sorted, unique, sizes decreasing

    def __len__(self) -> int:
        return sum(len(r) for r in self._runs)

    def members(self) -> np.ndarray:
        return np.concatenate([np.zeros(0, np.uint64), *self._runs])

    def union_size(self, other: FingerprintSet) -> int:
        """``len(self | other)``, without keeping a third set while scanning."""
        return len(np.union1d(self.members(), other.members()))

    def contains(self, keys: np.ndarray) -> np.ndarray:
        """Membership of each key; ``keys`` sorted ascending makes the lookups cache-friendly."""
        found = np.zeros(len(keys), dtype=bool)
        for run in self._runs:
            pos = np.searchsorted(run, keys)
            pos[pos == len(run)] = 0
            found |= run[pos] == keys
        return found

    def update(self, distinct_keys: np.ndarray) -> None:
        """Add keys known to be distinct among themselves (cheaper than ``add_new``)."""
        keys = np.sort(np.asarray(distinct_keys, dtype=np.uint64))
        self._insert(keys[~self.contains(keys)])

    def add_new(self, keys: np.ndarray) -> np.ndarray:
        """Add ``keys`` in order; return a mask of those seen for the first time.

        A key repeated inside ``keys`` is new only at its first position, so the mask marks
        exactly the rows an ordered "keep the first occurrence" pass would keep.
        """
        keys = np.asarray(keys, dtype=np.uint64)
        new = np.zeros(len(keys), dtype=bool)
        if len(keys) == 0:
            return new
        uniq, first = np.unique(keys, return_index=True)
        unseen = ~self.contains(uniq)
        new[first[unseen]] = True
        self._insert(uniq[unseen])
        return new

    def _insert(self, run: np.ndarray) -> None:
        if len(run) == 0:
            return
        # Merge while the newest run is at least as large as the new one: sizes stay
        # roughly geometric, so there are O(log n) runs and each key is merged O(log n) times.
        while self._runs and len(self._runs[-1]) <= len(run):
            # Two sorted, disjoint runs: a stable sort (timsort) of their concatenation merges
            # them in linear time.
            run = np.sort(np.concatenate([self._runs.pop(), run]), kind="stable")
        self._runs.append(run)


class FingerprintMap:
    """Fingerprint -> small integer (a token count), 12 bytes per member, same layout as the set.

    The scan keeps one for the whole corpus, so each distinct text is tokenized once however
    often it repeats (mined negatives recur across many rows).

        >>> m = FingerprintMap()
        >>> m.insert(np.array([9, 4], dtype=np.uint64), np.array([30, 12], dtype=np.uint32))
        >>> found, values = m.get(np.array([4, 5, 9], dtype=np.uint64))
        >>> found.tolist(), values[found].tolist()
        ([True, False, True], [12, 30])
    """

    def __init__(self) -> None:
        self._runs: list[tuple[np.ndarray, np.ndarray]] = []

    def __len__(self) -> int:
        return sum(len(k) for k, _ in self._runs)

    def get(self, keys: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(found, value) for each key; values of keys not found are 0."""
        order = np.argsort(keys)  # sorted lookups walk each run forward: far fewer cache misses
        sorted_keys = keys[order]
        found = np.zeros(len(keys), dtype=bool)
        values = np.zeros(len(keys), dtype=np.uint32)
        for run, vals in self._runs:
            pos = np.searchsorted(run, sorted_keys)
            pos[pos == len(run)] = 0
            hit = run[pos] == sorted_keys
            values[order[hit]] = vals[pos[hit]]
            found[order[hit]] = True
        return found, values

    def insert(self, keys: np.ndarray, values: np.ndarray) -> None:
        """Add keys that are not present yet (and distinct among themselves)."""
        if len(keys) == 0:
            return
        order = np.argsort(keys)
        run, vals = keys[order], values[order].astype(np.uint32)
        while self._runs and len(self._runs[-1][0]) <= len(run):
            old_run, old_vals = self._runs.pop()
            merged = np.concatenate([old_run, run])
            order = np.argsort(merged, kind="stable")
            run, vals = merged[order], np.concatenate([old_vals, vals])[order]
        self._runs.append((run, vals))
