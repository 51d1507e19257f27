"""Weights a run can go back to: the last healthy ones, or the best on held-out rows.

Only the weights are kept, not the optimizer's moments: a restore starts the optimizer afresh
(new moments, warmed up again; see guard.py), which is what a collapse calls for anyway, and it
keeps a snapshot at the size of the model instead of three times that (AdamW's two moments).
``memory`` keeps a CPU copy, written in place over the previous one, so taking a new snapshot
never holds two. ``disk`` writes it to one file in the output folder instead (``healthy.pt``,
replaced atomically) and reads it back on a restore. The starting weights cost nothing when
they are the model's own files (nothing in the model was newly made): a restore reads them
back from there (:meth:`Snapshot.keep_files`).
"""

from __future__ import annotations

import os
from collections.abc import Callable
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
        self.base = False  # these are the weights the run started from
        self._weights: dict[str, torch.Tensor] | None = None
        self._files: Callable[[], dict[str, torch.Tensor]] | None = None

    def __bool__(self) -> bool:
        return self.step is not None

    def take(self, step: int, model: torch.nn.Module, base: bool = False) -> None:
        state = model.state_dict()
        if self.where == "disk":
            assert self.path is not None
            tmp = self.path.with_name(self.path.name + ".tmp")
            torch.save({k: v.detach().to("cpu") for k, v in state.items()}, tmp)
            os.replace(tmp, self.path)
        elif self._weights is not None and _same_shapes(self._weights, state):
            for k, v in state.items():  # in place: the previous copy is the buffer
                self._weights[k].copy_(v.detach())
        else:
            self._weights = {k: v.detach().to("cpu", copy=True) for k, v in state.items()}
        self.step, self.base, self._files = step, base, None

    def keep_files(self, step: int, load: Callable[[], dict[str, torch.Tensor]]) -> None:
        """The starting weights, read back by ``load`` (the model's own files, in the model's
        state-dict keys) when needed instead of copied now."""
        self.step, self.base, self._files, self._weights = step, True, load, None
        if self.path is not None and self.path.exists():
            self.path.unlink()

    def restore(self, model: torch.nn.Module) -> int:
        """Load the kept weights into ``model``; returns the step they came from."""
        if self.step is None:
            raise RuntimeError("no snapshot was taken")
        if self._files is not None:
            weights = self._files()
        elif self.where == "memory":
            assert self._weights is not None
            weights = self._weights
        else:
            weights = torch.load(self.path, map_location="cpu", weights_only=True)
        model.load_state_dict(weights)
        return self.step

    def discard(self) -> None:
        """Remove the disk copy once the run is over (it is not a deliverable)."""
        if self.path is not None and self.path.exists():
            self.path.unlink()


def _same_shapes(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor]) -> bool:
    return a.keys() == b.keys() and all(a[k].shape == b[k].shape and a[k].dtype == b[k].dtype for k in a)
