"""How a scan shows that it is alive, on stderr only (stdout carries data).

On a terminal: a transient bar per input, laid out to fit the terminal's width (at 80 columns
the path is shortened and nothing wraps). Elsewhere (SLURM, CI logs, ``2> log``): one plain line
every ``interval`` seconds, with rows, megabytes read, rate and time left, so a run of many minutes
is never silent:

    lenprof: 1,204,113 rows, 210.4 of 419.2 MB (50%), 52.6 MB/s, 0:04 left
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable, Iterator
from typing import TextIO

from lenprof.engine.driver import Progress

DEFAULT_INTERVAL = 30.0  # seconds between plain lines


def _clock(seconds: float) -> str:
    seconds = int(seconds + 0.5)
    h, rest = divmod(seconds, 3600)
    return f"{h}:{rest // 60:02d}:{rest % 60:02d}" if h else f"{rest // 60}:{rest % 60:02d}"


class PlainLines:
    """One line per ``interval`` seconds (the first after ``interval``), from progress events."""

    def __init__(self, stream: TextIO, interval: float, clock: Callable[[], float] = time.monotonic):
        self.stream, self.interval, self.clock = stream, interval, clock
        self.start = self.last = clock()
        self.rows = 0

    def __call__(self, event: Progress) -> None:
        self.rows += event.rows
        now = self.clock()
        if now - self.last < self.interval:
            return
        self.last = now
        self.stream.write(self.line(event, now - self.start) + "\n")
        self.stream.flush()

    def line(self, event: Progress, elapsed: float) -> str:
        done, total = event.corpus_done, event.corpus_total  # total 0: a pipe, size unknown
        rate = done / elapsed if elapsed > 0 else 0.0
        read = (
            f"{done / 1e6:.1f} of {total / 1e6:.1f} MB ({100 * done / total:.0f}%)"
            if total
            else f"{done / 1e6:.1f} MB"
        )
        left = f", {_clock((total - done) / rate)} left" if rate and total >= done else ""
        return f"lenprof: {self.rows:,} rows, {read}, {rate / 1e6:.1f} MB/s{left}"


def _bars(console):
    """Rich bars whose columns shrink to the terminal: the path gives way first, nothing wraps."""
    from rich.progress import (
        BarColumn,
        Progress,
        TaskProgressColumn,
        TextColumn,
        TimeRemainingColumn,
        TransferSpeedColumn,
    )
    from rich.table import Column

    return Progress(
        TextColumn("{task.description}", table_column=Column(ratio=1, no_wrap=True, overflow="ellipsis")),
        BarColumn(bar_width=10 if console.width < 100 else 30),
        TaskProgressColumn(),
        TextColumn("{task.fields[rows]:,} rows", table_column=Column(no_wrap=True)),
        TransferSpeedColumn(table_column=Column(no_wrap=True)),
        TimeRemainingColumn(table_column=Column(no_wrap=True)),
        console=console,
        transient=True,
        expand=True,
    )


@contextlib.contextmanager
def progress(quiet: bool, interval: float = DEFAULT_INTERVAL) -> Iterator[Callable[[Progress], None] | None]:
    """A progress callback for :func:`lenprof.scan` (None when ``quiet``)."""
    if quiet:
        yield None
        return
    from rich.console import Console

    console = Console(stderr=True)
    if not console.is_terminal:
        yield PlainLines(console.file, interval)
        return
    with _bars(console) as bars:
        tasks: dict[int, int] = {}

        def advance(event: Progress) -> None:
            if event.input not in tasks:
                tasks[event.input] = bars.add_task(event.path, total=event.total or None, rows=0)  # 0: a pipe
            task = tasks[event.input]
            bars.update(task, completed=event.done, rows=bars.tasks[task].fields["rows"] + event.rows)

        yield advance
