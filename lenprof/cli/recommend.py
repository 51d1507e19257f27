"""``lenprof recommend``: re-derive max lengths from a saved profile, without re-scanning."""

from __future__ import annotations

import click

from lenprof.cli import options as opt
from lenprof.cli.common import UsageProblem, emit, usage_errors
from lenprof.cli.options import PanelCommand
from lenprof.report import FORMATS


@click.command("recommend", cls=PanelCommand)
@click.argument("profile_path", metavar="PROFILE.json", type=click.Path(dir_okay=False))
@opt.coverage(None, "Percentile of texts that must fit untruncated [default: the profile's].")
@opt.multiple_of(None, "Round lengths up to a multiple of this [default: the profile's].")
@click.option(
    "--cap",
    type=click.IntRange(min=0),
    metavar="N",
    help="Longest allowed length, e.g. another model's limit; 0 for none [default: the profile's tokenizer cap].",
)
@opt.output_format()
@opt.report("Also write the HTML report with these settings.")
@opt.for_tokenizer("For a comparison of tokenizers")
def recommend_command(profile_path, coverage, multiple_of, cap, fmt, report, for_tokenizer) -> None:
    """Re-derive max lengths from a saved profile or comparison (scan --out) without re-scanning."""
    from lenprof.report.compare import render_comparison_html
    from lenprof.stats.comparison import Comparison, read_saved

    with usage_errors():
        saved = read_saved(profile_path).recommend(coverage, multiple_of, True if cap is None else cap)
        first = saved.profiles[0] if isinstance(saved, Comparison) else saved
        if not first.samples.kept:  # as scan: exit 2 for every format, never empty flags
            raise UsageProblem(f"{profile_path}: its scan kept no row, so there are no lengths to recommend")
        if isinstance(saved, Comparison):
            from lenprof.report.compare import render_comparison

            rendered = render_comparison(fmt, saved, for_tokenizer)
        elif for_tokenizer is not None:
            raise UsageProblem(
                f"--for-tokenizer: {profile_path} is the profile of one tokenizer; leave it out"
            )
        else:
            rendered = FORMATS[fmt](saved)
        if report:
            from lenprof.io.transaction import Transaction, vet
            from lenprof.report.html import render_html

            vet({"report": report}, [profile_path])
            with Transaction() as txn:
                txn.text(
                    report,
                    render_comparison_html(saved) if isinstance(saved, Comparison) else render_html(saved),
                )
    emit(rendered)
