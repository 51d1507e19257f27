"""``lenprof train``: fine-tune an embedding model on cleaned rows, with the loss watched live.

The loop reads top to bottom: sample groups -> batch -> encode queries and passages at their own
max lengths -> InfoNCE -> clip -> step, one line of metrics a step (full-precision loss, gradient
norm, learning rate, embedding spread). accelerate provides devices, mixed precision, DDP under
``accelerate launch``/``torchrun`` and checkpoint state. The watchdog turns the metrics into
events; a collapse restores the last healthy weights, halves the learning rate and goes on (up
to ``max_recoveries`` times) unless ``on_collapse="stop"``.
"""

from __future__ import annotations

import copy
import json
import math
import random
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch

from ..options import ScanOptions
from .data import GroupSampler, Row, batches, read_rows
from .health import ADVICE, Step, Watchdog, candidates_per_query
from .loss import info_nce
from .model import Embedder, default_pooling


class TrainError(Exception):
    """A configuration that cannot train, or a run stopped by the watchdog. Exit code 2 / 1."""


@dataclass(frozen=True)
class TrainConfig:
    data: str  # cleaned JSONL (lenprof scan --clean-out)
    model: str
    output_dir: str
    query_max_len: int | None  # None: the scan's recommendation (see run.py)
    passage_max_len: int | None
    epochs: int = 1
    max_steps: int | None = None
    batch_size: int = 8
    group_size: int = 8
    in_batch_negatives: bool = True
    temperature: float = 0.02
    learning_rate: float = 1e-5
    warmup_ratio: float = 0.1
    max_grad_norm: float = 1.0
    weight_decay: float = 0.01
    pooling: str | None = None  # None: the model's sentence-transformers config, else cls
    query_instruction: str | None = None
    query_instruction_format: str = "{}{}"
    passage_instruction: str | None = None
    passage_instruction_format: str = "{}{}"
    gradient_checkpointing: bool = False
    group_by_length: bool = False
    mixed_precision: str | None = None  # None: bf16 (or fp16) on GPU, fp32 on CPU
    seed: int = 42
    save_steps: int = 500
    resume: bool = False
    eval_split: float = 0.0
    on_collapse: str = "recover"  # or "stop"
    collapse_steps: int = 20
    max_recoveries: int = 3


def _precision(cfg: TrainConfig) -> str:
    if cfg.mixed_precision:
        return cfg.mixed_precision
    if torch.cuda.is_available():
        return "bf16" if torch.cuda.is_bf16_supported() else "fp16"
    return "no"


def _instructions(cfg: TrainConfig) -> ScanOptions:
    """The scan's own instruction formatting, so training sees the texts the scan measured."""
    return ScanOptions(
        query_instruction=cfg.query_instruction,
        query_instruction_format=cfg.query_instruction_format,
        passage_instruction=cfg.passage_instruction,
        passage_instruction_format=cfg.passage_instruction_format,
    )


def evaluate(model: Embedder, tokenizer, rows: list[Row], cfg: TrainConfig, device) -> dict[str, float]:
    """recall@10 and MRR@10 of held-out queries against all held-out passages."""
    corpus = list(dict.fromkeys(t for r in rows for t in (*r.pos, *r.neg)))
    index = {t: i for i, t in enumerate(corpus)}
    texts = _instructions(cfg)
    queries = [texts.query_text(r.query, r.prompt) for r in rows]
    passages = [texts.passage_text(t) for t in corpus]
    model.eval()
    with torch.no_grad():
        q = _encode(model, tokenizer, queries, cfg.query_max_len, device)
        p = _encode(model, tokenizer, passages, cfg.passage_max_len, device)
    model.train()
    top = (q @ p.T).topk(min(10, len(corpus)), dim=1).indices.tolist()  # (queries, 10)
    recall, rr = [], []
    for row, ranked in zip(rows, top, strict=True):
        relevant = {index[t] for t in row.pos}
        hits = [rank for rank, i in enumerate(ranked) if i in relevant]
        recall.append(len(relevant & set(ranked)) / len(relevant))
        rr.append(1 / (hits[0] + 1) if hits else 0.0)
    return {
        "recall@10": round(float(np.mean(recall)), 4),
        "mrr@10": round(float(np.mean(rr)), 4),
        "queries": len(rows),
        "corpus": len(corpus),
    }


def _encode(model, tokenizer, texts: list[str], max_len: int, device, batch: int = 64) -> torch.Tensor:
    out = []
    for i in range(0, len(texts), batch):
        enc = tokenizer(
            texts[i : i + batch], truncation=True, max_length=max_len, padding=True, return_tensors="pt"
        ).to(device)
        out.append(model(**enc).float())
    return torch.cat(out)


def train(cfg: TrainConfig, log=print) -> dict:
    from accelerate import Accelerator
    from transformers import AutoTokenizer, get_linear_schedule_with_warmup
    from transformers.utils import logging as hf_logging

    hf_logging.disable_progress_bar()  # stderr carries lenprof's own lines

    accelerator = Accelerator(mixed_precision=_precision(cfg))
    world = accelerator.num_processes
    # In-batch negatives are the passages on this device (no gathering across devices).
    candidates = candidates_per_query(cfg.batch_size, cfg.group_size, cfg.in_batch_negatives)
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
    held: list[Row] = []
    if cfg.eval_split:
        order = list(range(len(rows)))
        random.Random(cfg.seed).shuffle(order)
        n_eval = max(1, int(len(rows) * cfg.eval_split))
        held = [rows[i] for i in sorted(order[:n_eval])]
        rows = [rows[i] for i in sorted(order[n_eval:])]
    sampler = GroupSampler(rows, cfg.group_size, cfg.seed)
    if sampler.skipped:
        log(
            f"lenprof: {sampler.skipped} rows have no negatives and are left out (scan with --min-neg 1 drops them)"
        )
    if sampler.short_rows:
        log(f"lenprof: {sampler.short_rows} of {len(rows)} rows have fewer than {cfg.group_size - 1} negatives; "
            "their negatives repeat within a group")  # fmt: skip

    tokenizer = AutoTokenizer.from_pretrained(cfg.model)
    pooling = cfg.pooling or default_pooling(cfg.model)
    model = Embedder(cfg.model, pooling, cfg.gradient_checkpointing)
    per_epoch = len(
        batches(sampler.epoch(0), cfg.batch_size * world, cfg.seed, by_length=cfg.group_by_length)
    )
    if per_epoch == 0:
        raise TrainError(f"{cfg.data}: {len(rows)} rows make no full batch of {cfg.batch_size * world}")
    total = cfg.max_steps or cfg.epochs * per_epoch
    optimizer = torch.optim.AdamW(model.parameters(), lr=cfg.learning_rate, weight_decay=cfg.weight_decay)
    scheduler = get_linear_schedule_with_warmup(optimizer, int(cfg.warmup_ratio * total), total)
    model, optimizer, scheduler = accelerator.prepare(model, optimizer, scheduler)
    inner = accelerator.unwrap_model(model)

    report: dict = {
        "config": asdict(cfg),
        "pooling": pooling,
        "candidates_per_query": candidates,
        "precision": _precision(cfg),
    }
    if held:
        report["eval_base"] = evaluate(inner, tokenizer, held, cfg, accelerator.device)
        log(
            f"lenprof: base model on {len(held)} held-out queries: recall@10 {report['eval_base']['recall@10']}, MRR@10 {report['eval_base']['mrr@10']}"
        )

    step = 0
    ckpt_dir = out / "checkpoints"
    if cfg.resume and ckpt_dir.is_dir() and any(ckpt_dir.iterdir()):
        latest = max(ckpt_dir.iterdir(), key=lambda p: int(p.name.split("-")[-1]))
        accelerator.load_state(str(latest))
        step = json.loads((latest / "lenprof.json").read_text())["step"]
        log(f"lenprof: resumed from {latest} at step {step}")

    texts = _instructions(cfg)
    watchdog = Watchdog(candidates, zero_run=cfg.collapse_steps, plateau_run=cfg.collapse_steps)
    events_log: list[dict] = []
    recoveries, first_spread, healthy = 0, None, None
    metrics = open(out / "metrics.jsonl", "a" if cfg.resume else "w", encoding="utf-8")
    start, stopped = time.perf_counter(), None
    try:
        while step < total and stopped is None:
            epoch = step // per_epoch
            epoch_batches = batches(
                sampler.epoch(epoch), cfg.batch_size * world, cfg.seed + epoch, by_length=cfg.group_by_length
            )
            for batch in epoch_batches[step % per_epoch :]:
                mine = batch[accelerator.process_index :: world]
                queries = [texts.query_text(g.query, g.prompt) for g in mine]
                passages = [texts.passage_text(t) for g in mine for t in g.passages]
                q_in = tokenizer(
                    queries, truncation=True, max_length=cfg.query_max_len, padding=True, return_tensors="pt"
                ).to(accelerator.device)
                p_in = tokenizer(
                    passages,
                    truncation=True,
                    max_length=cfg.passage_max_len,
                    padding=True,
                    return_tensors="pt",
                ).to(accelerator.device)
                with accelerator.autocast():
                    q, p = model(**q_in), model(**p_in)  # (B, d), (B * G, d)
                    loss = info_nce(q, p, cfg.group_size, cfg.temperature, cfg.in_batch_negatives)
                accelerator.backward(loss)
                grad_norm = float(accelerator.clip_grad_norm_(model.parameters(), cfg.max_grad_norm))
                loss_value = float(accelerator.reduce(loss.detach(), "mean"))
                spread = float(p.detach().float().std(dim=0).mean())
                first_spread = first_spread or spread
                lr = scheduler.get_last_lr()[0]
                step += 1
                events = watchdog.observe(Step(step, loss_value, grad_norm, lr), spread < 0.5 * first_spread)
                # The weights that just produced a healthy loss, before this step changes them.
                if (
                    not events
                    and watchdog.clean
                    and (healthy is None or step - healthy[0] >= cfg.collapse_steps)
                ):
                    weights = copy.deepcopy({k: v.cpu() for k, v in inner.state_dict().items()})
                    healthy = (step, weights, copy.deepcopy(optimizer.state_dict()))
                if math.isfinite(loss_value) and math.isfinite(grad_norm):
                    optimizer.step()
                    scheduler.step()
                optimizer.zero_grad()  # a non-finite step is skipped
                record = {"step": step, "epoch": epoch, "loss": loss_value, "grad_norm": grad_norm, "lr": lr, "spread": round(spread, 6),
                          "events": [e.kind for e in events]}  # fmt: skip
                if accelerator.is_main_process:
                    metrics.write(json.dumps(record) + "\n")
                    metrics.flush()
                for event in events:
                    events_log.append({"step": step, "kind": event.kind, "advice": event.advice})
                    log(f"lenprof: step {step}: {event.kind} ({event.advice})")
                    if cfg.on_collapse == "stop" or recoveries >= cfg.max_recoveries or healthy is None:
                        stopped = f"{event.kind} at step {step} after {recoveries} recoveries: {event.advice}"
                        break
                    recoveries += 1
                    inner.load_state_dict(healthy[1])
                    optimizer.load_state_dict(healthy[2])
                    schedule = getattr(scheduler, "scheduler", scheduler)  # accelerate wraps it
                    schedule.base_lrs = [lr / 2 for lr in schedule.base_lrs]
                    for group in optimizer.param_groups:
                        group["lr"] /= 2
                    watchdog.reset()
                    events_log.append(
                        {
                            "step": step,
                            "kind": "recovered",
                            "restored_step": healthy[0],
                            "lr_scale": 0.5**recoveries,
                        }
                    )
                    log(
                        f"lenprof: restored the weights from before step {healthy[0]} and halved the learning rate (recovery {recoveries} of {cfg.max_recoveries})"
                    )
                if step % cfg.save_steps == 0 and not stopped:
                    _checkpoint(accelerator, ckpt_dir, step)
                if stopped or step >= total:
                    break
    finally:
        metrics.close()
    seconds = time.perf_counter() - start

    report.update(
        steps=step,
        seconds=round(seconds, 2),
        recoveries=recoveries,
        events=events_log,
        health=watchdog.summary(),
        stopped=stopped,
    )
    if accelerator.is_main_process:
        inner.save(out, tokenizer, max(cfg.query_max_len, cfg.passage_max_len))
        if held:
            report["eval_trained"] = evaluate(inner, tokenizer, held, cfg, accelerator.device)
        _plot(out / "metrics.jsonl", events_log, out / "loss.png")
        (out / "train_report.json").write_text(json.dumps(report, indent=2))
    return report


def _checkpoint(accelerator, folder: Path, step: int) -> None:
    path = folder / f"step-{step}"
    accelerator.save_state(str(path))
    if accelerator.is_main_process:
        (path / "lenprof.json").write_text(json.dumps({"step": step}))


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
