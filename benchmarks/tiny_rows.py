"""Peak memory of every process as a corpus of tiny rows grows: the out-of-core decisions
(``lenprof/engine/external.py``, issue 23) against the in-memory ones, same rows, same run.

Tiny rows are the worst case for the corpus-wide decisions: two distinct texts a row, nothing
repeats, so in memory the tables grow by about 54 bytes a row (12 for the row's key, 21 for
each text) while the rows themselves are 80 bytes. Each row is built from single-token words of
the tokenizer's vocabulary, so every text's token count is known without a tokenizer (the
oracle): the query of row ``i`` has ``4 + i % 5`` words and the positive ``4 + i % 3``, and the
profile's counts, unique texts and histograms are checked against those exact numbers.

    python benchmarks/tiny_rows.py --rows 4000000 32000000 --budget 256M --dir /tmp/tiny

Each scan is a fresh process; the peak RSS of the driver and of each worker is the kernel's
(``VmHWM``), read from /proc every 0.2 s while the scan runs (Linux). ``--in-memory`` also runs each corpus with the
default budget, which keeps the decisions in memory.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import numpy as np

os.environ.setdefault("HF_HUB_OFFLINE", "1")


def single_token_words(count: int = 1000) -> list[str]:
    """``count`` lower-case words that the default (BERT uncased) tokenizer keeps whole."""
    from lenprof.count.load import load_tokenizer

    backend = load_tokenizer(None).backend
    vocab = sorted(
        w for w in backend.get_vocab() if w.isascii() and w.isalpha() and w.islower() and len(w) >= 4
    )
    words = []
    for word in vocab:
        if backend.encode(word, add_special_tokens=False).tokens == [word]:
            words.append(word)
            if len(words) == count:
                return words
    raise SystemExit("the tokenizer has too few whole words")


def write_corpus(path: Path, rows: int, words: list[str]) -> None:
    """Row ``i``: query ``question`` + i's three base-1000 digits as words + ``i % 5`` more;
    positive ``answer`` + the digits shifted by 7 + ``i % 3`` more. Distinct texts, never equal."""
    w = np.array(words)
    with open(path, "w", encoding="utf-8") as f:
        for start in range(0, rows, 100_000):
            i = np.arange(start, min(rows, start + 100_000))
            d = [w[(i // 1000**k) % 1000] for k in range(3)]
            e = [w[((i // 1000**k) + 7) % 1000] for k in range(3)]
            lines = []
            for n, row in enumerate(i.tolist()):
                q = " ".join(["question", d[0][n], d[1][n], d[2][n], *words[: row % 5]])
                p = " ".join(["answer", e[0][n], e[1][n], e[2][n], *words[500 : 500 + row % 3]])
                lines.append(f'{{"query": "{q}", "pos": ["{p}"]}}\n')
            f.write("".join(lines))


def expected(rows: int) -> dict:
    """Each field's token counts (with [CLS] and [SEP]) and how many texts have each."""
    i = np.arange(rows)
    return {
        "query": Counter((6 + i % 5).tolist()),
        "pos": Counter((6 + i % 3).tolist()),
    }


def check(profile: dict, rows: int) -> str:
    want = expected(rows)
    assert profile["samples"]["kept"] == rows, profile["samples"]
    for field, counts in want.items():
        got = profile["fields"][field]
        assert got["count"] == rows and got["unique"] == rows, (field, got["count"], got["unique"])
        assert got["min"] == min(counts) and got["max"] == max(counts), (field, got["min"], got["max"])
        assert got["tokens"] == sum(k * v for k, v in counts.items()), field
    return "exact"


def peaks(cmd: list[str]) -> tuple[float, dict[str, float], str]:
    """Run ``cmd``: its wall time, the largest peak RSS (MiB) of its driver and of its workers,
    and its stdout."""
    start = time.perf_counter()
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    seen: dict[str, float] = {"driver": 0.0, "worker": 0.0}
    out: list[str] = []
    import threading

    reader = threading.Thread(target=lambda: out.append(proc.stdout.read()))  # type: ignore[union-attr]
    reader.start()
    while proc.poll() is None:
        for pid in [proc.pid, *_descendants(proc.pid)]:
            try:
                status = Path(f"/proc/{pid}/status").read_text()
            except OSError:
                continue
            hwm = next(
                (int(line.split()[1]) / 1024 for line in status.splitlines() if line.startswith("VmHWM")), 0
            )
            role = "driver" if pid == proc.pid else "worker"
            seen[role] = max(seen[role], hwm)
        time.sleep(0.2)
    reader.join()
    if proc.returncode:
        raise SystemExit(f"{' '.join(cmd[:3])} failed with {proc.returncode}")
    return time.perf_counter() - start, seen, out[0]


def _descendants(pid: int) -> list[int]:
    try:
        children = [int(c) for c in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()]
    except OSError:
        return []
    return children + [d for c in children for d in _descendants(c)]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rows", type=int, nargs="+", default=[4_000_000, 32_000_000])
    ap.add_argument("--budget", default="256M")
    ap.add_argument("--dir", type=Path, default=Path("/tmp/tiny"))
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--in-memory", action="store_true", help="also scan each corpus with the default budget")
    args = ap.parse_args()
    args.dir.mkdir(parents=True, exist_ok=True)
    words = single_token_words()
    lenprof = str(Path(sys.executable).parent / "lenprof")
    print(
        f"machine: {platform.machine()}, {len(os.sched_getaffinity(0))} cores, Python {platform.python_version()}"
    )
    print(
        f"{'rows':>11} {'MB':>6} {'budget':>7} {'wall s':>7} {'driver':>8} {'worker':>8} {'vs first':>8}  out of core  numbers"
    )
    first = None
    for rows in args.rows:
        corpus = args.dir / f"tiny-{rows}.jsonl"
        if not corpus.exists():
            write_corpus(corpus, rows, words)
        budgets = [args.budget, *(["2G"] if args.in_memory else [])]
        for budget in budgets:
            cmd = [lenprof, "scan", str(corpus), "-q", "--format", "json", "--min-neg", "0",
                   "--memory-budget", budget, "--workers", str(args.workers)]  # fmt: skip
            seconds, seen, out = peaks(cmd)
            rss = max(seen.values())
            profile = json.loads(out)
            first = first or rss
            ratio = f"{rss / first:.2f}x" if budget == args.budget else "-"
            mb = corpus.stat().st_size / 1e6
            ooc = "yes" if profile["run"].get("out_of_core") else "no"
            d, w = seen["driver"], seen["worker"]
            print(f"{rows:>11,} {mb:>6.0f} {budget:>7} {seconds:>7.1f} {d:>4.0f} MiB {w:>4.0f} MiB {ratio:>8}  {ooc:>11}  "
                  f"{check(profile, rows)}")  # fmt: skip


if __name__ == "__main__":
    main()
