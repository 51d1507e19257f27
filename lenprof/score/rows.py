"""What the base model makes of one training row (issue 25): its scores, its suspected false
negatives, and whether it is too easy to teach anything.

A row is a query, its positives and its negatives, each an embedding of unit length
(``encoder.py``), so a score is a cosine. With ``s(p)`` the query's score against a positive and
``s(n)`` against a negative:

- a negative is a **false negative** when ``s(n) >= fn_ratio * max s(p)`` (NV-Retriever's
  positive-aware rule: a "negative" the model finds about as relevant as the positive is most
  likely another positive), or when it is a near copy of a positive (cosine ``>= dup_cosine``);
- the row is **too easy** when its InfoNCE loss, at the trainer's temperature, is below
  ``1e-3`` with each of its positives: ``-log(e^(s(p)/t) / (e^(s(p)/t) + sum_n e^(s(n)/t)))``,
  as FlagEmbedding computes it for one positive and the row's negatives (in-batch negatives
  only add to the sum, so this is the loss's floor). Such a row's gradient is ~nothing. A row
  with no negative of its own is never too easy: its loss is 0 by definition, and what it
  learns from comes from the batch's other rows.

    >>> q = np.array([1.0, 0.0]); p = np.array([[1.0, 0.0]]); n = np.array([[0.0, 1.0], [0.99, 0.141]])
    >>> s = score_row(q, p, n)
    >>> [round(x, 3) for x in s.neg], s.false_negatives, s.too_easy
    ([0.0, 0.99], [1], False)
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

FN_RATIO = 0.95  # NV-Retriever's: keep a negative only below 95% of the positive's score
DUP_COSINE = 0.9  # a negative this close to a positive is a copy of it
TEMPERATURE = 0.02  # FlagEmbedding's default for fine-tuning BGE
EASY_LOSS = 1e-3  # below it the row teaches nothing


@dataclass(frozen=True)
class RowScores:
    pos: list[float]  # the query's cosine with each positive
    neg: list[float]  # with each negative
    false_negatives: list[int]  # the negatives (their places) that look like positives
    loss: float  # the row's InfoNCE loss with its hardest positive, its own negatives only
    too_easy: bool

    def keeping(self, stay: list[int], temperature: float = TEMPERATURE) -> RowScores:
        """The row with only its negatives at ``stay`` (the others removed), judged again from
        the scores it has: its loss and whether it is too easy; nothing in it is flagged."""
        neg = [self.neg[k] for k in stay]
        return RowScores(self.pos, neg, [], *_judged(self.pos, np.array(neg), temperature))


def score_row(
    q: np.ndarray,  # (d,)
    pos: np.ndarray,  # (P, d)
    neg: np.ndarray,  # (N, d)
    fn_ratio: float = FN_RATIO,
    dup_cosine: float = DUP_COSINE,
    temperature: float = TEMPERATURE,
) -> RowScores:
    s_pos = pos @ q  # (P,)
    s_neg = neg @ q  # (N,)
    flagged = s_neg >= fn_ratio * s_pos.max() if len(s_pos) else np.zeros(len(s_neg), bool)
    if len(neg) and len(pos):
        flagged |= (neg @ pos.T).max(axis=1) >= dup_cosine  # (N, P) -> (N,)
    loss, too_easy = _judged(s_pos.tolist(), s_neg, temperature)
    return RowScores(s_pos.tolist(), s_neg.tolist(), np.flatnonzero(flagged).tolist(), loss, too_easy)


def _judged(s_pos: list[float], s_neg: np.ndarray, temperature: float) -> tuple[float, bool]:
    """A row's loss with its hardest positive, and whether that makes it too easy (see above)."""
    loss = max((info_nce(sp, s_neg, temperature) for sp in s_pos), default=0.0)
    return loss, bool(s_pos) and bool(len(s_neg)) and loss < EASY_LOSS


def info_nce(s_pos: float, s_neg: np.ndarray, temperature: float) -> float:
    """``-log softmax`` of the positive among itself and the negatives, computed stably.

    >>> round(info_nce(0.5, np.array([0.5]), 1.0), 4)  # a coin toss: log 2
    0.6931
    """
    logits = np.concatenate([[s_pos], s_neg]) / temperature
    top = logits.max()
    return float(top + np.log(np.exp(logits - top).sum()) - logits[0])
