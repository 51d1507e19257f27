"""Build realistic mined-negatives corpora of any size from real text found on this machine.

Real text, no network: English paragraphs from Debian's /usr/share/doc (READMEs, changelogs,
copyright notes), Chinese sentences from the zh_CN message catalogs in /usr/share/locale (or
another locale's, ``--locale ja`` for Japanese), and FlagEmbedding's example data
(../shared/corpora). Each row is a short query, one positive and ``--neg`` mined negatives.
Passages are drawn from a pool sized so that each appears ``--repeat`` times on average, with a
popularity skew (some passages are hard negatives for many queries), the way mined negatives
repeat. About ``--chinese`` of the rows are Chinese (or the ``--locale``'s language).

    python benchmarks/make_corpus.py --rows 125000 --repeat 4 --out-dir /tmp/corpus
    # -> /tmp/corpus/mined-125000x8-r4.jsonl and .parquet, with a line of stats on stderr
    python benchmarks/make_corpus.py --rows 60000 --chinese 1 --locale ja --format jsonl --out-dir /tmp/ja
"""

from __future__ import annotations

import argparse
import gettext
import glob
import gzip
import json
import os
import random
import re
import sys
from pathlib import Path

import numpy as np

SHARED = Path(__file__).resolve().parents[2] / "shared" / "corpora" / "flagembedding-examples"


def english_paragraphs(min_chars: int = 80, max_chars: int = 3000) -> list[str]:
    paras: set[str] = set()
    for path in glob.glob("/usr/share/doc/**/*", recursive=True):
        if os.path.isdir(path) or os.path.islink(path):
            continue
        try:
            data = gzip.open(path).read() if path.endswith(".gz") else open(path, "rb").read()
            text = data.decode("utf-8")
        except (OSError, UnicodeDecodeError, EOFError):
            continue
        for p in re.split(r"\n\s*\n", text):
            p = " ".join(p.split())
            if min_chars <= len(p) <= max_chars:
                paras.add(p)
    return sorted(paras)


def chinese_sentences(min_chars: int = 8, locale: str = "zh_CN") -> list[tuple[str, str]]:
    """(English source, Chinese translation) pairs from gettext catalogs (another language's
    translations with ``locale``: "ja" for Japanese)."""
    pairs: set[tuple[str, str]] = set()
    for path in glob.glob(f"/usr/share/locale/{locale}/LC_MESSAGES/*.mo"):
        try:
            with open(path, "rb") as fh:
                catalog = gettext.GNUTranslations(fh)._catalog  # type: ignore[attr-defined]
        except (OSError, UnicodeDecodeError, ValueError):
            continue
        for en, zh in catalog.items():
            if isinstance(en, str) and isinstance(zh, str) and len(zh) >= min_chars and en:
                pairs.add((" ".join(en.split()), " ".join(zh.split())))
    return sorted(pairs)


def flagembedding_texts() -> tuple[list[str], list[str]]:
    queries, passages = set(), set()
    for path in sorted(SHARED.rglob("*.jsonl")):
        for line in path.read_text(encoding="utf-8").splitlines():
            if line.strip():
                row = json.loads(line)
                queries.add(row["query"])
                passages.update(row["pos"] + row.get("neg", []))
    return sorted(queries), sorted(passages)


def make_rows(rows: int, neg: int, repeat: float, chinese: float, seed: int = 0, locale: str = "zh_CN"):
    rng = random.Random(seed)
    np_rng = np.random.default_rng(seed)
    en = english_paragraphs()
    zh_pairs = chinese_sentences(locale=locale)
    fe_queries, fe_passages = flagembedding_texts()
    zh = sorted({z for _, z in zh_pairs})
    en_pool = sorted(set(en) | set(fe_passages))
    # Queries: the first words of a paragraph, an English message, or a FlagEmbedding query.
    en_queries = fe_queries + [e for e, _ in zh_pairs if 15 <= len(e) <= 200]

    def pool_of(texts: list[str], n_rows: int) -> tuple[list[str], np.ndarray]:
        size = max(neg + 1, min(len(texts), int(n_rows * (neg + 1) / repeat)))
        pool = rng.sample(texts, size)
        weights = 1.0 / np.arange(1, size + 1) ** 0.5  # popular passages are mined more often
        return pool, weights / weights.sum()

    n_zh = int(rows * chinese)
    pools = {"en": pool_of(en_pool, rows - n_zh), "zh": pool_of(zh, n_zh)}
    # All draws at once (choice with p= costs O(pool) per call); a row that drew one passage
    # twice is redrawn without the skew.
    draws = {lang: np_rng.choice(len(pool), size=(rows, neg + 1), p=p) for lang, (pool, p) in pools.items()}
    for i in range(rows):
        lang = "zh" if i % max(1, round(1 / chinese)) == 0 and chinese > 0 and n_zh else "en"
        pool, _ = pools[lang]
        picked = draws[lang][i]
        if len(set(picked.tolist())) < len(picked):
            picked = np_rng.choice(len(pool), size=neg + 1, replace=False)
        if lang == "zh":
            query = pool[picked[0]][: rng.randint(6, 20)]
        else:
            query = (
                rng.choice(en_queries)
                if rng.random() < 0.5
                else " ".join(pool[picked[0]].split()[: rng.randint(4, 14)])
            )
        yield {
            "query": f"{query} #{i}",
            "pos": [pool[picked[0]]],
            "neg": [pool[j] for j in picked[1:]],
        }


def write(
    out_dir: Path,
    rows: int,
    neg: int,
    repeat: float,
    chinese: float,
    formats: list[str],
    locale: str = "zh_CN",
) -> list[Path]:
    out_dir.mkdir(parents=True, exist_ok=True)
    stem = out_dir / f"mined-{rows}x{neg + 2}-r{repeat:g}"
    jsonl = stem.with_suffix(".jsonl")
    texts: dict[str, int] = {}
    with open(jsonl, "w", encoding="utf-8") as fh:
        for row in make_rows(rows, neg, repeat, chinese, locale=locale):
            fh.write(json.dumps(row, ensure_ascii=False) + "\n")
            for t in (row["query"], *row["pos"], *row["neg"]):
                texts[t] = texts.get(t, 0) + 1
    n_texts = sum(texts.values())
    print(
        f"{jsonl}: {rows} rows, {n_texts} texts, {len(texts)} distinct "
        f"({n_texts / len(texts):.2f} appearances per distinct text), {jsonl.stat().st_size / 1e6:.0f} MB",
        file=sys.stderr,
    )
    paths = [jsonl]
    if "parquet" in formats:
        import pyarrow.json as pj
        import pyarrow.parquet as pq

        parquet = stem.with_suffix(".parquet")
        pq.write_table(pj.read_json(jsonl), parquet)
        paths.append(parquet)
    if "jsonl" not in formats:
        jsonl.unlink()
        paths.remove(jsonl)
    return paths


if __name__ == "__main__":
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rows", type=int, default=125_000)
    ap.add_argument("--neg", type=int, default=7)
    ap.add_argument("--repeat", type=float, default=4.0, help="average appearances of each passage")
    ap.add_argument("--chinese", type=float, default=0.1, help="share of Chinese rows")
    ap.add_argument("--locale", default="zh_CN", help="the catalogs those rows come from (ja: Japanese)")
    ap.add_argument("--format", nargs="+", default=["jsonl", "parquet"], choices=["jsonl", "parquet"])
    ap.add_argument("--out-dir", type=Path, required=True)
    args = ap.parse_args()
    write(args.out_dir, args.rows, args.neg, args.repeat, args.chinese, args.format, args.locale)
