"""The driver: runs a plan's shards through any executor and merges what comes back.

Workers do every row-level step (see ``worker.py``); the decisions that need the whole corpus
(duplicate rows, which shard counts each distinct text, line numbers) are one pass in corpus
order over the shards' reports (``decisions.py``). The driver only schedules: it keeps a window
of shards in flight, sends each its next step once what the step needs is known, and merges the
results in corpus order.

An executor runs calls on workers: in this process (``local.Inline``), in worker processes
(``pool.ProcessPool``) or as Ray actors (``ray.RayActors``). Calls to one worker run in the order
they are sent; results come back in any order. Results never depend on the executor, the number
of workers or the shard size.

A shard is measured where it was checked (the worker holds its texts), and measuring is most of
a scan's time, so a worker gets its next measure only when it has nothing else to do: the cheap
calls sent meanwhile (the next shards' checks, the finished shards' renders) run between two
measures instead of after all of them, so shards merge, the window moves on and no worker waits
for another's queue (sent all at once, every window ended with the workers idle in turn). A new
shard goes to the worker with the fewest shards still to measure.
"""

from __future__ import annotations

import dataclasses
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

import numpy as np

from lenprof.engine.decisions import Decisions
from lenprof.engine.plan import Plan
from lenprof.engine.results import CheckReport, Measured, ShardResult
from lenprof.io.readers import stdin
from lenprof.io.records import Shard
from lenprof.stats.scan_stats import Example, ScanStats


class Executor(Protocol):
    workers: int

    def submit(self, worker: int, call: str, *args: Any) -> None:
        """Run ``ShardWork.<call>(*args)`` on ``worker``, after the calls sent to it before."""

    def result(self) -> tuple[str, Any]:
        """The next finished call and what it returned (waits for one)."""

    def close(self) -> None: ...


@dataclass(frozen=True)
class Progress:
    """One shard merged: its input, bytes of that input read so far, and the rows it held;
    ``corpus_done`` of ``corpus_total`` bytes of all inputs read so far."""

    input: int
    path: str
    done: int
    total: int
    rows: int
    corpus_done: int = 0
    corpus_total: int = 0
    again: str = ""  # not a shard: the scan starts again, for this reason (see ``run.scan_plan``)


@dataclass
class Totals:
    stats: ScanStats = field(default_factory=ScanStats)
    shards: int = 0
    tokenized: int = 0  # distinct texts counted
    fast: int = 0  # of them through the piece caches
    path: str = "tokenizer"  # how they were counted, where some went through them (FastCounter.path)
    checked: int = 0  # of those, by the full tokenizer too
    tokenize_seconds: float = 0.0  # summed over workers
    others: list[Totals] = field(default_factory=list)  # the same, for each tokenizer compared
    # scan --model: each kept row's texts (query, positives, negatives) by number, their
    # embeddings by number, and the texts embedded truncated at the model's limit
    groups: list[tuple[int, list[int], list[int]]] = field(default_factory=list)
    vectors: np.ndarray | None = None
    truncated: int = 0
    embedded: int = 0  # distinct texts embedded (scan --model), of them from the disk cache:
    from_cache: int = 0

    def counted(self, value: Measured) -> None:
        """A shard's counts in, from ``value`` (its measure), this tokenizer's and each compared one's."""
        for k, t in enumerate([self, *self.others]):
            t.fast += value.fast[k]
            t.checked += value.checked[k]
            t.path = value.paths[k] if value.fast[k] else t.path
        self.tokenize_seconds += value.seconds


class FastPathFailed(RuntimeError):
    """The piece-cache count of a text differed from the tokenizer's: recount exactly."""


class OverBudget(RuntimeError):
    """The decisions' tables outgrew the memory budget: scan again out of core."""


@dataclass
class _Flight:
    """A shard between dispatch and merge."""

    shard: Shard
    worker: int
    first_line: int = 0
    keep: np.ndarray | None = None
    need: np.ndarray | None = None  # distinct texts this shard tokenizes
    at: int = 0  # distinct texts the run counted before them (the self-check's first ones)
    ids: np.ndarray | None = None  # each distinct text's number in the text table
    measured: bool = False


def drive(
    plan: Plan,
    executor: Executor,
    write: Callable[[Shard, ShardResult], None],
    on_progress: Callable[[Progress], None] | None = None,
    window: int | None = None,
) -> Totals:
    """Scan every shard of ``plan``; ``write`` gets each shard's result in corpus order."""
    totals = Totals(others=[Totals() for _ in plan.others])
    every = [totals, *totals.others]  # one per tokenizer
    shards = iter(plan.shards())
    window = window or 3 * executor.workers  # shards between dispatch and merge
    flights: dict[int, _Flight] = {}
    load = [0] * executor.workers  # calls sent to each worker and not yet answered
    owed = [0] * executor.workers  # shards each worker checks or holds, not yet measured
    queued: list[deque[int]] = [deque() for _ in range(executor.workers)]  # measures to send, in order
    decisions = Decisions(len(every))
    table = decisions.texts
    dispatched = decided = finished = merged = 0  # shards past each step, all in order
    reports: dict[int, CheckReport] = {}
    results: dict[int, ShardResult] = {}
    exhausted = False
    starts, corpus_total = corpus_offsets(plan)

    def send(k: int, call: str, *args: Any) -> None:
        w = flights[k].worker
        load[w] += 1
        executor.submit(w, call, *args)

    def next_measures() -> None:
        for w in range(executor.workers):
            if not load[w] and queued[w]:  # nothing else to do: its renders and checks came first
                k = queued[w].popleft()
                send(k, "measure", k, flights[k].need, flights[k].at)

    while True:
        while not exhausted and dispatched - merged < window:
            shard = next(shards, None)
            if shard is None:
                exhausted = True
                break
            w = min(range(executor.workers), key=lambda w: (owed[w], load[w]))
            owed[w] += 1
            flights[dispatched] = _Flight(
                dataclasses.replace(shard, lines=None, rows=None), w
            )  # no data kept
            send(dispatched, "check", dispatched, shard)
            dispatched += 1
        if exhausted and merged == dispatched:
            break
        next_measures()
        call, value = executor.result()
        if call == "check":
            reports[value.index] = value
        elif call == "measure":
            if value.mismatch is not None:
                raise FastPathFailed(value.mismatch)
            f = flights[value.index]
            table.lengths[f.ids[f.need]] = value.lengths.T  # type: ignore[index]
            if value.vectors is not None:
                table.embedded(f.ids[f.need], value.vectors)  # type: ignore[index]
                totals.truncated += value.truncated
                totals.embedded += len(value.vectors)
                totals.from_cache += value.from_cache
            totals.counted(value)
            f.measured = True
            owed[f.worker] -= 1
        else:
            results[value.index] = value
        load[flights[value.index].worker] -= 1

        while decided in reports:  # decisions in corpus order
            f = flights[decided]
            d = decisions.decide(decided, f.shard.input, reports.pop(decided))
            f.first_line, f.keep, f.ids, f.need = d.first_line, d.keep, d.ids, d.need
            if len(f.need):
                f.at = totals.tokenized
                queued[f.worker].append(decided)
                for t in every:
                    t.tokenized += len(f.need)
            else:
                f.measured = True
                owed[f.worker] -= 1
            decided += 1
            if 2 * decisions.nbytes > plan.memory_budget:  # twice: while a table's arrays merge
                raise OverBudget(f"{decisions.nbytes} bytes of decisions after {decided} shards")
        # A shard's texts are owned by it or by earlier shards: once every shard up to it is
        # measured, all its lengths are known.
        while finished < decided and flights[finished].measured:
            f = flights[finished]
            lengths = np.ascontiguousarray(table.lengths[f.ids].T)  # type: ignore[index]
            vectors = table.vectors[f.ids] if table.vectors is not None else None  # type: ignore[index]
            send(finished, "finish", finished, f.keep, f.first_line, lengths, vectors)
            f.keep = f.need = None  # type: ignore[assignment]
            finished += 1
        while merged in results:
            f, result = flights.pop(merged), results.pop(merged)
            table.fields[f.ids] |= result.fields  # type: ignore[index]
            for q, pos, neg in result.groups or ():
                ids = f.ids  # type: ignore[assignment]
                totals.groups.append((int(ids[q]), ids[pos].tolist(), ids[neg].tolist()))  # type: ignore[index]
            write(f.shard, result)
            totals.stats += result.stats
            for t, stats in zip(totals.others, result.others, strict=True):
                t.stats += stats
            totals.shards += 1
            if on_progress is not None:
                i = f.shard.input
                item, corpus = plan.inputs[i], (starts[i] + f.shard.done, corpus_total)
                on_progress(Progress(i, item.path, f.shard.done, item.size, result.stats.read, *corpus))
            merged += 1
    name_duplicates(plan, executor, every, table.unique(), decisions.duplicates, decisions.first_lines)
    totals.vectors = table.vectors
    return totals


def corpus_offsets(plan: Plan) -> tuple[list[int], int]:
    """For progress: the bytes of the inputs before each, and of all of them (0 when an input,
    a pipe, has no size: then there is no share and no time left)."""
    starts = [0]
    for item in plan.inputs:
        starts.append(starts[-1] + item.size)
    return starts, starts[-1] if all(item.size for item in plan.inputs) else 0


def name_duplicates(
    plan: Plan,
    executor: Executor,
    every: list[Totals],
    unique: dict[str, int],
    duplicates: list[tuple[int, int]],
    first_lines: Sequence[int],
) -> None:
    """The end of a scan: each tokenizer's stats get the distinct texts per field, and the first
    duplicate rows' examples the place of the row each repeats."""
    for t in every:
        t.stats.unique = dict(unique)
    if duplicates and not any(item.path == stdin.NAME for item in plan.inputs):  # a pipe reads once
        earlier = _earlier_rows(plan, executor, duplicates, first_lines)
        for t in every:
            _name_earlier_rows(t.stats, duplicates, earlier)


def _earlier_rows(
    plan: Plan, executor: Executor, duplicates: list[tuple[int, int]], first_lines: Sequence[int]
) -> dict[int, tuple[str, int]]:
    """Where the earlier row of each of the first duplicates is (input path, line): the shards
    that hold them are read again (at most five, never past the fifth duplicate)."""
    wanted: dict[int, list[int]] = {}
    for key, shard in duplicates:
        wanted.setdefault(shard, []).append(key)
    shards: dict[int, Shard] = {}
    for k, shard in enumerate(plan.shards()):
        if k in wanted:
            shards[k] = shard
            executor.submit(0, "locate", k, shard, np.array(wanted[k], dtype=np.uint64))
            if len(shards) == len(wanted):
                break
    earlier: dict[int, tuple[str, int]] = {}
    for _ in shards:
        _, (k, found) = executor.result()
        for key, r in found.items():
            earlier[key] = (shards[k].path, first_lines[k] + r)
    return earlier


def _name_earlier_rows(
    stats: ScanStats, duplicates: list[tuple[int, int]], earlier: dict[int, tuple[str, int]]
) -> None:
    """Name the earlier row in each duplicate_row example: the examples are the first duplicate
    rows in corpus order, and so are ``duplicates``."""
    examples = stats.examples.get("duplicate_row", [])
    for i, ((key, _), e) in enumerate(zip(duplicates, examples, strict=False)):
        if key not in earlier:
            continue
        source, line = earlier[key]
        where = f"line {line}" if source == e.source else f"{source}:{line}"
        examples[i] = Example(e.source, e.line, f"same query and positives as {where}, which was kept")
