"""SentencePiece Unigram in XLM-R's layout (bge-m3, multilingual-e5): a text's count is the sum
of its Metaspace pieces' counts, each piece counted by the model alone (see the package's proof).

    "Hello  wörld ①" -> normalized "Hello▁wörld 1" -> pieces ["▁Hello", "▁wörld", "▁1"]

The normalizer is the tokenizer's own, run on the whole text (exact by construction: a text
holding no added token's text is one segment, normalized as one); the pieces are cut here, as
the Metaspace pre-tokenizer cuts them; a new piece is counted by the model alone
(``exact.model_counts``)."""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import dataclass
from itertools import chain
from typing import Any

import numpy as np

from lenprof.count.fast.cuts import Pieces, _decoded, ascii_prints
from lenprof.count.fast.precompiled import WHITESPACE, Normalizer
from lenprof.hashing import RunKey, fingerprints

SPACE = "\u2581"  # "▁": Metaspace's replacement, the only one the rule takes
_SPACES_BEFORE_SPACE = re.compile(f"[{re.escape(WHITESPACE)}]+(?={SPACE})")
_SPACES = re.compile(f"[{re.escape(WHITESPACE)}]+")
_SEPARATORS = re.compile("[\x1c-\x1f]")  # str.split() splits there, WhitespaceSplit does not


@dataclass(frozen=True)
class Metaspace:
    """How a Unigram tokenizer the rule takes cuts a text, and what sends a text to the
    tokenizer. Two rules that share one cut the same texts the same way."""

    normalizer: str  # a digest of the normalizer's JSON
    whitespace_split: bool  # a WhitespaceSplit before the Metaspace (transformers 5's XLM-R)
    written: re.Pattern | None  # what the added tokens match in the text as written
    normalized: re.Pattern | None  # and in the normalized text

    def bodies(self, normalized: str) -> list[str]:
        """The pre-tokenizer's pieces of a normalized text, each without the ``▁`` it starts
        with: spaces become ``▁`` (a WhitespaceSplit before it drops every run of whitespace,
        and a word that does not start with ``▁`` takes one), a ``▁`` is put first where the text
        has none, and a piece starts at each ``▁``. Most texts hold no ``▁``: then a piece is
        what lies between two spaces (or, after a WhitespaceSplit, a word of ``str.split()``,
        where the text holds no \x1c-\x1f: Python splits there, Rust does not).

            >>> Metaspace("", False, None, None).bodies("a  b▁c ")
            ['a', '', 'b', 'c', '']
            >>> Metaspace("", True, None, None).bodies(" a \u3000 ▁b\tc ")
            ['a', 'b', 'c']
        """
        if self.whitespace_split:
            if SPACE not in normalized and (
                normalized.isprintable() or _SEPARATORS.search(normalized) is None
            ):
                return normalized.split()
            spaced = _SPACES.sub(SPACE, _SPACES_BEFORE_SPACE.sub("", normalized.strip(WHITESPACE)))
        elif SPACE not in normalized:
            parts = normalized.split(" ")
            return parts[1:] if normalized[:1] == " " else parts if normalized else []
        else:
            spaced = normalized.replace(" ", SPACE)
        parts = spaced.split(SPACE)
        return parts[1:] if spaced[:1] == SPACE else parts if spaced else []

    def pieces(self, normalized: str) -> list[str]:
        """The pieces themselves (see ``bodies``)."""
        return [SPACE + body for body in self.bodies(normalized)]


def metaspace_of(backend: Any, spec: dict) -> Metaspace | None:
    """The cut for a SentencePiece Unigram tokenizer (``spec`` its JSON), or None where the
    proof does not cover it: a Unigram model with an unknown token (its vocabulary must hold
    one: the model fails on an unknown character without it), any normalizer (it runs as it
    is), the Metaspace pre-tokenizer (``▁``, a piece at each ``▁``, one put first: always, or
    first, the same for a text that no added token splits), alone or after a WhitespaceSplit
    (``always`` only: ``first`` there depends on where the first word was in the text as
    written), a template post-processor or none, and added tokens whose texts are not empty
    (nor normalized to nothing)."""
    model, pre, post = (spec.get(k) or {} for k in ("model", "pre_tokenizer", "post_processor"))
    if (
        model.get("type") != "Unigram"
        or model.get("unk_id") is None
        or post.get("type", "TemplateProcessing") != "TemplateProcessing"
        or spec.get("truncation")
        or spec.get("padding")
    ):
        return None
    if pre.get("type") == "Sequence" and [p.get("type") for p in pre["pretokenizers"]] == [
        "WhitespaceSplit",
        "Metaspace",
    ]:
        whitespace_split, pre = True, pre["pretokenizers"][1]
        if pre.get("prepend_scheme") != "always":
            return None
    else:
        whitespace_split = False
    if (
        pre.get("type") != "Metaspace"
        or pre.get("replacement") != SPACE
        or pre.get("prepend_scheme") not in ("always", "first")
        or not pre.get("split", True)
    ):
        return None
    normalize = backend.normalizer.normalize_str if backend.normalizer is not None else str
    written, normalized = [], []
    for token in spec.get("added_tokens") or []:
        content = token.get("content", "")
        if not content:
            return None
        written.append(content)  # a normalized one too: finding more only sends more to the tokenizer
        if token.get("normalized", True):
            if not normalize(content):
                return None  # it would split every text between its characters
            normalized.append(normalize(content))
    digest = hashlib.sha256(json.dumps(spec.get("normalizer"), sort_keys=True).encode()).hexdigest()
    return Metaspace(digest, whitespace_split, _literals(written), _literals(normalized))


def _literals(texts: list[str]) -> re.Pattern | None:
    return re.compile("|".join(map(re.escape, sorted(set(texts), key=len, reverse=True)))) if texts else None


def metaspace_pieces(
    texts: list[str], normalize: Normalizer, metaspace: Metaspace, key: RunKey
) -> list[tuple[np.ndarray, Pieces]]:
    """The texts the cut counts (positions in ``texts``) and their pieces, in two parts: ASCII
    texts (normalized), cut with numpy (:func:`_ascii_pieces`), and the others. It counts all but
    those that hold an added token's text (as written, or normalized) and those the normalizer
    fails on (a lone surrogate): the tokenizer counts those, or says why it cannot."""
    normalized = normalize(texts)
    written, in_normalized = metaspace.written, metaspace.normalized
    kept = [
        i
        for i, (text, norm) in enumerate(zip(texts, normalized, strict=True))
        if norm is not None
        and (written is None or written.search(text) is None)
        and (in_normalized is None or in_normalized.search(norm) is None)
    ]
    # ASCII but for the byte 0 (a piece's packed fingerprint needs none)
    plain = [i for i in kept if normalized[i].isascii() and "\x00" not in normalized[i]]  # type: ignore[union-attr]
    other = sorted(set(kept) - set(plain)) if len(plain) < len(kept) else []
    parts = []
    if plain:
        ascii_texts = [normalized[i] for i in plain]
        parts.append(
            (np.array(plain, dtype=np.int64), _ascii_pieces(ascii_texts, metaspace.whitespace_split, key))
        )
    if other:
        each = list(map(metaspace.bodies, (normalized[i] for i in other)))  # type: ignore[arg-type]
        owner = np.repeat(np.arange(len(other)), np.fromiter(map(len, each), np.int64, len(each)))
        bodies = list(chain.from_iterable(each))
        # a piece is known by its body: each holds one ▁, first
        pieces = Pieces(
            "metaspace",
            len(other),
            owner,
            _prints(bodies, key),
            lambda at: [SPACE + bodies[i] for i in at.tolist()],
        )
        parts.append((np.array(other, dtype=np.int64), pieces))
    return parts


def _prints(bodies: list[str], key: RunKey) -> np.ndarray:
    """The bodies' fingerprints: an ASCII one (no byte 0) as the ASCII cut's (the same body has
    the same, whichever text it is in), the others by their keyed hash."""
    plain = np.fromiter((b.isascii() and "\x00" not in b for b in bodies), bool, len(bodies))
    prints = np.zeros(len(bodies), dtype=np.uint64)
    at, rest = np.flatnonzero(plain), np.flatnonzero(~plain)
    if len(at):
        chosen = [bodies[i] for i in at.tolist()]
        ends = np.cumsum(np.fromiter(map(len, chosen), np.int64, len(chosen)))
        prints[at] = ascii_prints("".join(chosen).encode("ascii"), np.append(0, ends[:-1]), ends, key)
    if len(rest):
        prints[rest] = fingerprints([bodies[i] for i in rest.tolist()], key)
    return prints


_SPACE_BYTES = np.zeros(256, dtype=bool)
_SPACE_BYTES[[9, 10, 11, 12, 13, 32]] = True  # Rust's whitespace in ASCII (no \x1c-\x1f)


def _ascii_pieces(texts: list[str], whitespace_split: bool, key: RunKey) -> Pieces:
    """Normalized ASCII texts (no byte 0) cut into their pieces' bodies (``Metaspace.bodies``)
    a batch at a time with numpy, on the bytes, and fingerprinted as the words cut is
    (``cuts.ascii_prints``: a body is known by its bytes, not by a Python string):

    - after a WhitespaceSplit, each run of characters other than Rust's whitespace (the texts
      joined by newlines, which no run holds);
    - else what lies after each space until the next: a space is put before each text that does
      not start with one (an empty text has no pieces), and the texts are joined as they are.

        ["a  b", " c"] -> " a  b c" -> ["a", "", "b", "c"]
    """
    if whitespace_split:
        data = "\n".join(texts).encode("ascii")
        word = ~_SPACE_BYTES[np.frombuffer(data, np.uint8)]
        edge = word.copy()
        edge[1:] &= ~word[:-1]
        starts = np.flatnonzero(edge)
        edge[:] = word
        edge[:-1] &= ~word[1:]
        ends = np.flatnonzero(edge) + 1
        lengths = np.fromiter(map(len, texts), np.int64, len(texts)) + 1  # each with its newline
    else:
        heads = [" " if t[:1] not in ("", " ") else "" for t in texts]
        data = "".join(chain.from_iterable(zip(heads, texts, strict=True))).encode("ascii")
        spaces = np.flatnonzero(np.frombuffer(data, np.uint8) == 32)
        starts, ends = spaces + 1, np.append(spaces[1:], len(data))
        lengths = np.fromiter(map(len, texts), np.int64, len(texts)) + np.fromiter(map(len, heads), np.int64)
    text_at = np.cumsum(lengths) - lengths
    owner = np.searchsorted(text_at, starts if whitespace_split else starts - 1, side="right") - 1

    def strings(at: np.ndarray) -> list[str]:
        return [SPACE + body for body in _decoded(data, starts[at], ends[at])]

    return Pieces("metaspace", len(texts), owner, ascii_prints(data, starts, ends, key), strings)
