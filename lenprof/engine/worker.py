"""A worker: where a scan's three steps run on shards, each a function of explicit inputs.

1. ``check.check_shard``: read a shard, check and repair every row, fingerprint its rows and
   distinct texts; the driver gets only the fingerprints (:class:`CheckReport`);
2. ``measure.measure``: count the tokens of the distinct texts that the driver says no earlier
   shard holds (each distinct text of the corpus is counted once);
3. ``render.render``: given the driver's decisions, count the shard into stats and render its
   cleaned rows, rejects and bucket rows.

Out of core (``external.py``) the same steps read and check the shard again each time, and
``decide`` sorts a group of a partition of the corpus's fingerprints (``partition.py``).

Each step's output could be pickled and sent anywhere; a worker keeps a checked shard where it
was made until its third step, as an object store would, because the rows are the bulk of the
data and the driver needs none of them. ``second_look`` reads a shard again (to name the earlier
row of a duplicate); it needs nothing kept.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from typing import Any

import numpy as np

from lenprof.count.fast.counter import FastCounter, share_caches
from lenprof.engine import check, measure, partition, render
from lenprof.engine.partition import Decided
from lenprof.engine.plan import WorkerSetup
from lenprof.engine.results import CheckedShard, CheckReport, Measured, ShardResult
from lenprof.io.records import Shard


class ShardWork:
    def __init__(self, setup: WorkerSetup, loaded: Sequence[Any] = ()):
        """``loaded``: the setup's tokenizers loaded already (a worker forked from the process that
        loaded them), in place of loading them again from their JSON."""
        from tokenizers import Tokenizer

        self.setup = setup
        self.options = setup.options
        self.counters = []  # the scan's tokenizer first, then those compared with it
        for k, (tokenizer_json, encode_special_tokens) in enumerate(setup.tokenizers()):
            if not loaded and not tokenizer_json:
                raise ValueError("a WorkerSetup without its tokenizers' JSON needs them loaded")
            backend = loaded[k] if loaded else Tokenizer.from_str(tokenizer_json)
            backend.encode_special_tokens = encode_special_tokens
            self.counters.append(
                FastCounter(backend, exact_only=setup.exact_only, key=setup.key, cached=setup.cached)
            )
        share_caches(self.counters)
        self.backend, self.counter = self.counters[0].backend, self.counters[0]
        if not loaded:  # its own: (a worker forked with the parent's tokenizers takes its lean copy)
            self.lean()
        self.held: dict[int, CheckedShard] = {}  # checked shards awaiting their third step, by index
        self._encoder = None  # scan --model: the base model, loaded at the first text it embeds

    @property
    def encoder(self):
        if self.setup.score is None:
            return None
        if self._encoder is None:
            from lenprof.score.encoder import load_encoder

            self._encoder = load_encoder(self.setup.score)
        return self._encoder

    def lean(self) -> None:
        """The counters' tokenizers made to count with less work, the same counts
        (``measure.lean``); after the counters' rules are made, which see them as loaded."""
        for counter in self.counters:
            measure.lean(counter.backend)

    def check(self, index: int, shard: Shard) -> CheckReport:
        st = self.held[index] = check.check_shard(self.setup, shard)
        return st.report(index)

    def locate(self, index: int, shard: Shard, keys: np.ndarray) -> tuple[int, dict[int, int]]:
        return index, check.second_look(self.setup, shard, keys)

    def measure(self, index: int, need: np.ndarray, at: int) -> Measured:
        st = self.held[index]
        measured = measure.measure(self.counters, st, index, need, at, self.encoder)
        self.held[index] = dataclasses.replace(st, texts=None)  # counted: only their lengths matter now
        return measured

    def finish(
        self,
        index: int,
        keep: np.ndarray,
        first_line: int,
        lengths: np.ndarray,
        vectors: np.ndarray | None = None,
    ) -> ShardResult:
        return render.render(self.setup, self.held.pop(index), index, keep, first_line, lengths, vectors)

    # Out of core (``external.py``): each step reads and checks the shard again, keeping nothing.

    def survey(self, index: int, shard: Shard) -> CheckReport:
        return check.check_shard(self.setup, shard).report(index)

    def count(self, index: int, shard: Shard, need: np.ndarray, at: int) -> Measured:
        st = check.check_shard(self.setup, shard)
        return dataclasses.replace(
            measure.measure(self.counters, st, index, need, at), prints=st.prints[need]
        )

    def render(
        self, index: int, shard: Shard, keep: np.ndarray, first_line: int, lengths: np.ndarray
    ) -> ShardResult:
        st = check.check_shard(self.setup, shard)
        return dataclasses.replace(
            render.render(self.setup, st, index, keep, first_line, lengths), prints=st.prints
        )

    def decide(self, index: int, step: str, *records: np.ndarray) -> Decided:
        """A group of a partition of fingerprints decided (``partition.py``)."""
        return Decided(index, partition.STEPS[step](*records))
