"""FlagEmbedding's own fine-tuning runners with lenprof's loss watchdog attached.

Put ``lenprof.integrations.flagembedding`` in front of FlagEmbedding's module name; every
argument stays FlagEmbedding's::

    torchrun --nproc_per_node 1 -m FlagEmbedding.finetune.embedder.encoder_only.base --model_name_or_path ...
    torchrun --nproc_per_node 1 -m lenprof.integrations.flagembedding FlagEmbedding.finetune.embedder.encoder_only.base --model_name_or_path ...

The runner is FlagEmbedding's, run as ``__main__``; its trainer gets a
:class:`~lenprof.integrations.callback.LossHealthCallback` (attached, so the loss and the
gradient norm before clipping are read where the Trainer makes them) just before training, and
writes ``metrics.jsonl`` and ``train_report.json`` into ``--output_dir``. Candidates per query are
``per_device_train_batch_size * train_group_size`` (times the world size with
``--negatives_cross_device``) for embedders, ``train_group_size`` for rerankers. A run the
watchdog stops saves the last healthy weights (FlagEmbedding's own ``save_model``) and exits 1.

lenprof's own options, taken out before FlagEmbedding parses the rest:
``--lenprof_on_collapse recover|stop``, ``--lenprof_collapse_steps N``,
``--lenprof_max_recoveries N``, ``--lenprof_snapshot memory|disk``, and
``--lenprof_eval_data FILE``: held-out rows in FlagEmbedding's format, scored by lenprof's code
through FlagEmbedding's own tokenizer, lengths, instructions and ``model.encode``; the run ends
with the best weights measured, and when those are the starting ones FlagEmbedding saves them
and the command exits 1 (``train_report.json``: ``"weights": "base"``).
"""

from __future__ import annotations

import runpy
import sys

OPTIONS = {"--lenprof_on_collapse": str, "--lenprof_collapse_steps": int, "--lenprof_max_recoveries": int,
           "--lenprof_snapshot": str, "--lenprof_eval_data": str}  # fmt: skip
USAGE = "usage: python -m lenprof.integrations.flagembedding FLAGEMBEDDING_MODULE [its arguments] [--lenprof_* ...]"


def split_args(argv: list[str]) -> tuple[str, list[str], dict]:
    """``[module, *args]`` -> (module, FlagEmbedding's args, lenprof's options).

    >>> split_args(["FlagEmbedding.x", "--lr", "1", "--lenprof_on_collapse=stop", "--lenprof_collapse_steps", "5"])
    ('FlagEmbedding.x', ['--lr', '1'], {'on_collapse': 'stop', 'collapse_steps': 5})
    """
    if not argv or argv[0].startswith("-"):
        raise SystemExit(USAGE)
    module, rest, options = argv[0], [], {}
    it = iter(argv[1:])
    for arg in it:
        name, eq, value = arg.partition("=")
        if name in OPTIONS:
            raw = value if eq else next(it, None)
            if raw is None:
                raise SystemExit(f"{name} needs a value")
            try:
                options[name.removeprefix("--lenprof_")] = OPTIONS[name](raw)
            except ValueError:
                raise SystemExit(f"{name}: expected {OPTIONS[name].__name__}, got {raw!r}") from None
        else:
            rest.append(arg)
    return module, rest, options


def candidates(runner) -> int | None:
    """What each query (or reranked group) is scored against in this runner's loss."""
    data, args = runner.data_args, runner.training_args
    group = getattr(data, "train_group_size", None)
    if group is None or getattr(data, "same_dataset_within_batch", False):
        return None  # batches are built per dataset: the per-device batch size is not the batch
    if "Reranker" in type(runner).__name__:
        return group
    world = args.world_size if getattr(args, "negatives_cross_device", False) else 1
    return args.per_device_train_batch_size * group * world


def _watch(runner_class, options: dict, outcome: dict) -> None:
    """Attach the callback as the runner is built (its ``__init__`` ends by loading the trainer;
    some runners override ``run``, none skips the base ``__init__``)."""
    from lenprof.integrations.callback import LossHealthCallback
    from lenprof.integrations.measures import flagembedding_encode, flagembedding_texts

    init = runner_class.__init__

    def watched_init(self, *args, **kwargs):
        init(self, *args, **kwargs)
        extra = {}
        if options.get("eval_data"):
            if "Reranker" in type(self).__name__:
                raise SystemExit(
                    "--lenprof_eval_data measures retrieval with an embedder; this runner is a reranker"
                )
            extra = {"encode": flagembedding_encode(self), "instructions": flagembedding_texts(self)}
        outcome["runner"] = self
        outcome["callback"] = LossHealthCallback(candidates=candidates(self), **options, **extra).attach(
            self.trainer
        )

    runner_class.__init__ = watched_init


def main(argv: list[str] | None = None) -> None:
    module, rest, options = split_args(sys.argv[1:] if argv is None else argv)
    outcome: dict = {}
    from FlagEmbedding.abc.finetune.embedder import AbsEmbedderRunner

    _watch(AbsEmbedderRunner, options, outcome)
    try:
        from FlagEmbedding.abc.finetune.reranker import AbsRerankerRunner

        _watch(AbsRerankerRunner, options, outcome)
    except ImportError:
        pass
    sys.argv = [module, *rest]
    from lenprof.integrations.measures import TrainingFailed

    try:
        runpy.run_module(module, run_name="__main__", alter_sys=True)
    except TrainingFailed:  # the callback said why; FlagEmbedding saves the starting weights it holds
        outcome["runner"].trainer.save_model()
        print("lenprof: FlagEmbedding saved the starting weights (base)", file=sys.stderr)
        raise SystemExit(1) from None
    callback = outcome.get("callback")
    if callback is not None and callback.stopped:
        weights = callback.guard.weights
        saved = {"base": "the starting weights (base)", "none healthy": "weights none judged healthy"}.get(
            weights, f"the last healthy weights ({weights})"
        )
        print(f"lenprof: stopped; FlagEmbedding saved {saved}", file=sys.stderr)
        raise SystemExit(1)


if __name__ == "__main__":
    main()
