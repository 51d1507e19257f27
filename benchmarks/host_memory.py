"""Peak host memory and time of ``lenprof train`` on the CPU under glibc malloc settings.

Each setting is a whole ``lenprof train`` run in a fresh process (the same rows, batches and
steps), the settings taken in turn, round after round (A B C A B C ...), so that a change in the
machine's load falls on all of them alike. For each run: the peak RSS, the training loop's seconds
(``train_report.json``), the process's CPU seconds (user and system: what it cost, whatever else
the machine was doing), its minor page faults, the held-out score it ended with (a setting that
changes only the allocator must leave it as it is) and the load average before it began.

    python benchmarks/make_retrieval.py --rows 3564 --out /tmp/docstrings.jsonl
    python benchmarks/train_bench.py ...   # or any FlagEmbedding-format train and eval rows
    python benchmarks/host_memory.py WORK/train.jsonl --eval-data WORK/valid.jsonl --steps 12 \\
        --setting glibc= --setting lean=LENPROF_HOST_MEMORY=lean --rounds 2

A setting is ``NAME=VAR=VALUE,VAR=VALUE`` (environment variables for that run; ``NAME=`` for
none). The issue's setting is the default: MiniLM, batch 8 x group 8, lengths 24/192, lr 2e-5.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")


VMSTAT = ("thp_fault_alloc", "thp_fault_fallback", "compact_stall")  # the whole machine's, not the run's own


def vmstat() -> dict[str, int]:
    pairs = (line.split() for line in Path("/proc/vmstat").read_text().splitlines())
    return {k: int(v) for k, v in pairs if k in VMSTAT}


def run(cmd: list[str], env: dict[str, str]) -> dict:
    """One run: its wall seconds, peak RSS (MiB), CPU seconds, minor faults, exit code, the
    time since its start of each line it wrote to stderr (where the phases of a run show), and
    how the machine's huge page counters moved meanwhile."""
    before = vmstat()
    start = time.perf_counter()
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    lines = [(round(time.perf_counter() - start, 1), line.rstrip()) for line in proc.stderr]  # type: ignore[union-attr]
    _, status, usage = os.wait4(proc.pid, 0)
    return {
        "wall": time.perf_counter() - start,
        "rss": usage.ru_maxrss / 1024,
        "user": usage.ru_utime,
        "sys": usage.ru_stime,
        "minflt": usage.ru_minflt,
        "rc": os.waitstatus_to_exitcode(status),
        "lines": lines,
        "vmstat": {k: v - before[k] for k, v in vmstat().items()},
    }


def setting(text: str) -> tuple[str, dict[str, str]]:
    name, _, assignments = text.partition("=")
    return name, dict(a.split("=", 1) for a in assignments.split(",") if a)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("data", type=Path, help="FlagEmbedding-format JSONL to train on")
    ap.add_argument("--eval-data", type=Path, help="held-out rows (--eval-data of lenprof train)")
    ap.add_argument("--setting", action="append", type=setting, required=True, help="NAME=VAR=VALUE,...")
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--steps", type=int, default=12)
    ap.add_argument("--model", help="default: the packaged all-MiniLM-L6-v2")
    ap.add_argument("--log", type=Path, help="append each run's record (and its stderr lines) as JSON")
    args = ap.parse_args()

    from lenprof.count.tokenizer import packaged_model_weights
    from lenprof.train.model import default_pooling

    model = args.model or str(packaged_model_weights())
    work = Path(tempfile.mkdtemp(prefix="lenprof-host-memory-"))
    base = {k: v for k, v in os.environ.items() if k not in ("MALLOC_MMAP_THRESHOLD_", "GLIBC_TUNABLES")}
    base["OMP_NUM_THREADS"] = os.environ.get("OMP_NUM_THREADS", "1")
    base["CUDA_VISIBLE_DEVICES"] = ""
    print(f"machine: {platform.machine()}, {os.cpu_count()} cores, {' '.join(platform.libc_ver())}; "
          f"{args.steps} steps a run, batch 8 x group 8, lengths 24/192")  # fmt: skip
    print(f"{'setting':<12} {'round':>5} {'load':>5} {'peak MiB':>9} {'train s':>8} {'s/step':>7} {'wall s':>7} "
          f"{'user s':>7} {'sys s':>6} {'minflt':>9}  held-out recall/MRR")  # fmt: skip
    for r in range(args.rounds):
        for name, env in args.setting:
            out = work / f"{name}-{r}"
            cmd = [sys.executable, "-m", "lenprof", "train", str(args.data), "--output-dir", str(out),
                   "--model", model, "--query-max-len", "24", "--passage-max-len", "192", "--batch-size", "8",
                   "--train-group-size", "8", "--max-steps", str(args.steps), "--learning-rate", "2e-5",
                   "--pooling", default_pooling(model)]  # fmt: skip
            if args.eval_data:
                cmd += ["--eval-data", str(args.eval_data)]
            load = os.getloadavg()[0]
            rec = run(cmd, {**base, **env})
            report = json.loads((out / "train_report.json").read_text()) if rec["rc"] in (0, 1) else {}
            held = report.get("eval_trained") or {}
            seconds = report.get("seconds", float("nan"))
            print(f"{name:<12} {r:>5} {load:>5.2f} {rec['rss']:>9.0f} {seconds:>8.1f} {seconds / args.steps:>7.2f} "
                  f"{rec['wall']:>7.1f} {rec['user']:>7.1f} {rec['sys']:>6.1f} {rec['minflt']:>9}  "
                  f"{held.get('recall@10')}/{held.get('mrr@10')}  {rec['vmstat']}", flush=True)  # fmt: skip
            if args.log:
                with args.log.open("a") as f:
                    f.write(json.dumps({"setting": name, "env": env, "round": r, "load": load, **rec,
                                        "seconds": seconds, "heldout": report.get("heldout")}) + "\n")  # fmt: skip


if __name__ == "__main__":
    main()
