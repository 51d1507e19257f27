"""The fast count of SentencePiece Unigram tokenizers (XLM-R's layout: bge-m3, multilingual-e5)
is never different from the tokenizer's.

The tokenizers are trained here by ``sentencepiece``'s own trainer with ``nmt_nfkc`` and
converted by transformers' XLM-R converter (benchmarks/unigram.py), so the normalizer is a real
precompiled NFKC map: it turns full-width forms, ligatures and circled digits into ASCII, many
spaces and zero-width characters into spaces, controls into nothing, and composes combining
sequences. Property tests draw texts from English, Chinese and Japanese, from every character
the map changes, from runs of spaces and from the added tokens' texts (also as full-width forms
the normalizer turns into them), with instruction prefixes, and count them with the tokenizer
itself, for each layout the rule takes."""

from __future__ import annotations

import json
import sys
import warnings

import msgspec
import numpy as np
import pytest
from conftest import EXAMPLES, REPO, absent, write_lines
from counting import Counters
from hypothesis import given, settings
from hypothesis import strategies as st
from tokenizers import AddedToken, Tokenizer, pre_tokenizers

from lenprof import scan
from lenprof.count.exact import count_tokens, model_counts
from lenprof.count.fast import counter as counter_module
from lenprof.count.fast.counter import FastCounter, count_together, share_caches
from lenprof.count.fast.precompiled import WHITESPACE, Normalizer
from lenprof.count.fast.rule import recognise
from lenprof.count.fast.unigram import SPACE, Metaspace, _ascii_pieces
from lenprof.count.spec import member, tokenizer_spec
from lenprof.hashing import RunKey

ENGLISH = [
    "The quick brown fox jumps over the lazy dog, again and again!",
    "Embedding models map queries and passages to vectors; cosine similarity ranks them.",
    "FlagEmbedding's query_max_len and passage_max_len: 64 and 256 tokens (p95).",
    "Represent this sentence for searching relevant passages: how do tokenizers work?",
    "SentencePiece treats the input as a raw stream, spaces included, and learns pieces.",
]
CHINESE = ["中文的句子，用于训练分词器。", "无法打开文件：权限不足", "请输入密码以继续安装软件包"]
JAPANESE = [
    "東京の天気は晴れです。明日は雨が降るでしょう。",
    "サブスクリプションの所有者である必要があります",
    "ファイルを開けませんでした：アクセスが拒否されました",
]
TRAINING = (ENGLISH + CHINESE + JAPANESE) * 20


def _converted(byte_fallback: bool = False) -> Tokenizer:
    import importlib.util

    if importlib.util.find_spec("sentencepiece") is None:
        absent("sentencepiece is not installed (pip install sentencepiece)", "LENPROF_REQUIRE_SENTENCEPIECE")
    sys.path.insert(0, str(REPO / "benchmarks"))
    try:
        import unigram
    finally:
        sys.path.pop(0)
    with warnings.catch_warnings():  # transformers warns that it converts byte fallback off (turned on again)
        warnings.simplefilter("ignore", UserWarning)
        return unigram.converted(TRAINING, 400, byte_fallback=byte_fallback)


def variant(backend: Tokenizer, **parts) -> Tokenizer:
    """A copy of ``backend`` with these parts of its JSON replaced, read back as lenprof loads it."""
    spec = json.loads(backend.to_str())
    spec.update(parts)
    return Tokenizer.from_str(json.dumps(spec))


def metaspace(prepend: str = "always") -> dict:
    return {"type": "Metaspace", "replacement": SPACE, "prepend_scheme": prepend, "split": True}


@pytest.fixture(scope="module")
def xlmr() -> Tokenizer:
    """As transformers converts XLM-R's sentencepiece.bpe.model: Precompiled, Strip on the
    right, runs of spaces to ``▁``; Metaspace; ``<s> $A </s>``; the five specials."""
    return _converted()


@pytest.fixture(scope="module")
def unigrams(xlmr) -> dict[str, Tokenizer]:
    spec = json.loads(xlmr.to_str())
    precompiled = spec["normalizer"]["normalizers"][0]
    with_added = Tokenizer.from_str(xlmr.to_str())
    with_added.add_tokens(
        [
            AddedToken("ﬁsh"),  # normalized: matched as "fish" in the normalized text
            AddedToken("東京", normalized=False, single_word=True),
            AddedToken("query:", normalized=False, rstrip=True),
            AddedToken("pass age", lstrip=True),  # a space inside
        ]
    )
    return {
        "xlmr": xlmr,
        # the hub's xlm-roberta-base and bge-m3: runs of spaces to one space
        "hub": variant(
            xlmr,
            normalizer={
                "type": "Sequence",
                "normalizers": [
                    precompiled,
                    {"type": "Replace", "pattern": {"Regex": " {2,}"}, "content": " "},
                ],
            },
        ),
        "first": variant(xlmr, pre_tokenizer=metaspace("first")),
        # transformers 5's XLMRobertaTokenizer: WhitespaceSplit before the Metaspace
        "whitespace-split": variant(
            xlmr,
            normalizer=precompiled,
            pre_tokenizer={"type": "Sequence", "pretokenizers": [{"type": "WhitespaceSplit"}, metaspace()]},
        ),
        "no-template": variant(xlmr, post_processor=None),
        "added": Tokenizer.from_str(with_added.to_str()),
        "byte-fallback": _converted(byte_fallback=True),
    }


PREFIXES = ["query: ", "passage: ", "Represent this sentence for searching relevant passages: ", "<s>"]
CHANGED = (
    "ﬁﬂ①⑳Ａｚ＜＞０９ｶﾞ㍿½²ℌ"  # what NFKC writes otherwise: full-width, ligatures, circled, compatibility
    "\xa0\u2002\u2009\u200a\u202f\u205f\u3000\u1680\u2028\u2029\ufffd"  # to a space
    "\u200b\ufeff\x01\x0b\x1c\x1f\t\n\r\x85\xad\x00"  # to nothing, a space, or left
    "e\u0301\u1100\u1161\u0308\u0301"  # combining sequences: composed
    "▁_ "  # the replacement character itself, and spaces
)
WORDS = [
    *ENGLISH,
    *CHINESE,
    *JAPANESE,
    *PREFIXES,
    "<mask>",
    "＜mask＞",  # normalized into "<mask>", which the tokenizer does not match: the model reads it
    "＜unk＞",  # the unknown token's own piece, to the model (as the tokenizer gives it)
    "</s>",
    "<unk>",
    "ﬁsh",
    "fish",
    "東京",
    "pass age",
    "▁▁",
    "  ",
    "   ",
    "\u3000\u3000",
    "x\u200by",
    "",
]
piece = st.one_of(
    st.sampled_from(WORDS),
    st.text(alphabet="abcXYZ019 .,;:!?'\"()<>/-", max_size=12),
    st.text(alphabet=CHANGED, max_size=5),
    st.text(alphabet="中文日本語東京の天気はサブスクリプション。、", max_size=8),
    st.text(max_size=3),  # anything, now and then
)
text = st.lists(piece, max_size=8).map("".join)


def _holds_added(backend: Tokenizer, text: str) -> bool:
    normalized = backend.normalizer.normalize_str(text) if backend.normalizer else text
    for token in backend.get_added_tokens_decoder().values():
        if token.content in text or (
            token.normalized and backend.normalizer.normalize_str(token.content) in normalized
        ):
            return True
    return False


@pytest.fixture(scope="module")
def counters(unigrams) -> Counters:
    return Counters(
        unigrams,
        "sentencepiece-unigram",
        lambda _, backend, batch: sum(not _holds_added(backend, t) for t in batch),
    )


@settings(max_examples=300, deadline=None)
@given(batch=st.lists(text, min_size=1, max_size=30))
def test_unigram_counts_equal_the_tokenizer(counters, batch):
    counters.count_like_the_tokenizer(batch)


@settings(max_examples=300, deadline=None)
@given(texts=st.lists(text, max_size=10))
def test_metaspace_pieces_are_the_pre_tokenizers(unigrams, texts):
    for name in ("xlmr", "whitespace-split"):
        backend = unigrams[name]
        cut = FastCounter(backend).rule.metaspace
        for t in texts:
            normalized = backend.normalizer.normalize_str(t)
            for s in (t, normalized):  # the pieces of any text, normalized or not
                assert cut.pieces(s) == [p for p, _ in backend.pre_tokenizer.pre_tokenize_str(s)], (name, s)


ASCII = "".join(map(chr, range(128)))
ascii_text = st.lists(
    st.one_of(st.text(alphabet=ASCII, max_size=8), st.sampled_from(["\r\n", "  ", "\t\n", " x ", "\x1c"])),
    max_size=8,
).map("".join)


@pytest.fixture(scope="module")
def normalizers_(xlmr) -> dict[str, Tokenizer]:
    """Normalizers that start with the precompiled map, each followed by steps the ASCII way
    does itself, and two it does not take."""
    precompiled = json.loads(xlmr.to_str())["normalizer"]["normalizers"][0]

    def after(*steps: dict) -> Tokenizer:
        return variant(xlmr, normalizer={"type": "Sequence", "normalizers": [precompiled, *steps]})

    def replace(pattern: dict, content: str) -> dict:
        return {"type": "Replace", "pattern": pattern, "content": content}

    return {
        "xlmr": xlmr,  # Strip on the right, runs of spaces to ▁
        "alone": variant(xlmr, normalizer=precompiled),
        "strips": after(
            {"type": "Strip", "strip_left": True, "strip_right": True}, replace({"String": "a"}, "bb")
        ),
        "left": after(
            {"type": "Strip", "strip_left": True, "strip_right": False}, replace({"Regex": " {2,}"}, " ")
        ),
        "other-regex": after(replace({"Regex": "[ab]+"}, "\\1")),  # not done here: the normalizer runs
        "nfkc-first": variant(
            xlmr, normalizer={"type": "Sequence", "normalizers": [{"type": "NFKC"}, precompiled]}
        ),
    }


@settings(max_examples=200, deadline=None)
@given(texts=st.lists(st.one_of(ascii_text, text), max_size=20))
def test_the_ascii_way_normalizes_as_the_normalizer(normalizers_, texts):
    for name, backend in normalizers_.items():
        normalize = Normalizer(backend)
        assert (normalize.changed is None) == (name in ("other-regex", "nfkc-first")), name
        assert normalize(texts) == [backend.normalizer.normalize_str(t) for t in texts], name


@settings(max_examples=300, deadline=None)
@given(texts=st.lists(ascii_text.map(lambda t: t.replace("\x00", "")), max_size=12))
def test_the_ascii_cut_is_the_python_cut(texts):
    """ASCII texts are cut with numpy on their bytes: the same pieces, each text's in order,
    and two pieces share a fingerprint only where they are the same."""
    key = RunKey()
    for whitespace_split in (False, True):
        cut = Metaspace("", whitespace_split, None, None)
        pieces = _ascii_pieces(texts, whitespace_split, key)
        strings = pieces.strings(np.arange(len(pieces.owner)))
        assert [
            [s for s, o in zip(strings, pieces.owner, strict=True) if o == i] for i in range(len(texts))
        ] == [cut.pieces(t) for t in texts]
        assert len(set(zip(strings, pieces.prints.tolist(), strict=True))) == len(set(strings))
        assert len(set(pieces.prints.tolist())) == len(set(strings))


def test_whitespace_is_where_whitespace_split_cuts():
    """Code point by code point, ``WHITESPACE`` is Rust's ``char::is_whitespace``: where the
    pre-tokenizer cuts (Python's ``str.split`` also cuts at \\x1c-\\x1f)."""
    split = pre_tokenizers.WhitespaceSplit().pre_tokenize_str
    cuts = {chr(c) for c in range(0x3100) if len(split(f"a{chr(c)}b")) == 2}
    assert cuts == set(WHITESPACE)
    assert all(len(split(f"a{chr(c)}b")) == 1 for c in range(0x3100, 0x110000, 7) if not 0xD800 <= c < 0xE000)


def test_texts_holding_an_added_tokens_text_go_to_the_tokenizer(unigrams):
    backend = unigrams["added"]
    counter = FastCounter(backend)
    batch = ["a <mask> here", "ﬁsh and chips", "fishing", "東京タワー", "query: what", "＜mask＞", "plain"]
    assert counter.count(batch).tolist() == count_tokens(backend, batch).tolist()
    # "ﬁsh" (normalized "fish"), "fishing" and "東京タワー" hold one; "＜mask＞" is "<mask>"
    # only once normalized, where the tokenizer does not look for a special token
    assert (counter.texts, counter.fast) == (7, 2)


def test_a_shared_cut_counts_each_tokenizer_with_its_own_model(unigrams):
    """The XLM-R layout and its byte-fallback twin normalize and cut alike: one cut, one
    cache, a column each."""
    counters = [FastCounter(unigrams["xlmr"]), FastCounter(unigrams["byte-fallback"])]
    share_caches(counters)
    assert counters[0].caches["metaspace"] is counters[1].caches["metaspace"]
    batch = [*ENGLISH, *JAPANESE, "naïve café ①", "Ωmega ☃ 😀 \U0002a6d6"]  # unknown to both vocabularies
    got = count_together(counters, batch)
    assert got.tolist() == [count_tokens(c.backend, batch).tolist() for c in counters]
    assert got[1].sum() > got[0].sum()  # unknown characters spelled in bytes


def test_model_count_counts_each_piece_alone(xlmr):
    pieces = ["▁hello", "▁", "▁東京の天気", "▁<mask>", "▁☃☃", "▁" + "ab" * 300]
    alone = variant(xlmr, normalizer=None, pre_tokenizer=None, post_processor=None, added_tokens=[])
    expected = [len(alone.encode(p, add_special_tokens=False)) for p in pieces]
    assert model_counts(xlmr.model, pieces).tolist() == expected


def test_a_wrong_piece_count_is_caught(xlmr, monkeypatch):
    monkeypatch.setattr(counter_module, "model_counts", lambda model, pieces: model_counts(model, pieces) + 1)
    counter = FastCounter(xlmr)
    counter.count(["a wrong count is caught"])
    assert counter.mismatch is not None and counter.path == "tokenizer"


@pytest.mark.parametrize(
    "parts",
    [
        {"pre_tokenizer": {**metaspace(), "split": False}},  # one piece a text: nothing to reuse
        {"pre_tokenizer": metaspace("never")},
        {"pre_tokenizer": {**metaspace(), "replacement": "_"}},
        {
            "pre_tokenizer": {
                "type": "Sequence",
                "pretokenizers": [{"type": "WhitespaceSplit"}, metaspace("first")],
            }
        },
        {"pre_tokenizer": {"type": "Whitespace"}},
        {"post_processor": {"type": "RobertaProcessing", "sep": ["</s>", 2], "cls": ["<s>", 0]}},
        {"truncation": {"direction": "Right", "max_length": 8, "strategy": "LongestFirst", "stride": 0}},
    ],
)
def test_other_layouts_are_refused(xlmr, parts):
    assert recognise(xlmr) is not None
    refused = variant(xlmr, **parts)
    assert recognise(refused) is None and FastCounter(refused).path == "tokenizer"


def test_a_model_without_an_unknown_token_and_an_empty_normalized_token_are_refused(xlmr):
    spec = json.loads(xlmr.to_str())
    assert recognise(variant(xlmr, model={**spec["model"], "unk_id": None})) is None
    zero_width = Tokenizer.from_str(xlmr.to_str())
    zero_width.add_tokens([AddedToken("\u200b")])  # normalized to nothing
    assert recognise(zero_width) is None


def _profile(p) -> dict:
    """The whole profile but what only says how the scan ran (its timings, shards and path)."""
    d = p.to_dict()
    d.pop("run")
    return d


def test_profiles_equal_exact_only(unigrams, corpora, tmp_path):
    rows = [
        {"query": f"query: {q}", "pos": [p], "neg": [n, "＜mask＞ ①", "  spaced   out  ", "a <mask> b"]}
        for q, p, n in zip(JAPANESE + CHINESE, ENGLISH + JAPANESE, CHINESE + ENGLISH, strict=False)
    ]
    cjk = write_lines(tmp_path / "cjk.jsonl", [json.dumps(r, ensure_ascii=False).encode() for r in rows])
    paths = [str(corpora), str(EXAMPLES), str(cjk)]
    for name in ("xlmr", "whitespace-split"):
        unigrams[name].save(str(tmp_path / f"{name}.json"))
        profiles = {
            exact: scan(
                paths,
                tokenizer=str(tmp_path / f"{name}.json"),
                shard_bytes=20_000,
                workers=2,
                exact_only=exact,
            )
            for exact in (False, True)
        }
        assert _profile(profiles[False]) == _profile(profiles[True]), name
        counting = profiles[False].run.counting
        assert counting.path == "chunks:sentencepiece-unigram" and 0.9 < counting.fast_share < 1, name
        assert counting.fast_path_failed is None
    # and the counts are the tokenizer's own, text by text
    queries = [r["query"] for r in rows]
    got = scan(str(cjk), tokenizer=str(tmp_path / "xlmr.json")).to_dict()["fields"]["query"]["tokens"]
    assert got == int(count_tokens(unigrams["xlmr"], queries).sum())


def test_the_spec_is_json_loads_with_the_models_bulk_parsed_on_demand(xlmr, tok):
    """``tokenizer_spec`` against ``json.loads``: every member the same, the model's vocabulary
    and merges left unparsed until ``member`` parses them (Unigram, WordPiece)."""
    for backend in (xlmr, tok.backend):
        text = backend.to_str()
        spec, want = tokenizer_spec(text), json.loads(text)
        model = spec.pop("model")
        assert spec == {k: v for k, v in want.items() if k != "model"}
        assert type(model["vocab"]) is msgspec.Raw
        assert {k: member(model, k) for k in model} == want["model"]
    with pytest.raises(ValueError):
        tokenizer_spec("[1]")
    assert tokenizer_spec('{"model": null}') == {"model": None}
