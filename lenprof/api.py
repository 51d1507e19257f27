"""lenprof's library entry points: :func:`scan` one corpus with one tokenizer, :func:`compare` several tokenizers on one corpus."""

from __future__ import annotations

from collections.abc import Callable, Sequence

from lenprof.count.tokenizer import LoadedTokenizer
from lenprof.engine.driver import Progress
from lenprof.engine.local import LocalEngine
from lenprof.engine.plan import DEFAULT_MEMORY_BUDGET, Outputs, make_plan
from lenprof.engine.run import scan_plan
from lenprof.io.buckets import LengthBuckets
from lenprof.io.records import DEFAULT_SHARD_BYTES
from lenprof.rows.options import ScanOptions
from lenprof.score.options import ScoreOptions
from lenprof.stats.comparison import Comparison
from lenprof.stats.profile import Profile

__all__ = ["compare", "scan"]


def scan(
    paths: Sequence[str] | str,
    options: ScanOptions | None = None,
    *,
    tokenizer: LoadedTokenizer | str | None = None,
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
    memory_budget: int = DEFAULT_MEMORY_BUDGET,
    against: Sequence[str] = (),
    drop_leaks: bool = False,
    on_progress: Callable[[Progress], None] | None = None,
    require_kept: bool = False,
    dataset_split: str | None = None,
    score: ScoreOptions | None = None,
) -> Profile:
    """Scan corpora and return their profile; optionally write cleaned rows, rejects, length
    buckets, the JSON profile and the HTML report (all moved into place together, or none).

    ``clean_out`` is one file, or a folder (``out/``) that mirrors the inputs; ``clean_format``
    is ``"input"`` (each row as read, repaired) or ``"flagembedding"`` (see ``cleaned.py``).
    ``tokenizer`` is a loaded tokenizer, a spec for :func:`load_tokenizer`, or None for the
    packaged default. ``engine`` is a ``LocalEngine`` (the default, with ``workers`` processes)
    or a ``RayEngine``. Neither the engine, the workers, ``shard_bytes``, ``exact_only`` (no
    piece-cache counting, see ``count/fast/``) nor ``memory_budget`` (bytes the corpus-wide
    decisions may hold in memory, past which they are made on disk: see ``external.py``) change
    a result. ``against`` names evaluation
    files whose queries and positives must not be in the training rows (see ``leaks.py``);
    ``drop_leaks`` drops the rows that hold them instead of warning. ``dataset_split`` picks the
    split of a ``datasets`` folder or hub id (``hf://ORG/NAME``); ``"-"`` among ``paths`` is stdin.
    ``score`` scores every kept row with a base model (``engine/scoring.py``: its flags, repairs
    and the zero-loss forecast in the profile's ``scoring``). Raises :class:`InputError` (or its ``OutputError``) for unusable inputs or outputs; bad rows
    never raise, they are dropped with a reason. With ``require_kept`` (as the CLI runs it), a
    scan that keeps no row raises :class:`NothingKept` and writes nothing.
    """
    outputs = Outputs(clean_out, rejects_out, profile_out, report_out, split, clean_format)
    plan = make_plan(
        paths, options, tokenizer=tokenizer, outputs=outputs, shard_bytes=shard_bytes, exact_only=exact_only,
        memory_budget=memory_budget, against=against, drop_leaks=drop_leaks, dataset_split=dataset_split, score=score,
    )  # fmt: skip
    return scan_plan(plan, engine or LocalEngine(workers), on_progress, require_kept)[0]


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
    memory_budget: int = DEFAULT_MEMORY_BUDGET,
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
        paths, options, tokenizer=first, outputs=outputs, shard_bytes=shard_bytes, exact_only=exact_only,
        memory_budget=memory_budget, against=against, drop_leaks=drop_leaks, dataset_split=dataset_split, others=others,
    )  # fmt: skip
    return Comparison(scan_plan(plan, engine or LocalEngine(workers), on_progress, require_kept))
