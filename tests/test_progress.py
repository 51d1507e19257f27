"""Progress on stderr: plain periodic lines when stderr is not a terminal, bars that fit one."""

from __future__ import annotations

import io
import json
import os
import re
import subprocess
import sys

import pytest
from click.testing import CliRunner
from conftest import EXAMPLES

from lenprof.cli import main
from lenprof.cli.progress import Bars, PlainLines, _bars
from lenprof.engine.driver import Progress

LINE = re.compile(
    r"lenprof: ([\d,]+) rows, ([\d.]+) of ([\d.]+) MB \((\d+)%\)(, [\d.]+ MB/s(, \d+:\d\d left)?)?"
)


def test_captured_stderr_gets_plain_progress_lines(corpora):
    paths = [str(EXAMPLES), str(corpora)]
    result = CliRunner().invoke(
        main,
        ["scan", *paths, "--shard-size", "0.01", "--progress-interval", "0", "--format", "json"],
        catch_exceptions=False,
    )
    assert result.exit_code == 0
    read = json.loads(result.stdout)["samples"]["read"]
    progress = [line for line in result.stderr.splitlines() if not line.startswith("lenprof: warnings:")]
    lines = [line for line in progress if " rows, " in line]
    assert len(lines) > 10  # one per shard at interval 0
    assert all(LINE.fullmatch(line) for line in lines), lines[:3]
    rows = [int(LINE.fullmatch(line).group(1).replace(",", "")) for line in lines]
    assert rows == sorted(rows) and rows[-1] == read
    size = sum(
        os.path.getsize(os.path.join(d, f))
        for p in paths
        for d, _, files in os.walk(p)
        for f in files
        if f.endswith(".jsonl")
    )
    last = LINE.fullmatch(lines[-1])
    assert (last.group(2), last.group(3), last.group(4)) == (f"{size / 1e6:.1f}", f"{size / 1e6:.1f}", "100")
    assert all(len(line) <= 80 for line in lines)


def test_quiet_and_default_interval_say_nothing_for_a_short_scan():
    for flags in (["-q"], []):
        result = CliRunner().invoke(
            main, ["scan", str(EXAMPLES), "--format", "args", *flags], catch_exceptions=False
        )
        assert not [line for line in result.stderr.splitlines() if LINE.fullmatch(line)]
        assert not [line for line in result.stderr.splitlines() if " of " in line and " MB" in line]


def test_one_line_per_interval():
    now = [100.0]
    out = io.StringIO()
    lines = PlainLines(out, 10, clock=lambda: now[0])
    for t in range(26):  # an event a second, 1,000 rows and 1 MB each, 30 MB in all
        now[0] = 100.0 + t
        lines(Progress(0, "a.jsonl", (t + 1) * 1_000_000, 30_000_000, 1000, (t + 1) * 1_000_000, 30_000_000))
    # time left once the rate spans an interval: from the second line
    assert out.getvalue() == (
        "lenprof: 11,000 rows, 11.0 of 30.0 MB (37%), 1.0 MB/s\n"
        "lenprof: 21,000 rows, 21.0 of 30.0 MB (70%), 1.0 MB/s, 0:09 left\n"
    )


def bursts(start: float, period: float, count: int, shards: int = 4, mb: int = 5) -> list[tuple[float, int]]:
    """When each shard is merged and the bytes done then: the driver merges shards in corpus order,
    so they land in bursts (``shards`` within a few milliseconds, one burst each ``period``)."""
    return [
        (start + b * period + k / 1000, (b * shards + k + 1) * mb * 1_000_000)
        for b in range(count)
        for k in range(shards)
    ]


def test_plain_lines_tell_rate_and_time_left_from_merged_work():
    """Issue 22, point 7: the rate was bytes done over the time since the context opened, which
    holds the tokenizer's load and the workers' start; a 2 s start made the first line read
    "5%, 2.5 MB/s, 0:38 left" for a scan with 4 s to go (the issue saw "10%, 0:17 left", done
    0.5 s later)."""
    now = [0.0]
    out = io.StringIO()
    lines = PlainLines(out, 1, clock=lambda: now[0])
    events = bursts(start=2.0, period=1.0, count=5)  # 100 MB at 20 MB/s after a 2 s start
    end = events[-1][0]
    for now[0], done in events:
        lines(Progress(0, "a.jsonl", done, 100_000_000, 250, done, 100_000_000))
    assert out.getvalue().splitlines() == [
        "lenprof: 250 rows, 5.0 of 100.0 MB (5%)",  # no rate from one burst, no time left
        "lenprof: 1,250 rows, 25.0 of 100.0 MB (25%)",
        "lenprof: 2,250 rows, 45.0 of 100.0 MB (45%), 20.0 MB/s, 0:03 left",
        "lenprof: 3,250 rows, 65.0 of 100.0 MB (65%), 20.0 MB/s, 0:02 left",
        "lenprof: 4,250 rows, 85.0 of 100.0 MB (85%), 20.0 MB/s, 0:01 left",
    ]
    for t, line in zip([2.0, 3.0, 4.0, 5.0, 6.0], out.getvalue().splitlines(), strict=True):
        if left := re.search(r"(\d+):(\d\d) left", line):
            told = 60 * int(left.group(1)) + int(left.group(2))
            assert end - t <= told + 0.5 <= end - t + 1.5  # at most a burst's period over


def test_time_left_waits_for_five_percent():
    now = [0.0]
    out = io.StringIO()
    lines = PlainLines(out, 0, clock=lambda: now[0])
    for now[0], done in bursts(start=2.0, period=1.0, count=3, shards=1, mb=1):  # 1 MB a second of 100
        lines(Progress(0, "a.jsonl", done, 100_000_000, 250, done, 100_000_000))
    assert out.getvalue().splitlines()[-1] == "lenprof: 750 rows, 3.0 of 100.0 MB (3%), 1.0 MB/s"


def test_bars_tell_rate_from_merged_work_not_from_rich_updates():
    """Issue 22, point 7: rich's own rate (TransferSpeedColumn) is over its updates, and the
    first burst of merged shards, 15 MB within 3 ms, read as 5.0 GB/s. The bars show the Pace's."""
    from rich.console import Console
    from rich.progress import TransferSpeedColumn

    now = [0.0]
    console = Console(file=io.StringIO(), force_terminal=True, width=100, color_system=None)
    bars = _bars(console, get_time=lambda: now[0])
    feed = Bars(bars, clock=lambda: now[0])
    events = bursts(start=2.0, period=1.0, count=10)  # 200 MB at 20 MB/s

    fed = [0]

    def shown_after(n: int) -> str:
        for now[0], done in events[fed[0] : n]:
            feed(Progress(0, "a.jsonl", done, 200_000_000, 250, done, 200_000_000))
        fed[0] = n
        console.file = io.StringIO()
        console.print(bars.get_renderable())
        return console.file.getvalue()

    first = shown_after(4)  # the first burst
    assert str(TransferSpeedColumn().render(bars.tasks[0])) == "5.0 GB/s"  # what the bar said
    assert "/s" not in first and "left" not in first
    fifth = shown_after(17)  # into the fifth burst: the rate spans 3 s, under Bars.SETTLE
    assert "20.0 MB/s" in fifth and "left" not in fifth
    assert "20.0 MB/s 0:02 left" in shown_after(33)  # into the ninth, 1 s to go


def test_bars_fit_80_columns_without_wrapping():
    from rich.console import Console

    now = [0.0]
    console = Console(file=io.StringIO(), force_terminal=True, width=80, color_system=None)
    bars = _bars(console, get_time=lambda: now[0])
    feed = Bars(bars, clock=lambda: now[0])
    for i in range(3):
        path = f"/data/some/deeply/nested/folder/of/tasks/task-{i}/train-with-a-long-name.jsonl"
        for now[0], done in bursts(start=10.0 * i, period=1.0, count=8, mb=100):
            feed(Progress(i, path, done, 10_000_000_000, 123_456, 0, 0))
    console.print(bars.get_renderable())
    rendered = console.file.getvalue().splitlines()
    assert len(rendered) == 3 and all(len(line) <= 80 for line in rendered)
    assert all("rows" in line and "/s" in line and " left" in line for line in rendered), rendered


class _Stream(io.StringIO):
    def __init__(self, tty: bool):
        super().__init__()
        self.tty = tty

    def isatty(self) -> bool:
        return self.tty


@pytest.mark.parametrize("tty", [False, True])
@pytest.mark.parametrize("compatible", [None, "", "0", "1", "yes"])
@pytest.mark.parametrize("force_color", [None, "", "1"])
def test_plain_lines_without_rich_exactly_where_rich_sees_no_terminal(
    monkeypatch, tty, compatible, force_color
):
    from rich.console import Console

    from lenprof.cli import progress as progress_module

    for name, value in (("TTY_COMPATIBLE", compatible), ("FORCE_COLOR", force_color)):
        if value is None:
            monkeypatch.delenv(name, raising=False)
        else:
            monkeypatch.setenv(name, value)
    monkeypatch.setattr("sys.stderr", _Stream(tty))
    assert progress_module._may_be_terminal() == Console(stderr=True).is_terminal  # rich: the oracle
    with progress_module.progress(quiet=False) as shown:
        assert isinstance(shown, Bars if Console(stderr=True).is_terminal else PlainLines)


def test_a_scan_into_a_log_does_not_import_rich():
    env = {k: v for k, v in os.environ.items() if k not in ("TTY_COMPATIBLE", "FORCE_COLOR")}
    script = (
        "import sys\nfrom lenprof.cli import main\n"
        "main(['scan', sys.argv[1], '--format', 'json'], standalone_mode=False)\n"
        "print('rich' in sys.modules, 'rich.console' in sys.modules)\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", script, str(EXAMPLES)], capture_output=True, text=True, env=env, timeout=120
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines()[-1] == "False False"
