"""Held-out rows, and a run judged by retrieval on them: the model it ends with is the best one
measured, and a run that never beats the model it started from says so instead of succeeding.

A training batch cannot tell: the seed's run at lr 1e-2 lowered its fixed batch's loss (1.001 ->
0.905) while recall@10 on unseen queries fell (0.924 -> 0.904). So a slice of rows is held out
(:func:`hold_out`), scored before training, at healthy snapshots and at the end (evaluate.py:
recall@10 and MRR@10 against the slice's own passages), and :class:`Judge` keeps the best.
Evaluations cost time, so they come at most every :func:`eval_every` steps: about a tenth of
what training costs. The start and the end are always measured; the guarantee rests on them.
"""

from __future__ import annotations

import math
import random
from collections.abc import Callable

from lenprof.rows.groups import Row
from lenprof.train.evaluate import Retrieval
from lenprof.train.guard import kept
from lenprof.train.health import lower_lr
from lenprof.train.snapshot import Snapshot

AUTO_SHARE, AUTO_MIN, AUTO_MAX = 0.02, 64, 1000  # held out by default: 2%, at least 64 queries, at most 1,000
EVAL_BUDGET = 0.1  # evaluations may cost about a tenth of training


def hold_out(rows: list[Row], eval_split: float | None, seed: int) -> tuple[list[Row], list[Row], str | None]:
    """(rows to train on, rows held out, a note for the log). ``eval_split``: the share to hold
    out; 0: none; None: 2% of the rows, at least 64 and at most 1,000, where four rows in five
    still train (320 rows or more), else none, and the note says why.

    >>> rows = [Row(f"q{i}", ["p"], ["n"]) for i in range(1000)]
    >>> [len(part) for part in hold_out(rows, None, 0)[:2]], len(hold_out(rows, 0.1, 0)[1])
    ([936, 64], 100)
    >>> hold_out(rows[:300], None, 0)[2]
    '300 rows are too few to hold out 64 queries and still train on four in five: nothing is held out, and the run is judged by retrieval on up to 64 of its own rows, which tells a collapse from learning but not learning from memorising (--eval-split SHARE or --eval-data FILE hold rows out)'
    """
    n = len(rows)
    if eval_split is None:
        k = min(AUTO_MAX, max(AUTO_MIN, math.ceil(AUTO_SHARE * n)))
        if n - k < 4 * k:
            return rows, [], (f"{n} rows are too few to hold out {AUTO_MIN} queries and still train on four in five: "
                              f"nothing is held out, and the run is judged by retrieval on up to {AUTO_MIN} of its own rows, "
                              "which tells a collapse from learning but not learning from memorising (--eval-split "
                              "SHARE or --eval-data FILE hold rows out)")  # fmt: skip
    elif eval_split == 0:
        return rows, [], None
    else:
        k = max(1, int(n * eval_split))
    order = list(range(n))
    random.Random(seed).shuffle(order)
    chosen = set(order[:k])
    return (
        [r for i, r in enumerate(rows) if i not in chosen],
        [r for i, r in enumerate(rows) if i in chosen],
        None,
    )


def eval_every(held: list[Row], texts_per_step: int, collapse_steps: int) -> int:
    """Steps between evaluations, so that they cost about a tenth of training: one encodes each
    held-out query and passage once, a step encodes its texts and backpropagates (about three
    forward passes). Never more often than the snapshots (every ``collapse_steps``).

    >>> held = [Row(f"q{i}", [f"p{i}"], [f"n{i}-{k}" for k in range(3)]) for i in range(64)]  # 320 texts
    >>> eval_every(held, texts_per_step=8 * (1 + 4), collapse_steps=20)  # batch 8, group 4
    27
    """
    texts = len(held) + len({t for r in held for t in (*r.pos, *r.neg)})
    return max(collapse_steps, math.ceil(texts / (EVAL_BUDGET * 3 * texts_per_step)))


class Judge:
    """The held-out score through a run: at the start, at snapshots, at the end; the best kept.

    ``measure()`` scores the model as it is now; ``snapshot`` is the run's one snapshot (the one
    a recovery restores too): the starting weights, then each measured point that beats the best
    so far. A tie goes to the later, more trained weights (they lost nothing measurable), except
    against the starting weights once ``strict()`` says so (``lenprof train``: after a recovery):
    a run that collapsed and was put back where it began must show a gain to count as one.
    """

    def __init__(self, measure: Callable[[], Retrieval], snapshot: Snapshot, every: int, log: Callable[[str], None],
                 judged: str | None = None, strict: Callable[[], bool] = lambda: False):  # fmt: skip
        self.measure, self.snapshot, self.every, self.log = measure, snapshot, every, log
        self.judged = judged  # what the rows are, in words [f"{queries} held-out queries"]
        self.strict = strict
        self.base: Retrieval | None = None
        self.best: Retrieval | None = None
        self.last_eval = 0
        self.history: list[dict] = []  # every measurement: {"step", "recall@10", "mrr@10", ...}

    def start(
        self, step: int, model, files: Callable[[], dict] | None = None, base: dict | None = None
    ) -> Retrieval:
        """Score the starting weights (or take ``base``, a resumed run's saved score) and keep
        them: read back from ``files`` when given, else copied."""
        self.base = self.best = Retrieval(**_fields(base)) if base else self.measure()
        self.judged = self.judged or f"{self.base.queries} held-out queries"
        self.last_eval = step - 1
        if files is not None:
            self.snapshot.keep_files(step, files)
        else:
            self.snapshot.take(step, model, base=True)
        if not base:
            self.history.append({"step": 0, **self.base.to_dict()})
        return self.base

    def due(self, step: int) -> bool:
        return step - self.last_eval >= self.every

    def consider(self, step: int, model) -> None:
        """Score the weights that produced step ``step``'s loss; keep them if they are the best."""
        now = self.measure()
        self.last_eval = step
        self.history.append({"step": step, **now.to_dict()})
        assert self.best is not None
        if self._beats(now):
            self.snapshot.take(step, model)
            self.best = now
            self.log(f"lenprof: step {step}: held-out {now}, the best so far: kept")
        else:
            self.log(
                f"lenprof: step {step}: held-out {now}, no better than the best ({self.best}, {kept(self.snapshot)})"
            )

    def finish(self, step: int, model, stopped: bool) -> tuple[str, Retrieval]:
        """(the weights the run ends with, in words; their score). A stopped run already holds the
        snapshot; otherwise the end is measured and the snapshot restored if it scores better."""
        assert self.best is not None
        if not stopped:
            end = self.measure()
            self.history.append({"step": step, **end.to_dict()})
            if self._beats(end):
                return "trained", end
            self.log(f"lenprof: the last step's weights score {end} on the {self.judged}, no better than {self.best} "
                     f"({kept(self.snapshot)}): the run ends with those")  # fmt: skip
            self.snapshot.restore(model)
        return kept(self.snapshot), self.best

    def _beats(self, now: Retrieval) -> bool:
        assert self.best is not None
        tie_to_base = self.snapshot.base and self.strict()
        return now.score > self.best.score or (now.score == self.best.score and not tie_to_base)

    def failure(self, lr: float, collapsed: bool) -> str:
        """Why a run that ends with the starting weights did not succeed, and what to try: a run
        that collapsed needs a lower rate; one that did not, more training (or a lower rate, if
        its scores fell)."""
        trained = [h for h in self.history if h["step"] != 0]
        best = max(trained, key=lambda h: h["recall@10"] + h["mrr@10"], default=None)
        seen = (f"; the best trained weights measured (step {best['step']}) scored recall@10 "
                f"{best['recall@10']:.4f}, MRR@10 {best['mrr@10']:.4f}" if best else "")  # fmt: skip
        rate = f"{lower_lr(lr)}, warm up longer, clip gradients"
        fix = (f"{rate}" if collapsed else f"train longer or on more rows (and check that the held-out rows are "
               f"like the training rows); if the scores fell rather than stood still, {rate}")  # fmt: skip
        return (f"no trained weights scored better on the {self.judged} than the starting ones ({self.base}){seen}: "
                f"saved the starting weights. Try: {fix}")  # fmt: skip

    def state(self) -> dict:
        return {"base": self.base.to_dict() if self.base else None, "history": self.history}


def _fields(d: dict) -> dict:
    return {"recall": d["recall@10"], "mrr": d["mrr@10"], "queries": d["queries"], "corpus": d["corpus"]}
