"""Two tokenizers in one pass against one scan: what ``--tokenizer A --tokenizer B`` costs.

A user choosing between two base models would otherwise run two scans. Contenders, each a whole
``lenprof scan`` in a fresh process, run in turn ``--runs`` times:

- one scan with tokenizer A (the packaged all-MiniLM-L6-v2: BERT uncased WordPiece);
- one scan with tokenizer B, a different vocabulary: a cased WordPiece of 30,000 tokens trained
  here on the corpus's own passages (the BERT pipeline, so the piece caches apply to it too);
- one pass with both (``--tokenizer A --tokenizer B``).

With ``--bpe``, also a byte-level BPE (counted through GPT-2's pre-tokenizer pieces where the
byte-level rule holds), alone and beside A. The numbers of the one-pass profiles are checked equal to the
separate scans'.

    python benchmarks/compare.py /tmp/corp/mined-125000x9-r4.jsonl --runs 3
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

from measure import measure

from lenprof.count.tokenizer import packaged_model_path


def _texts(corpus: Path, limit: int) -> list[str]:
    out = []
    with corpus.open(encoding="utf-8") as fh:
        for line in fh:
            row = json.loads(line)
            out += [row["query"], *row["pos"], *row["neg"][:2]]
            if len(out) >= limit:
                break
    return out


def wordpiece(corpus: Path, folder: Path) -> str:
    from tokenizers import Tokenizer, decoders, models, normalizers, pre_tokenizers, processors, trainers

    tk = Tokenizer(models.WordPiece(unk_token="[UNK]"))
    tk.normalizer = normalizers.BertNormalizer(lowercase=False, strip_accents=False)
    tk.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
    tk.decoder = decoders.WordPiece()
    specials = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
    tk.train_from_iterator(
        _texts(corpus, 60_000),
        trainers.WordPieceTrainer(vocab_size=30_000, special_tokens=specials, show_progress=False),
    )
    cls, sep = tk.token_to_id("[CLS]"), tk.token_to_id("[SEP]")
    tk.post_processor = processors.TemplateProcessing(
        single="[CLS] $A [SEP]", special_tokens=[("[CLS]", cls), ("[SEP]", sep)]
    )
    path = folder / "wordpiece-cased" / "tokenizer.json"
    path.parent.mkdir()
    tk.save(str(path))
    return str(path)


def bpe(corpus: Path, folder: Path) -> str:
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors, trainers

    tk = Tokenizer(models.BPE())
    tk.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tk.decoder = decoders.ByteLevel()
    tk.train_from_iterator(
        _texts(corpus, 60_000),
        trainers.BpeTrainer(vocab_size=30_000, special_tokens=["<s>", "</s>"], show_progress=False),
    )
    tk.post_processor = processors.TemplateProcessing(
        single="<s> $A </s>", special_tokens=[("<s>", 0), ("</s>", 1)]
    )
    path = folder / "bpe" / "tokenizer.json"
    path.parent.mkdir()
    tk.save(str(path))
    return str(path)


def scan_cmd(corpus: Path, tokenizers: list[str], out: Path) -> list[str]:
    flags = [x for t in tokenizers for x in ("--tokenizer", t)]
    return [sys.executable, "-m", "lenprof", "scan", str(corpus), *flags, "--out", str(out), "-q"]


def results(profile: dict) -> dict:
    return {k: v for k, v in profile.items() if k not in ("run", "outputs")}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("corpus", type=Path)
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--bpe", action="store_true", help="also a byte-level BPE (the second piece rule)")
    args = ap.parse_args()
    print(
        f"machine: {platform.machine()}, {os.cpu_count()} cores, {platform.platform()}, Python {platform.python_version()}"
    )
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        a = str(packaged_model_path())
        b = wordpiece(args.corpus, folder)
        pairs = [("A: all-MiniLM-L6-v2", [a]), ("B: cased WordPiece 30k", [b]), ("A + B, one pass", [a, b])]
        if args.bpe:
            c = bpe(args.corpus, folder)
            pairs += [("C: byte-level BPE 30k", [c]), ("A + C, one pass", [a, c])]
        times: dict[str, list[float]] = {name: [] for name, _ in pairs}
        rss: dict[str, float] = {}
        for run in range(args.runs):
            for k, (name, toks) in enumerate(pairs):
                seconds, peak, _ = measure(scan_cmd(args.corpus, toks, folder / f"{run}-{k}.json"))
                times[name].append(seconds)
                rss[name] = max(rss.get(name, 0.0), peak)
        profiles = {
            name: json.loads((folder / f"0-{k}.json").read_text()) for k, (name, _) in enumerate(pairs)
        }
        single = {toks[0]: name for name, toks in pairs if len(toks) == 1}
        for name, toks in pairs:
            if len(toks) > 1:
                both = [results(p) for p in profiles[name]["profiles"]]
                assert both == [results(profiles[single[t]]) for t in toks], f"{name}: numbers differ"
        p = profiles[pairs[0][0]]
        print(
            f"\ncorpus: {args.corpus.name}, {args.corpus.stat().st_size / 1e6:.0f} MB, "
            f"{sum(p['fields'][f]['count'] for f in ('query', 'pos', 'neg')):,} texts, "
            f"{p['run']['texts_tokenized']:,} distinct; one-pass numbers equal the separate scans'"
        )
        one = statistics.median(times[pairs[0][0]])
        print(f"{'contender':<28}{'median s':>10}{'min-max':>14}{'peak RSS':>11}{'vs one scan (A)':>17}")
        for name, _ in pairs:
            t = times[name]
            print(
                f"{name:<28}{statistics.median(t):>10.1f}{min(t):>7.1f}-{max(t):<6.1f}{rss[name]:>7.0f} MiB"
                f"{statistics.median(t) / one:>16.2f}x"
            )


if __name__ == "__main__":
    main()
