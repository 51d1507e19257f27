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
@click.option(
    "--forecast",
    "forecast_path",
    type=click.Path(exists=True, dir_okay=False),
    metavar="PROFILE",
    help="A profile from lenprof scan --model: compare the run's first steps with its zero-loss forecast.",
)
@opt.output_format(["table", "json"])
def diagnose_command(
    path, candidates, batch_size, group_size, world_size, no_in_batch_neg, forecast_path, fmt
) -> None:
    """Name what a finished run's loss history shows: a HF trainer_state.json (or its folder,
    e.g. a FlagEmbedding output dir) or lenprof's metrics.jsonl. Exit 1 when something is wrong."""
    import dataclasses
    import json

    from lenprof.train.diagnose import HistoryError, diagnose_path
    from lenprof.train.forecast import compare, forecast_of

    try:
        found = diagnose_path(path, candidates, batch_size, group_size, not no_in_batch_neg, world_size)
        forecast = forecast_of(forecast_path) if forecast_path else None
    except HistoryError as exc:
        raise UsageProblem(str(exc)) from exc
    except (OSError, ValueError, AttributeError) as exc:
        raise UsageProblem(
            f"{forecast_path}: not a lenprof profile ({exc}); write one with lenprof scan --model --out"
        ) from None
    if forecast_path and forecast is None:
        raise UsageProblem(
            f"{forecast_path}: no forecast in this profile; scan with --model MODEL to make one"
        )
    if forecast is not None:
        found = dataclasses.replace(found, forecast=compare(found.steps, forecast, forecast_path))
    if found.note:
        click.echo(f"lenprof: {found.note}", err=True)
    emit(json.dumps(found.to_dict(), indent=2) + "\n" if fmt == "json" else found.render())
    if found.trouble:
        raise SystemExit(1)
