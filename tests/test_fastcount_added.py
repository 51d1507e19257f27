"""The fast count with added tokens is never different from the tokenizer's.

``tokenizers`` matches an added token before the pre-tokenizer: one that is not normalized on
the text as written, a normalized one (the default for ``add_tokens``) on the normalized text,
each with its options (lstrip, rstrip, single_word). Property tests draw texts from the fast
path's class (ASCII words, punctuation, the added tokens' spellings as written and normalized,
in any case) and from just outside it (accents, CJK, zero-width and control characters), for
each family a rule covers, with and without added tokens of every kind, and count them with the
tokenizer itself. A tokenizer whose added tokens the rule cannot prove is refused (counted
exactly): ``test_unprovable_added_tokens_are_refused``."""

from __future__ import annotations

import json
import re
import unicodedata

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from test_fastcount import byte_level
from tokenizers import AddedToken, Tokenizer

from lenprof.count.exact import count_tokens
from lenprof.count.fast import rule as fastcount
from lenprof.count.fast.counter import FastCounter, count_together, share_caches
from lenprof.count.fast.rule import Rule, recognise

ACCENTED = ["Schrödinger", "Ångström", "éclair"]


def added(backend: Tokenizer, tokens: list[AddedToken], special: list[AddedToken] = ()) -> Tokenizer:
    """A copy of ``backend`` with these tokens added, read back from its JSON as lenprof loads it."""
    tok = Tokenizer.from_str(backend.to_str())
    tok.add_tokens(tokens)
    tok.add_special_tokens(list(special))
    return Tokenizer.from_str(tok.to_str())


def with_normalizer(backend: Tokenizer, **options) -> Tokenizer:
    spec = json.loads(backend.to_str())
    spec["normalizer"] = {**spec["normalizer"], **options}
    return Tokenizer.from_str(json.dumps(spec))


# Added tokens of every kind a rule takes: name -> (tokens, special tokens)
KINDS: dict[str, tuple[list[AddedToken], list[AddedToken]]] = {
    "none": ([], []),
    "normalized": ([AddedToken(t) for t in ACCENTED], []),  # as add_tokens(ACCENTED) adds them
    "raw": ([AddedToken(t, normalized=False) for t in ACCENTED], []),
    "mixed": (
        [
            AddedToken("Ångström", normalized=False),
            AddedToken("NaCl", normalized=False),
            # zero-width characters inside: a normalizer that deletes them matches what is left
            AddedToken("Schr\u200bödinger"),
            AddedToken("zw\u200dj"),
            AddedToken("x\u200by", normalized=False),
            # inside words
            *(AddedToken(t) for t in ["ing", "tion", "Emb", "##ing", "e-mail"]),
        ],
        [AddedToken("<Chem>", special=True), AddedToken("Schrödinger", special=True, normalized=True)],
    ),
    "strips": (
        [
            AddedToken("Ångström", rstrip=True),
            AddedToken("éclair", lstrip=True),
            AddedToken("NaCl", normalized=False, lstrip=True, rstrip=True),
            AddedToken("Schrödinger", single_word=True),
        ],
        [AddedToken("<mask>", special=True, lstrip=True)],  # RoBERTa's and MPNet's mask
    ),
}
SPELLINGS = [
    *ACCENTED,
    *(t.upper() for t in ACCENTED),
    *(t.lower() for t in ACCENTED),
    "schrodinger",
    "Schrodinger",
    "SCHRODINGER",
    "angstrom",
    "ANGSTROM",
    "eclair",
    "Eclair",
    "Schr\u200bödinger",
    "schr\u200bodinger",
    "zw\u200dj",
    "zwj",
    "x\u200by",
    "xy",
    "NaCl",
    "nacl",
    "<Chem>",
    "<chem>",
    "<mask>",
    "<MASK>",
    "[MASK]",
    "ing",
    "testing",
    "mention",
    "embedding",
    "e-mail",
    "E-Mail",
    "new york",
    " foo",
    "foo",
]
SAFE = "abcdefghijklmnopqrstuvwxyzABCXYZ0123456789 .,;:!?'\"()[]{}<>-_/\\@#$%^&*+=~`|"
NEAR_MISS = (
    "\u200b\u200d\u00ad\ufeff"  # zero-width and format: BERT deletes them
    "\x0b\x1f\x00\x7f\x85"  # control characters: outside the rule
    "\xa0\u3000\u2009\t\n\r"  # whitespace BERT turns into a space
    "éöÅ\u0301\u0308ßİ"  # accents, combining marks, case that changes length
    "中文日本語，。😀"  # CJK (spaced out by BERT), emoji
)
text = st.lists(
    st.one_of(
        st.sampled_from(SPELLINGS),
        st.text(alphabet=SAFE, max_size=12),
        st.text(alphabet=NEAR_MISS, max_size=3),
        st.sampled_from(["", " ", "  ", "\t", "\n", "\u3000", "\xa0", "\u200b", "中", "-", "'s"]),
    ),
    max_size=10,
).map("".join)
ascii_text = st.lists(
    st.one_of(
        st.sampled_from([s for s in SPELLINGS if s.isascii()]),
        st.text(alphabet=SAFE, max_size=12),
        st.sampled_from([" ", "  ", "\t", "\n"]),
    ),
    max_size=10,
).map("".join)
texts = st.lists(st.one_of(text, ascii_text), min_size=1, max_size=20)


@pytest.fixture(scope="module")
def berts(tok) -> dict[str, Tokenizer]:
    """The packaged uncased BERT, and cased variants of it, with every kind of added token."""
    bases = {
        "uncased": tok.backend,
        "cased": with_normalizer(tok.backend, lowercase=False, strip_accents=False),
        "cased-stripped": with_normalizer(tok.backend, lowercase=False, strip_accents=True),
    }
    kinds = {"uncased": KINDS, "cased": KINDS, "cased-stripped": ["normalized", "strips"]}
    return {f"{base}/{kind}": added(bases[base], *KINDS[kind]) for base in bases for kind in kinds[base]}


@pytest.fixture(scope="module")
def byte_levels() -> dict[str, Tokenizer]:
    bases = {"prefix-space": byte_level(True), "no-prefix-space": byte_level(False)}
    kinds = {**KINDS, "spaced": ([AddedToken("new york"), AddedToken("\n\n")], [])}
    out = {
        f"{base}/{kind}": added(backend, *tokens)
        for base, backend in bases.items()
        for kind, tokens in kinds.items()
    }
    # a token that starts with a space, where no space is put first and where one is (it is
    # put after the added tokens are matched: "foo" holds no " foo", but is cut as " foo")
    for base, backend in bases.items():
        out[f"{base}/leading-space"] = added(backend, [AddedToken(" foo")])
    return out


def fast_texts(family: str, backend: Tokenizer, batch: list[str]) -> int:
    """How many texts the fast path must take (its promise, from the texts alone): for BERT
    every text without a control character but tab, newline and return; for byte-level BPE
    every text but the empty one that holds no added token's text in any case, and no code
    point Python's Unicode leaves unassigned."""
    if family == "bert-wordpiece":
        return sum(1 for t in batch if not re.search(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f]", t))
    contents = [t.content for t in backend.get_added_tokens_decoder().values()]
    return sum(
        1
        for t in batch
        if t
        and not any(re.search(re.escape(c), t, re.IGNORECASE) for c in contents)
        and all(unicodedata.category(c) != "Cn" for c in t)
    )


class Counters:
    """A counter for each tokenizer, and the same counters again counting together with shared
    caches, as a comparison counts them: made once for all the examples (a BERT counter builds
    its vocabulary's trie first), so later examples count through warm caches too."""

    def __init__(self, backends: dict[str, Tokenizer]):
        self.backends = backends
        self.alone = {name: FastCounter(backend) for name, backend in backends.items()}
        self.together = [FastCounter(backend) for backend in backends.values()]
        share_caches(self.together)

    def count_like_the_tokenizer(self, batch: list[str], family: str) -> None:
        exact = {name: count_tokens(backend, batch).tolist() for name, backend in self.backends.items()}
        for name, counter in self.alone.items():
            assert counter.rule is not None and counter.rule.family == family, name
            fast = counter.fast
            assert counter.count(batch).tolist() == exact[name], name
            assert counter.mismatch is None, name
            # not vacuous: the fast path took every text it promises to take
            assert counter.fast - fast == fast_texts(family, self.backends[name], batch), name
        assert count_together(self.together, batch).tolist() == list(exact.values())
        assert all(counter.mismatch is None for counter in self.together)


@pytest.fixture(scope="module")
def bert_counters(berts) -> Counters:
    return Counters(berts)


@pytest.fixture(scope="module")
def byte_level_counters(byte_levels) -> Counters:
    return Counters(byte_levels)


@settings(max_examples=100, deadline=None)
@given(batch=texts)
def test_bert_counts_with_added_tokens_equal_the_tokenizer(bert_counters, batch):
    bert_counters.count_like_the_tokenizer(batch, "bert-wordpiece")


@settings(max_examples=200, deadline=None)
@given(batch=texts)
def test_byte_level_counts_with_added_tokens_equal_the_tokenizer(byte_level_counters, batch):
    byte_level_counters.count_like_the_tokenizer(batch, "byte-level-bpe")


def test_a_normalized_added_token_is_matched_on_the_normalized_text(tok):
    """Issue 20, finding 1: counted 7 where the tokenizer gives 4."""
    backend = Tokenizer.from_str(tok.backend.to_str())
    backend.add_tokens(ACCENTED)
    counter = FastCounter(backend)
    batch = ["schrodinger equation", "Ångström units", "ECLAIR", "Schrödinger's cat"]
    assert count_tokens(backend, batch).tolist() == [4, 4, 3, 6]
    assert counter.count(batch).tolist() == [4, 4, 3, 6]
    assert counter.mismatch is None and counter.fast == 4


def test_the_packaged_tokenizer_keeps_its_rule(tok):
    specials = r"\[PAD\]|\[UNK\]|\[CLS\]|\[SEP\]|\[MASK\]"
    rule = Rule("bert-wordpiece", 2, pad_chinese=True, lowercase=True, added=re.compile(specials, re.I))
    assert recognise(tok.backend) == rule


def test_lstrip_tokens_count_in_their_own_chunk(tok):
    """An lstrip token takes the spaces before it (MPNet's <mask> does): among chunks joined
    by spaces it starts in the one before its own, and must still count as its own chunk's."""
    backend = added(tok.backend, [], [AddedToken("<mask>", special=True, lstrip=True)])
    counter = FastCounter(backend)
    # 200 chunks the tokenizer counts, joined in the order of their fingerprints: most of the
    # "<mask>" chunks follow another chunk
    batch = [f"é{i} <mask>{i}" for i in range(100)] + [f"é{i}" for i in range(100)] + ["<mask>中 <mask>"]
    assert counter.count(batch).tolist() == count_tokens(backend, batch).tolist()
    assert counter.mismatch is None and counter.fast == len(batch)


CJK = [chr(0x4E00 + i) for i in range(200)]


@pytest.mark.parametrize(
    "base, token, trouble",
    [
        # normalized, spaced out (" 中  文 "): the chunks "中" and "文" are counted apart
        ("uncased", AddedToken("中文"), ["中文"]),
        # as written, across the end of a chunk: "x" and "中" are counted apart
        ("uncased", AddedToken("x中", normalized=False), ["x中"]),
        # as written, "中NaCl" holds no word "NaCl"; its chunk "NaCl" is one
        ("uncased", AddedToken("NaCl", normalized=False, single_word=True), ["中NaCl"]),
        # normalized, the spaces it takes on both sides reach the ones put around a Chinese
        # character: "éclair" and "一" joined as "éclair 一", it ends in "一"
        ("cased", AddedToken("éclair", lstrip=True, rstrip=True), [f"{c} éclair {c}" for c in CJK]),
        # whitespace inside: chunks would cut it (the rule has always refused this one)
        ("uncased", AddedToken("New York"), None),
        # normalized to nothing: it splits every text between its characters ("ab": a, b)
        ("uncased", AddedToken("\u200b"), None),
    ],
)
def test_unprovable_added_tokens_are_refused(tok, monkeypatch, base, token, trouble):
    backend = {
        "uncased": lambda: tok.backend,
        "cased": lambda: with_normalizer(tok.backend, lowercase=False, strip_accents=False),
    }[base]()
    refused = added(backend, [token])
    assert recognise(backend) is not None
    assert recognise(refused) is None
    assert FastCounter(refused).path == "tokenizer"
    if trouble is None:
        return

    # and refused for a reason: taken as the other tokens are, it would count wrong
    def taken(backend, tokens, family, **_):
        normalize = backend.normalizer.normalize_str if backend.normalizer else str
        return [normalize(t["content"]) if t["normalized"] else t["content"] for t in tokens]

    monkeypatch.setattr(fastcount, "_matched", taken)
    assert FastCounter(refused).rule is not None

    # chunks are joined in the order of their fingerprints, drawn anew by each process: each text
    # is counted by a counter of its own, so that some order puts the trouble together
    def miscounted(text):
        return FastCounter(refused).count([text]).tolist() != count_tokens(refused, [text]).tolist()

    assert any(miscounted(text) for text in trouble)


def test_a_token_the_tokenizer_does_not_match_is_refused(tok):
    # special tokens encoded as plain text: the tokenizer no longer matches what the rule thinks
    backend = Tokenizer.from_str(tok.backend.to_str())
    backend.encode_special_tokens = True
    assert recognise(backend) is None
