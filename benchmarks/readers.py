"""Why lenprof reads without polars: the two places it could serve, measured on the same data.

1. A JSONL shard: lenprof decodes each line alone (msgspec, falling back to the standard library
   for the lines it refuses), because every line needs its own fate and line number.
   ``polars.read_ndjson`` reads the shard as a whole, and fails the whole shard on one bad line.
2. A Parquet record batch into row dicts for the checks: ``pyarrow.RecordBatch.to_pylist``
   against ``polars.from_arrow(batch).to_dicts()``.

    python benchmarks/readers.py /tmp/corp/mined-222222x9-r8.jsonl /tmp/corp/mined-222222x9-r8.parquet
"""

from __future__ import annotations

import io
import statistics
import sys
import time


def best(fn, runs: int = 5) -> float:
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def main() -> None:
    import msgspec
    import polars as pl
    import pyarrow.parquet as pq

    jsonl, parquet = sys.argv[1], sys.argv[2]
    with open(jsonl, "rb") as fh:
        data = fh.read(4 << 20)
    data = data[: data.rfind(b"\n") + 1]  # one 4 MiB shard of whole lines
    lines = data.split(b"\n")[:-1]
    decode = msgspec.json.Decoder().decode
    per_line = best(lambda: [decode(line) for line in lines])
    whole = best(lambda: pl.read_ndjson(io.BytesIO(data)).to_dicts())
    broken = data.replace(lines[5], b'{"query": broken', 1)
    try:
        pl.read_ndjson(io.BytesIO(broken))
        verdict = "reads it"
    except Exception as exc:  # polars raises ComputeError
        verdict = f"fails the whole shard ({type(exc).__name__})"
    batch = next(pq.ParquetFile(parquet).iter_batches(batch_size=20_000))
    arrow_rows = best(batch.to_pylist)
    polars_rows = best(lambda: pl.from_arrow(batch).to_dicts())
    print(f"JSONL shard, {len(lines):,} rows, 4 MiB: msgspec per line {per_line * 1e3:.0f} ms, "
          f"polars.read_ndjson + to_dicts {whole * 1e3:.0f} ms; on one broken line polars {verdict}")  # fmt: skip
    print(
        f"Parquet batch, 20,000 rows: pyarrow to_pylist {arrow_rows * 1e3:.0f} ms, polars to_dicts {polars_rows * 1e3:.0f} ms"
    )


if __name__ == "__main__":
    main()
