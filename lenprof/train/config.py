"""What a training run is asked to do (:class:`TrainConfig`), and the error that stops one."""

from __future__ import annotations

from dataclasses import dataclass

import torch

from lenprof.rows.options import ScanOptions


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
    weight_decay: float = 0.0  # AdamW's; FlagEmbedding's default (Hugging Face's TrainingArguments)
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
    eval_split: float | None = None  # share held out; None: 2%, 64 to 1,000 queries (heldout.py); 0: none
    eval_data: str | None = None  # held-out rows from a file instead (cleaned JSONL)
    tokenizer: str | None = None  # None: the model's own
    on_collapse: str = "recover"  # or "stop"
    collapse_steps: int = 20
    max_recoveries: int = 3
    negatives_cross_device: bool = False  # in-batch negatives from every process's batch
    kd_loss_type: str | None = None  # kl_div or m3_kd_loss: distil from the rows' pos_scores/neg_scores
    snapshot: str = "memory"  # or "disk": where the snapshot's weights wait (snapshot.py)
    rejects: str | None = None  # the scan's rejects file, named when too few rows are left


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
