"""The same scan on a Ray cluster, with the same numbers, cleaned rows and rejects as local.

Inputs are cut into shards (byte ranges of JSONL, row groups of Parquet; compressed JSONL stays
whole) and scanned in two passes of Ray tasks, so every decision that needs the whole corpus is
made once, in corpus order, by the driver:

1. check: each task checks its shard's rows and returns its physical line count and, for rows
   that passed every check, their duplicate-detection fingerprints (8 bytes a row);
2. the driver keeps the first occurrence of each fingerprint in corpus order and works out
   each shard's first line number;
3. measure: each task re-reads its shard, applies those decisions, tokenizes (each distinct text
   once per task), counts into a ScanStats, and writes its kept rows and rejects as part files;
   the driver merges the stats in order and joins the parts into the outputs.

Ray Data's own readers are not used: they fail a whole file on one bad line, which is what
lenprof exists to avoid. Workers fingerprint with PYTHONHASHSEED=0, so their fingerprints agree.
Each task tokenizes the distinct texts of its own shard, so a passage that recurs across shards
is tokenized once per shard: more shards cost more tokenization, never correctness.
"""

from __future__ import annotations

import os
import shutil
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from ..checks import Checked, check_record
from ..hashset import FingerprintSet, fingerprints
from ..io import InputError, RowWriter, Shard, read_batches, split
from ..parallel import Measurer
from ..scan import ScanOptions, _Scanner, make_profile, prepare_run
from ..stats import Profile
from ..tokenize import LoadedTokenizer

RUNTIME_ENV = {
    "env_vars": {"PYTHONHASHSEED": "0", "RAYON_NUM_THREADS": "1", "TOKENIZERS_PARALLELISM": "false"}
}
DEFAULT_SHARD_BYTES = 64 << 20


def _check_shard(shard: Shard, options: ScanOptions) -> tuple[int, np.ndarray]:
    """Pass 1: the shard's physical line count and the dedup fingerprints of its passing rows."""
    counts = {"blank": 0}
    keys = []
    for batch in read_batches(shard.item, options.batch_size, counts, shard):
        checked = [
            o
            for o in (check_record(r, options.fields, options.min_neg) for r in batch)
            if isinstance(o, Checked)
        ]
        keys.append(fingerprints(c.dedup_key() for c in checked))
    return counts.get("lines", 0), np.concatenate([np.zeros(0, np.uint64), *keys])


def _rows_in(shard: Shard) -> int:
    import pyarrow.parquet as pq

    meta = pq.ParquetFile(shard.item.path).metadata
    end = shard.end if shard.end is not None else meta.num_row_groups
    return sum(meta.row_group(g).num_rows for g in range(shard.start, end))


def _measure_shard(
    shard: Shard, options: ScanOptions, tok: LoadedTokenizer, keep: np.ndarray, parts: dict[str, str]
):
    """Pass 2: scan the shard with the driver's duplicate decisions; write its part files."""
    position = 0

    def decided(keys: np.ndarray) -> np.ndarray:
        nonlocal position
        out = keep[position : position + len(keys)]
        position += len(keys)
        return out

    writers = {k: RowWriter(path) for k, path in parts.items()}
    try:
        with Measurer(tok, workers=1) as measurer:
            scanner = _Scanner(options, tok, measurer, keep=decided)
            counts = {"blank": 0}
            batches = read_batches(shard.item, options.batch_size, counts, shard)
            scanner.scan_input(
                shard.item, writers.get("clean"), writers.get("rejects"), batches=batches, counts=counts
            )
            scanner.flush(writers.get("clean"))
    except BaseException:
        for w in writers.values():
            w.abort()
        raise
    for w in writers.values():
        w.close()
    return scanner.stats, measurer.texts


def scan_ray(
    paths: Sequence[str] | str,
    options: ScanOptions | None = None,
    *,
    tokenizer: LoadedTokenizer | str | None = None,
    clean_out: str | None = None,
    rejects_out: str | None = None,
    address: str | None = None,
    shard_bytes: int = DEFAULT_SHARD_BYTES,
) -> Profile:
    """:func:`lenprof.scan` on Ray: a local Ray by default, or the cluster at ``address``.

    On a cluster, inputs and the output folders must be on a filesystem every node sees.
    """
    try:
        import ray
    except ImportError as exc:
        raise InputError("the ray engine needs Ray: pip install 'lenprof[ray]'") from exc
    start = time.perf_counter()
    options, items, outputs, tok = prepare_run(paths, options, tokenizer, clean_out, rejects_out)
    started_here = not ray.is_initialized()
    if started_here:
        ray.init(address=address, runtime_env=RUNTIME_ENV, include_dashboard=False, log_to_driver=False)
    # Part files go beside the first output (a filesystem the workers must share); none without outputs.
    parts_dir = tempfile.mkdtemp(
        prefix=".lenprof-parts-", dir=Path(next(iter(outputs.values()))).parent if outputs else None
    )
    try:
        planned = [(i, s) for i, item in enumerate(items) for s in split(item, shard_bytes)]
        input_of = [i for i, _ in planned]  # by input, not path: a file given twice is two inputs
        shards = [s for _, s in planned]
        check = ray.remote(_check_shard)
        checked = ray.get([check.remote(s, options) for s in shards])

        # Duplicates in corpus order, and each shard's first line number.
        seen = FingerprintSet()
        keeps = [seen.add_new(keys) for _, keys in checked]
        placed, next_line = [], {}
        for shard, i, (lines, _) in zip(shards, input_of, checked, strict=True):
            first = next_line.get(i, 1)
            placed.append(Shard(shard.item, shard.start, shard.end, first))
            next_line[i] = first + (lines if shard.item.format == "jsonl" else _rows_in(shard))

        measure = ray.remote(_measure_shard)
        tok_ref = ray.put(tok)
        part_paths = [
            {k: os.path.join(parts_dir, f"{i:06d}.{k}{_suffix(path)}") for k, path in outputs.items()}
            for i in range(len(placed))
        ]
        results = ray.get(
            [
                measure.remote(s, options, tok_ref, keep, p)
                for s, keep, p in zip(placed, keeps, part_paths, strict=True)
            ]
        )
        stats, tokenized = results[0][0], sum(n for _, n in results)
        for (shard_stats, _), i, before in zip(results[1:], input_of[1:], input_of, strict=False):
            stats.merge(shard_stats, continues=i == before)
        for key, path in outputs.items():
            writer = RowWriter(path)
            try:
                writer.append_parts([p[key] for p in part_paths])
                writer.close()
            except BaseException:
                writer.abort()
                raise
    finally:
        shutil.rmtree(parts_dir, ignore_errors=True)
        if started_here:
            ray.shutdown()
    profile = make_profile(stats, options, tok, outputs)
    profile.run = {
        "engine": "ray",
        "shards": len(shards),
        "seconds": round(time.perf_counter() - start, 3),
        "texts_tokenized": tokenized,
    }
    return profile


def _suffix(path: str) -> str:
    name = path.lower()
    return ".parquet" if name.endswith((".parquet", ".pq")) else ".jsonl"
