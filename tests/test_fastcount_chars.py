"""BERT's non-ASCII texts made ASCII (lenprof/count/fast/chars.py) count as the tokenizer counts them.

The tokenizers are Chinese WordPieces like bge-*-zh-v1.5's (benchmarks/chinese_bert.py: the BERT
normalizer with Chinese characters spaced out, uncased), trained here on the zh_CN and ja message
catalogs' texts where the machine has them (a few sentences where it has not), and variants of it:
cased, cased with accents stripped, without the spacing, with added tokens of every kind. Every
entry the characters' table learns is held against the tokenizer itself, code point by code
point; property tests draw Chinese, Japanese, mixed, accented and instruction-prefixed texts and
the characters just outside the table (fullwidth letters, emoji, control characters)."""

from __future__ import annotations

import importlib.util
import json
import random
from pathlib import Path

import numpy as np
import pytest
from conftest import EXAMPLES, REPO, write_lines
from hypothesis import given, settings
from hypothesis import strategies as st
from test_fastcount_added import Counters, added, with_normalizer
from tokenizers import AddedToken, Tokenizer

from lenprof import scan
from lenprof.count.exact import count_tokens
from lenprof.count.fast.chars import GONE, ONE, OTHER, Characters
from lenprof.count.fast.counter import FastCounter
from lenprof.rows.options import ScanOptions

INSTRUCTION = "为这个句子生成表示以用于检索相关文章："  # bge-*-zh-v1.5's query instruction
SENTENCES = [
    "在一次点击开始重复前延迟的毫秒数（如点击微调按钮时）。",
    "用法：%s [选项]... [ 文件 | 参数1 参数2 ]",
    "新的编码(%s)与模板数据库(%s)的编码不兼容，请检查“设置”。",
    '无法从引擎"%2$s"读取私有SSL钥"%1$s": %3$s',
    "ファイルを開けません: %s",
    "日本語のテキストです。カタカナとひらがな、漢字。",
    "Schrödinger 方程 Ångström 单位 café naïve résumé",
    "B树索引检查选项: --heapallindexed",
]


def _chinese_bert():
    spec = importlib.util.spec_from_file_location("chinese_bert", REPO / "benchmarks" / "chinese_bert.py")
    module = importlib.util.module_from_spec(spec)  # type: ignore[arg-type]
    spec.loader.exec_module(module)  # type: ignore[union-attr]
    return module


@pytest.fixture(scope="module")
def catalogs() -> list[str]:
    """The zh_CN and ja catalogs' texts and their English (none where the machine has none)."""
    return _chinese_bert().training_texts()


@pytest.fixture(scope="module")
def zh_bert(catalogs, tmp_path_factory) -> Path:
    texts = random.Random(24).sample(catalogs, min(len(catalogs), 4000)) + SENTENCES * 20
    return _chinese_bert().build(tmp_path_factory.mktemp("bert-zh"), texts, vocab_size=3000)


# Added tokens of every kind the rule takes, on Chinese: Chinese characters normalized (the
# normalizer spaces them out: the token matches " 中 "), as written, taking the spaces after or
# before them; CJK punctuation; accented words normalized and as written; RoBERTa's lstrip mask
TOKENS = [
    AddedToken("中"),
    AddedToken("文", normalized=False),
    AddedToken("检", rstrip=True),
    AddedToken("相", lstrip=True),
    AddedToken("。"),
    AddedToken("Ångström"),
    AddedToken("Schrödinger", normalized=False),
]
SPECIAL = [AddedToken("<mask>", special=True, lstrip=True)]


@pytest.fixture(scope="module")
def berts(zh_bert, tok) -> dict[str, Tokenizer]:
    base = Tokenizer.from_file(str(zh_bert / "tokenizer.json"))
    return {
        "zh-uncased": base,
        "zh-cased": with_normalizer(base, lowercase=False, strip_accents=False),
        "zh-cased-stripped": with_normalizer(base, lowercase=False, strip_accents=True),
        "zh-unspaced": with_normalizer(base, handle_chinese_chars=False),
        "zh-added": added(base, TOKENS, SPECIAL),
        "zh-cased-added": added(with_normalizer(base, lowercase=False, strip_accents=False), TOKENS, SPECIAL),
        # a token that keeps to whole words: punctuation is no longer one token apart
        "zh-single-word": added(
            base, [AddedToken("NaCl", single_word=True), AddedToken("索", single_word=True)]
        ),
        "minilm-added": added(tok.backend, TOKENS, SPECIAL),
    }


@pytest.mark.parametrize("name", ["zh-uncased", "zh-cased-stripped", "zh-added", "zh-single-word"])
def test_every_character_the_table_takes_counts_as_the_tokenizer_does(berts, name):
    """Code point by code point (all of them below U+30000 and the tags and variation selectors
    of plane 14): a one-token character is one token between any letters, a space or a deleted
    character changes no count, in the tokenizer itself."""
    backend = berts[name]
    chars = Characters(backend)
    codes = [c for c in [*range(0xA0, 0x30000), *range(0xE0000, 0xE01F0)] if not 0xD800 <= c < 0xE000]
    chars.learn(codes)
    kinds = chars.table[codes]
    taken = [c for c, k in zip(codes, kinds.tolist(), strict=True) if k != OTHER]
    instead = {ONE: " ", GONE: "", ord(" "): " "}
    for left, right in [("ab", "cd"), ("1", "é")]:
        texts = [left + chr(c) + right for c in taken]
        plain = [left + instead[int(chars.table[c])] + right for c in taken]
        ones = np.array([int(chars.table[c] == ONE) for c in taken])
        assert (count_tokens(backend, texts) == count_tokens(backend, plain) + ones).all()
    # learnt side by side as one learns them one at a time
    alone = Characters(Tokenizer.from_str(backend.to_str()))
    alone.table = alone.table.copy()
    alone.table[codes] = 255
    for c in codes[::97]:
        alone.learn([c])
    assert (alone.table[codes[::97]] == kinds[::97]).all()
    # and what they are: the catalogs' CJK punctuation is one token apart but where a token
    # keeps to whole words, Chinese characters always (but an added token's)
    counts = {k: int((kinds == k).sum()) for k in (ONE, GONE, OTHER)}
    assert counts[ONE] > 80_000 and counts[OTHER] > 50_000, counts
    assert chars.table[ord("，")] == (OTHER if name == "zh-single-word" else ONE)
    assert chars.table[ord("中")] == (OTHER if name == "zh-added" else ONE)
    assert chars.table[ord("é")] == chars.table[ord("Ｈ")] == OTHER


def test_a_chinese_text_takes_the_words_cut_not_chunks(berts):
    backend = berts["zh-uncased"]
    counter = FastCounter(backend)
    texts = [INSTRUCTION + "什么是BERT？", "B树索引检查选项:", "全角\u3000空格，半角 spaces。", "检索 query"]
    assert counter.count(texts).tolist() == count_tokens(backend, texts).tolist()
    assert len(counter.caches["chunks"]) == 0 and counter.fast == len(texts)
    assert len(counter.caches["words"]) == len({"bert", "b", ":", "spaces", "query"})
    # a character the table does not take sends its text to the chunks: kana are letters to
    # BERT (a word runs on through them), and so are fullwidth letters
    others = ["日本語のテキストです。", "ＢＥＲＴ是什么"]
    assert counter.count(others).tolist() == count_tokens(backend, others).tolist()
    assert len(counter.caches["chunks"]) > 0 and counter.fast == len(texts) + len(others)


CJK = "中文日本語漢字检索相关文章豈\uf900\u3400\U00020000\U0002f800"
KANA = "のテキストですカタカナひらがなアイウ"
PUNCT = "，。、：；！？「」『』（）【】《》“”‘’…—～·"
ACCENTS = "éèÉñÅåøßæİıǅﬁ\u212b\u212a\u1e9e"
MARKS = ["e\u0301", "a\u0308\u0301", "o\u0323\u0302", "\u0301", "中\u0301", "，\u0308", "İ\u0307"]
OUTSIDE = "ＡＢａｂ０１😀Ωω─\u200b\u200d\u00ad\ufeff\u3000\xa0\u2009\x0b\x85"
SPELLINGS = [
    "中",
    "文",
    "。",
    "检",
    "相",
    "索",
    "Ångström",
    "angstrom",
    "ANGSTRÖM",
    "Schrödinger",
    "schrodinger",
]
SPELLINGS += ["<mask>", "<MASK>", "NaCl", "nacl", "[SEP]", INSTRUCTION, "query: ", "passage: "]
text = st.lists(
    st.one_of(
        st.sampled_from(SENTENCES + SPELLINGS + MARKS),
        st.text(alphabet=CJK + PUNCT + " \u3000\xa0\u200b\u0301", max_size=12),  # all in the table
        st.text(alphabet=CJK + KANA + PUNCT, max_size=12),
        st.text(alphabet=CJK + PUNCT + ACCENTS + OUTSIDE + "abcXYZ019 .,:-'\t\n", max_size=8),
        st.text(alphabet="abcdefXYZ0123456789 .,;:!?'\"()-_/#%$", max_size=12),
        st.sampled_from([" ", "  ", "\n", "\u3000", "\u200b"]),
    ),
    max_size=8,
).map("".join)


# texts of characters the table takes (for the uncased tokenizers: the combining mark goes)
mapped = st.lists(
    st.one_of(
        st.sampled_from(["中", "文", "。", "检", "相", "索", INSTRUCTION, "nacl", "<mask>", "[SEP]"]),
        st.text(alphabet=CJK + PUNCT + " \u3000\xa0\u200b\u0301", max_size=12),
        st.text(alphabet="abcdefXYZ0123456789 .,;:!?'\"()-_/#%$", max_size=12),
    ),
    max_size=8,
).map("".join)


@pytest.fixture(scope="module")
def counters(berts) -> Counters:
    return Counters(berts)


@settings(max_examples=200, deadline=None)
@given(batch=st.lists(st.one_of(text, mapped), min_size=1, max_size=20))
def test_chinese_japanese_and_accented_texts_count_as_the_tokenizer_does(counters, batch):
    counters.count_like_the_tokenizer(batch, "bert-wordpiece")


@pytest.fixture(scope="module")
def zh_corpus(catalogs, tmp_path_factory) -> Path:
    """400 mined-negatives rows of catalog text (Chinese, Japanese and their English), passages
    repeating, as make_corpus.py makes them; the queries of a few with bge-zh's instruction."""
    rng = random.Random(24)
    pool = rng.sample(catalogs, min(len(catalogs), 700)) if catalogs else SENTENCES * 3
    rows = []
    for i in range(400):
        pos, *neg = rng.sample(pool[: 300 + i], 8)
        query = f"{pos[: rng.randint(4, 12)]} #{i}"
        rows.append({"query": INSTRUCTION + query if i % 7 == 0 else query, "pos": [pos], "neg": neg})
    lines = [json.dumps(r, ensure_ascii=False).encode() for r in rows]
    return write_lines(tmp_path_factory.mktemp("zh") / "mined-zh.jsonl", lines)


def _profile(p) -> dict:
    """The whole profile but what only says how the scan ran (its timings and shards)."""
    d = p.to_dict()
    run = d.pop("run")
    return {"profile": d, "counting": {k: v for k, v in run["counting"].items() if k != "self_checked"}}


def test_the_zh_corpus_profiles_equal_exact_only(zh_bert, zh_corpus, corpora):
    paths = [str(zh_corpus), str(corpora), str(EXAMPLES)]
    options = ScanOptions(query_instruction=INSTRUCTION)
    profiles = {
        (exact, workers): _profile(
            scan(
                paths, options, tokenizer=str(zh_bert), workers=workers, shard_bytes=20_000, exact_only=exact
            )
        )
        for exact in (False, True)
        for workers in (1, 2)
    }
    fast = profiles[False, 2]
    assert fast["counting"]["path"] == "chunks:bert-wordpiece" and fast["counting"]["fast_share"] > 0.9
    for key, profile in profiles.items():
        assert profile["profile"] == fast["profile"], key
    # the catalogs' texts take the fast path, but the few with a control character (an escape)
    zh = scan(str(zh_corpus), options, tokenizer=str(zh_bert), workers=1)
    assert zh.run.counting.fast_share > 0.99
