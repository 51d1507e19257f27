"""Which tokenizers the fast count can prove exact for (:func:`recognise`), and the rule it counts by."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from lenprof.count.exact import count_tokens
from lenprof.count.fast.bytelevel import pipeline
from lenprof.count.fast.cuts import _CHINESE, _spaced
from lenprof.count.fast.unigram import Metaspace, metaspace_of
from lenprof.count.spec import member, tokenizer_spec

# Outside the rule: control characters but tab, newline and return (BERT deletes them, and Python
# splits at some of them).
_UNSAFE = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f]")


@dataclass(frozen=True)
class Rule:
    """A tokenizer family whose counts split over the pieces of safe texts."""

    family: str
    specials: int  # tokens the post-processor adds around every text
    pad_chinese: bool = False  # the normalizer puts spaces around Chinese characters
    lowercase: bool = False  # the normalizer lower-cases
    prefix_space: bool = False  # the pre-tokenizer puts a space before a text that has none
    added: re.Pattern | None = None  # what the added tokens match (any case): such texts are no words
    # added tokens that take the spaces before them (lstrip): among chunks joined by spaces, such
    # a token starts in the space before its chunk, so it is its chunk's where it ends
    lstrip: tuple[int, ...] = ()
    split: str = "gpt2"  # byte-level BPE: the split regex ("gpt2" or "qwen2", bytelevel.SPLITS)
    nfc: bool = False  # byte-level BPE: the normalizer is NFC (only texts it leaves unchanged are cut)
    metaspace: Metaspace | None = None  # SentencePiece Unigram: its cut (and what its added tokens match)

    @property
    def cut_key(self) -> str | None:
        """Tokenizers whose rules share this cut the same texts the same way."""
        return self.added.pattern if self.added else None

    def cuts(self) -> dict[str, tuple]:
        """Each cut this rule counts through (by kind), with what makes two rules' cuts alike:
        counters whose cuts are alike cut each batch once and share its piece cache."""
        if self.family == "byte-level-bpe":
            return {"pieces": ("pieces", self.split, self.nfc, self.prefix_space, self.cut_key)}
        if self.family == "sentencepiece-unigram":
            return {"metaspace": ("metaspace", self.metaspace)}
        return {"words": ("words", self.cut_key), "chunks": ("chunks", self.pad_chinese, self.cut_key)}


def recognise(backend: Any) -> Rule | None:
    """The rule for this tokenizer's pipeline, or None when no proof covers it."""
    try:
        spec = tokenizer_spec(backend.to_str())
    except (ValueError, AttributeError):
        return None
    normalizer, pre, model, post = (
        spec.get(k) or {} for k in ("normalizer", "pre_tokenizer", "model", "post_processor")
    )
    tokens = spec.get("added_tokens") or []
    if (
        model.get("type") == "WordPiece"
        and normalizer.get("type", "BertNormalizer") == "BertNormalizer"
        and pre.get("type") == "BertPreTokenizer"
        and post.get("type", "TemplateProcessing")
        in ("TemplateProcessing", "BertProcessing", "RobertaProcessing")
        and not spec.get("truncation")
        and not spec.get("padding")
        and model.get("unk_token") in (member(model, "vocab") or {})
    ):
        pad_chinese = bool(normalizer.get("handle_chinese_chars", True)) if normalizer else False
        matched = _matched(backend, tokens, "bert-wordpiece", pad_chinese=pad_chinese)
        if matched is None:
            return None
        return Rule(
            "bert-wordpiece",
            int(count_tokens(backend, [""])[0]),
            pad_chinese=pad_chinese,
            lowercase=bool(normalizer.get("lowercase", True)) if normalizer else False,
            added=_any_case(matched),
            lstrip=tuple(t["id"] for t in tokens if t.get("lstrip")),
        )
    level = pipeline(normalizer, pre) if model.get("type") == "BPE" else None
    if (
        level is not None
        and not model.get("dropout")
        and post.get("type", "ByteLevel") in ("ByteLevel", "RobertaProcessing", "TemplateProcessing")
        and not spec.get("truncation")
        and not spec.get("padding")
    ):
        split, prefix_space, nfc = level
        matched = _matched(backend, tokens, "byte-level-bpe")
        if matched is None:
            return None
        x = (len(backend.encode(t, add_special_tokens=s).ids) for t, s in (("x", True), ("x", False)))
        return Rule(
            "byte-level-bpe",
            next(x) - next(x),
            prefix_space=prefix_space,
            added=_any_case(matched),
            split=split,
            nfc=nfc,
        )
    if model.get("type") == "Unigram":
        metaspace = metaspace_of(backend, spec)
        if metaspace is None:
            return None
        return Rule("sentencepiece-unigram", int(count_tokens(backend, [""])[0]), metaspace=metaspace)
    return None


def _matched(backend: Any, tokens: list[dict], family: str, pad_chinese: bool = False) -> list[str] | None:
    """What the added tokens match, as ``tokenizers`` matches them: a normalized token (the
    default for ``add_tokens``) its text normalized by the tokenizer's own normalizer, in the
    normalized text; any other its text as written, in the text itself. None where the rule
    cannot prove its count with one of them (the package's proof says why each is refused)::

        Schrödinger (normalized, uncased BERT) -> schrodinger
        [CLS] (special, not normalized) -> [CLS]
        New York (normalized) -> None: chunks would cut it
    """
    normalize = backend.normalizer.normalize_str if backend.normalizer is not None else str
    matched = {}  # token id -> what it matches
    for token in tokens:
        content = token.get("content", "")
        normalized = bool(token.get("normalized", True))
        text = normalize(content) if normalized else content
        if family == "bert-wordpiece":
            spaced = normalized and pad_chinese and len(text) == 3 and text[::2] == "  "
            if spaced and _CHINESE.match(text[1]):
                text = text[1]  # a Chinese character, with the spaces the normalizer put around it
            # whole in one chunk: no whitespace, and a Chinese character only alone (the cut
            # spaces them out as the normalizer does)
            if (_CHINESE.sub(_spaced, text) if pad_chinese else text).split() != [text]:
                return None
            if token.get("lstrip") and token.get("rstrip") and normalized:
                return None  # the spaces it takes may be a neighbour's (a Chinese one's, spaced)
            if token.get("single_word") and not normalized and pad_chinese:
                return None  # next to a Chinese character it is no word; in its own chunk it is
        elif not text:
            return None
        matched[token["id"]] = text
    # and the tokenizer agrees: each token's text encodes to that token (or one matching the same)
    encodings = backend.encode_batch([t["content"] for t in tokens], add_special_tokens=False)
    for token, encoding in zip(tokens, encodings, strict=True):
        if len(encoding.ids) != 1 or matched.get(encoding.ids[0]) != matched[token["id"]]:
            return None
    return list(dict.fromkeys(matched.values()))


def _any_case(texts: list[str]) -> re.Pattern | None:
    """A pattern that finds any of ``texts`` in any case (finding more than the tokenizer
    matches only sends more texts to it)."""
    return re.compile("|".join(map(re.escape, texts)), re.IGNORECASE) if texts else None
