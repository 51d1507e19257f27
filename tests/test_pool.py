"""Forked workers (``engine/pool.py``): the same results as workers started afresh, only their own
socket kept, a session of their own, gone with the scan, and no word from tokenizers."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time

import pytest
from conftest import EXAMPLES, REPO

from lenprof import scan
from lenprof.engine import pool
from lenprof.engine.plan import WorkerSetup, make_plan
from lenprof.engine.worker import ShardWork


@pytest.fixture
def mixed(tmp_path):
    """Every kind of bad row among plain ones, in shards of a few rows."""
    path = tmp_path / "mixed.jsonl"
    path.write_bytes((EXAMPLES / "msmarco.jsonl").read_bytes() + (EXAMPLES / "dirty.jsonl").read_bytes())
    return path


def _profile(path) -> dict:
    d = scan([str(path)], workers=2, shard_bytes=8192).to_dict()
    d["run"] = {k: v for k, v in d["run"].items() if k not in ("seconds", "tokenize_s", "counting")}
    return d


@pytest.fixture
def forking(monkeypatch):
    """Workers forked, whatever this test session has loaded (Arrow, by other test files)."""
    monkeypatch.setattr(pool, "forks", lambda: True)


def test_forked_and_fresh_workers_give_the_same_results(monkeypatch, mixed, forking):
    forked = []
    real = pool._fork
    monkeypatch.setattr(pool, "_fork", lambda *a: forked.append(1) or real(*a))
    first = _profile(mixed)
    assert len(forked) == 2, "the workers were not forked"
    monkeypatch.setattr(pool, "forks", lambda: False)
    assert _profile(mixed) == first
    assert len(forked) == 2


def test_the_tokenizers_json_is_made_only_for_workers_that_load_it(monkeypatch, mixed, forking):
    """A forked worker starts with the tokenizer loaded: its JSON (``to_str``, 10-35 ms for a real
    vocabulary) is made only for workers started afresh, and they count the same with it."""
    shipped = []
    real = WorkerSetup.shipping
    monkeypatch.setattr(WorkerSetup, "shipping", lambda self, b: shipped.append(len(b)) or real(self, b))
    first = _profile(mixed)
    assert shipped == []
    monkeypatch.setattr(pool, "forks", lambda: False)
    assert _profile(mixed) == first
    assert shipped == [1]
    with pytest.raises(ValueError, match="needs them loaded"):
        ShardWork(make_plan([str(mixed)]).setup(shipped=False))


def test_a_forked_worker_keeps_its_socket_alone_in_a_session_of_its_own(tmp_path, forking):
    held = open(tmp_path / "held", "w")  # a file of the parent's: never a worker's
    plan = make_plan([str(EXAMPLES / "dirty.jsonl")])
    workers = pool.ProcessPool(plan.setup(), 2)
    try:
        for proc in workers._procs:
            assert isinstance(proc, pool.Forked)
            deadline = time.monotonic() + 5
            while len(fds := os.listdir(f"/proc/{proc.pid}/fd")) > 4 and time.monotonic() < deadline:
                time.sleep(0.01)  # closing the parent's descriptors
            assert len(fds) == 4, fds  # stdin (null), stdout, stderr, its socket
            assert os.getsid(proc.pid) == proc.pid
    finally:
        workers.close()
        held.close()
    assert all(proc.returncode is not None for proc in workers._procs) or not workers._procs


SCRIPT = """
import os, sys, time
from tokenizers import Tokenizer
from lenprof.count.tokenizer import packaged_model_path
from lenprof.engine.pool import ProcessPool
from lenprof.engine.plan import make_plan
tok = Tokenizer.from_file(os.path.join(packaged_model_path(), "tokenizer.json"))
tok.encode_batch(["a few words"] * 2000)  # tokenizers' thread pool used before the fork
workers = ProcessPool(make_plan([sys.argv[1]]).setup(), 2)
print(" ".join(str(p.pid) for p in workers._procs), flush=True)
time.sleep(60)
"""


def test_forked_workers_end_with_a_killed_parent_and_tokenizers_says_nothing():
    env = {**os.environ, "PYTHONPATH": str(REPO), "TOKENIZERS_PARALLELISM": ""}
    env.pop("TOKENIZERS_PARALLELISM")
    parent = subprocess.Popen(
        [sys.executable, "-c", textwrap.dedent(SCRIPT), str(EXAMPLES / "dirty.jsonl")],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )
    pids = [int(p) for p in parent.stdout.readline().split()]  # type: ignore[union-attr]
    assert len(pids) == 2, parent.stderr.read()  # type: ignore[union-attr]
    parent.send_signal(signal.SIGKILL)
    _, stderr = parent.communicate(timeout=30)
    assert "tokenizers" not in stderr, stderr
    deadline = time.monotonic() + 5
    while any(os.path.exists(f"/proc/{p}") for p in pids) and time.monotonic() < deadline:
        time.sleep(0.05)
    alive = [p for p in pids if os.path.exists(f"/proc/{p}") and "Z" not in _state(p)]
    assert alive == [], "a forked worker outlived its parent"


RACE = """
import os, signal, socket, sys
from lenprof.engine import pool

def stop(signum, frame):
    raise SystemExit("the parent's handler ran in the worker")

signal.signal(signal.SIGTERM, stop)
reset = pool._own_handlers

def first_a_stop():  # the parent's SIGTERM reaches the worker before it has its own handlers
    os.kill(os.getpid(), signal.SIGTERM)
    reset()

pool._own_handlers = first_a_stop
parent, child = socket.socketpair()
worker = pool._fork(None, child)
print(worker.wait(timeout=20), signal.getsignal(signal.SIGTERM) is stop, flush=True)
"""


def test_a_stop_sent_to_a_worker_as_it_forks_ends_it_without_the_parents_handler():
    # CI caught it once: a SIGALRM'd scan SIGTERMed a worker just forked, whose inherited
    # handler raised the parent's stop there and printed its traceback to the user's terminal.
    done = subprocess.run(
        [sys.executable, "-c", RACE],
        capture_output=True,
        text=True,
        env={**os.environ, "PYTHONPATH": str(REPO)},
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == [str(-signal.SIGTERM), "True"]  # killed as a fresh worker is
    assert "Traceback" not in done.stderr and "handler" not in done.stderr, done.stderr


def _state(pid: int) -> str:
    try:
        with open(f"/proc/{pid}/stat") as fh:
            return fh.read().rsplit(")", 1)[1].split()[0]
    except OSError:
        return "Z"


@pytest.mark.parametrize("fork", [True, False])
def test_a_worker_that_dies_fails_the_scan_in_one_line(tmp_path, monkeypatch, fork):
    monkeypatch.setattr(pool, "forks", lambda: fork)
    plan = make_plan([str(EXAMPLES / "dirty.jsonl")])
    workers = pool.ProcessPool(plan.setup(), 1)
    try:
        os.kill(workers._procs[0].pid, signal.SIGKILL)
        with pytest.raises(pool.WorkerFailed, match="killed by signal 9"):
            workers.submit(0, "check", 0, next(iter(plan.shards())))
            workers.result()
    finally:
        workers.close()


def test_a_fresh_worker_imports_the_drivers_lenprof_whatever_folder_it_starts_in(
    tmp_path, monkeypatch, mixed
):
    """``python -c`` puts the current folder first on sys.path: started from a folder that holds
    another ``lenprof`` (a checkout of another version), a worker imported that one."""
    impostor = tmp_path / "elsewhere" / "lenprof"
    (impostor / "engine").mkdir(parents=True)
    (impostor / "__init__.py").write_text("raise SystemExit('the wrong lenprof')\n")
    (impostor / "engine" / "__init__.py").write_text("")
    monkeypatch.setattr(pool, "forks", lambda: False)
    want = _profile(mixed)
    monkeypatch.chdir(impostor.parent)
    assert _profile(mixed) == want
