"""What a worker says about what it found, beyond counts: a shard's longest texts, and the
details of its check examples (which text is over the model's limit and how long it is, which
texts a repair removed, how many negatives a training group lacks)."""

from __future__ import annotations

import numpy as np

from lenprof.engine.results import CheckedShard
from lenprof.io.jsontext import dumps
from lenprof.rows.checks import Checked
from lenprof.rows.fields import Fields
from lenprof.stats.scan_stats import HEAD_CHARS, LONGEST_PER_FIELD, TEXT_FIELDS, LongText


def longest_texts(
    f: str, st: CheckedShard, keep: np.ndarray, lengths: np.ndarray, present: np.ndarray, first_line: int
) -> list[LongText]:
    """The shard's longest distinct texts of field ``f`` in kept rows, ties in line order;
    ``present`` marks the distinct texts that field's kept rows hold."""
    distinct = lengths[present]
    if not len(distinct):
        return []
    k = min(LONGEST_PER_FIELD, len(distinct))
    floor = np.partition(distinct, len(distinct) - k)[len(distinct) - k]  # the k-th longest length
    idx, rows_of = st.text_idx[f], st.text_row[f]
    at = np.flatnonzero(keep[rows_of] & (lengths[idx] >= floor))  # few: the candidates, in row order
    out: list[LongText] = []
    seen: set[int] = set()
    for t in at[np.argsort(-lengths[idx[at]], kind="stable")].tolist():
        d = int(idx[t])
        if d in seen:
            continue
        seen.add(d)
        i = int(rows_of[t])
        row = st.rows[i]
        item = None if f == "query" else t - int(np.searchsorted(rows_of, i))
        text = row.query if item is None else (row.pos if f == "pos" else row.neg)[item]
        line = first_line + int(st.row_at[i])
        out.append(
            LongText(
                int(lengths[d]),
                st.input,
                st.path,
                line,
                item,
                len(text),
                text[:HEAD_CHARS],
                int(st.prints[d]),
            )
        )
        if len(out) == k:
            break
    return out


def removed_detail(row: Checked, reason: str, n: int) -> str:
    """The texts a repair removed, as read: ``2 removed: 'neg'[1] "foo", 'neg'[3] "bar"``."""
    texts = [f"'{key}'[{i}] {_preview(text)}" for why, key, i, text in row.removed if why == reason]
    return f"{n} removed: " + ", ".join(texts)


def _preview(text: str, chars: int = 60) -> str:
    """A text's start as a JSON string (escapes shown, so blank and control characters can be seen)."""
    return dumps(text[:chars]) + ("…" if len(text) > chars else "")


def warning_detail(
    reason: str,
    st: CheckedShard,
    i: int,
    lengths: np.ndarray,
    cap: int | None,
    fields: Fields,
    group: int | None,
) -> str:
    """What a warning found in row ``i``: the text over the cap and its length, or how many
    negatives a training group lacks."""
    if reason == "over_model_limit":
        n, f, k = max(
            (int(n), f, k)
            for f in TEXT_FIELDS
            for k, n in enumerate(lengths[st.text_idx[f][st.text_row[f] == i]].tolist())
        )
        key = getattr(fields, f)
        where = f"'{key}'" if f == "query" else f"'{key}'[{k}]"
        return f"{where} has {n:,} tokens; the model reads {cap:,}, the rest is cut"
    if reason == "few_negatives" and group is not None:
        have = int(st.negatives[i])
        return f"{have} negative{'s' * (have != 1)}; --train-group-size {group} samples {group - 1} per query, so some repeat"
    return reason.replace("_", " ")
