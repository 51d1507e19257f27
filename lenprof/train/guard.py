"""The watchdog's policy around a training loop, shared by ``lenprof train`` and the Trainer
callback (``lenprof.integrations``): one metrics line a step, healthy snapshots, and what to do
on a collapse.

Per step the loop calls, in order: :meth:`Guard.observe` (the full-precision loss, the gradient
norm before clipping, the learning rate the step used, the embeddings' spread), then
:meth:`Guard.snapshot_due` (before the optimizer changes the weights that just produced a healthy
loss), then :meth:`Guard.react` after the optimizer step. A collapse restores the snapshot and
halves the learning rate, up to ``max_recoveries`` times; a stop restores the snapshot too, so
what a stopped run saves is the last healthy weights (or nothing, when none were kept).
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Callable
from pathlib import Path

from lenprof.train.health import Event, Step, Watchdog, advice
from lenprof.train.snapshot import Snapshot


class MetricsLog:
    """``metrics.jsonl``: one JSON line a step. On resume from step ``n`` the lines after ``n``
    (steps that will be replayed) are dropped first, so every step appears once."""

    def __init__(self, path: str | Path, resume_step: int | None = None, write: bool = True):
        self.path, self.kept, self._fh = Path(path), [], None
        if resume_step is not None and self.path.exists():
            rows = [json.loads(x) for x in self.path.read_text(encoding="utf-8").splitlines() if x.strip()]
            self.kept = [r for r in rows if r.get("step", 0) <= resume_step]
            if write:
                tmp = self.path.with_name(self.path.name + ".tmp")
                tmp.write_text("".join(json.dumps(r) + "\n" for r in self.kept), encoding="utf-8")
                os.replace(tmp, self.path)
        if write:
            self._fh = open(self.path, "a" if resume_step is not None else "w", encoding="utf-8")

    def write(self, record: dict) -> None:
        if self._fh is not None:
            self._fh.write(json.dumps(record) + "\n")
            self._fh.flush()

    def close(self) -> None:
        if self._fh is not None:
            self._fh.close()


def current_lr(optimizer) -> float:
    """The rate the next optimizer step uses (after a recovery, the halved one)."""
    return float(optimizer.param_groups[0]["lr"])


def halve_learning_rate(optimizer, scheduler) -> bool:
    """Halve the schedule for the rest of the run, starting with the next step.

    Safe for ``LambdaLR`` schedules (transformers' linear, cosine, constant, with warmup): their
    rate is ``base_lr * lambda(step)``, so halving ``base_lrs`` halves every later rate. Other
    schedulers keep state of their own; there this returns False and the caller stops instead.
    """
    schedule = getattr(scheduler, "scheduler", scheduler)  # accelerate wraps it
    if schedule is None:
        for group in optimizer.param_groups:
            group["lr"] /= 2
        return True
    if not (hasattr(schedule, "lr_lambdas") and hasattr(schedule, "base_lrs")):
        return False
    schedule.base_lrs = [lr / 2 for lr in schedule.base_lrs]
    rates = [b * f(schedule.last_epoch) for b, f in zip(schedule.base_lrs, schedule.lr_lambdas, strict=True)]
    for group, rate in zip(optimizer.param_groups, rates, strict=True):
        group["lr"] = rate
    schedule._last_lr = rates
    return True


class Guard:
    def __init__(self, candidates: int | None, snapshot: Snapshot, collapse_steps: int = 20, on_collapse: str = "recover",
                 max_recoveries: int = 3, precision: str | None = None, log: Callable[[str], None] = print):  # fmt: skip
        if on_collapse not in ("recover", "stop"):
            raise ValueError(f"on_collapse must be recover or stop, got {on_collapse!r}")
        self.watchdog = Watchdog(
            candidates, zero_run=collapse_steps, plateau_run=collapse_steps, precision=precision
        )
        self.snapshot, self.collapse_steps = snapshot, collapse_steps
        self.on_collapse, self.max_recoveries, self.log = on_collapse, max_recoveries, log
        self.recoveries = 0
        self.events: list[dict] = []
        self.stopped: str | None = None
        self.first_spread: float | None = None

    def observe(self, step: int, loss: float, grad_norm: float | None, lr: float | None,
                spread: float | None = None) -> list[Event]:  # fmt: skip
        """The events this step triggers. ``spread``: the mean per-dimension standard deviation
        of the batch's embeddings; under half the first step's it is shrinking, under a tenth
        it has vanished (what a collapse to a constant looks like)."""
        shrinking = vanished = None
        if self.watchdog.precision == "fp16" and grad_norm is not None and not math.isfinite(grad_norm):
            grad_norm = None  # with fp16 the loss scaler skips overflowing gradients itself: routine
        if spread is not None and spread == spread:  # not NaN
            self.first_spread = self.first_spread or spread
            shrinking, vanished = spread < 0.5 * self.first_spread, spread < 0.1 * self.first_spread
        return self.watchdog.observe(Step(step, loss, grad_norm, lr), shrinking, bool(vanished))

    def snapshot_due(self, step: int, events: list[Event]) -> bool:
        """Keep these weights? Only after a clean stretch, once per ``collapse_steps``."""
        return (
            not events
            and self.watchdog.clean
            and (not self.snapshot or step - self.snapshot.step >= self.collapse_steps)  # type: ignore[operator]
        )

    def react(self, step: int, events: list[Event], model, optimizer, scheduler) -> None:
        """Log the events; recover from the first (restore, halve the rate) or stop."""
        for event in events:
            self.events.append({"step": step, "kind": event.kind, "advice": event.advice})
            self.log(f"lenprof: step {step}: {event.kind} ({event.advice})")
        if not events:
            return
        event = events[0]
        reason = None
        if self.on_collapse == "stop":
            reason = "on_collapse is stop"
        elif self.recoveries >= self.max_recoveries:
            reason = f"after {self.recoveries} recoveries"
        elif not self.snapshot:
            reason = "no healthy weights were kept yet"
        if reason is None:
            restored = self.snapshot.restore(model, optimizer)
            if halve_learning_rate(optimizer, scheduler):
                self.recoveries += 1
                self.watchdog.reset()
                self.events.append({"step": step, "kind": "recovered", "restored_step": restored,
                                    "lr_scale": 0.5**self.recoveries})  # fmt: skip
                self.log(f"lenprof: restored the weights from before step {restored} and halved the learning rate "
                         f"(recovery {self.recoveries} of {self.max_recoveries})")  # fmt: skip
                return
            reason = f"the scheduler ({type(getattr(scheduler, 'scheduler', scheduler)).__name__}) cannot be halved safely"
        self.stop(f"{event.kind} at step {step} ({reason}): {event.advice}", model)

    def stop(self, message: str, model) -> None:
        """End the run; the model goes back to the last healthy weights, if any were kept."""
        self.stopped = message
        if self.snapshot:
            self.snapshot.restore(model)
            self.events.append(
                {"step": self.watchdog.steps, "kind": "stopped", "restored_step": self.snapshot.step}
            )
        else:
            self.events.append({"step": self.watchdog.steps, "kind": "stopped", "restored_step": None})
        self.log(f"lenprof: stopped: {message}")

    @property
    def weights(self) -> str:
        """What the model now holds, in words, for the report."""
        if not self.stopped:
            return "trained"
        return f"from before step {self.snapshot.step}" if self.snapshot else "none healthy"

    def state(self) -> dict:
        """What a checkpoint needs to carry on (the watchdog itself is rebuilt from metrics.jsonl)."""
        return {"recoveries": self.recoveries, "events": self.events, "first_spread": self.first_spread}

    def load_state(self, state: dict, history: list[dict]) -> None:
        self.recoveries = state.get("recoveries", 0)
        # without a saved state (the Trainer callback), the events come back from the log itself
        self.events = state.get("events") or [
            {"step": r["step"], "kind": k, "advice": advice(k, self.watchdog.precision)}
            for r in history
            for k in r.get("events", [])
        ]
        self.first_spread = state.get("first_spread")
        for row in history:  # replay the kept steps: counts and runs in progress come back
            self.watchdog.observe(Step(row["step"], row["loss"], row.get("grad_norm"), row.get("lr")))
