"""``lenprof scan``: profile token lengths, check and repair rows, recommend max lengths."""

from __future__ import annotations

import json
import os

import click

from lenprof.api import compare, scan
from lenprof.cli.common import UsageProblem, emit, log, usage_errors
from lenprof.cli.options import PanelCommand, into
from lenprof.cli.progress import progress
from lenprof.cli.scan_args import EXAMPLES, PANELS, ScanArgs, scan_options
from lenprof.count.tokenizer import PACKAGED
from lenprof.engine import get_engine
from lenprof.engine.local import PER_CORE
from lenprof.io import storage
from lenprof.io.discover import skipped_outputs
from lenprof.report import FORMATS
from lenprof.report.compare import check_format, render_comparison
from lenprof.report.text import join_counts
from lenprof.rows import cleaned
from lenprof.stats.profile import Profile

# Lengths are the tokenizer's: measured with the wrong one, every number is off. A forgotten
# LENPROF_TOKENIZER is invisible in `-q --format args`, so this line is said even with -q.
DEFAULT_TOKENIZER_NOTE = (
    f"tokenizer: {PACKAGED} (the default; set --tokenizer or LENPROF_TOKENIZER to measure for your model)"
)


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
    for folder in (
        p for p in paths if p != "-" and ((storage.is_url(p) and p.endswith("/")) or storage.is_dir(p))
    ):
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
    if storage.is_url(folder) or storage.is_url(path):  # a prefix: its objects' URLs start with it
        return path.startswith(folder.rstrip("/") + "/")
    folder = os.path.realpath(folder)
    return os.path.realpath(path).startswith(folder.rstrip(os.sep) + os.sep)


@click.command("scan", cls=PanelCommand, panels=PANELS, examples=EXAMPLES)
@scan_options
@into(ScanArgs)
def scan_command(args: ScanArgs) -> None:
    """Profile token lengths, check and repair rows, and recommend max lengths.

    PATHS are JSONL (.jsonl/.json, also .gz/.zst), JSON arrays (.json), CSV/TSV or Parquet
    files, folders, globs, datasets save_to_disk folders, hub datasets (hf://ORG/NAME with
    --split), or - for stdin. FlagEmbedding rows (query, pos, neg) are read as they are,
    sentence-transformers columns (anchor, positive, negative or negative_1..n) through their
    mapping; --fields names others.
    """
    tokenizers = args.tokenizers
    _check_tokenizers(tokenizers, args.for_tokenizer, args.fmt)
    if args.drop_leaks and not args.against:
        raise UsageProblem("--drop-leaks needs --against EVAL (the evaluation files to compare with)")
    if (args.split_edges or args.split_dir or args.token_budget) and not (
        args.split_edges and args.split_dir
    ):
        raise UsageProblem(
            "--split-by-length EDGES and --split-dir DIR go together (--token-budget needs both)"
        )
    with usage_errors():
        options = args.scan_options()
        score = args.score_options()
        if score is not None and len(tokenizers) > 1:
            raise UsageProblem(
                "--model scores the rows once, with one --tokenizer: compare tokenizers in a scan of its own"
            )
        split = args.buckets()
        _refuse_outputs_inside(
            args.paths, args.out, {"--clean-out": args.clean_out, "--split-dir": args.split_dir}
        )
        _note_own_outputs(args.quiet, args.paths)
        with progress(args.quiet, args.progress_interval) as advance:
            how = dict(
                clean_out=args.clean_out, rejects_out=args.rejects, profile_out=args.out, report_out=args.report,
                split=split, clean_format=args.clean_format, engine=get_engine(args.engine, args.workers, args.address),
                shard_bytes=max(1, int(args.shard_size * (1 << 20))), exact_only=args.exact_only, against=args.against,
                memory_budget=args.memory_budget,
                drop_leaks=args.drop_leaks, dataset_split=args.dataset_split, on_progress=advance, require_kept=True,
            )  # fmt: skip
            if len(tokenizers) == 1:
                profile, comparison = (
                    scan(args.paths, options, tokenizer=tokenizers[0], score=score, **how),
                    None,
                )
            else:
                comparison = compare(args.paths, options, tokenizers=tokenizers, **how)
                profile = comparison.profiles[0]
        if comparison is None:
            rendered = FORMATS[args.fmt](profile)
        else:
            rendered = render_comparison(args.fmt, comparison, args.for_tokenizer)
    _say_what_was_done(args, profile, rendered)
    if args.fail_on_drop and profile.dropped:
        raise SystemExit(1)


def _say_what_was_done(args: ScanArgs, profile: Profile, rendered: str) -> None:
    """stdout gets the rendered profile; stderr one line per thing worth knowing, in this order."""
    quiet, run = args.quiet, profile.run
    if not args.tokenizer and not args.model:
        click.echo(f"lenprof: {DEFAULT_TOKENIZER_NOTE}", err=True)  # even with -q: see the note
    if args.workers is not None and run.workers is not None and run.workers < args.workers:
        log(
            quiet,
            f"--workers {args.workers} lowered to {run.workers}: no more than the shards, or {PER_CORE} per core",
        )
    for item in profile.inputs:
        if item.layout and item.layout != "as --fields":
            log(quiet, f"{item.path}: {item.layout}, read as --fields {item.fields}")
    emit(rendered)
    if run.counting and run.counting.fast_path_failed:
        log(
            quiet,
            f"the piece-cache count disagreed with the tokenizer ({run.counting.fast_path_failed}); every text was counted again by the tokenizer",
        )
    if run.texts_embedded is not None:
        cached = (
            f", {run.embeddings_cached} of them from the cache of earlier scans"
            if run.embeddings_cached
            else ""
        )
        log(quiet, f"{run.texts_embedded} distinct texts embedded by {profile.scoring['model']}{cached}")
    for path, what in ((args.out, "profile"), (args.report, "report")):
        if path:
            log(quiet, f"{what} written to {path}")
    for name, entry in profile.buckets.items():
        size = f", batch_size {entry['batch_size']}" if entry["batch_size"] is not None else ""
        log(
            quiet,
            f"{entry['rows']} rows (longest {entry['max_len']} tokens{size}) written to {os.path.join(args.split_dir, name)}",  # type: ignore[arg-type]
        )
    if args.clean_out:
        log(quiet, f"{profile.samples.kept} cleaned rows written to {args.clean_out}")
        unread = _unread_by_flagembedding(args.clean_out)
        if unread:
            log(
                quiet,
                f"{args.clean_out}: {len(unread)} cleaned files ({', '.join(unread[:2])}"
                f"{' and more' if len(unread) > 2 else ''}) are files FlagEmbedding's --train_data "
                "skips, as it reads .json and .jsonl only: --clean-format flagembedding writes .jsonl",
            )
    if run.against is not None:
        a = run.against
        found = sum(profile.samples.warnings.get(r, 0) for r in ("eval_query_leak", "eval_pos_leak"))
        found += profile.samples.dropped.get("eval_leak", 0)
        what = "dropped" if a.drop_leaks else "kept, with a warning (--drop-leaks drops them)"
        log(
            quiet,
            f"{found} training rows hold test data of {', '.join(a.files)} ({a.rows} test rows): {what}",
        )
    for target in run.not_written or ():
        log(quiet, f"{target}: not written, as no row of its input was kept")
    for target, missing in (run.filled or {}).items():
        filled = [
            f"{_filled_with(key, args.query_instruction)} as {key!r} on {n} rows"
            for key, n in missing.items()
        ]
        log(quiet, f"{target}: every row has the same keys, written with {', '.join(filled)}")
    if run.prompted and args.query_instruction is None:
        log(
            quiet,
            f"{run.prompted} rows have their own 'prompt', measured with it: FlagEmbedding trains it in its "
            "same-dataset mode, and in its default mode only with --query_instruction_for_retrieval set "
            '(pass "" for no instruction on the other rows); --query-instruction says which',
        )
    warnings = profile.samples.warnings
    if warnings and args.fmt != "table":  # the table lists them; no other format has room
        log(
            quiet,
            f"warnings: {join_counts(warnings, ' rows')}; --format table or --report FILE shows each with examples",
        )
    if args.rejects:
        log(quiet, f"{profile.dropped} dropped rows written to {args.rejects}")
    elif profile.dropped:
        log(quiet, f"{profile.dropped} rows dropped; --rejects FILE writes each with its line and reason")


def _filled_with(key: str, query_instruction: str | None) -> str:
    """What a cleaned row lacking ``key`` got (see rows/cleaned.py)."""
    if key == "prompt":
        return "the --query-instruction" if query_instruction is not None else '"" (no --query-instruction)'
    value = cleaned.fills(query_instruction).get(key)
    return "null" if value is None else json.dumps(value)


def _unread_by_flagembedding(clean: str) -> list[str]:
    """The files of a mirrored cleaned folder that FlagEmbedding would skip (all are this run's:
    a folder holding others is refused)."""
    if not os.path.isdir(clean):
        return []
    return sorted(
        os.path.relpath(os.path.join(root, name), clean)
        for root, _, names in os.walk(clean)
        for name in names
        if not name.lower().endswith((".json", ".jsonl"))
    )
