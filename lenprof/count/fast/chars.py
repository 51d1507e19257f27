"""BERT's texts made ASCII, a character at a time: each non-ASCII character is what the
tokenizer's own normalizer makes of it, learnt the first time it is met (see :class:`Characters`,
and the package's proof). A Chinese or Japanese text then takes the words cut like an English
one, its one-token characters (Chinese characters, CJK punctuation) counted apart:

    >>> from lenprof import load_tokenizer
    >>> chars = Characters(load_tokenizer(None).backend)  # uncased: accents stripped
    >>> which, ones, ascii_ = chars.to_ascii(['在外部 "path" 值。', "café", "cafe\u0301\u3000ok"])
    >>> which.tolist(), ones.tolist(), ascii_  # "é" is left to the chunks; a combining mark is gone
    ([0, 2], [5, 0], ['    "path"   ', 'cafe ok'])
"""

from __future__ import annotations

import functools
import json
from typing import Any

import numpy as np

# What the table holds for a character besides the ASCII character it stands for (below 128: itself,
# or a space for whitespace):
ONE = 128  # a token by itself wherever it stands (a Chinese character, CJK punctuation): a space
GONE = 129  # the normalizer deletes it (a combining mark where accents are stripped, zero-width)
OTHER = 130  # anything else: a text holding one is left to the chunks
UNKNOWN = 255  # not met yet
_SEPARATOR = "|"  # ASCII punctuation that the normalizer keeps: characters are normalized side by side


class Characters:
    """What one BERT tokenizer's normalizer makes of each character, a table over code points:

    - a space: whitespace (``\\u3000``, ``\\xa0``), which the normalizer turns into a space;
    - ``GONE``: deleted (``\\u0301`` where accents are stripped, ``\\u200b``);
    - ``ONE``: one token by itself, whatever is around it: the normalizer puts spaces around it (a
      Chinese character), or it stays one character that the pre-tokenizer cuts out of any text
      (punctuation: ``，`` cut out of ``a，a``);
    - ``OTHER``: anything else (``é``, ``ß``, ``ﬁ``, emoji, a control character: letters the
      normalizer maps to ASCII are left to the chunks too, where the corpora hold too few of them
      to pay for the words cut, see docs/fastcount.md), and every character
      an added token holds (as written or normalized: its texts take the chunks, where the
      tokenizer matches it), and where a token keeps to whole words every one-token character
      but the spaced ones (a space beside a token is no word character; punctuation may be).

    ``key`` is what makes two tokenizers' tables alike (their texts map alike)."""

    def __init__(self, backend: Any):
        self.normalize = backend.normalizer.normalize_str if backend.normalizer is not None else str
        self.pre_tokenize = backend.pre_tokenizer.pre_tokenize_str
        tokens = backend.get_added_tokens_decoder().values()
        texts = [t.content for t in tokens]
        self.banned = {
            c for text in texts + [self.normalize(t) for t in texts] for c in text if not c.isascii()
        }
        self.single_word = any(t.single_word for t in tokens)
        self.key = json.dumps(
            [
                *(
                    json.loads(part.__getstate__()) if part else None
                    for part in (backend.normalizer, backend.pre_tokenizer)
                ),
                sorted(self.banned),
                self.single_word,
            ]
        )
        self.table = _table(self.key)  # shared by the counters whose tables are alike

    def learn(self, codes: list[int]) -> None:
        """Put these code points (non-ASCII, not met yet) in the table, each as the normalizer
        makes it (normalized side by side, between separators; one at a time where a character
        would make a separator of its own), one-token ones as the pre-tokenizer cuts them."""
        chars = list(map(chr, codes))
        outs = self.normalize(_SEPARATOR.join(chars)).split(_SEPARATOR)
        if len(outs) != len(chars):
            outs = list(map(self.normalize, chars))
        kinds = [self._kind(c, n) for c, n in zip(chars, outs, strict=True)]
        # a one-character output is one token where the pre-tokenizer cuts it out of "a_a"
        alone = [i for i, k in enumerate(kinds) if k == UNKNOWN]
        if alone:
            probe = "a" + "a".join(outs[i] for i in alone) + "a"
            cut = {span for _, span in self.pre_tokenize(probe)}
            for j, i in enumerate(alone):
                kinds[i] = ONE if (2 * j + 1, 2 * j + 2) in cut and not self.single_word else OTHER
        self.table[codes] = kinds

    def _kind(self, c: str, out: str) -> int:
        if c in self.banned:
            return OTHER
        if out == "":
            return GONE
        if out == " ":
            return ord(" ")  # whitespace
        if out in self.banned or out.strip() in self.banned:
            return OTHER
        if len(out) == 3 and out[0] == out[2] == " " and not out[1].isspace():
            return ONE  # spaced out: a word of one character
        return UNKNOWN if len(out) == 1 and not out.isspace() else OTHER

    def _values(self, texts: list[str]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """The texts' code points side by side, their entries (new ones learnt first), and where
        each text starts among them (one more: where the last ends)."""
        bounds = np.zeros(len(texts) + 1, dtype=np.int64)
        np.cumsum(np.fromiter(map(len, texts), np.int64, len(texts)), out=bounds[1:])
        codes = np.frombuffer("".join(texts).encode("utf-32-le", "surrogatepass"), np.uint32)
        values = self.table[codes]
        unknown = values == UNKNOWN
        if unknown.any():
            met = np.zeros(len(self.table), dtype=bool)  # not np.unique: no sort of a batch's codes
            met[codes[unknown]] = True
            self.learn(np.flatnonzero(met).tolist())
            values = self.table[codes]
        return codes, values, bounds

    def to_ascii(self, texts: list[str]) -> tuple[np.ndarray, np.ndarray, list[str]]:
        """(which, ones, ascii): the texts that hold no ``OTHER`` character, how many one-token
        characters each holds, and each as an ASCII text: its characters as the normalizer
        makes them, a space for each one-token character. A batch at once, with numpy."""
        _, values, bounds = self._values(texts)
        which = np.flatnonzero(_per_text(values == OTHER, bounds) == 0)
        one = values == ONE
        kept = values != GONE
        values[one | (values == OTHER)] = ord(" ")  # the others' are never read
        data = values[kept].tobytes().decode("ascii")
        at = np.zeros_like(bounds)
        np.cumsum(_per_text(kept, bounds), out=at[1:])
        starts, ends = at[which].tolist(), at[which + 1].tolist()
        return which, _per_text(one, bounds)[which], [data[a:b] for a, b in zip(starts, ends, strict=True)]


def _per_text(marks: np.ndarray, bounds: np.ndarray) -> np.ndarray:
    """How many of each text's characters are marked (``bounds``: where each starts, and the end)."""
    before = np.zeros(len(marks) + 1, dtype=np.int64)
    np.cumsum(marks, out=before[1:])
    return before[bounds[1:]] - before[bounds[:-1]]


@functools.lru_cache(maxsize=16)
def _table(key: str) -> np.ndarray:
    """A table of code points, nothing learnt yet but the ASCII characters (themselves) and
    the control characters and surrogates (``OTHER``)."""
    table = np.full(0x110000, UNKNOWN, np.uint8)
    table[:128] = np.arange(128)
    table[0x80:0xA0] = OTHER  # control characters: outside the rule
    table[0xD800:0xE000] = OTHER  # surrogates
    return table
