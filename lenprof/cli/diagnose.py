"""``lenprof diagnose``: name what a finished run's loss history shows."""

from __future__ import annotations

import click

from lenprof.cli import options as opt
from lenprof.cli.common import UsageProblem, emit
from lenprof.cli.options import PanelCommand


@click.command("diagnose", cls=PanelCommand)
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
@click.option(
    "--world-size",
    type=click.IntRange(min=1),
    default=1,
    show_default=True,
    help="Processes the run trained on, each query scored against all their batches (negatives_cross_device).",
)
@click.option("--no-in-batch-neg", is_flag=True, help="The run did not use in-batch negatives.")
@opt.output_format(["table", "json"])
def diagnose_command(path, candidates, batch_size, group_size, world_size, no_in_batch_neg, fmt) -> None:
    """Name what a finished run's loss history shows: a HF trainer_state.json (or its folder,
    e.g. a FlagEmbedding output dir) or lenprof's metrics.jsonl. Exit 1 when something is wrong."""
    import json

    from lenprof.train.diagnose import HistoryError, diagnose_path

    try:
        found = diagnose_path(path, candidates, batch_size, group_size, not no_in_batch_neg, world_size)
    except HistoryError as exc:
        raise UsageProblem(str(exc)) from exc
    if found.note:
        click.echo(f"lenprof: {found.note}", err=True)
    emit(json.dumps(found.to_dict(), indent=2) + "\n" if fmt == "json" else found.render())
    if found.trouble:
        raise SystemExit(1)
