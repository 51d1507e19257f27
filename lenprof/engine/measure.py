"""Step 2 of a worker's three: the token counts of the distinct texts the driver says this shard
is the first to hold, so that each distinct text of the corpus is counted once."""

from __future__ import annotations

import time
from typing import Any

import numpy as np

from lenprof.count.fast.counter import FastCounter, count_together
from lenprof.engine.results import CheckedShard, Measured


def lean(backend: Any) -> None:
    """A BPE model's empty ``continuing_subword_prefix`` and ``end_of_word_suffix`` set to None,
    in place: the same tokens for every text, for less work. tokenizers' BPE formats each
    character of a word it has not cached with the prefix and the word's last with the suffix,
    a new string each time, and finds the merges with the prefix's length (0 either way); an
    empty one changes no string. transformers writes them empty where a tokenizer.json leaves
    them out (Qwen2's, Llama's): 10-13% of the tokenizer's time on short Chinese texts.

        >>> from tokenizers import Tokenizer, models
        >>> t = Tokenizer(models.BPE({"a": 0, "b": 1, "ab": 2}, [("a", "b")], continuing_subword_prefix=""))
        >>> lean(t); t.model.continuing_subword_prefix, t.encode("ab").ids
        (None, [2])
    """
    model = getattr(backend, "model", None)
    if type(model).__name__ != "BPE":
        return
    if model.continuing_subword_prefix == "":
        model.continuing_subword_prefix = None
    if model.end_of_word_suffix == "":
        model.end_of_word_suffix = None


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
        paths=[c.path for c in counters],
        vectors=vectors,
        truncated=truncated,
        from_cache=cached,
    )
