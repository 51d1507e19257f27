"""The chunk-cache count (lenprof/fastcount/) is never different from the tokenizer's.

Property tests draw texts from printable ASCII and from the characters that could break the
rule (the ones ``str.split`` treats differently from BERT, other whitespace, format characters,
accents and combining marks, CJK, emoji...), for each family a rule covers, with tokenizers
built here from the ``tokenizers`` library's own components."""

from __future__ import annotations

import json

import numpy as np
import pytest
from conftest import EXAMPLES, write_lines
from hypothesis import given, settings
from hypothesis import strategies as st
from tokenizers import Tokenizer, decoders, models, normalizers, pre_tokenizers, processors, trainers

from lenprof import scan
from lenprof.count.exact import count_tokens
from lenprof.count.fast import cache as fastcount
from lenprof.count.fast.counter import BATCH_CHARS, CHECK_FIRST, FastCounter, count_together, share_caches
from lenprof.count.fast.cuts import Words
from lenprof.count.fast.rule import recognise
from lenprof.hashing import RunKey, fingerprints
from lenprof.stats.runinfo import Counting

TRAINING = [
    "The quick brown fox jumps over the lazy dog, again and again!",
    "Embedding models map queries and passages to vectors; cosine similarity ranks them.",
    "FlagEmbedding's query_max_len and passage_max_len: 64 and 256 tokens (p95).",
    "Tokenizers split text into words, then WordPiece splits words into sub-words: ##ing.",
    "Café naïve résumé — accents, «quotes», and 中文 characters too.",
] * 20


def bert(lowercase: bool) -> Tokenizer:
    tok = Tokenizer(models.WordPiece(unk_token="[UNK]", max_input_chars_per_word=12))
    tok.normalizer = normalizers.BertNormalizer(
        lowercase=lowercase, strip_accents=None if lowercase else False
    )
    tok.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
    tok.decoder = decoders.WordPiece()
    trainer = trainers.WordPieceTrainer(
        vocab_size=400, special_tokens=["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
    )
    tok.train_from_iterator(TRAINING, trainer)
    cls, sep = tok.token_to_id("[CLS]"), tok.token_to_id("[SEP]")
    tok.post_processor = processors.TemplateProcessing(
        single="[CLS] $A [SEP]",
        pair="[CLS] $A [SEP] $B:1 [SEP]:1",
        special_tokens=[("[CLS]", cls), ("[SEP]", sep)],
    )
    return tok


@pytest.fixture(scope="module")
def families(tok) -> dict[str, Tokenizer]:
    return {"packaged-minilm": tok.backend, "bert-uncased": bert(True), "bert-cased": bert(False)}


SAFE = "abcdefghijklmnopqrstuvwxyzABCXYZ0123456789 \t\n\r.,;:!?'\"()[]{}<>-_/\\@#$%^&*+=~`|"
NEAR_MISS = (
    "\x0b\x0c\x1c\x1d\x1e\x1f\x85\x00\x7f\x9f"  # control: Python splits at some, BERT deletes them
    "\xa0\u1680\u2000\u2009\u200a\u2028\u2029\u202f\u205f\u3000"  # whitespace BERT turns into a space
    "\u200b\u200d\u00ad\ufeff\u180e\ue000\U000e0001\ufffd"  # format, private use, replacement
    "é\u0301\u0308ñßİǅﬁ\u1e9e"  # accents, combining marks, case that changes length
    "中文日本語한국어\uf900\u3400，。「」"  # CJK: spaced out one by one; CJK punctuation
    "😀👍🏽Ωω∑√"  # emoji, symbols
)
WORDS = ["[MASK]", "[SEP]", "[UNK]", "##ing", "supercalifragilistic", "embedding", "e-mail", "don't", "..."]
VOCAB_WORDS = ["ab", "cd", "the", "quick", "fox", "token", "##izer", "embedding", "a", "b", "new", "york"]
text = st.lists(
    st.one_of(
        st.sampled_from(WORDS),
        st.text(alphabet=SAFE, max_size=20),
        st.text(alphabet=SAFE + NEAR_MISS, max_size=6),
        # a near-miss character between two words: where a wrong split would show
        st.tuples(st.sampled_from(VOCAB_WORDS), st.sampled_from(NEAR_MISS), st.sampled_from(VOCAB_WORDS)).map(
            "".join
        ),
    ),
    max_size=12,
).map("".join)


def counts_like_the_tokenizer(backends: dict[str, Tokenizer], texts: list[str], family: str) -> None:
    for name, backend in backends.items():
        counter = FastCounter(backend)
        assert counter.rule is not None and counter.rule.family == family, name
        got = counter.count(texts)
        assert got.tolist() == count_tokens(backend, texts).tolist(), name
        assert counter.mismatch is None
        # and again from a warm cache, where no piece is tokenized any more
        assert counter.count(texts).tolist() == got.tolist(), name
    # all the tokenizers at once, as a comparison counts them: one cut, the caches shared
    together = [FastCounter(backend) for backend in backends.values()]
    share_caches(together)
    exact = [count_tokens(backend, texts).tolist() for backend in backends.values()]
    for _ in ("cold", "warm"):
        assert count_together(together, texts).tolist() == exact
    assert all(counter.mismatch is None for counter in together)


@settings(max_examples=400, deadline=None)
@given(texts=st.lists(text, min_size=1, max_size=40))
def test_chunk_counts_equal_the_tokenizer_for_every_family(families, texts):
    counts_like_the_tokenizer(families, texts, "bert-wordpiece")


ASCII_WORDS = ["Hello", "HELLO", "e-mail", "don't", "3.14", "v2.0.1", "#123456", "x" * 70, "ab" * 40, "a_b"]
ascii_text = st.lists(
    st.one_of(
        st.sampled_from(ASCII_WORDS + WORDS),  # added tokens' texts: such a text is no words text
        st.text(alphabet=SAFE + "QWERTYUIOP", max_size=30),
        st.text(alphabet="abcXYZ019", min_size=60, max_size=90),  # words fingerprinted by their hash
        st.sampled_from(["\x0b", "\x1f", "\x7f", "\x00"]),  # control characters: the tokenizer counts them
    ),
    max_size=15,
).map("".join)


@settings(max_examples=300, deadline=None)
@given(texts=st.lists(ascii_text, min_size=1, max_size=40))
def test_the_words_cut_counts_ascii_texts_as_the_tokenizer_does(families, texts):
    counts_like_the_tokenizer(families, texts, "bert-wordpiece")


@settings(max_examples=150, deadline=None)
@given(texts=st.lists(st.one_of(text, ascii_text), min_size=1, max_size=40))
def test_counts_stay_exact_when_the_hot_table_is_crowded(families, texts):
    # four slots: pieces keep taking each other's slot, also between two counters' lookups
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(fastcount, "HOT_BITS", 2)
        patch.setattr(fastcount, "HOT", 4)
        counts_like_the_tokenizer(families, texts, "bert-wordpiece")


def test_ascii_texts_take_the_words_cut_unless_they_hold_an_added_token(families):
    counter = FastCounter(families["packaged-minilm"])
    texts = ["Plain ASCII, e-mail v2.0", "the same words: plain ascii", "[SEP] inside", "a\x0bb", "café"]
    assert counter.count(texts).tolist() == count_tokens(counter.backend, texts).tolist()
    # the words of the first two, lower-cased once: "plain" and "ascii" are one piece each
    assert len(counter.caches["words"]) == len(
        {
            "plain",
            "ascii",
            ",",
            "e",
            "-",
            "mail",
            "v2",
            ".",
            "0",
            "the",
            "same",
            "words",
            ":",
            "[",
            "sep",
            "]",
            "inside",
            "a",
            "b",
        }
    )
    assert len(counter.caches["chunks"]) == 3  # "[SEP]", "inside" and "café": chunks
    assert (counter.texts, counter.fast) == (5, 4)


def test_long_batches_are_cut_in_parts_once_for_every_counter(families, monkeypatch):
    texts = [f"Passage {i}: " + "lorem ipsum dolor sit amet, " * 200 for i in range(2 * BATCH_CHARS // 5000)]
    assert sum(map(len, texts)) > BATCH_CHARS
    counters = [FastCounter(families["bert-uncased"]), FastCounter(families["bert-cased"])]
    share_caches(counters)
    # one words cache for both, keyed by the words as written (the cased counter needs them so)
    words = counters[0].caches["words"]
    assert words is counters[1].caches["words"] and not words.lowercase and words.width == 2
    cut: list[int] = []
    real = Words.__init__
    monkeypatch.setattr(
        Words, "__init__", lambda self, t, added, key: (cut.append(len(t)), real(self, t, added, key))[1]
    )
    counts = count_together(counters, texts)
    for counter, row in zip(counters, counts, strict=True):
        assert row.tolist() == count_tokens(counter.backend, texts).tolist()
    assert len(cut) >= 2 and sum(cut) == len(texts)  # each part cut once, for both counters


def test_a_word_has_one_fingerprint_wherever_it_stands():
    # "needle" at every byte offset of an 8-byte read, and a long word (polynomial) and a very
    # long one (the string's keyed fingerprint) at many places
    long_word, very_long = "needlessly" * 3, "n" * 100
    texts = [" " * (i % 9) + f"needle {long_word} {very_long}" for i in range(100)]
    texts += ["needles", "Needle", "eedle"]
    key = RunKey()
    words = Words(texts, None, key)
    pieces = words.view(False)
    strings = pieces.strings(np.arange(len(pieces.prints)))
    by_string: dict[str, set[int]] = {}
    for p, s in zip(pieces.prints.tolist(), strings, strict=True):
        by_string.setdefault(s, set()).add(p)
    assert {s: len(p) for s, p in by_string.items()} == dict.fromkeys(by_string, 1)
    assert len({p for ps in by_string.values() for p in ps}) == len(by_string) == 6
    assert by_string["needle"] == {int.from_bytes(b"needle", "little")}
    assert by_string[very_long] == set(fingerprints([very_long], key).tolist())


def test_texts_without_control_characters_take_the_fast_path(families):
    counter = FastCounter(families["bert-cased"])
    counter.count(
        ["Plain ASCII, with punctuation!", "tabs\tand\nnewlines\r\n", "", "   ", "café 中文", "no\xa0break"]
    )
    counter.count(["a\x0bb", "x\x85y", "\x1f", "del\x7f"])  # control characters: the tokenizer counts them
    assert (counter.texts, counter.fast) == (10, 6)


def byte_level(prefix_space: bool) -> Tokenizer:
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=prefix_space)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=600,
        special_tokens=["<s>", "<pad>", "</s>", "<unk>", "<mask>"],
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
    )
    tok.train_from_iterator(TRAINING, trainer)
    tok.post_processor = processors.RobertaProcessing(("</s>", 2), ("<s>", 0))
    return tok


BYTE_LEVEL_WORDS = ["it's", "we'll", "'S", " 's", "  ", "\t\t", " \n", "x  y", "12ab", "<mask>", "</s>"]
ascii_any = st.lists(
    st.one_of(
        st.sampled_from(BYTE_LEVEL_WORDS + ASCII_WORDS),
        st.text(alphabet=SAFE + "QWERTY'\x0b\x0c\x1c\x1f\x00\x7f", max_size=25),
    ),
    max_size=12,
).map("".join)


@settings(max_examples=300, deadline=None)
@given(texts=st.lists(st.one_of(ascii_any, text), min_size=1, max_size=40))
def test_byte_level_pieces_count_as_the_tokenizer_does(byte_levels, texts):
    counts_like_the_tokenizer(byte_levels, texts, "byte-level-bpe")


@pytest.fixture(scope="module")
def byte_levels() -> dict[str, Tokenizer]:
    return {"prefix-space": byte_level(True), "no-prefix-space": byte_level(False)}


def test_byte_level_takes_texts_without_added_tokens(byte_levels):
    counter = FastCounter(byte_levels["prefix-space"])
    texts = ["Plain text, it's  fine\t", "", "a <mask> here", "café", "tab\x0bbed", "x\u0378"]
    assert counter.count(texts).tolist() == count_tokens(counter.backend, texts).tolist()
    # all but the empty one, the added token's and the unassigned code point's
    assert (counter.texts, counter.fast) == (6, 3)


def test_other_families_are_not_recognised():
    bpe = byte_level(True)
    bpe.normalizer = normalizers.NFKC()  # a normalizer that may make spaces, or join pieces
    unigram = Tokenizer(models.Unigram())
    # a text one piece: nothing to reuse (the Unigram rule's layouts: test_fastcount_unigram.py)
    unigram.pre_tokenizer = pre_tokenizers.Metaspace(split=False)
    wordpiece_whitespace = bert(True)
    wordpiece_whitespace.pre_tokenizer = pre_tokenizers.Whitespace()
    spaced = bert(True)
    spaced.add_tokens(["new york"])  # an added token across a space: chunks would cut it
    for backend in (bpe, unigram, wordpiece_whitespace, spaced):
        assert recognise(backend) is None
        assert FastCounter(backend).path == "tokenizer"


def test_a_failing_self_check_stops_the_fast_path_and_the_scan_recounts(tok, tmp_path, monkeypatch):
    rows = [
        json.dumps({"query": f"question number {i}", "pos": [f"answer {i}"], "neg": [f"other {i}"]})
        for i in range(300)
    ]
    src = write_lines(tmp_path / "d.jsonl", [r.encode() for r in rows])
    exact = scan(str(src), tokenizer=tok, exact_only=True)
    assert exact.run.counting == Counting("tokenizer", fast_share=0.0, self_checked=0)

    real = FastCounter._piece_counts
    monkeypatch.setattr(FastCounter, "_piece_counts", lambda self, *args, **kw: real(self, *args, **kw) + 1)
    counter = FastCounter(tok.backend)
    counter.count(["a wrong count is caught"])
    assert counter.mismatch == "the chunk count of 'a wrong count is caught' was 12, the tokenizer's 7"
    after = ["after that, the tokenizer counts"]
    assert (
        counter.count(after).tolist() == count_tokens(tok.backend, after).tolist()
        and counter.path == "tokenizer"
    )

    p = scan(str(src), tokenizer=tok)
    assert p.to_dict()["fields"] == exact.to_dict()["fields"]
    assert p.run.counting.path == "tokenizer"
    assert p.run.counting.fast_path_failed.startswith("the chunk count of ")


def test_the_self_check_covers_the_runs_first_texts_and_a_sample(tok, tmp_path):
    counter = FastCounter(tok.backend)
    texts = [f"text number {i}" for i in range(CHECK_FIRST + 5000)]
    counter.count(texts)
    # chosen by the run's key
    sampled = int((fingerprints(texts[CHECK_FIRST:], counter.key) % 100 == 0).sum())
    assert counter.checked == CHECK_FIRST + sampled and 20 < sampled < 90
    # texts after the run's first ones: only the sample
    later = [f"later text {i}" for i in range(3000)]
    counter.count(later, at=CHECK_FIRST)
    assert counter.checked == CHECK_FIRST + sampled + int((fingerprints(later, counter.key) % 100 == 0).sum())

    # the run's first texts, not each worker's: as many checked with 2 workers as with 3
    rows = [json.dumps({"query": f"q {i}", "pos": [f"p {i}"], "neg": [f"n {i}"]}) for i in range(2000)]
    src = write_lines(tmp_path / "d.jsonl", [r.encode() for r in rows])
    checked = [
        scan(str(src), tokenizer=tok, workers=w, shard_bytes=10_000).run.counting.self_checked for w in (2, 3)
    ]
    # (the sample after them is drawn by each run's keyed hash, so it differs from run to run)
    assert all(CHECK_FIRST < c < CHECK_FIRST + 150 for c in checked)


def test_the_self_checks_first_texts_are_the_first_in_file_order(tok, tmp_path, monkeypatch):
    rows = [{"query": f"q {i}", "pos": [f"p {i}", "shared"], "neg": [f"n {i}"]} for i in range(600)]
    src = write_lines(tmp_path / "o.jsonl", [json.dumps(r).encode() for r in rows])
    in_file_order = list(dict.fromkeys(t for r in rows for t in [r["query"], *r["pos"], *r["neg"]]))
    checked: list[str] = []
    real = FastCounter._check
    monkeypatch.setattr(FastCounter, "_check", lambda self, t, c: (checked.extend(t), real(self, t, c))[1])
    scan(str(src), tokenizer=tok, workers=1)
    assert checked[:CHECK_FIRST] == in_file_order[:CHECK_FIRST]


def test_every_corpus_counts_the_same_with_and_without_the_fast_path(tok, corpora, tmp_path):
    cjk = write_lines(
        tmp_path / "cjk.jsonl",
        [
            json.dumps(
                {
                    "query": "東京の天気は？",
                    "pos": ["今日は晴れです。"],
                    "neg": ["中文的句子", "mixed 日本語 and English"],
                },
                ensure_ascii=False,
            ).encode(),
            json.dumps(
                {"query": "naïve café", "pos": ["résumé\u00a0here"], "neg": ["tab\tand\x0bvtab"]},
                ensure_ascii=False,
            ).encode(),
        ],
    )
    paths = [str(corpora), str(EXAMPLES), str(cjk)]
    fast = scan(paths, tokenizer=tok, shard_bytes=20_000, workers=2)
    exact = scan(paths, tokenizer=tok, shard_bytes=20_000, workers=2, exact_only=True)
    assert fast.to_dict()["fields"] == exact.to_dict()["fields"]
    assert fast.samples == exact.samples and fast.examples == exact.examples
    assert fast.run.counting.path == "chunks:bert-wordpiece" and 0.5 < fast.run.counting.fast_share < 1
    lengths = {f: np.flatnonzero(h.counts) for f, h in fast.histograms.items()}
    assert all(len(v) for v in lengths.values())


def test_every_corpus_counts_the_same_through_byte_level_pieces(byte_levels, corpora, tmp_path):
    paths = [str(corpora), str(EXAMPLES)]
    for name, backend in byte_levels.items():
        backend.save(str(tmp_path / f"{name}.json"))
        fast = scan(paths, tokenizer=str(tmp_path / f"{name}.json"), shard_bytes=20_000, workers=2)
        exact = scan(
            paths, tokenizer=str(tmp_path / f"{name}.json"), shard_bytes=20_000, workers=2, exact_only=True
        )
        assert fast.to_dict()["fields"] == exact.to_dict()["fields"], name
        assert fast.samples == exact.samples and fast.examples == exact.examples, name
        counting = fast.run.counting
        assert counting.path == "chunks:byte-level-bpe" and 0.5 < counting.fast_share <= 1, name


def test_the_chinese_characters_are_those_bert_pads(tok):
    """Code point by code point, the list fastcount pads is the one BERT's normalizer pads."""
    from lenprof.count.fast.cuts import _CHINESE

    normalize = tok.backend.normalizer.normalize_str
    for cp in range(0x80, 0x30000):
        if 0xD800 <= cp <= 0xDFFF:
            continue
        c = chr(cp)
        out = normalize(f"x{c}x")
        padded = out.startswith("x ") and out.endswith(" x") and len(out) >= 5
        assert padded == bool(_CHINESE.fullmatch(c)), hex(cp)
