"""How the fast count cuts texts into pieces, a batch at a time, with each distinct piece's
fingerprint: BERT's words (ASCII texts, with numpy on the bytes), whitespace chunks (other
texts), and GPT-2's byte-level pieces. Why each cut is exact is the package's docstring."""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field
from itertools import chain
from typing import Any

import numpy as np

from ..fingerprints import SPREAD, fingerprints

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
# Words are fingerprinted as polynomials in one odd base modulo 2**64 (with the length mixed in),
# all at once from prefix sums; a word longer than this is fingerprinted by its string's hash.
_BASE = 0x5851F42D4C957F2D
_LONG_WORD = 64
# GPT-2's pre-tokenizer (tokenizers' ByteLevel with use_regex), for ASCII text: there \p{L} and
# \p{N} are the ASCII letters and digits, and \s is written out (Python's would take \x1c-\x1f).
_BYTE_LEVEL = re.compile(
    r"'s|'t|'re|'ve|'m|'ll|'d| ?[A-Za-z]+| ?[0-9]+| ?[^ \t\n\x0b\x0c\rA-Za-z0-9]+"
    r"|[ \t\n\x0b\x0c\r]+(?![^ \t\n\x0b\x0c\r])|[ \t\n\x0b\x0c\r]+"
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


class Words:
    """ASCII texts cut into BERT's pre-tokenizer pieces (see the package's proof), a batch at a
    time with numpy, and which texts the cut must not count (a control character, or an added
    token's text). The cut is the same for cased and uncased vocabularies, so tokenizers
    compared in one pass share it; each asks for its view of the pieces."""

    _powers = np.ones(1, dtype=np.uint64)  # _BASE ** i, and its inverse's, grown on demand
    _inverses = np.ones(1, dtype=np.uint64)

    def __init__(self, texts: list[str], added: re.Pattern | None):
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
        """Each piece's fingerprint: a polynomial in ``_BASE`` modulo 2**64 over its bytes, from
        the prefix sums of the whole batch, with its length mixed in."""
        codes = np.frombuffer(data, np.uint8)
        powers, inverses = self._tables(len(codes) + 1)
        starts, ends = self.starts, self.ends
        with np.errstate(over="ignore"):  # arithmetic modulo 2**64 is the point
            prefix = np.zeros(len(codes) + 1, dtype=np.uint64)
            np.cumsum(codes.astype(np.uint64) * powers[: len(codes)], out=prefix[1:])
            sizes = ends - starts
            prints = (prefix[ends] - prefix[starts]) * inverses[starts]
            prints ^= sizes.astype(np.uint64) * SPREAD
        long = np.flatnonzero(sizes > _LONG_WORD)  # a polynomial hash is weakest on long inputs
        if len(long):
            prints[long] = fingerprints(_decoded(data, starts[long], ends[long]))
        return prints

    @classmethod
    def _tables(cls, n: int) -> tuple[np.ndarray, np.ndarray]:
        if len(cls._powers) < n:
            size = max(n, 2 * len(cls._powers), 1 << 16)
            one = np.ones(1, dtype=np.uint64)
            with np.errstate(over="ignore"):
                cls._powers = np.concatenate([one, np.cumprod(np.full(size - 1, _BASE, dtype=np.uint64))])
                inverse = pow(_BASE, -1, 1 << 64)
                cls._inverses = np.concatenate([one, np.cumprod(np.full(size - 1, inverse, dtype=np.uint64))])
        return cls._powers, cls._inverses


def _decoded(data: bytes, starts: np.ndarray, ends: np.ndarray) -> list[str]:
    return [data[a:b].decode("ascii") for a, b in zip(starts.tolist(), ends.tolist(), strict=True)]


def byte_level(texts: list[str], prefix_space: bool) -> Pieces:
    """ASCII texts cut as GPT-2's pre-tokenizer cuts them (a space put first where the
    tokenizer puts one): byte-level BPE merges inside each piece alone, so a text's count is
    the sum of its pieces' (the byte-level BPE rule)."""
    find = _BYTE_LEVEL.findall
    if prefix_space:
        texts = [t if t.startswith(" ") else " " + t for t in texts]
    return _of_strings("pieces", [find(t) for t in texts])


def _spaced(match: re.Match) -> str:
    return f" {match.group()} "


def whitespace_chunks(texts: list[str], pad_chinese: bool) -> Pieces:
    """Texts cut into ``str.split()``'s chunks, Chinese characters spaced out first."""
    if pad_chinese:
        pad = _CHINESE.sub
        pieces = [(text if text.isascii() else pad(_spaced, text)).split() for text in texts]
    else:
        pieces = [text.split() for text in texts]
    return _of_strings("chunks", pieces)


def _of_strings(kind: str, pieces: list[list[str]]) -> Pieces:
    """Each text's pieces, as Python strings, fingerprinted by their string hash."""
    owner = np.repeat(np.arange(len(pieces)), np.fromiter(map(len, pieces), np.int64, len(pieces)))
    flat = list(chain.from_iterable(pieces))
    return Pieces(kind, len(pieces), owner, fingerprints(flat), lambda at: [flat[i] for i in at.tolist()])
