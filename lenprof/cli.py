"""The ``lenprof`` command line: parse options, make one library call, render, exit.

Exit codes follow ruff's convention: 0 the command completed, 1 findings when asked to fail on
them (``--fail-on-drop``, ``diagnose`` finding trouble, a training run the watchdog stopped),
2 usage errors and unusable inputs or outputs, each with one line saying what to do. Ctrl-C
exits 130 and SIGTERM 143, after the workers are stopped and temporary files removed. No
traceback reaches a user; ``LENPROF_DEBUG=1`` shows one for an internal error.
"""

from __future__ import annotations

import contextlib
import os
import signal
import sys

import click

from . import __version__
from .buckets import LengthBuckets
from .config import default_map, set_envvars
from .engines import ENGINES, get_engine
from .engines.plan import DEFAULT_SHARD_BYTES
from .engines.pool import WorkerFailed
from .inputs import InputError
from .options import MAX_LINE_BYTES, OptionsError, ScanOptions
from .profile import ProfileError
from .recommend import NothingToRecommend
from .report import FORMATS
from .schema import Fields, FieldsError
from .tokenize import TokenizerError

# transformers warns on import that torch is absent; a length profile never needs torch.
os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")

# What the library raises for an input, output or option that cannot work: exit 2, one line.
USAGE_ERRORS = (InputError, TokenizerError, FieldsError, OptionsError, ProfileError, NothingToRecommend)


class UsageProblem(click.ClickException):
    """A message for the user, exit code 2 (bad flags, unreadable inputs, unknown tokenizer)."""

    exit_code = 2


class Terminated(BaseException):
    """SIGTERM, raised where the main thread is, so that every cleanup runs."""


@contextlib.contextmanager
def _usage_errors():
    try:
        yield
    except USAGE_ERRORS as exc:
        raise UsageProblem(str(exc)) from exc


def _out(text: str) -> None:
    """Write to stdout; a lone surrogate (from a damaged profile, say) goes out as its escape."""
    sys.stdout.buffer.write(text.encode("utf-8", "backslashreplace"))
    sys.stdout.flush()


def _log(quiet: bool, message: str) -> None:
    if not quiet:
        click.echo(f"lenprof: {message}", err=True)


def _progress(quiet: bool):
    """Per input: bytes read of its size, rows, rate and time left, on stderr, only on a
    terminal; transient, and never on stdout."""
    from rich.console import Console
    from rich.progress import (
        BarColumn,
        Progress,
        SpinnerColumn,
        TaskProgressColumn,
        TextColumn,
        TimeElapsedColumn,
        TimeRemainingColumn,
        TransferSpeedColumn,
    )

    console = Console(stderr=True)
    if quiet or not console.is_terminal:
        return contextlib.nullcontext(None)
    return Progress(
        SpinnerColumn(),
        TextColumn("{task.description}"),
        BarColumn(),
        TaskProgressColumn(),
        TextColumn("{task.fields[rows]:,} rows"),
        TransferSpeedColumn(),
        TimeElapsedColumn(),
        TextColumn("left"),
        TimeRemainingColumn(),
        console=console,
        transient=True,
    )


@click.group()
@click.version_option(__version__, prog_name="lenprof")
@click.pass_context
def main(ctx: click.Context) -> None:
    """Token-length profiles, data checks and cleaned data for embedding fine-tuning.

    Defaults come from [tool.lenprof] in the nearest pyproject.toml, then LENPROF_* environment
    variables, then flags (highest).
    """
    try:
        ctx.default_map = default_map(main.commands)
    except click.ClickException as exc:
        raise UsageProblem(exc.format_message()) from exc


@main.command()
@click.argument("paths", nargs=-1, required=True)
@click.option(
    "--tokenizer",
    envvar="LENPROF_TOKENIZER",
    help="Hub id, model folder or tokenizer.json [env: LENPROF_TOKENIZER; default: the packaged all-MiniLM-L6-v2].",
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
    type=click.FloatRange(0, 100, min_open=True),
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
    type=click.Path(dir_okay=False),
    help="Write kept rows, repaired, in input order (.jsonl, .jsonl.gz or .parquet).",
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
    help="A JSON line longer than this is dropped as line_too_long, read without holding it whole.",
)
@click.option(
    "--workers",
    type=click.IntRange(min=1),
    envvar="LENPROF_WORKERS",
    help="Worker processes [env: LENPROF_WORKERS; default: one per core, none for small inputs]. Results do not depend on it.",
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
    type=click.FloatRange(min=0, min_open=True),
    default=DEFAULT_SHARD_BYTES / (1 << 20),
    show_default=True,
    help="MiB of input per shard: a worker's unit of work. Results do not depend on it.",
)
@click.option(
    "--exact-only",
    is_flag=True,
    help="Count every text with the full tokenizer, never through the chunk cache (which is exact where used, and checks itself).",
)
@click.option("--quiet", "-q", is_flag=True, help="No progress or log lines on stderr.")
def scan_command(paths, tokenizer, fields_spec, query_instruction, query_instruction_format, passage_instruction,
                 passage_instruction_format, coverage, multiple_of, min_neg, train_group_size, fmt, out, clean_out,
                 rejects, report, split_edges, split_dir, token_budget, fail_on_drop, max_line_bytes, workers, engine,
                 address, shard_size, exact_only, quiet) -> None:  # fmt: skip
    """Profile token lengths, check and repair rows, and recommend max lengths.

    PATHS are JSONL (.jsonl/.json, also .gz/.zst) or Parquet files, folders, or globs.
    """
    from .scan import scan

    if (split_edges or split_dir or token_budget) and not (split_edges and split_dir):
        raise UsageProblem(
            "--split-by-length EDGES and --split-dir DIR go together (--token-budget needs both)"
        )
    with _usage_errors():
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
        )
        split = None
        if split_edges:
            split = LengthBuckets.parse(split_edges, split_dir, token_budget, train_group_size or 8)
        with _progress(quiet) as progress:
            tasks: dict[int, int] = {}

            def advance(event) -> None:
                if event.input not in tasks:
                    tasks[event.input] = progress.add_task(event.path, total=event.total, rows=0)
                task = tasks[event.input]
                progress.update(
                    task, completed=event.done, rows=progress.tasks[task].fields["rows"] + event.rows
                )

            profile = scan(
                paths, options, tokenizer=tokenizer, clean_out=clean_out, rejects_out=rejects, profile_out=out,
                report_out=report, split=split, engine=get_engine(engine, workers, address),
                shard_bytes=max(1, int(shard_size * (1 << 20))), exact_only=exact_only,
                on_progress=advance if progress else None,
            )  # fmt: skip
        try:
            rendered = FORMATS[fmt](profile)
        except NothingToRecommend as exc:
            raise UsageProblem(f"{exc}; see the rejects (--rejects FILE) for why") from exc

    _out(rendered)
    failed = profile.run.get("counting", {}).get("fast_path_failed")
    if failed:
        _log(
            quiet,
            f"the chunk-cache count disagreed with the tokenizer ({failed}); every text was counted again by the tokenizer",
        )
    for path, what in ((out, "profile"), (report, "report")):
        if path:
            _log(quiet, f"{what} written to {path}")
    for name, entry in profile.buckets.items():
        size = f", batch_size {entry['batch_size']}" if entry["batch_size"] is not None else ""
        _log(
            quiet,
            f"{entry['rows']} rows (longest {entry['max_len']} tokens{size}) written to {os.path.join(split_dir, name)}",
        )
    if clean_out:
        _log(quiet, f"{profile.samples.kept} cleaned rows written to {clean_out}")
    if rejects:
        _log(quiet, f"{profile.dropped} dropped rows written to {rejects}")
    elif profile.dropped:
        _log(quiet, f"{profile.dropped} rows dropped; --rejects FILE writes each with its line and reason")
    if profile.samples.read and not profile.samples.kept:
        reason, n = max(profile.samples.dropped.items(), key=lambda kv: kv[1])
        hint = " (does the data use other keys? see --fields)" if reason == "missing_field" else ""
        _log(quiet, f"no row was kept; the most common reason is {reason} ({n} rows){hint}")
    if fail_on_drop and profile.dropped:
        raise SystemExit(1)


@main.command("recommend")
@click.argument("profile_path", metavar="PROFILE.json", type=click.Path(dir_okay=False))
@click.option(
    "--coverage",
    type=click.FloatRange(0, 100, min_open=True),
    help="Percentile that must fit [default: the profile's].",
)
@click.option(
    "--multiple-of",
    type=click.IntRange(min=1),
    help="Round up to a multiple of this [default: the profile's].",
)
@click.option(
    "--cap",
    type=click.IntRange(min=0),
    help="Longest allowed length, e.g. another model's limit; 0 for none [default: the profile's tokenizer cap].",
)
@click.option("--format", "fmt", type=click.Choice(list(FORMATS)), default="table", show_default=True)
@click.option(
    "--report", type=click.Path(dir_okay=False), help="Also write the HTML report with these settings."
)
def recommend_command(profile_path, coverage, multiple_of, cap, fmt, report) -> None:
    """Re-derive max lengths from a saved profile (scan --out) without re-scanning."""
    from .profile import Profile

    with _usage_errors():
        profile = Profile.read(profile_path).recommend(coverage, multiple_of, True if cap is None else cap)
        rendered = FORMATS[fmt](profile)
        if report:
            from .outputs import Transaction, vet
            from .report.html import render_html

            vet({"report": report}, [profile_path])
            txn = Transaction()
            try:
                txn.text(report, render_html(profile))
                txn.commit()
            except BaseException:
                txn.abort()
                raise
    _out(rendered)


@main.command("diagnose")
@click.argument("path", type=click.Path(exists=True))
@click.option(
    "--candidates",
    type=click.IntRange(min=1),
    help="Candidates per query (to spot a plateau at ln(candidates)).",
)
@click.option(
    "--batch-size",
    type=click.IntRange(min=1),
    help="Per-device batch size (with --group-size, instead of --candidates).",
)
@click.option(
    "--group-size",
    type=click.IntRange(min=1),
    help="train_group_size: 1 positive + (group size - 1) negatives per query.",
)
@click.option("--world-size", type=click.IntRange(min=1), default=1, show_default=True)
@click.option("--no-in-batch-neg", is_flag=True, help="The run did not use in-batch negatives.")
@click.option("--format", "fmt", type=click.Choice(["table", "json"]), default="table", show_default=True)
def diagnose_command(path, candidates, batch_size, group_size, world_size, no_in_batch_neg, fmt) -> None:
    """Name what a finished run's loss history shows: a HF trainer_state.json (or its folder,
    e.g. a FlagEmbedding output dir) or lenprof's metrics.jsonl. Exit 1 when something is wrong."""
    import json

    from .train.diagnose import HistoryError, diagnose_path

    try:
        found = diagnose_path(path, candidates, batch_size, group_size, not no_in_batch_neg, world_size)
    except HistoryError as exc:
        raise UsageProblem(str(exc)) from exc
    if found.note:
        click.echo(f"lenprof: {found.note}", err=True)
    _out(json.dumps(found.to_dict(), indent=2) + "\n" if fmt == "json" else found.render())
    if found.trouble:
        raise SystemExit(1)


@main.command("train")
@click.argument("paths", nargs=-1, required=True)
@click.option("--model", help="Hub id or folder [default: the packaged all-MiniLM-L6-v2].")
@click.option(
    "--output-dir",
    required=True,
    type=click.Path(file_okay=False),
    help="Where the model, metrics.jsonl, loss.png and reports go.",
)
@click.option(
    "--profile",
    "profile_path",
    type=click.Path(dir_okay=False),
    help="Take lengths from a saved scan profile.",
)
@click.option("--query-max-len", type=click.IntRange(min=2), help="Instead of the scan's recommendation.")
@click.option("--passage-max-len", type=click.IntRange(min=2), help="Instead of the scan's recommendation.")
@click.option("--epochs", type=click.IntRange(min=1), default=1, show_default=True)
@click.option("--max-steps", type=click.IntRange(min=1), help="Stop after this many steps.")
@click.option(
    "--batch-size",
    type=click.IntRange(min=1),
    default=8,
    show_default=True,
    help="Queries per device per step.",
)
@click.option(
    "--train-group-size",
    "group_size",
    type=click.IntRange(min=1),
    default=8,
    show_default=True,
    help="1 positive + (n - 1) negatives per query.",
)
@click.option("--no-in-batch-neg", is_flag=True, help="Score each query against its own group only.")
@click.option("--temperature", type=click.FloatRange(min=0, min_open=True), default=0.02, show_default=True)
@click.option("--learning-rate", type=click.FloatRange(min=0, min_open=True), default=1e-5, show_default=True)
@click.option("--warmup-ratio", type=click.FloatRange(0, 1), default=0.1, show_default=True)
@click.option("--max-grad-norm", type=click.FloatRange(min=0, min_open=True), default=1.0, show_default=True)
@click.option(
    "--pooling",
    type=click.Choice(["cls", "mean"]),
    help="[default: the model's sentence-transformers config, else cls]",
)
@click.option("--query-instruction", metavar="TEXT")
@click.option("--query-instruction-format", default="{}{}", show_default=True)
@click.option("--passage-instruction", metavar="TEXT")
@click.option("--passage-instruction-format", default="{}{}", show_default=True)
@click.option("--gradient-checkpointing", is_flag=True)
@click.option(
    "--group-by-length", is_flag=True, help="Batch texts of similar length together (less padding)."
)
@click.option(
    "--precision",
    type=click.Choice(["no", "fp16", "bf16"]),
    help="[default: bf16 (else fp16) on GPU, fp32 on CPU]",
)
@click.option("--seed", type=int, default=42, show_default=True)
@click.option("--save-steps", type=click.IntRange(min=1), default=500, show_default=True)
@click.option("--resume", is_flag=True, help="Continue from the latest checkpoint in OUTPUT_DIR/checkpoints.")
@click.option(
    "--eval-split",
    type=click.FloatRange(0, 0.5),
    default=0.0,
    show_default=True,
    help="Share of rows held out for recall@10 / MRR@10 before and after.",
)
@click.option("--on-collapse", type=click.Choice(["recover", "stop"]), default="recover", show_default=True)
@click.option(
    "--collapse-steps",
    type=click.IntRange(min=2),
    default=20,
    show_default=True,
    help="Steps of near-zero loss that make a collapse.",
)
@click.option("--max-recoveries", type=click.IntRange(min=0), default=3, show_default=True)
@click.option("--quiet", "-q", is_flag=True)
def train_command(paths, model, output_dir, profile_path, query_max_len, passage_max_len, epochs, max_steps, batch_size,
                  group_size, no_in_batch_neg, temperature, learning_rate, warmup_ratio, max_grad_norm, pooling,
                  query_instruction, query_instruction_format, passage_instruction, passage_instruction_format,
                  gradient_checkpointing, group_by_length, precision, seed, save_steps, resume, eval_split, on_collapse, collapse_steps,
                  max_recoveries, quiet) -> None:  # fmt: skip
    """Fine-tune an embedding model on DATA, cleaned by a scan, at the recommended lengths.

    The loss is watched live (metrics.jsonl, loss.png): easy batches are counted, a collapse
    restores the last healthy weights and halves the learning rate. Runs on CPU, one GPU, or
    several under `accelerate launch -m lenprof train ...` / torchrun.
    """
    try:
        import accelerate  # noqa: F401
        import torch  # noqa: F401
    except ImportError as exc:
        raise UsageProblem(
            f"lenprof train needs the train extra ({exc.name} is missing): pip install 'lenprof[train]'"
        ) from exc
    from .train.run import TrainSetupError, default_model, scan_then_train, summary
    from .train.trainer import TrainConfig, TrainError

    with _usage_errors():
        cfg = TrainConfig(
            data="", model=default_model(model), output_dir=output_dir, query_max_len=query_max_len,
            passage_max_len=passage_max_len, epochs=epochs, max_steps=max_steps, batch_size=batch_size,
            group_size=group_size, in_batch_negatives=not no_in_batch_neg, temperature=temperature,
            learning_rate=learning_rate, warmup_ratio=warmup_ratio, max_grad_norm=max_grad_norm, pooling=pooling,
            query_instruction=query_instruction, query_instruction_format=query_instruction_format,
            passage_instruction=passage_instruction, passage_instruction_format=passage_instruction_format,
            gradient_checkpointing=gradient_checkpointing, group_by_length=group_by_length, mixed_precision=precision,
            seed=seed, save_steps=save_steps, resume=resume, eval_split=eval_split, on_collapse=on_collapse,
            collapse_steps=collapse_steps, max_recoveries=max_recoveries,
        )  # fmt: skip
        try:
            _, report = scan_then_train(
                paths,
                cfg,
                profile_path,
                log=(lambda m: None) if quiet else (lambda m: click.echo(m, err=True)),
            )
        except (TrainError, TrainSetupError) as exc:
            raise UsageProblem(str(exc)) from exc
    _out(summary(report, output_dir))
    if report["stopped"]:
        raise SystemExit(1)


for _command in main.commands.values():
    set_envvars(_command)


def _terminate(signum, frame) -> None:
    raise Terminated()


def entry() -> None:
    """The ``lenprof`` console script: ``main`` with signals and every error turned into an
    exit code and one line."""
    signal.signal(signal.SIGTERM, _terminate)
    try:
        code = main.main(standalone_mode=False)
    except click.exceptions.Exit as exc:
        code = exc.exit_code
    except click.ClickException as exc:
        exc.show()
        code = exc.exit_code
    except (KeyboardInterrupt, click.exceptions.Abort):
        click.echo("lenprof: interrupted; no output of this run was changed", err=True)
        code = 130
    except Terminated:
        click.echo("lenprof: terminated; no output of this run was changed", err=True)
        code = 143
    except BrokenPipeError:  # stdout closed early (lenprof ... | head): not an error
        with contextlib.suppress(OSError):
            sys.stdout = open(os.devnull, "w")  # noqa: SIM115 - silence the flush at exit
        code = 0
    except WorkerFailed as exc:
        if os.environ.get("LENPROF_DEBUG"):
            raise
        click.echo(f"Error: {str(exc).splitlines()[0]} (LENPROF_DEBUG=1 shows the details)", err=True)
        code = 2
    except Exception as exc:
        if os.environ.get("LENPROF_DEBUG"):
            raise
        click.echo(
            f"Error: internal error: {type(exc).__name__}: {exc} (LENPROF_DEBUG=1 shows the traceback; please report it)",
            err=True,
        )
        code = 2
    sys.exit(code if isinstance(code, int) else 0)
