"""Step 1 of a worker's three: a shard read, every row checked and repaired, every distinct text
the trainer will see fingerprinted. Only fingerprints go to the driver (:meth:`CheckedShard.report`);
the rest waits for its decisions (``render.py``).
"""

from __future__ import annotations

import dataclasses
from itertools import chain, compress, repeat
from operator import attrgetter

import numpy as np

from lenprof.engine.plan import WorkerSetup
from lenprof.engine.results import CheckedShard, file_order
from lenprof.hashing import fingerprints, row_fingerprints, unique
from lenprof.io.records import Shard, records_of
from lenprof.rows.checks import Checked, dedup_key
from lenprof.rows.options import ScanOptions
from lenprof.rows.reasons import Dropped
from lenprof.rows.screen import Screened, screen
from lenprof.stats.scan_stats import TEXT_FIELDS


def check_shard(setup: WorkerSetup, shard: Shard) -> CheckedShard:
    """Step 1: read ``shard``, check and repair every row, and fingerprint the rows and the
    distinct texts the trainer will see (keyed with the run's key)."""
    opts = setup.options
    records = records_of(shard, opts.max_line_bytes, opts.line_head_bytes)
    fates, leaks = checked_rows(setup, shard, records)
    rows = fates.rows

    prompts = list(map(attrgetter("prompt"), rows))
    symmetric = any(map(SYMMETRIC.__contains__, map(dict.get, map(attrgetter("obj"), rows), repeat("type"))))
    plain = opts.query_instruction is None and prompts.count(None) == len(rows)
    plain = plain and not symmetric and opts.passage_instruction is None  # the texts as read
    positives = np.fromiter(map(len, map(attrgetter("pos"), rows)), np.int64, len(rows))
    negatives = np.fromiter(map(len, map(attrgetter("neg"), rows)), np.int64, len(rows))
    bounds = np.cumsum([0, len(rows), int(positives.sum()), int(negatives.sum())])
    if plain and fates.ids is not None:  # the screen fingerprinted them as read
        prints, texts, chars, first, inverse = _numbered(fates)
    else:
        every = _texts(opts, rows, plain)
        keyed = fingerprints(every, setup.key)
        prints, first, inverse = unique(keyed)
        texts = list(map(every.__getitem__, first.tolist()))
        chars = np.fromiter(map(len, texts), np.int64, len(texts))
    n_rows = np.arange(len(rows))
    return CheckedShard(
        input=shard.input,
        path=shard.path,
        read=len(records) - fates.blank - fates.skipped,
        blank=fates.blank,
        drops=fates.drops,
        rows=rows,
        row_at=np.array(fates.at, dtype=np.int64),
        raws=fates.raws,
        prints=prints,
        texts=texts,
        seen=file_order(inverse, len(prints), positives, negatives),
        chars=chars,
        text_idx={f: inverse[bounds[i] : bounds[i + 1]] for i, f in enumerate(TEXT_FIELDS)},
        text_row={
            "query": n_rows,
            "pos": np.repeat(n_rows, positives),
            "neg": np.repeat(n_rows, negatives),
        },
        negatives=negatives,
        repaired=list(compress(range(len(rows)), map(attrgetter("repairs"), rows))),
        control=list(compress(range(len(rows)), map(attrgetter("control_chars"), rows))),
        leaks=leaks,
        lines=len(records),
        dedup=fates.dedup
        if fates.dedup is not None
        else row_fingerprints(list(map(dedup_key, rows)), setup.key),
        watched=fates.watched,
    )


def _texts(opts: ScanOptions, rows: list[Checked], plain: bool) -> list[str]:
    """Every text of ``rows`` as the trainer sees it: every query, then every positive, then every
    negative (``plain``: as read, with no instruction or prompt)."""
    if plain:
        queries = list(map(attrgetter("query"), rows))  # the common case, without a call a row
    else:
        queries = [opts.query_text(c.query, c.prompt) for c in rows]
    pos = list(chain.from_iterable(map(attrgetter("pos"), rows)))
    neg = list(chain.from_iterable(map(attrgetter("neg"), rows)))
    if any(map(SYMMETRIC.__contains__, map(dict.get, map(attrgetter("obj"), rows), repeat("type")))):
        pos, neg = [_passages(opts, c, c.pos) for c in rows], [_passages(opts, c, c.neg) for c in rows]
        pos, neg = list(chain.from_iterable(pos)), list(chain.from_iterable(neg))
    elif opts.passage_instruction is not None:
        pos, neg = [opts.passage_text(t) for t in pos], [opts.passage_text(t) for t in neg]
    return queries + pos + neg


def _numbered(fates: Screened) -> tuple[np.ndarray, list[str], np.ndarray, np.ndarray, np.ndarray]:
    """``np.unique`` of the texts' fingerprints (sorted prints, each one's text, its characters
    and first place, each text's place among them), from the screen's: of its distinct texts,
    those the kept rows hold."""
    ids, distinct, keyed, lengths = fates.ids, fates.distinct, fates.prints, fates.lengths
    assert ids is not None and keyed is not None and lengths is not None
    used = np.flatnonzero(np.bincount(ids, minlength=len(distinct)))  # sorted by print, as keyed
    first = np.empty(len(distinct), dtype=np.int64)
    first[ids[::-1]] = np.arange(len(ids) - 1, -1, -1)  # the last write wins: each one's first place
    place = np.empty(len(distinct), dtype=np.int64)
    place[used] = np.arange(len(used))
    texts = distinct if len(used) == len(distinct) else list(map(distinct.__getitem__, used.tolist()))
    return keyed[used], texts, lengths[used], first[used], place[ids]


def second_look(setup: WorkerSetup, shard: Shard, keys: np.ndarray) -> dict[int, int]:
    """A second look at a shard already checked: where in it (its line within the shard) a kept
    row with each of ``keys`` first appears. Read again only to name the earlier row of a
    duplicate_row example, so nothing of the first look is held for it."""
    wanted = set(keys.tolist())
    opts = setup.options
    fates, _ = checked_rows(setup, shard, records_of(shard, opts.max_line_bytes, opts.line_head_bytes))
    prints = (
        fates.dedup
        if fates.dedup is not None
        else row_fingerprints(list(map(dedup_key, fates.rows)), setup.key)
    )
    found: dict[int, int] = {}
    for r, key in zip(fates.at, prints.tolist(), strict=True):
        if key in wanted and key not in found:
            found[key] = r
    return found


def checked_rows(
    setup: WorkerSetup, shard: Shard, records: list
) -> tuple[Screened, list[tuple[int, str, str]]]:
    """The fates of a shard's records (``rows.screen``), with the ``--against`` test data its kept
    rows hold: (row, reason, detail) to warn about, or, with ``--drop-leaks``, the row dropped."""
    fields = setup.fields[shard.input]
    if shard.strings:
        fields = dataclasses.replace(fields, strings=True)
    opts = setup.options
    replaced = setup.score is not None and setup.score.add_scores  # the rows' own scores are not kept
    fates = screen(
        records,
        fields,
        setup.key,
        opts.min_neg,
        opts.max_line_bytes,
        opts.max_text_chars,
        shard.first,
        not replaced,
    )
    against = setup.against
    if against is None:
        return fates, []
    hits = against.check(fates.rows)  # the test data is looked up for the whole shard at once
    if not setup.drop_leaks:
        return fates, [(k, *hits[k]) for k in sorted(hits)]
    if hits:
        gone = [(fates.at[k], Dropped("eval_leak", hits[k][1]), fates.raws[k]) for k in sorted(hits)]
        stay = [k for k in range(len(fates.rows)) if k not in hits]
        fates = dataclasses.replace(
            fates,
            rows=[fates.rows[k] for k in stay],
            at=[fates.at[k] for k in stay],
            raws=[fates.raws[k] for k in stay],
            drops=sorted(fates.drops + gone, key=lambda d: d[0]),
            prints=None,
            dedup=None,
            watched=fates.watched[stay] if fates.watched is not None else None,
        )
    return fates, []


# FlagEmbedding's same-dataset mode, which alone reads a row's ``type``, formats the passages of
# these rows as queries, with the row's prompt (they are sentences compared with sentences)
SYMMETRIC = ("symmetric_sts", "symmetric_clustering")


def _passages(opts: ScanOptions, row: Checked, texts: list[str]) -> list[str]:
    if row.obj.get("type") in SYMMETRIC:
        return [opts.query_text(t, row.prompt) for t in texts]
    return [opts.passage_text(t) for t in texts]
