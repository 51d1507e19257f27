"""InfoNCE over a query's group and, optionally, every other passage in the batch.

Each query ``i`` comes with a group of ``G`` passages: its positive first, then ``G - 1`` hard
negatives. The loss is cross-entropy over similarity / temperature with the positive as the
target: with in-batch negatives the candidates are all ``B * G`` passages of the batch (the
other queries' positives and negatives too), without them only the query's own group. This is
FlagEmbedding's ``compute_loss`` for normalized embeddings; with ``k`` candidates a model that
scores everything alike sits at ln(k), and a loss of exactly 0 needs ``k == 1``.

    >>> import torch
    >>> p = torch.eye(4)  # group size 2: query 0 owns p0 (positive) and p1, query 1 owns p2 and p3
    >>> q = p[[0, 2]]  # each query equals its positive: scores 1 (positive) and 0 (negative)
    >>> round(info_nce(q, p, group_size=2, temperature=1.0, in_batch=False).item(), 4)  # ln(1 + e^-1)
    0.3133
"""

from __future__ import annotations

import torch
import torch.nn.functional as F


def info_nce(
    q: torch.Tensor, p: torch.Tensor, group_size: int, temperature: float, in_batch: bool = True
) -> torch.Tensor:
    """``q``: (B, d) query embeddings; ``p``: (B * G, d) passages, each query's group contiguous."""
    batch = q.shape[0]
    if in_batch:
        scores = q @ p.T / temperature  # (B, B * G)
        target = torch.arange(batch, device=q.device) * group_size  # each query's positive
    else:
        groups = p.view(batch, group_size, -1)  # (B, G, d)
        scores = torch.einsum("bd,bgd->bg", q, groups) / temperature  # (B, G)
        target = torch.zeros(batch, dtype=torch.long, device=q.device)
    return F.cross_entropy(scores.float(), target)
