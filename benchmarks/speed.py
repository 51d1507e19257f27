"""End-to-end speed of `lenprof scan` against what users run today, same data, same run.

Contenders, each in a fresh process (peak RSS from the kernel):
  lenprof         `lenprof scan FILE --format json` (all cores by default)
  datasets.map    load_dataset("json") + map(batched=True) with AutoTokenizer + numpy percentiles
  per-text loop   tokenizer(text) one text at a time (FlagEmbedding's collator pattern), on a
                  slice of --per-text-limit texts, rate extrapolated
  raw limit       encode_batch_fast over all cores on the distinct texts alone: no I/O, no checks
  read only       polars.read_ndjson of the file (the floor for reading)

    python benchmarks/speed.py /tmp/corpus/mined-125000x9-r4.jsonl [--parquet FILE]
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")

DATASETS = r"""
import sys, numpy as np, datasets
from transformers import AutoTokenizer
from lenprof.tokenize import packaged_model_path
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

PER_TEXT = r"""
import sys, json
from transformers import AutoTokenizer
from lenprof.tokenize import packaged_model_path
tok = AutoTokenizer.from_pretrained(str(packaged_model_path()))
texts = json.load(open(sys.argv[1]))
import time; t = time.perf_counter()
n = sum(len(tok(x)["input_ids"]) for x in texts)
print(time.perf_counter() - t, n)
"""


def isolated(cmd: list[str]) -> tuple[float, float, str]:
    """Run ``cmd`` under a tiny wrapper process so its peak RSS is its own."""
    wrapper = (
        "import resource, subprocess, sys, time\n"
        "t = time.perf_counter(); p = subprocess.run(sys.argv[1:], stdout=subprocess.PIPE, text=True)\n"
        "s = time.perf_counter() - t\n"
        "print(s, resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024, p.returncode)\n"
        "print(p.stdout, end='')\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", wrapper, *cmd], stdout=subprocess.PIPE, text=True, check=True
    ).stdout
    head, _, rest = out.partition("\n")
    seconds, rss, rc = head.split()
    if rc != "0":
        raise SystemExit(f"{' '.join(cmd[:4])} failed with {rc}")
    return float(seconds), float(rss), rest


_tok = None


def _init(js: str) -> None:
    global _tok
    os.environ["RAYON_NUM_THREADS"] = "1"
    from tokenizers import Tokenizer

    _tok = Tokenizer.from_str(js)


def _count(texts: list[str]) -> int:
    return sum(len(e) for e in _tok.encode_batch_fast(texts, add_special_tokens=True))  # type: ignore[union-attr]


def raw_limit(texts: list[str], workers: int) -> tuple[float, int]:
    from lenprof import load_tokenizer

    js = load_tokenizer(None).backend.to_str()
    chunks = [texts[i : i + 2000] for i in range(0, len(texts), 2000)]
    with multiprocessing.get_context("spawn").Pool(workers, _init, (js,)) as pool:
        pool.map(_count, [texts[:100]] * workers)  # warm: workers started and loaded
        start = time.perf_counter()
        tokens = sum(pool.map(_count, chunks, chunksize=1))
        return time.perf_counter() - start, tokens


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("jsonl", type=Path)
    ap.add_argument("--parquet", type=Path, help="the same corpus as Parquet, scanned by lenprof too")
    ap.add_argument("--per-text-limit", type=int, default=50_000)
    ap.add_argument("--skip", nargs="*", default=[], choices=["datasets", "per-text"])
    args = ap.parse_args()
    bin_dir = Path(sys.executable).parent
    workers = len(os.sched_getaffinity(0))

    texts: list[str] = []
    for line in open(args.jsonl, encoding="utf-8"):
        row = json.loads(line)
        texts += [row["query"], *row["pos"], *row["neg"]]
    distinct = list(dict.fromkeys(texts))
    n = len(texts)
    print(
        f"machine: {platform.machine()}, {workers} cores, {platform.platform()}, Python {platform.python_version()}"
    )
    print(
        f"corpus: {args.jsonl.name}, {args.jsonl.stat().st_size / 1e6:.0f} MB, {n:,} texts, {len(distinct):,} distinct ({n / len(distinct):.2f} appearances each)\n"
    )

    rows: list[tuple[str, float, float | None, int | None]] = []  # name, seconds, rss, tokens
    t_raw, tokens_distinct = raw_limit(distinct, workers)
    rows.append((f"raw limit ({workers} procs, distinct only)", t_raw, None, None))
    t_read, rss_read, _ = isolated(
        [sys.executable, "-c", f"import polars as pl; pl.read_ndjson({str(args.jsonl)!r})"]
    )
    rows.append(("read only (polars.read_ndjson)", t_read, rss_read, None))

    with tempfile.TemporaryDirectory() as tmp:
        for path in [args.jsonl] + ([args.parquet] if args.parquet else []):
            t, rss, out = isolated([str(bin_dir / "lenprof"), "scan", str(path), "-q", "--format", "json"])
            d = json.loads(out)
            total_tokens = d["fields"]["query"]["tokens"] + d["fields"]["passage"]["tokens"]
            rows.append((f"lenprof scan ({path.suffix[1:]})", t, rss, total_tokens))
            run = d.get("run", {})
        if "datasets" not in args.skip:
            t, rss, out = isolated([sys.executable, "-c", DATASETS, str(args.jsonl), tmp])
            rows.append(("datasets.map(batched) + numpy", t, rss, int(out.split()[2])))
        if "per-text" not in args.skip:
            sample = texts[: args.per_text_limit]
            Path(tmp, "s.json").write_text(json.dumps(sample))
            t, rss, out = isolated([sys.executable, "-c", PER_TEXT, str(Path(tmp, "s.json"))])
            loop_s, loop_tokens = out.split()
            scale = n / len(sample)
            rows.append(
                (f"per-text loop (x{scale:.1f} from {len(sample):,})", float(loop_s) * scale, rss, None)
            )

    base = {name.split(" ")[0]: s for name, s, _, _ in rows}
    print(
        f"{'contender':<40} {'seconds':>8} {'texts/s':>9} {'tokens/s':>10} {'peak RSS':>9} {'vs datasets':>11} {'vs per-text':>11}"
    )
    for name, s, rss, tokens in rows:
        texts_n = len(distinct) if name.startswith("raw") else n
        tok_s = f"{tokens / s:,.0f}" if tokens else "-"
        rss_s = f"{rss:,.0f} MiB" if rss else "-"
        vs_d = f"{base['datasets.map(batched)'] / s:.1f}x" if "datasets.map(batched)" in base else "-"
        vs_p = f"{base['per-text'] / s:.1f}x" if "per-text" in base else "-"
        print(f"{name:<40} {s:>8.1f} {texts_n / s:>9,.0f} {tok_s:>10} {rss_s:>9} {vs_d:>11} {vs_p:>11}")
    if run:
        rate = run["texts_tokenized"] / run["tokenize_s"] if run.get("tokenize_s") else 0
        print(
            f"\nlenprof inside: tokenized {run['texts_tokenized']:,} distinct texts in {run['tokenize_s']:.1f} s "
            f"({rate:,.0f}/s = {rate / (len(distinct) / t_raw):.2f}x the raw limit); "
            f"floor = read + raw = {t_read + t_raw:.1f} s"
        )


if __name__ == "__main__":
    main()
