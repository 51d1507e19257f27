"""Killing a scan at random points while it writes every output kind (issue 9, fault 2).

Ctrl-C (SIGINT) and SIGTERM stop the workers and the run within 2 s, remove every temporary
file and exit 130/143 with one line; SIGKILL cannot be caught, so its temporary files stay, but
no later run reads them as input and the next run in that folder removes them. In every case
the outputs of the previous run are untouched."""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

WORDS = (
    "embedding model query passage negative retrieval token length padding truncation batch "
    "gradient loss collapse tokenizer corpus dataset training recall ranking vector cosine"
).split()
OUTPUTS = ("clean.parquet", "rejects.jsonl", "profile.json", "report.html")


@pytest.fixture(scope="module")
def corpus(tmp_path_factory) -> Path:
    """~100 MB of rows with distinct texts: a scan that outlasts the latest kill (2.5 s) with room
    to spare, also on a faster machine (at 50 MB it once ended first, after the count got faster)."""
    rng = random.Random(7)
    path = tmp_path_factory.mktemp("corpus") / "data.jsonl"
    with open(path, "w", encoding="utf-8") as fh:

        def text(n: int, i: int) -> str:
            return " ".join(rng.choice(WORDS) for _ in range(n)) + f" {i} {rng.random()}"

        for i in range(100_000):
            if i % 997 == 0:
                fh.write("{broken\n")
            fh.write(
                json.dumps({"query": text(8, i), "pos": [text(40, i)], "neg": [text(40, i), text(30, i)]})
                + "\n"
            )
    return path


# Every scan this module starts carries this in its environment, and so do its workers: other
# lenprof runs on the machine (a benchmark, a second test session) are never counted as ours.
TAG = f"LENPROF_TEST_SCAN={os.getpid()}"


def workers_alive() -> list[int]:
    pids = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                cmdline = Path(f"/proc/{entry}/cmdline").read_bytes()
                ours = TAG.encode() in Path(f"/proc/{entry}/environ").read_bytes().split(b"\0")
            except OSError:
                continue
            # a worker started afresh runs ``serve``; a forked one has its scan's command line,
            # and once the scan has ended, a process with that line and our tag is a worker
            if b"lenprof" in cmdline and ours:
                pids.append(int(entry))
    return pids


def start(corpus: Path, out: Path, *more: str, env: dict | None = None) -> subprocess.Popen:
    args = [sys.executable, "-m", "lenprof", "scan", str(corpus), "--workers", "2", "--shard-size", "1",
            "--clean-out", str(out / "clean.parquet"), "--rejects", str(out / "rejects.jsonl"),
            "--out", str(out / "profile.json"), "--report", str(out / "report.html"),
            "--split-by-length", "0,64", "--split-dir", str(out / "split"), "--format", "args", *more]  # fmt: skip
    env = {**os.environ, **(env or {}), "LENPROF_DEBUG": "", "LENPROF_TEST_SCAN": str(os.getpid())}
    return subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)


@pytest.mark.slow
@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM, signal.SIGKILL])
def test_a_scan_killed_at_random_points_harms_nothing(corpus, tmp_path, sig):
    rng = random.Random(int(sig))
    out = tmp_path / "out"
    (out / "split").mkdir(parents=True)
    old = {name: f"old {name}\n" for name in OUTPUTS}
    old["split/data_len-0-64.jsonl"] = "old bucket\n"
    for name, text in old.items():
        (out / name).write_text(text)
    for _ in range(3):
        proc = start(corpus, out)
        time.sleep(rng.uniform(0.5, 2.5))  # reading, checking, tokenizing or writing
        proc.send_signal(sig)
        sent = time.monotonic()
        _, stderr = proc.communicate(timeout=30)
        took = time.monotonic() - sent
        assert proc.returncode != 0, "the scan ended before the signal: make the corpus larger"
        assert {name: (out / name).read_text() for name in old} == old  # every old output intact
        if sig == signal.SIGKILL:
            assert proc.returncode == -signal.SIGKILL
        else:
            assert proc.returncode == {signal.SIGINT: 130, signal.SIGTERM: 143}[sig]
            assert took < 2.0, f"stopped {took:.2f} s after the signal"
            assert "Traceback" not in stderr and len(stderr.strip().splitlines()) == 1, stderr
            assert [p.name for p in out.rglob("*") if ".lenprof-" in p.name] == []
        deadline = time.monotonic() + 5
        while workers_alive() and time.monotonic() < deadline:
            time.sleep(0.1)
        assert workers_alive() == [], "a worker outlived its scan"

    # Whatever was left, a scan of the output folder reads only real data files...
    found = subprocess.run(
        [sys.executable, "-m", "lenprof", "scan", str(out), "--format", "json", "-q"],
        capture_output=True,
        text=True,
    )
    inputs = [i["path"] for i in json.loads(found.stdout)["inputs"]] if found.returncode == 0 else []
    assert found.returncode in (0, 2) and all(".lenprof-" not in p for p in inputs), found.stderr
    # ... and the next run succeeds and leaves no temporary file behind.
    proc = start(corpus, out)
    stdout, stderr = proc.communicate(timeout=300)
    assert proc.returncode == 0, stderr
    assert stdout.startswith("--query_max_len ")
    assert [p.name for p in out.rglob("*") if ".lenprof-" in p.name] == []
    assert json.loads((out / "profile.json").read_text())["samples"]["dropped"] == {"malformed_json": 101}


@pytest.mark.slow
@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM])
def test_a_scan_out_of_core_killed_leaves_no_spill(corpus, tmp_path, sig):
    """Out of core (the corpus is over 32 times a 1 MiB budget), a scan stopped in any of its
    sweeps removes its spill folder too."""
    spill = tmp_path / "tmp"
    spill.mkdir()
    rng = random.Random(int(sig))
    for _ in range(2):
        out = tmp_path / f"out{_}"
        (out / "split").mkdir(parents=True)
        proc = start(corpus, out, "--memory-budget", "1M", env={"TMPDIR": str(spill)})
        time.sleep(rng.uniform(0.5, 4))
        proc.send_signal(sig)
        _, stderr = proc.communicate(timeout=30)
        assert proc.returncode == {signal.SIGINT: 130, signal.SIGTERM: 143}[sig], stderr
        assert "Traceback" not in stderr and len(stderr.strip().splitlines()) == 1, stderr
        assert list(spill.iterdir()) == []
