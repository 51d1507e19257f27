"""The scan pipeline: read -> check and repair -> tokenize as the trainer will -> count -> recommend.

Everything streams in batches: memory holds one batch of rows, the histograms, 8 bytes per kept
row (duplicate detection), 12 bytes per distinct text (the length cache that lets each distinct
text be tokenized once) and 8 bytes per distinct text per field (unique counts).
"""

from __future__ import annotations

import os
import string
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass

import numpy as np

from .checks import Checked, Dropped, check_record, reject_record
from .hashset import FingerprintMap, FingerprintSet, fingerprints
from .io import InputError, InputFile, RowWriter, discover, read_batches, same_file
from .parallel import Measurer, Pending
from .recommend import recommendation
from .schema import Fields
from .split import SplitSpec, SplitWriter
from .stats import Profile, ScanStats
from .tokenize import LoadedTokenizer, load_tokenizer


class OptionsError(ValueError):
    """Scan options that cannot work together. Exit code 2."""


@dataclass(frozen=True)
class ScanOptions:
    """How rows are read, checked and measured (defaults follow FlagEmbedding's)."""

    fields: Fields = Fields()
    query_instruction: str | None = None
    query_instruction_format: str = "{}{}"
    passage_instruction: str | None = None
    passage_instruction_format: str = "{}{}"
    coverage: float = 95.0
    multiple_of: int = 8
    min_neg: int = 1
    train_group_size: int | None = None
    batch_size: int = 2048
    raw_limit: int = 4096  # characters of a rejected line kept in the rejects file

    def __post_init__(self) -> None:
        if not 0 < self.coverage <= 100:
            raise OptionsError(f"coverage must be in (0, 100], got {self.coverage}")
        if self.multiple_of < 1 or self.min_neg < 0 or self.batch_size < 1:
            raise OptionsError("multiple_of and batch_size must be >= 1, min_neg >= 0")
        for name in ("query_instruction_format", "passage_instruction_format"):
            fmt = getattr(self, name)
            try:
                n_fields = sum(1 for _, f, _, _ in string.Formatter().parse(fmt) if f is not None)
                ok = n_fields == 2 and fmt.format("a", "b") is not None
            except (IndexError, KeyError, ValueError):
                ok = False
            if not ok:
                raise OptionsError(f"{name} {fmt!r} must take two {{}} fields: instruction, then text")

    def query_text(self, query: str, prompt: str | None = None) -> str:
        """The query as FlagEmbedding feeds it: a row's own ``prompt`` replaces the instruction."""
        if self.query_instruction is None:
            return query
        return self.query_instruction_format.format(prompt or self.query_instruction, query)

    def passage_text(self, text: str) -> str:
        if self.passage_instruction is None:
            return text
        return self.passage_instruction_format.format(self.passage_instruction, text)

    def describe(self) -> dict:
        return {
            "fields": {"query": self.fields.query, "pos": self.fields.pos, "neg": self.fields.neg},
            "query_instruction": self.query_instruction,
            "query_instruction_format": self.query_instruction_format,
            "passage_instruction": self.passage_instruction,
            "passage_instruction_format": self.passage_instruction_format,
            "min_neg": self.min_neg,
            "train_group_size": self.train_group_size,
            "raw_limit": self.raw_limit,
        }


# (input, rows in this batch, bytes of the input read so far, its size): bytes are None for Parquet
ProgressCallback = Callable[[InputFile, int, "int | None", "int | None"], None]


def scan(
    paths: Sequence[str] | str,
    options: ScanOptions | None = None,
    *,
    tokenizer: LoadedTokenizer | str | None = None,
    clean_out: str | None = None,
    rejects_out: str | None = None,
    on_progress: ProgressCallback | None = None,
    workers: int | None = None,
    split: SplitSpec | None = None,
) -> Profile:
    """Scan corpora and return their profile; optionally write cleaned rows and rejects.

    ``tokenizer`` is a loaded tokenizer, a spec for :func:`load_tokenizer`, or None for the
    packaged default. ``workers`` processes tokenize (default: one per core); results do not
    depend on it. Raises :class:`InputError` for unusable inputs or outputs; bad rows never
    raise, they are dropped with a reason.
    """
    start = time.perf_counter()
    options, items, outputs, tok = prepare_run(paths, options, tokenizer, clean_out, rejects_out)
    if split is not None and any(
        os.path.abspath(i.path).startswith(os.path.abspath(split.folder) + os.sep) for i in items
    ):
        raise InputError(f"{split.folder}: the split folder holds inputs; choose an empty or new folder")

    writers: dict[str, RowWriter | SplitWriter] = {}
    try:
        with Measurer(tok, workers) as measurer:
            if split is not None:
                writers["split"] = SplitWriter(split, tok.cap)
            scanner = _Scanner(options, tok, measurer, split=writers.get("split"))
            for key, path in outputs.items():
                writers[key] = RowWriter(path)
            for item in items:
                scanner.scan_input(item, writers.get("clean"), writers.get("rejects"), on_progress)
            scanner.flush(writers.get("clean"))
    except BaseException:
        for w in writers.values():
            w.abort()
        raise
    for w in writers.values():
        w.close()
    profile = make_profile(scanner.stats, options, tok, outputs)
    if split is not None:
        profile.outputs["split"] = split.folder
        profile.split = writers["split"].summary
    profile.run = {
        "workers": measurer.workers,
        "seconds": round(time.perf_counter() - start, 3),
        "tokenize_s": round(measurer.seconds, 3),
        "texts_tokenized": measurer.texts,
        "parallel_calls": measurer.parallel_calls,
    }
    return profile


def prepare_run(
    paths: Sequence[str] | str,
    options: ScanOptions | None,
    tokenizer: LoadedTokenizer | str | None,
    clean_out: str | None,
    rejects_out: str | None,
) -> tuple[ScanOptions, list[InputFile], dict[str, str], LoadedTokenizer]:
    """What every engine does first: find inputs, vet outputs, load the tokenizer."""
    items = discover([paths] if isinstance(paths, str) else list(paths))
    outputs = {k: v for k, v in (("clean", clean_out), ("rejects", rejects_out)) if v}
    for path in outputs.values():
        RowWriter.check_suffix(path)
    check_outputs(outputs.values(), items)
    tok = tokenizer if isinstance(tokenizer, LoadedTokenizer) else load_tokenizer(tokenizer)
    return options or ScanOptions(), items, outputs, tok


def check_outputs(outputs: Iterable[str], items: Sequence[InputFile]) -> None:
    """Refuse to write over an input, or two outputs to one file."""
    outs = list(outputs)
    for out in outs:
        for item in items:
            if same_file(out, item.path):
                raise InputError(f"{out}: this output would overwrite an input; choose another path")
    for i, a in enumerate(outs):
        for b in outs[i + 1 :]:
            if same_file(a, b):
                raise InputError(f"{a}: two outputs name the same file")


@dataclass
class _Batch:
    """Kept rows of one batch between checking and counting (while their texts are tokenized)."""

    item: InputFile
    kept: list[Checked]
    idx: dict[str, np.ndarray]  # query/pos/neg: each text (as the trainer sees it) -> its distinct index
    prints: np.ndarray  # fingerprint of each distinct text, sorted
    lengths: np.ndarray  # of each distinct text; _finish fills in the new and waiting ones
    new: np.ndarray  # distinct texts sent to the tokenizer with this batch
    waiting: np.ndarray  # distinct texts sent with the previous batch
    pending: Pending | None


class _Scanner:
    """Checks, tokenizes and counts batches in order; ``keep`` decides duplicate rows.

    ``keep(fingerprints)`` gets the duplicate-detection keys of a batch's rows that passed every
    other check and says which to keep: locally the first occurrence in the scan; in the
    distributed engine, a decision the driver made over the whole corpus beforehand.
    """

    def __init__(
        self,
        options: ScanOptions,
        tok: LoadedTokenizer,
        measurer: Measurer,
        keep: Callable[[np.ndarray], np.ndarray] | None = None,
        split: SplitWriter | None = None,
    ):
        self.options = options
        self.split = split
        self.tok = tok
        self.measurer = measurer
        self.keep = keep or FingerprintSet().add_new
        self.length_of_print = FingerprintMap()  # every distinct text is tokenized once per scan
        self.stats = ScanStats()
        self._in_flight: _Batch | None = None

    def scan_input(
        self,
        item: InputFile,
        clean: RowWriter | None,
        rejects: RowWriter | None,
        on_progress: ProgressCallback | None = None,
        batches: Iterable[list] | None = None,
        counts: dict[str, int] | None = None,
    ) -> None:
        """Scan one input, or the ``batches`` given for it (a shard of it, counting into ``counts``)."""
        counts = counts if counts is not None else {"blank": 0}
        read_before = self.stats.read
        for batch in batches if batches is not None else read_batches(item, self.options.batch_size, counts):
            self.stats.read += len(batch)
            # One batch in flight: check this batch while the previous one is tokenized.
            ready = self._prepare(item, batch, rejects)
            self.flush(clean)
            self._in_flight = ready
            if on_progress:
                on_progress(item, len(batch), counts.get("done"), counts.get("total"))
        rows = self.stats.read - read_before
        self.stats.inputs.append({**item.describe(), "rows": rows, "blank": counts["blank"]})

    def flush(self, clean: RowWriter | None) -> None:
        """Finish the batch in flight, if any."""
        if self._in_flight is not None:
            batch, self._in_flight = self._in_flight, None
            self._finish(batch, clean)

    def _prepare(self, item: InputFile, batch: list, rejects: RowWriter | None) -> _Batch | None:
        """Check rows, write rejects, and send the batch's never-seen texts to the tokenizer."""
        opts = self.options
        outcomes = [check_record(raw, opts.fields, opts.min_neg) for raw in batch]
        checked = [o for o in outcomes if isinstance(o, Checked)]
        first = iter(self.keep(fingerprints(c.dedup_key() for c in checked)).tolist())

        kept: list[Checked] = []
        rejected: list[dict] = []
        for outcome in outcomes:
            if isinstance(outcome, Checked) and not next(first):
                outcome = Dropped(
                    outcome.raw, "duplicate_row", "same query and positives as an earlier kept row"
                )
            if isinstance(outcome, Dropped):
                self.stats.dropped[outcome.reason] += 1
                self.stats.example(outcome.reason, outcome.raw.source, outcome.raw.line, outcome.detail)
                if rejects is not None:
                    rejected.append(reject_record(outcome, opts.raw_limit))
            else:
                kept.append(outcome)
        if rejects is not None:
            rejects.write(rejected)
        if not kept:
            return None

        texts = {
            "query": [opts.query_text(c.query, c.prompt) for c in kept],
            "pos": [opts.passage_text(t) for c in kept for t in c.pos],
            "neg": [opts.passage_text(t) for c in kept for t in c.neg],
        }
        every = texts["query"] + texts["pos"] + texts["neg"]
        # Distinct texts of the batch by fingerprint; ``inverse`` maps each text to its distinct one.
        prints, first, inverse = np.unique(fingerprints(every), return_index=True, return_inverse=True)
        known, lengths = self.length_of_print.get(prints)
        # Mined negatives repeat across rows: tokenize only texts never seen in this scan. Texts
        # sent with the batch still in flight are looked up again once it has finished.
        unknown = np.flatnonzero(~known)
        is_waiting = np.zeros(len(unknown), dtype=bool)
        if self._in_flight is not None and len(unknown):
            is_waiting = np.isin(prints[unknown], self._in_flight.prints[self._in_flight.new])
        new, waiting = unknown[~is_waiting], unknown[is_waiting]
        pending = self.measurer.submit([every[i] for i in first[new].tolist()]) if len(new) else None
        bounds = np.cumsum([0] + [len(t) for t in texts.values()])
        field_idx = {name: inverse[bounds[i] : bounds[i + 1]] for i, name in enumerate(texts)}
        return _Batch(item, kept, field_idx, prints, lengths, new, waiting, pending)

    def _finish(self, batch: _Batch | None, clean: RowWriter | None) -> None:
        """Take the batch's token counts and add them to histograms, counts and the clean output."""
        if batch is None:
            return
        opts, lengths, prints = self.options, batch.lengths, batch.prints
        if batch.pending is not None:
            new_lengths = batch.pending.get()
            lengths[batch.new] = new_lengths
            self.length_of_print.insert(prints[batch.new], new_lengths)
        if len(batch.waiting):
            found, values = self.length_of_print.get(prints[batch.waiting])
            assert found.all(), "a text in flight was not measured"
            lengths[batch.waiting] = values
        for name, field_idx in batch.idx.items():
            self.stats.hists[name].add(lengths[field_idx])
            if name != "query":
                self.stats.hists["passage"].add(
                    lengths[field_idx]
                )  # passage_max_len governs pos and neg alike
            present = np.zeros(len(prints), dtype=bool)
            present[field_idx] = True
            self.stats.unique[name].update(prints[present])

        for row in batch.kept:
            for reason, n in row.repairs.items():
                self.stats.repaired[reason] += n
                self.stats.repaired_rows[reason] += 1
                self.stats.example(reason, row.raw.source, row.raw.line, f"{n} removed")
        row_max = self._row_max(batch, lengths)
        over = row_max > self.tok.cap if self.tok.cap else np.zeros(len(batch.kept), dtype=bool)
        for i, row in enumerate(batch.kept):
            warnings = row.warnings | ({"over_model_limit"} if over[i] else set())
            if opts.train_group_size and len(row.neg) < opts.train_group_size - 1:
                warnings.add("few_negatives")
            for w in sorted(warnings):
                self.stats.warnings[w] += 1
                self.stats.example(w, row.raw.source, row.raw.line, w.replace("_", " "))
        if clean is not None:
            clean.write([c.obj for c in batch.kept])
        if self.split is not None:
            self.split.write(batch.item, [c.obj for c in batch.kept], row_max)

    @staticmethod
    def _row_max(batch: _Batch, lengths: np.ndarray) -> np.ndarray:
        """For each kept row: the token count of its longest text."""
        idx = batch.idx
        longest = lengths[idx["query"]].astype(np.int64)
        for name in ("pos", "neg"):
            counts = np.array([len(getattr(row, name)) for row in batch.kept], dtype=np.int64)
            row_of = np.repeat(np.arange(len(batch.kept)), counts)  # (texts,) -> its row
            np.maximum.at(longest, row_of, lengths[idx[name]].astype(np.int64))
        return longest


def make_profile(
    stats: ScanStats, options: ScanOptions, tok: LoadedTokenizer, outputs: dict[str, str]
) -> Profile:
    return Profile(
        tokenizer=tok.describe(),
        settings=options.describe(),
        inputs=stats.inputs,
        samples=stats.samples(),
        histograms=stats.hists,
        unique=stats.unique_counts(),
        recommendation=recommendation(stats.hists, options.coverage, options.multiple_of, tok.cap),
        examples=stats.examples,
        outputs=outputs,
    )
