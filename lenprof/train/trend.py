"""Does a run's loss fall, sit flat or rise? ``lenprof diagnose``'s verdict on the trend.

Single steps are noise (a batch can be easy or hard), so the verdict compares medians of
windows: the start (the first fiftieth of the logged losses, at least 5: where the model
began, before a fast first fall), and the first, middle and last thirds. The noise is the
step-to-step scatter, ``sigma = 1.4826 * MAD(differences) / sqrt(2)`` (a steady trend shifts
every difference alike, so it does not count as noise), and two medians of ``w1`` and ``w2``
losses differ by noise alone up to ``Z * 1.2533 * sigma * sqrt(1/w1 + 1/w2)`` (``1.2533 *
sigma / sqrt(w)`` is the standard error of a median). A change counts when it is beyond that
and at least ``REL`` (a tenth) of the level it starts from:

- ``diverging``: the last third sits above the lower of the first two thirds (the loss rose);
- ``healthy``: it sits below the start or the first third (the loss fell), and did not rise;
- ``stalled``: neither, in a run long enough that a fall of a tenth would have stood out;
- ``too_short``: under ``MIN_POINTS`` losses, or so noisy for its length that a fall of a
  tenth would not stand out: it says how many losses it would take.

    >>> trend([0.5] * 6 + [1.0] * 6).verdict  # rose from 0.5 to 1.0
    'diverging'
    >>> trend([1.386 + 0.002 * (-1) ** i for i in range(600)]).verdict  # flat at ln 4
    'stalled'
    >>> t = trend([0.4, 0.3, 3.0, 0.1])
    >>> t.verdict, t.needed
    ('too_short', 12)
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from statistics import median

MIN_POINTS = 12  # four losses a third: one odd batch per window cannot move a median far
REL = 0.1  # a change smaller than a tenth of the loss is no trend worth a verdict
Z = 3.0  # standard errors a difference of medians must exceed to be more than noise


@dataclass(frozen=True)
class Trend:
    verdict: str  # healthy, stalled, diverging, too_short
    points: int  # finite losses judged
    needed: int | None = None  # too_short: losses it would take (None: no number would do)
    start: float | None = None  # median of the first fiftieth (at least 5 losses)
    first: float | None = None  # medians of the first, middle and last thirds
    middle: float | None = None
    last: float | None = None
    noise: float | None = None  # sigma of one logged loss

    def describe(self) -> str:
        """The numbers behind the verdict, in words."""
        if self.first is None:
            return f"{self.points} logged losses; a trend needs at least {self.needed}"
        n = f"±{_short(self.noise)}"  # type: ignore[arg-type]
        if self.verdict == "too_short":
            more = f"about {self.needed}" if self.needed else "more than any run logs"
            return (f"{self.points} logged losses scatter {n} around {_short(self.first)}: for a fall of a "
                    f"tenth to stand out of that noise a trend needs {more}")  # fmt: skip
        if self.verdict == "diverging":
            low = "first" if self.first <= self.middle else "middle"  # type: ignore[operator]
            return (f"median loss {_short(min(self.first, self.middle))} over the {low} third, "  # type: ignore[type-var]
                    f"{_short(self.last)} over the last (noise {n})")  # fmt: skip
        return (f"median loss {_short(self.start)} at the start, {_short(self.first)} over the first third, "
                f"{_short(self.last)} over the last (noise {n})")  # fmt: skip


def _short(x: float | None) -> str:
    return f"{x:.4g}"


def _round_up(n: int) -> int:
    """To two significant digits, upwards: ``1248345`` -> ``1300000``, ``36`` -> ``36``."""
    unit = 10 ** max(0, len(str(n)) - 2)
    return -(-n // unit) * unit


def noise(losses: list[float]) -> float:
    """Sigma of one loss, from the scatter of step-to-step differences around their median.

    >>> round(noise([1.0, 0.9, 0.8, 0.7, 0.6]), 6)  # a straight fall: no noise at all
    0.0
    """
    diffs = [b - a for a, b in zip(losses[:-1], losses[1:], strict=True)]
    if not diffs:
        return 0.0
    mid = median(diffs)
    return 1.4826 * median(abs(d - mid) for d in diffs) / math.sqrt(2)


def trend(losses: list[float]) -> Trend:
    """The verdict on a run's finite losses, in the order they were logged (see the module)."""
    n = len(losses)
    if n < MIN_POINTS:
        return Trend("too_short", n, MIN_POINTS)
    k, w = max(5, n // 50), n // 3
    start, first, middle, last = (median(losses[:k]), median(losses[:w]), median(losses[w : n - w]),
                                  median(losses[n - w :]))  # fmt: skip
    sigma = noise(losses)

    def beyond(change: float, level: float, w1: int, w2: int) -> bool:
        margin = Z * 1.2533 * sigma * math.sqrt(1 / w1 + 1 / w2)
        return change > margin and change >= REL * abs(level)

    numbers = {"start": start, "first": first, "middle": middle, "last": last, "noise": sigma}
    low = min(first, middle)
    if beyond(last - low, low, w, w):
        return Trend("diverging", n, **numbers)
    if beyond(start - last, start, k, w) or beyond(first - last, first, w, w):
        return Trend("healthy", n, **numbers)
    # flat: a stall only if a fall of a tenth would have stood out of this run's noise
    visible = REL * abs(first)
    margin = Z * 1.2533 * sigma * math.sqrt(2 / w)
    if margin > visible:
        thirds = 2 * (Z * 1.2533 * sigma / visible) ** 2 if visible else math.inf
        needed = _round_up(3 * math.ceil(thirds)) if thirds < 1e12 else None
        return Trend("too_short", n, needed, **numbers)
    return Trend("stalled", n, **numbers)
