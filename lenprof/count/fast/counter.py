"""The fast counter: counts from cached pieces, each new piece through the tokenizer, every run self-checked."""

from __future__ import annotations

import functools
import re
import unicodedata
from typing import Any

import numpy as np

from lenprof.count.exact import count_tokens, encoded, model_counts, parts
from lenprof.count.fast import bytelevel
from lenprof.count.fast.cache import MAX_CACHED_CHUNKS, PieceCache
from lenprof.count.fast.chars import Characters
from lenprof.count.fast.cuts import Memo, Pieces, Words, whitespace_chunks
from lenprof.count.fast.precompiled import Normalizer
from lenprof.count.fast.rule import _UNSAFE, recognise
from lenprof.count.fast.unigram import metaspace_pieces
from lenprof.count.fast.wordpiece import WordPiece, wordpiece
from lenprof.hashing import PROCESS_KEY, FingerprintMap, RunKey, fingerprints

CHECK_FIRST = 1000  # a run's first texts, all checked against the full tokenizer before sampling
CHECK_EVERY = 100  # after that, one text in this many (chosen by the text's hash)
BATCH_CHARS = 1 << 20  # texts are cut this many characters at a time (~40 bytes each, at the peak)


class FastCounter:
    """Token counts: through the piece caches for safe texts where a rule holds, else the
    tokenizer. ``mismatch`` says why the fast path stopped, if its self-check ever failed."""

    def __init__(
        self,
        backend: Any,
        exact_only: bool = False,
        key: RunKey | None = None,
        cached: int = MAX_CACHED_CHUNKS,
    ):
        # the run's key (this process's, drawn as it started, by default): counters that count
        # together share it
        self.key = key if key is not None else PROCESS_KEY
        self.backend = backend
        self.rule = None if exact_only else recognise(backend)
        # what BERT's normalizer makes of each character (a text of those it maps takes the words cut)
        self.chars = Characters(backend) if self.rule and self.rule.family == "bert-wordpiece" else None
        self._wordpiece: WordPiece | None = None
        self._model: Any = None  # the tokenizer's model: what counts byte-level and Unigram pieces
        self._normalize: Normalizer | None = None  # what normalizes Unigram's texts
        # one cache per cut (their fingerprints differ), and this counter's column in it
        self.cached = cached  # pieces a cache holds at most
        self.caches = {"words": PieceCache(lowercase=bool(self.rule and self.rule.lowercase), most=cached)}
        self.caches |= {kind: PieceCache(most=cached) for kind in ("chunks", "pieces", "metaspace")}
        self.columns = dict.fromkeys(self.caches, 0)
        self.texts = self.fast = self.checked = 0
        self.mismatch: str | None = None

    @property
    def wordpiece(self) -> WordPiece:
        if self._wordpiece is None:
            self._wordpiece = wordpiece(self.backend.to_str())
        return self._wordpiece

    @property
    def model(self) -> Any:
        """The tokenizer's model, which counts byte-level and Unigram pieces (the one object)."""
        if self._model is None:
            self._model = self.backend.model
        return self._model

    def cuts(self) -> dict[str, tuple]:
        """Each cut this counter counts through (by kind), with what makes two counters' cuts
        alike (see ``Rule.cuts``): BERT's texts made ASCII (``mapped``) also by its characters'
        table, and so what is left to the chunks."""
        cuts = self.rule.cuts() if self.rule else {}
        if self.chars is not None:
            cuts["mapped"] = ("mapped", self.chars.key, self.rule.cut_key)  # type: ignore[union-attr]
            cuts["chunks"] = (*cuts["chunks"], self.chars.key)
        return cuts

    @property
    def path(self) -> str:
        return f"chunks:{self.rule.family}" if self.rule and not self.mismatch else "tokenizer"

    def count(self, texts: list[str], at: int | None = None) -> np.ndarray:
        """Token counts of ``texts`` (see :func:`count_together`)."""
        return count_together([self], texts, at)[0]

    def _count(self, texts: list[str], cuts: Memo, at: int) -> np.ndarray:
        rule = self.rule
        self.texts += len(texts)
        if rule is None or self.mismatch is not None:  # the self-check failed on an earlier part
            return count_tokens(self.backend, texts)
        if rule.family == "byte-level-bpe":
            return self._byte_level_count(texts, cuts, at)
        if rule.family == "sentencepiece-unigram":
            return self._unigram_count(texts, cuts, at)
        out = np.zeros(len(texts), dtype=np.int64)
        fast = np.zeros(len(texts), dtype=bool)
        lowercase = self.caches["words"].lowercase
        keys = self.cuts()
        ascii_, words = cuts.once(keys["words"], lambda: _ascii_words(texts, rule.added, self.key))
        if len(ascii_):
            counted = ascii_[~words.left_out]
            out[counted] = self._sums(words.view(lowercase))[~words.left_out]
            fast[counted] = True
        if self.chars is not None and len(ascii_) < len(texts):
            # the others made ASCII where their characters allow: their one-token characters
            # counted apart, the rest cut into words
            taken, ones, mapped = cuts.once(keys["mapped"], lambda: self._mapped(texts, ascii_))
            if len(taken):
                counted = ~mapped.left_out
                out[taken[counted]] = (self._sums(mapped.view(lowercase)) + ones)[counted]
                fast[taken[counted]] = True

        def rest_chunks() -> tuple[list[int], Pieces | None]:
            # the other texts, but those with a control character outside the rule
            rest = [i for i in np.flatnonzero(~fast).tolist() if _UNSAFE.search(texts[i]) is None]
            return rest, whitespace_chunks(
                [texts[i] for i in rest], rule.pad_chinese, self.key
            ) if rest else None

        rest, chunks = cuts.once(keys["chunks"], rest_chunks)
        if rest:
            out[rest] = self._sums(chunks)
            fast[rest] = True
        return self._rest_and_check(texts, out, fast, at, cuts)

    def _mapped(self, texts: list[str], ascii_: np.ndarray) -> tuple[np.ndarray, np.ndarray, Words]:
        """The texts but ``ascii_`` that the characters' table makes ASCII, their one-token
        characters, and the words cut of their ASCII forms."""
        assert self.chars is not None and self.rule is not None
        others = np.ones(len(texts), dtype=bool)
        others[ascii_] = False
        others = np.flatnonzero(others)
        which, ones, mapped = self.chars.to_ascii([texts[i] for i in others.tolist()])
        return others[which], ones, Words(mapped, self.rule.added, self.key)

    def _rest_and_check(
        self, texts: list[str], out: np.ndarray, fast: np.ndarray, at: int, cuts: Memo
    ) -> np.ndarray:
        """Count the texts ``fast`` leaves out with the tokenizer, and check some of the others
        against it (see ``_check``): those among the run's first ``CHECK_FIRST`` texts (``at``
        texts came before these), and one in ``CHECK_EVERY`` after that, chosen by its keyed fingerprint
        (the same texts for every counter that took the fast path for the same texts)."""
        slow = np.flatnonzero(~fast)
        if len(slow):
            out[slow] = count_tokens(self.backend, [texts[i] for i in slow.tolist()])
        chosen = np.flatnonzero(fast)
        self.fast += len(chosen)

        def sample_of() -> list[int]:
            head = int(np.searchsorted(chosen, CHECK_FIRST - at))
            later = chosen[head:]
            prints = fingerprints([texts[i] for i in later.tolist()], self.key)
            return chosen[:head].tolist() + later[prints % np.uint64(CHECK_EVERY) == 0].tolist()

        sample = cuts.once(("sample", fast.tobytes()), sample_of)
        if sample:
            self._check([texts[i] for i in sample], out[sample])
        return out

    def _byte_level_count(self, texts: list[str], cuts: Memo, at: int) -> np.ndarray:
        """Byte-level BPE: texts without an added token's text (that NFC leaves unchanged, where
        the normalizer is NFC) through their pieces, but those holding a character the cut
        refuses; the others through the tokenizer (an empty text too: the tokenizer puts no
        space before it)."""
        rule = self.rule
        assert rule is not None
        added = rule.added.search if rule.added is not None else (lambda t: None)
        normal = functools.partial(unicodedata.is_normalized, "NFC") if rule.nfc else bool
        fast = np.fromiter((t != "" and added(t) is None and normal(t) for t in texts), bool, len(texts))
        out = np.zeros(len(texts), dtype=np.int64)
        chosen = np.flatnonzero(fast)
        if len(chosen):
            left_out, pieces = cuts.once(
                rule.cuts()["pieces"],
                lambda: bytelevel.cut(
                    [texts[i] for i in chosen.tolist()], rule.split, rule.prefix_space, self.key
                ),
            )
            out[chosen] = self._sums(pieces)
            fast[chosen[left_out]] = False
        return self._rest_and_check(texts, out, fast, at, cuts)

    def _unigram_count(self, texts: list[str], cuts: Memo, at: int) -> np.ndarray:
        """SentencePiece Unigram: the texts that hold no added token's text through their
        Metaspace pieces (``unigram.py``), the others through the tokenizer."""
        rule = self.rule
        assert rule is not None and rule.metaspace is not None
        if self._normalize is None:
            self._normalize = Normalizer(self.backend)
        parts = cuts.once(
            rule.cuts()["metaspace"],
            lambda: metaspace_pieces(texts, self._normalize, rule.metaspace, self.key),
        )
        out = np.zeros(len(texts), dtype=np.int64)
        fast = np.zeros(len(texts), dtype=bool)
        for kept, pieces in parts:  # the ASCII texts, and the others
            out[kept], fast[kept] = self._sums(pieces), True
        return self._rest_and_check(texts, out, fast, at, cuts)

    def _sums(self, cut: Pieces) -> np.ndarray:
        """Each text's count from its pieces: each piece is looked up by its fingerprint (in the
        cache's hot table, then, for the distinct ones it misses, in its map: a few bytes a
        piece in sorted arrays, not a dict of strings), the new ones counted (and kept once
        every counter has counted the part: ``PieceCache.settle``), and each text's pieces
        summed with numpy."""
        cache, column = self.caches[cut.kind], self.columns[cut.kind]
        counts = cache.lookup(cut, column)
        cold = np.flatnonzero(counts == FingerprintMap.UNKNOWN)
        if len(cold):
            _, first, inverse, found = cache.distinct(cut, cold)
            missing = np.flatnonzero(found[:, column] == FingerprintMap.UNKNOWN)
            if len(missing):
                found[missing, column] = self._piece_counts(cut, first[missing])
            counts[cold] = found[inverse, column]
        return self.rule.specials + cut.sums(counts)  # type: ignore[union-attr]

    def _piece_counts(self, cut: Pieces, new: np.ndarray) -> np.ndarray:
        """Tokens of the cut's pieces at ``new`` (distinct ones), specials left out:
        - a word (ASCII, no added token's text, lower-cased where the normalizer lower-cases),
          by WordPiece's own rule (``WordPiece``): the normalizer would change nothing and the
          pre-tokenizer would keep it whole;
        - a byte-level piece, by the tokenizer's model, its bytes mapped to characters as the
          ByteLevel step maps them (``bytelevel.piece_counts``): as the tokenizer counts it;
        - a Metaspace piece (SentencePiece Unigram), by the tokenizer's model alone
          (``exact.model_counts``);
        - a chunk: an ASCII chunk is an ASCII text of its own, so it takes the words cut (most
          chunks of Chinese or accented texts are: names, options, numbers); the others go to
          the tokenizer (``_tokenized_chunks``)."""
        rule = self.rule
        assert rule is not None
        key = new.tobytes()
        pieces = cut.memo.once(("strings", key), lambda: cut.strings(new))
        if cut.kind == "words":
            if rule.lowercase and not cut.lowercase:  # ASCII: all the normalizer changes
                pieces = cut.memo.once(("lower", key), lambda: "\n".join(pieces).lower().split("\n"))
            return self.wordpiece.counts(pieces)
        if cut.kind == "metaspace":
            return model_counts(self.model, pieces)
        if cut.kind == "pieces":
            return bytelevel.piece_counts(self.model, pieces)
        counts = np.zeros(len(pieces), dtype=np.int64)
        ascii_, words = cut.memo.once(("words", key), lambda: _ascii_words(pieces, rule.added, self.key))
        counts[ascii_] = self._sums(words.view(self.caches["words"].lowercase)) - rule.specials
        rest = np.ones(len(pieces), dtype=bool)
        rest[ascii_[~words.left_out]] = False
        where = np.flatnonzero(rest)
        if len(where):
            counts[where] = self._tokenized_chunks([pieces[i] for i in where.tolist()])
        return counts

    def _tokenized_chunks(self, chunks: list[str], per_text: int = 64) -> np.ndarray:
        """Tokens of each chunk by the tokenizer: chunks joined by spaces, ``per_text`` at a time
        (a call per chunk would cost more than the chunk), each token given to the chunk its
        offset falls in."""
        counts = np.zeros(len(chunks), dtype=np.int64)
        lstrip = self.rule.lstrip if self.rule else ()
        groups = [chunks[i : i + per_text] for i in range(0, len(chunks), per_text)]
        encodings = encoded(
            lambda t: self.backend.encode_batch(t, add_special_tokens=False), [" ".join(g) for g in groups]
        )
        for g, (encoding, group) in enumerate(zip(encodings, groups, strict=True)):
            at = np.cumsum([0] + [len(c) + 1 for c in group[:-1]])
            spans = np.array(encoding.offsets, dtype=np.int64).reshape(-1, 2)  # (tokens, 2)
            where = spans[:, 0]  # a token is the chunk's it starts in
            if lstrip:  # but one that took the space before its chunk is the chunk's it ends in
                took = np.isin(np.array(encoding.ids), lstrip)
                where[took] = spans[took, 1] - 1
            owner = np.searchsorted(at, where, side="right") - 1
            counts[g * per_text : g * per_text + len(group)] = np.bincount(owner, minlength=len(group))
        return counts

    def _check(self, texts: list[str], counts: np.ndarray) -> None:
        """Count these texts the full way too; a difference stops the fast path."""
        exact = count_tokens(self.backend, texts)
        self.checked += len(texts)
        wrong = np.flatnonzero(exact != counts)
        if len(wrong):
            i = int(wrong[0])
            self.mismatch = (
                f"the chunk count of {texts[i][:60]!r} was {int(counts[i])}, the tokenizer's {int(exact[i])}"
            )


def _ascii_words(texts: list[str], added: re.Pattern | None, key: RunKey) -> tuple[np.ndarray, Words]:
    """The ASCII ones among ``texts`` (or chunks), and their words cut."""
    ascii_ = np.flatnonzero(np.fromiter(map(str.isascii, texts), bool, len(texts)))
    return ascii_, Words([texts[i] for i in ascii_.tolist()], added, key)


def count_together(counters: list[FastCounter], texts: list[str], at: int | None = None) -> np.ndarray:
    """(counters, texts): each counter's token counts of ``texts``, ``BATCH_CHARS`` characters
    at a time (a part's arrays stay some tens of MB). Each part is cut once for all the counters, and
    counted by each before the next part, so counters that share piece caches (see
    ``share_caches``) find there what the others counted. ``at`` is how many texts the run
    counted before these (the first counter's own count by default): the run's first
    ``CHECK_FIRST`` are all checked. The counters are the same run's: they share its key."""
    assert len({counter.key for counter in counters}) == 1, "counters counting together share a run key"
    at = counters[0].texts if at is None else at
    out = np.zeros((len(counters), len(texts)), dtype=np.int64)
    caches = {id(cache): cache for counter in counters for cache in counter.caches.values()}.values()
    for a, b in parts(texts, BATCH_CHARS):
        cuts = Memo()  # the part's cuts, by what makes two rules' cuts alike
        for k, counter in enumerate(counters):
            out[k, a:b] = counter._count(texts[a:b], cuts, at + a)
        for cache in caches:
            cache.settle()
    return out


def share_caches(counters: list[FastCounter]) -> None:
    """Counters of several tokenizers that count the same texts (see :func:`count_together`) and
    cut them alike share one piece cache per cut, a column each."""
    alike: dict[tuple, list[FastCounter]] = {}
    for counter in counters:
        for kind, key in counter.cuts().items():
            if kind in counter.caches:  # the mapped texts' words go in the words cache
                alike.setdefault(key, []).append(counter)
    for (kind, *_), members in alike.items():
        cache = PieceCache(
            len(members), all(c.rule.lowercase for c in members), min(c.cached for c in members)
        )  # type: ignore[union-attr]
        for column, counter in enumerate(members):
            counter.caches[kind], counter.columns[kind] = cache, column
