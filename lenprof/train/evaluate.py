"""Retrieval on held-out rows: each query ranks every passage of the set (its own rows' positives
and negatives), and recall@10 and MRR@10 say how well its positives fare.

One measure for every place that judges a model: ``lenprof train`` before training, at its
healthy snapshots and at the end; the Trainer callback with FlagEmbedding-style eval rows; and
``benchmarks/train_bench.py``. It needs only a way to embed texts (``encode``), so the same code
scores lenprof's own model, a sentence-transformers model or FlagEmbedding's.

    >>> import torch
    >>> rows = [Row("q0", ["a"], ["b"]), Row("q1", ["b"], ["a"])]
    >>> vectors = {"q0": [1.0, 0.0], "q1": [1.0, 0.1], "a": [1.0, 0.0], "b": [0.0, 1.0]}
    >>> r = retrieval(rows, lambda texts, kind: torch.tensor([vectors[t] for t in texts]))
    >>> (r.recall, r.mrr)  # q1 ranks its positive b second of two: recall@10 1, MRR 1/2
    (1.0, 0.75)
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch

from lenprof.rows.groups import Row
from lenprof.rows.options import ScanOptions

K = 10  # recall@K and MRR@K

# texts, "query" or "passage" -> (len(texts), d) embeddings, scored by their dot product
Encode = Callable[[list[str], str], torch.Tensor]


@dataclass(frozen=True)
class Retrieval:
    recall: float  # recall@10: the share of a query's positives in its top 10, averaged
    mrr: float  # MRR@10: 1 / the rank of its first positive (0 beyond 10), averaged
    queries: int
    corpus: int  # passages every query ranks

    @property
    def score(self) -> float:
        """What a run's snapshots are ranked by: the mean of recall@10 and MRR@10."""
        return (self.recall + self.mrr) / 2

    def to_dict(self) -> dict:
        return {"recall@10": round(self.recall, 4), "mrr@10": round(self.mrr, 4), "queries": self.queries,
                "corpus": self.corpus}  # fmt: skip

    def __str__(self) -> str:
        return f"recall@10 {self.recall:.4f}, MRR@10 {self.mrr:.4f}"


def retrieval(rows: list[Row], encode: Encode, texts: ScanOptions | None = None) -> Retrieval:
    """Every query of ``rows`` against every passage of ``rows`` (duplicates once), with the
    instructions of ``texts`` applied as in training."""
    texts = texts or ScanOptions()
    corpus = list(dict.fromkeys(t for r in rows for t in (*r.pos, *r.neg)))
    index = {t: i for i, t in enumerate(corpus)}
    with torch.no_grad():
        q = encode([texts.query_text(r.query, r.prompt) for r in rows], "query").float()  # (queries, d)
        p = encode([texts.passage_text(t) for t in corpus], "passage").float()  # (corpus, d)
    top = (q @ p.T).topk(min(K, len(corpus)), dim=1).indices.tolist()  # (queries, 10)
    recall = rr = 0.0
    for row, ranked in zip(rows, top, strict=True):
        relevant = {index[t] for t in row.pos}
        recall += len(relevant & set(ranked)) / len(relevant)
        rr += next((1 / (rank + 1) for rank, i in enumerate(ranked) if i in relevant), 0.0)
    return Retrieval(recall / len(rows), rr / len(rows), len(rows), len(corpus))


def embedder_encode(
    model, tokenizer, query_max_len: int, passage_max_len: int, device, batch: int = 64
) -> Encode:
    """``encode`` for lenprof's ``Embedder``: the training lengths, in eval mode (no dropout); the
    model goes back to the mode it was in."""

    def encode(texts: list[str], kind: str) -> torch.Tensor:
        was_training = model.training
        model.eval()
        out = []
        try:
            for i in range(0, len(texts), batch):
                enc = tokenizer(texts[i : i + batch], truncation=True, padding=True, return_tensors="pt",
                                max_length=query_max_len if kind == "query" else passage_max_len).to(device)  # fmt: skip
                out.append(model(**enc).float())
        finally:
            model.train(was_training)
        return torch.cat(out)

    return encode


def evaluate(model, tokenizer, rows: list[Row], cfg, device) -> dict:
    """recall@10 and MRR@10 of ``rows`` under lenprof's ``Embedder`` at ``cfg``'s lengths and
    instructions, as a dict (``benchmarks/train_bench.py`` scores every trainer's model with it)."""
    from lenprof.train.config import _instructions

    encode = embedder_encode(model, tokenizer, cfg.query_max_len, cfg.passage_max_len, device)
    return retrieval(rows, encode, _instructions(cfg)).to_dict()
