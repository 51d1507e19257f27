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

import numpy as np
import pytest
from conftest import REPO

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


def default_signals() -> None:
    """In the child, before lenprof starts: the signals these tests send at their default. A
    parent that ignores them (``nohup``, a shell's background job) passes that on, and lenprof
    rightly leaves an ignored signal ignored: the test would see a scan that does not stop."""
    for signum in (
        signal.SIGINT,
        signal.SIGHUP,
        signal.SIGQUIT,
        signal.SIGTERM,
        signal.SIGUSR1,
        signal.SIGALRM,
    ):
        signal.signal(signum, signal.SIG_DFL)


def start(corpus: Path, out: Path, *more: str, env: dict | None = None) -> subprocess.Popen:
    args = [sys.executable, "-m", "lenprof", "scan", str(corpus), "--workers", "2", "--shard-size", "1",
            "--clean-out", str(out / "clean.parquet"), "--rejects", str(out / "rejects.jsonl"),
            "--out", str(out / "profile.json"), "--report", str(out / "report.html"),
            "--split-by-length", "0,64", "--split-dir", str(out / "split"), "--format", "args", *more]  # fmt: skip
    env = {**os.environ, **(env or {}), "LENPROF_DEBUG": "", "LENPROF_TEST_SCAN": str(os.getpid())}
    return subprocess.Popen(
        args, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env, preexec_fn=default_signals
    )


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


MASKED = """
import os, signal, sys, time
import lenprof.engine.spill as spill

def masked(*args, **kwargs):
    # What numpy's tofile did with a signal that came while it asked isinstance(file,
    # os.PathLike): the handler's exception was dropped and a TypeError raised in its place.
    try:
        os.kill(os.getpid(), {sig})
        time.sleep(10)
    except BaseException:
        pass
    raise TypeError("expected str, bytes or os.PathLike object, not BufferedWriter")

spill._scatter = masked
from lenprof.cli import entry
sys.argv = ["lenprof", "scan", {corpus!r}, "--memory-budget", "1M", "--min-neg", "0", "-q",
            "--clean-out", {clean!r}]
entry()
"""


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM])
def test_a_signal_that_c_code_turns_into_another_error_is_still_a_stop(tmp_path, sig):
    """A signal's exception that a C library swallows and replaces (numpy's file functions did,
    with a TypeError: CI saw it once in the test above) still ends the scan as that signal:
    exit 130/143 and one line, not "internal error", and no spill left."""
    corpus = tmp_path / "tiny.jsonl"
    corpus.write_text("".join(f'{{"query": "q{i}", "pos": ["p{i}"]}}\n' for i in range(20_000)))
    spill = tmp_path / "tmp"
    spill.mkdir()
    clean = tmp_path / "clean.jsonl"
    script = MASKED.format(sig=int(sig), corpus=str(corpus), clean=str(clean))
    env = {**os.environ, "TMPDIR": str(spill), "LENPROF_DEBUG": ""}
    proc = subprocess.run(
        [sys.executable, "-c", script],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
        preexec_fn=default_signals,
    )
    assert proc.returncode == {signal.SIGINT: 130, signal.SIGTERM: 143}[sig], proc.stderr
    line = proc.stderr.strip()
    assert len(line.splitlines()) == 1 and "internal error" not in line, line
    assert line.startswith(
        "lenprof: interrupted" if sig == signal.SIGINT else "lenprof: terminated by SIGTERM"
    )
    assert list(spill.iterdir()) == [] and not clean.exists()


EARLY = """
import os, signal, sys, time

class Slow:  # the signal comes while the commands are imported, as on a loaded machine
    def find_spec(self, name, path, target=None):
        if name == "lenprof.cli.scan":
            os.kill(os.getpid(), {sig})
            time.sleep(10)
        return None

sys.meta_path.insert(0, Slow())
sys.argv = ["lenprof", "scan", "examples/"]
from lenprof.__main__ import entry
entry()
"""


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM, signal.SIGHUP])
def test_a_signal_while_the_commands_load_is_a_stop_in_one_line(sig):
    """The console script takes the signals before it imports the commands (a few hundred ms,
    more on a loaded machine, where CI's random stops once came): a stop there is one line and
    the signal's exit code, never an import's traceback or a silent death."""
    proc = subprocess.run(
        [sys.executable, "-c", EARLY.format(sig=int(sig))],
        capture_output=True,
        text=True,
        cwd=REPO,
        env={**os.environ, "LENPROF_DEBUG": ""},
        timeout=60,
        preexec_fn=default_signals,
    )
    stop = "interrupted" if sig == signal.SIGINT else f"terminated by {signal.Signals(sig).name}"
    assert proc.stderr == f"lenprof: {stop}; no output of this run was changed\n"
    assert proc.returncode == 128 + sig


class Stop(BaseException):
    pass


def _stop(signum, frame):
    raise Stop


@pytest.mark.parametrize("step", ["write", "read path", "read open file"])
def test_the_spill_lets_every_signal_through(tmp_path, step):
    """The spill's own file functions, hit by a signal at random points 200 times, raise the
    handler's exception every time. numpy's tofile/fromfile, which the spill used, raised
    TypeError or SystemError for about one in twenty (the isinstance check they make runs Python
    code, and its error is taken for a yes)."""
    from lenprof.engine import spill

    dtype = np.dtype([("fp", "<u8"), ("shard", "<u4")])
    records = np.zeros(4, dtype)
    path = tmp_path / "records.bin"
    path.write_bytes(records.tobytes() * 1000)
    seen = []
    old = signal.signal(signal.SIGALRM, _stop)
    try:
        with open(path, "ab") as out, open(path, "rb") as src:
            calls = {
                "write": lambda: spill._write(out, records),
                "read path": lambda: spill._read(path, dtype, 4, 16),
                "read open file": lambda: (src.seek(0), spill._read(src, dtype, 4)),
            }
            call = calls[step]
            for _ in range(200):
                try:
                    signal.setitimer(signal.ITIMER_REAL, 0.001)
                    while True:
                        call()
                except Stop:
                    seen.append("stop")
                except BaseException as exc:  # what numpy raised in its place
                    seen.append(f"{type(exc).__name__}: {exc}")
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, old)
    assert [s for s in seen if s != "stop"] == []


def test_the_spill_reads_what_numpy_reads(tmp_path):
    """The spill's reader against numpy's: any count and offset, a torn last record refused."""
    from lenprof.engine import spill

    dtype = np.dtype([("fp", "<u8"), ("shard", "<u4")])
    records = np.zeros(37, dtype)
    records["fp"] = np.arange(37, dtype=np.uint64) * 0x9E3779B97F4A7C15
    records["shard"] = np.arange(37) // 5
    path = tmp_path / "records.bin"
    with open(path, "wb") as fh:
        spill._write(fh, records[:20])
        spill._write(fh, records[20:][::-1][::-1])  # a view: written as its records
    assert path.read_bytes() == records.tobytes()
    for count in (-1, 0, 1, 5, 36, 37, 50):
        for at in (0, 1, 17, 36, 37):
            got = spill._read(path, dtype, count, at * dtype.itemsize)
            want = np.fromfile(path, dtype, count=count, offset=at * dtype.itemsize)
            assert got.tobytes() == want.tobytes(), (count, at)
    with open(path, "rb") as fh:
        first, rest = spill._read(fh, dtype, 10), spill._read(fh, dtype)
    assert np.concatenate([first, rest]).tobytes() == records.tobytes()
    with open(path, "ab") as fh:
        fh.write(b"\0" * 3)
    with pytest.raises(OSError, match="cut inside a record"):
        spill._read(path, dtype)
