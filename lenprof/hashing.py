"""64-bit fingerprints of texts and rows, keyed per run, and a map from them kept in sorted arrays
at 12 bytes a member.

Python's ``dict`` costs ~100 bytes per member; a corpus of 50M rows would need 5 GB just to find
duplicate rows. Here members live in a few sorted ``uint64`` arrays whose sizes grow
geometrically (like an LSM tree): a new array merges into the newest while that one is at most
``MERGE`` times larger, so each member is re-sorted O(log n) times in total, and a lookup is one
``searchsorted`` per array. Memory is 8 bytes per member and 4 per value, twice that transiently
while arrays merge.

A fingerprint stands for its text: two texts that share one would share a count, a duplicate
verdict or a length. So every fingerprint is keyed with a secret drawn afresh for each run
(:class:`RunKey`), which no input can be built against, and is the same in every process of the
run that holds the key (a worker process, a Ray actor on another machine):

- strings (texts, the fast count's chunks, and rows as the fingerprints of their texts) by
  SipHash-2-4 under the run's 128-bit key (``siphashc``, a C implementation): a keyed
  pseudorandom function, so two strings chosen without the key share a fingerprint with
  probability about 2**-64 whatever their length;
- the fast count's words all at once with numpy: a short word by its own bytes, a longer one as
  polynomials modulo two primes in bases drawn for the run (``cuts.Words``).

Nothing depends on Python's own string hash or its seed.
"""

from __future__ import annotations

import hashlib
import secrets
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from functools import partial
from itertools import chain

import numpy as np
from siphashc import siphash

# A new run merges into the newest while that one is at most this many times larger: fewer,
# larger runs (each lookup visits every run) for a little more merging.
MERGE = 4


SPREAD = np.uint64(0x9E3779B97F4A7C15)  # odd: multiplying by it is one-to-one on 64-bit words
# The words' polynomials are taken modulo these primes: 31 and 32 bits, so both fit in 63 bits
# beside a flag, and a byte (< 2**7) times a power (< 2**32), summed over 64 bytes, stays exact.
PRIMES = (2**31 - 1, 2**32 - 5)


@dataclass(frozen=True)
class RunKey:
    """A run's secret, from which every keyed fingerprint of the run derives: the seed of its
    workers' string hash and the bases of the words' polynomials. Drawn with ``secrets`` for
    each run (``RunKey()``), shared by the run's workers, never written anywhere.

        >>> a, b = RunKey(b"k" * 16), RunKey(b"k" * 16)
        >>> a.bases == b.bases, a.bases == RunKey(b"j" * 16).bases, 1 < a.bases[0] < PRIMES[0]
        (True, False, True)
    """

    secret: bytes = field(default_factory=lambda: secrets.token_bytes(16), repr=False)

    def _derive(self, purpose: bytes, modulus: int) -> int:
        digest = hashlib.blake2b(purpose, key=self.secret, digest_size=16).digest()
        return int.from_bytes(digest, "little") % modulus

    def derive(self, purpose: bytes) -> bytes:
        """A 16-byte key of its own for ``purpose``, from the run's secret."""
        return hashlib.blake2b(purpose, key=self.secret, digest_size=16).digest()

    @property
    def bases(self) -> tuple[int, int]:
        """The words' polynomial bases, one per prime in ``PRIMES``: 2 to p - 1."""
        return tuple(2 + self._derive(b"words-base-%d" % i, p - 2) for i, p in enumerate(PRIMES))  # type: ignore[return-value]


PROCESS_KEY = RunKey()  # for what runs in this process alone


def fingerprints(texts: Iterable[str] | Sequence[str], key: RunKey) -> np.ndarray:
    """64-bit fingerprints of strings under the run's key: SipHash-2-4 of each string's UTF-8
    bytes, the same in every process that holds the key. A lone surrogate, which UTF-8 cannot
    hold, is written as its three bytes (``surrogatepass``), which no valid string's UTF-8 is.

        >>> key = RunKey(b"k" * 16)
        >>> texts = ["中", "-N", "a" + chr(0xD800)]
        >>> a = fingerprints(texts, key)
        >>> len(set(a.tolist())), bool((a == fingerprints(texts, key)).all())
        (3, True)
        >>> bool((a != fingerprints(texts, RunKey(b"j" * 16))).all())
        True
    """
    texts = texts if isinstance(texts, (list, tuple)) else list(texts)
    keyed = partial(siphash, key.secret)
    try:
        return np.fromiter(map(keyed, texts), dtype=np.uint64, count=len(texts))
    except UnicodeEncodeError:  # a lone surrogate somewhere: rare, so only then one by one
        raw = (t.encode("utf-8", "surrogatepass") for t in texts)
        return np.fromiter(map(keyed, raw), dtype=np.uint64, count=len(texts))


def row_fingerprints(rows: Sequence[tuple[str, ...]], key: RunKey) -> np.ndarray:
    """A fingerprint per row of texts: SipHash-2-4, under a key of its own, of the row's texts'
    fingerprints side by side (so rows of different sizes never meet, and two rows share one
    only if their texts do or with probability about 2**-64).

        >>> key = RunKey(b"k" * 16)
        >>> p = row_fingerprints([("q", "a"), ("q", "a"), ("qa",), ("q", "a", "")], key).tolist()
        >>> p[0] == p[1], len(set(p))
        (True, 3)
    """
    sizes = np.fromiter(map(len, rows), dtype=np.int64, count=len(rows))
    return rows_of_prints(fingerprints(list(chain.from_iterable(rows)), key), sizes, key)


def rows_of_prints(prints: np.ndarray, sizes: np.ndarray, key: RunKey) -> np.ndarray:
    """:func:`row_fingerprints` of rows whose texts' fingerprints are known: ``prints`` of every
    row's texts laid end to end, ``sizes`` texts a row."""
    raw = np.ascontiguousarray(prints, dtype=np.uint64).tobytes()
    ends = (np.cumsum(sizes) * 8).tolist()
    starts = [0, *ends[:-1]]
    keyed = partial(siphash, key.derive(b"rows"))
    return np.fromiter(map(keyed, map(raw.__getitem__, map(slice, starts, ends))), np.uint64, len(sizes))


def distinct(values: np.ndarray) -> np.ndarray:
    """``values`` sorted, each once: ``np.unique(values)`` without its import of numpy.ma (7 ms
    in each process), nor the places ``unique`` finds.

    >>> distinct(np.array([3, 1, 3])).tolist()
    [1, 3]
    """
    s = np.sort(values)
    return s[np.concatenate([[True], s[1:] != s[:-1]])] if len(s) else s


def unique(prints: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``np.unique(prints, return_index=True, return_inverse=True)``: the distinct fingerprints
    (or other values of a 1-D array) sorted, each one's first place and each one's place among
    them, by an unstable sort (a stable one, as ``np.unique`` takes for the first places, costs
    five times as much here; and ``np.unique`` imports numpy.ma, 7 ms in each process).

        >>> p = np.array([7, 3, 7, 9, 3], dtype=np.uint64)
        >>> [a.tolist() for a in unique(p)] == [a.tolist() for a in np.unique(p, return_index=True, return_inverse=True)]
        True
    """
    order = np.argsort(prints)
    ordered = prints[order]
    starts = np.empty(len(ordered), dtype=bool)
    starts[:1] = True
    np.not_equal(ordered[1:], ordered[:-1], out=starts[1:])
    at = np.flatnonzero(starts)
    inverse = np.empty(len(prints), dtype=np.intp)
    inverse[order] = np.cumsum(starts) - 1
    first = np.minimum.reduceat(order, at) if len(at) else np.zeros(0, dtype=np.intp)
    return ordered[at], first, inverse


class FingerprintMap:
    """Fingerprint -> small integer, 12 bytes per member; with ``width``, -> a row of that many
    (one per tokenizer), 8 + 4 x ``width`` bytes.

    The scan keeps one from each row's key to the shard that held it first (duplicate rows), and
    one that numbers each distinct text of the corpus (so each is tokenized once however often it
    repeats: mined negatives recur across many rows); the fast count keeps one per cut.

        >>> m = FingerprintMap()
        >>> m.claim(np.array([9, 4, 9], dtype=np.uint64), 7).tolist()
        [True, True, False]
        >>> m.get(np.array([4, 9, 5], dtype=np.uint64)).tolist() == [7, 7, FingerprintMap.UNKNOWN]
        True
        >>> rows = FingerprintMap(width=2)
        >>> rows.set(np.array([4, 9], dtype=np.uint64), np.array([[1, 12], [2, 30]]))
        >>> rows.set(np.array([9], dtype=np.uint64), np.array([[3, 31]]))
        >>> rows.get(np.array([9, 4], dtype=np.uint64)).tolist()
        [[3, 31], [1, 12]]
    """

    UNKNOWN = np.uint32(0xFFFFFFFF)  # no value (yet)

    def __init__(self, width: int | None = None) -> None:
        self._runs: list[tuple[np.ndarray, np.ndarray]] = []
        self._row: tuple[int, ...] = () if width is None else (width,)

    def __len__(self) -> int:
        return sum(len(k) for k, _ in self._runs)

    @property
    def nbytes(self) -> int:
        return sum(k.nbytes + v.nbytes for k, v in self._runs)

    def _locate(self, keys: np.ndarray) -> list[tuple[np.ndarray, np.ndarray]]:
        """For each run: (mask of keys found in it, their positions in it)."""
        out = []
        for run, _ in self._runs:
            pos = np.searchsorted(run, keys)
            pos[pos == len(run)] = 0
            hit = run[pos] == keys
            out.append((hit, pos[hit]))
        return out

    def claim(self, keys: np.ndarray, value: int) -> np.ndarray:
        """Give ``value`` to every key not present yet; True where this call added it (its first
        occurrence among ``keys``)."""
        keys = np.asarray(keys, dtype=np.uint64)
        new = np.zeros(len(keys), dtype=bool)
        if len(keys) == 0:
            return new
        uniq, first, _ = unique(keys)
        present = np.zeros(len(uniq), dtype=bool)
        for hit, _ in self._locate(uniq):
            present |= hit
        new[first[~present]] = True
        self.put(uniq[~present], np.full((int((~present).sum()), *self._row), value, dtype=np.uint32))
        return new

    def number(self, keys: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Each key's number, for sorted, distinct ``keys``: a key not present yet gets the next
        number (``len(self)`` on, in order). Returns (which keys are new, their numbers).

            >>> m = FingerprintMap()
            >>> [a.tolist() for a in m.number(np.array([4, 9], dtype=np.uint64))]
            [[True, True], [0, 1]]
            >>> [a.tolist() for a in m.number(np.array([2, 9], dtype=np.uint64))]
            [[True, False], [2, 1]]
        """
        keys = np.asarray(keys, dtype=np.uint64)
        numbers = self.get(keys)  # a number is below len(self), never UNKNOWN
        new = numbers == self.UNKNOWN
        numbers[new] = np.arange(len(self), len(self) + int(new.sum()))
        self.put(keys[new], numbers[new])
        return new, numbers

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

    def _assign(self, keys: np.ndarray, values: np.ndarray) -> np.ndarray:
        """Set the values of the keys present; which keys were. The newest run is searched
        first: keys are mostly set again soon after they were added."""
        done = np.zeros(len(keys), dtype=bool)
        todo = np.arange(len(keys))
        for run, vals in reversed(self._runs):
            pos = np.searchsorted(run, keys[todo])
            pos[pos == len(run)] = 0
            hit = run[pos] == keys[todo]
            vals[pos[hit]] = values[todo[hit]]
            done[todo[hit]] = True
            todo = todo[~hit]
            if len(todo) == 0:
                break
        return done

    def set(self, keys: np.ndarray, values: np.ndarray) -> None:
        """Set the values (rows, with ``width``) of distinct, sorted ``keys``; a key not present
        yet is added."""
        keys, values = np.asarray(keys, dtype=np.uint64), np.asarray(values, dtype=np.uint32)
        new = ~self._assign(keys, values)
        self.put(keys[new], values[new])

    def get(self, keys: np.ndarray) -> np.ndarray:
        """The value of each key; ``UNKNOWN`` for keys absent."""
        keys = np.asarray(keys, dtype=np.uint64)
        found = np.full((len(keys), *self._row), self.UNKNOWN, dtype=np.uint32)
        for (hit, pos), (_, vals) in zip(self._locate(keys), self._runs, strict=True):
            found[hit] = vals[pos]
        return found
