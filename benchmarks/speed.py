"""End-to-end speed of `lenprof scan` against its floor and against what users run today.

Every contender is a whole program in a fresh process, run in turn (A B C A B C ...) so that a
drift of the machine's speed hits them alike; the table gives each one's median wall time
(min-max), its peak RSS (the largest single process, from the kernel) and the ratios.

  floor          benchmarks/floor.py: read with polars and count each distinct text once with
                 encode_batch_fast, one process per core; nothing else (no checks, no numbers)
  lenprof        `lenprof scan FILE --format json` (all cores; the piece caches where they apply)
  lenprof exact  the same with --exact-only: every distinct text through the tokenizer
  datasets.map   load_dataset("json") + map(batched=True) with AutoTokenizer + numpy percentiles

    python benchmarks/speed.py /tmp/corp/mined-125000x9-r4.jsonl /tmp/corp/mined-222222x9-r8.jsonl --datasets
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from measure import measure  # noqa: E402

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
HERE = Path(__file__).resolve().parent

DATASETS = r"""
import sys, numpy as np, datasets
from transformers import AutoTokenizer
from lenprof.count.tokenizer import packaged_model_path
datasets.disable_progress_bars()
tok = AutoTokenizer.from_pretrained(str(packaged_model_path()))
ds = datasets.load_dataset("json", data_files=sys.argv[1], split="train", cache_dir=sys.argv[2])
def lengths(batch):
    q = [len(x) for x in tok(batch["query"])["input_ids"]]
    flat = [t for p, n in zip(batch["pos"], batch["neg"]) for t in p + n]
    return {"q": q, "p": [[len(x) for x in tok(flat)["input_ids"]]] + [[]] * (len(q) - 1)}
out = ds.map(lengths, batched=True, batch_size=1000, remove_columns=ds.column_names)
q = np.array(out["q"]); p = np.concatenate([np.array(x, dtype=np.int64) for x in out["p"]])
print(int(np.percentile(q, 95, method="inverted_cdf")), int(np.percentile(p, 95, method="inverted_cdf")), int(q.sum() + p.sum()))
"""


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("corpora", nargs="+", type=Path)
    ap.add_argument("--runs", type=int, default=3, help="runs of each fast contender, interleaved")
    ap.add_argument("--datasets", action="store_true", help="also run datasets.map (minutes; once)")
    args = ap.parse_args()
    bin_dir = Path(sys.executable).parent
    print(
        f"machine: {platform.machine()}, {len(os.sched_getaffinity(0))} cores, {platform.platform()}, Python {platform.python_version()}"
    )
    for corpus in args.corpora:
        contenders = {
            "floor (read + distinct texts, 1 proc/core)": [
                sys.executable,
                str(HERE / "floor.py"),
                str(corpus),
            ],
            "lenprof scan": [str(bin_dir / "lenprof"), "scan", str(corpus), "-q", "--format", "json"],
            "lenprof scan --exact-only": [
                str(bin_dir / "lenprof"),
                "scan",
                str(corpus),
                "-q",
                "--format",
                "json",
                "--exact-only",
            ],
        }
        results: dict[str, list[tuple[float, float]]] = {name: [] for name in contenders}
        info = {}
        for _ in range(args.runs):
            for name, cmd in contenders.items():
                seconds, rss, out = measure(cmd)
                results[name].append((seconds, rss))
                if name.startswith("lenprof"):
                    d = json.loads(out)
                    info[name] = (d["run"], d["fields"]["query"]["tokens"] + d["fields"]["passage"]["tokens"])
        if args.datasets:
            with tempfile.TemporaryDirectory() as cache:
                seconds, rss, out = measure([sys.executable, "-c", DATASETS, str(corpus), cache])
            results["datasets.map(batched) + numpy"] = [(seconds, rss)]
            assert int(out.split()[2]) == info["lenprof scan"][1], "datasets counted other tokens"
        run, tokens = info["lenprof scan"]
        texts = sum(1 for _ in open(corpus, "rb")) * 9
        print(
            f"\ncorpus: {corpus.name}, {corpus.stat().st_size / 1e6:.0f} MB, {texts:,} texts, "
            f"{run['texts_tokenized']:,} distinct, {tokens:,} tokens; lenprof counted {run['counting']['fast_share']:.0%} "
            f"of distinct texts through the piece caches ({run['counting']['path']})"
        )
        floor = statistics.median(s for s, _ in results[next(iter(contenders))])
        slow = statistics.median(s for s, _ in results.get("datasets.map(batched) + numpy", [(0, 0)]))
        print(
            f"{'contender':<44} {'median s':>9} {'min-max':>13} {'peak RSS':>10} {'vs floor':>9} {'datasets /':>11}"
        )
        for name, runs in results.items():
            s = statistics.median(x for x, _ in runs)
            lo, hi = min(x for x, _ in runs), max(x for x, _ in runs)
            rss = max(r for _, r in runs)
            vs = f"{slow / s:.1f}x" if slow else "-"
            print(f"{name:<44} {s:>9.1f} {lo:>6.1f}-{hi:<6.1f} {rss:>6.0f} MiB {s / floor:>8.2f}x {vs:>11}")


if __name__ == "__main__":
    main()
