"""An XLM-R-style SentencePiece Unigram (bge-m3's and multilingual-e5's layout), built here.

What makes those tokenizers what they are, for counting: SentencePiece's ``nmt_nfkc``
normalization as a ``Precompiled`` charsmap (NFKC and more, one grapheme cluster at a time: it
can turn a character into a space, or compose several into one), then the Metaspace
pre-tokenizer (spaces to ``▁``, one put first, a piece starting at each ``▁``), Unigram's Viterbi
inside each piece, and ``<s> $A </s>`` around every text. The model is trained by
``sentencepiece``'s own trainer (``normalization_rule_name="nmt_nfkc"``) on the text benchmarks/
corpora use (English paragraphs from /usr/share/doc, the zh_CN and ja message catalogs), and
converted by transformers' own converter (``convert_slow_tokenizer`` of an
``XLMRobertaTokenizer``), so no file comes from the hub. XLM-R's special tokens are added as its
tokenizer.json has them (``<mask>`` takes the spaces before it). benchmarks/ and tests/ both
build it with :func:`build`.

    pip install sentencepiece
    python benchmarks/unigram.py /tmp/unigram     # -> /tmp/unigram/tokenizer.json (+ config)
    python benchmarks/unigram.py /tmp/unigram-250k --pad-to 250002   # bge-m3's size, for start-up
"""

from __future__ import annotations

import argparse
import importlib.util
import io
import json
import tempfile
from collections.abc import Iterable
from pathlib import Path

SPECIALS = ["<s>", "<pad>", "</s>", "<unk>", "<mask>"]


def training_texts() -> list[str]:
    """The English, Chinese and Japanese texts benchmarks/ corpora use (see make_corpus.py)."""
    spec = importlib.util.spec_from_file_location("make_corpus", Path(__file__).with_name("make_corpus.py"))
    make_corpus = importlib.util.module_from_spec(spec)  # type: ignore[arg-type]
    spec.loader.exec_module(make_corpus)  # type: ignore[union-attr]
    texts = make_corpus.english_paragraphs()
    for locale in ("zh_CN", "ja"):
        texts += sorted({t for _, t in make_corpus.chinese_sentences(locale=locale)})
    return texts


def converted(texts: Iterable[str], vocab_size: int, byte_fallback: bool = False) -> object:
    """A ``tokenizers.Tokenizer``: a Unigram trained by sentencepiece on ``texts`` (at most
    ``vocab_size`` pieces), converted as transformers converts XLM-R's sentencepiece.bpe.model.
    With ``byte_fallback``, the vocabulary holds a piece for each byte, and the model spells an
    unknown character in them (the converter turns that off: it is turned on again here)."""
    import sentencepiece as spm
    from tokenizers import AddedToken, Tokenizer
    from transformers import XLMRobertaTokenizer
    from transformers.convert_slow_tokenizer import convert_slow_tokenizer

    model = io.BytesIO()
    spm.SentencePieceTrainer.train(
        sentence_iterator=iter(texts),
        model_writer=model,
        model_type="unigram",
        vocab_size=vocab_size,
        normalization_rule_name="nmt_nfkc",
        character_coverage=0.9995,
        input_sentence_size=200_000,
        shuffle_input_sentence=True,
        hard_vocab_limit=False,  # fewer pieces where the texts are few (tests)
        byte_fallback=byte_fallback,
        minloglevel=2,
    )
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "sentencepiece.bpe.model"
        path.write_bytes(model.getvalue())
        tok = convert_slow_tokenizer(XLMRobertaTokenizer(vocab_file=str(path)))
    # XLM-R's tokenizer.json has all five as added tokens (the converter adds <s> and </s>)
    tok.add_special_tokens(
        [AddedToken(s, lstrip=s == "<mask>", normalized=False, special=True) for s in SPECIALS]
    )
    if byte_fallback:
        spec = json.loads(tok.to_str())
        spec["model"]["byte_fallback"] = True
        tok = Tokenizer.from_str(json.dumps(spec))
    return tok


def build(folder: Path, texts: Iterable[str] | None = None, vocab_size: int = 30_000) -> Path:
    """Train the tokenizer on ``texts`` (:func:`training_texts` by default) and save it as
    ``folder``/tokenizer.json, with the config.json and tokenizer_config.json of a model folder."""
    tok = converted(training_texts() if texts is None else texts, vocab_size)
    folder.mkdir(parents=True, exist_ok=True)
    tok.save(str(folder / "tokenizer.json"))  # type: ignore[attr-defined]
    (folder / "config.json").write_text(
        json.dumps({"model_type": "xlm-roberta", "max_position_embeddings": 8194})
    )
    (folder / "tokenizer_config.json").write_text(
        json.dumps(
            {
                "tokenizer_class": "XLMRobertaTokenizer",
                "model_max_length": 8192,
                **dict(
                    zip(
                        ["bos_token", "pad_token", "eos_token", "unk_token", "mask_token"],
                        SPECIALS,
                        strict=True,
                    )
                ),
            }
        )
    )
    return folder


def pad(folder: Path, pieces: int, seed: int = 0) -> None:
    """Grow the Unigram's vocabulary in ``folder`` to ``pieces`` (bge-m3 has 250,002), for what
    a vocabulary's size costs: loading it (megabytes of JSON, a trie to build) in every process
    that counts. The new pieces are random strings of 2-8 letters, kana and ideographs, some
    with a ``▁`` first, scored below every trained piece, so they are rarely chosen; the counts
    are still the tokenizer's own (the floor and lenprof count with the same one)."""
    import random

    path = folder / "tokenizer.json"
    spec = json.loads(path.read_text(encoding="utf-8"))
    vocab = spec["model"]["vocab"]
    have = {piece for piece, _ in vocab}
    rng = random.Random(seed)
    letters = "abcdefghijklmnopqrstuvwxyzあいうえおかきくけこさしすせそ中文字語言"
    while len(vocab) < pieces:
        piece = "▁" * (rng.random() < 0.5) + "".join(rng.choice(letters) for _ in range(rng.randint(2, 8)))
        if piece not in have:
            have.add(piece)
            vocab.append([piece, -20.0 - 5 * rng.random()])
    path.write_text(json.dumps(spec, ensure_ascii=False), encoding="utf-8")


if __name__ == "__main__":
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("folder", type=Path)
    ap.add_argument("--vocab-size", type=int, default=30_000)
    ap.add_argument(
        "--pad-to",
        type=int,
        help="then grow the vocabulary to this many pieces with random rare ones (250002: bge-m3's size)",
    )
    args = ap.parse_args()
    built = build(args.folder, vocab_size=args.vocab_size)
    if args.pad_to:
        pad(built, args.pad_to)
    print(built / "tokenizer.json")
