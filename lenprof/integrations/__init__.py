"""lenprof's loss watchdog inside other trainers (needs torch and transformers).

- :class:`LossHealthCallback`: a ``transformers.TrainerCallback`` for any ``Trainer``
  (sentence-transformers' ``SentenceTransformerTrainer``, FlagEmbedding's, a plain one);
  :class:`TrainingFailed`, what it raises at the end of a run whose held-out set never saw the
  trained weights beat the starting ones;
- ``python -m lenprof.integrations.flagembedding FlagEmbedding.finetune...``: FlagEmbedding's own
  runner, unchanged, with the callback attached.
"""

from __future__ import annotations


def __getattr__(name: str):
    if name == "LossHealthCallback":  # imported on use: torch and transformers load only then
        from lenprof.integrations.callback import LossHealthCallback

        return LossHealthCallback
    if name == "TrainingFailed":
        from lenprof.integrations.measures import TrainingFailed

        return TrainingFailed
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = ["LossHealthCallback", "TrainingFailed"]
