"""The last healthy weights and optimizer state, kept so that a collapse can be undone.

``memory`` keeps a CPU copy: for a 110M-parameter model with AdamW that is the weights plus two
moments, about 1.3 GB of host memory, next to the live copy. ``disk`` writes the same state
to one file in the output folder instead (``healthy.pt``, replaced atomically), so host memory
holds the model once; a restore reads it back. Taking a snapshot every ``collapse_steps`` steps
costs one write of that size.
"""

from __future__ import annotations

import copy
import os
from pathlib import Path

import torch


class Snapshot:
    def __init__(self, where: str = "memory", folder: str | Path | None = None, rank: int = 0):
        if where not in ("memory", "disk"):
            raise ValueError(f"snapshot must be memory or disk, got {where!r}")
        if where == "disk" and folder is None:
            raise ValueError("a disk snapshot needs a folder")
        self.where = where
        name = "healthy.pt" if rank == 0 else f"healthy-rank{rank}.pt"  # one file per process
        self.path = Path(folder) / name if folder is not None else None
        self.step: int | None = None  # the step whose loss these weights produced
        self._state: tuple[dict, dict | None] | None = None

    def __bool__(self) -> bool:
        return self.step is not None

    def take(self, step: int, model: torch.nn.Module, optimizer=None) -> None:
        weights = {k: v.detach().to("cpu", copy=True) for k, v in model.state_dict().items()}
        opt = copy.deepcopy(optimizer.state_dict()) if optimizer is not None else None
        if self.where == "memory":
            self._state = (weights, opt)
        else:
            assert self.path is not None
            tmp = self.path.with_name(self.path.name + ".tmp")
            torch.save({"step": step, "weights": weights, "optimizer": opt}, tmp)
            os.replace(tmp, self.path)
            del weights, opt
        self.step = step

    def restore(self, model: torch.nn.Module, optimizer=None) -> int:
        """Load the kept state into ``model`` (and ``optimizer``); returns the step it came from."""
        if self.step is None:
            raise RuntimeError("no healthy snapshot was taken")
        if self.where == "memory":
            assert self._state is not None
            weights, opt = self._state
        else:
            saved = torch.load(self.path, map_location="cpu", weights_only=True)
            weights, opt = saved["weights"], saved["optimizer"]
        model.load_state_dict(weights)
        if optimizer is not None and opt is not None:
            optimizer.load_state_dict(opt)
        return self.step

    def discard(self) -> None:
        """Remove the disk copy once the run is over (it is not a deliverable)."""
        if self.path is not None and self.path.exists():
            self.path.unlink()
