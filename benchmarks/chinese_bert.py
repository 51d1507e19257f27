"""A Chinese BERT WordPiece like bge-*-zh-v1.5's, built here from the ``tokenizers`` library's own
components (issue 24).

What makes bge-small-zh-v1.5's tokenizer what it is, for counting: BERT's normalizer with
``handle_chinese_chars`` (spaces around every CJK ideograph, so each is a word of its own),
lower case and accents stripped (``strip_accents`` unset follows ``lowercase``), BERT's
pre-tokenizer, WordPiece with [UNK], and ``[CLS] $A [SEP]`` around every text. The vocabulary is
trained on the texts benchmarks/ corpora use (``make_corpus.chinese_sentences``): the zh_CN
message catalogs' Chinese and their English sources, and the Japanese catalogs (``ja``) where
the machine has them, so no file comes from the hub. benchmarks/ and tests/ both build it with
:func:`build`.

    python benchmarks/chinese_bert.py /tmp/bert-zh     # -> /tmp/bert-zh/tokenizer.json (+ configs)
    python benchmarks/speed.py /tmp/zh/mined-60000x9-r4.jsonl --tokenizer /tmp/bert-zh
"""

from __future__ import annotations

import argparse
import importlib.util
import json
from collections.abc import Iterable
from pathlib import Path

SPECIALS = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]


def training_texts() -> list[str]:
    """The catalogs' Chinese and the English it translates, and their Japanese if installed."""
    spec = importlib.util.spec_from_file_location("make_corpus", Path(__file__).with_name("make_corpus.py"))
    make_corpus = importlib.util.module_from_spec(spec)  # type: ignore[arg-type]
    spec.loader.exec_module(make_corpus)  # type: ignore[union-attr]
    texts = set()
    for locale in ("zh_CN", "ja"):
        for en, translated in make_corpus.chinese_sentences(locale=locale):
            texts.update((en, translated))
    return sorted(texts)


def build(folder: Path, texts: Iterable[str] | None = None, vocab_size: int = 21_128) -> Path:
    """Train the tokenizer on ``texts`` (:func:`training_texts` by default) and save it as
    ``folder``/tokenizer.json, with the config.json and tokenizer_config.json of a model folder
    (bge-small-zh-v1.5's: 21,128 entries, 512 positions)."""
    from tokenizers import Tokenizer, decoders, models, normalizers, pre_tokenizers, processors, trainers

    tk = Tokenizer(models.WordPiece(unk_token="[UNK]", max_input_chars_per_word=100))
    tk.normalizer = normalizers.BertNormalizer(
        clean_text=True, handle_chinese_chars=True, strip_accents=None, lowercase=True
    )
    tk.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
    tk.decoder = decoders.WordPiece()
    trainer = trainers.WordPieceTrainer(vocab_size=vocab_size, special_tokens=SPECIALS, show_progress=False)
    tk.train_from_iterator(training_texts() if texts is None else texts, trainer)
    cls, sep = tk.token_to_id("[CLS]"), tk.token_to_id("[SEP]")
    tk.post_processor = processors.TemplateProcessing(
        single="[CLS] $A [SEP]",
        pair="[CLS] $A [SEP] $B:1 [SEP]:1",
        special_tokens=[("[CLS]", cls), ("[SEP]", sep)],
    )
    folder.mkdir(parents=True, exist_ok=True)
    tk.save(str(folder / "tokenizer.json"))
    (folder / "config.json").write_text(
        json.dumps({"model_type": "bert", "max_position_embeddings": 512, "vocab_size": tk.get_vocab_size()})
    )
    (folder / "tokenizer_config.json").write_text(
        json.dumps(
            {
                "tokenizer_class": "BertTokenizer",
                "do_lower_case": True,
                "tokenize_chinese_chars": True,
                "strip_accents": None,
                "model_max_length": 512,
                **{f"{name}_token": f"[{name.upper()}]" for name in ("unk", "sep", "pad", "cls", "mask")},
            }
        )
    )
    return folder


if __name__ == "__main__":
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("folder", type=Path)
    ap.add_argument("--vocab-size", type=int, default=21_128)
    args = ap.parse_args()
    print(build(args.folder, vocab_size=args.vocab_size) / "tokenizer.json")
