"""A set of 64-bit fingerprints at 8 bytes per member, for duplicate detection and unique counts.

Python's ``set`` costs ~60 bytes per member; a corpus of 50M rows would need 3 GB just to find
duplicate rows. Here members live in a few sorted ``uint64`` arrays whose sizes are distinct
powers of two (like a binary counter, or an LSM tree): an insert merges equal-sized arrays, so
each member is re-sorted O(log n) times in total, and a lookup is one ``searchsorted`` per array.
Memory is 8 bytes per member, 16 transiently while two arrays merge.

Fingerprints are the first 8 bytes of BLAKE2b: stable across processes and runs (unlike
``hash()``), so workers agree. Two different texts collide with probability ~n²/2⁶⁵: about one
in 300,000 for a corpus of 10M distinct keys.

    >>> s = FingerprintSet()
    >>> s.add_new(np.array([5, 7, 5], dtype=np.uint64)).tolist()
    [True, True, False]
    >>> s.add_new(np.array([7, 9], dtype=np.uint64)).tolist(), len(s)
    ([False, True], 3)
    >>> t = FingerprintSet(); _ = t.add_new(np.array([9, 11], dtype=np.uint64)); s.union_size(t)
    4
"""

from __future__ import annotations

from collections.abc import Iterable
from hashlib import blake2b

import numpy as np


def fingerprint(text: str) -> int:
    """Stable 64-bit fingerprint of a text."""
    return int.from_bytes(blake2b(text.encode("utf-8", "surrogatepass"), digest_size=8).digest(), "little")


def fingerprints(texts: Iterable[str]) -> np.ndarray:
    return np.fromiter((fingerprint(t) for t in texts), dtype=np.uint64)


class FingerprintSet:
    def __init__(self) -> None:
        self._runs: list[np.ndarray] = []  # sorted, unique, sizes decreasing

    def __len__(self) -> int:
        return sum(len(r) for r in self._runs)

    def union_size(self, other: FingerprintSet) -> int:
        """``len(self | other)``, without keeping a third set while scanning."""
        return len(
            np.union1d(
                np.concatenate([np.zeros(0, np.uint64), *self._runs]),
                np.concatenate([np.zeros(0, np.uint64), *other._runs]),
            )
        )

    def contains(self, keys: np.ndarray) -> np.ndarray:
        found = np.zeros(len(keys), dtype=bool)
        for run in self._runs:
            pos = np.searchsorted(run, keys)
            pos[pos == len(run)] = 0
            found |= run[pos] == keys
        return found

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
            run = np.union1d(self._runs.pop(), run)
        self._runs.append(run)
