"""The Ray engine: the same plan and driver, with one Ray actor per CPU of the cluster.

Each actor is a ``ShardWork`` (``ShardActor``): Ray runs an actor's calls in the order they were
sent, which is all the driver asks of an executor. Plain JSONL shards are byte ranges and Parquet
shards spans of row groups that actors read themselves: from a filesystem every node sees, or
from object storage (``s3://``, ``gs://``, ``az://``), where each actor range-reads its own shards
with the driver's storage settings (``actor_env``), so their bytes never pass through the driver.
Compressed JSONL and the inputs of ``io/readers/`` are read by the driver and their pieces travel
as task arguments. Results (the shard's counts and its cleaned rows, rejects and bucket rows as
bytes) come back to the driver, which writes every output itself: outputs need only be writable
where the driver runs. Out of core (``external.py``) the actors also sort the partitions of the
corpus's fingerprints, which travel from the driver's spill as task arguments. An actor that
dies (its node lost) fails the scan with exit 2 and nothing written; its shards are not retried
elsewhere.

Ray Data's readers are not used: they fail a whole file on one bad line, which is what lenprof
exists to avoid. Actors fingerprint with the run's key, which travels in ``WorkerSetup``.
"""

from __future__ import annotations

import logging
import os
import subprocess
import sys
from collections.abc import Callable
from contextlib import contextmanager
from typing import Any

from lenprof.engine import reaper
from lenprof.engine.local import capped
from lenprof.engine.plan import Plan, WorkerSetup
from lenprof.engine.pool import WORKER_ENV, WorkerFailed
from lenprof.engine.worker import ShardWork
from lenprof.errors import InputError
from lenprof.io import storage

RUNTIME_ENV = {"env_vars": dict(WORKER_ENV)}


class ShardActor(ShardWork):
    """A ``ShardWork`` that first takes the driver's storage settings (:func:`actor_env`): a Ray
    worker's environment is its node's, not the driver's, which a pool's workers inherit."""

    def __init__(self, setup: WorkerSetup, env: dict[str, str]):
        os.environ.update(env)  # before its first storage call reads them
        super().__init__(setup)

    def node(self) -> str:
        """The address of the node this actor runs on (for the line that says where it died)."""
        import ray

        return ray.util.get_node_ip_address()


class RayActors:
    def __init__(self, setup: WorkerSetup, workers: int, env: dict[str, str] | None = None):
        import ray

        # A pool worker's settings (WORKER_ENV) must be there as the process starts: set in
        # __init__, ARROW_DEFAULT_MEMORY_POOL comes too late (Ray's worker has its pyarrow pool
        # by then). So a runtime_env, which Ray shows: they hold no secret, unlike ``env``.
        gpus = ray.cluster_resources().get("GPU", 0) if setup.score is not None else 0
        actor = ray.remote(runtime_env=RUNTIME_ENV, **actor_resources(setup, workers, gpus))(ShardActor)
        self.workers = workers
        self._actors = [actor.remote(setup, env or {}) for _ in range(workers)]
        # each actor's node, asked first: its answer stays with this driver, so an actor whose
        # node is gone is still placed (Ray's message may not say where: "unavailable")
        self._nodes = [a.node.remote() for a in self._actors]
        self._pending: dict[Any, tuple[str, int]] = {}

    def submit(self, worker: int, call: str, *args: Any) -> None:
        self._pending[getattr(self._actors[worker], call).remote(*args)] = (call, worker)

    def result(self) -> tuple[str, Any]:
        import ray
        from ray.exceptions import RayActorError, RayTaskError

        (ref,), _ = ray.wait(list(self._pending), num_returns=1)
        call, worker = self._pending.pop(ref)
        try:
            return call, ray.get(ref)
        except RayTaskError as exc:
            cause = exc.cause
            if isinstance(cause, InputError):
                raise InputError(str(cause)) from None
            raise WorkerFailed(f"a Ray worker failed: {type(cause).__name__}: {cause}") from None
        except RayActorError as exc:
            where = self._node(worker, exc)
            raise WorkerFailed(f"a Ray worker died{_death(str(exc), where)}\n{exc}") from None

    def _node(self, worker: int, exc: Exception) -> str | None:
        """The node the dead ``worker`` ran on: as it said when it started, else as Ray's state
        API says (an actor that died before it answered); None where Ray's message says it."""
        if "\tip: " in str(exc):
            return None
        import ray

        try:
            return ray.get(self._nodes[worker], timeout=1)
        except Exception:  # it died before it answered
            return _node_of(exc)

    def close(self) -> None:
        import ray

        for a in self._actors:
            ray.kill(a)
        self._actors, self._nodes, self._pending = [], [], {}


def _death(text: str, ip: str | None = None) -> str:
    """Where and why an actor died, from Ray's message, for the one line a user sees: Ray's own
    first line is the same for every death, the cause is on a later one. ``ip``: the actor's
    node, for a message that does not say it (an actor whose connection was cut: "unavailable").

    >>> _death("The actor died unexpectedly before finishing this task.\\n\\tip: 10.0.0.7\\n"
    ...        "The actor died because its node has died. Node Id: 1f\\n\\tthe node was terminated")
    ' on 10.0.0.7: The actor died because its node has died. Node Id: 1f'
    >>> _death("The actor 9d is unavailable: RpcError: Connection reset by peer.", "10.0.0.8")
    ' on 10.0.0.8: The actor 9d is unavailable: RpcError: Connection reset by peer.'
    """
    lines = text.splitlines() or [""]
    fields = dict(line.strip().split(": ", 1) for line in lines[1:] if line[:1] == "\t" and ": " in line)
    causes = [line for line in lines[1:] if line.strip() and line[:1] != "\t"]
    where = fields.get("ip") or ip
    return (f" on {where}" if where else "") + f": {causes[0] if causes else lines[0]}"


def _node_of(exc) -> str | None:
    """The address of the node a failed actor ran on, asked of Ray's state API (a few seconds
    at most); None where Ray cannot tell."""
    if not getattr(exc, "actor_id", None):
        return None
    try:
        import ray
        from ray.util.state import get_actor

        node = get_actor(exc.actor_id, timeout=5).node_id
        return next((n["NodeManagerAddress"] for n in ray.nodes() if n["NodeID"] == node), None)
    except Exception:  # the state API unreachable, or the actor already forgotten
        return None


class RayEngine:
    """A Ray cluster at ``address``, or a local Ray started (and stopped) for this scan."""

    name = "ray"

    def __init__(self, address: str | None = None, workers: int | None = None):
        self.address, self.asked = address, workers

    def fit(self, plan: Plan) -> Plan:
        """``plan`` as it is: the actors are counted only once Ray has started."""
        return plan

    @contextmanager
    def executor(self, plan: Plan):
        try:
            import ray
        except ImportError as exc:
            raise InputError("the ray engine needs Ray: pip install 'lenprof[ray]'") from exc
        started_here = not ray.is_initialized()
        address = ray_address(self.address, os.environ)
        # Watch before starting Ray: a scan killed while Ray starts must not leave it running.
        watcher = _reap_when_gone(os.getpid()) if started_here and address == "local" else None
        actors, restore = None, _keep_ray_errors_off_stdout() if started_here else None
        try:
            if started_here:
                try:
                    ray.init(
                        address=address,
                        include_dashboard=False,
                        log_to_driver=False,
                        logging_level=logging.ERROR,
                    )
                except Exception as exc:  # ConnectionError, RuntimeError, ValueError...
                    raise InputError(f"cannot start or join Ray ({exc}); check --address") from exc
            cpus = max(1, int(ray.cluster_resources().get("CPU", 1)))
            self.workers = capped(self.asked or cpus, plan.shards_at_most(), cpus)
            actors = RayActors(plan.setup(), self.workers, actor_env(plan))
            yield actors
        finally:
            if actors is not None:
                actors.close()
            if started_here and ray.is_initialized():
                ray.shutdown()
            if restore is not None:
                restore()
            if watcher is not None:  # it looks for stray agents a moment longer, on its own
                watcher.stdin.write("done")  # type: ignore[union-attr]
                watcher.stdin.close()  # type: ignore[union-attr]

    def describe(self, plan: Plan) -> dict:
        return {"engine": self.name, "workers": getattr(self, "workers", self.asked)}


def actor_resources(setup: WorkerSetup, workers: int, gpus: float) -> dict:
    """What each actor asks Ray for: a CPU, and with ``scan --model`` on a cluster with GPUs (and
    a device that is not ``cpu``) its share of them, so the model runs on a GPU of its own or
    shares one with as few actors as can be.

    >>> from lenprof.score.options import ScoreOptions
    >>> s = WorkerSetup(None, (), "", False, False, None, False, (), "input", False, None, score=ScoreOptions("m"))
    >>> actor_resources(s, 4, 2.0), actor_resources(s, 4, 0), actor_resources(s, 1, 8.0)
    ({'num_cpus': 1, 'num_gpus': 0.5}, {'num_cpus': 1}, {'num_cpus': 1, 'num_gpus': 1})
    """
    if setup.score is None or setup.score.device == "cpu" or not gpus:
        return {"num_cpus": 1}
    share = min(1.0, gpus / workers)
    return {"num_cpus": 1, "num_gpus": 1 if share == 1.0 else share}


def ray_address(given: str | None, env) -> str:
    """The cluster to join: ``--address``, else Ray's own ``RAY_ADDRESS``, else ``"local"``: a
    Ray of this scan's own, started and stopped with it. Never ``ray.init()``'s default, which
    joins whatever cluster someone started on this machine with ``ray start``.

    >>> ray_address(None, {}), ray_address(None, {"RAY_ADDRESS": "h:6379"}), ray_address("ray://x:1", {})
    ('local', 'h:6379', 'ray://x:1')
    """
    return given or env.get("RAY_ADDRESS") or "local"


def actor_env(plan: Plan) -> dict[str, str]:
    """What an actor sets in its environment: when an input is in object storage, the driver's
    storage settings (``storage.SETTINGS``: endpoint, credentials, bounds). They travel as an
    argument, not in a ``runtime_env``, which Ray's dashboard and ``ray list actors --detail``
    show."""
    return storage.settings() if any(storage.is_url(item.path) for item in plan.inputs) else {}


def _keep_ray_errors_off_stdout() -> Callable[[], None] | None:
    """Ray's driver prints the cluster's error messages (a node that died, with the last 20 lines
    of its raylet's log) to stdout from a thread of its own, ``log_to_driver=False`` or not; but
    stdout is the scan's data (``--format json``, ``args``), and the scan says in one line what
    failed. They go to stderr with ``LENPROF_DEBUG=1``, else nowhere, until the returned function
    puts Ray's printer back. That thread looks the printer up in a private module: a Ray without
    it is left as it is."""
    try:
        import ray._private.worker as driver
    except ImportError:
        return None
    printer = getattr(driver, "print_to_stdstream", None)
    if printer is None:
        return None

    def to_stderr(data: dict, ignore_prefix: bool) -> None:
        if os.environ.get("LENPROF_DEBUG"):
            printer({**data, "is_err": True}, ignore_prefix)

    driver.print_to_stdstream = to_stderr
    return lambda: setattr(driver, "print_to_stdstream", printer)


def _reap_when_gone(scan: int) -> subprocess.Popen:
    """A watcher (``reaper.py``) that stops the local Ray if this scan is killed."""
    return subprocess.Popen(
        [sys.executable, reaper.__file__, str(scan)],  # a script: no package import, a fast start
        stdin=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )
