"""How long a small scan takes: ten rows with a hub-style model folder.

What a user waits for on a small file is start-up: importing transformers (and torch beside it)
to build the tokenizer takes seconds. lenprof builds it that way once, caches the Rust backend
transformers made, and loads it again with ``tokenizers`` alone. Compared, each a fresh process,
in turn, over ``--runs`` runs: lenprof's first scan (cold cache), lenprof's later scans (warm),
and the few lines a user would write (AutoTokenizer on the same rows).

    python benchmarks/startup.py
"""

from __future__ import annotations

import argparse
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
EXAMPLES = Path(__file__).resolve().parents[1] / "examples"

USER = r"""
import json, sys
from transformers import AutoTokenizer
tok = AutoTokenizer.from_pretrained(sys.argv[2])
rows = [json.loads(l) for l in open(sys.argv[1], encoding="utf-8")]
texts = [t for r in rows for t in [r["query"], *r["pos"], *r["neg"]]]
print(max(len(ids) for ids in tok(texts)["input_ids"]))
"""


def seconds(cmd: list[str], env: dict[str, str]) -> float:
    start = time.perf_counter()
    subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env)
    return time.perf_counter() - start


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--runs", type=int, default=5)
    args = ap.parse_args()
    from lenprof.count.tokenizer import packaged_model_path

    lenprof = str(Path(sys.executable).parent / "lenprof")
    with tempfile.TemporaryDirectory() as tmp:
        model = Path(tmp) / "bge-style-model"  # a folder as save_pretrained or the hub leaves it
        shutil.copytree(packaged_model_path(), model)
        rows = Path(tmp) / "ten.jsonl"
        rows.write_text("".join((EXAMPLES / "msmarco.jsonl").read_text().splitlines(keepends=True)[:10]))
        scan = [lenprof, "scan", str(rows), "--tokenizer", str(model), "-q", "--format", "args"]
        times: dict[str, list[float]] = {
            "lenprof scan, first run (cold cache)": [],
            "lenprof scan (warm cache)": [],
            "AutoTokenizer script": [],
        }
        for i in range(args.runs):
            cold = {**os.environ, "LENPROF_CACHE_DIR": str(Path(tmp) / f"cold{i}")}
            warm = {**os.environ, "LENPROF_CACHE_DIR": str(Path(tmp) / "warm")}
            if i == 0:
                seconds(scan, warm)  # fill the warm cache once
            times["lenprof scan, first run (cold cache)"].append(seconds(scan, cold))
            times["lenprof scan (warm cache)"].append(seconds(scan, warm))
            times["AutoTokenizer script"].append(
                seconds([sys.executable, "-c", USER, str(rows), str(model)], warm)
            )
    print(
        f"machine: {platform.machine()}, {len(os.sched_getaffinity(0))} cores, Python {platform.python_version()}"
    )
    print(f"{'10 rows, model folder':<40} {'median s':>9} {'min':>6} {'max':>6}")
    for name, ts in times.items():
        print(f"{name:<40} {statistics.median(ts):>9.2f} {min(ts):>6.2f} {max(ts):>6.2f}")


if __name__ == "__main__":
    main()
