"""What the out-of-core decisions cost, per record: the driver's spill (partitioning and
writing), and the partition sorts that find duplicate rows and each text's first shard
(``external._decide``; the join of the counted lengths, ``external._join``, is one more sort of
the text records), split into what the workers do (``partition.py``, timed where it runs) and
what is left to the driver (reading the partitions, writing what comes back), on synthetic
fingerprints shaped like a mined corpus (each row 1 key and 9 texts, of which a third repeat
across shards). Here the "worker" runs in this process, one group at a time, so the two shares
add up to the wall time. The per-record figures feed the cost model in docs/engines.md.

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
from lenprof.engine import external, partition
from lenprof.engine.spill import Partitions


class InProcess:
    """An executor of one worker, in this process, that times the worker's share."""

    workers = 1

    def __init__(self):
        self.done: list = []
        self.seconds = 0.0

    def submit(self, worker: int, call: str, index: int, step: str, *records) -> None:
        start = time.perf_counter()
        self.done.append(partition.Decided(index, partition.STEPS[step](*records)))
        self.seconds += time.perf_counter() - start

    def result(self):
        return "decide", self.done.pop(0)


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
    spread = 3  # as with two workers
    limit = external.group_limit(budget, spread)
    bits = external.partition_bits(args.rows * 1200, limit)  # as for ~1.2 kB rows
    keys = Partitions(folder, "keys", partition.KEYS, bits)
    texts = Partitions(folder, "texts", partition.TEXTS, bits)
    pool = rng.integers(0, 2**64, args.rows * args.texts_per_row // 3, dtype=np.uint64)  # texts that repeat
    text_records = 0
    start = time.perf_counter()
    for k in range(shards):
        n = min(args.rows_per_shard, args.rows - k * args.rows_per_shard)
        fresh = rng.integers(0, 2**64, n * args.texts_per_row * 2 // 3, dtype=np.uint64)
        shared = pool[rng.integers(0, len(pool), n * args.texts_per_row // 3)]
        distinct = np.unique(np.concatenate([fresh, shared]))
        row_keys = rng.integers(0, 2**64, n, dtype=np.uint64)
        keys.add(partition.records(partition.KEYS, fp=row_keys, shard=np.full(n, k), pos=np.arange(n)))
        texts.add(partition.records(partition.TEXTS, fp=distinct, shard=np.full(len(distinct), k)))
        text_records += len(distinct)
    keys.flush()
    texts.flush()
    spilled = time.perf_counter() - start
    start = time.perf_counter()
    worker = InProcess()
    external._decide(folder, keys, texts, 2**bits, limit, worker, spread)
    decided = time.perf_counter() - start
    print(
        f"{args.rows:,} rows in {shards:,} shards, {text_records:,} text records, {2**bits} partitions, budget {args.budget}"
    )
    print(
        f"spill (partition and write): {spilled:.1f} s, {1e9 * spilled / (args.rows + text_records):.0f} ns a record"
    )
    records = args.rows + text_records
    print(f"decide: {decided:.1f} s, {1e9 * decided / records:.0f} ns a record, of which")
    print(
        f"  at the workers (sort, first of each): {worker.seconds:.1f} s, {1e9 * worker.seconds / records:.0f} ns a record"
    )
    left = decided - worker.seconds
    print(f"  left to the driver (read, write back): {left:.1f} s, {1e9 * left / records:.0f} ns a record")
    print(f"peak RSS {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:.0f} MiB")


if __name__ == "__main__":
    main()
