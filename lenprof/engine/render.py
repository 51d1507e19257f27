"""Step 3 of a worker's three: a checked shard, given the driver's decisions (which rows are
duplicates, where its lines start, every distinct text's length), counted and rendered: its
stats, cleaned rows, rejects and bucket rows, as bytes in line order."""

from __future__ import annotations

import copy
import heapq
from collections import Counter
from itertools import chain

import numpy as np

from lenprof.engine.findings import longest_texts, removed_detail, warning_detail
from lenprof.engine.plan import WorkerSetup
from lenprof.engine.results import CheckedShard, ShardResult
from lenprof.engine.scoring import score_shard
from lenprof.hashing import distinct
from lenprof.io.columns import ColumnKinds
from lenprof.io.jsontext import dumps
from lenprof.io.sinks import reject_record
from lenprof.rows.checks import WATCHED_KEYS, Checked, length_warnings
from lenprof.rows.cleaned import flagembedding_row, input_row
from lenprof.rows.reasons import DUPLICATE_ROW
from lenprof.stats.scan_stats import TEXT_FIELDS, InputCount, InputStats, KeyPresence, ScanStats


def render(
    setup: WorkerSetup,
    st: CheckedShard,
    index: int,
    keep: np.ndarray,
    first_line: int,
    lengths: np.ndarray,
    vectors: np.ndarray | None = None,
) -> ShardResult:
    """Step 3: count the shard into :class:`ScanStats` and render its cleaned rows, rejects and
    bucket rows as bytes, in line order, given the driver's decisions: ``keep`` marks the rows
    that are no duplicate of an earlier one, ``first_line`` is the shard's first line number in
    its input, ``lengths`` the token count of each distinct text by each tokenizer, ``vectors``
    (``scan --model``) its embedding by the base model (see ``scoring.py``)."""
    opts = setup.options
    tokenizers = 1 + len(setup.others)
    stats = ScanStats(read=st.read, inputs={st.input: InputCount(st.read, st.blank)})
    result = ShardResult(index, stats)

    duplicates = [(int(st.row_at[i]), DUPLICATE_ROW, st.raws[i]) for i in np.flatnonzero(~keep).tolist()]
    scored = None
    if vectors is not None and setup.score is not None:
        scored = score_shard(setup.score, st, keep, vectors, setup.fields[st.input], opts.min_neg)
        st, result.groups = scored.st, scored.groups
        if scored.lost:
            keep = keep.copy()
            keep[[i for i, _ in scored.lost]] = False
    lost = [(int(st.row_at[i]), why, st.raws[i]) for i, why in (scored.lost if scored else [])]
    rejects = []
    for r, why, raw in heapq.merge(st.drops, duplicates, lost, key=lambda d: d[0]):
        stats.dropped[why.reason] += 1
        stats.example(why.reason, st.path, first_line + r, why.detail)
        if setup.rejects:
            rejects.append(
                reject_record(st.path, first_line + r, why.reason, why.detail, raw, opts.raw_limit)
            )
    result.rejects = "".join(rejects).encode("utf-8", "backslashreplace")  # a path may hold any bytes

    everyone = bool(keep.all())
    kept_idx = np.flatnonzero(keep)
    kept = st.rows if everyone else [st.rows[i] for i in kept_idx.tolist()]
    for i in st.repaired:
        if keep[i]:
            line = first_line + int(st.row_at[i])
            for reason, n in st.rows[i].repairs.items():
                stats.repaired[reason] += n
                stats.repaired_rows[reason] += 1
                stats.example(reason, st.path, line, removed_detail(st.rows[i], reason, n))

    for i, reason, detail in chain(st.leaks, scored.warnings if scored else ()):
        if keep[i]:
            stats.warnings[reason] += 1
            stats.example(reason, st.path, first_line + int(st.row_at[i]), detail)
    stats.presence[st.input] = _presence(st.watched[kept_idx], first_line + st.row_at[kept_idx])

    texts = _kept_texts(st, keep)
    result.fields = _fields_bits([present for _, present in texts.values()])
    base = copy.deepcopy(stats) if tokenizers > 1 else None
    lengths = lengths.astype(np.int64).reshape(tokenizers, -1)  # (tokenizers, distinct texts)
    row_max = _count(setup, stats, st, keep, texts, lengths[0], setup.cap, first_line)
    for k, cap in enumerate(setup.other_caps(), start=1):  # the same rows, other tokenizers' lengths
        other = copy.deepcopy(base)
        _count(setup, other, st, keep, texts, lengths[k], cap, first_line)  # type: ignore[arg-type]
        result.others.append(other)  # type: ignore[arg-type]
    row_max = row_max if everyone else row_max[kept_idx]

    if setup.clean:
        objs = list(map(input_row if setup.clean_format == "input" else flagembedding_row, kept))
        result.clean = "".join([dumps(o) + "\n" for o in objs]).encode("utf-8")
        result.keys = Counter(chain.from_iterable(objs))
        if setup.clean_parquet[st.input]:
            result.kinds = ColumnKinds.of(objs)
    if setup.buckets is not None:
        result.buckets = _buckets(setup, kept, row_max)
    return result


def _count(
    setup: WorkerSetup,
    stats: ScanStats,
    st: CheckedShard,
    keep: np.ndarray,
    texts: dict[str, tuple[np.ndarray, np.ndarray]],
    lengths: np.ndarray,
    cap: int | None,
    first_line: int,
) -> np.ndarray:
    """Count the kept texts' lengths into ``stats`` (``texts``: see ``_kept_texts``), with
    the warnings that need lengths; returns each row's longest text."""
    row_max = np.zeros(len(st.rows), dtype=np.int64)
    for f in TEXT_FIELDS:
        np.maximum.at(row_max, st.text_row[f], lengths[st.text_idx[f]])
        chosen, present = texts[f]
        stats.hists[f].add(lengths[chosen])
        stats.chars[f] += int(st.chars[chosen].sum())
        stats.longest[f] = longest_texts(f, st, keep, lengths, present, first_line)
    stats.hists["passage"] = stats.hists["pos"] + stats.hists["neg"]
    stats.by_input = {
        st.path: InputStats(st.read, Counter(stats.dropped), {f: stats.hists[f] for f in TEXT_FIELDS})
    }

    warned = length_warnings(row_max, st.negatives, cap, setup.options.train_group_size)
    control = np.zeros(len(st.rows), dtype=bool)
    control[st.control] = True
    warned["control_chars"] = control
    for reason in sorted(warned):
        hits = np.flatnonzero(warned[reason] & keep)
        if len(hits):
            stats.warnings[reason] += len(hits)
            for i in hits[:5].tolist():
                detail = warning_detail(
                    reason,
                    st,
                    i,
                    lengths,
                    cap,
                    setup.fields[st.input],
                    setup.options.train_group_size,
                )
                stats.example(reason, st.path, first_line + int(st.row_at[i]), detail)
    return row_max


def _buckets(
    setup: WorkerSetup, kept: list[Checked], row_max: np.ndarray
) -> dict[int, tuple[bytes, int, int, Counter[str]]]:
    spec = setup.buckets
    assert spec is not None
    of_row = spec.bucket_of(row_max)
    out = {}
    for bucket in distinct(of_row).tolist():
        chosen = np.flatnonzero(of_row == bucket)
        size = spec.batch_size(bucket, setup.cap)
        objs = [input_row(kept[i]) if size is None else {**input_row(kept[i]), "batch_size": size} for i in chosen.tolist()]  # fmt: skip
        lines = [dumps(o) + "\n" for o in objs]
        keys = Counter(chain.from_iterable(objs))
        out[bucket] = ("".join(lines).encode("utf-8"), len(chosen), int(row_max[chosen].max()), keys)
    return out


def _kept_texts(st: CheckedShard, keep: np.ndarray) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """Per text field, the texts of kept rows: each one's distinct index (repeats kept), and a
    mask of the distinct texts among them. The same for every tokenizer."""
    everyone = bool(keep.all())
    out = {}
    for f in TEXT_FIELDS:
        idx = st.text_idx[f]
        chosen = idx if everyone else idx[keep[st.text_row[f]]]
        present = np.zeros(len(st.prints), dtype=bool)
        present[chosen] = True
        out[f] = chosen, present
    return out


def _fields_bits(present: list[np.ndarray]) -> np.ndarray:
    """For each distinct text of the shard, a bit per text field (``TEXT_FIELDS`` order) whose
    kept rows hold it: the driver counts the corpus's distinct texts per field from these."""
    bits = np.zeros(len(present[0]), dtype=np.uint8)
    for i, mask in enumerate(present):
        bits[mask] |= np.uint8(1 << i)
    return bits


def _presence(flags: np.ndarray, lines: np.ndarray) -> KeyPresence:
    """Which kept rows carry each of FlagEmbedding's optional keys (see rows.checks.WATCHED_KEYS):
    ``flags`` of the kept rows, at ``lines``."""
    presence = KeyPresence(rows=len(flags))
    for k, key in enumerate(WATCHED_KEYS):
        have = int(flags[:, k].sum())
        presence.have[key] = have
        if have < len(flags):
            presence.lacking[key] = lines[~flags[:, k]][:5].tolist()
    return presence
