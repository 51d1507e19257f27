"""``lenprof recommend``: re-derive max lengths from a saved profile, without re-scanning."""

from __future__ import annotations

import click

from ..report import FORMATS
from .common import UsageProblem, emit, usage_errors


@click.command("recommend")
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
    from ..profile import Profile

    with usage_errors():
        profile = Profile.read(profile_path).recommend(coverage, multiple_of, True if cap is None else cap)
        if not profile.samples.kept:  # as scan: exit 2 for every format, never empty flags
            raise UsageProblem(f"{profile_path}: its scan kept no row, so there are no lengths to recommend")
        rendered = FORMATS[fmt](profile)
        if report:
            from ..outputs import Transaction, vet
            from ..report.html import render_html

            vet({"report": report}, [profile_path])
            with Transaction() as txn:
                txn.text(report, render_html(profile))
    emit(rendered)
