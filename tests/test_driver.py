"""The driver's schedule (``engine/driver.py``): a worker gets its next measure only when it has
nothing else to do, so renders and checks run between measures and shards merge as they finish;
and whatever order the workers answer in, the profile is the one a single worker gives."""

from __future__ import annotations

import random
from collections import deque
from contextlib import contextmanager
from typing import Any

import pytest
from conftest import EXAMPLES

from lenprof import scan
from lenprof.engine.local import LocalEngine
from lenprof.engine.worker import ShardWork


class Shuffled:
    """Workers that run their calls in the order sent, but answer in an order a seeded random
    draw picks among them (any interleaving real processes could give). Records, for each call
    sent, the calls that worker had not answered yet."""

    def __init__(self, setup, workers: int, seed: int):
        self.workers = workers
        self._work = [ShardWork(setup) for _ in range(workers)]
        self._queues: list[deque] = [deque() for _ in range(workers)]
        self._random = random.Random(seed)
        self.sent: list[tuple[int, str, int]] = []  # (worker, call, calls it had unanswered)

    def submit(self, worker: int, call: str, *args: Any) -> None:
        self.sent.append((worker, call, len(self._queues[worker])))
        self._queues[worker].append((call, args))

    def result(self) -> tuple[str, Any]:
        busy = [w for w, q in enumerate(self._queues) if q]
        w = self._random.choice(busy)
        call, args = self._queues[w].popleft()
        return call, getattr(self._work[w], call)(*args)

    def close(self) -> None:
        pass


class ShuffledEngine(LocalEngine):
    def __init__(self, workers: int, seed: int):
        super().__init__(workers)
        self.seed, self.executors = seed, []

    def workers_for(self, plan) -> int:
        return self.asked

    @contextmanager
    def executor(self, plan):
        ex = Shuffled(plan.setup(), self.asked, self.seed)
        self.executors.append(ex)
        yield ex


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    """Plain rows and every kind of bad one, repeated so that later shards hold earlier texts."""
    path = tmp_path_factory.mktemp("driver") / "mixed.jsonl"
    rows = (EXAMPLES / "msmarco.jsonl").read_bytes() + (EXAMPLES / "dirty.jsonl").read_bytes()
    path.write_bytes(rows * 3)
    return path


def _profile(path, engine) -> dict:
    d = scan([str(path)], engine=engine, shard_bytes=4096).to_dict()
    d["run"] = {k: v for k, v in d["run"].items() if k not in ("seconds", "tokenize_s", "workers")}
    return d


@pytest.mark.parametrize("seed", range(6))
@pytest.mark.parametrize("workers", [2, 3])
def test_any_answer_order_gives_the_one_worker_profile(corpus, workers, seed):
    alone = _profile(corpus, LocalEngine(1))
    engine = ShuffledEngine(workers, seed)
    assert _profile(corpus, engine) == alone
    sent = engine.executors[0].sent
    assert sum(call == "measure" for _, call, _ in sent) > 2 * workers  # enough shards to tell


@pytest.mark.parametrize("seed", range(6))
def test_a_measure_goes_only_to_a_worker_with_nothing_else_to_do(corpus, seed):
    engine = ShuffledEngine(2, seed)
    _profile(corpus, engine)
    sent = engine.executors[0].sent
    assert [pending for _, call, pending in sent if call == "measure"] == [0] * sum(
        call == "measure" for _, call, _ in sent
    )
    # so renders run between measures: the first shard is rendered before the last is measured
    calls = [call for _, call, _ in sent]
    assert calls.index("finish") < len(calls) - 1 - calls[::-1].index("measure")
