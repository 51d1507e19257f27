"""End-to-end speed of `lenprof scan` against its floor and against what users run today.

Every contender is a whole program in a fresh process, run in turn (A B C A B C ...) so that a
drift of the machine's speed hits them alike; the table gives each one's median wall time
(min-max), its peak RSS (the largest single process, from the kernel) and the ratios.

  floor          benchmarks/floor.py: read with polars and count each distinct text once with
                 encode_batch_fast, one process per core; nothing else (no checks, no numbers);
                 with the tokenizer the trainer loads (transformers' AutoTokenizer), built untimed
  lenprof        `lenprof scan FILE --format json` (all cores; the piece caches where they apply)
  lenprof exact  the same with --exact-only: every distinct text through the tokenizer
  (CHECKOUT)     the same two from another checkout (--also), e.g. the commit before a change

Besides wall time, each contender's CPU seconds (all its processes): on a shared machine, the
figure other loads disturb least.
  datasets.map   load_dataset("json") + map(batched=True) with AutoTokenizer + numpy percentiles

    python benchmarks/speed.py /tmp/corp/mined-125000x9-r4.jsonl /tmp/corp/mined-222222x9-r8.jsonl --datasets
    # Qwen2's byte-level BPE on Chinese (issue 24; qwen2_bpe.py builds it):
    python benchmarks/make_corpus.py --rows 60000 --chinese 1 --format jsonl --out-dir /tmp/zh
    python benchmarks/qwen2_bpe.py /tmp/qwen2-zh
    python benchmarks/speed.py /tmp/zh/mined-60000x9-r4.jsonl --tokenizer /tmp/qwen2-zh
    # a Chinese BERT like bge-*-zh-v1.5's, which the fast count covers (chinese_bert.py builds it):
    python benchmarks/chinese_bert.py /tmp/bert-zh
    python benchmarks/speed.py /tmp/zh/mined-60000x9-r4.jsonl --tokenizer /tmp/bert-zh
    # English with a realistic vocabulary (issue 24): the installed libraries' docstrings, real
    # summaries as queries (no synthetic "#N"), real bodies as passages; 37k rows, 74k distinct
    python benchmarks/make_retrieval.py --rows 100000 --max-body 2000 --out /tmp/div/docstrings-all.jsonl
    python benchmarks/speed.py /tmp/div/docstrings-all.jsonl
"""

from __future__ import annotations

import argparse
import compileall
import json
import os
import platform
import statistics
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from floor import trainer_tokenizer  # noqa: E402
from measure import measure, measure_cpu  # noqa: E402

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
    ap.add_argument(
        "--tokenizer", help="a tokenizer folder or tokenizer.json for the floor and lenprof (default: MiniLM)"
    )
    ap.add_argument(
        "--also",
        type=Path,
        action="append",
        default=[],
        help="another lenprof checkout (its root folder) to time beside this one: a change and the "
        "commit before it, in one run",
    )
    args = ap.parse_args()
    if args.tokenizer and Path(args.tokenizer).exists():
        args.tokenizer = str(Path(args.tokenizer).resolve())
    args.corpora = [corpus.resolve() for corpus in args.corpora]
    args.also = [tree.resolve() for tree in args.also]
    # Every contender runs in an empty folder: lenprof's workers start with `python -c`, which
    # puts the current folder first on sys.path, so run from a checkout they would import that
    # checkout's lenprof whatever PYTHONPATH names (an --also tree's workers ran this tree's code)
    os.chdir(tempfile.mkdtemp(prefix="speed-"))
    tokenizer = ["--tokenizer", args.tokenizer] if args.tokenizer else []
    print(
        f"machine: {platform.machine()}, {len(os.sched_getaffinity(0))} cores, {platform.platform()}, Python {platform.python_version()}"
    )
    print(f"load: {os.getloadavg()[0]:.2f} (1 min), tokenizer: {args.tokenizer or 'the packaged MiniLM'}")
    # -P: the checkout named on PYTHONPATH, never the current folder's
    lenprof = [sys.executable, "-P", "-m", "lenprof", "scan"]
    trees = {"": HERE.parent, **{f" ({tree.name})": tree.resolve() for tree in args.also}}
    envs = {tag: {**os.environ, "PYTHONPATH": str(tree)} for tag, tree in trees.items()}
    # Each tree's lenprof compiled to bytecode first, as `pip install` leaves it: with
    # PYTHONDONTWRITEBYTECODE set (as on our machines), a checkout is compiled again by every run
    # (~0.1 s of a 1.3 s scan), which no installed lenprof does
    for tree in trees.values():
        compileall.compile_dir(str(tree / "lenprof"), quiet=1)
    # the floor's tokenizer, as the trainer loads it, built once here, untimed (see floor.py)
    floor_tokenizer = trainer_tokenizer(args.tokenizer, os.path.abspath("floor-tokenizer.json"))
    for corpus in args.corpora:
        scan = [str(corpus), "-q", "--format", "json", *tokenizer]
        contenders: dict[str, tuple[list[str], dict | None]] = {
            "floor (read + distinct texts, 1 proc/core)": (
                [sys.executable, str(HERE / "floor.py"), str(corpus), floor_tokenizer],
                None,
            )
        }
        for tag, env in envs.items():
            contenders[f"lenprof scan{tag}"] = ([*lenprof, *scan], env)
            contenders[f"lenprof scan --exact-only{tag}"] = ([*lenprof, *scan, "--exact-only"], env)
        results: dict[str, list[tuple[float, float, float]]] = {name: [] for name in contenders}
        info = {}
        for _ in range(args.runs):
            for name, (cmd, env) in contenders.items():
                seconds, rss, out, rc, cpu = measure_cpu(cmd, env)
                if rc != 0:  # a contender that failed has no time: say so, never print a 0.0
                    raise SystemExit(f"{name} failed with exit code {rc}: {' '.join(map(str, cmd[:4]))} ...")
                results[name].append((seconds, rss, cpu))
                if name.startswith("lenprof"):
                    d = json.loads(out)
                    info[name] = (d["run"], d["fields"]["query"]["tokens"] + d["fields"]["passage"]["tokens"])
        if args.datasets and not args.tokenizer:  # its script loads the packaged MiniLM
            with tempfile.TemporaryDirectory() as cache:
                seconds, rss, out = measure([sys.executable, "-c", DATASETS, str(corpus), cache])
            results["datasets.map(batched) + numpy"] = [(seconds, rss, 0.0)]
            assert int(out.split()[2]) == info["lenprof scan"][1], "datasets counted other tokens"
        assert len({tokens for _, tokens in info.values()}) == 1, "the lenprof runs counted other tokens"
        run, tokens = info["lenprof scan"]
        texts = sum(1 for _ in open(corpus, "rb")) * 9
        print(
            f"\ncorpus: {corpus.name}, {corpus.stat().st_size / 1e6:.0f} MB, {texts:,} texts, "
            f"{run['texts_tokenized']:,} distinct, {tokens:,} tokens; lenprof counted {run['counting']['fast_share']:.0%} "
            f"of distinct texts through the piece caches ({run['counting']['path']})"
        )
        floor = results[next(iter(contenders))]
        floor_s, floor_cpu = statistics.median(r[0] for r in floor), statistics.median(r[2] for r in floor)
        slow = statistics.median(r[0] for r in results.get("datasets.map(batched) + numpy", [(0, 0, 0)]))
        print(
            f"{'contender':<44} {'median s':>9} {'min-max':>13} {'peak RSS':>10} {'vs floor':>9} "
            f"{'CPU s':>6} {'vs floor':>9} {'datasets /':>11}"
        )
        for name, runs in results.items():
            s = statistics.median(x for x, _, _ in runs)
            lo, hi = min(x for x, _, _ in runs), max(x for x, _, _ in runs)
            rss = max(r for _, r, _ in runs)
            cpu = statistics.median(c for _, _, c in runs)
            vs = f"{slow / s:.1f}x" if slow else "-"
            print(
                f"{name:<44} {s:>9.1f} {lo:>6.1f}-{hi:<6.1f} {rss:>6.0f} MiB {s / floor_s:>8.2f}x "
                f"{cpu:>6.1f} {cpu / floor_cpu:>8.2f}x {vs:>11}"
            )
        print(f"load after: {os.getloadavg()[0]:.2f} (1 min)")


if __name__ == "__main__":
    main()
