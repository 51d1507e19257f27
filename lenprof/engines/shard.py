"""What a worker does with one shard, in three calls, so that every row-level step runs in
parallel while the decisions that need the whole corpus are made once, in corpus order:

1. ``check``: read the shard, check and repair every row, fingerprint the rows and the distinct
   texts the trainer will see; report only fingerprints (8 bytes each) to the driver;
2. ``measure``: count the tokens of the distinct texts the driver says no earlier shard owns
   (so each distinct text of the corpus is tokenized once);
3. ``finish``: given which rows are duplicates of earlier ones, where the shard's lines start,
   and the length of every distinct text, count everything into :class:`ScanStats` and render
   the shard's cleaned rows, rejects and bucket rows as bytes, in line order.

Between calls the worker keeps the checked rows of the shard; nothing else is kept.
"""

from __future__ import annotations

import copy
import dataclasses
import heapq
import time
from collections import Counter
from dataclasses import dataclass, field
from itertools import chain

import numpy as np

from ..checks import (
    DUPLICATE_ROW,
    WATCHED_KEYS,
    Checked,
    Dropped,
    check_row,
    dedup_key,
    length_warnings,
    watched_keys,
)
from ..cleaned import flagembedding_row
from ..columns import ColumnKinds
from ..fastcount import FastCounter, count_together, share_caches
from ..fingerprints import fingerprints
from ..inputs import BOM, file_blocks, iter_lines
from ..jsontext import dumps
from ..options import ScanOptions
from ..outputs import reject_record
from ..stats import (
    TEXT_FIELDS,
    InputCount,
    InputStats,
    KeyPresence,
    ScanStats,
)
from .findings import longest_texts, removed_detail, warning_detail
from .plan import Shard, WorkerSetup


@dataclass
class CheckReport:
    index: int
    lines: int  # physical lines (JSONL) or rows (Parquet): where the next shard of the input starts
    dedup: np.ndarray  # uint64: duplicate-detection key of each row that passed the row checks
    texts: np.ndarray  # uint64: each distinct text of those rows, as the trainer sees it


@dataclass
class Measured:
    index: int
    lengths: np.ndarray  # uint32, (tokenizers, texts asked for)
    seconds: float
    fast: list[int]  # per tokenizer: of them counted through the piece caches
    checked: list[int]  # of those, counted by the full tokenizer too
    mismatch: str | None  # why the fast path stopped, if its self-check failed


@dataclass
class ShardResult:
    index: int
    stats: ScanStats
    clean: bytes = b""  # kept rows as JSON lines
    keys: Counter[str] = field(default_factory=Counter)  # of the kept rows: how many hold each key
    kinds: ColumnKinds | None = None  # of the kept rows' values, for a Parquet clean output
    rejects: bytes = b""
    buckets: dict[int, tuple[bytes, int, int]] = field(
        default_factory=dict
    )  # bucket -> (lines, rows, longest)
    others: list[ScanStats] = field(default_factory=list)  # the same rows counted by each other tokenizer
    fields: np.ndarray = field(default_factory=lambda: np.zeros(0, np.uint8))  # see ``finish``


@dataclass
class _Checked:
    """A checked shard waiting for the driver's decisions."""

    input: int
    path: str
    read: int
    blank: int
    drops: list[tuple[int, Dropped, object]]  # (line within the shard, why, the row as read)
    rows: list[Checked]
    row_at: np.ndarray  # line within the shard of each row
    raws: list[object]  # each row as read (for a duplicate's reject)
    prints: np.ndarray  # distinct texts' fingerprints, sorted
    texts: list[str] | None  # distinct texts, in ``prints`` order, until measured
    seen: np.ndarray  # each distinct text's first place in the shard, row by row (see ``file_order``)
    chars: np.ndarray  # characters of each distinct text
    text_idx: dict[str, np.ndarray]  # per field: each text's distinct index
    text_row: dict[str, np.ndarray]  # per field: each text's row
    negatives: np.ndarray  # of each row
    repaired: list[int]  # rows with a repair
    control: list[int]  # rows with control characters
    leaks: list[tuple[int, str, str]]  # rows holding --against test data: (row, reason, detail)


def file_order(
    inverse: np.ndarray, distinct: int, positives: np.ndarray, negatives: np.ndarray
) -> np.ndarray:
    """Each distinct text's first place in the shard as a reader meets them, row by row (query,
    positives, negatives), from ``inverse``: the distinct text of each of the shard's texts laid
    out field by field (every query, then every positive, then every negative).

        >>> # rows: ("a", ["b"], ["a"]), ("c", [], ["b"]): laid out a c | b | a b
        >>> file_order(np.array([0, 2, 1, 0, 1]), 3, np.array([1, 0]), np.array([1, 1])).tolist()
        [0, 1, 3]
    """
    start = np.cumsum(1 + positives + negatives) - (1 + positives + negatives)  # each row's first place

    def within(counts: np.ndarray) -> np.ndarray:  # each item's place among its row's items
        return np.arange(int(counts.sum())) - np.repeat(np.cumsum(counts) - counts, counts)

    place = np.concatenate(
        [
            start,
            np.repeat(start + 1, positives) + within(positives),
            np.repeat(start + 1 + positives, negatives) + within(negatives),
        ]
    )
    seen = np.full(distinct, place.max(initial=0) + 1, dtype=np.int64)
    np.minimum.at(seen, inverse, place)
    return seen


def records_of(shard: Shard, opts: ScanOptions) -> list:
    """A shard's records, one per physical line (JSON lines) or row: see ``readers/``."""
    if shard.rows is not None:
        return shard.rows.to_pylist()
    if shard.lines is not None:
        return shard.lines
    blocks = file_blocks(shard.path, shard.start, shard.end)
    return [line for part in iter_lines(blocks, opts.max_line_bytes, opts.line_head_bytes) for line in part]


class ShardWork:
    def __init__(self, setup: WorkerSetup):
        from tokenizers import Tokenizer

        self.setup = setup
        self.options = setup.options
        self.counters = []  # the scan's tokenizer first, then those compared with it
        for tokenizer_json, encode_special_tokens in setup.tokenizers():
            backend = Tokenizer.from_str(tokenizer_json)
            backend.encode_special_tokens = encode_special_tokens
            self.counters.append(FastCounter(backend, exact_only=setup.exact_only, key=setup.key))
        share_caches(self.counters)
        self.backend, self.counter = self.counters[0].backend, self.counters[0]
        self._open: dict[int, _Checked] = {}

    # --- 1. check ----------------------------------------------------------------------------------

    def _records(self, shard: Shard) -> list:
        return records_of(shard, self.options)

    def _checked(self, shard: Shard, records: list, tally: Counter | None = None):
        """(line within the shard, fate, the row as read, test data it holds to warn about) of each
        record that is a row; ``tally`` counts the blank lines and the lines that are no row."""
        fields = self.setup.fields[shard.input]
        if shard.strings:
            fields = dataclasses.replace(fields, strings=True)
        against = self.setup.against
        rows = self._fates(records, shard.first, fields, tally)
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
                if leak is not None and self.setup.drop_leaks:
                    outcome, leak = Dropped("eval_leak", leak[1]), None
            yield r, outcome, record, leak

    def _fates(self, records: list, first: bool, fields, tally: Counter | None):
        """(line within the shard, fate, the row as read, None) of each record that is a row."""
        opts = self.options
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

    @staticmethod
    def string_hash(text: str) -> int:
        """This worker's hash of ``text``: a run's workers must agree (see ``fingerprints.py``)."""
        return hash(text)

    def check(self, index: int, shard: Shard) -> CheckReport:
        opts = self.options
        records = self._records(shard)
        drops: list[tuple[int, Dropped, object]] = []
        rows: list[Checked] = []
        row_at: list[int] = []
        raws: list[object] = []
        leaks: list[tuple[int, str, str]] = []  # (row, reason, detail) of rows holding test data
        tally: Counter = Counter()
        for r, outcome, record, leak in self._checked(shard, records, tally):
            if leak is not None:
                leaks.append((len(rows), *leak))
            if type(outcome) is Checked:
                rows.append(outcome)
                row_at.append(r)
                raws.append(record)
            else:
                drops.append((r, outcome, record))  # type: ignore[arg-type]

        if opts.query_instruction is None:
            queries = [c.query for c in rows]
        else:
            queries = [opts.query_text(c.query, c.prompt) for c in rows]
        pos = list(chain.from_iterable(c.pos for c in rows))
        neg = list(chain.from_iterable(c.neg for c in rows))
        if opts.passage_instruction is not None:
            pos, neg = [opts.passage_text(t) for t in pos], [opts.passage_text(t) for t in neg]
        every = queries + pos + neg
        prints, first, inverse = np.unique(fingerprints(every), return_index=True, return_inverse=True)
        n_rows = np.arange(len(rows))
        positives = np.fromiter(map(len, (c.pos for c in rows)), np.int64, len(rows))
        negatives = np.fromiter(map(len, (c.neg for c in rows)), np.int64, len(rows))
        bounds = np.cumsum([0, len(queries), len(pos), len(neg)])
        self._open[index] = _Checked(
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
        )
        return CheckReport(index, len(records), fingerprints(map(dedup_key, rows)), prints)

    def locate(self, index: int, shard: Shard, keys: np.ndarray) -> tuple[int, dict[int, int]]:
        """Where in ``shard`` (its line within the shard) a kept row with each duplicate key
        first appears: read again only to name the earlier row of a duplicate_row example."""
        wanted = set(keys.tolist())
        rows = [(r, c) for r, c, _, _ in self._checked(shard, self._records(shard)) if type(c) is Checked]
        prints = fingerprints([dedup_key(c) for _, c in rows]).tolist()
        found: dict[int, int] = {}
        for (r, _), key in zip(rows, prints, strict=True):
            if key in wanted and key not in found:
                found[key] = r
        return index, found

    # --- 2. measure --------------------------------------------------------------------------------

    def measure(self, index: int, need: np.ndarray, at: int) -> Measured:
        """Token counts of the shard's distinct texts at positions ``need``, by each tokenizer
        (the texts are cut into pieces once for all of them); the run counted ``at`` distinct
        texts before these (its first ones are all checked: see ``fastcount``)."""
        texts, seen = self._open[index].texts, self._open[index].seen
        assert texts is not None, "measure() twice for one shard"
        order = np.argsort(seen[need], kind="stable")  # counted in the file's order
        batch = [texts[i] for i in need[order].tolist()]
        start = time.perf_counter()
        before = [(c.fast, c.checked) for c in self.counters]
        lengths = np.empty((len(self.counters), len(batch)), dtype=np.int64)
        lengths[:, order] = count_together(self.counters, batch, at)
        self._open[index].texts = None
        return Measured(
            index,
            lengths.astype(np.uint32),
            time.perf_counter() - start,
            [c.fast - f for c, (f, _) in zip(self.counters, before, strict=True)],
            [c.checked - k for c, (_, k) in zip(self.counters, before, strict=True)],
            next((c.mismatch for c in self.counters if c.mismatch is not None), None),
        )

    # --- 3. finish ---------------------------------------------------------------------------------

    def finish(self, index: int, keep: np.ndarray, first_line: int, lengths: np.ndarray) -> ShardResult:
        """Count and render the shard; ``keep`` marks rows that are no duplicate of an earlier
        one, ``lengths`` holds the token count of each distinct text."""
        st = self._open.pop(index)
        opts, setup = self.options, self.setup
        stats = ScanStats(read=st.read, inputs={st.input: InputCount(st.read, st.blank)})
        result = ShardResult(index, stats)

        duplicates = [(int(st.row_at[i]), DUPLICATE_ROW, st.raws[i]) for i in np.flatnonzero(~keep).tolist()]
        rejects = []
        for r, why, raw in heapq.merge(st.drops, duplicates, key=lambda d: d[0]):
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

        for i, reason, detail in st.leaks:
            if keep[i]:
                stats.warnings[reason] += 1
                stats.example(reason, st.path, first_line + int(st.row_at[i]), detail)
        stats.presence[st.input] = _presence(kept, first_line + st.row_at[kept_idx])

        texts = _kept_texts(st, keep)
        result.fields = _fields_bits([present for _, present in texts.values()])
        base = copy.deepcopy(stats) if len(self.counters) > 1 else None
        lengths = lengths.astype(np.int64).reshape(len(self.counters), -1)  # (tokenizers, distinct texts)
        row_max = self._count(stats, st, keep, texts, lengths[0], setup.cap, first_line)
        for k, cap in enumerate(setup.other_caps(), start=1):  # the same rows, other tokenizers' lengths
            other = copy.deepcopy(base)
            self._count(other, st, keep, texts, lengths[k], cap, first_line)  # type: ignore[arg-type]
            result.others.append(other)  # type: ignore[arg-type]
        row_max = row_max if everyone else row_max[kept_idx]

        if setup.clean:
            objs = (
                [c.obj for c in kept] if setup.clean_format == "input" else list(map(flagembedding_row, kept))
            )
            result.clean = "".join([dumps(o) + "\n" for o in objs]).encode("utf-8")
            result.keys = Counter(chain.from_iterable(objs))
            if setup.clean_parquet[st.input]:
                result.kinds = ColumnKinds.of(objs)
        if setup.buckets is not None:
            result.buckets = self._buckets(kept, row_max)
        return result

    def _count(
        self,
        stats: ScanStats,
        st: _Checked,
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

        warned = length_warnings(row_max, st.negatives, cap, self.options.train_group_size)
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
                        self.setup.fields[st.input],
                        self.options.train_group_size,
                    )
                    stats.example(reason, st.path, first_line + int(st.row_at[i]), detail)
        return row_max

    def _buckets(self, kept: list[Checked], row_max: np.ndarray) -> dict[int, tuple[bytes, int, int]]:
        spec = self.setup.buckets
        assert spec is not None
        of_row = spec.bucket_of(row_max)
        out = {}
        for bucket in np.unique(of_row).tolist():
            chosen = np.flatnonzero(of_row == bucket)
            size = spec.batch_size(bucket, self.setup.cap)
            objs = (kept[i].obj for i in chosen.tolist())
            lines = [dumps(o if size is None else {**o, "batch_size": size}) + "\n" for o in objs]
            out[bucket] = ("".join(lines).encode("utf-8"), len(chosen), int(row_max[chosen].max()))
        return out


def _kept_texts(st: _Checked, keep: np.ndarray) -> dict[str, tuple[np.ndarray, np.ndarray]]:
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


def _presence(kept: list[Checked], lines: np.ndarray) -> KeyPresence:
    """Which kept rows carry each of FlagEmbedding's optional keys (see checks.WATCHED_KEYS)."""
    presence = KeyPresence(rows=len(kept))
    flags = np.array([watched_keys(c.obj) for c in kept], dtype=bool).reshape(len(kept), len(WATCHED_KEYS))
    for k, key in enumerate(WATCHED_KEYS):
        have = int(flags[:, k].sum())
        presence.have[key] = have
        if have < len(kept):
            presence.lacking[key] = lines[~flags[:, k]][:5].tolist()
    return presence
