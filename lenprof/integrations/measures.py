"""Held-out retrieval inside another trainer: how the callback scores the model it watches.

Two ways in, both ending in lenprof's :class:`~lenprof.train.evaluate.Retrieval` (recall@10 and
MRR@10, what ``lenprof train`` ranks its snapshots by):

- a sentence-transformers evaluator that reports recall@10 and MRR@10, such as
  ``InformationRetrievalEvaluator`` (its own numbers are taken as they are);
- FlagEmbedding-style rows (``query``, ``pos``, ``neg``), scored by lenprof's own code
  (``lenprof.train.evaluate.retrieval``) through an ``encode`` for the host's model: a
  SentenceTransformer's own ``encode``, or FlagEmbedding's tokenizer and ``model.encode``.

Scoring never changes the run: the model goes back to training mode and the random state is put
back, so a run with an eval set trains exactly as it would without one.
"""

from __future__ import annotations

from collections.abc import Callable

import torch

from lenprof.rows.groups import Row, read_rows
from lenprof.rows.options import ScanOptions
from lenprof.train.evaluate import Encode, Retrieval, retrieval


class TrainingFailed(RuntimeError):
    """Raised at the end of training when no trained weights beat the starting ones on the
    callback's held-out set. The model then holds the starting weights, and they are saved to
    the output folder; ``train_report.json`` says ``"weights": "base"``."""


def evaluator_measure(evaluator, model) -> Callable[[], Retrieval]:
    """Score ``model`` with a sentence-transformers evaluator's recall@10 and MRR@10."""

    def measure() -> Retrieval:
        metrics = evaluator(model)
        found = {
            k.rsplit("_", 1)[-1].lower(): v
            for k, v in metrics.items()
            if k.lower().endswith(("recall@10", "mrr@10"))
        }
        if "recall@10" not in found or "mrr@10" not in found:
            raise ValueError(
                f"LossHealthCallback(evaluator=...) needs an evaluator that reports recall@10 and MRR@10 (as "
                f"sentence-transformers' InformationRetrievalEvaluator does); {type(evaluator).__name__} reports "
                f"{', '.join(sorted(metrics)) or 'nothing'}"
            )
        queries, corpus = (len(getattr(evaluator, name, ()) or ()) for name in ("queries", "corpus"))
        return Retrieval(float(found["recall@10"]), float(found["mrr@10"]), queries, corpus)

    return measure


def rows_measure(
    rows: list[Row] | str, encode: Encode, texts: ScanOptions | None = None
) -> Callable[[], Retrieval]:
    """Score with lenprof's own code on FlagEmbedding-style rows (a list, or a JSONL path)."""
    held = read_rows(rows) if isinstance(rows, str) else list(rows)
    if not held:
        raise ValueError("LossHealthCallback(eval_data=...) got no rows")
    return lambda: retrieval(held, encode, texts)


def sentence_transformer_encode(model, batch: int = 64) -> Encode:
    """A SentenceTransformer's own ``encode`` (its max_seq_length, pooling and normalization)."""

    def encode(texts: list[str], kind: str) -> torch.Tensor:
        return model.encode(texts, batch_size=batch, convert_to_tensor=True, show_progress_bar=False)

    return encode


def flagembedding_encode(runner, batch: int = 64) -> Encode:
    """FlagEmbedding's embedder as its trainer sees it: its tokenizer, its query and passage
    lengths, its ``model.encode`` (pooling and normalization as configured)."""
    data = runner.data_args

    def encode(texts: list[str], kind: str) -> torch.Tensor:
        max_len = data.query_max_len if kind == "query" else data.passage_max_len
        device = next(runner.model.parameters()).device
        out = []
        for i in range(0, len(texts), batch):
            features = runner.tokenizer(texts[i : i + batch], truncation=True, max_length=max_len, padding=True,
                                        return_tensors="pt").to(device)  # fmt: skip
            out.append(runner.model.encode(features))
        return torch.cat(out)

    return encode


def flagembedding_texts(runner) -> ScanOptions:
    """FlagEmbedding's instructions, as lenprof's scan and trainer apply them."""
    data = runner.data_args
    return ScanOptions(
        query_instruction=data.query_instruction_for_retrieval,
        query_instruction_format=data.query_instruction_format,
        passage_instruction=data.passage_instruction_for_retrieval,
        passage_instruction_format=data.passage_instruction_format or "{}{}",
    )


def untouched(measure: Callable[[], Retrieval], model) -> Callable[[], Retrieval]:
    """``measure`` that leaves the run as it found it: train mode and random state restored."""

    def wrapped() -> Retrieval:
        was_training = model.training
        cpu, cuda = (
            torch.get_rng_state(),
            torch.cuda.get_rng_state_all() if torch.cuda.is_available() else None,
        )
        model.eval()
        try:
            with torch.no_grad():
                return _agreed(measure())
        finally:
            model.train(was_training)
            torch.set_rng_state(cpu)
            if cuda is not None:
                torch.cuda.set_rng_state_all(cuda)

    return wrapped


def _agreed(r: Retrieval) -> Retrieval:
    """Every process decides on the same numbers: their mean."""
    if not (torch.distributed.is_available() and torch.distributed.is_initialized()):
        return r
    numbers = torch.tensor([r.recall, r.mrr], dtype=torch.float64)
    if torch.distributed.get_backend() == "nccl":
        numbers = numbers.cuda()
    torch.distributed.all_reduce(numbers)
    recall, mrr = (float(x) / torch.distributed.get_world_size() for x in numbers.cpu())
    return Retrieval(recall, mrr, r.queries, r.corpus)
