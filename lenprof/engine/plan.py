"""The plan of a scan: everything decided before the first row is read.

Inputs are found and every output is vetted once, the tokenizer is loaded once, and the inputs
are cut into shards in corpus order: byte ranges at line starts for plain JSONL and spans of row
groups for Parquet, cut from the footer alone (a worker reads its own range or span), and pieces
of the stream for ``.gz``/``.zst`` JSONL, stdin and the inputs of ``io/readers/`` (JSON arrays,
CSV/TSV, ``datasets``), which only the driver can read in order. Every engine runs the same plan;
shards never change a result.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

from lenprof.count.fast.cache import MAX_CACHED_CHUNKS
from lenprof.count.load import load_tokenizer
from lenprof.count.tokenizer import LoadedTokenizer
from lenprof.errors import InputError, OutputError
from lenprof.hashing import RunKey
from lenprof.io import transaction as out
from lenprof.io.buckets import LengthBuckets, stems
from lenprof.io.discover import discover
from lenprof.io.files import InputFile
from lenprof.io.parquet import SUFFIXES as PARQUET_SUFFIXES
from lenprof.io.readers import splits, stdin
from lenprof.io.records import DEFAULT_SHARD_BYTES, Shard, shards
from lenprof.io.stamps import Stamp, stamp_all, unchanged_all
from lenprof.rows import cleaned, leaks
from lenprof.rows.fields import Fields
from lenprof.rows.layouts import Layout, resolve
from lenprof.rows.leaks import EvalIndex
from lenprof.rows.options import ScanOptions
from lenprof.score.options import ScoreOptions

EXPANSION = 8  # about how many bytes of rows a byte of compressed input holds, for Plan.shards_at_most
DEFAULT_MEMORY_BUDGET = 2 << 30  # bytes the driver's decisions may hold before they go out of core
UNSIZED = 1 << 30  # bytes assumed for an input with no size (a pipe, a hub dataset)
# Out of core at once when the inputs are this many times the budget (the decisions take 1/50
# to 2x the input's size: mined rows repeat their texts, tiny rows do not); below it, in memory
# until they outgrow it (``driver.OverBudget``).
OUT_OF_CORE_AT = 32
# Shards a worker gets at least, where the inputs allow shards of MIN_SHARD_BYTES (see Plan.fitted)
SHARDS_PER_WORKER = 8
MIN_SHARD_BYTES = 1 << 20


@dataclass(frozen=True)
class Outputs:
    """Where a scan writes; every one is optional."""

    clean: str | None = (
        None  # kept rows, repaired (.jsonl, .jsonl.gz, .parquet), or DIR/ to mirror the inputs
    )
    rejects: str | None = None  # dropped rows with line and reason
    profile: str | None = None  # the JSON profile
    report: str | None = None  # the HTML report
    buckets: LengthBuckets | None = None  # kept rows by length, in their own folder
    clean_format: str = "input"  # or "flagembedding" (see cleaned.py)

    def files(self) -> dict[str, str]:
        return {k: v for k, v in (("rejects", self.rejects), ("profile", self.profile), ("report", self.report)) if v}  # fmt: skip


@dataclass(frozen=True)
class WorkerSetup:
    """What every worker needs, sent once: small and picklable."""

    options: ScanOptions
    fields: tuple[Fields, ...]  # per input: the columns its layout reads
    tokenizer_json: str  # "" for workers given the tokenizers loaded (``shipping`` adds it)
    encode_special_tokens: bool  # split_special_tokens: on the Rust object, outside its JSON
    exact_only: bool  # no piece-cache counting (count/fast/)
    cap: int | None
    clean: bool
    clean_parquet: tuple[bool, ...]  # per input: its cleaned rows go to a Parquet file
    clean_format: str
    rejects: bool
    buckets: LengthBuckets | None
    against: EvalIndex | None = None  # --against: the test queries and positives
    drop_leaks: bool = False
    others: tuple[tuple[str, bool, int | None], ...] = ()  # tokenizers compared: (json, special, cap)
    cached: int = MAX_CACHED_CHUNKS  # pieces each of a worker's piece caches holds at most
    # the run's secret: its workers' fingerprints are keyed with it (see hashing.py)
    key: RunKey = field(default_factory=RunKey)
    score: ScoreOptions | None = None  # scan --model: the base model's view of the rows

    def shipping(self, backends: list[Any]) -> WorkerSetup:
        """This setup with the JSON of ``backends`` (the scan's tokenizer, then the others), for
        workers that load them: a real vocabulary's ``to_str`` is 10-35 ms, which a worker forked
        with them loaded does without."""
        json = [b.to_str() for b in backends]
        others = tuple((j, e, cap) for j, (_, e, cap) in zip(json[1:], self.others, strict=True))
        return dataclasses.replace(self, tokenizer_json=json[0], others=others)

    def tokenizers(self) -> list[tuple[str, bool]]:
        """(tokenizer JSON, encode_special_tokens) of the scan's tokenizer, then of the others."""
        return [(self.tokenizer_json, self.encode_special_tokens), *((j, e) for j, e, _ in self.others)]

    def other_caps(self) -> list[int | None]:
        return [cap for _, _, cap in self.others]


@dataclass(frozen=True)
class Plan:
    inputs: list[InputFile]
    options: ScanOptions
    tokenizer: LoadedTokenizer
    outputs: Outputs
    shard_bytes: int = DEFAULT_SHARD_BYTES
    stems: list[str] = field(default_factory=list)  # per input: its name in the bucket folder
    exact_only: bool = False  # every text through the full tokenizer, no piece caches
    layouts: list[Layout] = field(default_factory=list)  # per input
    clean_targets: list[str] = field(default_factory=list)  # per input: where its kept rows go
    against: EvalIndex | None = None
    drop_leaks: bool = False
    memory_budget: int = DEFAULT_MEMORY_BUDGET  # see ``external.py``
    out_of_core: bool = False  # decisions over sorted runs on disk (``external.py``)

    others: list[LoadedTokenizer] = field(default_factory=list)  # tokenizers compared with it
    stamps: list[Stamp | None] = field(default_factory=list)  # per input on disk: as it was found
    score: ScoreOptions | None = None  # scan --model (``engine/scoring.py``)

    def fields(self, i: int) -> Fields:
        return self.layouts[i].fields if self.layouts else self.options.fields

    def unchanged(self) -> None:
        """Raise :class:`InputError` naming the first input file that is not as it was found."""
        unchanged_all([item.path for item in self.inputs], self.stamps)

    @property
    def tokenizers(self) -> list[LoadedTokenizer]:
        return [self.tokenizer, *self.others]

    def setup(self, shipped: bool = True) -> WorkerSetup:
        """What the workers need. ``shipped=False``: the tokenizers' JSON left out, for workers given
        them loaded (``WorkerSetup.shipping`` adds it where they are not after all)."""
        o = self.outputs
        setup = WorkerSetup(
            options=self.options,
            fields=tuple(self.fields(i) for i in range(len(self.inputs))),
            tokenizer_json="",
            encode_special_tokens=_special(self.tokenizer),
            exact_only=self.exact_only,
            cap=self.tokenizer.cap,
            clean=o.clean is not None,
            clean_parquet=tuple(t.lower().endswith(PARQUET_SUFFIXES) for t in self.clean_targets),
            clean_format=o.clean_format,
            rejects=o.rejects is not None,
            buckets=o.buckets,
            against=self.against,
            drop_leaks=self.drop_leaks,
            others=tuple(("", _special(t), t.cap) for t in self.others),
            cached=cache_size(self.memory_budget),
            score=self.score,
        )
        return setup.shipping([t.backend for t in self.tokenizers]) if shipped else setup

    def shards_at_most(self) -> int | None:
        """About how many shards the inputs make (each is one at least), from their sizes: the
        most workers that could have work. A compressed input or a Parquet file counts as
        :data:`EXPANSION` times its size; None when an input has no size (a pipe, a hub dataset)."""
        if not all(item.size for item in self.inputs):
            return None
        return max(1, sum(-(-_row_bytes(item) // self.shard_bytes) for item in self.inputs))

    def size_hint(self) -> int:
        """About how many bytes of rows the inputs hold (see :meth:`shards_at_most`)."""
        return sum(_row_bytes(item) if item.size else UNSIZED for item in self.inputs)

    def fitted(self, workers: int) -> Plan:
        """This plan with shards small enough that each of ``workers`` gets about
        :data:`SHARDS_PER_WORKER` (never below :data:`MIN_SHARD_BYTES`, never above the plan's).
        A shard's texts are counted where it was checked, and the first shards own most of the
        corpus's new texts: with a few shards a worker, one worker counts the first shard's
        while the texts of the shards queued behind it wait and the other workers idle (a
        fifth of the workers' time on 60k rows of Chinese through a tokenizer no fast count
        covers). The shards change, never a result.

            >>> from lenprof.io.files import InputFile
            >>> p = Plan([InputFile("a.jsonl", "jsonl", known_size=30 << 20)], ScanOptions(), None, Outputs())
            >>> p.fitted(2).shard_bytes / (1 << 20), p.fitted(1).shard_bytes == DEFAULT_SHARD_BYTES
            (1.875, True)
        """
        at_most = self.shards_at_most()
        if workers < 2 or at_most is None or at_most >= SHARDS_PER_WORKER * workers:
            return self
        fit = max(MIN_SHARD_BYTES, -(-self.size_hint() // (SHARDS_PER_WORKER * workers)))
        return dataclasses.replace(self, shard_bytes=min(self.shard_bytes, fit))

    def shards(self) -> Iterator[Shard]:
        """The shards in corpus order; streamed inputs are read as the iteration reaches them."""
        opts = self.options
        return shards(self.inputs, self.shard_bytes, opts.max_line_bytes, opts.line_head_bytes)


def _row_bytes(item: InputFile) -> int:
    """About how many bytes of rows a sized input holds: a compressed input or a Parquet file
    :data:`EXPANSION` times its size."""
    return item.size * (EXPANSION if item.compression or item.format == "parquet" else 1)


def cache_size(memory_budget: int) -> int:
    """Pieces a worker's piece cache may hold under ``memory_budget``: a 256th of it in pieces,
    about a 20th in bytes while the cache's arrays merge (its peak), up to the usual 8M."""
    return min(MAX_CACHED_CHUNKS, max(1 << 16, memory_budget // 256))


def _special(tokenizer: LoadedTokenizer) -> bool:
    """split_special_tokens: on the Rust object, outside its JSON."""
    return bool(getattr(tokenizer.backend, "encode_special_tokens", False))


def _tokenizer_files(tokenizers: Sequence[LoadedTokenizer]) -> list[str]:
    """The files a tokenizer was loaded from, named on the command line: a tokenizer.json, or
    every file of a model folder."""
    files = []
    for t in tokenizers:
        if t.info.source == "file":
            files.append(t.info.name)
        elif t.info.source == "folder" and os.path.isdir(t.info.name):
            with os.scandir(t.info.name) as entries:
                files += [e.path for e in entries if e.is_file()]
    return files


def make_plan(
    paths: Sequence[str] | str,
    options: ScanOptions | None = None,
    *,
    tokenizer: LoadedTokenizer | str | None = None,
    outputs: Outputs | None = None,
    shard_bytes: int = DEFAULT_SHARD_BYTES,
    exact_only: bool = False,
    against: Sequence[str] = (),
    drop_leaks: bool = False,
    dataset_split: str | None = None,
    others: Sequence[LoadedTokenizer | str] = (),
    memory_budget: int = DEFAULT_MEMORY_BUDGET,
    score: ScoreOptions | None = None,
) -> Plan:
    """Find the inputs, vet every output, load the tokenizer (and find ``score``'s model):
    raises before any work is done."""
    if shard_bytes < 1:
        raise InputError(f"shard size must be at least 1 byte, got {shard_bytes}")
    memory_budget = int(memory_budget)
    if memory_budget < 1 << 20:
        raise InputError(f"the memory budget must be at least 1 MiB, got {memory_budget} bytes")
    outputs = outputs or Outputs()
    inputs = discover([paths] if isinstance(paths, str) else list(paths), dataset_split)
    stamps = stamp_all(inputs)  # checked once every byte is read: see scan.run
    input_paths = [i.path for i in inputs]
    on_disk = [p for p in input_paths if p != stdin.NAME and not p.startswith("hf://")]
    files = outputs.files()
    if outputs.buckets is not None:
        folder = os.path.abspath(outputs.buckets.folder)
        if any(os.path.abspath(p).startswith(folder + os.sep) for p in on_disk):
            raise InputError(
                f"{outputs.buckets.folder}: the split folder holds inputs; choose an empty or new folder"
            )
        for n, path in enumerate(outputs.buckets.every_path(input_paths)):
            files[f"bucket {n}"] = path
    for written in (outputs.clean, outputs.buckets and outputs.buckets.folder):
        if written:
            splits.refuse_mixed(inputs, written)  # training files never hold the test split's rows
    clean = cleaned.targets(outputs.clean, inputs, outputs.clean_format) if outputs.clean else []
    if outputs.clean and cleaned.is_folder(outputs.clean):
        if outputs.buckets is not None and _within(outputs.buckets.folder, outputs.clean):
            raise OutputError(
                f"{outputs.buckets.folder}: the --split-dir is in the --clean-out folder, so a trainer "
                "given that folder would train on every row twice; choose another"
            )
        cleaned.refuse_strangers(outputs.clean, [*clean, *outputs.files().values()])
    files.update({f"clean {n}": path for n, path in enumerate(dict.fromkeys(clean))})
    if score is not None:  # the model's folder, found first: a bad --model is said as such, not as
        # the tokenizer it also gives when no --tokenizer is
        from lenprof.score.encoder import model_folder  # only with --model: no scan pays its imports

        score = dataclasses.replace(score, model=model_folder(score.model))
    tok = tokenizer if isinstance(tokenizer, LoadedTokenizer) else load_tokenizer(tokenizer)
    compared = [t if isinstance(t, LoadedTokenizer) else load_tokenizer(t) for t in others]
    tested = discover(list(against), whole=True)
    both = sorted({os.path.abspath(i.path) for i in tested} & {os.path.abspath(p) for p in on_disk})
    if both:
        raise InputError(
            f"{both[0]}: is both scanned and --against test data: every row would be its own leak"
        )
    # test files and the tokenizers' own files are inputs too: no output may replace them
    protected = on_disk + [i.path for i in tested] + _tokenizer_files([tok, *compared])
    if score is not None:  # the model's files are inputs too
        protected += [e.path for e in os.scandir(score.model) if e.is_file()]
    out.vet(files, protected, row_outputs=[k for k in files if k.startswith("clean")] + ["rejects"])
    options = options or ScanOptions()
    given = bool(options.fields.mapped)
    layouts = [resolve(item, options.fields, given, options.min_neg) for item in inputs]
    index = (
        leaks.build(against, options, lambda item: resolve(item, options.fields, given, 0).fields)
        if against
        else None
    )
    plan = Plan(
        inputs,
        options,
        tok,
        outputs,
        shard_bytes,
        stems(input_paths) if outputs.buckets else [],
        exact_only,
        layouts,
        clean,
        index,
        drop_leaks,
        memory_budget,
        False,
        compared,
        stamps,
    )
    plan = dataclasses.replace(
        plan, out_of_core=plan.size_hint() > OUT_OF_CORE_AT * memory_budget, score=score
    )
    if score is not None:
        columned = [
            i.path
            for i, lay in zip(inputs, layouts, strict=True)
            if lay.name.startswith("sentence-transformers")
        ]
        if score.add_scores and outputs.clean and outputs.clean_format == "input" and columned:
            raise InputError(
                f"{columned[0]}: --add-scores writes FlagEmbedding's pos_scores/neg_scores, and a "
                "sentence-transformers dataset given those columns reads them as more inputs: add "
                "--clean-format flagembedding (or leave out --add-scores)"
            )
        if plan.out_of_core:
            raise InputError(
                f"--model scores a corpus in memory, and this one is over {OUT_OF_CORE_AT}x the memory budget "
                f"({memory_budget >> 20} MiB): raise --memory-budget, or score a part of it"
            )
    return plan


def _within(path: str, folder: str) -> bool:
    path, folder = os.path.abspath(path), os.path.abspath(folder)
    return path == folder or path.startswith(folder + os.sep)
