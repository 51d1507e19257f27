"""Token counts across processes: each worker holds its own copy of the Rust tokenizer.

One process with ``encode_batch_fast`` already uses every core through Rayon, but most of a
tokenizer's time is its normalizer and pre-tokenizer, which scale better as separate processes
(on 2 cores: ~8.1k texts/s in one process, ~9.4k in two). The pool starts only when a batch
brings enough new texts, so small inputs never pay for worker start-up, and chunks come back in
order, so results are identical whatever the number of workers.
"""

from __future__ import annotations

import multiprocessing
import os
import time

import numpy as np

from .tokenize import LoadedTokenizer

MIN_TEXTS_PER_WORKER = 1000  # below this, shipping texts to a worker costs more than it saves

_worker_tokenizer = None


def _init_worker(tokenizer_json: str) -> None:
    global _worker_tokenizer
    # One Rayon thread per worker: the processes are the parallelism, and more threads than
    # cores only adds contention.
    os.environ["RAYON_NUM_THREADS"] = "1"
    from tokenizers import Tokenizer

    _worker_tokenizer = Tokenizer.from_str(tokenizer_json)


def _worker_lengths(texts: list[str]) -> tuple[np.ndarray, float]:
    start = time.perf_counter()
    encodings = _worker_tokenizer.encode_batch_fast(texts, add_special_tokens=True)  # type: ignore[union-attr]
    return np.fromiter((len(e) for e in encodings), np.int64, len(texts)), time.perf_counter() - start


def default_workers() -> int:
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


class Pending:
    """Token counts on their way: ``get()`` waits for them."""

    def __init__(self, measurer: Measurer, result=None, lengths: np.ndarray | None = None):
        self._measurer, self._result, self._lengths = measurer, result, lengths

    def get(self) -> np.ndarray:
        if self._lengths is None:
            parts = self._result.get()
            self._lengths = np.concatenate([lengths for lengths, _ in parts])
            # workers run side by side: their mean busy time is the wall time they took
            self._measurer.seconds += sum(s for _, s in parts) / self._measurer.workers
        return self._lengths


class Measurer:
    """Token counts in this process or across ``workers`` processes; use as a context manager.

    ``submit(texts)`` returns at once when workers run, so the scan reads and checks the next
    batch while the current one is tokenized.
    """

    def __init__(self, tok: LoadedTokenizer, workers: int | None = None):
        self.tok = tok
        self.workers = max(1, workers if workers is not None else default_workers())
        self._pool = None
        self.texts = 0  # texts tokenized, and the seconds it took
        self.seconds = 0.0
        self.parallel_calls = 0

    def submit(self, texts: list[str]) -> Pending:
        self.texts += len(texts)
        if self.workers == 1 or len(texts) < 2 * MIN_TEXTS_PER_WORKER:
            start = time.perf_counter()
            lengths = self.tok.lengths(texts)
            self.seconds += time.perf_counter() - start
            return Pending(self, lengths=lengths)
        if self._pool is None:
            # spawn, not fork: the parent may already run Rayon threads, which fork would copy
            # in a broken state (tokenizers then disables its parallelism with a warning).
            ctx = multiprocessing.get_context("spawn")
            self._pool = ctx.Pool(self.workers, _init_worker, (self.tok.backend.to_str(),))
        self.parallel_calls += 1
        n = min(self.workers, len(texts) // MIN_TEXTS_PER_WORKER)
        step = -(-len(texts) // n)
        chunks = [texts[i : i + step] for i in range(0, len(texts), step)]
        return Pending(self, result=self._pool.map_async(_worker_lengths, chunks))

    def close(self) -> None:
        if self._pool is not None:
            self._pool.terminate()
            self._pool.join()
            self._pool = None

    def __enter__(self) -> Measurer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
