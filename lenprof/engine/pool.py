"""Worker processes on this machine, each running ``ShardWork`` behind a socket.

Workers are plain processes, not multiprocessing children:
- they never re-import the caller's ``__main__`` (a script without an
  ``if __name__ == "__main__"`` guard would otherwise run again in every worker);
- they share no lock with the parent, so stopping them can never hang;
- they run in a session of their own, so Ctrl-C reaches only the parent, which stops them;
- they exit as soon as the parent's end of their socket closes, even if the parent was killed.

On Linux, when the parent runs no other Python thread (so no lock can be held at the fork), a
worker is the parent forked, with its ``ShardWork`` made once before the fork: it starts with
lenprof imported and the tokenizer loaded, where a fresh interpreter spends about 0.3 s of CPU
importing numpy and lenprof and loading the tokenizer again (as much as checking 20,000 rows).
It keeps only its own socket, runs only the worker's loop and ends with ``os._exit``, never
running the parent's cleanups. Elsewhere, or with Arrow or torch loaded in the parent (see
``forks``), each worker is a fresh ``python -c ...serve(fd)``.

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
from collections.abc import Iterator
from contextlib import contextmanager
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


# A fresh worker imports the driver's lenprof, not one in the folder it was started from (``-c``
# puts the current folder first on sys.path): the folder that holds the driver's package first.
_START = (
    "import sys; sys.path[0] = sys.argv[2]; from lenprof.engine.pool import serve; serve(int(sys.argv[1]))"
)
_HOME = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))  # holds lenprof/


class WorkerFailed(RuntimeError):
    """A worker process stopped or raised something unexpected (a bug, or the OS killed it)."""


class ProcessPool:
    def __init__(self, setup: WorkerSetup, workers: int, loaded: list[Any] | None = None):
        """``workers`` processes serving ``setup``; ``loaded``: its tokenizers, loaded in this
        process (a forked worker starts with them)."""
        self.workers = workers
        self._procs: list[subprocess.Popen | Forked] = []
        self._conns: list[Connection] = []
        self._ready: deque[tuple[str, Any]] = deque()
        env = {**os.environ, **WORKER_ENV}
        work = _work_to_fork(setup, loaded or [])
        if work is None and loaded and not setup.tokenizer_json:
            setup = setup.shipping(loaded)  # fresh workers load the tokenizers from their JSON
        try:
            for _ in range(workers):
                parent, child = socket.socketpair()
                if work is not None:
                    proc: subprocess.Popen | Forked = _fork(work, child)
                else:
                    proc = subprocess.Popen(
                        [sys.executable, "-c", _START, str(child.fileno()), _HOME],
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
            for conn in self._conns if work is None else ():
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


def serve(fd: int, work: Any = None) -> None:
    """A worker's life: take the setup (unless forked with its ``work`` made), then answer calls
    in order until the socket closes."""
    from lenprof.engine.worker import ShardWork

    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the parent decides when to stop
    conn = Connection(fd)
    if work is None:
        try:
            work = ShardWork(conn.recv())
        except (EOFError, OSError):
            return
    work.lean()  # a forked worker's copy of the parent's tokenizers, never the parent's own
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


# Forking: see the module's docstring; only on Linux (elsewhere a fork may not be safe at all).
FORK = sys.platform == "linux"


def forks() -> bool:
    """Whether workers are forked now: on Linux, with no other Python thread in this process
    (whose locks a fork would copy held), no Arrow loaded (whose allocator, chosen here, forked
    workers would keep: see ``WORKER_ENV``) and no torch (the trainer's: its thread pools and a
    GPU context are nothing a fork should copy)."""
    return FORK and threading.active_count() == 1 and not {"pyarrow", "torch"} & sys.modules.keys()


def _work_to_fork(setup: WorkerSetup, loaded: list[Any]) -> Any:
    """The ``ShardWork`` every forked worker starts with, or None where workers start afresh."""
    if not forks():
        return None
    from lenprof.engine.worker import ShardWork

    with _worker_env():  # the tokenizer as a worker loads it: no thread pool of its own
        return ShardWork(setup, loaded)


@contextmanager
def _worker_env() -> Iterator[None]:
    """``WORKER_ENV`` in this process's environment for a moment (a forked worker keeps it)."""
    saved = {name: os.environ.get(name) for name in WORKER_ENV}
    os.environ.update(WORKER_ENV)
    try:
        yield
    finally:
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


def _fork(work: Any, child: socket.socket) -> Forked:
    """A worker forked from this process, serving ``work`` on ``child``'s end of its socket."""
    for stream in (sys.stdout, sys.stderr):  # nothing buffered is written twice
        if stream is not None:
            stream.flush()
    # Signals wait until the child has the default handlers back: the parent's handlers, run
    # in the child, would raise the parent's stop in code that only prints it (a traceback).
    blocked = signal.pthread_sigmask(signal.SIG_BLOCK, signal.valid_signals())
    pid = -1
    try:
        with _worker_env():  # tokenizers, forked, warns unless TOKENIZERS_PARALLELISM is set
            pid = os.fork()
    finally:
        if pid != 0:  # the child unblocks once its handlers are its own
            signal.pthread_sigmask(signal.SIG_SETMASK, blocked)
    if pid:
        return Forked(pid)
    code = 1
    try:
        _own_handlers()
        signal.pthread_sigmask(signal.SIG_SETMASK, blocked)  # a stop sent meanwhile ends it now
        gc.freeze()  # the parent's objects are never collected here: no finaliser closes a descriptor
        os.environ.update(WORKER_ENV)
        fd = child.detach()
        os.setsid()
        # the parent's files and the other workers' sockets (closerange passes over closed ones)
        os.closerange(3, fd)
        os.closerange(fd + 1, max(int(n) for n in os.listdir("/proc/self/fd")) + 1)
        null = os.open(os.devnull, os.O_RDONLY)
        os.dup2(null, 0)
        os.close(null)
        serve(fd, work)
        code = 0
    except BaseException:
        traceback.print_exc()
    finally:
        os._exit(code)


def _own_handlers() -> None:
    """A forked worker's signals as a fresh worker's: every handler the parent set in Python
    back to the default (SIGINT ignored: the parent decides when to stop)."""
    for signum in signal.valid_signals():
        try:
            if callable(signal.getsignal(signum)):
                signal.signal(signum, signal.SIG_IGN if signum == signal.SIGINT else signal.SIG_DFL)
        except (OSError, ValueError):  # SIGKILL, SIGSTOP and the real-time ones Python does not hold
            pass


class Forked:
    """A forked worker, with what the pool asks of a ``subprocess.Popen``."""

    def __init__(self, pid: int):
        self.pid = pid
        self.returncode: int | None = None

    def poll(self) -> int | None:
        if self.returncode is None:
            try:
                pid, status = os.waitpid(self.pid, os.WNOHANG)
            except ChildProcessError:  # reaped already
                pid, status = self.pid, 0
            if pid:
                self.returncode = os.waitstatus_to_exitcode(status)
        return self.returncode

    def wait(self, timeout: float | None = None) -> int:
        deadline = None if timeout is None else time.monotonic() + timeout
        while self.poll() is None:
            if deadline is not None and time.monotonic() > deadline:
                raise subprocess.TimeoutExpired(f"worker {self.pid}", timeout or 0.0)
            time.sleep(0.005)
        return self.returncode  # type: ignore[return-value]

    def send_signal(self, signum: int) -> None:
        if self.poll() is None:
            try:
                os.kill(self.pid, signum)
            except ProcessLookupError:
                pass

    def terminate(self) -> None:
        self.send_signal(signal.SIGTERM)

    def kill(self) -> None:
        self.send_signal(signal.SIGKILL)
