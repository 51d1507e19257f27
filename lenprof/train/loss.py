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


def gather_across_devices(t: torch.Tensor) -> torch.Tensor:
    """``t`` from every process, concatenated in rank order; only this process's slice keeps
    its gradient (as FlagEmbedding's ``_dist_gather_tensor``). One process: ``t`` itself."""
    import torch.distributed as dist

    if not (dist.is_available() and dist.is_initialized()) or dist.get_world_size() == 1:
        return t
    t = t.contiguous()
    parts = [torch.empty_like(t) for _ in range(dist.get_world_size())]
    dist.all_gather(parts, t)
    parts[dist.get_rank()] = t
    return torch.cat(parts)


def distill_loss(kind: str, teacher: torch.Tensor, student: torch.Tensor, group_size: int) -> torch.Tensor:
    """FlagEmbedding's ``distill_loss``. ``teacher``: (B, G) softmax of the teacher's
    ``pos_scores``/``neg_scores`` of each group; ``student``: (B, G) for ``kl_div`` (cross-entropy
    against the teacher's distribution), (B, B * G) for ``m3_kd_loss`` (each group member in turn
    is the target, weighted by its teacher probability, with the members before it masked out)."""
    if kind == "kl_div":
        return -torch.mean(torch.sum(torch.log_softmax(student, dim=-1) * teacher, dim=-1))
    if kind != "m3_kd_loss":
        raise ValueError(f"kd_loss_type must be kl_div or m3_kd_loss, got {kind!r}")
    labels = torch.arange(student.size(0), device=student.device) * group_size  # (B,)
    loss = student.new_zeros(())
    mask = torch.zeros_like(student)
    for i in range(group_size):
        target = labels + i
        per_query = F.cross_entropy(student + mask, target, reduction="none")  # (B,)
        loss = loss + torch.mean(teacher[:, i] * per_query)
        mask = torch.scatter(mask, -1, target.unsqueeze(-1), torch.finfo(student.dtype).min)
    return loss


def contrastive_loss(q: torch.Tensor, p: torch.Tensor, group_size: int, temperature: float, in_batch: bool = True,
                     cross_device: bool = False, teacher_scores: torch.Tensor | None = None,
                     kd_loss_type: str = "kl_div") -> torch.Tensor:  # fmt: skip
    """InfoNCE as FlagEmbedding computes it, with its two additions.

    ``cross_device``: every process's queries and passages are gathered first, so each query
    is scored against the whole global batch, and every process computes the same loss (the
    loss of one process over the concatenated batch). ``teacher_scores`` (B, G): knowledge
    distillation from the rows' ``pos_scores``/``neg_scores`` (softmax without temperature, as
    FlagEmbedding): ``kl_div`` adds it to InfoNCE, ``m3_kd_loss`` replaces InfoNCE with it.
    """
    if cross_device and in_batch:
        rank = _rank()
        local = q.shape[0]
        q, p = gather_across_devices(q), gather_across_devices(p)  # (W * B, d), (W * B * G, d)
        if teacher_scores is not None and kd_loss_type == "m3_kd_loss":
            teacher_scores = gather_across_devices(teacher_scores)  # (W * B, G)
    if teacher_scores is None:
        return info_nce(q, p, group_size, temperature, in_batch)
    teacher = torch.softmax(teacher_scores.float(), dim=-1)  # (B, G)
    batch = q.shape[0]
    if in_batch:
        scores = (q @ p.T / temperature).float()  # (B, B * G)
        own = torch.arange(batch, device=q.device) * group_size
        local_scores = scores[
            torch.arange(batch, device=q.device).unsqueeze(1),
            own.unsqueeze(1) + torch.arange(group_size, device=q.device),
        ]  # (B, G)
        if kd_loss_type == "m3_kd_loss":
            return distill_loss("m3_kd_loss", teacher, scores, group_size)
        if cross_device and in_batch:
            local_scores = local_scores[rank * local : (rank + 1) * local]  # the teacher's rows are local
        return distill_loss("kl_div", teacher, local_scores, group_size) + F.cross_entropy(scores, own)
    if kd_loss_type == "m3_kd_loss":
        raise ValueError(
            "m3_kd_loss needs in-batch negatives (FlagEmbedding's scores it over the whole batch)"
        )
    local_scores = (
        torch.einsum("bd,bgd->bg", q, p.view(batch, group_size, -1)).float() / temperature
    )  # (B, G)
    zeros = torch.zeros(batch, dtype=torch.long, device=q.device)
    return distill_loss("kl_div", teacher, local_scores, group_size) + F.cross_entropy(local_scores, zeros)


def _rank() -> int:
    import torch.distributed as dist

    return dist.get_rank() if dist.is_available() and dist.is_initialized() else 0
