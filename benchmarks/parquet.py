"""A Parquet scan against the JSONL scan of the same rows, in one run: wall time, CPU and the peak
RSS of every process (the driver and each worker), and a check that the numbers are equal.

The JSONL corpus (make_corpus.py) is written again as Parquet in row groups of ``--group-rows``
(10,000: what Spark and pyarrow's own writers make of mined rows at a few MB a group), and
``lenprof scan FILE -q --format json`` runs on each, in turn (JSONL, Parquet, JSONL, ...), each a
fresh process. ``--tree`` runs the scans of another lenprof checkout too (its root is the scan's
current folder and PYTHONPATH), for the code before and after a change in the same run.

Peak RSS: each process's own high-water mark (VmHWM in /proc), read every 20 ms for the scan's
whole process tree, and the kernel's figure for the largest single process it started
(getrusage of a wrapper process), which no sampling can miss.

    python benchmarks/make_corpus.py --rows 240000 --format jsonl --out-dir /tmp/corp
    python benchmarks/parquet.py /tmp/corp/mined-240000x9-r4.jsonl --tree /tmp/base --runs 3
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent

# Runs the scan, samples its process tree, and prints wall s, the kernel's peak, the peak of
# each process ({pid: [MiB, CPU s]}, the scan's own first) and then the scan's stdout.
WRAPPER = r"""
import json, os, resource, subprocess, sys, threading, time
tick = os.sysconf("SC_CLK_TCK")
def tree(pid):
    found = [pid]
    for p in found:
        for task in os.listdir(f"/proc/{p}/task") if os.path.exists(f"/proc/{p}/task") else ():
            try:
                found += [int(c) for c in open(f"/proc/{p}/task/{task}/children").read().split()]
            except OSError:
                pass
    return found
t = time.perf_counter()
proc = subprocess.Popen(sys.argv[1:], stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
out = []
reader = threading.Thread(target=lambda: out.append(proc.stdout.read()))  # a full pipe would stall it
reader.start()
seen = {}
while proc.poll() is None:
    for pid in tree(proc.pid):
        try:
            hwm = int(open(f"/proc/{pid}/status").read().split("VmHWM:")[1].split()[0]) / 1024
            stat = open(f"/proc/{pid}/stat").read().rsplit(")", 1)[1].split()
        except (OSError, IndexError):
            continue
        cpu = (int(stat[11]) + int(stat[12])) / tick
        seen[pid] = [max(hwm, seen.get(pid, [0])[0]), cpu]
    time.sleep(0.02)
reader.join()
print(time.perf_counter() - t, resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024, proc.wait(), json.dumps(seen))
print(out[0], end="")
"""


def to_parquet(jsonl: Path, group_rows: int, out_dir: Path) -> Path:
    import pyarrow.json as pj
    import pyarrow.parquet as pq

    path = out_dir / f"{jsonl.stem}-g{group_rows}.parquet"
    if not path.exists() or path.stat().st_mtime < jsonl.stat().st_mtime:
        pq.write_table(pj.read_json(jsonl), path, row_group_size=group_rows)
    return path


def run(tree: Path, path: Path, workers: int | None) -> dict:
    command = [sys.executable, "-m", "lenprof", "scan", str(path), "-q", "--format", "json"]
    command += ["--workers", str(workers)] if workers else []
    env = {**os.environ, "PYTHONPATH": str(tree), "HF_HUB_OFFLINE": "1", "OMP_NUM_THREADS": "1"}
    done = subprocess.run([sys.executable, "-c", WRAPPER, *command], cwd=tree, env=env, capture_output=True, text=True)  # fmt: skip
    head, _, body = done.stdout.partition("\n")
    seconds, peak, code, seen = head.split(" ", 3)
    if code != "0":
        raise SystemExit(f"{tree}: lenprof scan {path.name} failed with exit code {code}")
    procs = list(json.loads(seen).values())  # the scan's own process first
    return {
        "s": float(seconds),
        "cpu": sum(cpu for _, cpu in procs),
        "peak": float(peak),
        "driver": procs[0][0],
        "workers": max((mib for mib, _ in procs[1:]), default=0.0),
        "numbers": numbers(json.loads(body.replace(json.dumps(str(path))[1:-1], "INPUT"))),
    }


def numbers(profile: dict) -> dict:
    """What a scan found: its profile less how the run went and the input's format."""
    profile.pop("run")
    for item in profile["inputs"]:
        item.pop("format")
    return profile


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("jsonl", type=Path, help="a make_corpus.py corpus (200k rows or more)")
    ap.add_argument("--group-rows", type=int, default=10_000, help="rows in each Parquet row group")
    ap.add_argument("--runs", type=int, default=1, help="runs of each scan, taken in turn")
    ap.add_argument("--workers", type=int, help="--workers of each scan (default: lenprof's)")
    ap.add_argument("--tree", type=Path, action="append", default=[], help="another lenprof checkout")
    ap.add_argument("--out-dir", type=Path, help="where the Parquet file goes (default: beside the JSONL)")
    args = ap.parse_args()
    parquet = to_parquet(args.jsonl, args.group_rows, args.out_dir or args.jsonl.parent)
    import pyarrow.parquet as pq

    meta = pq.ParquetFile(parquet).metadata
    print(f"machine: {platform.machine()}, {len(os.sched_getaffinity(0))} cores, {platform.platform()}, Python {platform.python_version()}")  # fmt: skip
    print(
        f"corpus: {args.jsonl.name}, {meta.num_rows:,} rows, {args.jsonl.stat().st_size / 1e6:.0f} MB as JSONL; "
        f"{parquet.stat().st_size / 1e6:.0f} MB as Parquet in {meta.num_row_groups} row groups of up to "
        f"{max(meta.row_group(g).num_rows for g in range(meta.num_row_groups)):,} rows"
    )
    trees = [*(t.resolve() for t in args.tree), HERE.parent]
    cases = [
        (tree, kind, path) for tree in trees for kind, path in (("JSONL", args.jsonl), ("Parquet", parquet))
    ]
    results: dict[tuple, list[dict]] = {(tree, kind): [] for tree, kind, _ in cases}
    for _ in range(args.runs):
        for tree, kind, path in cases:
            results[tree, kind].append(run(tree, path.resolve(), args.workers))
    print(
        f"\n{'checkout':<28} {'input':<8} {'wall s':>16} {'CPU s':>6} {'peak RSS':>9} {'driver':>7} {'workers':>8}"
    )
    found = None
    for (tree, kind), runs in results.items():
        s = [r["s"] for r in runs]
        med = statistics.median
        print(
            f"{str(tree)[-28:]:<28} {kind:<8} {med(s):>6.2f} ({min(s):.1f}-{max(s):.1f}) {med(r['cpu'] for r in runs):>6.1f} "
            f"{max(r['peak'] for r in runs):>5.0f} MiB {max(r['driver'] for r in runs):>7.0f} {max(r['workers'] for r in runs):>8.0f}"
        )
        for r in runs:
            found = found or r["numbers"]
            if r["numbers"] != found:
                raise SystemExit(f"{tree}: the {kind} scan's numbers differ from the first scan's")
    for tree in trees:
        j, p = (statistics.median(r["s"] for r in results[tree, k]) for k in ("JSONL", "Parquet"))
        peak = max(r["peak"] for r in results[tree, "Parquet"])
        print(f"{str(tree)[-28:]}: Parquet / JSONL {p / j:.2f}x wall; Parquet peak RSS {peak:.0f} MiB")
    print(
        "numbers: equal in every scan (the profile JSON less the run's timings and the input's name and format)"
    )


if __name__ == "__main__":
    main()
