"""Retrieval on a fixed set of rows: recall and MRR of each query's positives among the set's passages, by the model being trained."""

from __future__ import annotations

import numpy as np
import torch

from lenprof.train.config import TrainConfig, _instructions
from lenprof.train.data import Row
from lenprof.train.model import Embedder


def evaluate(model: Embedder, tokenizer, rows: list[Row], cfg: TrainConfig, device) -> dict[str, float]:
    """recall@10 and MRR@10 of held-out queries against all held-out passages."""
    corpus = list(dict.fromkeys(t for r in rows for t in (*r.pos, *r.neg)))
    index = {t: i for i, t in enumerate(corpus)}
    texts = _instructions(cfg)
    queries = [texts.query_text(r.query, r.prompt) for r in rows]
    passages = [texts.passage_text(t) for t in corpus]
    model.eval()
    with torch.no_grad():
        q = _encode(model, tokenizer, queries, cfg.query_max_len, device)
        p = _encode(model, tokenizer, passages, cfg.passage_max_len, device)
    model.train()
    top = (q @ p.T).topk(min(10, len(corpus)), dim=1).indices.tolist()  # (queries, 10)
    recall, rr = [], []
    for row, ranked in zip(rows, top, strict=True):
        relevant = {index[t] for t in row.pos}
        hits = [rank for rank, i in enumerate(ranked) if i in relevant]
        recall.append(len(relevant & set(ranked)) / len(relevant))
        rr.append(1 / (hits[0] + 1) if hits else 0.0)
    return {
        "recall@10": round(float(np.mean(recall)), 4),
        "mrr@10": round(float(np.mean(rr)), 4),
        "queries": len(rows),
        "corpus": len(corpus),
    }


def _encode(model, tokenizer, texts: list[str], max_len: int, device, batch: int = 64) -> torch.Tensor:
    out = []
    for i in range(0, len(texts), batch):
        enc = tokenizer(
            texts[i : i + batch], truncation=True, max_length=max_len, padding=True, return_tensors="pt"
        ).to(device)
        out.append(model(**enc).float())
    return torch.cat(out)
