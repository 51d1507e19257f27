"""The local engine: this machine, one worker process per core, or this process alone when the
input is small (worker start-up would cost more than it saves) or one worker is asked for."""

from __future__ import annotations

import dataclasses
import os
from collections import deque
from contextlib import contextmanager
from typing import Any

from lenprof.engine.plan import Plan, WorkerSetup
from lenprof.engine.pool import ProcessPool
from lenprof.engine.worker import ShardWork
from lenprof.io.parquet import release

INLINE_BELOW = 8 << 20  # bytes of input (compressed files count four-fold) scanned in-process
# Workers beyond this many per core only wait for a core, each holding a tokenizer and its shards
# in memory: --workers 1000000 would start processes until the kernel kills the scan.
PER_CORE = 4


def default_workers() -> int:
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


def capped(workers: int, shards: int | None, cores: int) -> int:
    """``workers`` lowered to the shards there are (None: not known) and :data:`PER_CORE` per
    core: no worker is started that could never have work, or a core to run on.

        >>> capped(1_000_000, 3, 16), capped(1_000_000, None, 2), capped(4, 100, 2)
        (3, 8, 4)
    """
    return max(1, min(workers, PER_CORE * cores, shards or workers))


class Inline:
    """Every call in this process, in the order sent."""

    workers = 1

    def __init__(self, setup: WorkerSetup, loaded: list[Any] | None = None):
        """``loaded``: the setup's tokenizers as this process loaded them, used as they are (not
        made lean: they are the caller's), instead of loading them again from their JSON."""
        self._work = ShardWork(setup, loaded or ())
        self._done: deque[tuple[str, Any]] = deque()

    def submit(self, worker: int, call: str, *args: Any) -> None:
        self._done.append((call, getattr(self._work, call)(*args)))

    def result(self) -> tuple[str, Any]:
        return self._done.popleft()

    def close(self) -> None:
        release()  # a Parquet reader kept for the next slice of a row group: no slice follows


class LocalEngine:
    """``workers`` processes (asked for, or one per core; in-process for small inputs), never
    more than the shards or :data:`PER_CORE` per core."""

    name = "local"

    def __init__(self, workers: int | None = None):
        self.asked = workers

    def workers_for(self, plan: Plan) -> int:
        shards = plan.shards_at_most()
        if self.asked is not None:
            return capped(self.asked, shards, default_workers())
        size = sum(i.size * (4 if i.compression else 1) for i in plan.inputs)
        return 1 if size < INLINE_BELOW else capped(default_workers(), shards, default_workers())

    def fit(self, plan: Plan) -> Plan:
        """``plan`` with shards enough for its workers (``Plan.fitted``)."""
        return plan.fitted(self.workers_for(plan))

    @contextmanager
    def executor(self, plan: Plan):
        n = self.workers_for(plan)
        inline = n == 1
        setup = plan.setup(shipped=False)  # both executors take the tokenizers loaded
        if setup.score is not None:  # each worker scores with its share of the cores
            setup = dataclasses.replace(
                setup, score=dataclasses.replace(setup.score, threads=max(1, default_workers() // n))
            )
        loaded = [t.backend for t in plan.tokenizers]
        ex = Inline(setup, loaded) if inline else ProcessPool(setup, n, loaded)
        try:
            yield ex
        finally:
            ex.close()

    def describe(self, plan: Plan) -> dict:
        return {"engine": self.name, "workers": self.workers_for(plan)}
