"""``score_row`` (``lenprof/score/rows.py``, issue 25) against plain oracles: the loss is torch's
``cross_entropy`` over the row's logits, the flags are the rules written out as loops."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from lenprof.score.rows import info_nce, score_row


def unit(rng: np.random.Generator, n: int, d: int = 8) -> np.ndarray:
    x = rng.normal(size=(n, d))
    return x / np.linalg.norm(x, axis=1, keepdims=True)


@settings(max_examples=200, deadline=None)
@given(seed=st.integers(0, 2**32 - 1), p=st.integers(1, 3), n=st.integers(0, 8),
       ratio=st.sampled_from([0.5, 0.95, 1.0]), dup=st.sampled_from([0.5, 0.9]),
       t=st.sampled_from([0.02, 0.05, 1.0]))  # fmt: skip
def test_scores_flags_and_loss_follow_the_rules(seed, p, n, ratio, dup, t):
    import torch

    rng = np.random.default_rng(seed)
    q, pos, neg = unit(rng, 1)[0], unit(rng, p), unit(rng, n)
    if n and rng.random() < 0.5:  # a near copy of a positive among the negatives
        neg[0] = pos[-1] + rng.normal(scale=0.05, size=pos.shape[1])
        neg[0] /= np.linalg.norm(neg[0])
    got = score_row(q, pos, neg, fn_ratio=ratio, dup_cosine=dup, temperature=t)
    s_pos = [float(np.dot(q, x)) for x in pos]
    s_neg = [float(np.dot(q, x)) for x in neg]
    assert got.pos == pytest.approx(s_pos) and got.neg == pytest.approx(s_neg)
    want = [j for j, x in enumerate(neg)
            if s_neg[j] >= ratio * max(s_pos) or max(float(np.dot(x, y)) for y in pos) >= dup]  # fmt: skip
    assert got.false_negatives == want
    losses = []
    for sp in s_pos:
        logits = torch.tensor([[sp, *s_neg]], dtype=torch.float64) / t
        losses.append(float(torch.nn.functional.cross_entropy(logits, torch.tensor([0]))))
    assert got.loss == pytest.approx(max(losses), rel=1e-9, abs=1e-12)
    assert got.too_easy == (n > 0 and max(losses) < 1e-3)  # a row with no negative of its own never is


def test_a_row_whose_negatives_are_unrelated_is_too_easy_and_a_hard_one_is_not():
    q = np.array([1.0, 0.0, 0.0])
    pos = np.array([[0.9, math.sqrt(1 - 0.81), 0.0]])  # 0.9
    unrelated = np.array([[0.0, 0.0, 1.0], [0.1, 0.0, math.sqrt(0.99)]])  # 0.0, 0.1
    hard = np.array([[0.8, 0.0, 0.6]])  # 0.8: under 95% of 0.9 (0.855), not a copy of the positive
    easy = score_row(q, pos, unrelated)
    assert easy.too_easy and easy.loss < 1e-3 and easy.false_negatives == []
    tough = score_row(q, pos, hard)
    assert not tough.too_easy and tough.false_negatives == []
    assert score_row(q, pos, np.array([[0.86, 0.0, math.sqrt(1 - 0.86**2)]])).false_negatives == [0]


def test_info_nce_is_stable_where_the_logits_are_large():
    assert info_nce(1.0, np.array([-1.0] * 7), 0.001) == 0.0  # e^-2000: nothing left
    assert math.isfinite(info_nce(-1.0, np.array([1.0]), 0.001))  # 2000, not inf
    assert info_nce(-1.0, np.array([1.0]), 0.001) == pytest.approx(2000.0)
