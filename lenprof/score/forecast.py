"""The zero-loss forecast (issue 25): the loss of the first steps, before training, from the base
model's embeddings.

Batches are drawn as the trainer draws them (``rows.groups``: one positive and ``group_size - 1``
negatives a row, FlagEmbedding's way, shuffled into batches with no query or positive twice) and
each batch's loss is the trainer's (``train.loss.info_nce``, in-batch negatives included, here in
numpy: tests/test_forecast.py holds the two equal), computed on embeddings of the untrained model. A Trainer logs the loss at 4 decimals, so a batch
whose loss is below 5e-5 logs ``0.0``: the share of such batches is what the first steps will
show. Many of them mean the data is too easy for this model (or, were it persistent in
training, a collapse: ``lenprof diagnose`` tells the two apart).

    >>> f = Forecast(losses=[0.0, 0.00004, 0.6, 1.2])
    >>> f.zero_share, f.quantiles()["p50"]
    (0.5, 0.30002)
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import numpy as np

from lenprof.rows.groups import Group, GroupSampler, Row, batches

LOGGED_ZERO = 5e-5  # rounds to 0.0 at the Trainer's 4 decimals


@dataclass(frozen=True)
class Forecast:
    losses: list[float] = field(default_factory=list)  # one a batch drawn

    @property
    def zero_share(self) -> float:
        """Of the batches drawn, those whose loss would be logged as 0.0."""
        return sum(1 for x in self.losses if x < LOGGED_ZERO) / len(self.losses) if self.losses else 0.0

    def quantiles(self) -> dict[str, float]:
        if not self.losses:
            return {}
        q = np.quantile(np.array(self.losses), [0.0, 0.1, 0.5, 0.9, 1.0])
        return dict(zip(["min", "p10", "p50", "p90", "max"], (float(x) for x in q), strict=True))


def forecast(
    rows: Sequence[Row],
    embed: Callable[[list[str]], np.ndarray],
    batch_size: int,
    group_size: int,
    temperature: float,
    steps: int = 50,
    seed: int = 42,
    in_batch: bool = True,
    query_text: Callable[[Group], str] | None = None,
) -> Forecast:
    """The loss of ``steps`` batches drawn as the trainer draws them, from ``embed``'s vectors
    (unit length, one a text). ``query_text(group)`` gives the query as the model reads it
    (with its instruction or prompt); by default the query as written."""
    sampler = GroupSampler(list(rows), group_size, seed)
    drawn: list[list] = []
    epoch = 0
    while len(drawn) < steps:
        more = batches(sampler.epoch(epoch), batch_size, seed + epoch)
        if not more:
            break
        drawn += more
        epoch += 1
    drawn = drawn[:steps]
    queries = [query_text(g) if query_text else g.query for b in drawn for g in b]
    passages = [t for b in drawn for g in b for t in g.passages]
    vectors: dict[str, np.ndarray] = {}
    for texts in (queries, passages):
        new = list(dict.fromkeys(t for t in texts if t not in vectors))
        if new:
            vectors.update(zip(new, embed(new), strict=True))
    losses, q_at, p_at = [], 0, 0
    for b in drawn:
        n = len(b) * group_size
        q = np.stack([vectors[t] for t in queries[q_at : q_at + len(b)]])  # (B, d)
        p = np.stack([vectors[t] for t in passages[p_at : p_at + n]])  # (B * G, d)
        losses.append(batch_loss(q, p, group_size, temperature, in_batch))
        q_at, p_at = q_at + len(b), p_at + n
    return Forecast(losses)


def batch_loss(
    q: np.ndarray, p: np.ndarray, group_size: int, temperature: float, in_batch: bool = True
) -> float:
    """The trainer's InfoNCE of one batch (``train.loss.info_nce``): ``q`` (B, d), ``p`` (B * G, d),
    each query's group contiguous, its positive first; cross-entropy in float64, computed stably."""
    batch = len(q)
    if in_batch:
        scores = q.astype(np.float64) @ p.T.astype(np.float64) / temperature  # (B, B * G)
        target = np.arange(batch) * group_size
    else:
        groups = p.astype(np.float64).reshape(batch, group_size, -1)  # (B, G, d)
        scores = np.einsum("bd,bgd->bg", q.astype(np.float64), groups) / temperature  # (B, G)
        target = np.zeros(batch, dtype=np.int64)
    top = scores.max(axis=1)
    lse = top + np.log(np.exp(scores - top[:, None]).sum(axis=1))
    return float(np.mean(lse - scores[np.arange(batch), target]))
