"""What ``lenprof scan`` was asked: its options, panel by panel as ``--help`` shows them, and
:class:`ScanArgs`, the one typed object the command's body reads them through."""

from __future__ import annotations

from dataclasses import dataclass

import click

from lenprof.cli import options as opt
from lenprof.cli.common import ByteSize, Finite
from lenprof.cli.progress import DEFAULT_INTERVAL
from lenprof.engine import ENGINES
from lenprof.engine.local import PER_CORE
from lenprof.io.buckets import LengthBuckets
from lenprof.io.records import DEFAULT_SHARD_BYTES
from lenprof.rows.fields import Fields
from lenprof.rows.options import MAX_LINE_BYTES, MAX_TEXT_CHARS, ScanOptions
from lenprof.score.options import ScoreOptions
from lenprof.score.rows import DUP_COSINE, FN_RATIO, TEMPERATURE


@dataclass(frozen=True)
class ScanArgs:
    """The options of one ``lenprof scan``, by parameter name (``fmt`` is ``--format``)."""

    paths: tuple[str, ...]
    tokenizer: tuple[str, ...]  # none: the packaged tokenizer; several: a comparison
    for_tokenizer: str | None
    dataset_split: str | None  # --split
    fields_spec: str | None  # --fields
    query_instruction: str | None
    query_instruction_format: str
    passage_instruction: str | None
    passage_instruction_format: str
    coverage: float
    multiple_of: int
    min_neg: int
    train_group_size: int | None
    fmt: str
    out: str | None
    clean_out: str | None
    clean_format: str
    rejects: str | None
    report: str | None
    split_edges: str | None  # --split-by-length
    split_dir: str | None
    token_budget: int | None
    fail_on_drop: bool
    max_line_bytes: int
    max_text_chars: int
    workers: int | None
    engine: str
    address: str | None
    shard_size: float  # MiB
    memory_budget: int  # bytes
    exact_only: bool
    against: tuple[str, ...]
    drop_leaks: bool
    model: str | None
    fn_ratio: float
    dup_cosine: float
    temperature: float
    drop_false_negatives: bool
    add_scores: bool
    batch_size: int
    device: str
    embedding_cache: bool
    quiet: bool
    progress_interval: float

    @property
    def tokenizers(self) -> list[str | None]:
        """The --tokenizer values; without one, the --model's own tokenizer (lengths are measured
        as the model will read them, as ``lenprof train`` does), else None: the packaged one."""
        return list(self.tokenizer) or [self.model]

    def scan_options(self) -> ScanOptions:
        """How rows are read, checked and measured; raises what ``usage_errors`` turns into exit 2."""
        return ScanOptions(
            fields=Fields.parse(self.fields_spec),
            query_instruction=self.query_instruction,
            query_instruction_format=self.query_instruction_format,
            passage_instruction=self.passage_instruction,
            passage_instruction_format=self.passage_instruction_format,
            coverage=self.coverage,
            multiple_of=self.multiple_of,
            min_neg=self.min_neg,
            train_group_size=self.train_group_size,
            max_line_bytes=self.max_line_bytes,
            max_text_chars=self.max_text_chars,
        )

    def score_options(self) -> ScoreOptions | None:
        """``--model`` and the options that score with it; None without a model."""
        given = [o for o, on in (("--drop-false-negatives", self.drop_false_negatives), ("--add-scores", self.add_scores)) if on]  # fmt: skip
        if self.model is None:
            if given:
                raise click.UsageError(
                    f"{given[0]} needs --model MODEL (the base model to score the rows with)"
                )
            return None
        return ScoreOptions(
            model=self.model,
            device=self.device,
            fn_ratio=self.fn_ratio,
            dup_cosine=self.dup_cosine,
            temperature=self.temperature,
            drop_false_negatives=self.drop_false_negatives,
            add_scores=self.add_scores,
            batch_size=self.batch_size,
            cache=self.embedding_cache,
        )

    def buckets(self) -> LengthBuckets | None:
        if not self.split_edges:
            return None
        return LengthBuckets.parse(
            self.split_edges, self.split_dir, self.token_budget, self.train_group_size or 8
        )


PANELS = {
    "Inputs": ["dataset_split", "fields_spec"],
    "Outputs": ["fmt", "out", "clean_out", "clean_format", "rejects", "report", "split_edges", "split_dir", "token_budget"],
    "Tokenizer": ["tokenizer", "for_tokenizer", "query_instruction", "query_instruction_format", "passage_instruction",
                  "passage_instruction_format"],
    "Lengths": ["coverage", "multiple_of"],
    "Checks": ["min_neg", "train_group_size", "max_line_bytes", "max_text_chars", "against", "drop_leaks", "fail_on_drop"],
    "Model": ["model", "fn_ratio", "dup_cosine", "temperature", "drop_false_negatives", "add_scores", "batch_size",
              "device", "embedding_cache"],
    "Engine": ["workers", "engine", "address", "shard_size", "memory_budget", "exact_only"],
    "Logging": ["quiet", "progress_interval", "help"],
}  # fmt: skip

EXAMPLES = [
    (
        "Check a FlagEmbedding folder; write the kept rows, repaired, and the dropped ones with their reasons:",
        "lenprof scan data/ --clean-out clean/ --rejects rejects.jsonl --out profile.json",
    ),
    (
        "Train at the recommended lengths (stdout carries only the flags):",
        "torchrun --nproc_per_node 8 -m FlagEmbedding.finetune.embedder.encoder_only.base \\\n"
        "    --model_name_or_path BAAI/bge-base-en-v1.5 --train_data clean/ \\\n"
        "    $(lenprof scan clean/ --tokenizer BAAI/bge-base-en-v1.5 --format args -q) ...",
    ),
]

# In the order of before: click checks options in this order, and with_source blames the first
# option a message names.
scan_options = opt.together(
    click.argument("paths", nargs=-1, required=True),
    opt.tokenizer,
    opt.for_tokenizer("With several --tokenizer"),
    click.option(
        "--split",
        "dataset_split",
        metavar="SPLIT",
        help="The split to scan of a folder (its files, as datasets.load_dataset finds splits), a datasets folder (DatasetDict) or a hub dataset hf://ORG/NAME[/CONFIG], e.g. train.",
    ),
    click.option(
        "--fields",
        "fields_spec",
        metavar="ROLE=COLUMN,...",
        help="Read other columns, e.g. query=anchor,pos=positive,neg=negative (mapped string columns count as one-item lists).",
    ),
    opt.instructions,
    opt.coverage(95.0, "Percentile of texts that must fit untruncated."),
    opt.multiple_of(8, "Round lengths up to a multiple of this."),
    opt.min_neg("Drop rows with fewer negatives left (FlagEmbedding crashes on none; 0 keeps them)."),
    click.option(
        "--train-group-size",
        type=click.IntRange(min=1),
        metavar="N",
        help="Warn about rows with fewer than this minus one negatives.",
    ),
    opt.output_format(),
    click.option("--out", type=click.Path(dir_okay=False), help="Also write the JSON profile here."),
    click.option(
        "--clean-out",
        type=click.Path(),
        help="Write kept rows, repaired, in input order: one file (.jsonl, .jsonl.gz or .parquet), or DIR/ for one cleaned file per input under its own name.",
    ),
    click.option(
        "--clean-format",
        type=click.Choice(["input", "flagembedding"]),
        default="input",
        show_default=True,
        help="Rows as read (repaired), or FlagEmbedding's query/pos/neg JSON lines whatever the input layout.",
    ),
    click.option(
        "--rejects",
        type=click.Path(dir_okay=False),
        help="Write dropped rows as JSON lines with source, line, reason, detail, raw.",
    ),
    opt.report("Also write a self-contained HTML report (plots, candidate cuts, checks with examples)."),
    click.option(
        "--split-by-length",
        "split_edges",
        metavar="EDGES",
        help="Also write kept rows into one file per length bucket, e.g. 0,256,512,1024 (a row's length is its longest text), for FlagEmbedding's same-dataset mode.",
    ),
    click.option("--split-dir", type=click.Path(file_okay=False), help="Folder for --split-by-length files."),
    click.option(
        "--token-budget",
        type=click.IntRange(min=1),
        metavar="N",
        help="With --split-by-length: tokens one step may hold; sets each bucket's batch_size (uses --train-group-size, default 8).",
    ),
    click.option("--fail-on-drop", is_flag=True, help="Exit 1 when any row was dropped."),
    click.option(
        "--max-line-bytes",
        type=click.IntRange(min=1),
        default=MAX_LINE_BYTES,
        show_default=True,
        metavar="N",
        help="A row (JSON line, array element, CSV row, Parquet or dataset row) longer than this is dropped as line_too_long, never held whole.",
    ),
    click.option(
        "--max-text-chars",
        type=click.IntRange(min=1),
        default=MAX_TEXT_CHARS,
        show_default=True,
        metavar="N",
        help="A row with a text longer than this is dropped as text_too_long (the tokenizer needs about 64 bytes a character).",
    ),
    click.option(
        "--workers",
        type=click.IntRange(min=1),
        envvar="LENPROF_WORKERS",
        metavar="N",
        help=f"Worker processes [env: LENPROF_WORKERS; default: one per core, none for small inputs; at most one per shard and {PER_CORE} per core]. Results do not depend on it.",
    ),
    click.option(
        "--engine",
        type=click.Choice(list(ENGINES)),
        default="local",
        show_default=True,
        help="Where to scan: this machine, or a Ray cluster (pip install 'lenprof[ray]').",
    ),
    click.option(
        "--address",
        envvar="LENPROF_RAY_ADDRESS",
        metavar="URL",
        help="Ray cluster to join with --engine ray (e.g. ray://head:10001) [env: LENPROF_RAY_ADDRESS, else Ray's RAY_ADDRESS; default: start a local Ray for this scan, even where a cluster runs on this machine].",
    ),
    click.option(
        "--shard-size",
        type=Finite(min=0, min_open=True),
        default=DEFAULT_SHARD_BYTES / (1 << 20),
        show_default=True,
        metavar="MIB",
        help="MiB of input per shard at most: a worker's unit of work (smaller where a corpus would make fewer than 8 a worker). Results do not depend on it.",
    ),
    click.option(
        "--memory-budget",
        type=ByteSize(least=1 << 20),
        default="2G",
        show_default=True,
        metavar="SIZE",
        help="Memory the corpus-wide decisions (duplicates, distinct texts) may hold; past it they are made over sorted runs on local disk (TMPDIR), in three reads of the input. Also caps each worker's piece caches. Results do not depend on it.",
    ),
    click.option(
        "--exact-only",
        is_flag=True,
        help="Count every text with the full tokenizer, never through the piece caches (which is exact where used, and checks itself).",
    ),
    click.option(
        "--against",
        multiple=True,
        metavar="EVAL",
        help="An evaluation/test file (or folder): warn about training rows holding its queries or positives, exactly or after normalising whitespace and case. Repeatable.",
    ),
    click.option("--drop-leaks", is_flag=True, help="Drop the rows --against finds, instead of warning."),
    click.option(
        "--model",
        metavar="MODEL",
        help="Score every kept row with the base model you will fine-tune (a model folder or hub id; pip install 'lenprof[train]'): flag false negatives and too-easy rows, and forecast the first steps' loss.",
    ),
    click.option(
        "--fn-ratio",
        type=Finite(min=0),
        default=FN_RATIO,
        show_default=True,
        metavar="R",
        help="With --model: a negative scoring at or above R times the positive is a suspected false negative.",
    ),
    click.option(
        "--dup-cosine",
        type=Finite(min=-1, max=1),
        default=DUP_COSINE,
        show_default=True,
        metavar="C",
        help="With --model: a negative this close to a positive (cosine) is a near copy of it.",
    ),
    click.option(
        "--temperature",
        type=Finite(min=1e-4),  # below it 1/T overflows into NaN losses; trainers use 0.01-0.1
        default=TEMPERATURE,
        show_default=True,
        metavar="T",
        help="With --model: the trainer's temperature (FlagEmbedding's default); a row whose loss is below 1e-3 at it is too easy.",
    ),
    click.option(
        "--drop-false-negatives",
        is_flag=True,
        help="With --model: remove the suspected false negatives (a repair; a row left with fewer than --min-neg is dropped).",
    ),
    click.option(
        "--add-scores",
        is_flag=True,
        help="With --model: write pos_scores/neg_scores (the model's cosines) into the cleaned rows, for FlagEmbedding's --knowledge_distillation.",
    ),
    click.option(
        "--batch-size",
        type=click.IntRange(min=1),
        default=32,
        show_default=True,
        metavar="N",
        help="With --model: the trainer's per-device batch size, for the zero-loss forecast (with --train-group-size, default 8).",
    ),
    click.option(
        "--device",
        default="auto",
        show_default=True,
        metavar="DEVICE",
        help="With --model: where to run it (auto: CUDA in bf16 where there is one, else the CPU; or cpu, cuda, cuda:1).",
    ),
    click.option(
        "--embedding-cache/--no-embedding-cache",
        default=True,
        show_default=True,
        help="With --model: keep each text's embedding on disk (in LENPROF_CACHE_DIR, by default ~/.cache/lenprof), so a scan of the same texts with the same model embeds nothing again.",
    ),
    opt.quiet,
    click.option(
        "--progress-interval",
        type=Finite(min=0),
        default=DEFAULT_INTERVAL,
        show_default=True,
        metavar="SECONDS",
        help="When stderr is not a terminal (SLURM, CI logs): one progress line this often.",
    ),
)
