"""Peak memory of `lenprof scan` as the corpus grows, against the load-everything approach.

What a user would otherwise write: read every row into a list, tokenize every text with the
same tokenizer, and take numpy percentiles. Both run in fresh subprocesses on the same files;
peak RSS comes from the kernel (ru_maxrss of the finished child).

    python benchmarks/memory.py            # 25k and 100k rows, 8 texts each
    python benchmarks/memory.py --rows 50000 200000
"""

from __future__ import annotations

import argparse
import os
import platform
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from make_corpus import write_corpus  # noqa: E402

BASELINE = r"""
import json, sys, numpy as np
from lenprof.tokenize import packaged_model_path
from transformers import AutoTokenizer
tok = AutoTokenizer.from_pretrained(str(packaged_model_path()))
rows = [json.loads(l) for l in open(sys.argv[1], encoding="utf-8") if l.strip()]
q = [len(x) for x in tok([r["query"] for r in rows])["input_ids"]]
p = [len(x) for x in tok([t for r in rows for t in r["pos"] + r["neg"]])["input_ids"]]
print(np.percentile(q, 95, method="inverted_cdf"), np.percentile(p, 95, method="inverted_cdf"))
"""


def run(cmd: list[str]) -> tuple[float, float]:
    """Seconds and peak RSS (MiB) of one child process."""
    start = time.perf_counter()
    pid = os.fork()
    if pid == 0:  # the child's own output would interleave with the table
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, 1)
        os.execvp(cmd[0], cmd)
    _, status, usage = os.wait4(pid, 0)
    if status:
        raise SystemExit(f"{cmd} failed with status {status}")
    return time.perf_counter() - start, usage.ru_maxrss / 1024


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rows", type=int, nargs="+", default=[25_000, 100_000])
    args = ap.parse_args()
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
    lenprof = str(Path(sys.executable).parent / "lenprof")
    print(f"machine: {platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}")
    print(
        f"{'rows':>8} {'texts':>9} {'MB':>6} | {'lenprof s':>9} {'RSS MiB':>8} | {'load-all s':>10} {'RSS MiB':>8}"
    )
    with tempfile.TemporaryDirectory() as tmp:
        for rows in args.rows:
            path = write_corpus(Path(tmp) / f"c{rows}.jsonl", rows, neg=7)
            mb = path.stat().st_size / 1e6
            t1, m1 = run(
                [lenprof, "scan", str(path), "-q", "--format", "args", "--clean-out", f"{tmp}/clean.jsonl"]
            )
            t2, m2 = run([sys.executable, "-c", BASELINE, str(path)])
            print(f"{rows:>8} {rows * 9:>9} {mb:>6.0f} | {t1:>9.1f} {m1:>8.0f} | {t2:>10.1f} {m2:>8.0f}")


if __name__ == "__main__":
    main()
