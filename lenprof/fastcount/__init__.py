"""Token counts faster than the tokenizer runs, never different from what it would count.

A length profile needs only how many tokens a text has. For some tokenizers that count splits
exactly over pieces of the text that a cheap cut finds, and real corpora reuse few distinct
pieces, so each piece is tokenized once and its count cached:

    count(text) = specials + sum(count(piece) - specials for piece in pieces(text))

When it holds (the proof, per family):

- BERT WordPiece, cased or uncased (``BertNormalizer``, ``BertPreTokenizer``, ``WordPiece``),
  for any text without control characters other than tab, newline and return:
  - the normalizer works one character at a time: it deletes control and format characters,
    turns every other whitespace character into a space, puts spaces around Chinese characters,
    and lower-cases and strips accents (canonical decomposition, NFD, never makes a space);
  - the pre-tokenizer splits at every whitespace character before anything else, then isolates
    each punctuation character inside each piece, and WordPiece encodes each word alone (a word
    over ``max_input_chars_per_word`` becomes [UNK] alone too);
  - added tokens match inside one chunk (below).
  Two cuts follow:
  - *words*, for ASCII texts that hold nothing an added token matches: the pre-tokenizer's own
    pieces, runs of letters and digits and single punctuation characters (in ASCII, every
    printable character that is no letter, digit or space is punctuation to BERT), lower-cased
    first when the normalizer lower-cases (in ASCII that is all it changes). These are cut and
    fingerprinted for a whole batch at once with numpy, on the bytes;
  - *chunks*, for every other text: ``str.split()``'s, after spacing out Chinese characters as
    the normalizer does. Outside control characters Python splits at exactly the characters
    the normalizer turns into spaces (the control characters ``\x0b``, ``\x0c``,
    ``\x1c``-``\x1f`` and ``\x85``, which Python splits at and BERT deletes, are what the rule
    leaves out).

- Byte-level BPE (GPT-2, RoBERTa: no normalizer, ``ByteLevel`` pre-tokenizer with its regex,
  ``BPE`` without dropout), for ASCII texts that hold nothing an added token matches:
  - the pre-tokenizer puts a space first where the tokenizer says so, cuts the text with
    GPT-2's regex (contractions, runs of letters, of digits or of other characters each with
    one space before, runs of whitespace), maps each piece's bytes to characters, and BPE
    merges inside each piece alone;
  - so the pieces are that regex's, written out for ASCII (``\\p{L}`` and ``\\p{N}`` are the
    ASCII letters and digits, ``\\s`` is space, tab, newline, ``\x0b``, ``\x0c`` and return),
    and a piece counted by itself (no space put before it, no specials) counts as inside its
    text: cut alone, a piece is cut into itself.

Added tokens are matched before anything else: one that is not normalized (special tokens, by
default) in the text as written, a normalized one (``add_tokens``' default) in the normalized
text, by its own text normalized by the tokenizer's normalizer (``Schrödinger`` as
``schrodinger`` in uncased BERT); each may keep to whole words (single_word) and take the
spaces before or after it (lstrip, rstrip). A rule finds what each matches in any case (finding
more only sends more texts to the tokenizer) and leaves the texts that hold any to the
tokenizer (BERT: their chunks):
- in an ASCII text, BERT's normalized text is the text lower-cased where the normalizer
  lower-cases, whitespace turned into spaces: a normalized token matches there only where its
  normalized text is found in any case;
- BERT counts such chunks with the tokenizer, joined by spaces. What a token matches lies in
  one chunk where it holds no whitespace and a Chinese character only alone (chunks end at
  whitespace, or at spaces in the normalized text). single_word sees the same neighbours there
  as in the text, but for a Chinese character next to a token matched as written (a word
  character, where the chunk ends). The spaces lstrip and rstrip take count no token, and a
  token that took the space before its chunk counts where it ends. Refused: a normalized token
  that takes spaces on both sides (it may take a neighbour's, put around a Chinese character),
  and one whose normalized text is empty (it splits every text between its characters);
- byte-level BPE: a text that holds none is one split whatever the tokens' options, and its
  pieces hold none either, but for the space put first: a token whose text starts with a space
  is refused where a space is put first;
- each token's text must encode to that token (or one that matches the same): the tokenizer
  matches what the rule thinks it does.
A token a rule cannot take makes ``recognise`` refuse the tokenizer: it is counted exactly.

Texts a rule leaves out, and tokenizers no rule recognises, go through the full tokenizer.
Every run checks itself: the first 1,000 texts the run counts, where they take this way, and
one in a hundred after that are counted by the full tokenizer too, and any difference stops the
fast path.

    >>> from lenprof import load_tokenizer
    >>> counter = FastCounter(load_tokenizer(None).backend)
    >>> counter.rule.family, counter.count(["Hello, world!", "hello world", "a\x0bb", "中文"]).tolist()
    ('bert-wordpiece', [6, 4, 3, 4])
    >>> counter.texts, counter.fast  # the third has a control character: the tokenizer counted it
    (4, 3)
"""

from __future__ import annotations

import functools
import json
import re
from dataclasses import dataclass
from typing import Any

import numpy as np

from ..fingerprints import PROCESS_KEY, SPREAD, FingerprintMap, RunKey
from ..tokenize import count_tokens, encoded, parts
from .cuts import _CHINESE, Memo, Pieces, Words, _spaced, byte_level, whitespace_chunks
from .wordpiece import WordPiece, wordpiece

# Outside the rule: control characters but tab, newline and return (BERT deletes them, and Python
# splits at some of them).
_UNSAFE = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f]")
CHECK_FIRST = 1000  # a run's first texts, all checked against the full tokenizer before sampling
CHECK_EVERY = 100  # after that, one text in this many (chosen by the text's hash)
BATCH_CHARS = 1 << 20  # texts are cut this many characters at a time (~40 bytes each, at the peak)
MAX_CACHED_CHUNKS = 8_000_000  # per cache, ~100 MB; a full cache starts afresh (time, never results)
HOT_BITS = 18  # a piece cache's hot table: 2**18 slots, 3 MB for one counter
HOT = 1 << HOT_BITS


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

    @property
    def cut_key(self) -> str | None:
        """Tokenizers whose rules share this cut the same texts the same way."""
        return self.added.pattern if self.added else None

    def cuts(self) -> dict[str, tuple]:
        """Each cut this rule counts through (by kind), with what makes two rules' cuts alike:
        counters whose cuts are alike cut each batch once and share its piece cache."""
        if self.family == "byte-level-bpe":
            return {"pieces": ("pieces", self.prefix_space, self.cut_key)}
        return {"words": ("words", self.cut_key), "chunks": ("chunks", self.pad_chinese, self.cut_key)}


def recognise(backend: Any) -> Rule | None:
    """The rule for this tokenizer's pipeline, or None when no proof covers it."""
    try:
        spec = json.loads(backend.to_str())
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
        and model.get("unk_token") in (model.get("vocab") or {})
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
    if (
        model.get("type") == "BPE"
        and not model.get("dropout")
        and not normalizer
        and pre.get("type") == "ByteLevel"
        and pre.get("use_regex", True)
        and post.get("type", "ByteLevel") in ("ByteLevel", "RobertaProcessing", "TemplateProcessing")
        and not spec.get("truncation")
        and not spec.get("padding")
    ):
        prefix_space = bool(pre.get("add_prefix_space", True))
        matched = _matched(backend, tokens, "byte-level-bpe", prefix_space=prefix_space)
        if matched is None:
            return None
        x = (len(backend.encode(t, add_special_tokens=s).ids) for t, s in (("x", True), ("x", False)))
        return Rule("byte-level-bpe", next(x) - next(x), prefix_space=prefix_space, added=_any_case(matched))
    return None


def _matched(
    backend: Any, tokens: list[dict], family: str, pad_chinese: bool = False, prefix_space: bool = False
) -> list[str] | None:
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
            # whole in one chunk: no whitespace, and a Chinese character only alone (the cut
            # spaces them out as the normalizer does)
            if (_CHINESE.sub(_spaced, text) if pad_chinese else text).split() != [text]:
                return None
            if token.get("lstrip") and token.get("rstrip") and normalized:
                return None  # the spaces it takes may be a neighbour's (a Chinese one's, spaced)
            if token.get("single_word") and not normalized and pad_chinese:
                return None  # next to a Chinese character it is no word; in its own chunk it is
        elif not text or (prefix_space and text.startswith(" ")):
            return None  # the space put first would make one of a text that holds none
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


@functools.lru_cache(maxsize=4)
def _alone(tokenizer_json: str) -> Any:
    """The tokenizer without its post-processor and without a space put before a text: what
    counts one byte-level piece by itself."""
    from tokenizers import Tokenizer

    spec = json.loads(tokenizer_json)
    spec["pre_tokenizer"] = {**spec["pre_tokenizer"], "add_prefix_space": False}
    spec["post_processor"] = None
    return Tokenizer.from_str(json.dumps(spec))


class PieceCache:
    """A cut's distinct pieces -> their tokens, specials left out: a column for each counter
    whose cuts are alike (see ``share_caches``), so one lookup a batch serves them all.

    Every piece counted is kept in a ``FingerprintMap``. In front of it, a table of ``HOT``
    slots holds the pieces met last at each slot (picked by the fingerprint's top bits): most
    of a batch's pieces are common ones found there in one gather, and only the rest are
    sorted and looked up in the map.

    Words are kept as written, or lower-cased when every counter sharing them lower-cases
    (fewer distinct words); a lower-casing counter lower-cases the words it counts itself."""

    def __init__(self, width: int = 1, lowercase: bool = False):
        self.width, self.lowercase = width, lowercase
        self.map = FingerprintMap(width)
        self._hot: tuple[np.ndarray, np.ndarray] | None = None  # by slot: a fingerprint, a row of counts
        self._pending: list[tuple[np.ndarray, np.ndarray, np.ndarray]] = []  # see ``settle``

    def __len__(self) -> int:
        return len(self.map)

    def _slots(self, prints: np.ndarray) -> np.ndarray:
        if self._hot is None:
            self._hot = (
                np.zeros(HOT, np.uint64),
                np.full((HOT, self.width), FingerprintMap.UNKNOWN, np.uint32),
            )
        with np.errstate(over="ignore"):
            return ((prints * SPREAD) >> np.uint64(64 - HOT_BITS)).astype(np.intp)

    def lookup(self, cut: Pieces, column: int) -> np.ndarray:
        """Each piece's count in ``column`` as the hot table held it when the first counter
        asked, ``UNKNOWN`` where it held another piece or none: read once a batch for every
        column (one gather of rows), so all the counters miss the same pieces (and share
        ``distinct``)."""

        def hot() -> np.ndarray:
            slots = self._slots(cut.prints)
            prints, counts = self._hot  # type: ignore[misc]
            found = counts.take(slots, axis=0)
            found[prints.take(slots) != cut.prints] = FingerprintMap.UNKNOWN
            return found

        return cut.memo.once(("hot", id(self)), hot)[:, column]

    def distinct(self, cut: Pieces, at: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """The distinct fingerprints of the cut's pieces at ``at`` (sorted), a position of each,
        where each piece's is among them, and what the map holds for them (each counter fills
        in its column where it holds ``UNKNOWN``): made once for every counter that misses the
        same pieces."""

        def make() -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
            if len(self.map) > MAX_CACHED_CHUNKS:
                self.map = FingerprintMap(self.width)
            prints, first, inverse = np.unique(cut.prints[at], return_index=True, return_inverse=True)
            found = self.map.get(prints)
            self._pending.append((prints, found, (found == FingerprintMap.UNKNOWN).any(axis=1)))
            return prints, at[first], inverse.reshape(-1), found

        return cut.memo.once(("distinct", id(self), at.tobytes()), make)

    def settle(self) -> None:
        """Once every counter has counted a part: the pieces they missed go into the hot table
        (each at its slot; the last one wins a shared slot), and those they counted into the
        map, every column in one write."""
        for prints, found, counted in self._pending:
            self.map.set(prints[counted], found[counted])
            slots = self._slots(prints)
            self._hot[0][slots], self._hot[1][slots] = prints, found  # type: ignore[index]
        self._pending.clear()


class FastCounter:
    """Token counts: through the piece caches for safe texts where a rule holds, else the
    tokenizer. ``mismatch`` says why the fast path stopped, if its self-check ever failed."""

    def __init__(self, backend: Any, exact_only: bool = False, key: RunKey | None = None):
        # the run's key (this process's, drawn as it started, by default): counters that count
        # together share it
        self.key = key if key is not None else PROCESS_KEY
        self.backend = backend
        self.rule = None if exact_only else recognise(backend)
        self._wordpiece: WordPiece | None = None
        self._alone: Any = None  # the tokenizer that counts one byte-level piece by itself
        # one cache per cut (their fingerprints differ), and this counter's column in it
        self.caches = {"words": PieceCache(lowercase=bool(self.rule and self.rule.lowercase))}
        self.caches |= {"chunks": PieceCache(), "pieces": PieceCache()}
        self.columns = dict.fromkeys(self.caches, 0)
        self.texts = self.fast = self.checked = 0
        self.mismatch: str | None = None

    @property
    def wordpiece(self) -> WordPiece:
        if self._wordpiece is None:
            self._wordpiece = wordpiece(self.backend.to_str())
        return self._wordpiece

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
        out = np.zeros(len(texts), dtype=np.int64)
        fast = np.zeros(len(texts), dtype=bool)
        ascii_, words = cuts.once(rule.cuts()["words"], lambda: _ascii_words(texts, rule.added, self.key))
        if len(ascii_):
            counted = ascii_[~words.left_out]
            out[counted] = self._sums(words.view(self.caches["words"].lowercase))[~words.left_out]
            fast[counted] = True

        def rest_chunks() -> tuple[list[int], Pieces | None]:
            # the other texts, but those with a control character outside the rule
            rest = [i for i in np.flatnonzero(~fast).tolist() if _UNSAFE.search(texts[i]) is None]
            return rest, whitespace_chunks([texts[i] for i in rest], rule.pad_chinese) if rest else None

        rest, chunks = cuts.once(rule.cuts()["chunks"], rest_chunks)
        if rest:
            out[rest] = self._sums(chunks)
            fast[rest] = True
        return self._rest_and_check(texts, out, fast, at, cuts)

    def _rest_and_check(
        self, texts: list[str], out: np.ndarray, fast: np.ndarray, at: int, cuts: Memo
    ) -> np.ndarray:
        """Count the texts ``fast`` leaves out with the tokenizer, and check some of the others
        against it (see ``_check``): those among the run's first ``CHECK_FIRST`` texts (``at``
        texts came before these), and one in ``CHECK_EVERY`` after that, chosen by its hash
        (the same texts for every counter that took the fast path for the same texts)."""
        slow = np.flatnonzero(~fast)
        if len(slow):
            out[slow] = count_tokens(self.backend, [texts[i] for i in slow.tolist()])
        chosen = np.flatnonzero(fast)
        self.fast += len(chosen)

        def sample_of() -> list[int]:
            head = int(np.searchsorted(chosen, CHECK_FIRST - at))
            return chosen[:head].tolist() + [
                i for i in chosen[head:].tolist() if hash(texts[i]) % CHECK_EVERY == 0
            ]

        sample = cuts.once(("sample", fast.tobytes()), sample_of)
        if sample:
            self._check([texts[i] for i in sample], out[sample])
        return out

    def _byte_level_count(self, texts: list[str], cuts: Memo, at: int) -> np.ndarray:
        """Byte-level BPE: ASCII texts without an added token's text through their pieces,
        others through the tokenizer (an empty text too: the tokenizer puts no space before it)."""
        rule = self.rule
        assert rule is not None
        added = rule.added.search if rule.added is not None else (lambda t: None)
        fast = np.fromiter((t.isascii() and t != "" and added(t) is None for t in texts), bool, len(texts))
        out = np.zeros(len(texts), dtype=np.int64)
        chosen = np.flatnonzero(fast)
        if len(chosen):
            pieces = cuts.once(
                rule.cuts()["pieces"],
                lambda: byte_level([texts[i] for i in chosen.tolist()], rule.prefix_space),
            )
            out[chosen] = self._sums(pieces)
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
        - a byte-level piece, by the tokenizer alone (its spaces are part of it), without the
          space put first and without specials;
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
        if cut.kind == "pieces":
            if self._alone is None:
                self._alone = _alone(self.backend.to_str())
            return count_tokens(self._alone, pieces, special=False)
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
        for key in counter.rule.cuts().values() if counter.rule else ():
            alike.setdefault(key, []).append(counter)
    for (kind, *_), members in alike.items():
        cache = PieceCache(len(members), lowercase=all(c.rule.lowercase for c in members))  # type: ignore[union-attr]
        for column, counter in enumerate(members):
            counter.caches[kind], counter.columns[kind] = cache, column
