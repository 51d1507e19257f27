"""How the fast count cuts texts into pieces, a batch at a time, with each distinct piece's
fingerprint: BERT's words (ASCII texts, with numpy on the bytes) and whitespace chunks (other
texts); byte-level BPE's pieces are bytelevel.py's. Why each cut is exact is the package's
docstring."""

from __future__ import annotations

import functools
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from itertools import chain
from typing import Any

import numpy as np

from lenprof.hashing import PRIMES, RunKey, fingerprints

# The characters BERT's normalizer puts spaces around (``handle_chinese_chars``; a test holds this
# list against the normalizer itself, code point by code point): padded here the same way, each
# is a chunk of its own, so Chinese and Japanese text reuses chunks as much as English does.
_CHINESE = re.compile(
    "([\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff\U00020000-\U0002a6df\U0002a700-\U0002b81f"
    "\U0002b920-\U0002ceaf\U0002f800-\U0002fa1f])"
)
# An ASCII byte's class for the words cut: 0 whitespace, 1 letter or digit, 2 punctuation,
# 3 a control character outside the rule.
_SPACE, _ALNUM, _PUNCT, _CONTROL = range(4)
_CLASS = np.full(256, _CONTROL, dtype=np.uint8)
_CLASS[[9, 10, 13, 32]] = _SPACE
_CLASS[33:127] = _PUNCT
_CLASS[np.frombuffer(b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz", np.uint8)] = _ALNUM
_CLASS_OF = _CLASS.tobytes()  # for bytes.translate, which maps a batch's bytes at C speed
# A word of at most 8 bytes is its own fingerprint (its bytes, packed: no two share one); a
# longer one up to ``_LONG_WORD`` bytes takes a polynomial keyed for the run, and a longer one
# still its string's keyed hash (see ``Words._fingerprints``).
_PACKED = 8
_LONG_WORD = 64
_MASKS = np.array([(1 << 8 * n) - 1 for n in range(_PACKED + 1)], dtype=np.uint64)
_POLYNOMIAL = np.uint64(1 << 63)  # set in a polynomial's fingerprint, never in packed ASCII


@functools.lru_cache(maxsize=4)
def _powers(key: RunKey) -> np.ndarray:
    """For each prime of ``PRIMES`` (a row each), the run's base to the power of each place in a
    word, modulo the prime."""
    return np.array(
        [[pow(base, i, p) for i in range(_LONG_WORD)] for base, p in zip(key.bases, PRIMES, strict=True)],
        dtype=np.uint64,
    )


class Memo(dict):
    """What several counters derive from the same texts, made once: the first to ask makes it."""

    def once(self, key: object, make: Callable[[], Any]) -> Any:
        if key not in self:
            self[key] = make()
        return self[key]


@dataclass
class Pieces:
    """A batch of texts cut into pieces: each piece's fingerprint, the text it belongs to, and
    how to get pieces' texts."""

    kind: str  # "words", "chunks" or "pieces": the cuts' fingerprints differ, so each has its cache
    n: int  # texts
    owner: np.ndarray  # non-decreasing
    prints: np.ndarray
    strings: Callable[[np.ndarray], list[str]]  # positions of pieces -> those pieces
    lowercase: bool = False  # the pieces are lower-cased (words)
    # what counters sharing the cut derive from it (they look it up once, and mostly miss the
    # same pieces)
    memo: Memo = field(default_factory=Memo)

    def sums(self, values: np.ndarray) -> np.ndarray:
        """Each text's sum of its pieces' ``values``. A text's pieces are one run (``owner`` is
        non-decreasing), so this is ``np.add.reduceat`` over the runs of the texts that have
        pieces: ten times faster than a weighted ``np.bincount``, which sums in floats."""

        def runs() -> tuple[np.ndarray, np.ndarray]:
            firsts = np.searchsorted(self.owner, np.arange(self.n))
            sizes = np.diff(firsts, append=len(self.owner))
            return np.flatnonzero(sizes), firsts[sizes > 0]

        texts, firsts = self.memo.once("runs", runs)
        out = np.zeros(self.n, dtype=np.int64)
        if len(firsts):
            out[texts] = np.add.reduceat(values, firsts, dtype=np.int64)
        return out


class Words:
    """ASCII texts cut into BERT's pre-tokenizer pieces (see the package's proof), a batch at a
    time with numpy, and which texts the cut must not count (a control character, or an added
    token's text). The cut is the same for cased and uncased vocabularies, so tokenizers
    compared in one pass share it; each asks for its view of the pieces."""

    def __init__(self, texts: list[str], added: re.Pattern | None, key: RunKey):
        self.key = key
        joined = "\n".join(texts)
        self.data = joined.encode("ascii")
        kind = np.frombuffer(bytearray(self.data.translate(_CLASS_OF)), np.uint8)
        lengths = np.fromiter(map(len, texts), np.int64, len(texts))
        text_at = np.concatenate([[0], np.cumsum(lengths + 1)[:-1]])
        self.n = len(texts)
        self.left_out = np.zeros(self.n, dtype=bool)
        control = np.flatnonzero(kind == _CONTROL)
        if len(control):
            self.left_out[np.searchsorted(text_at, control, side="right") - 1] = True
            kind[control] = _SPACE
        if added is not None:
            hits = [m.start() for m in added.finditer(joined)]
            self.left_out[np.searchsorted(text_at, np.array(hits, dtype=np.int64), side="right") - 1] = True
        # a piece starts at a punctuation character, or a letter or digit after none; it ends
        # likewise (the batch begins and ends with no letter or digit around it)
        alnum, punct = kind == _ALNUM, kind == _PUNCT
        edge = alnum.copy()
        edge[1:] &= ~alnum[:-1]
        self.starts = np.flatnonzero(edge | punct)
        edge[:] = alnum
        edge[:-1] &= ~alnum[1:]
        self.ends = np.flatnonzero(edge | punct) + 1
        self.owner = np.searchsorted(text_at, self.starts, side="right") - 1
        self._views: dict[bool, Pieces] = {}

    def view(self, lowercase: bool) -> Pieces:
        """The pieces as written, or lower-cased (in ASCII all BERT's normalizer changes)."""
        if lowercase not in self._views:
            data = self.data.lower() if lowercase else self.data  # bytes.lower: A-Z only
            starts, ends = self.starts, self.ends  # not self: a cycle would outlive the batch

            def strings(at: np.ndarray) -> list[str]:
                return _decoded(data, starts[at], ends[at])

            prints = self._fingerprints(data)
            self._views[lowercase] = Pieces("words", self.n, self.owner, prints, strings, lowercase)
        return self._views[lowercase]

    def _fingerprints(self, data: bytes) -> np.ndarray:
        return ascii_prints(data, self.starts, self.ends, self.key)


def ascii_prints(data: bytes, starts: np.ndarray, ends: np.ndarray, key: RunKey) -> np.ndarray:
    """The fingerprint of each piece ``data[start:end]`` of ASCII bytes none of which is 0, for
    a whole batch at once:

    - a piece of at most ``_PACKED`` bytes: its bytes, read as one little-endian integer (an
      unaligned view of the batch, a gather and a mask), so two pieces never share one (an
      empty one is 0);
    - up to ``_LONG_WORD`` bytes: for each prime p of ``PRIMES``, the polynomial
      sum(byte_i * base**i) mod p over its bytes, in the run's secret bases
      (``RunKey.bases``), the top bit set. Two different such pieces are different
      polynomials of degree below 64 (no byte of a piece is 0, so lengths tell too), which
      vanish at fewer than 64 of the p bases: whatever the input, they share a fingerprint
      with probability below 64 / (2**31 - 1) * 64 / (2**32 - 5) < 2**-50 over the run's key;
    - longer: its keyed string fingerprint (``hashing.fingerprints``)."""
    codes = np.frombuffer(data, np.uint8)
    sizes = ends - starts
    # 8 bytes at each place, and at the end (where an empty piece may start)
    eight = np.ndarray((len(data) + 1,), "<u8", data + bytes(_PACKED + 1), strides=(1,))
    prints = eight[starts] & _MASKS[np.minimum(sizes, _PACKED)]
    long_ = np.flatnonzero((sizes > _PACKED) & (sizes <= _LONG_WORD))
    if len(long_):
        lengths, first = sizes[long_], starts[long_]
        at = np.cumsum(lengths) - lengths  # each long piece's first place among their bytes
        place = np.arange(int(lengths.sum())) - np.repeat(at, lengths)  # in its piece: 0 to 63
        picked = codes[np.repeat(first, lengths) + place]
        powers = _powers(key)
        lanes = []
        for row, p in enumerate(PRIMES):
            # bytes below 2**7 times powers below 2**32, 64 at most: sums below 2**45
            terms = picked * powers[row].take(place)
            lanes.append(np.add.reduceat(terms, at) % np.uint64(p))
        prints[long_] = _POLYNOMIAL | (lanes[0] << np.uint64(32)) | lanes[1]
    other = np.flatnonzero(sizes > _LONG_WORD)
    if len(other):
        prints[other] = fingerprints(_decoded(data, starts[other], ends[other]), key)
    return prints


def _decoded(data: bytes, starts: np.ndarray, ends: np.ndarray) -> list[str]:
    return [data[a:b].decode("ascii") for a, b in zip(starts.tolist(), ends.tolist(), strict=True)]


def _spaced(match: re.Match) -> str:
    return f" {match.group()} "


def whitespace_chunks(texts: list[str], pad_chinese: bool, key: RunKey) -> Pieces:
    """Texts cut into ``str.split()``'s chunks, Chinese characters spaced out first."""
    if pad_chinese:
        pad = _CHINESE.sub
        pieces = [(text if text.isascii() else pad(_spaced, text)).split() for text in texts]
    else:
        pieces = [text.split() for text in texts]
    return _of_strings("chunks", pieces, key)


def _of_strings(kind: str, pieces: list[list[str]], key: RunKey) -> Pieces:
    """Each text's pieces, as Python strings, fingerprinted under the run's key."""
    owner = np.repeat(np.arange(len(pieces)), np.fromiter(map(len, pieces), np.int64, len(pieces)))
    flat = list(chain.from_iterable(pieces))
    return Pieces(
        kind, len(pieces), owner, fingerprints(flat, key), lambda at: [flat[i] for i in at.tolist()]
    )
