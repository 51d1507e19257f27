"""No row is ever lost: stdin read again after the fast count's self-check fails, and an input
that changes while it is read (issue 20, findings 3 and 4), with the run record of the recount."""

from __future__ import annotations

import errno
import gzip
import html
import importlib
import json
import os
import subprocess
import sys
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from click.testing import CliRunner
from conftest import REPO

from lenprof import scan
from lenprof.cli import main
from lenprof.count.fast.counter import FastCounter
from lenprof.engine.local import LocalEngine
from lenprof.engine.plan import Outputs, make_plan
from lenprof.engine.run import scan_plan
from lenprof.errors import InputError
from lenprof.io.readers import stdin

ROWS = 32_000  # about 3.3 MB: more than the 1 MiB head that discovery reads from stdin
MISMATCH_AFTER = 40_000  # texts counted (three a row) before the self-check is made to fail


def corpus_lines(n: int = ROWS) -> list[bytes]:
    """``n`` lines: rows, every 500th a duplicate of the row before it, every 700th not JSON."""
    lines = []
    for i in range(n):
        if i % 700 == 699:
            lines.append(BROKEN)
        elif i % 500 == 499:
            lines.append(lines[-1])
        else:
            row = {"query": f"question number {i} about things", "pos": [f"answer {i} is here"], "neg": [f"other {i}"]}  # fmt: skip
            lines.append(json.dumps(row).encode())
    return lines


BROKEN = b'{"query": "broken'


def drops(lines: list[bytes]) -> dict[str, int]:
    """What a scan drops of ``corpus_lines``, counted from the lines themselves."""
    rows = [line for line in lines if line != BROKEN]
    return {"malformed_json": len(lines) - len(rows), "duplicate_row": len(rows) - len(set(rows))}


def off_by_one_after(monkeypatch, texts: int) -> None:
    """The fast count's self-check finds one count off by one, once the counter has counted
    ``texts`` texts (past the first shard): as if the fast path had a bug."""
    real = FastCounter._check

    def check(self, sample, counts):
        if self.texts > texts:
            counts = counts.copy()
            counts[0] += 1
        real(self, sample, counts)

    monkeypatch.setattr(FastCounter, "_check", check)


def open_fds() -> set[str]:
    """The files this process holds open that have no name left (a spool, a deleted file)."""
    links = []
    for fd in os.listdir("/proc/self/fd"):
        try:
            links.append(os.readlink(f"/proc/self/fd/{fd}"))
        except OSError:
            pass  # the folder's own descriptor, closed by now
    return {link for link in links if link.endswith(" (deleted)")}


def scan_stdin(data: bytes, folder: Path, *extra: str):
    folder.mkdir()
    args = ["scan", "-", "--format", "json", "-q", "--workers", "1", "--shard-size", "0.25"]
    outs = ["--clean-out", str(folder / "clean.jsonl"), "--rejects", str(folder / "rejects.jsonl")]
    result = CliRunner().invoke(main, [*args, *outs, *extra], input=data)
    assert result.exit_code == 0, result.output
    return result


# --- stdin after a self-check mismatch -----------------------------------------------------------


def test_stdin_is_read_whole_again_when_the_self_check_fails(tmp_path, monkeypatch):
    lines = corpus_lines()
    data = b"\n".join(lines) + b"\n"
    exact = scan_stdin(data, tmp_path / "exact", "--exact-only")
    off_by_one_after(monkeypatch, MISMATCH_AFTER)
    fds = open_fds()
    folder = tmp_path / "recounted"
    extra = ("--out", str(folder / "profile.json"), "--report", str(folder / "report.html"))
    recounted = scan_stdin(data, folder, *extra)
    assert open_fds() == fds  # the spool is closed (an unnamed file: its space is freed)

    p = json.loads(recounted.stdout)
    s = p["samples"]
    assert s["read"] == len(lines) == s["kept"] + sum(s["dropped"].values())
    assert s["dropped"] == drops(lines)
    clean = (folder / "clean.jsonl").read_bytes().splitlines()
    assert len(clean) == s["kept"] and clean[-1] == lines[-1]  # the last row of the pipe is there
    assert len((folder / "rejects.jsonl").read_bytes().splitlines()) == sum(drops(lines).values())
    # the same numbers and the same bytes as a scan that counts every text with the tokenizer
    e = json.loads(exact.stdout)
    assert {k: p[k] for k in ("samples", "fields", "recommendation")} == {
        k: e[k] for k in ("samples", "fields", "recommendation")
    }
    for name in ("clean.jsonl", "rejects.jsonl"):
        assert (folder / name).read_bytes() == (tmp_path / "exact" / name).read_bytes()

    # the run record says why every text was counted again: on stdout, in --out and in --report
    failed = p["run"]["counting"]["fast_path_failed"]
    assert failed.startswith("the chunk count of ") and p["run"]["counting"]["path"] == "tokenizer"
    assert json.loads((folder / "profile.json").read_text())["run"]["counting"] == p["run"]["counting"]
    report = (folder / "report.html").read_text()
    assert '<p data-counting="tokenizer">Token counts: by the tokenizer.</p>' in report
    assert "<b>The piece-cache count disagreed with the tokenizer</b>" in report


def test_a_pipe_is_read_whole_again_when_the_self_check_fails(tmp_path):
    """A real pipe (no size, short reads) and worker processes: the spool is the driver's."""
    lines = corpus_lines()
    script = (
        "import sys; sys.path.insert(0, sys.argv[1]); import test_rows_kept as t; "
        "from _pytest.monkeypatch import MonkeyPatch; t.off_by_one_after(MonkeyPatch(), t.MISMATCH_AFTER); "
        "from lenprof.cli import main; main(sys.argv[2:])"
    )
    clean = tmp_path / "clean.jsonl"
    args = ["scan", "-", "--format", "json", "-q", "--workers", "1", "--clean-out", str(clean)]
    done = subprocess.run(
        [sys.executable, "-c", script, str(REPO / "tests"), *args],
        input=b"\n".join(lines) + b"\n",
        capture_output=True,
        timeout=300,
        env={**os.environ, "PYTHONPATH": str(REPO)},
    )
    assert done.returncode == 0, done.stderr.decode()
    p = json.loads(done.stdout)
    assert p["run"]["counting"]["fast_path_failed"].startswith("the chunk count of ")
    assert p["samples"]["read"] == len(lines)
    assert (
        len(clean.read_bytes().splitlines())
        == p["samples"]["kept"]
        == len(lines) - sum(drops(lines).values())
    )


def test_stdin_that_cannot_be_spooled_is_scanned_and_a_recount_says_what_to_do(tmp_path, monkeypatch):
    def no_room(*args, **kwargs):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(stdin.tempfile, "TemporaryFile", no_room)
    data = b"\n".join(corpus_lines()) + b"\n"
    fine = scan_stdin(data, tmp_path / "fine")
    assert json.loads(fine.stdout)["samples"]["read"] == ROWS

    off_by_one_after(monkeypatch, MISMATCH_AFTER)
    out = tmp_path / "failed"
    out.mkdir()
    failed = CliRunner().invoke(
        main, ["scan", "-", "-q", "--workers", "1", "--clean-out", str(out / "clean.jsonl")], input=data
    )
    assert failed.exit_code == 2
    assert failed.stderr == (
        "Error: <stdin>: must be read again (the fast count's self-check failed, or the scan outgrew "
        "--memory-budget and reads its input three times), but it could not be kept for that (No space "
        f"left on device in {stdin.tempfile.gettempdir()}); set TMPDIR to a folder with room, or give "
        "the rows as a file\n"
    )
    assert os.listdir(out) == []


def test_the_profile_and_the_report_say_the_fast_count_failed(tok, tmp_path, monkeypatch):
    src = tmp_path / "rows.jsonl"
    src.write_bytes(b"\n".join(corpus_lines(2000)) + b"\n")
    normal = tmp_path / "normal.html"
    scan(str(src), tokenizer=tok, report_out=str(normal))
    assert (
        '<p data-counting="chunks:' in normal.read_text()
        and "data-fast-path-failed" not in normal.read_text()
    )

    off_by_one_after(monkeypatch, 3000)
    profile, report = tmp_path / "profile.json", tmp_path / "report.html"
    p = scan(str(src), tokenizer=tok, profile_out=str(profile), report_out=str(report))
    failed = p.run.counting.fast_path_failed
    assert failed.startswith("the chunk count of ")
    assert json.loads(profile.read_text())["run"]["counting"] == {
        "path": "tokenizer",
        "fast_share": 0.0,
        "self_checked": 0,
        "fast_path_failed": failed,
    }
    assert (
        "<p data-fast-path-failed><b>The piece-cache count disagreed with the tokenizer</b> "
        f"({html.escape(failed)}); every text was counted again by the tokenizer.</p>"
    ) in report.read_text()


# --- an input that changes while it is read ------------------------------------------------------


def truncate(path: Path) -> None:
    with open(path, "r+b") as fh:
        fh.truncate(path.stat().st_size // 2)


def append(path: Path) -> None:
    with open(path, "ab") as fh:
        fh.write(b'{"query": "late", "pos": ["row"], "neg": ["added"]}\n' * 100)


CHANGES = {"truncated": truncate, "appended": append}


def changed(path: Path, before: int) -> str:
    return (
        f"{path} changed while it was being read (size {before:,} -> {path.stat().st_size:,} bytes); "
        "scan a copy that nothing writes to"
    )


def written(folder: Path) -> list[str]:
    """The files in ``folder``: an aborted scan may leave the folder it made, never a file."""
    return sorted(os.listdir(folder)) if folder.exists() else []


def outputs(folder: Path) -> dict[str, str]:
    return {
        "clean_out": str(folder / "clean.jsonl"),
        "rejects_out": str(folder / "rejects.jsonl"),
        "profile_out": str(folder / "profile.json"),
        "report_out": str(folder / "report.html"),
    }


@pytest.mark.parametrize("workers", [1, 2])
@pytest.mark.parametrize("change", CHANGES)
def test_a_jsonl_file_changed_while_workers_read_it_stops_the_scan(tok, tmp_path, workers, change):
    src = tmp_path / "in" / "rows.jsonl"
    src.parent.mkdir()
    src.write_bytes(b"\n".join(corpus_lines(4000)) + b"\n")
    before = src.stat().st_size
    out = tmp_path / "out"
    calls = []

    def on_progress(progress):  # the first shard is merged: later ones are still being read
        if not calls:
            CHANGES[change](src)
        calls.append(progress)

    with pytest.raises(InputError) as caught:
        scan(
            str(src),
            tokenizer=tok,
            workers=workers,
            shard_bytes=4096,
            on_progress=on_progress,
            **outputs(out),
        )
    assert str(caught.value) == changed(src, before)
    assert calls and written(out) == []


def gz(path: Path, data: bytes) -> None:
    path.write_bytes(gzip.compress(data))


def parquet(path: Path, data: bytes) -> None:
    rows = [json.loads(line) for line in data.splitlines() if line.startswith(b'{"query": "q')]
    pq.write_table(pa.Table.from_pylist(rows), path, row_group_size=100)


def csv(path: Path, data: bytes) -> None:
    rows = [json.loads(line) for line in data.splitlines() if line.startswith(b'{"query": "q')]
    path.write_text("query,pos,neg\n" + "".join(f"{r['query']},{r['pos'][0]},{r['neg'][0]}\n" for r in rows))


def json_array(path: Path, data: bytes) -> None:
    path.write_bytes(
        b"[" + b",\n".join(line for line in data.splitlines() if line.startswith(b'{"query": "q')) + b"]"
    )


WRITERS = {
    "rows.jsonl": lambda path, data: path.write_bytes(data),
    "rows.jsonl.gz": gz,
    "rows.parquet": parquet,
    "rows.csv": csv,
    "rows.json": json_array,
}


@pytest.mark.parametrize("name", WRITERS)
@pytest.mark.parametrize("change", CHANGES)
def test_an_input_changed_between_discovery_and_reading_stops_the_scan(tok, tmp_path, name, change):
    src = tmp_path / name
    WRITERS[name](src, b"\n".join(corpus_lines(2000)) + b"\n")
    before = src.stat().st_size
    out = tmp_path / "out"
    plan = make_plan(str(src), tokenizer=tok, outputs=Outputs(*outputs(out).values()), shard_bytes=8192)
    CHANGES[change](src)
    with pytest.raises(InputError) as caught:
        scan_plan(plan, LocalEngine(1))
    assert str(caught.value) == changed(src, before)
    assert written(out) == []


def test_the_cli_says_which_file_changed_and_writes_nothing(tmp_path, monkeypatch):
    src = tmp_path / "rows.jsonl"
    src.write_bytes(b"\n".join(corpus_lines(2000)) + b"\n")
    before = src.stat().st_size
    scan_module = importlib.import_module("lenprof.api")  # lenprof.scan is also the function
    real = scan_module.make_plan

    def plan_then_truncate(*args, **kwargs):
        plan = real(*args, **kwargs)
        truncate(src)
        return plan

    monkeypatch.setattr(scan_module, "make_plan", plan_then_truncate)
    out = tmp_path / "out"
    result = CliRunner().invoke(
        main, ["scan", str(src), "-q", "--clean-out", str(out / "clean.jsonl"), "--out", str(out / "p.json")]
    )
    assert result.exit_code == 2
    assert result.stderr == f"Error: {changed(src, before)}\n"
    assert written(out) == []


def test_an_unchanged_file_scans_as_before(tok, tmp_path):
    src = tmp_path / "rows.jsonl"
    src.write_bytes(b"\n".join(corpus_lines(2000)) + b"\n")
    p = scan(str(src), tokenizer=tok, shard_bytes=4096)
    assert p.samples.read == 2000
