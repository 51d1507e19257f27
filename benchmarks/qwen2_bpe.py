"""A Qwen2-style byte-level BPE, built here from the ``tokenizers`` library's own components.

What makes gte-Qwen2 and Qwen3-Embedding's tokenizer what it is, for counting: NFC, then Qwen2's
split regex (``\\p{L}``/``\\p{N}`` classes, each match isolated), then bytes mapped to characters
(ByteLevel without its own regex), BPE merges inside each piece, and ``<|endoftext|>`` put after
every text (as those embedding models do: they pool its last hidden state). The vocabulary is
trained on the Chinese sentences of the zh_CN message catalogs (``make_corpus.chinese_sentences``),
so no file comes from the hub. benchmarks/ and tests/ both build it with :func:`build`.

    python benchmarks/qwen2_bpe.py /tmp/qwen2-zh     # -> /tmp/qwen2-zh/tokenizer.json (+ config)
"""

from __future__ import annotations

import argparse
import importlib.util
import json
from collections.abc import Iterable
from pathlib import Path

# Qwen2's pre-tokenizer regex, as its tokenizer.json writes it
QWEN2_SPLIT = (
    r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*"
    r"|\s*[\r\n]+|\s+(?!\S)|\s+"
)
SPECIALS = ["<|endoftext|>", "<|im_start|>", "<|im_end|>"]


def chinese_texts() -> list[str]:
    """The Chinese sentences benchmarks/ corpora use (the zh_CN message catalogs)."""
    spec = importlib.util.spec_from_file_location("make_corpus", Path(__file__).with_name("make_corpus.py"))
    make_corpus = importlib.util.module_from_spec(spec)  # type: ignore[arg-type]
    spec.loader.exec_module(make_corpus)  # type: ignore[union-attr]
    return sorted({zh for _, zh in make_corpus.chinese_sentences()})


def build(folder: Path, texts: Iterable[str] | None = None, vocab_size: int = 30_000) -> Path:
    """Train the tokenizer on ``texts`` (the catalogs' Chinese by default) and save it as
    ``folder``/tokenizer.json, with the config.json and tokenizer_config.json of a model folder."""
    from tokenizers import (
        AddedToken,
        Regex,
        Tokenizer,
        decoders,
        models,
        normalizers,
        pre_tokenizers,
        processors,
        trainers,
    )

    tk = Tokenizer(models.BPE())
    tk.normalizer = normalizers.NFC()
    tk.pre_tokenizer = pre_tokenizers.Sequence(
        [
            pre_tokenizers.Split(Regex(QWEN2_SPLIT), behavior="isolated", invert=False),
            pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False),
        ]
    )
    tk.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        special_tokens=[AddedToken(s, special=True, normalized=False) for s in SPECIALS],
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tk.train_from_iterator(chinese_texts() if texts is None else texts, trainer)
    eos = tk.token_to_id("<|endoftext|>")
    tk.post_processor = processors.TemplateProcessing(
        single="$A <|endoftext|>",
        pair="$A <|endoftext|> $B <|endoftext|>",
        special_tokens=[("<|endoftext|>", eos)],
    )
    folder.mkdir(parents=True, exist_ok=True)
    tk.save(str(folder / "tokenizer.json"))
    (folder / "config.json").write_text(json.dumps({"model_type": "qwen2", "max_position_embeddings": 32768}))
    (folder / "tokenizer_config.json").write_text(
        json.dumps(
            {
                "tokenizer_class": "PreTrainedTokenizerFast",
                "model_max_length": 32768,
                "eos_token": "<|endoftext|>",
                "pad_token": "<|endoftext|>",
            }
        )
    )
    return folder


if __name__ == "__main__":
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("folder", type=Path)
    ap.add_argument("--vocab-size", type=int, default=30_000)
    args = ap.parse_args()
    print(build(args.folder, vocab_size=args.vocab_size) / "tokenizer.json")
