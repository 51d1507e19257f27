"""Progress on stderr: plain periodic lines when stderr is not a terminal, bars that fit one."""

from __future__ import annotations

import io
import json
import os
import re

from click.testing import CliRunner
from conftest import EXAMPLES

from lenprof.cli import main
from lenprof.cli.progress import PlainLines, _bars
from lenprof.engine.driver import Progress

LINE = re.compile(
    r"lenprof: ([\d,]+) rows, ([\d.]+) of ([\d.]+) MB \((\d+)%\), [\d.]+ MB/s(, \d+:\d\d left)?"
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
    assert out.getvalue() == (
        "lenprof: 11,000 rows, 11.0 of 30.0 MB (37%), 1.1 MB/s, 0:17 left\n"
        "lenprof: 21,000 rows, 21.0 of 30.0 MB (70%), 1.1 MB/s, 0:09 left\n"
    )


def test_bars_fit_80_columns_without_wrapping():
    from rich.console import Console

    console = Console(file=io.StringIO(), force_terminal=True, width=80, color_system=None)
    bars = _bars(console)
    for i in range(3):
        path = f"/data/some/deeply/nested/folder/of/tasks/task-{i}/train-with-a-long-name.jsonl"
        task = bars.add_task(path, total=10_000_000_000, rows=0)
        bars.update(task, completed=5_000_000_000, rows=123_456_789)
    console.print(bars.get_renderable())
    rendered = console.file.getvalue().splitlines()
    assert len(rendered) == 3 and all(len(line) <= 80 for line in rendered)
    assert all("rows" in line and "/s" in line for line in rendered)
