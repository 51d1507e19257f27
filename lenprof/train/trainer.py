"""``lenprof train``: fine-tune an embedding model on cleaned rows, with the loss watched live.

The loop reads top to bottom: sample groups -> batch -> encode queries and passages at their own
max lengths -> InfoNCE -> clip -> step, one line of metrics a step (full-precision loss, gradient
norm, learning rate, embedding spread). accelerate provides devices, mixed precision, DDP under
``accelerate launch``/``torchrun`` and checkpoint state. The watchdog turns the metrics into
events (guard.py); a collapse restores the snapshot, cuts the learning rate and warms it up again
(up to ``max_recoveries`` times) unless ``on_collapse="stop"``. The run is judged by retrieval on
held-out rows (heldout.py; with too few rows, on up to 64 of its own): it ends with the best
weights measured, and a run whose best is the starting model exits 1 with those saved. A fixed
training batch (the probe) is only the cheap first look before a snapshot is measured.
"""

from __future__ import annotations

import json
import math
import random
import time
from dataclasses import asdict
from pathlib import Path

import numpy as np
import torch

from lenprof.rows.groups import GroupSampler, Row, batches, read_rows
from lenprof.train.config import TrainConfig, TrainError, _instructions, _precision
from lenprof.train.evaluate import Retrieval, embedder_encode, retrieval
from lenprof.train.guard import Guard, MetricsLog, current_lr
from lenprof.train.health import ADVICE, candidates_per_query
from lenprof.train.heldout import AUTO_MIN, Judge, eval_every, hold_out
from lenprof.train.loss import contrastive_loss
from lenprof.train.model import Embedder, default_pooling
from lenprof.train.snapshot import Snapshot


def train(cfg: TrainConfig, log=print) -> dict:
    from accelerate import Accelerator, DistributedDataParallelKwargs
    from transformers import AutoTokenizer, get_linear_schedule_with_warmup
    from transformers.utils import logging as hf_logging

    hf_logging.disable_progress_bar()  # stderr carries lenprof's own lines

    # cpu=True on a machine without CUDA: only then does accelerate join the processes that
    # torchrun started into one gloo group (without it each trains alone, silently).
    # find_unused_parameters: encoders such as BERT carry a pooler that embeddings never use.
    ddp = DistributedDataParallelKwargs(find_unused_parameters=True)
    accelerator = Accelerator(
        mixed_precision=_precision(cfg), cpu=not torch.cuda.is_available(), kwargs_handlers=[ddp]
    )
    world = accelerator.num_processes
    # In-batch negatives are this device's passages, or every device's with negatives_cross_device.
    candidates = candidates_per_query(
        cfg.batch_size, cfg.group_size, cfg.in_batch_negatives, world if cfg.negatives_cross_device else 1
    )
    if candidates == 1:
        raise TrainError(
            "each query would have one candidate (batch size 1 and group size 1, or group size 1 without in-batch "
            f"negatives), so the loss is exactly 0 and nothing learns: {ADVICE['single_candidate']}"
        )
    random.seed(cfg.seed)
    torch.manual_seed(cfg.seed)
    out = Path(cfg.output_dir)
    out.mkdir(parents=True, exist_ok=True)

    rows = read_rows(cfg.data)
    if cfg.eval_data:
        held: list[Row] = read_rows(cfg.eval_data)
    else:
        rows, held, note = hold_out(rows, cfg.eval_split, cfg.seed)
        if note:
            log(f"lenprof: {note}")
    # Without held-out rows the run is judged the same way on some of its own rows: that still
    # tells a collapse from learning, though not learning from memorising.
    judged = f"{len(held)} held-out queries" if held else ""
    if not held:
        held = random.Random(cfg.seed).sample(rows, min(AUTO_MIN, len(rows)))
        judged = f"{len(held)} training queries (none held out)"
    sampler = GroupSampler(rows, cfg.group_size, cfg.seed)
    if sampler.skipped:
        log(
            f"lenprof: {sampler.skipped} rows have no negatives and are left out (scan with --min-neg 1 drops them)"
        )
    if sampler.short_rows:
        log(f"lenprof: {sampler.short_rows} of {len(rows)} rows have fewer than {cfg.group_size - 1} negatives; "
            "their negatives repeat within a group")  # fmt: skip
    distill = cfg.kd_loss_type is not None
    if distill and not all(r.pos_scores is not None and r.neg_scores is not None for r in sampler.rows):
        raise TrainError(f"{cfg.data}: knowledge distillation needs pos_scores and neg_scores (one score per "
                         "passage) in every row")  # fmt: skip

    tokenizer = AutoTokenizer.from_pretrained(cfg.tokenizer or cfg.model)
    pooling = cfg.pooling or default_pooling(cfg.model)
    model = Embedder(cfg.model, pooling, cfg.gradient_checkpointing)
    per_epoch = len(
        batches(sampler.epoch(0), cfg.batch_size * world, cfg.seed, by_length=cfg.group_by_length)
    )
    if per_epoch == 0:
        where = f"; the rows the scan left out, and why, are in {cfg.rejects}" if cfg.rejects else ""
        raise TrainError(
            f"{cfg.data}: {len(sampler.rows)} rows make no full batch of {cfg.batch_size * world}{where}"
        )
    total = cfg.max_steps or cfg.epochs * per_epoch
    optimizer = torch.optim.AdamW(model.parameters(), lr=cfg.learning_rate, weight_decay=cfg.weight_decay)
    scheduler = get_linear_schedule_with_warmup(optimizer, int(cfg.warmup_ratio * total), total)
    # The scheduler stays unprepared: accelerate would step it once per process per step, while
    # ``total`` already counts global steps. It is still saved with checkpoints.
    model, optimizer = accelerator.prepare(model, optimizer)
    accelerator.register_for_checkpointing(scheduler)
    inner = accelerator.unwrap_model(model)

    report: dict = {
        "config": asdict(cfg),
        "pooling": pooling,
        "candidates_per_query": candidates,
        "precision": _precision(cfg),
        "world_size": world,
    }
    texts = _instructions(cfg)

    def measure() -> Retrieval:
        """Held-out retrieval now; every process scores the whole set, and they agree on the mean."""
        r = retrieval(held, embedder_encode(inner, tokenizer, cfg.query_max_len, cfg.passage_max_len,
                                            accelerator.device), texts)  # fmt: skip
        if world > 1:
            recall, mrr = accelerator.reduce(
                torch.tensor([r.recall, r.mrr], device=accelerator.device), "mean"
            )
            r = Retrieval(float(recall), float(mrr), r.queries, r.corpus)
        return r

    def encode(batch):
        """This process's share of a global batch -> embeddings, teacher scores."""
        mine = batch[accelerator.process_index :: world]
        queries = [texts.query_text(g.query, g.prompt) for g in mine]
        passages = [texts.passage_text(t) for g in mine for t in g.passages]
        q_in = tokenizer(
            queries, truncation=True, max_length=cfg.query_max_len, padding=True, return_tensors="pt"
        ).to(accelerator.device)
        p_in = tokenizer(
            passages, truncation=True, max_length=cfg.passage_max_len, padding=True, return_tensors="pt"
        ).to(accelerator.device)
        teacher = torch.tensor([g.scores for g in mine], device=accelerator.device) if distill else None
        with accelerator.autocast():
            q, p = model(**q_in, passages=dict(p_in))  # (B, d), (B * G, d)
        return q, p, teacher  # teacher: (B, G)

    def loss_of(q, p, teacher):
        return contrastive_loss(q, p, cfg.group_size, cfg.temperature, cfg.in_batch_negatives,
                                cfg.negatives_cross_device, teacher, cfg.kd_loss_type or "kl_div")  # fmt: skip

    def probe() -> float:
        """The loss of a fixed batch (the first of epoch 0), no gradient, no dropout: the run's own
        measure of whether its weights got better or worse than where they started. The random
        state is put back afterwards, so probing leaves the training run as it would have been."""
        rng = torch.get_rng_state(), torch.cuda.get_rng_state_all() if torch.cuda.is_available() else None
        model.eval()
        try:
            with torch.no_grad():
                return float(accelerator.reduce(loss_of(*encode(first_batch)).detach(), "mean"))
        finally:
            model.train()
            torch.set_rng_state(rng[0])
            if rng[1] is not None:
                torch.cuda.set_rng_state_all(rng[1])

    step, resumed = 0, None
    ckpt_dir = out / "checkpoints"
    if cfg.resume and ckpt_dir.is_dir() and any(ckpt_dir.iterdir()):
        latest = max(ckpt_dir.iterdir(), key=lambda p: int(p.name.split("-")[-1]))
        accelerator.load_state(str(latest))
        resumed = json.loads((latest / "lenprof.json").read_text())
        step = resumed["step"]
        log(f"lenprof: resumed from {latest} at step {step}")

    first_batch = batches(sampler.epoch(0), cfg.batch_size * world, cfg.seed, by_length=cfg.group_by_length)[
        0
    ]
    probe_start = resumed["probe_start"] if resumed and "probe_start" in resumed else probe()
    snapshot = Snapshot(cfg.snapshot, out, rank=accelerator.process_index)
    # after a restore the rate warms up again, over twice the run's own warmup (at least 10 steps)
    guard = Guard(candidates, snapshot, cfg.collapse_steps, cfg.on_collapse, cfg.max_recoveries,
                  _precision(cfg), log, rewarm=max(10, 2 * int(cfg.warmup_ratio * total)))  # fmt: skip
    metrics = MetricsLog(out / "metrics.jsonl", step if resumed else None, accelerator.is_main_process)
    if resumed:
        guard.load_state(resumed, metrics.kept, scheduler)
    # The starting weights cost no memory where they can be read again from the model's files.
    files = inner.files_state if inner.from_files else None
    per_step = cfg.batch_size * world * (1 + cfg.group_size)
    judge = Judge(measure, snapshot, eval_every(held, per_step, cfg.collapse_steps), log, judged,
                  strict=lambda: guard.recoveries > 0)  # fmt: skip
    # a resumed run keeps its starting score where the starting weights can be read again (else
    # the weights it resumed from are its reference)
    base = judge.start(step + 1, inner, files, resumed.get("heldout_base") if resumed and files else None)
    log(f"lenprof: {judged} against their {base.corpus} passages: {base} before training; measured again "
        f"at healthy snapshots (at most every {judge.every} steps) and at the end")  # fmt: skip
    # from_pretrained leaves the encoder in eval mode; train with dropout, as the HF Trainer does
    # (before, dropout was on only when --eval-split had switched it on)
    model.train()
    scaled = getattr(accelerator, "scaler", None) is not None  # fp16's loss scaling
    start, next_probe = time.perf_counter(), 0
    try:
        while step < total and not guard.stopped:
            epoch = step // per_epoch
            epoch_batches = batches(
                sampler.epoch(epoch), cfg.batch_size * world, cfg.seed + epoch, by_length=cfg.group_by_length
            )
            for batch in epoch_batches[step % per_epoch :]:
                q, p, teacher = encode(batch)
                loss = loss_of(q, p, teacher)
                # Across devices every process holds the global loss but only its own slice's
                # gradient; DDP averages, so scaling by the world size gives the full gradient.
                accelerator.backward(loss * world if cfg.negatives_cross_device else loss)
                grad_norm = float(accelerator.clip_grad_norm_(model.parameters(), cfg.max_grad_norm))
                loss_value = float(accelerator.reduce(loss.detach(), "mean"))
                # every process must see the same numbers, or they would decide differently
                spread = float(accelerator.reduce(p.detach().float().std(dim=0).mean(), "mean"))
                lr = current_lr(optimizer)  # what this step uses (halved after a recovery)
                step += 1
                events = guard.observe(step, loss_value, grad_norm, lr, spread)
                # Keep the weights that just produced a healthy loss if they score best on the
                # held-out rows (a clean watchdog alone lets a drifting run in). The probe is the
                # cheap first look: weights that lost ground on it are not worth an evaluation.
                if guard.snapshot_due(step, events) and step >= next_probe and judge.due(step):
                    if probe() > probe_start + 1e-6:
                        next_probe = step + max(1, cfg.collapse_steps // 4)
                    else:
                        judge.consider(step, inner)
                if math.isfinite(loss_value) and (math.isfinite(grad_norm) or scaled):
                    optimizer.step()  # with fp16 the scaler skips an overflow and lowers its scale
                    if not accelerator.optimizer_step_was_skipped:
                        scheduler.step()
                optimizer.zero_grad()  # a non-finite step is skipped
                metrics.write({"step": step, "epoch": epoch, "loss": loss_value, "grad_norm": grad_norm, "lr": lr,
                               "spread": round(spread, 6), "events": [e.kind for e in events]})  # fmt: skip
                guard.react(step, events, inner, optimizer, scheduler)
                if step % cfg.save_steps == 0 and not guard.stopped:
                    seconds = time.perf_counter() - start + (resumed or {}).get("seconds", 0.0)
                    state = {**guard.state(), "probe_start": probe_start, "seconds": seconds,
                             "heldout_base": judge.base.to_dict()}  # type: ignore[union-attr]  # fmt: skip
                    _checkpoint(accelerator, ckpt_dir, step, state)
                if guard.stopped or step >= total:
                    break
        seconds = time.perf_counter() - start
        if not guard.stopped:
            report["probe"] = {"start": round(probe_start, 6), "end": round(probe(), 6)}
        # the measured rows decide what the run ends with: never a success with the model it began with
        weights, saved = judge.finish(step, inner, bool(guard.stopped))
        report.update(judged_on=judged, eval_base=judge.base.to_dict(), eval_trained=saved.to_dict(),  # type: ignore[union-attr]
                      heldout=judge.history)  # fmt: skip
        if weights == "base" and not guard.stopped:
            guard.stopped = judge.failure(cfg.learning_rate, guard.recoveries > 0)
            guard.events.append({"step": step, "kind": "stopped", "restored_step": snapshot.step})
            log(f"lenprof: stopped: {guard.stopped}")
    finally:
        metrics.close()

    report.update(
        steps=step,
        seconds=round(seconds + (resumed or {}).get("seconds", 0.0), 2),
        recoveries=guard.recoveries,
        events=guard.events,
        health=guard.watchdog.summary(),
        stopped=guard.stopped,
        weights=weights,
    )
    if resumed:
        report["resumed_from"] = resumed["step"]
    if accelerator.is_main_process:
        if weights != "none healthy":
            inner.save(out, tokenizer, max(cfg.query_max_len, cfg.passage_max_len))
        else:
            for name in ("model.safetensors", "pytorch_model.bin"):  # never leave broken weights behind
                (out / name).unlink(missing_ok=True)
        _plot(out / "metrics.jsonl", guard.events, out / "loss.png")
        (out / "train_report.json").write_text(json.dumps(report, indent=2))
    snapshot.discard()
    return report


def _checkpoint(accelerator, folder: Path, step: int, state: dict) -> None:
    path = folder / f"step-{step}"
    accelerator.save_state(str(path))
    if accelerator.is_main_process:
        (path / "lenprof.json").write_text(json.dumps({"step": step, **state}))


def _plot(metrics_path: Path, events: list[dict], out: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = [json.loads(line) for line in metrics_path.read_text().splitlines() if line.strip()]
    fig, ax = plt.subplots(figsize=(9, 3.5), constrained_layout=True)
    steps = [r["step"] for r in rows]
    ax.plot(
        steps,
        [r["loss"] if math.isfinite(r["loss"]) else np.nan for r in rows],
        color="#1f77b4",
        lw=1,
        label="loss",
    )
    ax.set(xlabel="step", ylabel="loss (full precision)")
    lr_ax = ax.twinx()
    lr_ax.plot(steps, [r["lr"] for r in rows], color="#999", lw=1, ls="--", label="learning rate")
    lr_ax.set_ylabel("learning rate")
    for e in events:
        ax.axvline(e["step"], color="#2ca02c" if e["kind"] == "recovered" else "#d62728", lw=1, alpha=0.7)
    ax.set_title("loss and learning rate (red: watchdog events, green: recoveries)")
    fig.savefig(out, dpi=100)
    plt.close(fig)
