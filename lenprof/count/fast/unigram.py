"""SentencePiece Unigram in XLM-R's layout (bge-m3, multilingual-e5): a text's count is the sum
of its Metaspace pieces' counts, each piece counted by the model alone (see the package's proof).

    "Hello  wörld ①" -> normalized "Hello▁wörld 1" -> pieces ["▁Hello", "▁wörld", "▁1"]

The normalizer is the tokenizer's own, run on the whole text (exact by construction: a text
holding no added token's text is one segment, normalized as one); the pieces are cut here, as
the Metaspace pre-tokenizer cuts them; a new piece is counted by the model alone, many pieces a
call (:class:`ModelCount`)."""

from __future__ import annotations

import base64
import functools
import hashlib
import json
import re
from collections.abc import Callable
from dataclasses import dataclass
from itertools import chain
from typing import Any

import numpy as np

from lenprof.count.exact import encoded
from lenprof.count.fast.cuts import Pieces
from lenprof.hashing import RunKey, fingerprints

SPACE = "\u2581"  # "▁": Metaspace's replacement, the only one the rule takes
# Rust's char::is_whitespace (Unicode's White_Space), where WhitespaceSplit cuts (Python's
# str.split() also cuts at \x1c-\x1f; a test holds this list against the pre-tokenizer)
WHITESPACE = (
    "\t\n\x0b\x0c\r \x85\xa0\u1680"
    + "".join(map(chr, range(0x2000, 0x200B)))
    + "\u2028\u2029\u202f\u205f\u3000"
)
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
) -> tuple[np.ndarray, Pieces | None]:
    """The texts the cut counts (positions in ``texts``), and their pieces: all but those that
    hold an added token's text (as written, or normalized) and those the normalizer fails on (a
    lone surrogate): the tokenizer counts those, or says why it cannot."""
    normalized = normalize(texts)
    written, in_normalized = metaspace.written, metaspace.normalized
    kept = [
        i
        for i, (text, norm) in enumerate(zip(texts, normalized, strict=True))
        if norm is not None
        and (written is None or written.search(text) is None)
        and (in_normalized is None or in_normalized.search(norm) is None)
    ]
    if not kept:
        return np.zeros(0, dtype=np.int64), None
    each = list(map(metaspace.bodies, (normalized[i] for i in kept)))  # type: ignore[arg-type]
    owner = np.repeat(np.arange(len(kept)), np.fromiter(map(len, each), np.int64, len(each)))
    bodies = list(chain.from_iterable(each))
    # a piece is known by its body: each holds one ▁, first
    pieces = Pieces(
        "metaspace",
        len(kept),
        owner,
        fingerprints(bodies, key),
        lambda at: [SPACE + bodies[i] for i in at.tolist()],
    )
    return np.array(kept, dtype=np.int64), pieces


class Normalizer:
    """The tokenizer's normalizer over many texts (None for a text it fails on: a lone
    surrogate), run as it is on every text but ASCII ones without a return, where the
    normalizer starts with a precompiled map (``nmt_nfkc``'s): the map changes each grapheme
    cluster alone, and in ASCII every character is a cluster of its own but CR LF, so there it
    changes each character as it changes that character alone (asked of the map itself, for
    each, here); the steps after it are done here as the tokenizer does them (Strip at Rust's
    whitespace, Replace of a string, or of runs of spaces), or the text takes the normalizer
    too. Running the map costs most of a normalizer's time (1.7 s of 1.8 on 29 MB of English).

        ["Hello,\tworld  "] -> ["Hello, world"]   (nmt_nfkc: tab to space; Strip; runs of spaces)
    """

    def __init__(self, backend: Any):
        self.whole = backend.normalizer.normalize_str if backend.normalizer is not None else str
        self.changed: list[tuple[str, str]] | None = None  # ASCII the map changes: None, no ASCII way
        spec = json.loads(backend.to_str()).get("normalizer") or {}
        parts = spec.get("normalizers", []) if spec.get("type") == "Sequence" else [spec]
        steps = [_step(part) for part in parts[1:]]
        if not parts or parts[0].get("type") != "Precompiled" or None in steps:
            return
        from tokenizers.normalizers import Precompiled

        mapped = Precompiled(base64.b64decode(parts[0]["precompiled_charsmap"])).normalize_str
        changed = {c: mapped(c) for c in map(chr, range(128)) if c != "\r" and mapped(c) != c}
        if any(c in changed for out in changed.values() for c in out):
            return  # replaced one after the other, they would not be replaced at once
        self.changed, self.steps = list(changed.items()), steps
        self.printable_kept = not any(c.isprintable() for c in changed)

    def __call__(self, texts: list[str]) -> list[str | None]:
        out: list[str | None] = []
        whole, changed = self.whole, self.changed
        for text in texts:
            if changed is None or not text.isascii() or "\r" in text:
                try:
                    out.append(whole(text))
                except Exception:
                    out.append(None)
                continue
            if not (self.printable_kept and text.isprintable()):
                for c, to in changed:
                    if c in text:
                        text = text.replace(c, to)
            for step in self.steps:
                text = step(text)
            out.append(text)
        return out


def _step(spec: dict) -> Callable[[str], str] | None:
    """A normalizer after the precompiled map, as Python does it the same, or None."""
    kind, pattern, content = spec.get("type"), spec.get("pattern") or {}, spec.get("content", "")
    if kind == "Strip":  # at Rust's whitespace (str.strip() would also strip \x1c-\x1f)
        left, right = spec.get("strip_left", True), spec.get("strip_right", True)
        if left and right:
            return lambda s: s.strip(WHITESPACE)
        if left:
            return lambda s: s.lstrip(WHITESPACE)
        return (lambda s: s.rstrip(WHITESPACE)) if right else (lambda s: s)
    if kind == "Replace" and pattern.get("String"):
        return lambda s: s.replace(pattern["String"], content)
    if kind == "Replace" and pattern.get("Regex") == " {2,}":  # SentencePiece's extra spaces
        return functools.partial(_RUNS_OF_SPACES.sub, lambda _: content)  # content as it is, no \1
    return None


_RUNS_OF_SPACES = re.compile(" {2,}")


class ModelCount:
    """The model's count of each of many pieces, each as the model counts it alone: the
    tokenizer's own model (the same object: its scores are not read back from JSON, which could
    round them anew), with no normalizer, added tokens or post-processor, and a Metaspace that
    puts no ``▁`` first, encoding ``per_call`` pieces joined as one text. Every piece starts
    with ``▁`` and holds no other, so that Metaspace cuts the joined text into exactly those
    pieces, and the model counts each alone; a token's word is the piece it came from. One call
    per piece would cost more than the model's work on it."""

    def __init__(self, backend: Any, per_call: int = 64):
        from tokenizers import Tokenizer, pre_tokenizers

        self.tokenizer = Tokenizer(backend.model)
        self.tokenizer.pre_tokenizer = pre_tokenizers.Metaspace(SPACE, prepend_scheme="never", split=True)
        self.per_call = per_call

    def counts(self, pieces: list[str]) -> np.ndarray:
        n = self.per_call
        groups = [pieces[i : i + n] for i in range(0, len(pieces), n)]
        encodings = encoded(
            lambda t: self.tokenizer.encode_batch(t, add_special_tokens=False), ["".join(g) for g in groups]
        )
        out = np.zeros(len(pieces), dtype=np.int64)
        for g, (encoding, group) in enumerate(zip(encodings, groups, strict=True)):
            words = np.array(encoding.word_ids, dtype=np.int64)
            out[g * n : g * n + len(group)] = np.bincount(words, minlength=len(group))
        return out
