"""The trend verdict of `lenprof diagnose` (lenprof/train/trend.py): its numbers against numpy,
and each threshold on both sides (issue 22, point 4)."""

from __future__ import annotations

import random

import numpy as np
import pytest

from lenprof.train.trend import MIN_POINTS, REL, trend


def test_the_windows_medians_and_noise_are_numpys():
    rng = random.Random(7)
    losses = [1.0 - 0.5 * i / 300 + rng.gauss(0, 0.05) for i in range(300)]
    t = trend(losses)
    w = 300 // 3
    assert t.start == pytest.approx(np.median(losses[:6]))  # the first fiftieth
    assert (t.first, t.middle, t.last) == pytest.approx(
        (np.median(losses[:w]), np.median(losses[w:-w]), np.median(losses[-w:]))
    )
    diffs = np.diff(losses)
    assert t.noise == pytest.approx(1.4826 * np.median(np.abs(diffs - np.median(diffs))) / np.sqrt(2))
    assert abs(t.noise - 0.05) < 0.01  # the scatter put in, the trend not counted
    assert t.verdict == "healthy"


def test_too_short_below_the_minimum_and_judged_from_it():
    falling = [2.0 - 0.1 * i for i in range(MIN_POINTS)]
    assert (trend(falling[:-1]).verdict, trend(falling[:-1]).needed) == ("too_short", MIN_POINTS)
    assert (
        trend(falling[:-1]).describe()
        == f"{MIN_POINTS - 1} logged losses; a trend needs at least {MIN_POINTS}"
    )
    assert trend(falling).verdict == "healthy"
    assert trend([]).verdict == "too_short"


@pytest.mark.parametrize(
    "change, verdict", [(-0.12, "healthy"), (-0.08, "stalled"), (0.08, "stalled"), (0.12, "diverging")]
)
def test_a_change_counts_from_a_tenth_of_the_loss(change, verdict):
    losses = [1.0] * 20 + [1.0 + change] * 10  # noiseless: only the size decides
    assert REL == 0.1 and trend(losses).verdict == verdict


def test_a_loss_that_fell_then_rose_is_diverging():
    losses = [2.0] * 10 + [0.5] * 10 + [1.0] * 10
    t = trend(losses)
    assert t.verdict == "diverging"
    assert t.describe() == "median loss 0.5 over the middle third, 1 over the last (noise ±0)"


def test_a_fast_first_fall_then_flat_is_healthy_not_stalled():
    rng = random.Random(2)
    losses = [2.0 - 1.7 * min(i, 15) / 15 + rng.gauss(0, 0.05) for i in range(1000)]  # falls in 15 of 1000
    assert trend(losses).verdict == "healthy"


def test_single_odd_steps_do_not_decide():
    rng = random.Random(4)
    losses = [1.0 + rng.gauss(0, 0.01) for _ in range(60)]
    losses[0], losses[-1] = 0.1, 9.0  # one easy first batch, one hard last one
    assert trend(losses).verdict == "stalled"


def test_noise_hides_a_tenth_until_the_run_is_long_enough():
    rng = random.Random(6)
    noisy = [1.0 + rng.gauss(0, 0.3) for _ in range(3000)]
    short = trend(noisy[:60])
    assert short.verdict == "too_short" and short.needed is not None and 60 < short.needed <= 3000
    assert trend(noisy[: short.needed + 300]).verdict == "stalled"
