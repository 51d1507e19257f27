"""The Ray engine: the same plan and driver, with one Ray actor per CPU of the cluster.

Each actor is a ``ShardWork``: Ray runs an actor's calls in the order they were sent, which is
all the driver asks of an executor. Plain JSONL shards are byte ranges that actors read
themselves, so on a cluster the inputs must be on a filesystem every node sees; compressed and
Parquet inputs are read by the driver and their pieces travel as task arguments. Results (the
shard's counts and its cleaned rows, rejects and bucket rows as bytes) come back to the driver,
which writes every output itself: outputs need only be writable where the driver runs.

Ray Data's readers are not used: they fail a whole file on one bad line, which is what lenprof
exists to avoid. Actors hash with PYTHONHASHSEED=0, so their fingerprints agree.
"""

from __future__ import annotations

import logging
import os
import subprocess
import sys
from contextlib import contextmanager
from typing import Any

from ..inputs import InputError
from .plan import Plan, WorkerSetup
from .pool import WORKER_ENV, WorkerFailed
from .shard import ShardWork

RUNTIME_ENV = {"env_vars": dict(WORKER_ENV)}


class RayActors:
    def __init__(self, setup: WorkerSetup, workers: int):
        import ray

        actor = ray.remote(num_cpus=1)(ShardWork).options(runtime_env=RUNTIME_ENV)
        self.workers = workers
        self._actors = [actor.remote(setup) for _ in range(workers)]
        self._pending: dict[Any, str] = {}

    def submit(self, worker: int, call: str, *args: Any) -> None:
        self._pending[getattr(self._actors[worker], call).remote(*args)] = call

    def result(self) -> tuple[str, Any]:
        import ray
        from ray.exceptions import RayActorError, RayTaskError

        (ref,), _ = ray.wait(list(self._pending), num_returns=1)
        call = self._pending.pop(ref)
        try:
            return call, ray.get(ref)
        except RayTaskError as exc:
            cause = exc.cause
            if isinstance(cause, InputError):
                raise InputError(str(cause)) from None
            raise WorkerFailed(f"a Ray worker failed: {type(cause).__name__}: {cause}") from None
        except RayActorError as exc:
            raise WorkerFailed(f"a Ray worker died: {exc}") from None

    def close(self) -> None:
        import ray

        for a in self._actors:
            ray.kill(a)
        self._actors, self._pending = [], {}


class RayEngine:
    """A Ray cluster at ``address``, or a local Ray started (and stopped) for this scan."""

    name = "ray"

    def __init__(self, address: str | None = None, workers: int | None = None):
        self.address, self.asked = address, workers

    @contextmanager
    def executor(self, plan: Plan):
        try:
            import ray
        except ImportError as exc:
            raise InputError("the ray engine needs Ray: pip install 'lenprof[ray]'") from exc
        started_here = not ray.is_initialized()
        reaper = None
        if started_here:
            try:
                ray.init(
                    address=self.address,
                    include_dashboard=False,
                    log_to_driver=False,
                    logging_level=logging.ERROR,
                )
            except Exception as exc:  # ConnectionError, RuntimeError, ValueError...
                raise InputError(f"cannot start or join Ray ({exc}); check --address") from exc
            if self.address is None:
                reaper = _reap_when_gone(os.getpid(), _children(os.getpid()))
        actors = None
        try:
            self.workers = self.asked or max(1, int(ray.cluster_resources().get("CPU", 1)))
            actors = RayActors(plan.setup(), self.workers)
            yield actors
        finally:
            if actors is not None:
                actors.close()
            if started_here:
                ray.shutdown()
            if reaper is not None:
                reaper.communicate("done")

    def describe(self, plan: Plan) -> dict:
        return {"engine": self.name, "workers": getattr(self, "workers", self.asked)}


def _start_time(pid: int) -> str | None:
    try:
        with open(f"/proc/{pid}/stat", encoding="utf-8", errors="replace") as fh:
            return fh.read().rsplit(")", 1)[1].split()[19]
    except (OSError, IndexError):
        return None


def _children(pid: int) -> list[str]:
    """Every process descending from ``pid``, as ``pid:start-time`` (Linux /proc; else none)."""
    parent_of: dict[int, int] = {}
    try:
        entries = [e for e in os.listdir("/proc") if e.isdigit()]
    except OSError:
        return []
    for entry in entries:
        try:
            with open(f"/proc/{entry}/stat", encoding="utf-8", errors="replace") as fh:
                parent_of[int(entry)] = int(fh.read().rsplit(")", 1)[1].split()[1])
        except (OSError, IndexError, ValueError):
            continue
    found, frontier = [], {pid}
    while frontier:
        frontier = {p for p, parent in parent_of.items() if parent in frontier}
        found += [f"{p}:{_start_time(p)}" for p in sorted(frontier)]
    return found


# Reads until the driver's end of the pipe closes. "done" first means Ray was shut down
# normally; otherwise the driver was killed, and the processes it started (each checked to be
# the same process by its start time, never a later one with a reused id) are killed.
_REAPER = """
import os, signal, sys
if sys.stdin.read() != "done":
    for entry in sys.argv[1:]:
        pid, started = entry.split(":")
        try:
            with open(f"/proc/{pid}/stat") as fh:
                if fh.read().rsplit(")", 1)[1].split()[19] == started:
                    os.kill(int(pid), signal.SIGKILL)
        except (OSError, IndexError):
            pass
"""


def _reap_when_gone(driver: int, processes: list[str]) -> subprocess.Popen | None:
    """A tiny watcher that kills the local Ray's processes once the driver is gone, when the
    driver was killed and could not shut Ray down itself."""
    if not processes:
        return None
    return subprocess.Popen(
        [sys.executable, "-c", _REAPER, *processes],
        stdin=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )
