"""Bare training steps of the issue's batch, as ``lenprof train``'s loop takes them: CPU seconds and
peak RSS a step, the loss of each (to the last digit) and a checksum of the weights after.

No data loading, evaluation or checkpoints: what a step itself costs. Run it once per setting,
each in a fresh process, taking the settings in turn (A B A B) on a busy machine; CPU seconds
change less with the load than wall seconds do.

    python benchmarks/train_step.py WORK/train.jsonl --steps 4
    LENPROF_ACTIVATIONS=plain python benchmarks/train_step.py WORK/train.jsonl --steps 4
"""

from __future__ import annotations

import argparse
import os
import resource
import time

os.environ.setdefault("HF_HUB_OFFLINE", "1")


def peak_mib() -> int:
    for line in open("/proc/self/status"):
        if line.startswith("VmHWM"):
            return int(line.split()[1]) // 1024
    return 0


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("data", help="FlagEmbedding-format JSONL")
    ap.add_argument("--steps", type=int, default=4)
    args = ap.parse_args()

    import torch
    from transformers import AutoTokenizer

    from lenprof.count.tokenizer import packaged_model_weights
    from lenprof.rows.groups import GroupSampler, batches, read_rows
    from lenprof.train.loss import contrastive_loss
    from lenprof.train.model import Embedder, default_pooling

    torch.manual_seed(42)
    model_path = str(packaged_model_weights())
    groups = batches(GroupSampler(read_rows(args.data), 8, 42).epoch(0), 8, 42)[: args.steps]
    tokenizer = AutoTokenizer.from_pretrained(model_path)
    model = Embedder(model_path, default_pooling(model_path)).train()
    optimizer = torch.optim.AdamW(model.parameters(), lr=2e-5, weight_decay=0.0)
    print(f"setting: LENPROF_ACTIVATIONS={os.environ.get('LENPROF_ACTIVATIONS', '')!r}, "
          f"MALLOC_MMAP_THRESHOLD_={os.environ.get('MALLOC_MMAP_THRESHOLD_', '')!r}; "
          f"load average {os.getloadavg()[0]:.2f}")  # fmt: skip
    cpu_after_first = []
    for i, batch in enumerate(groups):
        before, start = resource.getrusage(resource.RUSAGE_SELF), time.process_time()
        q_in = tokenizer(
            [g.query for g in batch], truncation=True, max_length=24, padding=True, return_tensors="pt"
        )
        p_in = tokenizer([t for g in batch for t in g.passages], truncation=True, max_length=192, padding=True,
                         return_tensors="pt")  # fmt: skip
        q, p = model(**q_in, passages=dict(p_in))  # (8, d), (64, d)
        loss = contrastive_loss(q, p, 8, 0.02, True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optimizer.step()
        optimizer.zero_grad()
        cpu = time.process_time() - start
        after = resource.getrusage(resource.RUSAGE_SELF)
        if i:
            cpu_after_first.append(cpu)
        print(f"step {i}: {cpu:.2f} CPU s ({after.ru_stime - before.ru_stime:.2f} system), peak {peak_mib()} MiB, "
              f"loss {loss.item()!r}", flush=True)  # fmt: skip
    checksum = sum(float(w.detach().double().sum()) for w in model.parameters())
    mean = sum(cpu_after_first) / max(1, len(cpu_after_first))
    print(f"peak {peak_mib()} MiB, {mean:.2f} CPU s a step after the first; weights' checksum {checksum!r}")


if __name__ == "__main__":
    main()
