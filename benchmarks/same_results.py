"""Two checkouts of lenprof give the same results: every output of a set of scans, compared
file by file. What a refactor must show before it lands.

Each case runs `python -m lenprof scan ...` from both checkouts (the current folder of each is its
root, so each imports its own lenprof), with the profile, rejects, cleaned rows (a folder, or
Parquet) and the HTML report written, and compares them: byte for byte, except what differs from
run to run by design (wall times, the self-check's sample drawn by the run's key, and the output
paths themselves) and the figures' drawing: matplotlib wrote a date into each until issue 22, and
a checkout of either side must compare; what each figure shows is compared all the same, in the
data-figure JSON beside it.

    git worktree add /tmp/base <commit>
    python benchmarks/make_corpus.py --rows 20000 --repeat 4 --format jsonl parquet --out-dir /tmp/c
    python benchmarks/same_results.py /tmp/base . --corpus /tmp/c/mined-20000x9-r4 --corpora ../shared/corpora
"""

from __future__ import annotations

import argparse
import filecmp
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

VOLATILE = re.compile(r'"(seconds|tokenize_s|self_checked)": [0-9.]+')
FIGURE = re.compile(r"data:image/svg\+xml;base64,[A-Za-z0-9+/=]+")


def cases(corpus: str, corpora: str, examples: str) -> dict[str, list[str]]:
    fe = f"{corpora}/flagembedding-examples"
    return {
        "corpora, 1 worker": [fe, "--workers", "1"],
        "corpora, 2 workers, tiny shards": [fe, "--workers", "2", "--shard-size", "0.01"],
        "examples (every kind of bad row)": [examples, "--workers", "2"],
        "mined JSONL, 1 MiB shards": [f"{corpus}.jsonl", "--workers", "2", "--shard-size", "1"],
        "mined Parquet": [f"{corpus}.parquet", "--workers", "2"],
        "mined, --exact-only": [f"{corpus}.jsonl", "--exact-only", "--workers", "2"],
        "instruction and length buckets": [
            fe,
            "--query-instruction",
            "Represent: ",
            "--split-by-length",
            "0,32,64,128",
            "--split-dir",
            "{out}/buckets/",
        ],  # fmt: skip
        "Ray": [fe, "--engine", "ray", "--workers", "2"],
        "--against": [f"{fe}/embedder/retrieval", "--against", f"{fe}/legacy/toy_finetune_data.jsonl"],
    }


def scan(tree: Path, args: list[str], out: Path, parquet: bool) -> subprocess.CompletedProcess:
    out.mkdir(parents=True)
    clean = f"{out}/clean.parquet" if parquet else f"{out}/clean/"  # a folder: one cleaned file per input
    command = [sys.executable, "-m", "lenprof", "scan", *[a.format(out=out) for a in args], "--format", "json", "-q",
               "--out", str(out / "profile.json"), "--rejects", str(out / "rejects.jsonl"),
               "--clean-out", clean, "--report", str(out / "report.html")]  # fmt: skip
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "OMP_NUM_THREADS": "1"}
    done = subprocess.run(command, cwd=tree, capture_output=True, text=True, env=env)
    (out / "stdout.json").write_text(done.stdout)
    return done


def normalised(path: Path, root: Path) -> str | dict:
    text = path.read_text(encoding="utf-8", errors="replace").replace(str(root), "OUT")
    text = FIGURE.sub("FIGURE", VOLATILE.sub(r'"\1": 0', text))
    return json.loads(text) if path.suffix == ".json" else text


def differences(a: Path, b: Path) -> list[str]:
    found = []
    for path in sorted(p for p in a.rglob("*") if p.is_file()):
        other = b / path.relative_to(a)
        if not other.exists():
            found.append(f"{path.relative_to(a)} only in the first")
        elif path.suffix in (".json", ".html"):
            if normalised(path, a) != normalised(other, b):
                found.append(f"{path.relative_to(a)} differs")
        elif not filecmp.cmp(path, other, shallow=False):
            found.append(f"{path.relative_to(a)} differs")
    found += [f"{p.relative_to(b)} only in the second" for p in b.rglob("*") if p.is_file() and not (a / p.relative_to(b)).exists()]  # fmt: skip
    return found


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("first", type=Path, help="a lenprof checkout (the baseline)")
    ap.add_argument("second", type=Path, help="another one (the change)")
    ap.add_argument("--corpus", required=True, help="a make_corpus.py corpus, without .jsonl/.parquet")
    ap.add_argument(
        "--corpora", default="../shared/corpora", help="the folder holding flagembedding-examples/"
    )
    ap.add_argument("--only", nargs="*", help="run only the cases whose names contain one of these")
    args = ap.parse_args()
    first, second = args.first.resolve(), args.second.resolve()
    examples = str(second / "examples")
    failed = 0
    with tempfile.TemporaryDirectory() as tmp:
        for name, argv in cases(
            os.path.abspath(args.corpus), os.path.abspath(args.corpora), examples
        ).items():
            if args.only and not any(o in name for o in args.only):
                continue
            parquet = "Parquet" in name
            runs = [scan(tree, argv, Path(tmp) / str(k), parquet) for k, tree in enumerate((first, second))]
            codes = [r.returncode for r in runs]
            diff = differences(Path(tmp) / "0", Path(tmp) / "1") if codes == [0, 0] else [f"exit codes {codes}: {runs[1].stderr[-300:]}"]  # fmt: skip
            files = sum(1 for p in (Path(tmp) / "0").rglob("*") if p.is_file())
            print(f"{name}: {files} files, " + ("identical" if not diff else "; ".join(diff)), flush=True)
            failed += bool(diff)
            shutil.rmtree(Path(tmp) / "0"), shutil.rmtree(Path(tmp) / "1")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
