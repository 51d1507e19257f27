"""Embedding a corpus's distinct texts with the base model: lenprof's scoring encoder
(``lenprof/score/encoder.py``: batches packed by length under a token budget) against
sentence-transformers' ``SentenceTransformer.encode(batch_size=32)``, what a user would run, on
the same texts in the same process, taken in turn (A B A B ...), each with torch's default
threads. Prints the seconds of each, the ratio, and the largest difference between their
embeddings (they must agree: the issue allows 1e-3).

    python benchmarks/make_corpus.py --rows 20000 --out-dir /tmp/score
    python benchmarks/score_speed.py /tmp/score/mined-20000x9-r4.jsonl --runs 3
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import time

import numpy as np

os.environ.setdefault("HF_HUB_OFFLINE", "1")


def distinct_texts(path: str, limit: int | None) -> list[str]:
    seen: dict[str, None] = {}
    with open(path, encoding="utf-8") as f:
        for line in f:
            row = json.loads(line)
            for text in [row["query"], *row.get("pos", []), *row.get("neg", [])]:
                seen.setdefault(text)
    texts = list(seen)
    return texts[:limit] if limit else texts


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("corpus")
    ap.add_argument("--model", help="a sentence-transformers folder (default: the packaged MiniLM)")
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--limit", type=int, help="only the first N distinct texts")
    args = ap.parse_args()

    import torch
    from sentence_transformers import SentenceTransformer

    from lenprof.count.tokenizer import packaged_model_weights
    from lenprof.score.encoder import ModelCard, TextEncoder

    model = args.model or str(packaged_model_weights())
    texts = distinct_texts(args.corpus, args.limit)
    peer = SentenceTransformer(model, device="cpu")
    ours = TextEncoder(ModelCard.read(model), device="cpu")
    print(f"machine: {platform.machine()}, {os.cpu_count()} cores, torch threads {torch.get_num_threads()}, "
          f"load {os.getloadavg()[0]:.2f}")  # fmt: skip
    print(f"{len(texts):,} distinct texts of {args.corpus}, model {model}")
    times: dict[str, list[float]] = {
        "sentence-transformers encode(batch_size=32)": [],
        "lenprof TextEncoder": [],
    }
    diff = 0.0
    for _ in range(args.runs):
        start = time.perf_counter()
        want = peer.encode(texts, batch_size=32, normalize_embeddings=True, convert_to_numpy=True)
        times["sentence-transformers encode(batch_size=32)"].append(time.perf_counter() - start)
        start = time.perf_counter()
        got = ours.encode(texts)
        times["lenprof TextEncoder"].append(time.perf_counter() - start)
        diff = max(diff, float(np.abs(got - want).max()))
    base = statistics.median(times["sentence-transformers encode(batch_size=32)"])
    print(f"{'contender':<46} {'median s':>9} {'min-max':>13} {'speed-up':>9}")
    for name, ts in times.items():
        med = statistics.median(ts)
        print(f"{name:<46} {med:>9.1f} {min(ts):>6.1f}-{max(ts):<6.1f} {base / med:>8.2f}x")
    print(f"largest difference between the embeddings: {diff:.1e}; load at the end {os.getloadavg()[0]:.2f}")


if __name__ == "__main__":
    main()
