"""The zero-loss forecast (``lenprof/score/forecast.py``, issue 25): batches drawn as the trainer
draws them, each one's loss against a plain numpy InfoNCE, and the share logged as 0.0 where
the rows are too easy and where they are not."""

from __future__ import annotations

import numpy as np
import pytest

from lenprof.rows.groups import GroupSampler, Row, batches
from lenprof.score.forecast import LOGGED_ZERO, forecast


def vectors_for(texts: list[str], d: int = 16, seed: int = 0) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    out = {}
    for t in texts:
        v = rng.normal(size=d)
        out[t] = v / np.linalg.norm(v)
    return out


def corpus(n: int, easy: bool) -> tuple[list[Row], dict[str, np.ndarray]]:
    """Query i's positive is the query's own vector (easy) or a noisy copy (hard), its negatives
    random vectors (easy) or close to the positive (hard)."""
    rng = np.random.default_rng(1)
    rows, vec = [], {}
    for i in range(n):
        q = rng.normal(size=16)
        q /= np.linalg.norm(q)
        vec[f"q{i}"] = q
        p = q if easy else q + rng.normal(scale=0.3, size=16)
        vec[f"p{i}"] = p / np.linalg.norm(p)
        for j in range(4):
            x = rng.normal(size=16) if easy else p + rng.normal(scale=0.3, size=16)
            vec[f"n{i}.{j}"] = x / np.linalg.norm(x)
        rows.append(Row(f"q{i}", [f"p{i}"], [f"n{i}.{j}" for j in range(4)]))
    return rows, vec


def plain_loss(q: np.ndarray, p: np.ndarray, group: int, t: float) -> float:
    s = q @ p.T / t  # (B, B * G)
    top = s.max(axis=1, keepdims=True)
    lse = top[:, 0] + np.log(np.exp(s - top).sum(axis=1))
    return float(np.mean(lse - s[np.arange(len(q)), np.arange(len(q)) * group]))


@pytest.mark.parametrize("easy", [True, False])
def test_each_batch_loss_is_the_trainers_on_the_batches_it_will_draw(easy):
    rows, vec = corpus(40, easy)
    calls = []

    def embed(texts):
        calls.append(len(texts))
        return np.stack([vec[t] for t in texts])

    got = forecast(rows, embed, batch_size=4, group_size=3, temperature=0.02, steps=12, seed=7)
    drawn = batches(GroupSampler(rows, 3, 7).epoch(0), 4, 7)[:10]
    drawn += batches(GroupSampler(rows, 3, 7).epoch(1), 4, 8)[:2]  # 10 batches an epoch
    want = []
    for b in drawn:
        q = np.stack([vec[g.query] for g in b])
        p = np.stack([vec[t] for g in b for t in g.passages])
        want.append(plain_loss(q, p, 3, 0.02))
    assert got.losses == pytest.approx(want, rel=1e-5, abs=1e-6)
    assert len(calls) == 2 and sum(calls) <= len(vec)  # each text embedded once
    share = sum(x < LOGGED_ZERO for x in want) / len(want)
    assert got.zero_share == share
    if easy:
        assert got.zero_share > 0.9
    else:
        assert got.zero_share == 0.0 and got.quantiles()["p50"] > 0.1


@pytest.mark.parametrize("in_batch", [True, False])
def test_batch_loss_is_the_trainers_own(in_batch):
    """The forecast's numpy loss against the trainer's torch ``info_nce`` on the same vectors."""
    torch = pytest.importorskip("torch")
    from lenprof.score.forecast import batch_loss
    from lenprof.train.loss import info_nce

    rng = np.random.default_rng(3)
    q, p = rng.normal(size=(4, 8)), rng.normal(size=(12, 8))
    q /= np.linalg.norm(q, axis=1, keepdims=True)
    p /= np.linalg.norm(p, axis=1, keepdims=True)
    want = info_nce(torch.from_numpy(q), torch.from_numpy(p), 3, 0.05, in_batch).item()
    assert batch_loss(q.astype(np.float32), p.astype(np.float32), 3, 0.05, in_batch) == pytest.approx(
        want, rel=1e-5
    )
