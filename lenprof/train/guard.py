"""The watchdog's policy around a training loop, shared by ``lenprof train`` and the Trainer
callback (``lenprof.integrations``): one metrics line a step, healthy snapshots, and what to do
on a collapse.

Per step the loop calls, in order: :meth:`Guard.observe` (the full-precision loss, the gradient
norm before clipping, the learning rate the step used, the embeddings' spread), then
:meth:`Guard.snapshot_due` (before the optimizer changes the weights that just produced a healthy
loss), then :meth:`Guard.react` after the optimizer step. A collapse restores the snapshot, cuts
the learning rate and warms it up again, up to ``max_recoveries`` times (see :class:`Guard`); a
stop restores the snapshot too, so what a stopped run saves is the snapshot's weights.
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Callable
from pathlib import Path

from lenprof.train.health import Event, Step, Watchdog, advice, rate
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


class Rewarm:
    """A schedule's factor, warmed up again from the step of a restore: ``inner(e) * min(1, (e -
    start + 1) / steps)``. Its numbers sit in ``__dict__`` (what ``LambdaLR.state_dict`` saves
    of a callable object); the wrapped schedule does not, so a checkpoint stays plain data."""

    __slots__ = ("_inner", "__dict__")

    def __init__(self, inner, start: int, steps: int):
        self._inner = inner._inner if isinstance(inner, Rewarm) else inner  # one warmup at a time
        self.start, self.steps = start, steps

    def __call__(self, epoch: int) -> float:
        return self._inner(epoch) * min(1.0, max(0, epoch - self.start + 1) / self.steps)


def cut_learning_rate(optimizer, scheduler, factor: float, rewarm: int = 0) -> bool:
    """Multiply the schedule by ``factor`` for the rest of the run, starting with the next step,
    and warm it up again over ``rewarm`` steps (0: at once).

    Safe for ``LambdaLR`` schedules (transformers' linear, cosine, constant, with warmup): their
    rate is ``base_lr * lambda(step)``, so scaling ``base_lrs`` scales every later rate. Other
    schedulers keep state of their own; there this returns False and the caller stops instead.
    """
    schedule = getattr(scheduler, "scheduler", scheduler)  # accelerate wraps it
    if schedule is None:
        for group in optimizer.param_groups:
            group["lr"] *= factor
        return True
    if not (hasattr(schedule, "lr_lambdas") and hasattr(schedule, "base_lrs")):
        return False
    schedule.base_lrs = [lr * factor for lr in schedule.base_lrs]
    if rewarm > 0:
        schedule.lr_lambdas = [Rewarm(f, schedule.last_epoch, rewarm) for f in schedule.lr_lambdas]
    rates = [b * f(schedule.last_epoch) for b, f in zip(schedule.base_lrs, schedule.lr_lambdas, strict=True)]
    for group, value in zip(optimizer.param_groups, rates, strict=True):
        group["lr"] = value
    schedule._last_lr = rates
    return True


def reset_moments(optimizer) -> None:
    """Forget the optimizer's state (AdamW's moments and step count): the next step starts it
    afresh, as at the start of a run, so the moments that drove a collapse do not drive it again."""
    getattr(optimizer, "optimizer", optimizer).state.clear()  # accelerate wraps it


FAST = 5  # a collapse that begins within this many steps of a (re)start: the rate is far too high


def kept(snapshot: Snapshot) -> str:
    """The weights a snapshot holds, in words, for the report."""
    if not snapshot:
        return "none healthy"
    return "base" if snapshot.base else f"from before step {snapshot.step}"


class Guard:
    """The watchdog's policy: snapshots, recoveries, stops.

    A recovery restores the snapshot, starts the optimizer afresh (reset_moments), cuts the rate
    (by half; tenfold when the collapse began within ``FAST`` steps of the run's start or of the
    last restore: halving a rate a hundred times too high only walks back into the same collapse)
    and warms it up again over ``rewarm`` steps. A recovery holds once the run goes
    ``collapse_steps`` steps clean; two that collapse again before that, in a row, stop the run.
    """

    def __init__(self, candidates: int | None, snapshot: Snapshot, collapse_steps: int = 20, on_collapse: str = "recover",
                 max_recoveries: int = 3, precision: str | None = None, log: Callable[[str], None] = print,
                 rewarm: int = 10):  # fmt: skip
        if on_collapse not in ("recover", "stop"):
            raise ValueError(f"on_collapse must be recover or stop, got {on_collapse!r}")
        self.watchdog = Watchdog(
            candidates, zero_run=collapse_steps, plateau_run=collapse_steps, precision=precision
        )
        self.snapshot, self.collapse_steps, self.rewarm = snapshot, collapse_steps, rewarm
        self.on_collapse, self.max_recoveries, self.log = on_collapse, max_recoveries, log
        self.recoveries = 0
        self.events: list[dict] = []
        self.stopped: str | None = None
        self.first_spread: float | None = None
        self.restarted = 0  # the step the run last (re)started from: its start, or the last restore
        self.on_trial = False  # a recovery that has not yet gone collapse_steps steps clean
        self.failed_in_row = 0  # recoveries in a row that collapsed again while on trial
        self.rewarming: dict | None = None  # the last restore's warmup ({"start", "steps"}), for resume

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
        events = self.watchdog.observe(Step(step, loss, grad_norm, lr), shrinking, bool(vanished))
        if not events and self.watchdog.clean and step - self.restarted >= self.collapse_steps:
            self.on_trial, self.failed_in_row = False, 0  # the last recovery held
        return events

    def snapshot_due(self, step: int, events: list[Event]) -> bool:
        """Keep these weights? Only after a clean stretch of ``collapse_steps`` steps since the last
        snapshot or restore."""
        since = max(self.snapshot.step or 0, self.restarted)  # a restore starts the stretch afresh
        return not events and self.watchdog.clean and step - since >= self.collapse_steps

    def react(self, step: int, events: list[Event], model, optimizer, scheduler) -> None:
        """Log the events; recover from the first (restore, cut the rate, warm up again) or stop."""
        for event in events:
            self.events.append({"step": step, "kind": event.kind, "advice": event.advice})
            self.log(f"lenprof: step {step}: {event.kind} ({event.advice})")
        if not events:
            return
        event = events[0]
        self.failed_in_row = self.failed_in_row + 1 if self.on_trial else 0
        reason = None
        if self.on_collapse == "stop":
            reason = "on_collapse is stop"
        elif self.failed_in_row >= 2:
            reason = (f"the last two recoveries collapsed again within {self.collapse_steps} steps each, at rates "
                      f"cut {self._cuts()}: recovering again would only repeat it")  # fmt: skip
        elif self.recoveries >= self.max_recoveries:
            reason = f"after {self.recoveries} recoveries"
        elif not self.snapshot:
            reason = "no healthy weights were kept yet"
        if reason is None:
            onset = min(event.steps) if event.steps else step
            gap, since = onset - self.restarted, "start" if self.restarted == 0 else "last restore"
            fast = gap <= FAST
            factor = 0.1 if fast else 0.5
            restored = self.snapshot.restore(model)
            reset_moments(optimizer)
            if cut_learning_rate(optimizer, scheduler, factor, self.rewarm):
                self.recoveries += 1
                self.watchdog.reset()
                schedule = getattr(scheduler, "scheduler", scheduler)
                self.rewarming = (
                    {"start": schedule.last_epoch, "steps": self.rewarm} if self.rewarm and schedule else None
                )
                self.restarted, self.on_trial = step, True
                peak = getattr(schedule, "base_lrs", [current_lr(optimizer)])[0]
                self.events.append({"step": step, "kind": "recovered", "restored_step": restored, "cut": factor,
                                    "peak_lr": peak, "rewarm": self.rewarm})  # fmt: skip
                cut = "tenfold" if fast else "by half"
                self.log(f"lenprof: restored the weights from before step {restored}, cut the learning rate {cut} "
                         f"to {rate(peak)} (the collapse began {gap} steps after the {since}), warming up again over {self.rewarm} steps "
                         f"(recovery {self.recoveries} of {self.max_recoveries})")  # fmt: skip
                return
            reason = f"the scheduler ({type(getattr(scheduler, 'scheduler', scheduler)).__name__}) cannot be cut safely"
        self.stop(f"{event.kind} at step {step} ({reason}): {event.advice}", model)

    def _cuts(self) -> str:
        peaks = [rate(e["peak_lr"]) for e in self.events if e["kind"] == "recovered"][-2:]
        return " and ".join(f"to {p}" for p in peaks)

    def stop(self, message: str, model) -> None:
        """End the run; the model goes back to the snapshot, if one was kept."""
        self.stopped = message
        if self.snapshot:
            self.snapshot.restore(model)
        self.events.append(
            {"step": self.watchdog.steps, "kind": "stopped", "restored_step": self.snapshot.step}
        )
        self.log(f"lenprof: stopped: {message}")

    @property
    def weights(self) -> str:
        """What the model now holds, in words, for the report."""
        return kept(self.snapshot) if self.stopped else "trained"

    def state(self) -> dict:
        """What a checkpoint needs to carry on (the watchdog itself is rebuilt from metrics.jsonl)."""
        return {"recoveries": self.recoveries, "events": self.events, "first_spread": self.first_spread,
                "restarted": self.restarted, "on_trial": self.on_trial, "failed_in_row": self.failed_in_row,
                "rewarming": self.rewarming}  # fmt: skip

    def load_state(self, state: dict, history: list[dict], scheduler=None) -> None:
        self.recoveries = state.get("recoveries", 0)
        # without a saved state (the Trainer callback), the events come back from the log itself
        self.events = state.get("events") or [
            {"step": r["step"], "kind": k, "advice": advice(k, self.watchdog.precision)}
            for r in history
            for k in r.get("events", [])
        ]
        self.first_spread = state.get("first_spread")
        self.restarted, self.on_trial = state.get("restarted", 0), state.get("on_trial", False)
        self.failed_in_row, self.rewarming = state.get("failed_in_row", 0), state.get("rewarming")
        schedule = getattr(scheduler, "scheduler", scheduler)
        if self.rewarming and hasattr(schedule, "lr_lambdas"):  # the checkpoint kept its numbers only
            w = self.rewarming
            schedule.lr_lambdas = [Rewarm(f, w["start"], w["steps"]) for f in schedule.lr_lambdas]
        for row in history:  # replay the kept steps: counts and runs in progress come back
            self.watchdog.observe(Step(row["step"], row["loss"], row.get("grad_norm"), row.get("lr")))
