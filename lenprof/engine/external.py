"""The out-of-core scan: the corpus-wide decisions of ``decisions.py`` made over sorted,
partitioned runs on local disk, so that no process holds a table that grows with the corpus.

The in-memory driver keeps one table from each row key and each distinct text to what the
corpus decided about it (about 12 and 21 bytes a member). Past ``--memory-budget`` the scan runs
in three sweeps over the shards instead, as an external-memory dedup does, with the same
decisions ("first in corpus order") and so the same outputs, byte for byte:

1. **Survey.** Workers check each shard and send back its fingerprints (``ShardWork.survey``):
   the key of each row that passed the checks, and the shard's distinct texts. The driver
   appends them to partitions on disk by fingerprint (``spill.Partitions``), and keeps three
   numbers a shard: its lines, its rows that passed the checks, its distinct texts.
2. **Decide, partition by partition.** In each partition, records sorted by (fingerprint, shard,
   position) say which row is the first with its key (the others are duplicates) and which shard
   first holds each text (it counts it) (``partition.py``). The driver reads the partitions from
   its spill and sends them to the workers, a window at a time, so that the sorts are spread as
   the shards are; what each shard needs comes back sorted by shard and is written out
   (``spill.Runs``) in partition order. Partitions come in fingerprint order, and a shard's
   distinct texts are sorted by fingerprint, so a shard's records, taken file after file, are in
   the order of its distinct texts.
3. **Count.** Workers check each shard that holds a text first again and count those texts
   (``ShardWork.count``, with the run's count of texts before them, as in memory: the same texts
   are self-checked); the lengths go to partitions by fingerprint, where the workers join each
   onto every shard that holds the text.
4. **Render.** Workers check each shard once more and render it with its decisions and lengths
   (``ShardWork.render``); the driver writes the results in corpus order, as in memory. The
   fields each distinct text was kept in go to partitions, and the workers add them up.

Memory: a group of a partition is sent whole while it fits the budget's share of one in flight
(a sixteenth with two workers), else split again by the next bits of its fingerprints; a worker
sorts one group at a time. Disk: about 50 bytes per text a shard holds and 16 per row,
in a temporary folder (``TMPDIR``) removed at the end. Time: each shard is read and checked up
to three times; each distinct text is tokenized once, as in memory.
"""

from __future__ import annotations

import dataclasses
import heapq
import math
import shutil
import tempfile
from array import array
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np

from lenprof.engine.driver import Executor, FastPathFailed, Progress, Totals, corpus_offsets, name_duplicates
from lenprof.engine.partition import FIELDS, KEYS, OWNED, PLACE, TEXTS, First, records
from lenprof.engine.plan import Plan
from lenprof.engine.results import ShardResult
from lenprof.engine.spill import BUFFER_BYTES, Partitions, Runs, spilling
from lenprof.io.records import Shard
from lenprof.stats.scan_stats import EXAMPLES_PER_REASON

SORT_COST = 4  # bytes of memory per byte of records while a group of a partition is decided


def group_limit(budget: int, window: int) -> int:
    """Bytes of records in one group of a partition: the ``window`` groups in flight hold a
    quarter of the budget at most, and so does a worker sorting one at ``SORT_COST``.

    >>> group_limit(1 << 20, 3), group_limit(1 << 20, 8)  # a sixteenth; a thirty-second
    (65536, 32768)
    """
    return max(1, budget // (SORT_COST * max(window, 4)))


def partition_bits(size: int, limit: int) -> int:
    """Fingerprint bits that cut the records of ``size`` bytes of input (at most one 16-byte
    record per 10 bytes: tiny rows) into partitions of about ``limit`` bytes of records: 16 to
    4,096 of them (one that still outgrows it splits again)."""
    wanted = size / 10 * 16 / max(limit, 1)
    return min(12, max(4, math.ceil(math.log2(max(wanted, 1)))))


def drive_external(
    plan: Plan,
    executor: Executor,
    write: Callable[[Shard, ShardResult], None],
    on_progress: Callable[[Progress], None] | None = None,
    window: int | None = None,
) -> Totals:
    """Scan every shard of ``plan`` out of core; ``write`` gets each shard's result in corpus
    order, as from ``driver.drive``, and the totals are the same."""
    totals = Totals(others=[Totals() for _ in plan.others])
    every = [totals, *totals.others]
    budget = plan.memory_budget
    sweeps = _Sweeps(plan, executor, window or 3 * executor.workers, on_progress)
    spread = executor.workers + 1  # groups of partitions in flight: one at each worker, one more
    limit = group_limit(budget, spread)
    with spilling(Path(tempfile.gettempdir())):
        folder = Path(tempfile.mkdtemp(prefix="lenprof-spill-"))
    buffer = min(BUFFER_BYTES, budget // 32)  # two partitions' at once, and a copy when written
    try:
        bits = partition_bits(plan.size_hint(), limit)
        keys, texts = (
            Partitions(folder, "keys", KEYS, bits, buffer),
            Partitions(folder, "texts", TEXTS, bits, buffer),
        )
        lines = array("q")  # per shard (8 bytes each: 2 MB for a TB in 4 MiB shards)
        checked = array("q")  # per shard: rows that passed the checks
        distinct = array("q")  # per shard: distinct texts

        def surveyed(k: int, shard: Shard, report) -> None:
            lines.append(report.lines)
            checked.append(len(report.dedup))
            distinct.append(len(report.texts))
            keys.add(
                records(
                    KEYS,
                    fp=report.dedup,
                    shard=np.full(len(report.dedup), k),
                    pos=np.arange(len(report.dedup)),
                )
            )
            texts.add(records(TEXTS, fp=report.texts, shard=np.full(len(report.texts), k)))

        sweeps.run("survey", lambda k, shard: (), surveyed)
        keys.flush()
        texts.flush()
        dups, owned, duplicates = _decide(folder, keys, texts, 2**bits, limit, executor, spread)
        for runs in (dups, owned):
            runs.fit(budget // 16)

        counted = np.dtype([("fp", "<u8"), ("len", "<u4", (len(every),))])
        lengths = Partitions(folder, "lengths", counted, bits, buffer)

        def count_args(k: int, shard: Shard) -> tuple | None:
            need = np.flatnonzero(owned.take(k)["owned"])
            if not len(need):
                return None  # nothing to count: the shard is not read
            at = totals.tokenized
            for t in every:
                t.tokenized += len(need)
            return need, at

        def count_done(k: int, shard: Shard, value) -> None:
            if value.mismatch is not None:
                raise FastPathFailed(value.mismatch)
            totals.counted(value)
            lengths.add(records(counted, fp=value.prints, len=value.lengths.T))

        sweeps.run("count", count_args, count_done)
        lengths.flush()
        owned.remove()
        shard_lengths = _join(folder, texts, lengths, 2**bits, limit, executor, spread)
        shard_lengths.fit(budget // 8)

        fields = Partitions(folder, "fields", FIELDS, bits, buffer)
        first_lines = array("q")
        next_line: dict[int, int] = {}

        def render_args(k: int, shard: Shard) -> tuple:
            keep = np.ones(checked[k], bool)
            keep[dups.take(k)["pos"]] = False
            first_lines.append(next_line.get(shard.input, 1))
            next_line[shard.input] = first_lines[k] + lines[k]
            held = shard_lengths.take(k)["len"]
            assert len(held) == distinct[k], "every distinct text has its lengths"
            return keep, first_lines[k], np.ascontiguousarray(held.T)

        def rendered(k: int, shard: Shard, result: ShardResult) -> None:
            on = result.fields != 0
            fields.add(records(FIELDS, fp=result.prints[on], bits=result.fields[on]))
            write(shard, result)
            totals.stats += result.stats
            for t, stats in zip(totals.others, result.others, strict=True):
                t.stats += stats
            totals.shards += 1

        sweeps.run("render", render_args, rendered)
        fields.flush()
        unique: Counter[str] = Counter()
        groups = (g for p in range(2**bits) for g in fields.groups(p, limit))
        _at_workers(executor, spread, "unique_fields", groups, unique.update)
        name_duplicates(plan, executor, every, dict(unique), duplicates, first_lines)
        return totals
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def _decide(
    folder: Path, keys: Partitions, texts: Partitions, parts: int, limit: int, executor: Executor, spread: int
) -> tuple[Runs, Runs, list]:
    """Partition by partition, at the workers: each shard's duplicate rows (their positions),
    which of its distinct texts it is the first to hold, and the first duplicates of the corpus
    (as ``Decisions.duplicates``: their key and the shard that held it first)."""
    dups, owned = Runs(folder, "dups", PLACE), Runs(folder, "owned", OWNED)
    firsts: list[First] = []

    def duplicates(value: tuple[np.ndarray, list[First]]) -> None:
        nonlocal firsts
        places, found = value
        dups.write(places)
        firsts = heapq.nsmallest(EXAMPLES_PER_REASON, [*firsts, *found])

    keys_read = (g for p in range(parts) for g in keys.groups(p, limit))
    _at_workers(executor, spread, "duplicates", keys_read, duplicates)
    texts_read = (g for p in range(parts) for g in texts.groups(p, limit, keep=True))  # read again by _join
    _at_workers(executor, spread, "owners", texts_read, owned.write)
    return dups, owned, [(key, shard) for _, _, key, shard in firsts]


def _join(
    folder: Path,
    texts: Partitions,
    lengths: Partitions,
    parts: int,
    limit: int,
    executor: Executor,
    spread: int,
) -> Runs:
    """Each shard's distinct texts' lengths, in their order: every counted text's lengths
    joined onto each shard that holds it, at the workers."""
    shape = lengths.dtype["len"].shape
    out = Runs(folder, "joined", np.dtype([("shard", "<u4"), ("len", "<u4", shape)]))
    groups = (g for p in range(parts) for g in texts.groups(p, limit, lengths))
    _at_workers(executor, spread, "joined", groups, out.write)
    return out


def _at_workers(
    executor: Executor,
    spread: int,
    step: str,
    groups: Iterator[list[np.ndarray]],
    then: Callable[[Any], None],
) -> None:
    """Each group of a partition decided at the workers (``partition.STEPS[step]``), ``spread``
    in flight; ``then(what it decided)`` in the order of the groups."""
    jobs = (("decide", (step, *g)) for g in groups)
    in_order(executor, spread, jobs, lambda n, got: then(got.value))


def in_order(
    executor: Executor,
    window: int,
    jobs: Iterator[tuple[str, tuple] | None],
    then: Callable[[int, Any], None],
) -> None:
    """Each job ``(call, args)``, the ``n``-th, run as ``ShardWork.<call>(n, *args)`` on the
    worker with the fewest in flight, ``window`` at most in flight; ``then(n, what it
    returned)`` in job order (``None`` for a job that is ``None``: nothing to run)."""
    results: dict[int, Any] = {}
    worker_of: dict[int, int] = {}
    load = [0] * executor.workers
    sent = merged = 0
    exhausted = False
    while True:
        while not exhausted and sent - merged < window:
            job = next(jobs, _END)
            if job is _END:
                exhausted = True
                break
            if job is None:
                results[sent] = None
            else:
                w = worker_of[sent] = min(range(executor.workers), key=load.__getitem__)
                load[w] += 1
                call, args = job
                executor.submit(w, call, sent, *args)
            sent += 1
        if exhausted and merged == sent:
            return
        if merged not in results:
            _, value = executor.result()
            results[value.index] = value
            load[worker_of.pop(value.index)] -= 1
        while merged in results:
            then(merged, results.pop(merged))
            merged += 1


_END = object()


class _Sweeps:
    """Sweeps over the plan's shards in corpus order: a window of them at the workers, results
    handed on in corpus order; progress counts each sweep as a third of the scan."""

    def __init__(self, plan: Plan, executor: Executor, window: int, on_progress):
        self.plan, self.executor, self.window, self.on_progress = plan, executor, window, on_progress
        self.done = 0  # sweeps finished
        self.starts, self.total = corpus_offsets(plan)

    def run(
        self, call: str, args: Callable[[int, Shard], tuple | None], then: Callable[[int, Shard, Any], None]
    ) -> None:
        """``ShardWork.<call>(k, shard, *args(k, shard))`` for each shard ``k`` (none where
        ``args`` gives None), then ``then(k, shard, what it returned)`` in corpus order."""
        held: dict[int, Shard] = {}  # between dispatch and merge, without their data

        def jobs() -> Iterator[tuple[str, tuple] | None]:
            for k, shard in enumerate(self.plan.shards()):
                held[k] = dataclasses.replace(shard, lines=None, rows=None)
                extra = args(k, held[k])
                yield None if extra is None else (call, (shard, *extra))

        def merged(k: int, value: Any) -> None:
            shard = held.pop(k)
            if value is not None:
                then(k, shard, value)
            self._progress(shard, value, last=call == "render")

        in_order(self.executor, self.window, jobs(), merged)
        self.done += 1

    def _progress(self, shard: Shard, value: Any, last: bool) -> None:
        if self.on_progress is None:
            return
        i, item = shard.input, self.plan.inputs[shard.input]
        done = (self.done * item.size + shard.done) // 3 if item.size else shard.done
        corpus = (self.done * self.total + self.starts[i] + shard.done) // 3
        rows = value.stats.read if last and value is not None else 0
        self.on_progress(Progress(i, item.path, done, item.size, rows, corpus, self.total))
