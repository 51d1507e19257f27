"""Peak memory of `lenprof scan` as the corpus grows, against the load-everything approach.

lenprof streams shards: memory holds the shards in flight, 8 bytes per kept row (duplicate
detection), 12 bytes per distinct text (their lengths) and 8 bytes per distinct text per field
(unique counts), and each worker bounded piece caches. What a user would otherwise write reads
every row into a list, tokenizes every text and takes numpy percentiles (``--load-all``; it needs
tens of GiB on the larger corpora). Each run is a fresh process; the peak RSS is the kernel's
figure for the largest single process (main or worker).

    python benchmarks/memory.py /tmp/corp/mined-222222x9-r8.jsonl /tmp/corp16/mined-1777776x9-r8.jsonl
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from measure import measure  # noqa: E402

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")

LOAD_ALL = r"""
import json, sys, numpy as np
from lenprof.count.tokenizer import packaged_model_path
from transformers import AutoTokenizer
tok = AutoTokenizer.from_pretrained(str(packaged_model_path()))
rows = [json.loads(l) for l in open(sys.argv[1], encoding="utf-8") if l.strip()]
q = [len(x) for x in tok([r["query"] for r in rows])["input_ids"]]
p = [len(x) for x in tok([t for r in rows for t in r["pos"] + r["neg"]])["input_ids"]]
print(np.percentile(q, 95, method="inverted_cdf"), np.percentile(p, 95, method="inverted_cdf"))
"""


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("corpora", nargs="+", type=Path)
    ap.add_argument("--load-all", action="store_true", help="also run the load-everything script")
    args = ap.parse_args()
    lenprof = str(Path(sys.executable).parent / "lenprof")
    print(
        f"machine: {platform.machine()}, {len(os.sched_getaffinity(0))} cores, Python {platform.python_version()}"
    )
    print(
        f"{'corpus':<32} {'texts':>11} {'distinct':>10} {'MB':>6} | {'lenprof s':>9} {'peak RSS':>10} | {'load-all s':>10} {'peak RSS':>10}"
    )
    first = None
    for corpus in args.corpora:
        seconds, rss, out = measure([lenprof, "scan", str(corpus), "-q", "--format", "json"])
        d = json.loads(out)
        texts = d["fields"]["query"]["count"] + d["fields"]["passage"]["count"]
        distinct = d["fields"]["query"]["unique"] + d["fields"]["passage"]["unique"]
        base = f"{'-':>10} {'-':>10}"
        if args.load_all:
            s2, r2, _ = measure([sys.executable, "-c", LOAD_ALL, str(corpus)])
            base = f"{s2:>10.1f} {r2:>6.0f} MiB"
        first = first or rss
        growth = f"  ({rss / first:.2f}x the first)" if rss != first else ""
        print(
            f"{corpus.name:<32} {texts:>11,} {distinct:>10,} {corpus.stat().st_size / 1e6:>6.0f} | "
            f"{seconds:>9.1f} {rss:>6.0f} MiB | {base}{growth}"
        )


if __name__ == "__main__":
    main()
