"""Byte-level BPE over any script: GPT-2's and RoBERTa's pre-tokenizer, and Qwen2's (gte-Qwen2,
Qwen3-Embedding: NFC, then a ``Split`` with its own regex before a ``ByteLevel`` without one).
A batch of texts is cut into the split regex's pieces with numpy, from each character's class
as the tokenizer's own regex engine sees it; why that is exact is the package's docstring.

The classes. Both regexes ask of a character only whether it is a letter (``\\p{L}``), a number
(``\\p{N}``), whitespace (``\\s``), the space, a return or newline, the apostrophe, or one of
the contractions' letters (s t m d r v e l, in any case under Qwen2's ``(?i:...)``). Each
character's answers are asked of Oniguruma, the engine ``tokenizers`` compiles every ``Regex``
with (through ``normalizers.Replace``), once per process for each character a batch brings
first; a character whose answers fit no class (a letter that is also a number, a contraction's
letter that is no letter), or that Python's Unicode does not assign, is refused: its text goes
to the tokenizer.

The cut. Over the classes each regex reads as a few local rules, written out at
``_qwen2_starts`` and ``_gpt2_starts``: where a piece starts depends only on a character and its
neighbours, and on whether a newline lies further on in the same run of whitespace. numpy finds
every start of a batch at once, and fingerprints every piece of at most 64 characters as two
polynomials over its code points (as ``Words`` does over bytes), a longer one by its string.
"""

from __future__ import annotations

import functools
import unicodedata
from typing import Any

import numpy as np

from lenprof.count.exact import model_counts
from lenprof.count.fast.cuts import _LONG_WORD, _POLYNOMIAL, Pieces
from lenprof.hashing import PRIMES, RunKey, distinct, fingerprints

# The split regexes the cut knows, as tokenizer.json writes them: GPT-2's (ByteLevel's own, with
# use_regex) and Qwen2's (a Split before a ByteLevel without one).
GPT2 = r"'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+"
QWEN2 = (
    r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*"
    r"|\s*[\r\n]+|\s+(?!\S)|\s+"
)
SPLITS = {GPT2: "gpt2", QWEN2: "qwen2"}

# A character's class, one byte. SEP stands between two texts: a text's end, to the regexes.
UNKNOWN, REFUSED, SEP, NUMBER, SPACE, NEWLINE, BLANK, QUOTE, OTHER = range(9)
LETTER = 16  # and LETTER + 1 + i for the contractions' letters, in this order
CONTRACTED = "stmdrvel"
S, T, M, D, R, V, E, L = (LETTER + 1 + i for i in range(len(CONTRACTED)))
# Between the texts of a batch, and between pieces mapped to bytes together (``piece_counts``):
# unassigned in Python's Unicode, so in no text the cut takes.
JOIN = "\uffff"
BLOCK = 1 << 16  # the fingerprints' powers repeat every BLOCK characters of a batch


def pipeline(normalizer: dict, pre: dict) -> tuple[str, bool, bool] | None:
    """(split, prefix_space, nfc) of a byte-level BPE pipeline the cut covers, or None: no
    normalizer or NFC, then ByteLevel with its own regex (GPT-2's), or a Split with a regex the
    cut knows, whole matches kept apart, before a ByteLevel without one that puts no space first."""
    if normalizer and normalizer.get("type") != "NFC":
        return None
    nfc = bool(normalizer)
    if pre.get("type") == "ByteLevel" and pre.get("use_regex", True):
        return "gpt2", bool(pre.get("add_prefix_space", True)), nfc
    steps = pre.get("pretokenizers") or [] if pre.get("type") == "Sequence" else []
    if [step.get("type") for step in steps] != ["Split", "ByteLevel"]:
        return None
    split, level = steps
    kind = SPLITS.get((split.get("pattern") or {}).get("Regex"))
    if (
        kind is None
        or split.get("behavior") != "Isolated"
        or split.get("invert")
        or level.get("add_prefix_space", True)
        or level.get("use_regex", True)
    ):
        return None
    return kind, False, nfc


@functools.lru_cache(maxsize=2)
def _table(split: str) -> np.ndarray:
    """Each code point's class for ``split``, filled in as batches bring them (``_classes``)."""
    table = np.full(0x110000, UNKNOWN, np.uint8)
    table[0xD800:0xE000] = REFUSED  # lone surrogates: no UTF-8, no tokenizer takes them
    return table


def _classes(split: str, codes: np.ndarray) -> np.ndarray:
    """The class of each of ``codes``, those not met before asked of the regex engine."""
    table = _table(split)
    classes = table.take(codes)
    new = classes == UNKNOWN
    if new.any():
        fresh = distinct(codes[new])
        table[fresh] = _derive(split, fresh)
        classes[new] = table.take(codes[new])
    return classes


def _derive(split: str, codes: np.ndarray) -> np.ndarray:
    """The classes of ``codes`` (distinct, no surrogates), as Oniguruma answers for each: a
    pattern rewrites a character (or an apostrophe and it) where it matches it."""
    from tokenizers import Regex, normalizers

    chars = codes.astype("<u4").tobytes().decode("utf-32-le")
    quoted = "".join("'" + c for c in chars)
    cased = "(?i:{})".format if split == "qwen2" else "{}".format

    def matched(pattern: str, text: str, width: int) -> np.ndarray:
        out = normalizers.Replace(Regex(pattern), "\x00" * width).normalize_str(text)
        if len(out) != len(text):  # a match of another width: take none of them
            return np.ones(len(codes), bool)
        was, now = (np.frombuffer(s.encode("utf-32-le"), np.uint32)[width - 1 :: width] for s in (text, out))
        return was != now

    letter, number, white = (matched(p, chars, 1) for p in (r"\p{L}", r"\p{N}", r"\s"))
    quote = matched(cased("'"), chars, 1)
    of = np.array([matched(cased("'" + x), quoted, 2) for x in CONTRACTED])  # (8, codes)
    short = matched(cased("'s|'t|'re|'ve|'m|'ll|'d"), quoted, 2)  # "'" and it a whole contraction
    space, newline = codes == 0x20, (codes == 0x0A) | (codes == 0x0D)

    out = np.full(len(codes), OTHER, np.uint8)
    out[white] = BLANK
    out[white & space] = SPACE
    out[white & newline] = NEWLINE if split == "qwen2" else BLANK
    out[number], out[quote], out[letter] = NUMBER, QUOTE, LETTER
    for i, hit in enumerate(of):
        out[hit] = LETTER + 1 + i
    unassigned = np.array([unicodedata.category(c) == "Cn" for c in chars], bool)
    refused = (
        unassigned
        | (letter.astype(int) + number + white + quote > 1)  # in two classes
        | ((space | newline) & ~white)
        | (of.any(axis=0) & ~letter)
        | (of.sum(axis=0) > 1)
        | (short & ~of[:4].any(axis=0))  # a whole contraction by itself (a letter folding to two)
    )
    out[refused] = REFUSED
    return out


def _before(x: np.ndarray) -> np.ndarray:
    out = np.zeros_like(x)
    out[1:] = x[:-1]
    return out


def _after(x: np.ndarray, n: int = 1) -> np.ndarray:
    out = np.zeros_like(x)
    out[:-n] = x[n:]
    return out


def _contractions(k: np.ndarray, quote: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Where a contraction of two characters ('s 't 'm 'd) and of three ('re 've 'll) starts,
    among the apostrophes where a match may start (``quote``)."""
    at = np.flatnonzero(quote)
    k1, k2 = k[at + 1], k[np.minimum(at + 2, len(k) - 1)]  # k ends with a SEP
    two = (k1 == S) | (k1 == T) | (k1 == M) | (k1 == D)
    three = (((k1 == R) | (k1 == V)) & (k2 == E)) | ((k1 == L) & (k2 == L))
    return at[two], at[three]


def _qwen2_starts(k: np.ndarray) -> np.ndarray:
    """Where Qwen2's regex starts a piece, from the classes (SEP between texts and around them).

    A number is a piece. A run of letters is one, with the character before it when that is
    whitespace other than a newline, or a lone other character (not after a space) that is no
    contraction's apostrophe. A run of other characters is one, with a space before it and the
    newlines after it. In a run of whitespace, a piece ends at its last newline, and, where a
    non-space follows, before its last character (which starts the next one's piece where it
    takes it, or is a piece)."""
    letter, number, space, newline = k >= LETTER, k == NUMBER, k == SPACE, k == NEWLINE
    inline = space | (k == BLANK)  # whitespace but newlines
    other = (k == QUOTE) | (k == OTHER)
    letters = letter & ~_before(letter)  # a run's first
    others = other & ~_before(other)
    lone = others & ~_after(other) & ~_before(space)  # a match starts at it, and ends after it
    two, three = _contractions(k, lone & (k == QUOTE))
    starts = number | _before(number) | (others & ~_before(space))
    starts |= letters & ~_before(inline | lone)
    for at in (two + 2, three + 3):
        starts[at[letter[at]]] = True  # the rest of the contraction's letters
    # newlines right after other characters are theirs
    n = len(k)
    firsts = np.flatnonzero(newline & ~_before(newline))  # each run of newlines: where it starts,
    lasts = np.flatnonzero(newline & ~_after(newline))  # and where it ends
    theirs = other[firsts - 1]
    taken = np.zeros(n, bool)
    if theirs.any():
        marks = np.zeros(n + 1, np.int64)
        marks[firsts[theirs]], marks[lasts[theirs] + 1] = 1, -1
        taken = np.cumsum(marks[:-1]) > 0
    white = (inline | newline) & ~taken
    starts |= white & ~_before(white)
    # after a run's last newline: no newline between it and the run's end
    after = np.flatnonzero(white & ~newline & _before(newline))
    if len(after):
        ends = np.flatnonzero(white & ~_after(white))
        end = ends[np.searchsorted(ends, after)]
        later = np.append(firsts, n)[np.searchsorted(firsts, after)]
        starts[after[later > end]] = True
    last = inline & ~_after(inline | newline) & ~_after(k == SEP)  # a non-space follows
    starts |= last & _before(inline)
    return starts & (k != SEP)


def _gpt2_starts(k: np.ndarray) -> np.ndarray:
    """Where GPT-2's regex starts a piece, from the classes (SEP between texts and around them).

    A run of letters, of numbers or of other characters is a piece, with a space before it; a
    contraction's apostrophe (a lone other character not after a space) takes its letters. A
    run of whitespace is one, but, where a non-space follows, its last character (which starts
    the next one's piece where it is a space, or is a piece)."""
    letter, number, space = k >= LETTER, k == NUMBER, k == SPACE
    white, other = space | (k == BLANK), (k == QUOTE) | (k == OTHER)
    others = other & ~_before(other)
    two, three = _contractions(k, others & ~_after(other) & ~_before(space) & (k == QUOTE))
    contraction = np.zeros_like(letter)
    contraction[np.concatenate([two, three])] = True
    runs = (letter & ~_before(letter) & ~_before(contraction)) | (number & ~_before(number)) | others
    starts = runs & ~_before(space)
    for at in (two + 2, three + 3):
        starts[at[letter[at]]] = True
    starts |= white & ~_before(white)
    last = white & ~_after(white) & ~_after(k == SEP)
    starts |= last & _before(white)
    return starts & (k != SEP)


def cut(texts: list[str], split: str, prefix_space: bool, key: RunKey) -> tuple[np.ndarray, Pieces]:
    """``texts`` cut as the tokenizer's split regex cuts them (a space put first where it puts
    one), and which of them hold a character the cut refuses (their pieces left out)."""
    if prefix_space:
        texts = [t if t.startswith(" ") else " " + t for t in texts]
    joined = JOIN + JOIN.join(texts) + JOIN
    codes = np.frombuffer(joined.encode("utf-32-le", "surrogatepass"), np.uint32)
    lengths = np.fromiter(map(len, texts), np.int64, len(texts))
    seps = np.concatenate([[0], np.cumsum(lengths + 1)])  # where JOIN stands between texts
    k = _classes(split, codes)
    k[seps] = SEP
    refused = np.flatnonzero(k == REFUSED)
    left_out = np.zeros(len(texts), bool)
    if len(refused):
        left_out[np.searchsorted(seps, refused) - 1] = True
        k[refused] = SEP
    starts = _qwen2_starts(k) if split == "qwen2" else _gpt2_starts(k)
    bounds = np.flatnonzero(starts | (k == SEP))
    opens = starts[bounds[:-1]]
    first, end = bounds[:-1][opens], bounds[1:][opens]
    prints = _fingerprints(codes, first, end, key)
    owner = np.searchsorted(seps, first) - 1
    if len(refused):
        keep = ~left_out[owner]
        first, end, owner, prints = first[keep], end[keep], owner[keep], prints[keep]

    def strings(at: np.ndarray) -> list[str]:
        return [joined[a:b] for a, b in zip(first[at].tolist(), end[at].tolist(), strict=True)]

    long_ = np.flatnonzero((end - first > _LONG_WORD) | (first // BLOCK != (end - 1) // BLOCK))
    if len(long_):
        prints[long_] = fingerprints(strings(long_), key)
    return left_out, Pieces("pieces", len(texts), owner, prints, strings)


@functools.lru_cache(maxsize=2)
def _block_powers(key: RunKey) -> tuple[np.ndarray, np.ndarray]:
    """For each prime of ``PRIMES`` (a row each), the run's base to each power below ``BLOCK``,
    and its inverse to each, modulo the prime (products of two below 2**32 stay below 2**64)."""
    rows = []
    for inverse in (False, True):
        lanes = []
        for base, p in zip(key.bases, PRIMES, strict=True):
            b = pow(base, -1, p) if inverse else base
            low = np.array([pow(b, j, p) for j in range(256)], np.uint64)
            high = np.array([pow(b, 256 * j, p) for j in range(BLOCK // 256)], np.uint64)
            lanes.append((high[:, None] * low[None, :] % np.uint64(p)).reshape(-1))
        rows.append(np.array(lanes))
    return rows[0], rows[1]


def _fingerprints(codes: np.ndarray, first: np.ndarray, end: np.ndarray, key: RunKey) -> np.ndarray:
    """Each piece's fingerprint, for a whole batch at once: for each prime p of ``PRIMES``,
    sum((code_i + 1) * base**i) mod p over its code points (plus one: never 0, so lengths tell
    too), in the run's secret bases, the top bit set: the polynomial ``Words`` takes of a long
    word. Two different pieces of at most ``_LONG_WORD`` characters share one with probability
    below 2**-50 over the run's key; longer ones are left to the caller.

    Without a pass to find each character's place in its piece: every character is weighted by
    the base to the power of its place in the batch (modulo ``BLOCK``), a piece's sum is the
    difference of two running sums (a term is below 2**21 * 2**32, a piece's sum below 2**59:
    exact, though the running sums wrap around 2**64), and it is brought back to the piece's
    first place by the inverse power there. A piece across two blocks is left to the caller too."""
    n = len(codes)
    values = np.zeros(-(-n // BLOCK) * BLOCK, np.uint64)
    np.add(codes, 1, out=values[:n], dtype=np.uint64)
    powers, inverses = _block_powers(key)
    start = first % BLOCK
    lanes = []
    for row, p in enumerate(PRIMES):
        sums = np.cumsum((values.reshape(-1, BLOCK) * powers[row]).reshape(-1))
        lane = (sums[end - 1] - sums[first - 1]) % np.uint64(p)
        lanes.append(lane * inverses[row].take(start) % np.uint64(p))
    return _POLYNOMIAL | (lanes[0] << np.uint64(32)) | lanes[1]


@functools.lru_cache(maxsize=1)
def _byte_level() -> tuple[np.ndarray, str]:
    """The character ``ByteLevel`` maps each byte to (asked of the tokenizers library's own
    ``ByteLevel``, over characters whose UTF-8 holds every byte valid UTF-8 holds), and
    ``JOIN``'s bytes so mapped."""
    from tokenizers import pre_tokenizers

    probes = [chr(c) for c in range(0xC0)]  # every byte below 0x80, then C2 and every continuation byte
    probes += [chr((lead - 0xC0) << 6) for lead in range(0xC2, 0xE0)]  # the leads of two bytes,
    probes += [chr((lead - 0xE0) << 12 or 0x800) for lead in range(0xE0, 0xF0)]  # of three,
    probes += [chr((lead - 0xF0) << 18 or 0x10000) for lead in range(0xF0, 0xF5)]  # and of four
    text = "".join(probes)
    level = pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False)
    (mapped, _), *rest = level.pre_tokenize_str(text)
    data = text.encode("utf-8")
    assert not rest and len(mapped) == len(data)
    table = np.zeros(256, np.uint32)
    table[np.frombuffer(data, np.uint8)] = [ord(c) for c in mapped]
    return table, table[np.frombuffer(JOIN.encode("utf-8"), np.uint8)].tobytes().decode("utf-32-le")


def piece_counts(model: Any, pieces: list[str]) -> np.ndarray:
    """Tokens of each piece by the tokenizer's model, as the tokenizer counts a pre-token: its
    bytes mapped to characters as ``ByteLevel`` maps them (all pieces at once, joined by
    ``JOIN``, whose mapped bytes no mapped piece holds: UTF-8 is self-synchronizing), and
    ``model.tokenize`` on each (``exact.model_counts``)."""
    table, join = _byte_level()
    data = np.frombuffer(JOIN.join(pieces).encode("utf-8"), np.uint8)
    return model_counts(model, table.take(data).tobytes().decode("utf-32-le").split(join))
