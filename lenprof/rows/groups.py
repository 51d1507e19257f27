"""Training groups and batches, the way FlagEmbedding samples them: the trainer draws its batches
here, and the scan's zero-loss forecast (``score/forecast.py``) draws the same ones.

Each epoch, every row yields one group: its query, one positive drawn from ``pos`` and
``group_size - 1`` negatives drawn from ``neg`` without replacement (with replacement only when
the row has too few, which is reported once). Batches never hold the same text twice as a
query or a positive, since another query's positive equal to mine would be a false in-batch
negative; a row that would repeat one waits for the next batch. Rows with ``pos_scores`` and
``neg_scores`` (a teacher's scores, for knowledge distillation) carry the scores of the chosen
passages along, in the group's order.
"""

from __future__ import annotations

import json
import random
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class Row:
    query: str
    pos: list[str]
    neg: list[str]
    prompt: str | None = None
    pos_scores: list[float] | None = None
    neg_scores: list[float] | None = None


def _scores(d: dict, key: str, texts: list[str]) -> list[float] | None:
    v = d.get(key)
    return [float(x) for x in v] if isinstance(v, list) and len(v) == len(texts) else None


def read_rows(path: str | Path) -> list[Row]:
    """Rows of a cleaned JSONL file (lenprof's --clean-out). A plain string where a list belongs
    (a CSV cell) is one text, never a list of characters."""
    rows = []
    with open(path, encoding="utf-8") as fh:
        for line in fh:
            if line.strip():
                d = json.loads(line)
                pos, neg = _texts(d["pos"]), _texts(d.get("neg", []))
                rows.append(
                    Row(
                        d["query"],
                        pos,
                        neg,
                        d.get("prompt") if isinstance(d.get("prompt"), str) else None,
                        _scores(d, "pos_scores", pos),
                        _scores(d, "neg_scores", neg),
                    )
                )
    return rows


def _texts(value: str | list[str]) -> list[str]:
    return [value] if isinstance(value, str) else value


@dataclass(frozen=True)
class Group:
    query: str
    passages: list[str]  # positive first
    prompt: str | None = None  # the row's own prompt: replaces the query instruction, as in the scan
    scores: list[float] | None = None  # the teacher's score of each passage, when the row has them


class GroupSampler:
    """Groups for one epoch at a time; ``short_rows`` counts rows that needed replacement."""

    def __init__(self, rows: list[Row], group_size: int, seed: int = 0):
        # a row without negatives cannot fill a group (FlagEmbedding divides by zero on it)
        self.rows = [r for r in rows if r.neg or group_size == 1]
        self.skipped = len(rows) - len(self.rows)
        self.group_size, self.seed = group_size, seed
        self.short_rows = sum(1 for r in self.rows if len(r.neg) < group_size - 1)

    def epoch(self, epoch: int) -> list[Group]:
        rng = random.Random(self.seed * 1_000_003 + epoch)
        groups = []
        need = self.group_size - 1
        for row in self.rows:
            positive = rng.randrange(len(row.pos))
            every = list(range(len(row.neg)))
            if need == 0:
                negatives = []
            elif len(row.neg) >= need:
                negatives = rng.sample(every, need)
            else:  # too few: every negative once, then repeats (FlagEmbedding does the same)
                negatives = every * (need // len(row.neg)) + rng.sample(every, need % len(row.neg))
            scores = None
            if row.pos_scores is not None and row.neg_scores is not None:
                scores = [row.pos_scores[positive], *(row.neg_scores[i] for i in negatives)]
            passages = [row.pos[positive], *(row.neg[i] for i in negatives)]
            groups.append(Group(row.query, passages, row.prompt, scores))
        return groups


def batches(
    groups: list[Group], batch_size: int, seed: int, drop_last: bool = True, by_length: bool = False
) -> list[list[Group]]:
    """Shuffle, then fill batches without repeating a query or positive text inside one.

    ``by_length``: within windows of 64 batches, order groups by their longest passage (in
    characters) before batching, then shuffle the batches: similar lengths share a batch, so
    less padding, while batch order stays random.
    """
    rng = random.Random(seed)
    order = list(groups)
    rng.shuffle(order)
    if by_length:
        window = batch_size * 64
        order = [
            g
            for i in range(0, len(order), window)
            for g in sorted(order[i : i + window], key=lambda g: max(map(len, g.passages)))
        ]
    out: list[list[Group]] = []
    waiting: list[Group] = []
    current: list[Group] = []
    seen: set[str] = set()
    for g in order + [None]:  # type: ignore[list-item]
        candidates = waiting + ([g] if g is not None else [])
        waiting = []
        for c in candidates:
            keys = {c.query, c.passages[0]}
            if seen & keys:
                waiting.append(c)
                continue
            current.append(c)
            seen |= keys
            if len(current) == batch_size:
                out.append(current)
                current, seen = [], set()
    if current and not drop_last:
        out.append(current)
    if by_length:
        rng.shuffle(out)
    return out
