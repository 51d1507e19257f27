"""``lenprof train``: scan the data, then fine-tune on the cleaned rows with the loss watched."""

from __future__ import annotations

import importlib.util
import os

import click

from lenprof.cli import options as opt
from lenprof.cli.common import Finite, UsageProblem, emit, usage_errors
from lenprof.cli.options import PanelCommand

PANELS = {
    "Model and lengths": ["model", "tokenizer", "pooling", "profile_path", "query_max_len", "passage_max_len", "query_instruction",
                          "query_instruction_format", "passage_instruction", "passage_instruction_format"],
    "Batches and loss": ["batch_size", "group_size", "min_neg", "no_in_batch_neg", "negatives_cross_device",
                         "temperature", "kd_loss_type", "group_by_length"],
    "Optimisation": ["learning_rate", "warmup_ratio", "max_grad_norm", "weight_decay", "epochs", "max_steps", "precision",
                     "gradient_checkpointing", "seed"],
    "Collapse watchdog": ["on_collapse", "collapse_steps", "max_recoveries", "snapshot"],
    "Held-out rows": ["eval_split", "eval_data"],
    "Outputs": ["output_dir", "save_steps", "resume", "quiet", "help"],
}  # fmt: skip

EXAMPLES = [
    (
        "Scan, clean and fine-tune at the recommended lengths, on CPU or one GPU:",
        "lenprof train data/ --model BAAI/bge-base-en-v1.5 --output-dir run/ --eval-split 0.05",
    ),
    (
        "The same on 8 GPUs, at half the learning rate after a collapse:",
        "torchrun --nproc_per_node 8 -m lenprof train data/ --model BAAI/bge-base-en-v1.5 \\\n"
        "    --output-dir run/ --learning-rate 5e-6",
    ),
]

LEARNING_RATE = (
    "Peak learning rate, reached after the warmup and decayed linearly to 0. Fine-tune at 1e-5 to 1e-6, "
    "with a warmup (--warmup-ratio) and gradient clipping (--max-grad-norm). A loss that falls to zero "
    "and stays there is a collapse: lower the learning rate, e.g. halve it (1e-5 -> 5e-6); "
    "--on-collapse recover cuts it by itself."
)


@click.command("train", cls=PanelCommand, panels=PANELS, examples=EXAMPLES)
@click.argument("paths", nargs=-1, required=True)
@click.option("--model", help="Hub id or folder [default: the packaged all-MiniLM-L6-v2].")
@click.option(
    "--tokenizer",
    help="Hub id or folder of the tokenizer the scan measures with and training uses, as FlagEmbedding's "
    "--tokenizer_name; it must fit the model's vocabulary [default: the model's own].",
)
@click.option(
    "--output-dir",
    required=True,
    type=click.Path(file_okay=False),
    help="Where the model, metrics.jsonl, loss.png and reports go.",
)
@click.option(
    "--profile",
    "profile_path",
    type=click.Path(dir_okay=False),
    help="Take lengths from a saved scan profile [default: scan PATHS now].",
)
@click.option(
    "--query-max-len",
    type=click.IntRange(min=2),
    metavar="N",
    help="Tokens a query is cut at [default: the scan's recommendation].",
)
@click.option(
    "--passage-max-len",
    type=click.IntRange(min=2),
    metavar="N",
    help="Tokens a passage is cut at [default: the scan's recommendation].",
)
@click.option(
    "--epochs",
    type=click.IntRange(min=1),
    metavar="N",
    default=1,
    show_default=True,
    help="Passes over the cleaned rows.",
)
@click.option(
    "--max-steps",
    type=click.IntRange(min=1),
    metavar="N",
    help="Stop after this many steps [default: the steps of all epochs].",
)
@click.option(
    "--batch-size",
    type=click.IntRange(min=1),
    metavar="N",
    default=8,
    show_default=True,
    help="Queries per device per step.",
)
@click.option(
    "--train-group-size",
    "group_size",
    type=click.IntRange(min=1),
    metavar="N",
    default=8,
    show_default=True,
    help="1 positive + (n - 1) negatives per query.",
)
@click.option("--no-in-batch-neg", is_flag=True, help="Score each query against its own group only.")
@click.option(
    "--temperature",
    type=Finite(min=0, min_open=True),
    metavar="T",
    default=0.02,
    show_default=True,
    help="Scores are divided by it before the softmax; lower is sharper (FlagEmbedding uses 0.02; "
    "sentence-transformers' MultipleNegativesRankingLoss, scale 20, is 0.05).",
)
@click.option(
    "--learning-rate",
    type=Finite(min=0, min_open=True),
    metavar="LR",
    default=1e-5,
    show_default=True,
    help=LEARNING_RATE,
)
@click.option(
    "--warmup-ratio",
    type=Finite(0, 1),
    metavar="RATIO",
    default=0.1,
    show_default=True,
    help="Share of the steps over which the learning rate rises from 0 to --learning-rate.",
)
@click.option(
    "--max-grad-norm",
    type=Finite(min=0, min_open=True),
    metavar="NORM",
    default=1.0,
    show_default=True,
    help="Gradient clipping: each step's gradients are scaled down to at most this norm.",
)
@click.option(
    "--weight-decay",
    type=Finite(min=0),
    metavar="WD",
    default=0.0,
    show_default=True,
    help="AdamW's decoupled weight decay. The default is FlagEmbedding's (Hugging Face's TrainingArguments).",
)
@click.option(
    "--pooling",
    type=click.Choice(["cls", "mean"]),
    help="One vector per text: the first token's, or the mean of all "
    "[default: the model's sentence-transformers config, else cls]",
)
@opt.instructions
@click.option(
    "--gradient-checkpointing",
    is_flag=True,
    help="Recompute activations in the backward pass: less memory, slower steps.",
)
@click.option(
    "--group-by-length", is_flag=True, help="Batch texts of similar length together (less padding)."
)
@click.option(
    "--precision",
    type=click.Choice(["no", "fp16", "bf16"]),
    help="Mixed precision, or none [default: bf16 (else fp16) on GPU, fp32 on CPU]",
)
@click.option(
    "--seed",
    type=int,
    default=42,
    show_default=True,
    help="Seeds the shuffle, the held-out rows and torch (dropout, any newly made weights); any whole number.",
)
@click.option(
    "--save-steps",
    type=click.IntRange(min=1),
    metavar="N",
    default=500,
    show_default=True,
    help="Steps between checkpoints in OUTPUT_DIR/checkpoints.",
)
@click.option("--resume", is_flag=True, help="Continue from the latest checkpoint in OUTPUT_DIR/checkpoints.")
@click.option(
    "--eval-split",
    type=Finite(0, 0.5),
    metavar="SHARE",
    help="Share of rows held out to judge the run by retrieval on them (recall@10, MRR@10): before training, at "
    "healthy snapshots and at the end; the run ends with the best weights measured, and exits 1 with the "
    "starting weights when none beat them. 0: none (a fixed training batch is the only judge) "
    "[default: 2%, at least 64 and at most 1,000 queries, from 320 rows on].",
)
@click.option(
    "--eval-data",
    type=click.Path(exists=True),
    metavar="FILE",
    help="Held-out rows from FILE (scanned and cleaned like the data) instead of a share of the data "
    "[default: --eval-split].",
)
@click.option(
    "--on-collapse",
    type=click.Choice(["recover", "stop"]),
    default="recover",
    show_default=True,
    help="After a collapse, restore the snapshot, start the optimizer afresh, cut the learning rate (tenfold "
    "when the collapse began within 5 steps of the start or of the last restore, else by half), warm it up "
    "again and go on (recover), or stop with exit 1 (stop).",
)
@click.option(
    "--collapse-steps",
    type=click.IntRange(min=2),
    metavar="N",
    default=20,
    show_default=True,
    help="Steps of near-zero loss that make a collapse.",
)
@click.option(
    "--max-recoveries",
    type=click.IntRange(min=0),
    metavar="N",
    default=3,
    show_default=True,
    help="Collapses recovered from; the next one stops the run (exit 1), as do two recoveries in a row "
    "that collapse again.",
)
@opt.min_neg("The scan drops rows with fewer negatives; 0 keeps them (group size 1 with in-batch negatives).")
@click.option(
    "--negatives-cross-device",
    is_flag=True,
    help="Score each query against every process's passages (FlagEmbedding's negatives_cross_device).",
)
@click.option(
    "--kd-loss-type",
    type=click.Choice(["kl_div", "m3_kd_loss"]),
    help="Distil from the rows' pos_scores/neg_scores (FlagEmbedding's knowledge_distillation) "
    "[default: none, no distillation].",
)
@click.option(
    "--snapshot",
    type=click.Choice(["memory", "disk"]),
    default="memory",
    show_default=True,
    help="Keep the snapshot (weights only: the best measured so far, else the starting ones) in host memory "
    "or in OUTPUT_DIR/healthy.pt.",
)
@opt.quiet
def train_command(paths, model, tokenizer, output_dir, profile_path, query_max_len, passage_max_len, epochs, max_steps, batch_size,
                  group_size, no_in_batch_neg, temperature, learning_rate, warmup_ratio, max_grad_norm, weight_decay, pooling,
                  query_instruction, query_instruction_format, passage_instruction, passage_instruction_format,
                  gradient_checkpointing, group_by_length, precision, seed, save_steps, resume, eval_split, eval_data, on_collapse, collapse_steps,
                  max_recoveries, min_neg, negatives_cross_device, kd_loss_type, snapshot, quiet) -> None:  # fmt: skip
    """Fine-tune an embedding model on DATA, cleaned by a scan, at the recommended lengths.

    The loss is watched live (metrics.jsonl, loss.png): easy batches are counted, a collapse
    restores the snapshot, cuts the learning rate and warms it up again. The run is judged on
    held-out rows and ends with the best weights measured there; one that never beats the
    starting model, or stops, saves the weights it kept and exits 1. Runs on CPU, one GPU, or several processes under
    `torchrun --nproc_per_node N -m lenprof train ...` (CPU too) or `accelerate launch` (GPUs).
    """
    needed = ("torch", "accelerate", "transformers", "matplotlib")
    missing = [m for m in needed if importlib.util.find_spec(m) is None]
    if missing:
        raise UsageProblem(
            f"lenprof train needs the train extra ({', '.join(missing)} missing): pip install 'lenprof[train]'"
        )
    from lenprof.train.config import TrainConfig, TrainError
    from lenprof.train.run import TrainSetupError, default_model, scan_then_train, summary

    if eval_split is not None and eval_data is not None:
        raise UsageProblem("Use just one of --eval-split or --eval-data")
    with usage_errors():
        cfg = TrainConfig(
            data="", model=default_model(model), output_dir=output_dir, query_max_len=query_max_len,
            passage_max_len=passage_max_len, epochs=epochs, max_steps=max_steps, batch_size=batch_size,
            group_size=group_size, in_batch_negatives=not no_in_batch_neg, temperature=temperature,
            learning_rate=learning_rate, warmup_ratio=warmup_ratio, max_grad_norm=max_grad_norm,
            weight_decay=weight_decay, pooling=pooling, tokenizer=tokenizer, eval_data=eval_data,
            query_instruction=query_instruction, query_instruction_format=query_instruction_format,
            passage_instruction=passage_instruction, passage_instruction_format=passage_instruction_format,
            gradient_checkpointing=gradient_checkpointing, group_by_length=group_by_length, mixed_precision=precision,
            seed=seed, save_steps=save_steps, resume=resume, eval_split=eval_split, on_collapse=on_collapse,
            collapse_steps=collapse_steps, max_recoveries=max_recoveries, negatives_cross_device=negatives_cross_device,
            kd_loss_type=kd_loss_type, snapshot=snapshot,
        )  # fmt: skip
        try:
            _, report = scan_then_train(
                paths,
                cfg,
                profile_path,
                log=(lambda m: None) if quiet else (lambda m: click.echo(m, err=True)),
                min_neg=min_neg,
            )
        except (TrainError, TrainSetupError) as exc:
            raise UsageProblem(str(exc)) from exc
    if os.environ.get("RANK", "0") == "0":  # under torchrun the first process speaks for all
        from lenprof.train.forecast import for_run

        emit(summary(report, output_dir) + for_run(profile_path, output_dir))
    if report["stopped"]:
        raise SystemExit(1)
