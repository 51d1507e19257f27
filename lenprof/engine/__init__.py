"""Where a scan runs. Every engine runs the same plan (``plan.py``) through the same driver
(``driver.py``), with the same per-shard work (``worker.py``); an engine only says where the
workers are: this machine (``local.py``, processes from ``pool.py``) or a Ray cluster (``ray.py``).
"""

from __future__ import annotations

ENGINES = ("local", "ray")


def get_engine(name: str, workers: int | None = None, address: str | None = None):
    """An engine by name: ``local`` (``workers`` processes) or ``ray`` (the cluster at ``address``)."""
    if name == "local":
        from lenprof.engine.local import LocalEngine

        return LocalEngine(workers)
    if name == "ray":
        from lenprof.engine.ray import RayEngine

        return RayEngine(address, workers)
    raise ValueError(f"unknown engine {name!r}; choose one of {', '.join(ENGINES)}")
