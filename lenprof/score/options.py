"""What ``lenprof scan --model`` is asked to do with the base model (issue 25)."""

from __future__ import annotations

from dataclasses import dataclass

from lenprof.score.rows import DUP_COSINE, FN_RATIO, TEMPERATURE

# Tokens a batch computes, padding included. On a CPU a small batch stays in the caches: one torch
# thread embeds 2,500 texts with MiniLM in 27.8 s at a budget of 512 tokens, 29.4 s at 2,048, 35.7 s
# at 8,192 and 36.7 s at 16,384 (benchmarks/score_speed.py --budgets; benchmarks/README.md); a
# GPU wants large batches.
CPU_TOKEN_BUDGET = 2_048
GPU_TOKEN_BUDGET = 16_384
FORECAST_STEPS = 50  # batches the forecast draws: the first steps a run logs
DEFAULT_GROUP_SIZE = 8  # FlagEmbedding's train_group_size default


@dataclass(frozen=True)
class ScoreOptions:
    model: str  # a local model folder (a hub id is resolved to one before the scan)
    device: str = "auto"  # CUDA in bf16 where there is one, else the CPU
    fn_ratio: float = FN_RATIO
    dup_cosine: float = DUP_COSINE
    temperature: float = TEMPERATURE
    drop_false_negatives: bool = False  # remove the flagged negatives (a repair)
    add_scores: bool = False  # write pos_scores / neg_scores, one per text (knowledge distillation)
    batch_size: int = 32  # per device, as the trainer will use it (the forecast's batches)
    steps: int = FORECAST_STEPS
    seed: int = 42  # the trainer's default seed
    token_budget: int | None = None  # None: by the device (CPU_ or GPU_TOKEN_BUDGET)
    cache: bool = True  # keep embeddings on disk between scans (``cache.py``)
    threads: int | None = None  # torch threads a worker scores with (set by the engine: cores / workers)

    def to_dict(self) -> dict:
        return {
            "model": self.model,
            "fn_ratio": self.fn_ratio,
            "dup_cosine": self.dup_cosine,
            "temperature": self.temperature,
            "drop_false_negatives": self.drop_false_negatives,
            "add_scores": self.add_scores,
            "batch_size": self.batch_size,
        }
