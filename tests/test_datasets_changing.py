"""A ``datasets`` save_to_disk folder whose ``.arrow`` file changes while the scan reads it stops
the scan in one line naming the file, writes nothing, and never dies of SIGBUS (the file was
memory-mapped: a truncated page killed lenprof with exit 135 and left a temporary file)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import datasets  # the hf extra, which `make test` installs
import pytest
from conftest import REPO

from lenprof import InputError, scan


def saved(folder: Path, rows: int = 4000) -> Path:
    """A save_to_disk folder of FlagEmbedding rows; its one data file."""
    datasets.Dataset.from_list(
        [
            {"query": f"q{i} what is row {i}", "pos": [f"row {i} is this"], "neg": [f"not row {i}"]}
            for i in range(rows)
        ]
    ).save_to_disk(str(folder))
    (arrow,) = folder.glob("*.arrow")
    return arrow


def changed(path: Path, before: int) -> str:
    return (
        f"{path} changed while it was being read (size {before:,} -> {path.stat().st_size:,} bytes); "
        "scan a copy that nothing writes to"
    )


def outputs(folder: Path) -> dict[str, str]:
    return {"clean_out": str(folder / "clean.jsonl"), "profile_out": str(folder / "profile.json")}


def written(folder: Path) -> list[str]:
    """The files in ``folder``: an aborted scan may leave the folder it made, never a file."""
    return sorted(os.listdir(folder)) if folder.exists() else []


def test_a_datasets_folder_appended_to_while_it_is_read_stops_the_scan(tok, tmp_path):
    arrow = saved(tmp_path / "ds")
    before = arrow.stat().st_size
    calls = []

    def on_progress(progress):  # the first piece is counted: the file is still being read
        if not calls:
            with open(arrow, "ab") as fh:
                fh.write(b"\0" * 4096)
        calls.append(progress)

    with pytest.raises(InputError) as caught:
        scan(
            str(tmp_path / "ds"),
            tokenizer=tok,
            shard_bytes=4096,
            on_progress=on_progress,
            **outputs(tmp_path / "o"),
        )
    assert str(caught.value) == changed(arrow, before)
    assert calls and written(tmp_path / "o") == []


SCRIPT = """
import sys
from lenprof import InputError, scan

arrow = sys.argv[2]
calls = []

def on_progress(progress):  # the first piece is counted: the rest is read from a truncated file
    if not calls:
        with open(arrow, "r+b") as fh:
            fh.truncate(int(sys.argv[3]))
    calls.append(progress)

try:
    scan(sys.argv[1], shard_bytes=4096, on_progress=on_progress,
         clean_out=sys.argv[4] + "/clean.jsonl", profile_out=sys.argv[4] + "/profile.json")
except InputError as exc:
    print(exc)
    sys.exit(2)
"""


@pytest.mark.parametrize("keep", [0.5, 0.01])
def test_a_datasets_folder_truncated_while_it_is_read_stops_the_scan_without_sigbus(tmp_path, keep):
    arrow = saved(tmp_path / "ds", rows=20000)
    before = arrow.stat().st_size
    out = tmp_path / "o"
    run = subprocess.run(
        [sys.executable, "-c", SCRIPT, str(tmp_path / "ds"), str(arrow), str(int(before * keep)), str(out)],
        capture_output=True,
        text=True,
        cwd=REPO,
        env={**os.environ, "OMP_NUM_THREADS": "1"},
        timeout=300,
    )
    assert (run.returncode, run.stdout) == (2, changed(arrow, before) + "\n"), run.stderr[-2000:]
    assert written(out) == []


def test_an_unchanged_datasets_folder_reads_every_row_in_order(tok, tmp_path):
    """Read in record batches, not memory-mapped, the rows are those of the dataset, in order."""
    saved(tmp_path / "ds", rows=3000)
    scan(str(tmp_path / "ds"), tokenizer=tok, shard_bytes=4096, **outputs(tmp_path / "o"))
    rows = [json.loads(line) for line in (tmp_path / "o" / "clean.jsonl").read_text().splitlines()]
    assert [r["query"] for r in rows] == [f"q{i} what is row {i}" for i in range(3000)]
