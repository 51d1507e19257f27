"""Byte-level BPE over any script (lenprof/count/fast/bytelevel.py) counts as the tokenizer does.

Two pipelines, built here from the ``tokenizers`` library's own components and trained on text
of many scripts: Qwen2's (gte-Qwen2, Qwen3-Embedding: NFC, Qwen2's split regex, ByteLevel
without its regex, ``<|endoftext|>`` after each text; benchmarks/qwen2_bpe.py builds it) and
GPT-2's (ByteLevel with its regex, RoBERTa's specials). What holds the cut to the tokenizer:

- every code point Python assigns, in contexts that tell each class apart, is cut as the
  tokenizer's own Split cuts it (the classes come from its regex engine);
- every text Python's NFC leaves unchanged, the tokenizer's NFC leaves unchanged too (single
  code points, marks of every combining class in both orders, every composite's decomposition);
- property tests against the tokenizer: CJK, Japanese, Korean (and its conjoining jamo, which
  NFC composes), Arabic with its marks, Devanagari, emoji, combining marks, digits of other
  scripts, every kind of whitespace and newline, contractions in any case, unassigned code
  points, added tokens inside texts, and instruction prompts;
- a corpus of Chinese rows profiles exactly as ``--exact-only`` does.
"""

from __future__ import annotations

import importlib.util
import json
import random
import re
import unicodedata

import numpy as np
import pytest
from conftest import REPO, absent, write_lines
from counting import Counters
from hypothesis import given, settings
from hypothesis import strategies as st
from tokenizers import AddedToken, Regex, Tokenizer, decoders, models, normalizers, pre_tokenizers, processors
from tokenizers import trainers as tokenizer_trainers

from lenprof import scan
from lenprof.count.exact import count_tokens
from lenprof.count.fast import bytelevel
from lenprof.count.fast.counter import FastCounter
from lenprof.count.fast.rule import recognise
from lenprof.hashing import RunKey
from lenprof.rows.options import ScanOptions


def _qwen2_bpe():
    spec = importlib.util.spec_from_file_location("qwen2_bpe", REPO / "benchmarks" / "qwen2_bpe.py")
    module = importlib.util.module_from_spec(spec)  # type: ignore[arg-type]
    spec.loader.exec_module(module)  # type: ignore[union-attr]
    return module


INSTRUCTION = "Instruct: Given a web search query, retrieve relevant passages\nQuery: "
TRAINING = [
    "The quick brown fox jumps over the lazy dog, again and again! It's what we'll do; they'd say.",
    "Embedding models map queries and passages to vectors: cosine similarity ranks them (p95 = 256).",
    INSTRUCTION + "what is the capital of France?",
    "我们今天去公园，天气很好。嵌入模型把查询和段落映射为向量。",
    "東京の天気は晴れです。カタカナとひらがな、漢字。",
    "한국어 문장은 띄어쓰기를 합니다. 안녕하세요!",
    "مرحبا بالعالم، هذا نصٌّ عربيٌّ مُشَكَّل ٣٤٥",
    "हिन्दी में एक वाक्य। नमस्ते दुनिया",
    "Café naïve résumé — «quotes», Ωμέγα, Привет мир, ß ſ İ ǅ ²³ ½ Ⅻ ①",
    "emoji 😀👍🏽 👩‍👩‍👧 🇫🇷 and tabs\tnewlines\r\n\r\n  spaces   end",
] * 30


def qwen2(folder) -> Tokenizer:
    """The Qwen2 pipeline as benchmarks/ builds it, trained on ``TRAINING``."""
    built = _qwen2_bpe().build(folder, TRAINING, vocab_size=700)
    return Tokenizer.from_file(str(built / "tokenizer.json"))


def gpt2(prefix_space: bool) -> Tokenizer:
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=prefix_space)
    tok.decoder = decoders.ByteLevel()
    trainer = tokenizer_trainers.BpeTrainer(
        vocab_size=700,
        special_tokens=["<s>", "<pad>", "</s>", "<unk>", "<mask>"],
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tok.train_from_iterator(TRAINING, trainer)
    tok.post_processor = processors.RobertaProcessing(("</s>", 2), ("<s>", 0))
    return tok


def with_tokens(backend: Tokenizer, tokens: list[AddedToken]) -> Tokenizer:
    tok = Tokenizer.from_str(backend.to_str())
    tok.add_tokens(tokens)
    return Tokenizer.from_str(tok.to_str())


@pytest.fixture(scope="module")
def backends(tmp_path_factory) -> dict[str, Tokenizer]:
    q = qwen2(tmp_path_factory.mktemp("qwen2"))
    nfc_gpt2 = gpt2(False)
    nfc_gpt2.normalizer = normalizers.NFC()
    return {
        "qwen2": q,
        # tokens added normalized (NFC'd) and as written, one taking the spaces around it
        "qwen2/added": with_tokens(
            q, [AddedToken("Schrödinger"), AddedToken("<tool>", normalized=False, lstrip=True, rstrip=True)]
        ),
        "gpt2/prefix-space": gpt2(True),
        "gpt2": gpt2(False),
        "gpt2/nfc": nfc_gpt2,
    }


# What could break the cut, by script and by class
SCRIPTS = (
    "我们今天去公园，天气很好。「引号」《书名》"  # Chinese, its punctuation
    "東京のカタカナｶﾀｶﾅ"  # Japanese, half-width kana
    "한국어 \u1100\u1161\u11a8"  # Hangul, and conjoining jamo (NFC composes them: refused)
    "مرحبا نصٌّ ٣٤٥"  # Arabic, its marks and digits
    "हिन्दी"  # Devanagari: marks that are no letters
    "😀👍🏽👩\u200d👩\u200d👧🇫🇷"  # emoji, skin tones, ZWJ sequences, flags
    "e\u0301é\u0308\u0323ñÅ\u212b\u212aK"  # combining marks (some NFC changes), singletons
    "ß ſ İ ǅ ʰ ² ½ Ⅻ ① ٣ ０１"  # case oddities, modifier letters, numbers of other kinds
    "'’ʼ＇"  # apostrophes
)
WHITE = " \t\n\r\x0b\x0c\x1c\x1f\x85\xa0\u1680\u2000\u2028\u2029\u202f\u3000\u200b\ufeff"
ODD = "\x00\x7f\x9f\ue000\U000f0000\u0378\ufffe\uffff\U000e0001\U0010ffff"  # controls, private, unassigned
ASCII = 'abcdefghijklmnopqrstuvwxyzABCDELMRSTVXYZ0123456789.,;:!?"()[]{}<>-_/\\@#$%^&*+=~`|'
WORDS = [
    "it's", "we'll", "they'd", "I'm", "'S", "'LL", "'Re", "'VE", "'ſ", "x'sa", " 's", "'''s", "!!x",
    "<|endoftext|>", "<|ENDOFTEXT|>", "<|im_start|>", "<|im_end|>", "<s>", "</s>", "<mask>", "<tool>",
    "Schrödinger", "Schro\u0308dinger", "schrödinger", INSTRUCTION, "\r\n", "\n\n", "  \n ", "!\n\n x",
]  # fmt: skip
piece = st.one_of(
    st.sampled_from(WORDS),
    st.text(alphabet=ASCII + " ", max_size=12),
    st.text(alphabet=SCRIPTS + WHITE[:8], max_size=8),
    st.text(alphabet=ASCII[:30] + SCRIPTS + WHITE + ODD + "'", max_size=5),
)
text = st.lists(piece, max_size=10).map("".join)


def promised(name: str, backend: Tokenizer, batch: list[str]) -> int:
    """How many texts the fast path must take: those that hold no added token's text in any
    case and no code point Python leaves unassigned (nor a lone surrogate), and, where the
    normalizer is NFC, that NFC leaves as they are (and but the empty text)."""
    contents = [t.content for t in backend.get_added_tokens_decoder().values()]
    nfc = backend.normalizer is not None

    def taken(t: str) -> bool:
        return (
            t != ""
            and not any(re.search(re.escape(c), t, re.IGNORECASE) for c in contents)
            and all(unicodedata.category(c) not in ("Cn", "Cs") for c in t)
            and (not nfc or unicodedata.is_normalized("NFC", t))
        )

    return sum(map(taken, batch))


@pytest.fixture(scope="module")
def counters(backends) -> Counters:
    return Counters(backends, "byte-level-bpe", promised)


@settings(max_examples=250, deadline=None)
@given(batch=st.lists(text, min_size=1, max_size=30))
def test_byte_level_counts_any_script_as_the_tokenizer_does(counters, batch):
    counters.count_like_the_tokenizer(batch)


@settings(max_examples=40, deadline=None)
@given(batch=st.lists(st.lists(piece, min_size=20, max_size=60).map("".join), min_size=1, max_size=8))
def test_long_mixed_texts_count_as_the_tokenizer_does(counters, batch):
    counters.count_like_the_tokenizer([INSTRUCTION + t for t in batch] + batch)


def test_the_rules_of_qwen2_and_gpt2(backends):
    rule = recognise(backends["qwen2"])
    assert (rule.split, rule.nfc, rule.prefix_space, rule.specials) == ("qwen2", True, False, 1)
    assert rule.added.pattern == r"<\|endoftext\|>|<\|im_start\|>|<\|im_end\|>"
    rule = recognise(backends["gpt2/prefix-space"])
    assert (rule.split, rule.nfc, rule.prefix_space, rule.specials) == ("gpt2", False, True, 2)
    assert recognise(backends["gpt2/nfc"]).nfc


def test_texts_the_cut_cannot_take_go_to_the_tokenizer(backends):
    counter = FastCounter(backends["qwen2"])
    taken = ["我们今天去公园", "Hello, world!", INSTRUCTION + "天气", "한국어", "é", "😀 👍🏽", "\x00\x0b"]
    left = ["", "e\u0301", "\u1100\u1161", "K\u212a", "x\u0378y", "a<|endoftext|>", "<|Im_End|>", "\uffff"]
    batch = taken + left
    assert counter.count(batch).tolist() == count_tokens(counter.backend, batch).tolist()
    assert (counter.texts, counter.fast) == (len(batch), len(taken))


def _split_pieces(pattern: str, chunks: list[str]) -> list[str]:
    split = pre_tokenizers.Split(Regex(pattern), behavior="isolated")
    return [p for chunk in chunks for p, _ in split.pre_tokenize_str(chunk)]


@pytest.mark.parametrize("split", ["qwen2", "gpt2"])
def test_every_code_point_is_cut_as_the_tokenizer_cuts_it(split):
    """Each code point Python assigns, in contexts that tell every class apart (a letter, a
    number, a space, other whitespace, a newline, an apostrophe, another character, and each of
    the contractions' letters in any case), is cut where the tokenizer's own Split cuts it."""
    pattern = {"qwen2": bytelevel.QWEN2, "gpt2": bytelevel.GPT2}[split]
    chars = [chr(c) for c in range(0x110000) if unicodedata.category(chr(c)) not in ("Cn", "Cs")]
    context = "'{0}ex'r{0}x'l{0}x{0}sa{0}! {0}"
    chunks = ["".join(context.format(c) for c in chars[i : i + 200]) for i in range(0, len(chars), 200)]
    left_out, pieces = bytelevel.cut(chunks, split, False, RunKey())
    assert not left_out.any()  # no assigned code point falls between two classes
    assert pieces.strings(np.arange(len(pieces.prints))) == _split_pieces(pattern, chunks)


def test_what_python_leaves_nfc_the_tokenizer_leaves_nfc():
    """Python's Unicode (unicodedata) and the tokenizer's (Rust) are of different versions: for
    every code point Python assigns, alone, after a letter with a mark of every combining class
    on either side, and every composite's decomposition, a text Python's NFC leaves unchanged
    the tokenizer's NFC leaves unchanged (and the cut refuses what Python does not assign)."""
    nfc = normalizers.NFC().normalize_str
    chars = [chr(c) for c in range(0x110000) if unicodedata.category(chr(c)) not in ("Cn", "Cs")]
    marks = {}  # a mark of each combining class, without a decomposition of its own
    for c in chars:
        if unicodedata.combining(c) and not unicodedata.decomposition(c):
            marks.setdefault(unicodedata.combining(c), c)
    texts = [*chars, *(unicodedata.normalize("NFD", c) for c in chars)]
    texts += [f"a{c}{m}" for c in chars if unicodedata.combining(c) for m in marks.values()]
    texts += [f"a{m}{c}" for c in chars if unicodedata.combining(c) for m in marks.values()]
    texts += [f"{c}{m}" for c in chars[:0x3000] for m in list(marks.values())[:4]]
    unchanged = [t for t in texts if unicodedata.is_normalized("NFC", t)]
    assert len(unchanged) > 300_000
    for i in range(0, len(unchanged), 20_000):
        group = unchanged[i : i + 20_000]
        joined = "\x00".join(group)  # NUL: a starter that composes with nothing
        assert nfc(joined) == joined


@pytest.mark.parametrize(
    "change",
    [
        lambda spec: spec.update(normalizer={"type": "NFKC"}),
        lambda spec: spec["pre_tokenizer"]["pretokenizers"][0].update(behavior="Removed"),
        lambda spec: spec["pre_tokenizer"]["pretokenizers"][0].update(invert=True),
        lambda spec: spec["pre_tokenizer"]["pretokenizers"][0]["pattern"].update(
            Regex=bytelevel.QWEN2.replace(r"\p{N}", r"\p{N}{1,3}", 1)  # Llama 3's: not known yet
        ),
        lambda spec: spec["pre_tokenizer"]["pretokenizers"][1].update(add_prefix_space=True),
        lambda spec: spec["pre_tokenizer"]["pretokenizers"][1].update(use_regex=True),
        lambda spec: spec["pre_tokenizer"]["pretokenizers"].append(
            {"type": "Digits", "individual_digits": True}
        ),
        lambda spec: spec["model"].update(dropout=0.1),
    ],
)
def test_other_byte_level_pipelines_are_refused(backends, change):
    spec = json.loads(backends["qwen2"].to_str())
    change(spec)
    backend = Tokenizer.from_str(json.dumps(spec))
    assert recognise(backend) is None
    assert FastCounter(backend).path == "tokenizer"


@pytest.fixture(scope="module")
def chinese() -> list[str]:
    texts = _qwen2_bpe().chinese_texts()
    if len(texts) < 1000:
        absent("the zh_CN message catalogs are not in /usr/share/locale", "LENPROF_REQUIRE_CATALOGS")
    return texts


def _profile(p) -> dict:
    """The whole profile, and what the run says of its rows and texts, but how it ran (its
    timings, shards and counting path)."""
    d = p.to_dict()
    run = d.pop("run")
    how = ("engine", "workers", "shards", "seconds", "tokenize_s", "counting")
    return {**d, "run": {k: v for k, v in run.items() if k not in how}}


def test_a_chinese_corpus_profiles_as_exact_only_does(chinese, tmp_path):
    """Mined-negatives rows of the catalogs' Chinese (and their English sources' kind of text:
    format strings, options), scanned with a Qwen2 tokenizer trained on them, with and without
    an instruction before each query, with one worker and two."""
    folder = _qwen2_bpe().build(tmp_path / "qwen2", chinese, vocab_size=4000)
    rng = random.Random(24)
    pool = rng.sample(chinese, 900)
    rows = []
    for i in range(600):
        pos, *neg = rng.sample(pool[: 300 + i], 8)
        rows.append({"query": f"{pos[: rng.randint(4, 12)]} #{i}", "pos": [pos], "neg": neg})
    src = write_lines(tmp_path / "zh.jsonl", [json.dumps(r, ensure_ascii=False).encode() for r in rows])
    for options in (ScanOptions(), ScanOptions(query_instruction=INSTRUCTION)):
        profiles = {
            (exact, workers): scan(
                str(src),
                options,
                tokenizer=str(folder),
                workers=workers,
                shard_bytes=20_000,
                exact_only=exact,
            )
            for exact in (False, True)
            for workers in (1, 2)
        }
        first = _profile(profiles[True, 1])
        assert all(_profile(p) == first for p in profiles.values())
        counting = profiles[False, 2].run.counting
        assert counting.path == "chunks:byte-level-bpe" and counting.fast_share > 0.95
        assert counting.fast_path_failed is None
