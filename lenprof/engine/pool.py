"""Worker processes on this machine, each running ``ShardWork`` behind a socket.

Workers are plain ``python -c ...serve(fd)`` processes, not multiprocessing children:
- they never re-import the caller's ``__main__`` (a script without an
  ``if __name__ == "__main__"`` guard would otherwise run again in every worker);
- they share no lock with the parent, so stopping them can never hang;
- they run in a session of their own, so Ctrl-C reaches only the parent, which stops them;
- they exit as soon as the parent's end of their socket closes, even if the parent was killed.

Their fingerprints agree because the run's key travels with the work (``WorkerSetup.key``), not
because of anything in their environment.

Each worker reads its socket on a thread of its own, so a parent sending a large shard and a
worker sending a large result never wait on each other.
"""

from __future__ import annotations

import gc
import os
import queue
import signal
import socket
import subprocess
import sys
import threading
import time
import traceback
from collections import deque
from multiprocessing.connection import Connection, wait
from typing import Any

from lenprof.engine.plan import WorkerSetup
from lenprof.errors import InputError

WORKER_ENV = {
    "RAYON_NUM_THREADS": "1",  # the processes are the parallelism
    "TOKENIZERS_PARALLELISM": "false",
    "OMP_NUM_THREADS": "1",
    # Workers decode Parquet themselves: Arrow's default allocator (mimalloc) keeps what a batch
    # freed, ~50 MB more per worker on the mined corpus than the C allocator, for no speed.
    "ARROW_DEFAULT_MEMORY_POOL": "system",
}


_START = "import sys; from lenprof.engine.pool import serve; serve(int(sys.argv[1]))"


class WorkerFailed(RuntimeError):
    """A worker process stopped or raised something unexpected (a bug, or the OS killed it)."""


class ProcessPool:
    def __init__(self, setup: WorkerSetup, workers: int):
        self.workers = workers
        self._procs: list[subprocess.Popen] = []
        self._conns: list[Connection] = []
        self._ready: deque[tuple[str, Any]] = deque()
        env = {**os.environ, **WORKER_ENV}
        try:
            for _ in range(workers):
                parent, child = socket.socketpair()
                proc = subprocess.Popen(
                    [sys.executable, "-c", _START, str(child.fileno())],
                    pass_fds=(child.fileno(),),
                    env=env,
                    stdin=subprocess.DEVNULL,
                    start_new_session=True,
                )
                child.close()
                self._procs.append(proc)
                self._conns.append(Connection(parent.detach()))
            # Only then the setup (the tokenizer's JSON: more than a socket buffer holds): sending
            # it waits for the worker to read it, so every worker starts up at once.
            for conn in self._conns:
                conn.send(setup)
        except BaseException:
            self.close()
            raise

    def submit(self, worker: int, call: str, *args: Any) -> None:
        try:
            self._conns[worker].send((call, args))
        except OSError as exc:
            raise self._died(worker) from exc

    def result(self) -> tuple[str, Any]:
        while not self._ready:
            for conn in wait(self._conns):
                i = self._conns.index(conn)  # type: ignore[arg-type]
                try:
                    status, payload = conn.recv()  # type: ignore[union-attr]
                except (EOFError, OSError) as exc:
                    raise self._died(i) from exc
                if status == "ok":
                    self._ready.append(payload)
                elif status == "input":
                    raise InputError(payload)
                else:
                    raise WorkerFailed(f"worker {i + 1} failed:\n{payload}")
        return self._ready.popleft()

    def _died(self, i: int) -> WorkerFailed:
        proc = self._procs[i]
        try:
            code = proc.wait(timeout=1)
        except subprocess.TimeoutExpired:
            code = None
        how = f"killed by signal {-code}" if code is not None and code < 0 else f"exit code {code}"
        return WorkerFailed(f"worker process {i + 1} stopped ({how}); was it out of memory?")

    def close(self) -> None:
        """Stop every worker, at once and for sure (within about a second)."""
        for conn in self._conns:
            try:
                conn.close()
            except OSError:
                pass
        for proc in self._procs:
            if proc.poll() is None:
                proc.terminate()
        deadline = time.monotonic() + 1.0
        for proc in self._procs:
            try:
                proc.wait(timeout=max(0.0, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        self._procs, self._conns = [], []


def serve(fd: int) -> None:
    """A worker's life: take the setup, then answer calls in order until the socket closes."""
    from lenprof.engine.worker import ShardWork

    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the parent decides when to stop
    conn = Connection(fd)
    try:
        work = ShardWork(conn.recv())
    except (EOFError, OSError):
        return
    # Rows are acyclic: fewer collections of the young generation, none of the start-up objects.
    gc.freeze()
    gc.set_threshold(50_000, 50, 100)
    inbox: queue.Queue = queue.Queue()

    def read() -> None:
        while True:
            try:
                inbox.put(conn.recv())
            except (EOFError, OSError):
                # The parent is gone or done: the calls still queued have no one to answer to, and
                # a worker holds nothing to save (the parent writes every output), so stop now
                # rather than after the queue (a killed scan's workers would outlive it by seconds).
                os._exit(0)

    threading.Thread(target=read, daemon=True).start()
    while (message := inbox.get()) is not None:
        call, args = message
        try:
            out: tuple[str, Any] = ("ok", (call, getattr(work, call)(*args)))
        except InputError as exc:
            out = ("input", str(exc))
        except Exception:
            out = ("error", traceback.format_exc())
        try:
            conn.send(out)
        except OSError:
            return
