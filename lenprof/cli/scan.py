"""``lenprof scan``: profile token lengths, check and repair rows, recommend max lengths."""

from __future__ import annotations

import os

import click

from lenprof.api import compare
from lenprof.cli.common import Coverage, Finite, UsageProblem, emit, log, usage_errors
from lenprof.cli.progress import DEFAULT_INTERVAL, progress
from lenprof.count.tokenizer import PACKAGED
from lenprof.engine import ENGINES, get_engine
from lenprof.engine.local import PER_CORE
from lenprof.io.buckets import LengthBuckets
from lenprof.io.discover import skipped_outputs
from lenprof.io.records import DEFAULT_SHARD_BYTES
from lenprof.report import FORMATS
from lenprof.report.compare import check_format, render_comparison
from lenprof.rows.fields import Fields
from lenprof.rows.options import MAX_LINE_BYTES, MAX_TEXT_CHARS, ScanOptions


def _check_tokenizers(tokenizers: list, for_tokenizer: str | None, fmt: str) -> None:
    """Flag conflicts first, naming the flags."""
    if len(set(tokenizers)) < len(tokenizers):
        twice = next(t for t in tokenizers if tokenizers.count(t) > 1)
        raise UsageProblem(f"--tokenizer {twice} is given twice; give each tokenizer once")
    if for_tokenizer is not None and len(tokenizers) == 1:
        raise UsageProblem("--for-tokenizer picks one of several --tokenizer; with one, leave it out")
    with usage_errors():
        check_format(fmt, [PACKAGED if t is None else t for t in tokenizers], for_tokenizer)


def _note_own_outputs(quiet: bool, paths: tuple[str, ...]) -> None:
    """Say which files in a scanned folder are not read, as lenprof wrote them (see written.py)."""
    for folder in paths:
        if folder == "-" or not os.path.isdir(folder):
            continue
        skipped = skipped_outputs(folder)
        if skipped:
            shown = [f"{p} ({why})" for p, why in list(skipped.items())[:5]]
            more = f" and {len(skipped) - 5} more" if len(skipped) > 5 else ""
            log(quiet, f"{folder}: not read as data, as an earlier scan wrote them: {'; '.join(shown)}{more}")


def _refuse_outputs_inside(paths: tuple[str, ...], out: str | None, targets: dict) -> None:
    """Cleaned rows and length buckets written inside a scanned folder would be read as data by
    its next scan, unless a profile there lists them (a rejects file is known by its rows): so
    without ``--out`` in that folder they are refused, before any work."""
    for folder in (p for p in paths if p != "-" and os.path.isdir(p)):
        if out and _inside(out, folder):
            continue
        inside = [f"{flag} {t}" for flag, t in targets.items() if t and _inside(t, folder)]
        if inside:
            raise UsageProblem(
                f"{', '.join(inside)}: inside the scanned folder {folder}, so a later scan of it would read "
                f"them as data; write them elsewhere, or add --out {os.path.join(folder, 'profile.json')} "
                "(a scan skips what a profile there lists)"
            )


def _inside(path: str, folder: str) -> bool:
    folder = os.path.realpath(folder)
    return os.path.realpath(path).startswith(folder.rstrip(os.sep) + os.sep)


class _Repeatable(click.Option):
    """A repeatable option whose value from the environment or ``[tool.lenprof]`` is one item,
    spaces and all (click would split a variable at whitespace)."""

    def value_from_envvar(self, ctx: click.Context):
        value = self.resolve_envvar_value(ctx)
        return None if value is None else (value,)

    def type_cast_value(self, ctx: click.Context, value):
        return super().type_cast_value(ctx, (value,) if isinstance(value, str) else value)


@click.command("scan")
@click.argument("paths", nargs=-1, required=True)
@click.option(
    "--tokenizer",
    cls=_Repeatable,
    multiple=True,
    envvar="LENPROF_TOKENIZER",
    help="Hub id, model folder or tokenizer.json [env: LENPROF_TOKENIZER; default: the packaged all-MiniLM-L6-v2]. "
    "Give it again to compare tokenizers in one pass.",
)
@click.option(
    "--for-tokenizer",
    metavar="NAME",
    help="With several --tokenizer: whose lengths --format args, yaml, env, st and markdown print.",
)
@click.option(
    "--split",
    "dataset_split",
    metavar="SPLIT",
    help="The split of a datasets folder (DatasetDict) or hub dataset hf://ORG/NAME[/CONFIG], e.g. train.",
)
@click.option(
    "--fields",
    "fields_spec",
    metavar="ROLE=COLUMN,...",
    help="Read other columns, e.g. query=anchor,pos=positive,neg=negative (mapped string columns count as one-item lists).",
)
@click.option(
    "--query-instruction",
    metavar="TEXT",
    help="Prepended to every query, as FlagEmbedding's query_instruction_for_retrieval (a row's own 'prompt' replaces it).",
)
@click.option(
    "--query-instruction-format",
    default="{}{}",
    show_default=True,
    help="How instruction and query are joined.",
)
@click.option(
    "--passage-instruction",
    metavar="TEXT",
    help="Prepended to every passage (passage_instruction_for_retrieval).",
)
@click.option("--passage-instruction-format", default="{}{}", show_default=True)
@click.option(
    "--coverage",
    type=Coverage(),
    default=95.0,
    show_default=True,
    help="Percentile of texts that must fit untruncated.",
)
@click.option(
    "--multiple-of",
    type=click.IntRange(min=1),
    default=8,
    show_default=True,
    help="Round lengths up to a multiple of this.",
)
@click.option(
    "--min-neg",
    type=click.IntRange(min=0),
    default=1,
    show_default=True,
    help="Drop rows with fewer negatives left (FlagEmbedding crashes on none; 0 keeps them).",
)
@click.option(
    "--train-group-size",
    type=click.IntRange(min=1),
    help="Warn about rows with fewer than this minus one negatives.",
)
@click.option(
    "--format",
    "fmt",
    type=click.Choice(list(FORMATS)),
    default="table",
    show_default=True,
    help="What stdout carries.",
)
@click.option("--out", type=click.Path(dir_okay=False), help="Also write the JSON profile here.")
@click.option(
    "--clean-out",
    type=click.Path(),
    help="Write kept rows, repaired, in input order: one file (.jsonl, .jsonl.gz or .parquet), or DIR/ for one cleaned file per input under its own name.",
)
@click.option(
    "--clean-format",
    type=click.Choice(["input", "flagembedding"]),
    default="input",
    show_default=True,
    help="Rows as read (repaired), or FlagEmbedding's query/pos/neg JSON lines whatever the input layout.",
)
@click.option(
    "--rejects",
    type=click.Path(dir_okay=False),
    help="Write dropped rows as JSON lines with source, line, reason, detail, raw.",
)
@click.option(
    "--report",
    type=click.Path(dir_okay=False),
    help="Also write a self-contained HTML report (plots, candidate cuts, checks with examples).",
)
@click.option(
    "--split-by-length",
    "split_edges",
    metavar="EDGES",
    help="Also write kept rows into one file per length bucket, e.g. 0,256,512,1024 (a row's length is its longest text), for FlagEmbedding's same-dataset mode.",
)
@click.option("--split-dir", type=click.Path(file_okay=False), help="Folder for --split-by-length files.")
@click.option(
    "--token-budget",
    type=click.IntRange(min=1),
    help="With --split-by-length: tokens one step may hold; sets each bucket's batch_size (uses --train-group-size, default 8).",
)
@click.option("--fail-on-drop", is_flag=True, help="Exit 1 when any row was dropped.")
@click.option(
    "--max-line-bytes",
    type=click.IntRange(min=1),
    default=MAX_LINE_BYTES,
    show_default=True,
    help="A row (JSON line, array element, CSV row, Parquet or dataset row) longer than this is dropped as line_too_long, never held whole.",
)
@click.option(
    "--max-text-chars",
    type=click.IntRange(min=1),
    default=MAX_TEXT_CHARS,
    show_default=True,
    help="A row with a text longer than this is dropped as text_too_long (the tokenizer needs about 64 bytes a character).",
)
@click.option(
    "--workers",
    type=click.IntRange(min=1),
    envvar="LENPROF_WORKERS",
    help=f"Worker processes [env: LENPROF_WORKERS; default: one per core, none for small inputs; at most one per shard and {PER_CORE} per core]. Results do not depend on it.",
)
@click.option(
    "--engine",
    type=click.Choice(list(ENGINES)),
    default="local",
    show_default=True,
    help="Where to scan: this machine, or a Ray cluster (pip install 'lenprof[ray]').",
)
@click.option(
    "--address",
    envvar="LENPROF_RAY_ADDRESS",
    help="Ray cluster to join with --engine ray (e.g. ray://head:10001) [env: LENPROF_RAY_ADDRESS; default: start a local Ray].",
)
@click.option(
    "--shard-size",
    type=Finite(min=0, min_open=True),
    default=DEFAULT_SHARD_BYTES / (1 << 20),
    show_default=True,
    help="MiB of input per shard: a worker's unit of work. Results do not depend on it.",
)
@click.option(
    "--exact-only",
    is_flag=True,
    help="Count every text with the full tokenizer, never through the piece caches (which is exact where used, and checks itself).",
)
@click.option(
    "--against",
    multiple=True,
    metavar="EVAL",
    help="An evaluation/test file (or folder): warn about training rows holding its queries or positives, exactly or after normalising whitespace and case. Repeatable.",
)
@click.option("--drop-leaks", is_flag=True, help="Drop the rows --against finds, instead of warning.")
@click.option("--quiet", "-q", is_flag=True, help="No progress or log lines on stderr.")
@click.option(
    "--progress-interval",
    type=Finite(min=0),
    default=DEFAULT_INTERVAL,
    show_default=True,
    metavar="SECONDS",
    help="When stderr is not a terminal (SLURM, CI logs): one progress line this often.",
)
def scan_command(paths, tokenizer, for_tokenizer, dataset_split, fields_spec, query_instruction, query_instruction_format, passage_instruction,
                 passage_instruction_format, coverage, multiple_of, min_neg, train_group_size, fmt, out, clean_out,
                 clean_format, rejects, report, split_edges, split_dir, token_budget, fail_on_drop, max_line_bytes, max_text_chars, workers, engine,
                 address, shard_size, exact_only, against, drop_leaks, quiet, progress_interval) -> None:  # fmt: skip
    """Profile token lengths, check and repair rows, and recommend max lengths.

    PATHS are JSONL (.jsonl/.json, also .gz/.zst), JSON arrays (.json), CSV/TSV or Parquet
    files, folders, globs, datasets save_to_disk folders, hub datasets (hf://ORG/NAME with
    --split), or - for stdin. FlagEmbedding rows (query, pos, neg) are read as they are,
    sentence-transformers columns (anchor, positive, negative or negative_1..n) through their
    mapping; --fields names others.
    """
    from lenprof.api import scan

    tokenizers = list(tokenizer) or [None]
    _check_tokenizers(tokenizers, for_tokenizer, fmt)
    if drop_leaks and not against:
        raise UsageProblem("--drop-leaks needs --against EVAL (the evaluation files to compare with)")
    if (split_edges or split_dir or token_budget) and not (split_edges and split_dir):
        raise UsageProblem(
            "--split-by-length EDGES and --split-dir DIR go together (--token-budget needs both)"
        )
    with usage_errors():
        options = ScanOptions(
            fields=Fields.parse(fields_spec),
            query_instruction=query_instruction,
            query_instruction_format=query_instruction_format,
            passage_instruction=passage_instruction,
            passage_instruction_format=passage_instruction_format,
            coverage=coverage,
            multiple_of=multiple_of,
            min_neg=min_neg,
            train_group_size=train_group_size,
            max_line_bytes=max_line_bytes,
            max_text_chars=max_text_chars,
        )
        split = None
        if split_edges:
            split = LengthBuckets.parse(split_edges, split_dir, token_budget, train_group_size or 8)
        _refuse_outputs_inside(paths, out, {"--clean-out": clean_out, "--split-dir": split_dir})
        _note_own_outputs(quiet, paths)
        with progress(quiet, progress_interval) as advance:
            how = dict(
                clean_out=clean_out, rejects_out=rejects, profile_out=out, report_out=report, split=split,
                clean_format=clean_format, engine=get_engine(engine, workers, address),
                shard_bytes=max(1, int(shard_size * (1 << 20))), exact_only=exact_only, against=against,
                drop_leaks=drop_leaks, dataset_split=dataset_split, on_progress=advance, require_kept=True,
            )  # fmt: skip
            if len(tokenizers) == 1:
                profile, comparison = scan(paths, options, tokenizer=tokenizers[0], **how), None
            else:
                comparison = compare(paths, options, tokenizers=tokenizers, **how)
                profile = comparison.profiles[0]
        if comparison is None:
            rendered = FORMATS[fmt](profile)
        else:
            rendered = render_comparison(fmt, comparison, for_tokenizer)

    used = profile.run.workers
    if workers is not None and used is not None and used < workers:
        log(quiet, f"--workers {workers} lowered to {used}: no more than the shards, or {PER_CORE} per core")
    for item in profile.inputs:
        if item.layout and item.layout != "as --fields":
            log(quiet, f"{item.path}: {item.layout}, read as --fields {item.fields}")
    emit(rendered)
    failed = profile.run.counting and profile.run.counting.fast_path_failed
    if failed:
        log(
            quiet,
            f"the piece-cache count disagreed with the tokenizer ({failed}); every text was counted again by the tokenizer",
        )
    for path, what in ((out, "profile"), (report, "report")):
        if path:
            log(quiet, f"{what} written to {path}")
    for name, entry in profile.buckets.items():
        size = f", batch_size {entry['batch_size']}" if entry["batch_size"] is not None else ""
        log(
            quiet,
            f"{entry['rows']} rows (longest {entry['max_len']} tokens{size}) written to {os.path.join(split_dir, name)}",
        )
    if clean_out:
        log(quiet, f"{profile.samples.kept} cleaned rows written to {clean_out}")
    a = profile.run.against
    if a is not None:
        found = sum(profile.samples.warnings.get(r, 0) for r in ("eval_query_leak", "eval_pos_leak"))
        found += profile.samples.dropped.get("eval_leak", 0)
        what = "dropped" if a.drop_leaks else "kept, with a warning (--drop-leaks drops them)"
        log(
            quiet,
            f"{found} training rows hold test data of {', '.join(a.files)} ({a.rows} test rows): {what}",
        )
    for target in profile.run.not_written or ():
        log(quiet, f"{target}: not written, as no row of its input was kept")
    for target, missing in (profile.run.filled or {}).items():
        filled = [
            f"{'the --query-instruction' if key == 'prompt' and query_instruction is not None else 'null'} "
            f"as {key!r} on {n} rows"
            for key, n in missing.items()
        ]
        log(quiet, f"{target}: every row has the same keys, written with {', '.join(filled)}")
    if rejects:
        log(quiet, f"{profile.dropped} dropped rows written to {rejects}")
    elif profile.dropped:
        log(quiet, f"{profile.dropped} rows dropped; --rejects FILE writes each with its line and reason")
    if fail_on_drop and profile.dropped:
        raise SystemExit(1)
