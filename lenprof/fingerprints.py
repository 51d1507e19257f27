"""64-bit fingerprints of texts and rows, kept in sorted arrays at 8 bytes a member.

Python's ``set`` costs ~60 bytes per member; a corpus of 50M rows would need 3 GB just to find
duplicate rows. Here members live in a few sorted ``uint64`` arrays whose sizes grow
geometrically (like an LSM tree): a new array merges into the newest while that one is at most
``MERGE`` times larger, so each member is re-sorted O(log n) times in total, and a lookup is one
``searchsorted`` per array. Memory is 8 bytes per member, 16 transiently while arrays merge.

Fingerprints are Python's own 64-bit string hash (SipHash-1-3) mixed with the length (see
:func:`fingerprints`): a string caches its hash, so hashing costs little. The hash is salted per process
(PYTHONHASHSEED): every fingerprint of a scan is made in one process, or in worker processes
started with the same fixed seed, so they always agree. Two different keys collide with
probability ~n²/2⁶⁵: about one in 300,000 for 10M distinct keys.

    >>> s = FingerprintSet()
    >>> s.add_new(np.array([5, 7, 5], dtype=np.uint64)).tolist()
    [True, True, False]
    >>> s.add_new(np.array([7, 9], dtype=np.uint64)).tolist(), len(s)
    ([False, True], 3)
    >>> len(s | FingerprintSet.of(np.array([11, 9], dtype=np.uint64)))
    4
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

import numpy as np

# A new run merges into the newest while that one is at most this many times larger: fewer,
# larger runs (each lookup visits every run) for a little more merging.
MERGE = 4


_SPREAD = np.uint64(0x9E3779B97F4A7C15)  # odd: multiplying by it is one-to-one on 64-bit lengths


def fingerprints(texts: Iterable[str] | Sequence[str]) -> np.ndarray:
    """64-bit fingerprints of strings (or tuples of them), valid within this process (or
    processes sharing its seed).

    Python hashes a string's internal buffer, which holds one, two or four bytes a character
    depending on the widest one, so two different strings can hash alike: ``"中"`` (U+4E2D,
    bytes 2D 4E) and ``"-N"`` (bytes 2D 4E). Their lengths differ whenever their buffers are
    alike, so the length is mixed in:

        >>> hash("中") == hash("-N"), len(set(fingerprints(["中", "-N"]).tolist()))
        (True, 2)
    """
    texts = texts if isinstance(texts, (list, tuple)) else list(texts)
    n = len(texts)
    hashes = np.fromiter(map(hash, texts), dtype=np.int64, count=n).view(np.uint64)
    return hashes ^ (np.fromiter(map(len, texts), dtype=np.uint64, count=n) * _SPREAD)


def _merge_runs(runs: list[np.ndarray], run: np.ndarray) -> None:
    """Append a sorted run, merging while the newest run is at least as large (sizes stay
    roughly geometric, so there are O(log n) runs and each key is merged O(log n) times)."""
    while runs and len(runs[-1]) <= MERGE * len(run):
        # Two sorted, disjoint runs: a stable sort (timsort) of their concatenation merges them
        # in linear time.
        run = np.sort(np.concatenate([runs.pop(), run]), kind="stable")
    runs.append(run)


class FingerprintSet:
    def __init__(self) -> None:
        self._runs: list[np.ndarray] = []  # sorted, unique, sizes decreasing

    @classmethod
    def of(cls, keys: np.ndarray) -> FingerprintSet:
        """A set holding ``keys`` (repeats allowed)."""
        return cls.of_sorted(np.unique(np.asarray(keys, dtype=np.uint64)))

    @classmethod
    def of_sorted(cls, keys: np.ndarray) -> FingerprintSet:
        """A set holding ``keys``, already sorted and distinct (no copy, no sort)."""
        s = cls()
        if len(keys):
            s._runs = [np.asarray(keys, dtype=np.uint64)]
        return s

    def __len__(self) -> int:
        return sum(len(r) for r in self._runs)

    def members(self) -> np.ndarray:
        return np.concatenate([np.zeros(0, np.uint64), *self._runs])

    def __or__(self, other: FingerprintSet) -> FingerprintSet:
        out = FingerprintSet()
        out._runs = list(self._runs)  # runs are never changed in place, only replaced
        out.update(other.members())
        return out

    def __ior__(self, other: FingerprintSet) -> FingerprintSet:
        self.update(other.members())
        return self

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, FingerprintSet):
            return NotImplemented
        return np.array_equal(np.sort(self.members()), np.sort(other.members()))

    def union_size(self, other: FingerprintSet) -> int:
        """``len(self | other)``, without keeping a third set."""
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
        keys = keys[~self.contains(keys)]
        if len(keys):
            _merge_runs(self._runs, keys)

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
        if unseen.any():
            _merge_runs(self._runs, uniq[unseen])
        return new


class FingerprintMap:
    """Fingerprint -> small integer (a token count), 12 bytes per member, same layout as the set;
    with ``width``, -> a row of that many (one per tokenizer), 8 + 4 x ``width`` bytes.

    The scan keeps one for the whole corpus, so each distinct text is tokenized once however
    often it repeats (mined negatives recur across many rows). A key can be reserved before its
    value is known (``claim``) and given its value later (``assign``).

        >>> m = FingerprintMap()
        >>> m.claim(np.array([9, 4, 9], dtype=np.uint64)).tolist()
        [True, True, False]
        >>> m.assign(np.array([9, 4], dtype=np.uint64), np.array([30, 12]))
        >>> m.get(np.array([4, 9], dtype=np.uint64)).tolist()
        [12, 30]
        >>> rows = FingerprintMap(width=2)
        >>> rows.set_column(np.array([4, 9], dtype=np.uint64), np.array([12, 30]), column=1)
        >>> rows.get(np.array([9], dtype=np.uint64)).tolist() == [[FingerprintMap.UNKNOWN, 30]]
        True
    """

    UNKNOWN = np.uint32(0xFFFFFFFF)  # claimed, value not known yet

    def __init__(self, width: int | None = None) -> None:
        self._runs: list[tuple[np.ndarray, np.ndarray]] = []
        self.width = width
        self._row: tuple[int, ...] = () if width is None else (width,)

    def __len__(self) -> int:
        return sum(len(k) for k, _ in self._runs)

    def _locate(self, keys: np.ndarray) -> list[tuple[np.ndarray, np.ndarray]]:
        """For each run: (mask of keys found in it, their positions in it)."""
        out = []
        for run, _ in self._runs:
            pos = np.searchsorted(run, keys)
            pos[pos == len(run)] = 0
            hit = run[pos] == keys
            out.append((hit, pos[hit]))
        return out

    def claim(self, keys: np.ndarray, value: int | None = None) -> np.ndarray:
        """Reserve every key not present yet (with ``value``, or to be assigned later); True
        where this call reserved it (its first occurrence among ``keys``)."""
        return self.claim_known(keys, value)[0]

    def claim_known(self, keys: np.ndarray, value: int | None = None) -> tuple[np.ndarray, np.ndarray]:
        """:meth:`claim`, and from the same lookup the value each key holds now (``UNKNOWN`` for
        those just reserved, or not assigned yet)."""
        keys = np.asarray(keys, dtype=np.uint64)
        new = np.zeros(len(keys), dtype=bool)
        if len(keys) == 0:
            return new, np.full((0, *self._row), self.UNKNOWN, dtype=np.uint32)
        if bool((keys[1:] > keys[:-1]).all()):  # sorted and distinct already (a shard's texts)
            uniq, first, inverse = keys, np.arange(len(keys)), None
        else:
            uniq, first, inverse = np.unique(keys, return_index=True, return_inverse=True)
        present = np.zeros(len(uniq), dtype=bool)
        held = np.full((len(uniq), *self._row), self.UNKNOWN, dtype=np.uint32)
        for (hit, pos), (_, vals) in zip(self._locate(uniq), self._runs, strict=True):
            present |= hit
            held[hit] = vals[pos]
        new[first[~present]] = True
        fill = self.UNKNOWN if value is None else value
        self.put(uniq[~present], np.full((int((~present).sum()), *self._row), fill, dtype=np.uint32))
        return new, held if inverse is None else held[inverse.reshape(-1)]

    def put(self, keys: np.ndarray, values: np.ndarray) -> None:
        """Add keys that are not present yet, sorted and distinct, with their values."""
        if len(keys) == 0:
            return
        run, vals = np.asarray(keys, dtype=np.uint64), np.asarray(values, dtype=np.uint32)
        while self._runs and len(self._runs[-1][0]) <= MERGE * len(run):
            old_run, old_vals = self._runs.pop()
            merged = np.concatenate([old_run, run])
            order = np.argsort(merged, kind="stable")
            run, vals = merged[order], np.concatenate([old_vals, vals])[order]
        self._runs.append((run, vals))

    def assign(self, keys: np.ndarray, values: np.ndarray) -> None:
        """Set the values of claimed keys."""
        done = self._assign(np.asarray(keys, dtype=np.uint64), np.asarray(values, dtype=np.uint32))
        if not done.all():
            raise KeyError("assign() of a key that was never claimed")

    def _assign(self, keys: np.ndarray, values: np.ndarray, column: int | None = None) -> np.ndarray:
        """Set the values (or one column of them) of the keys present; which keys were. The
        newest run is searched first: keys are mostly assigned soon after they were added."""
        done = np.zeros(len(keys), dtype=bool)
        todo = np.arange(len(keys))
        for run, vals in reversed(self._runs):
            pos = np.searchsorted(run, keys[todo])
            pos[pos == len(run)] = 0
            hit = run[pos] == keys[todo]
            if column is None:
                vals[pos[hit]] = values[todo[hit]]
            else:
                vals[pos[hit], column] = values[todo[hit]]
            done[todo[hit]] = True
            todo = todo[~hit]
            if len(todo) == 0:
                break
        return done

    def set_column(self, keys: np.ndarray, values: np.ndarray, column: int) -> None:
        """Set one column of a map with ``width`` for distinct, sorted ``keys``; a key not
        present yet is added, ``UNKNOWN`` in the other columns."""
        keys, values = np.asarray(keys, dtype=np.uint64), np.asarray(values, dtype=np.uint32)
        new = ~self._assign(keys, values, column)
        if new.any():
            rows = np.full((int(new.sum()), *self._row), self.UNKNOWN, dtype=np.uint32)
            rows[:, column] = values[new]
            self.put(keys[new], rows)

    def get(self, keys: np.ndarray) -> np.ndarray:
        """The value of each key; ``UNKNOWN`` for keys claimed but not assigned, or absent."""
        keys = np.asarray(keys, dtype=np.uint64)
        # sorted lookups walk each run forward: far fewer cache misses (most callers sort already)
        order = None if len(keys) < 2 or bool((keys[1:] >= keys[:-1]).all()) else np.argsort(keys)
        found = np.full((len(keys), *self._row), self.UNKNOWN, dtype=np.uint32)
        for (hit, pos), (_, vals) in zip(
            self._locate(keys if order is None else keys[order]), self._runs, strict=True
        ):
            found[hit] = vals[pos]
        if order is None:
            return found
        values = np.empty_like(found)
        values[order] = found
        return values
