"""Token counts faster than the tokenizer runs, never different from what it would count.

A length profile needs only how many tokens a text has. For some tokenizers that count splits
exactly over the text's whitespace-separated chunks, and real corpora reuse few distinct
chunks, so each chunk is tokenized once and its count cached:

    count(text) = specials + sum(count(chunk) - specials for chunk in text.split())

When it holds (the proof, per family):

- BERT WordPiece, cased or uncased (``BertNormalizer``, ``BertPreTokenizer``, ``WordPiece``),
  for any text without control characters other than tab, newline and return:
  - the normalizer works one character at a time: it deletes control and format characters,
    turns every other whitespace character into a space, puts spaces around Chinese characters,
    and lower-cases and strips accents (canonical decomposition, NFD, never makes a space);
  - the pre-tokenizer splits at every whitespace character before anything else, then isolates
    punctuation inside each piece, and WordPiece encodes each word alone (a word over
    ``max_input_chars_per_word`` becomes [UNK] alone too);
  - added tokens match inside one chunk as long as none holds whitespace;
  - so the chunks are ``str.split()``'s: outside control characters Python splits at exactly
    the characters the normalizer turns into spaces (the control characters ``\x0b``, ``\x0c``,
    ``\x1c``-``\x1f`` and ``\x85``, which Python splits at and BERT deletes, are what the
    rule leaves out).

Texts a rule leaves out, and tokenizers no rule recognises, go through the full tokenizer.
Every run checks itself: the first 1,000 texts a worker counts this way and one in a hundred
after that are counted by the full tokenizer too, and any difference stops the fast path.

    >>> from lenprof import load_tokenizer
    >>> counter = FastCounter(load_tokenizer(None).backend)
    >>> counter.rule.family, counter.count(["Hello, world!", "hello world", "a\x0bb"]).tolist()
    ('bert-wordpiece', [6, 4, 3])
    >>> counter.texts, counter.fast  # the last text has a control character: the tokenizer counted it
    (3, 2)
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from itertools import chain
from typing import Any

import numpy as np

from .fingerprints import FingerprintMap, fingerprints
from .tokenize import count_tokens

# Outside the rule: control characters but tab, newline and return (BERT deletes them, and Python
# splits at some of them).
_UNSAFE = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f]")
# The characters BERT's normalizer puts spaces around (``handle_chinese_chars``; a test holds this
# list against the normalizer itself, code point by code point): padded here the same way, each
# is a chunk of its own, so Chinese and Japanese text reuses chunks as much as English does.
_CHINESE = re.compile(
    "([\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff\U00020000-\U0002a6df\U0002a700-\U0002b81f"
    "\U0002b920-\U0002ceaf\U0002f800-\U0002fa1f])"
)
CHECK_FIRST = 1000  # texts a counter checks against the full tokenizer before sampling
CHECK_EVERY = 100  # after that, one text in this many (chosen by the text's hash)
MAX_CACHED_CHUNKS = 8_000_000  # ~100 MB; a full cache starts afresh (time, never results)


@dataclass(frozen=True)
class Rule:
    """A tokenizer family whose counts split over whitespace-separated chunks of safe texts."""

    family: str
    specials: int  # tokens the post-processor adds around every text
    pad_chinese: bool = False  # the normalizer puts spaces around Chinese characters


def recognise(backend: Any) -> Rule | None:
    """The rule for this tokenizer's pipeline, or None when no proof covers it."""
    try:
        spec = json.loads(backend.to_str())
    except (ValueError, AttributeError):
        return None
    normalizer, pre, model, post = (
        spec.get(k) or {} for k in ("normalizer", "pre_tokenizer", "model", "post_processor")
    )
    if (
        model.get("type") == "WordPiece"
        and normalizer.get("type", "BertNormalizer") == "BertNormalizer"
        and pre.get("type") == "BertPreTokenizer"
        and post.get("type", "TemplateProcessing")
        in ("TemplateProcessing", "BertProcessing", "RobertaProcessing")
        and not spec.get("truncation")
        and not spec.get("padding")
        and not any(len(t.get("content", "").split()) != 1 for t in spec.get("added_tokens", []))
    ):
        return Rule(
            "bert-wordpiece",
            int(count_tokens(backend, [""])[0]),
            pad_chinese=bool(normalizer.get("handle_chinese_chars", True)) if normalizer else False,
        )
    return None


class _Split:
    """Safe texts cut into their chunks, with each distinct chunk's fingerprint: the part of a
    chunk count that does not depend on the vocabulary, done once for every tokenizer."""

    def __init__(self, texts: list[str], pad_chinese: bool):
        if pad_chinese:
            pad = _CHINESE.sub
            pieces = [(text if text.isascii() else pad(r" \1 ", text)).split() for text in texts]
        else:
            pieces = [text.split() for text in texts]
        self.sizes = np.fromiter(map(len, pieces), np.int64, len(pieces))
        self.flat = list(chain.from_iterable(pieces))
        self.prints, self.first, self.inverse = np.unique(
            fingerprints(self.flat), return_index=True, return_inverse=True
        )


class FastCounter:
    """Token counts: through the chunk cache for safe texts where a rule holds, else the
    tokenizer. ``mismatch`` says why the fast path stopped, if its self-check ever failed."""

    def __init__(self, backend: Any, exact_only: bool = False):
        self.backend = backend
        self.rule = None if exact_only else recognise(backend)
        self.cache = FingerprintMap()  # chunk -> its tokens, specials left out
        self.texts = self.fast = self.checked = 0
        self.mismatch: str | None = None

    @property
    def path(self) -> str:
        return f"chunks:{self.rule.family}" if self.rule and not self.mismatch else "tokenizer"

    def count(self, texts: list[str], splits: dict | None = None) -> np.ndarray:
        """Token counts of ``texts``. Counters of several tokenizers counting the same texts
        share ``splits`` (a dict, empty at first): the texts are cut into chunks once for all."""
        self.texts += len(texts)
        if self.rule is None or self.mismatch is not None:
            return count_tokens(self.backend, texts)
        unsafe = _UNSAFE.search
        fast = [i for i, t in enumerate(texts) if unsafe(t) is None]
        out = np.zeros(len(texts), dtype=np.int64)
        if len(fast) < len(texts):
            slow = np.ones(len(texts), dtype=bool)
            slow[fast] = False
            where = np.flatnonzero(slow)
            out[where] = count_tokens(self.backend, [texts[i] for i in where.tolist()])
        if fast:
            pad = self.rule.pad_chinese
            split = (splits or {}).get(pad)
            if split is None:
                split = _Split([texts[i] for i in fast], pad)
                if splits is not None:
                    splits[pad] = split
            out[fast] = self._chunked(split)
            self.fast += len(fast)
            self._check([texts[i] for i in fast], out[fast])
        return out

    def _chunked(self, split: _Split) -> np.ndarray:
        """Counts of safe texts: each distinct chunk is looked up by its fingerprint (12 bytes a
        chunk in sorted arrays, not a dict of strings), the new ones tokenized, and each text's
        chunks summed with numpy."""
        specials = self.rule.specials  # type: ignore[union-attr]
        sizes, flat, prints, first, inverse = (
            split.sizes,
            split.flat,
            split.prints,
            split.first,
            split.inverse,
        )
        if len(self.cache) > MAX_CACHED_CHUNKS:
            self.cache = FingerprintMap()
        counts = self.cache.get(prints).astype(np.int64)
        missing = np.flatnonzero(counts == FingerprintMap.UNKNOWN)
        if len(missing):
            counts[missing] = self._chunk_counts([flat[i] for i in first[missing].tolist()])
            self.cache.put(prints[missing], counts[missing])
        ends = np.cumsum(sizes)
        running = np.concatenate([[0], np.cumsum(counts[inverse])])
        return specials + running[ends] - running[ends - sizes]

    def _chunk_counts(self, chunks: list[str], per_text: int = 64) -> np.ndarray:
        """Tokens of each chunk, specials left out. Chunks go to the tokenizer joined by spaces,
        ``per_text`` at a time (a call per chunk would cost more than the chunk), and each token
        is given to the chunk its offset falls in."""
        counts = np.zeros(len(chunks), dtype=np.int64)
        texts, starts = [], []
        for i in range(0, len(chunks), per_text):
            group = chunks[i : i + per_text]
            texts.append(" ".join(group))
            starts.append(np.cumsum([0] + [len(c) + 1 for c in group[:-1]]))
        encodings = self.backend.encode_batch(texts, add_special_tokens=False)
        for g, (encoding, at) in enumerate(zip(encodings, starts, strict=True)):
            token_starts = np.array(encoding.offsets, dtype=np.int64).reshape(-1, 2)[:, 0]
            owner = np.searchsorted(at, token_starts, side="right") - 1
            counts[g * per_text : g * per_text + len(at)] = np.bincount(owner, minlength=len(at))
        return counts

    def _check(self, texts: list[str], counts: np.ndarray) -> None:
        """Count some of the texts the full way too; a difference stops the fast path."""
        head = max(0, CHECK_FIRST - self.checked)
        sample = list(range(min(head, len(texts))))
        sample += [i for i in range(len(sample), len(texts)) if hash(texts[i]) % CHECK_EVERY == 0]
        if not sample:
            return
        exact = count_tokens(self.backend, [texts[i] for i in sample])
        self.checked += len(sample)
        wrong = np.flatnonzero(exact != counts[sample])
        if len(wrong):
            i = sample[int(wrong[0])]
            self.mismatch = (
                f"the chunk count of {texts[i][:60]!r} was {int(counts[i])}, the tokenizer's "
                f"{int(exact[wrong[0]])}"
            )
