"""What the out-of-core decisions cost the main process, per record: the partition sort that
finds duplicate rows and each text's first shard (``external._decide``; the join of the
counted lengths, ``external._join``, is one more sort of the text records), on synthetic
fingerprints shaped like a mined corpus (each row 1 key and 9 texts, of which a third repeat
across shards). The per-record figures feed the cost model in docs/engines.md.

    python benchmarks/decide_cost.py --rows 2000000 --budget 256M
"""

from __future__ import annotations

import argparse
import resource
import tempfile
import time
from pathlib import Path

import numpy as np

from lenprof.cli.common import ByteSize
from lenprof.engine import external
from lenprof.engine.spill import Partitions


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rows", type=int, default=2_000_000)
    ap.add_argument("--texts-per-row", type=int, default=9)
    ap.add_argument("--rows-per-shard", type=int, default=2_000)
    ap.add_argument("--budget", default="256M")
    args = ap.parse_args()
    budget = ByteSize().convert(args.budget, None, None)
    rng = np.random.default_rng(0)
    folder = Path(tempfile.mkdtemp(prefix="decide-cost-"))
    shards = -(-args.rows // args.rows_per_shard)
    bits = external.partition_bits(args.rows * 1200, budget)  # as for ~1.2 kB rows
    keys = Partitions(folder, "keys", external.KEYS, bits)
    texts = Partitions(folder, "texts", external.TEXTS, bits)
    pool = rng.integers(0, 2**64, args.rows * args.texts_per_row // 3, dtype=np.uint64)  # texts that repeat
    text_records = 0
    start = time.perf_counter()
    for k in range(shards):
        n = min(args.rows_per_shard, args.rows - k * args.rows_per_shard)
        fresh = rng.integers(0, 2**64, n * args.texts_per_row * 2 // 3, dtype=np.uint64)
        shared = pool[rng.integers(0, len(pool), n * args.texts_per_row // 3)]
        distinct = np.unique(np.concatenate([fresh, shared]))
        row_keys = rng.integers(0, 2**64, n, dtype=np.uint64)
        keys.add(external._records(external.KEYS, fp=row_keys, shard=np.full(n, k), pos=np.arange(n)))
        texts.add(external._records(external.TEXTS, fp=distinct, shard=np.full(len(distinct), k)))
        text_records += len(distinct)
    keys.flush()
    texts.flush()
    spilled = time.perf_counter() - start
    limit = budget // 4 // external.SORT_COST
    start = time.perf_counter()
    external._decide(folder, keys, texts, bits, limit)
    decided = time.perf_counter() - start
    print(
        f"{args.rows:,} rows in {shards:,} shards, {text_records:,} text records, {2**bits} partitions, budget {args.budget}"
    )
    print(
        f"spill (partition and write): {spilled:.1f} s, {1e9 * spilled / (args.rows + text_records):.0f} ns a record"
    )
    print(
        f"decide (sort, first of each): {decided:.1f} s, {1e9 * decided / (args.rows + text_records):.0f} ns a record"
    )
    print(f"peak RSS {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:.0f} MiB")


if __name__ == "__main__":
    main()
