"""Embedding a corpus's distinct texts with the base model: lenprof's scoring encoder
(``lenprof/score/encoder.py``: batches packed by length under a token budget) against
sentence-transformers' ``SentenceTransformer.encode(batch_size=32)``, what a user would run, on
the same texts, taken in turn (A B A B ...). sentence-transformers runs as users run it, in one
process with torch's default threads; lenprof's encoder runs so too, and as ``scan --model``
runs it: a worker process per core, one torch thread each, each embedding its share of the
texts (the shards' owners). Prints the seconds of each, the ratio, and the largest difference
between the embeddings (they must agree: the issue allows 1e-3).

    python benchmarks/make_corpus.py --rows 20000 --out-dir /tmp/score
    python benchmarks/score_speed.py /tmp/score/mined-20000x9-r4.jsonl --runs 3
    python benchmarks/score_speed.py /tmp/score/mined-20000x9-r4.jsonl --runs 1 --scan-only  # of record
    python benchmarks/score_speed.py /tmp/score/mined-20000x9-r4.jsonl --limit 2500 --runs 1 --budgets 512,2048,8192,16384
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


def _embed_share(args: tuple[str, list[str]]) -> np.ndarray:
    """A worker of the pool contender: one torch thread, its share of the texts."""
    import torch

    from lenprof.score.encoder import ModelCard, TextEncoder

    model, texts = args
    torch.set_num_threads(1)
    return TextEncoder(ModelCard.read(model), device="cpu").encode(texts)


def pooled(pool, model: str, texts: list[str], workers: int) -> np.ndarray:
    """``texts`` embedded by ``workers`` processes, each its share (every ``workers``-th text,
    so each gets short and long ones), put back in order."""
    shares = [texts[k::workers] for k in range(workers)]
    parts = pool.map(_embed_share, [(model, s) for s in shares])
    out = np.empty((len(texts), parts[0].shape[1]), np.float32)
    for k, part in enumerate(parts):
        out[k::workers] = part
    return out


def sweep(model: str, texts: list[str], budgets: list[int], runs: int) -> None:
    """The encoder's time at each token budget, one torch thread (as each scan worker runs it),
    budgets taken in turn, ``runs`` times."""
    import torch

    from lenprof.score.encoder import ModelCard, TextEncoder

    torch.set_num_threads(1)
    card = ModelCard.read(model)
    encoders = {b: TextEncoder(card, device="cpu", token_budget=b) for b in budgets}
    for enc in encoders.values():
        enc.encode(texts[:50])  # first calls' set-up, before the clock
    times: dict[int, list[float]] = {b: [] for b in budgets}
    for _ in range(runs):
        for b, enc in encoders.items():
            start = time.perf_counter()
            enc.encode(texts)
            times[b].append(time.perf_counter() - start)
    print(f"{len(texts):,} texts, one torch thread, load {os.getloadavg()[0]:.2f}")
    print(f"{'token budget':>12} {'median s':>9} {'min-max':>13}")
    for b, ts in times.items():
        print(f"{b:>12,} {statistics.median(ts):>9.1f} {min(ts):>6.1f}-{max(ts):<6.1f}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("corpus")
    ap.add_argument("--model", help="a sentence-transformers folder (default: the packaged MiniLM)")
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--limit", type=int, help="only the first N distinct texts")
    ap.add_argument(
        "--budgets",
        help="instead: time lenprof's encoder, one torch thread, at each of these token budgets "
        "(comma-separated), on the same texts",
    )
    ap.add_argument(
        "--scan-only",
        action="store_true",
        help="time lenprof only as the scan runs it (a worker per core), not also in one process",
    )
    ap.add_argument(
        "--device", default="cpu", help="cpu, or cuda (bf16 for lenprof, sentence-transformers' default)"
    )
    args = ap.parse_args()

    import torch
    from sentence_transformers import SentenceTransformer

    from lenprof.count.tokenizer import packaged_model_weights
    from lenprof.score.encoder import ModelCard, TextEncoder

    model = args.model or str(packaged_model_weights())
    texts = distinct_texts(args.corpus, args.limit)
    if args.budgets:
        return sweep(model, texts, [int(b) for b in args.budgets.split(",")], args.runs)
    peer = SentenceTransformer(model, device=args.device)
    ours = TextEncoder(ModelCard.read(model), device=args.device)
    print(f"machine: {platform.machine()}, {os.cpu_count()} cores, torch threads {torch.get_num_threads()}, "
          f"load {os.getloadavg()[0]:.2f}")  # fmt: skip
    print(f"{len(texts):,} distinct texts of {args.corpus}, model {model}")
    workers = os.cpu_count() or 1
    by_process = f"lenprof, {workers} processes x 1 thread (scan)"
    times: dict[str, list[float]] = {"sentence-transformers encode(batch_size=32)": []}
    if not args.scan_only or args.device != "cpu":
        times["lenprof TextEncoder"] = []
    diff = 0.0
    import multiprocessing

    pool = None
    if args.device == "cpu":  # on a GPU the scan's workers share the card: no CPU pool
        times[by_process] = []
        pool = multiprocessing.get_context("spawn").Pool(workers)
        pooled(pool, model, texts[:workers], workers)  # each worker's imports, before the clock
    for _ in range(args.runs):
        start = time.perf_counter()
        want = peer.encode(texts, batch_size=32, normalize_embeddings=True, convert_to_numpy=True)
        times["sentence-transformers encode(batch_size=32)"].append(time.perf_counter() - start)
        if "lenprof TextEncoder" in times:
            start = time.perf_counter()
            got = ours.encode(texts)
            times["lenprof TextEncoder"].append(time.perf_counter() - start)
            diff = max(diff, float(np.abs(got - want).max()))
        if pool is not None:
            start = time.perf_counter()
            got = pooled(pool, model, texts, workers)
            times[by_process].append(time.perf_counter() - start)
            diff = max(diff, float(np.abs(got - want).max()))
    if pool is not None:
        pool.close()
    base = statistics.median(times["sentence-transformers encode(batch_size=32)"])
    print(f"{'contender':<46} {'median s':>9} {'min-max':>13} {'speed-up':>9}")
    for name, ts in times.items():
        med = statistics.median(ts)
        print(f"{name:<46} {med:>9.1f} {min(ts):>6.1f}-{max(ts):<6.1f} {base / med:>8.2f}x")
    print(f"largest difference between the embeddings: {diff:.1e}; load at the end {os.getloadavg()[0]:.2f}")


if __name__ == "__main__":
    main()
