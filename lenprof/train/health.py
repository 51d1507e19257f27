"""Loss health: tell an easy batch from a collapse, a rounding zero from a NaN in disguise.

Contrastive (InfoNCE) loss over ``k`` candidates per query starts near ln(k) and falls as the
model learns. Four things look alike in a log and mean different things:

- ``easy_batch``: a loss under 1e-3 now and then: the batch was easy. Harmless.
- ``persistent_zero``: under 1e-3 for a run of steps: training collapsed (or the data is trivial,
  e.g. queries equal to their positives). Lower the learning rate, warm up, clip gradients.
- ``non_finite``: NaN or inf in the loss or gradient norm. With fp16, Hugging Face's Trainer logs
  such steps as 0.0 (``logging_nan_inf_filter``), so they hide among easy batches.
- ``uniform_collapse``: the loss sits within a few % of ln(k) for a long run: every candidate
  gets the same score, i.e. the embeddings collapsed to a constant. When the embeddings' spread
  has also vanished (under a tenth of the first step's), a few steps are proof enough.

:class:`Watchdog` classifies steps live; ``diagnose.py`` reads a finished run's history and
also judges its trend (``trend.py``: ``healthy``, ``stalled``, ``diverging`` or ``too_short``).
Advice to lower the learning rate names the run's own rate, halved, where it is known.

    >>> w = Watchdog(candidates=8, zero_run=3)
    >>> [e.kind for s in range(5) for e in w.observe(Step(s, 0.0, grad_norm=0.1))]
    ['persistent_zero']
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

ZERO = 1e-3  # a loss below this is "zero" for InfoNCE: the positive has all the probability

# What "lower the learning rate" means in numbers: embedding models fine-tune at 1e-5 to 1e-6,
# with warmup and gradient clipping; after a collapse, halve the rate and try again.
LOWER_LR = "lower the learning rate (halve it, e.g. 1e-5 -> 5e-6; embedding models fine-tune at 1e-5 to 1e-6)"

ADVICE = {
    "easy_batch": "harmless: some batches are easy",
    "persistent_zero": "collapse or trivial data: "
    + LOWER_LR
    + ", warm up, clip gradients; check for queries equal to their positives (lenprof scan drops them)",
    "non_finite": "NaN/inf: " + LOWER_LR + " (with fp16, use bf16 instead)",
    "uniform_collapse": "embeddings collapsed to a constant (every candidate scores the same): "
    + LOWER_LR
    + ", warm up longer, check the pooling and temperature",
    "rounding_zero": "easy batches logged as 0.0 (the Trainer rounds losses to 4 decimals; the gradient norm is non-zero): not a collapse",
    "hidden_nan": "steps whose gradient norm is NaN/inf while their logged loss is finite (often 0.0): NaN losses in disguise (the Trainer's logging_nan_inf_filter); "
    + LOWER_LR
    + " (with fp16, use bf16 instead)",
    "exact_zero": "losses exactly 0 with zero gradient norm: nothing is learned, typically one candidate per query (batch size 1 and group size 1, in-batch negatives off) or trivial data",
    "single_candidate": "each query has one candidate, so the loss is exactly 0 and nothing learns: raise train_group_size or the batch size with in-batch negatives",
    "watchdog": "the run's own watchdog had to step in, so its loss alone cannot call it healthy: "
    + LOWER_LR
    + ", warm up longer, clip gradients; each event's advice is in train_report.json",
    "healthy": "the loss falls and stays finite",
    "diverging": "the loss rises: the learning rate is too high for this model and data: "
    + LOWER_LR
    + ", warm up longer, clip gradients",
    "stalled": "the loss does not fall: check that the learning rate is not too low (embedding models "
    "fine-tune at 1e-5 to 1e-6, reached after the warmup) and that positives match their queries; "
    "a loss that starts low and stays there means the model already knows this data (harder negatives teach it more)",
    "too_short": "too short to judge a trend: train (or log) more steps, or use larger batches, whose "
    "losses scatter less (lenprof logs every step to metrics.jsonl; the Trainer's logging_steps sets how often "
    "trainer_state.json gets a loss)",
}


# Where the run's precision is known, the NaN advice names it instead of guessing.
_NAN_CAUSE = {
    "fp16": "fp16 overflows: use bf16 instead of fp16, or " + LOWER_LR,
    "bf16": LOWER_LR + ", warm up longer, clip gradients (bf16 does not overflow like fp16)",
    "no": "in full precision (fp32), so not an fp16 overflow: "
    + LOWER_LR
    + ", warm up longer, clip gradients",
}


def rate(lr: float) -> str:
    """A learning rate as people write it: ``2e-05`` -> ``2e-5``, ``1.5e-05`` -> ``1.5e-5``."""
    mantissa, exponent = f"{lr:.2e}".split("e")
    return f"{mantissa.rstrip('0').rstrip('.')}e{int(exponent)}"


def lower_lr(lr: float | None) -> str:
    """:data:`LOWER_LR`, with the run's own rate halved where it is known.

    >>> lower_lr(2e-5)
    'lower the learning rate (halve it: 2e-5 -> 1e-5; embedding models fine-tune at 1e-5 to 1e-6)'
    """
    if lr is None or not (math.isfinite(lr) and lr > 0):
        return LOWER_LR
    return LOWER_LR.replace("e.g. 1e-5 -> 5e-6", f"{rate(lr)} -> {rate(lr / 2)}").replace("it, ", "it: ")


def advice(kind: str, precision: str | None = None, lr: float | None = None) -> str:
    """``ADVICE[kind]``, told for the run's precision (``fp16``, ``bf16``, ``no``) and its peak
    learning rate ``lr`` when known.

    >>> advice("non_finite", "no")
    'NaN/inf in full precision (fp32), so not an fp16 overflow: lower the learning rate (halve it, e.g. 1e-5 -> 5e-6; embedding models fine-tune at 1e-5 to 1e-6), warm up longer, clip gradients'
    """
    if precision in _NAN_CAUSE and kind == "non_finite":
        text = f"NaN/inf {_NAN_CAUSE[precision]}"
    elif precision in _NAN_CAUSE and kind == "hidden_nan":
        text = f"steps whose gradient norm is NaN/inf while their logged loss is finite (often 0.0): NaN losses in disguise (the Trainer's logging_nan_inf_filter), {_NAN_CAUSE[precision]}"
    else:
        text = ADVICE[kind]
    if kind == "stalled" and lr is not None and math.isfinite(lr) and lr > 0:
        text = text.replace("(embedding models", f"(this run's peaked at {rate(lr)}; embedding models")
    return text.replace(LOWER_LR, lower_lr(lr))


@dataclass(frozen=True)
class Step:
    step: int
    loss: float | None
    grad_norm: float | None = None
    lr: float | None = None


@dataclass
class Event:
    kind: str
    steps: list[int] = field(default_factory=list)
    logged: list[int] = field(default_factory=list, repr=False)  # every logged step, to join runs
    precision: str | None = field(default=None, repr=False)  # fp16, bf16, no (fp32) or unknown
    lr: float | None = field(default=None, repr=False)  # the run's peak learning rate, if known
    detail: str | None = field(default=None, repr=False)  # the numbers behind a verdict

    @property
    def advice(self) -> str:
        return advice(self.kind, self.precision, self.lr)

    def ranges(self) -> str:
        """``[1, 2, 3, 7]`` -> ``"1-3, 7"``; steps next to each other in the log join a run."""
        position = {s: i for i, s in enumerate(self.logged)} if self.logged else {}
        out, start, prev = [], None, None
        for s in sorted(self.steps):
            if start is None:
                start = prev = s
            elif (position[s] == position[prev] + 1) if position else s == prev + 1:
                prev = s
            else:
                out.append(f"{start}-{prev}" if prev != start else f"{start}")
                start = prev = s
        if start is not None:
            out.append(f"{start}-{prev}" if prev != start else f"{start}")
        return ", ".join(out)

    def to_dict(self) -> dict:
        d = {"kind": self.kind, "count": len(self.steps), "steps": self.ranges(), "advice": self.advice}
        return {**d, "detail": self.detail} if self.detail else d


def finite(x: float | None) -> bool:
    return x is not None and math.isfinite(x)


def candidates_per_query(
    batch_size: int, group_size: int, in_batch_negatives: bool, world_size: int = 1
) -> int:
    """How many passages each query is scored against in InfoNCE."""
    return batch_size * world_size * group_size if in_batch_negatives else group_size


class Watchdog:
    """Live classification of training steps; ``observe`` returns the events a step triggers.

    ``zero_run`` consecutive near-zero losses make a ``persistent_zero``; ``plateau_run`` losses
    within ``plateau_tol`` of ln(candidates) make a ``uniform_collapse``, and so do ``fast_run``
    such losses in a row whose embedding spread has vanished (the unambiguous case: no reason
    to wait); ``nan_limit`` non-finite steps among the last ``nan_window`` make ``non_finite`` an
    alarm (one is skipped quietly).
    """

    def __init__(self, candidates: int | None, zero_run: int = 20, plateau_run: int = 50, plateau_tol: float = 0.03,
                 nan_limit: int = 3, nan_window: int = 50, fast_run: int = 3, precision: str | None = None):  # fmt: skip
        self.candidates, self.precision = candidates, precision
        self.zero_run, self.plateau_run, self.plateau_tol = zero_run, plateau_run, plateau_tol
        self.fast_run = min(fast_run, plateau_run)
        self._vanished, self._fired = 0, False
        self.nan_limit, self.nan_window = nan_limit, nan_window
        self.steps = 0
        self.peak_lr: float | None = None  # the highest rate a step used: what advice halves
        self.easy: list[int] = []
        self.nonfinite: list[int] = []
        self._zeros: list[int] = []
        self._plateau: list[int] = []

    @property
    def clean(self) -> bool:
        """No suspicious run in progress: a good moment to keep the weights as healthy."""
        return (
            not self._zeros
            and not self._plateau
            and not (self.nonfinite and self.nonfinite[-1] > self.steps - self.nan_window)
        )

    def reset(self) -> None:
        """After a recovery: start counting runs afresh (the totals stay)."""
        self._zeros, self._plateau, self._vanished, self._fired = [], [], 0, False

    def observe(
        self, step: Step, spread_shrinking: bool | None = None, spread_vanished: bool = False
    ) -> list[Event]:
        self.steps += 1
        if finite(step.lr) and step.lr > 0:  # type: ignore[operator]
            self.peak_lr = max(self.peak_lr or 0.0, step.lr)  # type: ignore[type-var]
        if not (finite(step.loss) and (step.grad_norm is None or finite(step.grad_norm))):
            self.nonfinite.append(step.step)
            recent = [s for s in self.nonfinite if s > step.step - self.nan_window]
            alarm = len(recent) >= self.nan_limit
            return [Event("non_finite", recent, precision=self.precision, lr=self.peak_lr)] if alarm else []
        events = []
        if step.loss < ZERO:  # type: ignore[operator]
            self._zeros.append(step.step)
            if len(self._zeros) == self.zero_run:
                events.append(Event("persistent_zero", list(self._zeros), lr=self.peak_lr))
        else:
            if 0 < len(self._zeros) < self.zero_run:
                self.easy.extend(self._zeros)
            self._zeros = []
        if self.candidates and self.candidates > 1:
            ln_k = math.log(self.candidates)
            if abs(step.loss - ln_k) <= self.plateau_tol * ln_k and spread_shrinking is not False:  # type: ignore[operator]
                self._plateau.append(step.step)
                self._vanished = self._vanished + 1 if spread_vanished else 0
                if not self._fired and (
                    len(self._plateau) >= self.plateau_run or self._vanished >= self.fast_run
                ):
                    events.append(Event("uniform_collapse", list(self._plateau), lr=self.peak_lr))
                    self._fired = True  # once per plateau
            else:
                self._plateau, self._vanished, self._fired = [], 0, False
        return events

    def summary(self) -> dict:
        easy = self.easy + (self._zeros if len(self._zeros) < self.zero_run else [])
        return {
            "steps": self.steps,
            "easy_batches": len(easy),
            "easy_share": round(len(easy) / self.steps, 4) if self.steps else 0.0,
            "non_finite_steps": len(self.nonfinite),
        }
