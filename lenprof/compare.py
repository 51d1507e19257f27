"""Several tokenizers on one corpus, in one pass: choosing a base model means comparing them.

The corpus is read, checked and repaired once, each distinct text is cut into chunks once, and
every tokenizer counts it; each gets the profile a scan with it alone would give (the test holds
them equal), kept side by side in one JSON (``lenprof.comparison/1``: one profile per tokenizer).

    comparison = compare(["data/"], tokenizers=["BAAI/bge-base-en-v1.5", "BAAI/bge-m3"])
    [p.recommendation.passage_max_len for p in comparison.profiles]
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

from .buckets import LengthBuckets
from .comparison import SCHEMA, Comparison, read_saved
from .engines.driver import Progress
from .engines.local import LocalEngine
from .engines.plan import DEFAULT_SHARD_BYTES, Outputs, make_plan
from .options import ScanOptions
from .scan import scan_plan
from .tokenize import LoadedTokenizer

__all__ = ["SCHEMA", "Comparison", "compare", "read_saved"]


def compare(
    paths: Sequence[str] | str,
    options: ScanOptions | None = None,
    *,
    tokenizers: Sequence[LoadedTokenizer | str | None],
    clean_out: str | None = None,
    rejects_out: str | None = None,
    profile_out: str | None = None,
    report_out: str | None = None,
    split: LengthBuckets | None = None,
    clean_format: str = "input",
    engine=None,
    workers: int | None = None,
    shard_bytes: int = DEFAULT_SHARD_BYTES,
    exact_only: bool = False,
    against: Sequence[str] = (),
    drop_leaks: bool = False,
    dataset_split: str | None = None,
    on_progress: Callable[[Progress], None] | None = None,
    require_kept: bool = False,
) -> Comparison:
    """Scan once, count with every tokenizer: :func:`lenprof.scan` for several tokenizers.

    Cleaned rows, rejects and length buckets (by the first tokenizer's lengths) are written once;
    ``profile_out`` gets the comparison JSON and ``report_out`` the side-by-side report.
    """
    if not tokenizers:
        raise ValueError("compare() needs at least one tokenizer")
    first, *others = tokenizers
    outputs = Outputs(clean_out, rejects_out, profile_out, report_out, split, clean_format)
    plan = make_plan(
        paths,
        options,
        first,
        outputs,
        shard_bytes,
        exact_only,
        against,
        drop_leaks,
        dataset_split,
        others,  # type: ignore[arg-type]
    )
    return Comparison(scan_plan(plan, engine or LocalEngine(workers), on_progress, require_kept))
