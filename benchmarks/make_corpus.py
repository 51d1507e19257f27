"""Build a mined-negatives corpus of any size from real text on this machine.

Texts come from FlagEmbedding's example data (``../shared/corpora``): its queries and passages
form a pool, and each generated row takes a query, one positive and ``--neg`` negatives from it,
so passages repeat across rows the way mined hard negatives do. Queries get a row number so rows
stay distinct.

    python benchmarks/make_corpus.py --rows 100000 --out /tmp/corpus.jsonl
"""

from __future__ import annotations

import argparse
import json
import random
from pathlib import Path

DEFAULT_SOURCE = Path(__file__).resolve().parents[2] / "shared" / "corpora" / "flagembedding-examples"


def text_pool(source: Path) -> tuple[list[str], list[str]]:
    queries, passages = set(), set()
    for path in sorted(source.rglob("*.jsonl")):
        for line in path.read_text(encoding="utf-8").splitlines():
            if line.strip():
                row = json.loads(line)
                queries.add(row["query"])
                passages.update(row["pos"] + row.get("neg", []))
    return sorted(queries), sorted(passages)


def write_corpus(out: Path, rows: int, neg: int, source: Path = DEFAULT_SOURCE, seed: int = 0) -> Path:
    rng = random.Random(seed)
    queries, passages = text_pool(source)
    with open(out, "w", encoding="utf-8") as fh:
        for i in range(rows):
            picked = rng.sample(passages, neg + 1)
            row = {"query": f"{rng.choice(queries)} ({i})", "pos": picked[:1], "neg": picked[1:]}
            fh.write(json.dumps(row, ensure_ascii=False) + "\n")
    return out


if __name__ == "__main__":
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rows", type=int, default=100_000)
    ap.add_argument("--neg", type=int, default=7)
    ap.add_argument("--out", type=Path, required=True)
    ap.add_argument("--source", type=Path, default=DEFAULT_SOURCE)
    args = ap.parse_args()
    write_corpus(args.out, args.rows, args.neg, args.source)
