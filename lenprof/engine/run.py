"""``scan()``: plan the scan, run it on an engine, write every output in one transaction.

plan (inputs found, outputs vetted, tokenizer loaded, shards cut)
  -> per shard, on a worker: read, check and repair, count tokens  (engine/worker.py)
  -> the driver merges in corpus order                               (engine/driver.py)
  -> one typed Profile, and every output moved into place together  (io/transaction.py)
"""

from __future__ import annotations

import dataclasses
import os
import time
from collections.abc import Callable

from lenprof.engine.driver import FastPathFailed, OverBudget, Progress, drive
from lenprof.engine.external import drive_external
from lenprof.engine.plan import Plan
from lenprof.engine.results import ShardResult
from lenprof.engine.scoring import summary
from lenprof.errors import InputError
from lenprof.io import storage
from lenprof.io.readers import stdin
from lenprof.io.records import Shard
from lenprof.io.transaction import Transaction
from lenprof.rows import cleaned
from lenprof.rows.checks import partial_keys
from lenprof.rows.options import OptionsError
from lenprof.stats.comparison import Comparison
from lenprof.stats.profile import Profile
from lenprof.stats.runinfo import Against, Counting, RunInfo


class NothingKept(InputError):
    """The scan kept no row: nothing to profile or train on. Exit code 2, and like every failed
    run it writes no output (a good cleaned file from an earlier run is not replaced by an
    empty one), so the message carries the counts and the first example of the main reason.
    ``profile`` is the profile of the run, for callers who want it anyway."""

    def __init__(self, profile: Profile) -> None:
        self.profile = profile
        s = profile.samples
        if not s.read:
            super().__init__("no row was read: the inputs hold no rows (blank lines only, or empty files)")
            return
        ranked = sorted(s.dropped.items(), key=lambda kv: -kv[1])
        counts = ", ".join(f"{reason} {n}" for reason, n in ranked)
        first = profile.examples.get(ranked[0][0], [])[:1]
        example = "".join(f"; first {ranked[0][0]}: {e.source} line {e.line}: {e.detail}" for e in first)
        hint = {
            "missing_field": "; does the data use other keys? see --fields",
            "no_negatives": "; to train on in-batch negatives only, --min-neg 0 keeps rows without any",
        }.get(ranked[0][0], "")
        super().__init__(
            f"no row was kept: {s.read} read, all dropped ({counts}){example}{hint}; no output was written"
        )


def scan_plan(
    plan: Plan, engine, on_progress: Callable[[Progress], None] | None = None, require_kept: bool = False
) -> list[Profile]:
    """Run a plan: one profile per tokenizer (the plan's, then those it compares). When the fast
    count's self-check fails (never expected: it caught a wrong count), nothing is written and the
    whole scan runs again with the tokenizer alone: every input is read a second time, stdin
    from its spool (see ``io/readers/stdin.py``), and the run record says why. When the
    decisions outgrow the memory budget in memory, the scan starts again out of core
    (``external.py``), as it starts there when the inputs are far larger than the budget."""
    why = None
    plan = engine.fit(plan)
    try:
        while True:
            try:
                return run(plan, engine, on_progress, require_kept, fast_path_failed=why)
            except FastPathFailed as exc:
                plan, why = dataclasses.replace(plan, exact_only=True), str(exc)
                again = "the fast count's self-check failed: every text is counted again by the tokenizer"
            except OverBudget:  # decided in memory until the tables outgrew the budget
                if plan.score is not None:
                    raise InputError(
                        "--model keeps every distinct text's embedding in memory, and they outgrew "
                        f"--memory-budget ({plan.memory_budget >> 20} MiB): raise it, or score a part of the corpus"
                    ) from None
                plan = dataclasses.replace(plan, out_of_core=True)
                again = "the corpus outgrew --memory-budget in memory: starting again out of core (docs/engines.md)"
            if on_progress is not None:
                on_progress(Progress(0, "", 0, 0, 0, again=again))
    finally:
        stdin.release()


def run(
    plan: Plan,
    engine,
    on_progress: Callable[[Progress], None] | None = None,
    require_kept: bool = False,
    fast_path_failed: str | None = None,
) -> list[Profile]:
    """Run a plan on an engine and commit its outputs: one profile per tokenizer.
    ``fast_path_failed`` says why this run counts exactly, for the run record."""
    start = time.perf_counter()
    out = plan.outputs
    txn = Transaction()
    buckets: dict[str, dict] = {}
    mirrored = out.clean is not None and cleaned.is_folder(out.clean)
    clean_targets = set(plan.clean_targets)  # looked up once per target: 20,000 with a mirror
    fill = cleaned.fills(plan.options.query_instruction)  # a row's missing key: see cleaned.py
    trained = set(clean_targets)  # what FlagEmbedding may train on: cleaned files, length buckets

    def write(shard: Shard, result: ShardResult) -> None:
        if out.clean and (result.clean or not mirrored):
            sink = txn.rows(plan.clean_targets[shard.input], fill)
            sink.write(result.clean)
            sink.add_keys(result.keys, result.stats.kept)
            if result.kinds is not None:
                sink.add_kinds(result.kinds)  # type: ignore[attr-defined]
        if out.rejects:
            txn.rows(out.rejects).write(result.rejects)
        for bucket, (lines, rows, longest, keys) in result.buckets.items():
            path = out.buckets.path(plan.stems[shard.input], bucket)  # type: ignore[union-attr]
            trained.add(path)
            sink = txn.rows(path, fill)
            sink.write(lines)
            sink.add_keys(keys, rows)
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
        # An output exists even when no row lands in it; but a mirrored file exists only with rows,
        # as FlagEmbedding's loader fails on an empty file in its folder.
        for path in (*([] if mirrored else plan.clean_targets), out.rejects):
            if path:
                txn.rows(path, fill)
        with engine.executor(plan) as executor:
            try:
                totals = (drive_external if plan.out_of_core else drive)(plan, executor, write, on_progress)
            except Exception as exc:
                if not storage.unanswered(str(exc)):  # a silent server: asking again would wait again
                    plan.unchanged()  # a file that changed is the cause to name, not what it caused
                raise
        plan.unchanged()  # every byte is read: one that changed meanwhile spoils the result
        for tally in [totals, *totals.others]:  # one per tokenizer, the same rows
            partial_keys(tally.stats.presence, [i.path for i in plan.inputs], tally.stats)
        _refuse_untrainable_prompts(plan, totals.stats)
        written = [t for t in txn.targets() if t in trained]
        if any(txn.rows(t).keys.get("prompt") for t in written):
            for target in written:  # FlagEmbedding concatenates its files: prompts everywhere
                txn.rows(target).require("prompt")
        files = {k: v for k, v in (("clean", out.clean), ("rejects", out.rejects)) if v}
        if out.buckets is not None:
            files["split"] = out.buckets.folder
        seconds = round(time.perf_counter() - start, 3)
        inputs = [
            (i.path, i.describe()["format"], *_layout(layout), i.split)
            for i, layout in zip(plan.inputs, plan.layouts or [None] * len(plan.inputs), strict=True)
        ]
        profiles = [
            dataclasses.replace(
                Profile.of(tally.stats, tok.info, plan.options, inputs, files),
                buckets=dict(sorted(buckets.items())),
                run=RunInfo(
                    **engine.describe(plan),
                    shards=totals.shards,
                    seconds=seconds,
                    tokenize_s=round(totals.tokenize_seconds, 3),
                    against=Against(tuple(plan.against.paths), plan.against.rows, plan.drop_leaks)
                    if plan.against
                    else None,
                    filled={
                        t: missing
                        for t in txn.targets()
                        if t in trained and (missing := txn.rows(t).missing())
                    },
                    not_written=tuple(t for t in dict.fromkeys(plan.clean_targets) if t not in txn.targets()),
                    prompted=sum(p.have["prompt"] for p in tally.stats.presence.values()) or None,
                    texts_tokenized=tally.tokenized,
                    counting=Counting(
                        path=tally.path if tally.fast and not plan.exact_only else "tokenizer",
                        fast_share=round(tally.fast / tally.tokenized, 4) if tally.tokenized else 0.0,
                        self_checked=tally.checked,
                        fast_path_failed=fast_path_failed,
                    ),
                    out_of_core=plan.out_of_core or None,
                ),
            )
            for tok, tally in zip(plan.tokenizers, [totals, *totals.others], strict=True)
        ]
        if plan.score is not None:
            found = summary(plan.score, plan.options.train_group_size, totals)
            run_info = dataclasses.replace(
                profiles[0].run, texts_embedded=totals.embedded, embeddings_cached=totals.from_cache
            )
            profiles[0] = dataclasses.replace(profiles[0], scoring=found, run=run_info)
        if require_kept and not profiles[0].samples.kept:  # before the commit: a failed run writes nothing
            raise NothingKept(profiles[0])
        if out.profile:
            from lenprof.report.text import render_json

            profile_json = render_json(profiles[0]) if len(profiles) == 1 else Comparison(profiles).json()
            txn.text(out.profile, profile_json, last=True)  # the manifest: in place after the rest
        if out.report:
            from lenprof.report.compare import render_comparison_html
            from lenprof.report.html import render_html

            report = (
                render_html(profiles[0])
                if len(profiles) == 1
                else render_comparison_html(Comparison(profiles))
            )
            txn.text(out.report, report)
    return profiles


def _layout(layout) -> tuple:
    """How an input was read, for the profile: (layout, fields), or nothing when as FlagEmbedding's rows."""
    if layout is None or layout.name in ("flagembedding", "unknown"):
        return (None, None)
    return (layout.name, layout.fields.spec())


def _refuse_untrainable_prompts(plan: Plan, stats) -> None:
    """FlagEmbedding's own format with prompts on some rows and no ``--query-instruction``: its
    default mode ignores every prompt and its same-dataset mode trains the rest as ``"None" +
    query``, so no cleaned file could train as measured. Stop, naming the rows and the flag."""
    lacking = stats.warnings.get("partial_prompt", 0)
    if (
        not lacking
        or plan.options.query_instruction is not None
        or plan.outputs.clean_format != "flagembedding"
    ):
        return
    where = ", ".join(f"{e.source}:{e.line}" for e in stats.examples.get("partial_prompt", [])[:3])
    raise OptionsError(
        f"{lacking} kept rows have no 'prompt' while others do (e.g. {where}), and FlagEmbedding "
        "trains those as 'None' + query: pass --query-instruction TEXT, the instruction you give its "
        "--query_instruction_for_retrieval ('' for none), and it is written as their prompt"
    )
