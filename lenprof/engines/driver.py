"""The driver: runs a plan's shards through any executor and merges what comes back.

Workers do every row-level step (see ``shard.py``); the driver makes the decisions that need the
whole corpus, in corpus order, from fingerprints alone:

- a row is a duplicate when an earlier row (in any shard) had its key: ``FingerprintSet``;
- a distinct text is tokenized by the first shard that holds it, and its length is shared with
  every later shard: ``FingerprintMap`` (claim, then assign);
- a shard's lines are numbered after the lines of the shards of its input before it.

An executor runs calls on workers: in this process (``local.Inline``), in worker processes
(``pool.ProcessPool``) or as Ray actors (``ray.RayActors``). Calls to one worker run in the order
they are sent; results come back in any order. Results never depend on the executor, the number
of workers or the shard size.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Protocol

import numpy as np

from ..fingerprints import FingerprintMap, FingerprintSet
from ..stats import ScanStats
from .plan import Plan, Shard
from .shard import CheckReport, ShardResult


class Executor(Protocol):
    workers: int

    def submit(self, worker: int, call: str, *args: Any) -> None:
        """Run ``ShardWork.<call>(*args)`` on ``worker``, after the calls sent to it before."""

    def result(self) -> tuple[str, Any]:
        """The next finished call and what it returned (waits for one)."""

    def close(self) -> None: ...


@dataclass(frozen=True)
class Progress:
    """One shard merged: its input, bytes of that input read so far, and the rows it held."""

    input: int
    path: str
    done: int
    total: int
    rows: int


@dataclass
class Totals:
    stats: ScanStats = field(default_factory=ScanStats)
    shards: int = 0
    tokenized: int = 0  # distinct texts counted
    fast: int = 0  # of them through the chunk cache
    checked: int = 0  # of those, by the full tokenizer too
    tokenize_seconds: float = 0.0  # summed over workers


class FastPathFailed(RuntimeError):
    """The chunk-cache count of a text differed from the tokenizer's: recount exactly."""


@dataclass
class _Flight:
    """A shard between dispatch and merge."""

    shard: Shard
    worker: int
    report: CheckReport | None = None
    first_line: int = 0
    keep: np.ndarray | None = None
    need: np.ndarray | None = None  # distinct texts this shard tokenizes
    measured: bool = False


def drive(
    plan: Plan,
    executor: Executor,
    write: Callable[[Shard, ShardResult], None],
    on_progress: Callable[[Progress], None] | None = None,
    window: int | None = None,
) -> Totals:
    """Scan every shard of ``plan``; ``write`` gets each shard's result in corpus order."""
    totals = Totals()
    shards = iter(plan.shards())
    window = window or 3 * executor.workers  # shards between dispatch and merge
    flights: dict[int, _Flight] = {}
    load = [0] * executor.workers  # calls sent to each worker and not yet answered
    seen, lengths = FingerprintSet(), FingerprintMap()
    next_line: dict[int, int] = {}
    dispatched = decided = finished = merged = 0  # shards past each step, all in order
    reports: dict[int, CheckReport] = {}
    results: dict[int, ShardResult] = {}
    exhausted = False

    def send(k: int, call: str, *args: Any) -> None:
        w = flights[k].worker
        load[w] += 1
        executor.submit(w, call, *args)

    while True:
        while not exhausted and dispatched - merged < window:
            shard = next(shards, None)
            if shard is None:
                exhausted = True
                break
            w = min(range(executor.workers), key=load.__getitem__)
            flights[dispatched] = _Flight(
                dataclasses.replace(shard, lines=None, rows=None), w
            )  # no data kept
            send(dispatched, "check", dispatched, shard)
            dispatched += 1
        if exhausted and merged == dispatched:
            break

        call, value = executor.result()
        if call == "check":
            reports[value.index] = value
        elif call == "measure":
            if value.mismatch is not None:
                raise FastPathFailed(value.mismatch)
            f = flights[value.index]
            lengths.assign(f.report.texts[f.need], value.lengths)  # type: ignore[union-attr,index]
            f.measured = True
            totals.tokenize_seconds += value.seconds
            totals.fast += value.fast
            totals.checked += value.checked
        else:
            results[value.index] = value
        load[flights[value.index].worker] -= 1

        while decided in reports:  # decisions in corpus order
            f = flights[decided]
            f.report = report = reports.pop(decided)
            f.first_line = next_line.get(f.shard.input, 1)
            next_line[f.shard.input] = f.first_line + report.lines
            f.keep = seen.add_new(report.dedup)
            f.need = np.flatnonzero(lengths.claim(report.texts))
            if len(f.need):
                send(decided, "measure", decided, f.need)
                totals.tokenized += len(f.need)
            else:
                f.measured = True
            decided += 1
        # A shard's texts are owned by it or by earlier shards: once every shard up to it is
        # measured, all its lengths are known.
        while finished < decided and flights[finished].measured:
            f = flights[finished]
            send(finished, "finish", finished, f.keep, f.first_line, lengths.get(f.report.texts))  # type: ignore[union-attr]
            f.report = f.keep = f.need = None  # type: ignore[assignment]
            finished += 1
        while merged in results:
            f, result = flights.pop(merged), results.pop(merged)
            write(f.shard, result)
            totals.stats += result.stats
            totals.shards += 1
            if on_progress is not None:
                item = plan.inputs[f.shard.input]
                on_progress(Progress(f.shard.input, item.path, f.shard.done, item.size, result.stats.read))
            merged += 1
    return totals
