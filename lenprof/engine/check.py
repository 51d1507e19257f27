"""Step 1 of a worker's three: a shard read, every row checked and repaired, every distinct text
the trainer will see fingerprinted. Only fingerprints go to the driver (:meth:`CheckedShard.report`);
the rest waits for its decisions (``render.py``).
"""

from __future__ import annotations

import dataclasses
from collections import Counter
from itertools import chain

import numpy as np

from lenprof.engine.plan import WorkerSetup
from lenprof.engine.results import CheckedShard, file_order
from lenprof.hashing import fingerprints, row_fingerprints
from lenprof.io.files import BOM
from lenprof.io.records import Shard, records_of
from lenprof.rows.checks import Checked, Dropped, check_row, dedup_key
from lenprof.rows.options import ScanOptions
from lenprof.stats.scan_stats import TEXT_FIELDS


def check_shard(setup: WorkerSetup, shard: Shard) -> CheckedShard:
    """Step 1: read ``shard``, check and repair every row, and fingerprint the rows and the
    distinct texts the trainer will see (keyed with the run's key)."""
    opts = setup.options
    records = records_of(shard, opts.max_line_bytes, opts.line_head_bytes)
    drops: list[tuple[int, Dropped, object]] = []
    rows: list[Checked] = []
    row_at: list[int] = []
    raws: list[object] = []
    leaks: list[tuple[int, str, str]] = []  # (row, reason, detail) of rows holding test data
    tally: Counter = Counter()
    for r, outcome, record, leak in checked_rows(setup, shard, records, tally):
        if leak is not None:
            leaks.append((len(rows), *leak))
        if type(outcome) is Checked:
            rows.append(outcome)
            row_at.append(r)
            raws.append(record)
        else:
            drops.append((r, outcome, record))  # type: ignore[arg-type]

    if opts.query_instruction is None and all(c.prompt is None for c in rows):
        queries = [c.query for c in rows]  # the common case, without a call a row
    else:
        queries = [opts.query_text(c.query, c.prompt) for c in rows]
    pos = list(chain.from_iterable(c.pos for c in rows))
    neg = list(chain.from_iterable(c.neg for c in rows))
    if any(c.obj.get("type") in SYMMETRIC for c in rows):
        pos, neg = [_passages(opts, c, c.pos) for c in rows], [_passages(opts, c, c.neg) for c in rows]
        pos, neg = list(chain.from_iterable(pos)), list(chain.from_iterable(neg))
    elif opts.passage_instruction is not None:
        pos, neg = [opts.passage_text(t) for t in pos], [opts.passage_text(t) for t in neg]
    every = queries + pos + neg
    prints, first, inverse = np.unique(fingerprints(every, setup.key), return_index=True, return_inverse=True)
    n_rows = np.arange(len(rows))
    positives = np.fromiter(map(len, (c.pos for c in rows)), np.int64, len(rows))
    negatives = np.fromiter(map(len, (c.neg for c in rows)), np.int64, len(rows))
    bounds = np.cumsum([0, len(queries), len(pos), len(neg)])
    return CheckedShard(
        input=shard.input,
        path=shard.path,
        read=len(records) - tally["blank"] - tally["skipped"],
        blank=tally["blank"],
        drops=drops,
        rows=rows,
        row_at=np.array(row_at, dtype=np.int64),
        raws=raws,
        prints=prints,
        texts=(texts := [every[i] for i in first.tolist()]),
        seen=file_order(inverse, len(prints), positives, negatives),
        chars=np.fromiter(map(len, texts), np.int64, len(texts)),
        text_idx={f: inverse[bounds[i] : bounds[i + 1]] for i, f in enumerate(TEXT_FIELDS)},
        text_row={
            "query": n_rows,
            "pos": np.repeat(n_rows, positives),
            "neg": np.repeat(n_rows, negatives),
        },
        negatives=negatives,
        repaired=[i for i, c in enumerate(rows) if c.repairs],
        control=[i for i, c in enumerate(rows) if c.control_chars],
        leaks=leaks,
        lines=len(records),
        dedup=row_fingerprints(list(map(dedup_key, rows)), setup.key),
    )


def second_look(setup: WorkerSetup, shard: Shard, keys: np.ndarray) -> dict[int, int]:
    """A second look at a shard already checked: where in it (its line within the shard) a kept
    row with each of ``keys`` first appears. Read again only to name the earlier row of a
    duplicate_row example, so nothing of the first look is held for it."""
    wanted = set(keys.tolist())
    rows = [
        (r, c)
        for r, c, _, _ in checked_rows(
            setup, shard, records_of(shard, setup.options.max_line_bytes, setup.options.line_head_bytes)
        )
        if type(c) is Checked
    ]
    prints = row_fingerprints([dedup_key(c) for _, c in rows], setup.key).tolist()
    found: dict[int, int] = {}
    for (r, _), key in zip(rows, prints, strict=True):
        if key in wanted and key not in found:
            found[key] = r
    return found


def checked_rows(setup: WorkerSetup, shard: Shard, records: list, tally: Counter | None = None):
    """(line within the shard, fate, the row as read, test data it holds to warn about) of each
    record that is a row; ``tally`` counts the blank lines and the lines that are no row."""
    fields = setup.fields[shard.input]
    if shard.strings:
        fields = dataclasses.replace(fields, strings=True)
    against = setup.against
    rows = _fates(setup.options, records, shard.first, fields, tally)
    if against is None:
        yield from rows
        return
    rows = list(rows)  # the test data is looked up for the whole shard at once
    hits = against.check([outcome for _, outcome, _, _ in rows if type(outcome) is Checked])
    k = 0
    for r, outcome, record, _ in rows:
        leak = None
        if type(outcome) is Checked:
            leak, k = hits.get(k), k + 1
            if leak is not None and setup.drop_leaks:
                outcome, leak = Dropped("eval_leak", leak[1]), None
        yield r, outcome, record, leak


def _fates(opts: ScanOptions, records: list, first: bool, fields, tally: Counter | None):
    """(line within the shard, fate, the row as read, None) of each record that is a row."""
    min_neg, max_line, max_text = opts.min_neg, opts.max_line_bytes, opts.max_text_chars
    for r, record in enumerate(records):
        if type(record) is bytes:
            if r == 0 and first and record.startswith(BOM):
                record = record[len(BOM) :]
            if record.endswith(b"\r"):
                record = record[:-1]
            if not record.strip():
                if tally is not None:
                    tally["blank"] += 1
                continue
        elif record is None:  # a line that is no row (a CSV header, a cell's later lines)
            if tally is not None:
                tally["skipped"] += 1
            continue
        yield r, check_row(record, fields, min_neg, max_line, max_text), record, None


# FlagEmbedding's same-dataset mode, which alone reads a row's ``type``, formats the passages of
# these rows as queries, with the row's prompt (they are sentences compared with sentences)
SYMMETRIC = ("symmetric_sts", "symmetric_clustering")


def _passages(opts: ScanOptions, row: Checked, texts: list[str]) -> list[str]:
    if row.obj.get("type") in SYMMETRIC:
        return [opts.query_text(t, row.prompt) for t in texts]
    return [opts.passage_text(t) for t in texts]
