"""The base model's view of a shard's kept rows (``scan --model``, issue 25), the first part of
step 3: each row scored from its texts' embeddings (made once per distinct text by the shard that
owns it, in step 2, and passed here by the driver as lengths are), its suspected false negatives
and whether it is too easy flagged; with ``--drop-false-negatives`` the flagged negatives are
removed (a repair) and a row left with fewer than ``--min-neg`` is dropped with its reason; with
``--add-scores`` each kept text's cosine is written as ``pos_scores``/``neg_scores``.

The shard comes back as the rest of step 3 counts it: removed negatives are no longer among its
texts, so the lengths profiled are those of the rows written.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field

import numpy as np

from lenprof.engine.results import CheckedShard
from lenprof.rows.checks import WATCHED_KEYS, Checked, Dropped, keep_columns, keep_items
from lenprof.rows.fields import Fields
from lenprof.score.options import DEFAULT_GROUP_SIZE, ScoreOptions
from lenprof.score.rows import RowScores, score_row

SCORE_DIGITS = 6  # a written score's decimals: far inside the 1e-3 that distillation needs


@dataclass
class Scored:
    """A shard after scoring: the rows as they will be written, the rows dropped for too few
    negatives left, the warnings found, and each kept row's texts (for the forecast)."""

    st: CheckedShard
    lost: list[tuple[int, Dropped]] = field(default_factory=list)  # (row, why), in row order
    warnings: list[tuple[int, str, str]] = field(default_factory=list)  # (row, reason, detail)
    groups: list[tuple[int, list[int], list[int]]] = field(default_factory=list)  # kept rows' texts


def score_shard(
    opts: ScoreOptions, st: CheckedShard, keep: np.ndarray, vectors: np.ndarray, fields: Fields, min_neg: int
) -> Scored:
    """Score every row ``keep`` marks; ``vectors`` holds each distinct text's embedding (``st.prints``
    order), ``fields`` the input's columns (where a removed negative is taken from)."""
    pos_at = np.concatenate([[0], np.cumsum([len(c.pos) for c in st.rows])])
    neg_at = np.concatenate([[0], np.cumsum(st.negatives)])
    q_idx, p_idx, n_idx = (st.text_idx[f] for f in ("query", "pos", "neg"))
    out = Scored(st)
    rows = list(st.rows)
    neg_kept = np.ones(len(n_idx), dtype=bool)
    repaired = set(st.repaired)
    for i in np.flatnonzero(keep).tolist():
        qi, pi, ni = int(q_idx[i]), p_idx[pos_at[i] : pos_at[i + 1]], n_idx[neg_at[i] : neg_at[i + 1]]
        s = score_row(vectors[qi], vectors[pi], vectors[ni], opts.fn_ratio, opts.dup_cosine, opts.temperature)
        row = rows[i]
        gone = s.false_negatives if opts.drop_false_negatives else []
        stay = [k for k in range(len(s.neg)) if k not in set(gone)]  # the negatives written
        # the row the trainer reads has lost its false negatives: it is that row that may be too easy
        easy = s.keeping(stay, opts.temperature) if gone else s
        if easy.too_easy:
            out.warnings.append((i, "too_easy", _easy_detail(easy, opts.temperature)))
        if s.false_negatives and not gone:
            out.warnings.append((i, "false_negative", _fn_detail(s, fields, opts)))
        if gone:
            row = _without(row, gone, stay, fields)
            neg_kept[neg_at[i] + np.array(gone)] = False
            repaired.add(i)
        if opts.add_scores:
            row = _with_scores(row, s.pos, [s.neg[k] for k in stay])
        rows[i] = row
        if len(stay) < min_neg:
            why = f"{len(stay)} of {len(s.neg)} negatives left after removing suspected false negatives"
            out.lost.append((i, Dropped("no_negatives", f"{why}; need at least {min_neg} (--min-neg)")))
        else:
            out.groups.append((qi, pi.tolist(), ni[stay].tolist()))
    changes: dict = {"rows": rows}
    if opts.add_scores and st.watched is not None:  # the rows written carry scores now
        changes["watched"] = st.watched.copy()
        changes["watched"][keep, WATCHED_KEYS.index("scores")] = True
    if not neg_kept.all():
        changes["negatives"] = np.array([len(c.neg) for c in rows], dtype=np.int64)
        changes["text_idx"] = {**st.text_idx, "neg": n_idx[neg_kept]}
        changes["text_row"] = {**st.text_row, "neg": st.text_row["neg"][neg_kept]}
        changes["repaired"] = sorted(repaired)
    out.st = dataclasses.replace(st, **changes)
    return out


def _without(row: Checked, gone: list[int], keep: list[int], fields: Fields) -> Checked:
    """``row`` with its negatives at ``gone`` removed, those at ``keep`` left (their scores too),
    as a repair."""
    obj = dict(row.obj)
    if fields.neg_columns:
        keep_columns(obj, fields.neg_columns, [row.neg[k] for k in keep])
    else:
        keep_items(obj, fields.neg, "neg_scores", keep, len(row.neg))
    removed = tuple(("false_negative_removed", fields.neg, k, row.neg[k]) for k in gone)
    repairs = {**row.repairs, "false_negative_removed": len(gone)}
    return dataclasses.replace(
        row, obj=obj, neg=[row.neg[k] for k in keep], repairs=repairs, removed=row.removed + removed
    )


def _with_scores(row: Checked, pos: list[float], neg: list[float]) -> Checked:
    obj = dict(row.obj)
    obj["pos_scores"] = [round(x, SCORE_DIGITS) for x in pos]
    obj["neg_scores"] = [round(x, SCORE_DIGITS) for x in neg]
    return dataclasses.replace(row, obj=obj)


def _easy_detail(s: RowScores, temperature: float) -> str:
    hardest = f", its hardest negative {max(s.neg):.3f}" if s.neg else ", no negative"
    return f"loss {s.loss:.1e} at temperature {temperature:g}: the positive scores {max(s.pos):.3f}{hardest}"


def _fn_detail(s: RowScores, fields: Fields, opts: ScoreOptions) -> str:
    top = max(s.pos)
    flagged = ", ".join(f"'{fields.neg}'[{k}] scores {s.neg[k]:.3f}" for k in s.false_negatives[:3])
    more = f" and {len(s.false_negatives) - 3} more" if len(s.false_negatives) > 3 else ""
    return (
        f"{flagged}{more}, against the positive's {top:.3f} (at or above {opts.fn_ratio:g}x, or a near copy "
        f"of a positive at cosine >= {opts.dup_cosine:g}): --drop-false-negatives removes them"
    )


def summary(opts: ScoreOptions, group_size: int | None, totals) -> dict:
    """The profile's ``scoring`` section: the model and the rules' settings, what they found, and
    the zero-loss forecast over the kept rows (``score/forecast.py``), with what to do about it."""
    from lenprof.rows.groups import Row  # only with --model: no scan pays these imports
    from lenprof.score.encoder import pooling_of
    from lenprof.score.forecast import forecast

    group = group_size or DEFAULT_GROUP_SIZE
    vectors, stats = totals.vectors, totals.stats
    rows = [Row(str(q), [str(p) for p in pos], [str(n) for n in neg]) for q, pos, neg in totals.groups]
    kept = len(rows)
    out = {
        **opts.to_dict(),
        "pooling": pooling_of(opts.model),
        "train_group_size": group,
        "texts_truncated": totals.truncated,
    }
    if vectors is None or not rows:
        return out
    result = forecast(
        rows,
        lambda keys: vectors[[int(k) for k in keys]],
        opts.batch_size,
        group,
        opts.temperature,
        steps=opts.steps,
        seed=opts.seed,
    )
    easy = stats.warnings.get("too_easy", 0)
    flagged = stats.warnings.get("false_negative", 0) + stats.repaired_rows.get("false_negative_removed", 0)
    out["forecast"] = {
        "batches": len(result.losses),
        "zero_share": round(result.zero_share, 4),
        "loss": {k: round(v, 6) for k, v in result.quantiles().items()},
        "advice": advice(
            result.zero_share if result.losses else None, easy, kept, flagged, opts.drop_false_negatives
        ),
    }
    return out


def advice(zero_share: float | None, easy: int, kept: int, flagged: int, dropped: bool) -> list[str]:
    """What to do about what the model sees, most pressing first; ``zero_share`` is None when
    the forecast drew no batch (fewer rows than one), and then says nothing of batches.

    >>> advice(0.4, 820, 1000, 312, False)[:1]
    ['82% of rows are too easy for this model: mine harder negatives (40% of the first batches would log a loss of 0.0)']
    >>> advice(None, 2, 5, 0, False)
    ['40% of rows are too easy for this model: mine harder negatives']
    """
    out = []
    if kept and easy / kept >= 0.1:
        said = (
            ""
            if zero_share is None
            else f" ({100 * zero_share:.0f}% of the first batches would log a loss of 0.0)"
        )
        out.append(
            f"{100 * easy / kept:.0f}% of rows are too easy for this model: mine harder negatives{said}"
        )
    elif zero_share:
        out.append(
            f"{100 * zero_share:.0f}% of the first batches would log a loss of 0.0: an easy batch now and "
            "then is normal; a run of them after these steps is a collapse (lenprof diagnose)"
        )
    if flagged and not dropped:
        out.append(f"drop the suspected false negatives of {flagged} rows: --drop-false-negatives")
    return out
