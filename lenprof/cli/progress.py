"""How a scan shows that it is alive, on stderr only (stdout carries data).

On a terminal: a transient bar per input, laid out to fit the terminal's width (at 80 columns
the path is shortened and nothing wraps). Elsewhere (SLURM, CI logs, ``2> log``): one plain line
every ``interval`` seconds, with rows, megabytes read, and, once ``Pace`` can tell them from merged
work, rate and time left, so a run of many minutes is never silent:

    lenprof: 1,204,113 rows, 210.4 of 419.2 MB (50%), 52.6 MB/s, 0:04 left
"""

from __future__ import annotations

import contextlib
import os
import sys
import time
from collections.abc import Callable, Iterator
from typing import TextIO

from lenprof.engine.driver import Progress

DEFAULT_INTERVAL = 30.0  # seconds between plain lines


def _clock(seconds: float) -> str:
    seconds = int(seconds + 0.5)
    h, rest = divmod(seconds, 3600)
    return f"{h}:{rest // 60:02d}:{rest % 60:02d}" if h else f"{rest // 60}:{rest % 60:02d}"


class Pace:
    """Bytes per second and time left, from work done: a shard's bytes count when its results
    are merged (``Progress`` events), never when it is handed out.

    Two estimates this replaces were wrong by 10 to 1000 times. Results land in bursts: the driver
    merges shards in corpus order, so the window of ``3 x workers`` shards behind a slow one is
    merged within a millisecond, and a rate over one burst read 5.5 GB/s (rich's own estimate,
    fed by each update). A rate since the start holds the tokenizer's load and the workers'
    start-up: 10% done 1.9 s in said "0:17 left" and the scan ended 0.5 s later. So events within
    ``BURST`` seconds of a sample's first join it (a burst ends where its last event is); the rate
    runs from the oldest sample in the last ``window`` seconds to the last closed one (the newest
    may be a burst still landing); and time left waits until ``share`` of the bytes are done and
    the rate spans ``settle`` seconds.

    >>> pace = Pace(settle=1)
    >>> for t, done in [(2.0, 5), (2.001, 20), (3.0, 25), (3.001, 40), (4.0, 45)]:
    ...     pace.add(t, done)
    >>> pace.rate(), pace.left(100)  # (40 - 20) bytes from 2.001 s to 3.001 s; 55 bytes to go
    (20.0, 2.75)
    """

    BURST = 0.2  # seconds: events closer than this are one burst of merged shards
    WINDOW = 60.0  # seconds of samples the rate looks back over, at least

    def __init__(self, settle: float, share: float = 0.05):
        self.settle, self.share = settle, share
        self.window = max(self.WINDOW, 2 * settle)
        self.samples: list[list[float]] = []  # [first event, last event, bytes done by it]
        self.done = 0

    def add(self, now: float, done: int) -> None:
        self.done = done
        if self.samples and now - self.samples[-1][0] < self.BURST:
            self.samples[-1][1:] = [now, done]
        else:
            self.samples.append([now, now, done])
        # Drop the oldest sample while the next one is also ``window`` before the last closed one.
        while len(self.samples) > 3 and self.samples[1][1] <= self.samples[-2][1] - self.window:
            self.samples.pop(0)

    def _span(self) -> tuple[float, float]:
        """Seconds and bytes between the oldest sample kept and the last closed one."""
        if len(self.samples) < 3:
            return 0.0, 0.0
        (_, t0, d0), (_, t1, d1) = self.samples[0], self.samples[-2]
        return t1 - t0, d1 - d0

    def rate(self) -> float | None:
        """Bytes per second, or None until two closed samples span some time."""
        seconds, done = self._span()
        return done / seconds if seconds > 0 else None

    def left(self, total: int) -> float | None:
        """Seconds to go for ``total`` bytes (0: unknown, a pipe), or None until it can be told."""
        seconds, _ = self._span()
        rate = self.rate()
        if not total or rate is None or self.done < self.share * total or seconds < self.settle:
            return None
        return max(total - self.done, 0) / rate


class PlainLines:
    """One line per ``interval`` seconds (the first after ``interval``), from progress events.
    Time left waits for a rate over one ``interval`` of merged work: from the second line on."""

    def __init__(self, stream: TextIO, interval: float, clock: Callable[[], float] = time.monotonic):
        self.stream, self.interval, self.clock = stream, interval, clock
        self.last = clock()
        self.rows = 0
        self.pace = Pace(settle=interval)

    def __call__(self, event: Progress) -> None:
        if event.again:  # the scan starts again: so do the counts
            self.stream.write(f"lenprof: {event.again}\n")
            self.rows, self.pace = 0, Pace(settle=self.interval)
            return
        self.rows += event.rows
        now = self.clock()
        self.pace.add(now, event.corpus_done)
        if now - self.last < self.interval:
            return
        self.last = now
        self.stream.write(self.line(event) + "\n")
        self.stream.flush()

    def line(self, event: Progress) -> str:
        done, total = event.corpus_done, event.corpus_total  # total 0: a pipe, size unknown
        read = (
            f"{done / 1e6:.1f} of {total / 1e6:.1f} MB ({100 * done / total:.0f}%)"
            if total
            else f"{done / 1e6:.1f} MB"
        )
        rate, left = self.pace.rate(), self.pace.left(total)
        speed = f", {rate / 1e6:.1f} MB/s" if rate is not None else ""
        left_s = f", {_clock(left)} left" if left is not None else ""
        return f"lenprof: {self.rows:,} rows, {read}{speed}{left_s}"


def _bars(console, get_time: Callable[[], float] | None = None):
    """Rich bars whose columns shrink to the terminal: the path gives way first, nothing wraps.
    Rate and time left are the ``Bars``' own (see ``Pace``), not rich's, which are per update."""
    from rich.progress import BarColumn, Progress, TaskProgressColumn, TextColumn
    from rich.table import Column

    return Progress(
        TextColumn("{task.description}", table_column=Column(ratio=1, no_wrap=True, overflow="ellipsis")),
        BarColumn(bar_width=10 if console.width < 100 else 30),
        TaskProgressColumn(),
        TextColumn("{task.fields[rows]:,} rows", table_column=Column(no_wrap=True)),
        TextColumn("{task.fields[speed]}", table_column=Column(no_wrap=True)),
        TextColumn("{task.fields[left]}", table_column=Column(no_wrap=True)),
        console=console,
        transient=True,
        expand=True,
        get_time=get_time,
    )


class Bars:
    """Feeds rich bars, one per input, from progress events, with a ``Pace`` per input."""

    SETTLE = 5.0  # seconds of merged work before a bar tells time left

    def __init__(self, bars, clock: Callable[[], float] = time.monotonic):
        self.bars, self.clock = bars, clock
        self.tasks: dict[int, tuple[int, Pace]] = {}

    def __call__(self, event: Progress) -> None:
        if event.again:  # the scan starts again: so do the bars
            for task, _ in self.tasks.values():
                self.bars.remove_task(task)
            self.tasks.clear()
            self.bars.console.print(f"lenprof: {event.again}")
            return
        if event.input not in self.tasks:
            total = event.total or None  # 0: a pipe
            task = self.bars.add_task(event.path, total=total, rows=0, speed="", left="")
            self.tasks[event.input] = task, Pace(settle=self.SETTLE)
        task, pace = self.tasks[event.input]
        pace.add(self.clock(), event.done)
        rate, left = pace.rate(), pace.left(event.total)
        self.bars.update(
            task,
            completed=event.done,
            rows=self.bars.tasks[task].fields["rows"] + event.rows,
            speed="" if rate is None else f"{rate / 1e6:.1f} MB/s",
            left="" if left is None else f"{_clock(left)} left",
        )


def _may_be_terminal() -> bool:
    """Whether rich's ``Console(stderr=True).is_terminal`` may say yes: where not, stderr gets
    plain lines without importing rich (20-30 ms of a scan's start). rich says yes only for
    ``TTY_COMPATIBLE=1``, a non-empty ``FORCE_COLOR`` (unless ``TTY_COMPATIBLE=0``) or a stderr
    that is a tty; a stderr that is none, or rich's own proxy, is left to rich."""
    stream = sys.stderr
    if stream is None or hasattr(stream, "rich_proxied_file"):
        return True
    compatible = os.environ.get("TTY_COMPATIBLE", "")
    if compatible in ("0", "1"):
        return compatible == "1"
    if os.environ.get("FORCE_COLOR") is not None:
        return os.environ["FORCE_COLOR"] != ""
    try:
        return bool(stream.isatty())
    except (AttributeError, ValueError):  # no isatty, or a closed stream: rich says no
        return False


@contextlib.contextmanager
def progress(quiet: bool, interval: float = DEFAULT_INTERVAL) -> Iterator[Callable[[Progress], None] | None]:
    """A progress callback for :func:`lenprof.scan` (None when ``quiet``)."""
    if quiet:
        yield None
        return
    if not _may_be_terminal():  # the common case of a log or a pipe, without importing rich
        yield PlainLines(sys.stderr, interval)
        return
    from rich.console import Console

    console = Console(stderr=True)
    if not console.is_terminal:
        yield PlainLines(console.file, interval)
        return
    with _bars(console) as bars:
        yield Bars(bars)
