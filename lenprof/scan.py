"""``scan()``: plan the scan, run it on an engine, write every output in one transaction.

plan (inputs found, outputs vetted, tokenizer loaded, shards cut)
  -> per shard, on a worker: read, check and repair, count tokens  (engines/shard.py)
  -> the driver merges in corpus order                               (engines/driver.py)
  -> one typed Profile, and every output moved into place together  (outputs.py)
"""

from __future__ import annotations

import dataclasses
import os
import time
from collections.abc import Callable, Sequence

from .buckets import LengthBuckets
from .engines.driver import FastPathFailed, Progress, drive
from .engines.local import LocalEngine
from .engines.plan import DEFAULT_SHARD_BYTES, Outputs, Plan, Shard, make_plan
from .engines.shard import ShardResult
from .fastcount import recognise
from .options import ScanOptions
from .outputs import Transaction
from .profile import Profile
from .tokenize import LoadedTokenizer


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
    engine=None,
    workers: int | None = None,
    shard_bytes: int = DEFAULT_SHARD_BYTES,
    exact_only: bool = False,
    on_progress: Callable[[Progress], None] | None = None,
) -> Profile:
    """Scan corpora and return their profile; optionally write cleaned rows, rejects, length
    buckets, the JSON profile and the HTML report (all moved into place together, or none).

    ``tokenizer`` is a loaded tokenizer, a spec for :func:`load_tokenizer`, or None for the
    packaged default. ``engine`` is a ``LocalEngine`` (the default, with ``workers`` processes)
    or a ``RayEngine``. Neither the engine, the workers, ``shard_bytes`` nor ``exact_only`` (no
    chunk-cache counting, see ``fastcount.py``) change a result.
    Raises :class:`InputError` (or its ``OutputError``) for unusable inputs or outputs; bad rows
    never raise, they are dropped with a reason.
    """
    outputs = Outputs(clean_out, rejects_out, profile_out, report_out, split)
    plan = make_plan(paths, options, tokenizer, outputs, shard_bytes, exact_only)
    return scan_plan(plan, engine or LocalEngine(workers), on_progress)[0]


def scan_plan(plan: Plan, engine, on_progress: Callable[[Progress], None] | None = None) -> list[Profile]:
    """Run a plan: one profile per tokenizer (the plan's, then those it compares)."""
    try:
        return run(plan, engine, on_progress)
    except FastPathFailed as exc:  # never expected: the self-check caught a wrong count
        profiles = run(dataclasses.replace(plan, exact_only=True), engine, on_progress)
        return [
            dataclasses.replace(
                p, run={**p.run, "counting": {**p.run["counting"], "fast_path_failed": str(exc)}}
            )
            for p in profiles
        ]


def run(plan: Plan, engine, on_progress: Callable[[Progress], None] | None = None) -> list[Profile]:
    """Run a plan on an engine and commit its outputs: one profile per tokenizer."""
    start = time.perf_counter()
    out = plan.outputs
    txn = Transaction()
    buckets: dict[str, dict] = {}

    def write(shard: Shard, result: ShardResult) -> None:
        if out.clean:
            sink = txn.rows(out.clean)
            sink.write(result.clean)
            if result.kinds is not None:
                sink.add_kinds(result.kinds)  # type: ignore[attr-defined]
        if out.rejects:
            txn.rows(out.rejects).write(result.rejects)
        for bucket, (lines, rows, longest) in result.buckets.items():
            path = out.buckets.path(plan.stems[shard.input], bucket)  # type: ignore[union-attr]
            txn.rows(path).write(lines)
            entry = buckets.setdefault(
                os.path.basename(path),
                {
                    "source": shard.path,
                    "bucket": out.buckets.name(bucket),  # type: ignore[union-attr]
                    "rows": 0,
                    "max_len": 0,
                    "batch_size": out.buckets.batch_size(bucket, plan.tokenizer.cap),  # type: ignore[union-attr]
                },
            )
            entry["rows"] += rows
            entry["max_len"] = max(entry["max_len"], longest)

    with txn:
        for path in (out.clean, out.rejects):
            if path:
                txn.rows(path)  # an output exists even when no row lands in it
        with engine.executor(plan) as executor:
            totals = drive(plan, executor, write, on_progress)
        files = {k: v for k, v in (("clean", out.clean), ("rejects", out.rejects)) if v}
        if out.buckets is not None:
            files["split"] = out.buckets.folder
        seconds = round(time.perf_counter() - start, 3)
        profiles = [
            dataclasses.replace(
                Profile.of(
                    t.stats,
                    tok.info,
                    plan.options,
                    [(i.path, i.describe()["format"]) for i in plan.inputs],
                    files,
                ),
                buckets=dict(sorted(buckets.items())),
                run={
                    **engine.describe(plan),
                    "shards": totals.shards,
                    "seconds": seconds,
                    "tokenize_s": round(totals.tokenize_seconds, 3),
                    "texts_tokenized": t.tokenized,
                    "counting": {
                        "path": _counting_path(plan, tok, t.fast),
                        "fast_share": round(t.fast / t.tokenized, 4) if t.tokenized else 0.0,
                        "self_checked": t.checked,
                    },
                },
            )
            for tok, t in zip(plan.tokenizers, [totals, *totals.others], strict=True)
        ]
        if out.profile:
            from .report.text import render_json

            txn.text(
                out.profile, render_json(profiles[0]) if len(profiles) == 1 else _comparison(profiles).json()
            )
        if out.report:
            from .report.html import render_html  # matplotlib loads only when a report is asked for

            report = render_html(profiles[0]) if len(profiles) == 1 else _comparison(profiles).html()
            txn.text(out.report, report)
    return profiles


def _comparison(profiles: list[Profile]):
    from .compare import Comparison

    return Comparison(profiles)


def _counting_path(plan: Plan, tokenizer: LoadedTokenizer, fast: int) -> str:
    """How the texts were counted: ``tokenizer``, or ``chunks:<family>`` (see ``fastcount.py``)."""
    rule = None if plan.exact_only or not fast else recognise(tokenizer.backend)
    return f"chunks:{rule.family}" if rule else "tokenizer"
