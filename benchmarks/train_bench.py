"""lenprof train against FlagEmbedding's own trainer: same rows, lengths, batch, group, steps.

FlagEmbedding runs from its own virtual environment (it pins its own transformers), under
torchrun with one process. Both final models are scored by the same code (lenprof's evaluate:
recall@10 and MRR@10 of held-out queries against the held-out passages).

    python3 -m venv /tmp/fevenv && /tmp/fevenv/bin/pip install torch==2.13.0 FlagEmbedding
    python benchmarks/train_bench.py DATA.jsonl --flagembedding-venv /tmp/fevenv --steps 20

On a GPU (see gpu_check.sh): ``--device cuda --precision bf16``, and ``--flagembedding-python``
where FlagEmbedding sits in the same interpreter as lenprof.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import random
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("data", type=Path, help="FlagEmbedding-format JSONL")
    fe = ap.add_mutually_exclusive_group(required=True)
    fe.add_argument("--flagembedding-venv", type=Path)
    fe.add_argument("--flagembedding-python", type=Path, help="a python that imports FlagEmbedding")
    ap.add_argument("--device", choices=["cpu", "cuda"], default="cpu")
    ap.add_argument("--precision", choices=["no", "bf16", "fp16"], default="no")
    ap.add_argument("--model", help="default: the packaged all-MiniLM-L6-v2")
    ap.add_argument("--steps", type=int, default=20)
    ap.add_argument("--batch-size", type=int, default=4)
    ap.add_argument("--group-size", type=int, default=4)
    ap.add_argument("--eval-rows", type=int, default=20)
    ap.add_argument("--learning-rate", type=float, default=2e-5)
    args = ap.parse_args()

    import torch
    from transformers.utils import logging as hf_logging

    hf_logging.disable_progress_bar()

    from lenprof import scan
    from lenprof.count.tokenizer import packaged_model_path
    from lenprof.train.config import TrainConfig
    from lenprof.train.data import read_rows
    from lenprof.train.evaluate import evaluate
    from lenprof.train.model import Embedder, default_pooling

    model = args.model or str(packaged_model_path())
    pooling = default_pooling(model)
    work = Path(tempfile.mkdtemp(prefix="lenprof-train-bench-"))
    profile = scan(str(args.data), tokenizer=model, clean_out=str(work / "clean.jsonl"))
    q_len, p_len = profile.recommendation.lengths()
    lines = (work / "clean.jsonl").read_text().splitlines()
    random.Random(0).shuffle(lines)
    (work / "eval.jsonl").write_text("\n".join(lines[: args.eval_rows]) + "\n")
    (work / "train.jsonl").write_text("\n".join(lines[args.eval_rows :]) + "\n")
    common = dict(batch=args.batch_size, group=args.group_size, steps=args.steps, lr=args.learning_rate)
    card = torch.cuda.get_device_name(0) if args.device == "cuda" else "none (CPU)"
    print(
        f"machine: {platform.machine()}, {os.cpu_count()} cores, torch {torch.__version__}, GPU: {card}, precision {args.precision}"
    )
    print(
        f"data: {len(lines) - args.eval_rows} train rows, {args.eval_rows} held out; query_max_len {q_len}, passage_max_len {p_len}; {common}"
    )

    results = {}
    start = time.perf_counter()
    subprocess.run(
        [sys.executable, "-m", "lenprof", "train", str(work / "train.jsonl"), "--output-dir", str(work / "lenprof"),
         "--model", model, "--query-max-len", str(q_len), "--passage-max-len", str(p_len), "--batch-size", str(args.batch_size),
         "--train-group-size", str(args.group_size), "--max-steps", str(args.steps), "--learning-rate", str(args.learning_rate),
         "--pooling", pooling, "--precision", args.precision, "-q"],
        check=True, stdout=subprocess.DEVNULL,
    )  # fmt: skip
    report = json.loads((work / "lenprof" / "train_report.json").read_text())
    results["lenprof train"] = (time.perf_counter() - start, report["seconds"], work / "lenprof")

    start = time.perf_counter()
    fe_python = args.flagembedding_python or args.flagembedding_venv / "bin" / "python"
    device = ["--use_cpu", "True"] if args.device == "cpu" else []
    device += {"no": [], "bf16": ["--bf16", "True"], "fp16": ["--fp16", "True"]}[args.precision]
    fe_log = subprocess.run(
        [str(fe_python), "-m", "torch.distributed.run", "--nproc_per_node", "1", "-m", "FlagEmbedding.finetune.embedder.encoder_only.base",
         "--model_name_or_path", model, "--train_data", str(work / "train.jsonl"), "--output_dir", str(work / "flagembedding"),
         "--overwrite_output_dir", "--query_max_len", str(q_len), "--passage_max_len", str(p_len),
         "--train_group_size", str(args.group_size), "--per_device_train_batch_size", str(args.batch_size),
         "--max_steps", str(args.steps), "--learning_rate", str(args.learning_rate), "--temperature", "0.02",
         "--sentence_pooling_method", pooling, "--normalize_embeddings", "True", "--warmup_ratio", "0.1",
         "--logging_steps", "1", "--save_steps", "100000", "--dataloader_drop_last", "True", *device,
         "--report_to", "none", "--knowledge_distillation", "False", "--pad_to_multiple_of", "8"],
        check=True, capture_output=True, text=True,
        env={**os.environ, **({"CUDA_VISIBLE_DEVICES": ""} if args.device == "cpu" else {})},
    ).stdout  # fmt: skip
    # the Trainer prints its summary ({'train_runtime': ...}) at the end; checkpoints lack it
    train_runtime = float(re.search(r"'train_runtime': '?([\d.]+)", fe_log).group(1))
    results["FlagEmbedding"] = (time.perf_counter() - start, train_runtime, work / "flagembedding")

    eval_rows = read_rows(work / "eval.jsonl")
    cfg = TrainConfig(data="", model=model, output_dir="", query_max_len=q_len, passage_max_len=p_len)
    base = evaluate(
        Embedder(model, pooling).to(args.device),
        __import__("transformers").AutoTokenizer.from_pretrained(model),
        eval_rows,
        cfg,
        args.device,
    )
    print(f"\n{'trainer':<16} {'wall s':>7} {'train s':>8} {'samples/s':>10} {'recall@10':>10} {'MRR@10':>7}")
    print(f"{'base model':<16} {'-':>7} {'-':>8} {'-':>10} {base['recall@10']:>10} {base['mrr@10']:>7}")
    from transformers import AutoTokenizer

    for name, (wall, train_s, out) in results.items():
        scores = evaluate(
            Embedder(str(out), pooling).to(args.device),
            AutoTokenizer.from_pretrained(str(out)),
            eval_rows,
            cfg,
            args.device,
        )
        print(
            f"{name:<16} {wall:>7.1f} {train_s:>8.1f} {args.steps * args.batch_size / train_s:>10.2f} {scores['recall@10']:>10} {scores['mrr@10']:>7}"
        )


if __name__ == "__main__":
    main()
