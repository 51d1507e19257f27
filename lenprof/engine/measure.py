"""Step 2 of a worker's three: the token counts of the distinct texts the driver says this shard
is the first to hold, so that each distinct text of the corpus is counted once."""

from __future__ import annotations

import time

import numpy as np

from lenprof.count.fast.counter import FastCounter, count_together
from lenprof.engine.results import CheckedShard, Measured


def measure(
    counters: list[FastCounter], st: CheckedShard, index: int, need: np.ndarray, at: int, encoder=None
) -> Measured:
    """Step 2: token counts of the shard's distinct texts at positions ``need`` (those no earlier
    shard holds), by each tokenizer (the texts are cut into pieces once for all of them); the
    run counted ``at`` distinct texts before these (its first ones are all checked: see
    ``count/fast/``). The counters' caches make it faster, never different. With ``encoder``
    (``scan --model``: a ``score.encoder.TextEncoder``) the texts are embedded too, once each."""
    texts, seen = st.texts, st.seen
    order = np.argsort(seen[need], kind="stable")  # counted in the file's order
    batch = [texts[i] for i in need[order].tolist()]
    start = time.perf_counter()
    before = [(c.fast, c.checked) for c in counters]
    lengths = np.empty((len(counters), len(batch)), dtype=np.int64)
    lengths[:, order] = count_together(counters, batch, at)
    vectors, truncated, cached = None, 0, 0
    if encoder is not None:
        before_cut, before_cached = encoder.truncated, encoder.from_cache
        vectors = np.empty((len(batch), encoder.dim), dtype=np.float32)
        vectors[order] = encoder.encode(batch)
        truncated, cached = encoder.truncated - before_cut, encoder.from_cache - before_cached
    return Measured(
        index,
        lengths.astype(np.uint32),
        time.perf_counter() - start,
        [c.fast - f for c, (f, _) in zip(counters, before, strict=True)],
        [c.checked - k for c, (_, k) in zip(counters, before, strict=True)],
        next((c.mismatch for c in counters if c.mismatch is not None), None),
        vectors=vectors,
        truncated=truncated,
        from_cache=cached,
    )
