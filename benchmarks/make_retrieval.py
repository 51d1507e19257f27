"""Build a real retrieval dataset (a held-out split comes from train_bench.py) from docstrings.

Real text that no model here was tuned on, found on any machine with Python packages and no
network: the docstrings of the installed libraries (read with ``ast``, nothing is imported). A
query is a function's or class's one-line summary ("Return the number of non-zero elements."),
its positive the rest of that docstring (what it does, its parameters, its caveats); the
negatives are the bodies of other docstrings of the same package (hard: same vocabulary, same
style), so a model must read the text to rank the right one first. Docstrings whose summary or
body repeats (overloads, wrappers, copies across packages) are kept once.

    python benchmarks/make_retrieval.py --rows 4000 --out /tmp/docstrings.jsonl
    python benchmarks/train_bench.py /tmp/docstrings.jsonl --eval-rows 500 ...
"""

from __future__ import annotations

import argparse
import ast
import json
import random
import sys
import sysconfig
from collections import defaultdict
from pathlib import Path


def docstrings(root: Path, packages: list[str] | None = None):
    """(package, summary, body) of every documented function and class under ``root`` (only in
    ``packages``, its top-level folders, when given)."""
    files = (
        sorted(root.rglob("*.py"))
        if packages is None
        else sorted(f for p in packages for f in (root / p).rglob("*.py"))
    )
    for path in files:
        if any(part in ("tests", "test", "testing", "_vendor") for part in path.parts):
            continue
        try:
            tree = ast.parse(path.read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError, SyntaxError, ValueError):
            continue
        package = path.relative_to(root).parts[0]
        for node in ast.walk(tree):
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
                doc = ast.get_docstring(node)
                if doc:
                    summary, _, body = doc.strip().partition("\n\n")
                    yield package, " ".join(summary.split()), " ".join(body.split())


def rows(
    root: Path, n: int, neg: int, max_body: int = 700, seed: int = 0, packages: list[str] | None = None
) -> list[dict]:
    seen_summary, seen_body = set(), set()
    usable = []
    for package, summary, body in docstrings(root, packages):
        if not 15 <= len(summary) <= 200 or not 80 <= len(body) <= max_body:
            continue
        if summary.lower() in seen_summary or body in seen_body:
            continue
        seen_summary.add(summary.lower())
        seen_body.add(body)
        usable.append((package, summary, body))
    rng = random.Random(seed)
    rng.shuffle(usable)
    by_package: dict[str, list[str]] = defaultdict(list)
    for package, _, body in usable:
        by_package[package].append(body)
    out = []
    for package, summary, body in usable:
        pool = by_package[package]
        if len(pool) <= neg:
            continue
        negs = [t for t in rng.sample(pool, neg + 1) if t != body][:neg]
        out.append({"query": summary, "pos": [body], "neg": negs})
        if len(out) == n:
            break
    return out


if __name__ == "__main__":
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rows", type=int, default=4000)
    ap.add_argument("--neg", type=int, default=7)
    ap.add_argument(
        "--max-body",
        type=int,
        default=700,
        help="longest positive in characters (~180 tokens: the trainer's cost)",
    )
    ap.add_argument(
        "--root", type=Path, default=Path(sysconfig.get_paths()["purelib"]), help="default: site-packages"
    )
    ap.add_argument("--packages", help="comma-separated top-level folders of --root to read (default: all)")
    ap.add_argument("--out", type=Path, required=True)
    args = ap.parse_args()
    data = rows(
        args.root,
        args.rows,
        args.neg,
        args.max_body,
        packages=args.packages.split(",") if args.packages else None,
    )
    with open(args.out, "w", encoding="utf-8") as fh:
        for row in data:
            fh.write(json.dumps(row, ensure_ascii=False) + "\n")
    print(f"{args.out}: {len(data)} rows from the docstrings under {args.root}", file=sys.stderr)
