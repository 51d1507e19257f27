"""lenprof train against FlagEmbedding's own trainer: same rows, lengths, batch, group, steps.

The cleaned rows are split three ways: ``--eval-rows`` test rows that only this script scores,
``--valid-rows`` rows that ``lenprof train`` judges its run on (``--eval-data``: its held-out
set, which picks the weights it ends with), and the rest, which both trainers train on. Each
trainer runs as a whole program, one after the other, in a wrapper that reports its wall time
and peak RSS (the largest process it started: FlagEmbedding's torchrun worker, lenprof's
trainer). Both final models, and the base model, are scored on the test rows by the same code
(lenprof's ``evaluate``: recall@10 and MRR@10 against the test rows' passages), which is also
the code ``lenprof train`` judges itself with.

FlagEmbedding runs from its own virtual environment (it pins its own transformers), under
torchrun with one process.

    python3 -m venv /tmp/fevenv && /tmp/fevenv/bin/pip install torch==2.13.0 FlagEmbedding
    python benchmarks/make_retrieval.py --rows 4000 --out /tmp/docstrings.jsonl
    python benchmarks/train_bench.py /tmp/docstrings.jsonl --flagembedding-venv /tmp/fevenv --steps 60

On a GPU (see gpu_check.sh): ``--device cuda --precision bf16``, and ``--flagembedding-python``
where FlagEmbedding sits in the same interpreter as lenprof. Timings mean something only on an
otherwise idle machine: the table says how busy this one was.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import random
import re
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from measure import measure_rc  # noqa: E402

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
    ap.add_argument("--eval-rows", type=int, default=20, help="test rows, scored by this script only")
    ap.add_argument("--valid-rows", type=int, default=64, help="rows lenprof train judges its run on")
    ap.add_argument("--learning-rate", type=float, default=2e-5)
    ap.add_argument("--query-max-len", type=int, help="default: the scan's recommendation")
    ap.add_argument("--passage-max-len", type=int, help="default: the scan's recommendation")
    args = ap.parse_args()

    import torch
    from transformers import AutoTokenizer
    from transformers.utils import logging as hf_logging

    hf_logging.disable_progress_bar()

    from lenprof import scan
    from lenprof.count.tokenizer import packaged_model_weights
    from lenprof.rows.groups import read_rows
    from lenprof.train.config import TrainConfig
    from lenprof.train.evaluate import evaluate
    from lenprof.train.model import Embedder, default_pooling

    model = args.model or str(packaged_model_weights())
    pooling = default_pooling(model)
    work = Path(tempfile.mkdtemp(prefix="lenprof-train-bench-"))
    profile = scan(str(args.data), tokenizer=model, clean_out=str(work / "clean.jsonl"))
    q_len, p_len = profile.recommendation.lengths()
    q_len, p_len = args.query_max_len or q_len, args.passage_max_len or p_len
    lines = (work / "clean.jsonl").read_text().splitlines()
    random.Random(0).shuffle(lines)
    test, valid = lines[: args.eval_rows], lines[args.eval_rows : args.eval_rows + args.valid_rows]
    train = lines[args.eval_rows + args.valid_rows :]
    for name, part in (("test", test), ("valid", valid), ("train", train)):
        (work / f"{name}.jsonl").write_text("\n".join(part) + "\n")
    settings = dict(batch=args.batch_size, group=args.group_size, steps=args.steps, lr=args.learning_rate)
    card = torch.cuda.get_device_name(0) if args.device == "cuda" else "none (CPU)"
    load = os.getloadavg()[0]
    print(f"machine: {platform.machine()}, {os.cpu_count()} cores, torch {torch.__version__}, GPU: {card}, "
          f"precision {args.precision}; load average {load:.2f} at the start")  # fmt: skip
    print(f"data: {len(train)} train rows (both trainers), {len(valid)} lenprof's held-out rows, {len(test)} test rows; "
          f"query_max_len {q_len}, passage_max_len {p_len}; {settings}")  # fmt: skip

    env = {**os.environ, "OMP_NUM_THREADS": os.environ.get("OMP_NUM_THREADS", "1")}
    if args.device == "cpu":
        env["CUDA_VISIBLE_DEVICES"] = ""
    runs = {}
    wall, rss, _, rc = measure_rc(
        [sys.executable, "-m", "lenprof", "train", str(work / "train.jsonl"), "--output-dir", str(work / "lenprof"),
         "--model", model, "--query-max-len", str(q_len), "--passage-max-len", str(p_len), "--batch-size", str(args.batch_size),
         "--train-group-size", str(args.group_size), "--max-steps", str(args.steps), "--learning-rate", str(args.learning_rate),
         "--pooling", pooling, "--precision", args.precision, "--eval-data", str(work / "valid.jsonl"), "-q"],
        env,
    )  # fmt: skip
    report = json.loads((work / "lenprof" / "train_report.json").read_text())
    runs["lenprof train"] = (rc, wall, report["seconds"], rss, work / "lenprof", report["weights"])

    fe_python = args.flagembedding_python or args.flagembedding_venv / "bin" / "python"
    device = ["--use_cpu", "True"] if args.device == "cpu" else []
    device += {"no": [], "bf16": ["--bf16", "True"], "fp16": ["--fp16", "True"]}[args.precision]
    wall, rss, fe_log, rc = measure_rc(
        [str(fe_python), "-m", "torch.distributed.run", "--nproc_per_node", "1", "-m", "FlagEmbedding.finetune.embedder.encoder_only.base",
         "--model_name_or_path", model, "--train_data", str(work / "train.jsonl"), "--output_dir", str(work / "flagembedding"),
         "--overwrite_output_dir", "--query_max_len", str(q_len), "--passage_max_len", str(p_len),
         "--train_group_size", str(args.group_size), "--per_device_train_batch_size", str(args.batch_size),
         "--max_steps", str(args.steps), "--learning_rate", str(args.learning_rate), "--temperature", "0.02",
         "--sentence_pooling_method", pooling, "--normalize_embeddings", "True", "--warmup_ratio", "0.1",
         "--logging_steps", "1", "--save_steps", "100000", "--dataloader_drop_last", "True", *device,
         "--report_to", "none", "--knowledge_distillation", "False", "--pad_to_multiple_of", "8"],
        env,
    )  # fmt: skip
    if rc != 0:
        raise SystemExit(f"FlagEmbedding failed with {rc}")
    # the Trainer prints its summary ({'train_runtime': ...}) at the end; checkpoints lack it
    train_runtime = float(re.search(r"'train_runtime': '?([\d.]+)", fe_log).group(1))
    runs["FlagEmbedding"] = (rc, wall, train_runtime, rss, work / "flagembedding", "trained")
    load_end = os.getloadavg()[0]

    rows = read_rows(work / "test.jsonl")
    cfg = TrainConfig(data="", model=model, output_dir="", query_max_len=q_len, passage_max_len=p_len)

    def score(folder: str) -> dict:
        return evaluate(Embedder(folder, pooling).to(args.device), AutoTokenizer.from_pretrained(folder), rows, cfg,
                        args.device)  # fmt: skip

    base = score(model)
    print(f"\n{'trainer':<15} {'exit':>4} {'wall s':>7} {'train s':>8} {'samples/s':>10} {'peak RSS':>9} "
          f"{'recall@10':>10} {'MRR@10':>7}  weights")  # fmt: skip
    print(
        f"{'base model':<15} {'-':>4} {'-':>7} {'-':>8} {'-':>10} {'-':>9} {base['recall@10']:>10} {base['mrr@10']:>7}"
    )
    for name, (rc, wall, train_s, rss, out, weights) in runs.items():
        s = score(str(out))
        print(f"{name:<15} {rc:>4} {wall:>7.1f} {train_s:>8.1f} {args.steps * args.batch_size / train_s:>10.2f} "
              f"{rss:>5.0f} MiB {s['recall@10']:>10} {s['mrr@10']:>7}  {weights}")  # fmt: skip
    held = report.get("eval_base"), report.get("eval_trained")
    if all(held):
        print(f"\nlenprof's own held-out rows: {held[0]['recall@10']}/{held[0]['mrr@10']} before, "
              f"{held[1]['recall@10']}/{held[1]['mrr@10']} saved (recall@10/MRR@10)")  # fmt: skip
    busy = " (the machine was busy before the runs began: timings not of record)" if load > 0.5 else ""
    print(f"load average {load:.2f} at the start, {load_end:.2f} at the end{busy}")


if __name__ == "__main__":
    main()
