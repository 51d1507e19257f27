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
   first holds each text (it counts it). What each shard needs is written out sorted by shard
   (``spill.Runs``). Partitions come in fingerprint order, and a shard's distinct texts are
   sorted by fingerprint, so a shard's records, taken file after file, are in the order of its
   distinct texts.
3. **Count.** Workers check each shard that holds a text first again and count those texts
   (``ShardWork.count``, with the run's count of texts before them, as in memory: the same texts
   are self-checked); the lengths go to partitions by fingerprint, where each is joined onto
   every shard that holds the text.
4. **Render.** Workers check each shard once more and render it with its decisions and lengths
   (``ShardWork.render``); the driver writes the results in corpus order, as in memory. The
   fields each distinct text was kept in go to partitions, and add up at the end.

Memory: a partition is read whole while it fits a quarter of the budget, else split again by
the next bits of its fingerprints. Disk: about 50 bytes per text a shard holds and 16 per row,
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
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from lenprof.engine.decisions import unique_counts
from lenprof.engine.driver import Executor, FastPathFailed, Progress, Totals, corpus_offsets, name_duplicates
from lenprof.engine.plan import Plan
from lenprof.engine.results import ShardResult
from lenprof.engine.spill import BUFFER_BYTES, Partitions, Runs, spilling
from lenprof.io.records import Shard
from lenprof.stats.scan_stats import EXAMPLES_PER_REASON

KEYS = np.dtype([("fp", "<u8"), ("shard", "<u4"), ("pos", "<u4")])  # a row's key and its place
TEXTS = np.dtype([("fp", "<u8"), ("shard", "<u4")])  # a distinct text of a shard
FIELDS = np.dtype([("fp", "<u8"), ("bits", "u1")])  # the fields a text was kept in
PLACE = np.dtype([("shard", "<u4"), ("pos", "<u4")])  # a duplicate row
OWNED = np.dtype([("shard", "<u4"), ("owned", "?")])  # a shard's text: does the shard count it
SORT_COST = 4  # bytes of memory per byte of records while a partition is decided


def partition_bits(size: int, budget: int) -> int:
    """Fingerprint bits that cut the records of ``size`` bytes of input (at most one 16-byte
    record per 10 bytes: tiny rows) into partitions decided within a quarter of the budget:
    16 to 4,096 of them (one that still outgrows it splits again)."""
    wanted = size / 10 * 16 * SORT_COST / max(budget // 4, 1)
    return min(12, max(4, math.ceil(math.log2(max(wanted, 1)))))


def _records(dtype: np.dtype, **columns: Any) -> np.ndarray:
    n = len(next(iter(columns.values())))
    out = np.empty(n, dtype)
    for name, values in columns.items():
        out[name] = values
    return out


def _first_of_each(fp: np.ndarray) -> np.ndarray:
    """For sorted fingerprints: True at the first of each run of equal ones."""
    first = np.ones(len(fp), bool)
    first[1:] = fp[1:] != fp[:-1]
    return first


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
    limit = budget // 4 // SORT_COST  # bytes of records decided at once
    sweeps = _Sweeps(plan, executor, window or 3 * executor.workers, on_progress)
    with spilling(Path(tempfile.gettempdir())):
        folder = Path(tempfile.mkdtemp(prefix="lenprof-spill-"))
    buffer = min(BUFFER_BYTES, budget // 32)  # two partitions' at once, and a copy when written
    try:
        bits = partition_bits(plan.size_hint(), budget)
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
                _records(
                    KEYS,
                    fp=report.dedup,
                    shard=np.full(len(report.dedup), k),
                    pos=np.arange(len(report.dedup)),
                )
            )
            texts.add(_records(TEXTS, fp=report.texts, shard=np.full(len(report.texts), k)))

        sweeps.run("survey", lambda k, shard: (), surveyed)
        keys.flush()
        texts.flush()
        dups, owned, duplicates = _decide(folder, keys, texts, bits, limit)
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
            for i, t in enumerate(every):
                t.fast += value.fast[i]
                t.checked += value.checked[i]
            totals.tokenize_seconds += value.seconds
            lengths.add(_records(counted, fp=value.prints, len=value.lengths.T))

        sweeps.run("count", count_args, count_done)
        lengths.flush()
        owned.remove()
        shard_lengths = _join(folder, texts, lengths, bits, limit)
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
            fields.add(_records(FIELDS, fp=result.prints[on], bits=result.fields[on]))
            write(shard, result)
            totals.stats += result.stats
            for t, stats in zip(totals.others, result.others, strict=True):
                t.stats += stats
            totals.shards += 1

        sweeps.run("render", render_args, rendered)
        fields.flush()
        unique: Counter[str] = Counter()
        for part in range(2**bits):
            for (f,) in fields.groups(part, limit):
                f = f[np.argsort(f["fp"], kind="stable")]
                unique.update(
                    unique_counts(np.bitwise_or.reduceat(f["bits"], np.flatnonzero(_first_of_each(f["fp"]))))
                )
        name_duplicates(plan, executor, every, dict(unique), duplicates, first_lines)
        return totals
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def _decide(
    folder: Path, keys: Partitions, texts: Partitions, bits: int, limit: int
) -> tuple[Runs, Runs, list]:
    """Partition by partition: each shard's duplicate rows (their positions), which of its
    distinct texts it is the first to hold, and the first duplicates of the corpus (as
    ``Decisions.duplicates``: their key and the shard that held it first)."""
    dups, owned = Runs(folder, "dups", PLACE), Runs(folder, "owned", OWNED)
    firsts: list[tuple[int, int, int, int]] = []  # (shard, position, key, earlier shard)
    for part in range(2**bits):
        for (r,) in keys.groups(part, limit):
            r = r[np.lexsort((r["pos"], r["shard"], r["fp"]))]
            first = _first_of_each(r["fp"])
            earlier = r["shard"][np.maximum.accumulate(np.where(first, np.arange(len(r)), 0))][~first]
            d = r[~first]
            order = np.lexsort((d["pos"], d["shard"]))
            d, earlier = d[order], earlier[order]
            dups.write(_records(PLACE, shard=d["shard"], pos=d["pos"]))
            head = slice(0, EXAMPLES_PER_REASON)
            found = zip(
                d["shard"][head].tolist(),
                d["pos"][head].tolist(),
                d["fp"][head].tolist(),
                earlier[head].tolist(),
                strict=True,
            )
            firsts = heapq.nsmallest(EXAMPLES_PER_REASON, [*firsts, *found])
        for (t,) in texts.groups(part, limit, keep=True):  # read again by _join
            t = t[np.lexsort((t["shard"], t["fp"]))]
            order = np.lexsort((t["fp"], t["shard"]))
            owned.write(_records(OWNED, shard=t["shard"][order], owned=_first_of_each(t["fp"])[order]))
    return dups, owned, [(key, shard) for _, _, key, shard in firsts]


def _join(folder: Path, texts: Partitions, lengths: Partitions, bits: int, limit: int) -> Runs:
    """Each shard's distinct texts' lengths, in their order: every counted text's lengths
    joined onto each shard that holds it."""
    joined = np.dtype([("shard", "<u4"), ("len", "<u4", lengths.dtype["len"].shape)])
    out = Runs(folder, "joined", joined)
    for part in range(2**bits):
        for t, counted in texts.groups(part, limit, lengths):
            counted = counted[np.argsort(counted["fp"])]
            at = np.searchsorted(counted["fp"], t["fp"])
            assert (counted["fp"][np.minimum(at, len(counted) - 1)] == t["fp"]).all(), (
                "every text was counted"
            )
            order = np.lexsort((t["fp"], t["shard"]))
            out.write(_records(joined, shard=t["shard"][order], len=counted["len"][at[order]]))
    return out


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
        ex, workers = self.executor, self.executor.workers
        shards = iter(self.plan.shards())
        held: dict[int, Shard] = {}  # between dispatch and merge, without their data
        results: dict[int, Any] = {}
        worker_of: dict[int, int] = {}
        load = [0] * workers
        sent = merged = 0
        exhausted = False
        while True:
            while not exhausted and sent - merged < self.window:
                shard = next(shards, None)
                if shard is None:
                    exhausted = True
                    break
                held[sent] = dataclasses.replace(shard, lines=None, rows=None)
                extra = args(sent, held[sent])
                if extra is None:
                    results[sent] = None
                else:
                    w = worker_of[sent] = min(range(workers), key=load.__getitem__)
                    load[w] += 1
                    ex.submit(w, call, sent, shard, *extra)
                sent += 1
            if exhausted and merged == sent:
                break
            if merged not in results:
                _, value = ex.result()
                results[value.index] = value
                load[worker_of.pop(value.index)] -= 1
            while merged in results:
                value, shard = results.pop(merged), held.pop(merged)
                if value is not None:
                    then(merged, shard, value)
                self._progress(shard, value, last=call == "render")
                merged += 1
        self.done += 1

    def _progress(self, shard: Shard, value: Any, last: bool) -> None:
        if self.on_progress is None:
            return
        i, item = shard.input, self.plan.inputs[shard.input]
        done = (self.done * item.size + shard.done) // 3 if item.size else shard.done
        corpus = (self.done * self.total + self.starts[i] + shard.done) // 3
        rows = value.stats.read if last and value is not None else 0
        self.on_progress(Progress(i, item.path, done, item.size, rows, corpus, self.total))
