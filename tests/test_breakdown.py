"""The views a user looks for first: the longest texts of each field, and a profile per input."""

from __future__ import annotations

import json

from click.testing import CliRunner
from conftest import EXAMPLES

from lenprof import scan
from lenprof.cli import main
from lenprof.stats.profile import Profile
from lenprof.stats.scan_stats import FIELDS


def test_each_input_alone_gives_the_numbers_of_its_row(tok, corpora, tmp_path):
    """A scan of several inputs reports each as a scan of that input alone would (no row of
    one repeats a row of another here, so duplicates stay within an input)."""
    paths = [
        str(EXAMPLES / "dirty.jsonl"),
        str(EXAMPLES / "msmarco.jsonl"),
        str(corpora / "embedder" / "retrieval" / "nq.jsonl"),
    ]
    both = scan(paths, tokenizer=tok, shard_bytes=2000)
    assert [b.path for b in both.per_input] == paths
    for b, path in zip(both.per_input, paths, strict=True):
        alone = scan(path, tokenizer=tok)
        assert (b.read, b.kept, b.dropped) == (alone.samples.read, alone.samples.kept, alone.samples.dropped)
        assert {f: b.histograms[f] for f in FIELDS} == alone.histograms
        assert b.recommendation == alone.recommendation
    saved = both.to_dict()
    again = Profile.from_dict(json.loads(json.dumps(saved)))
    assert again.to_dict() == saved
    wider = again.recommend(coverage=99)
    for b, path in zip(wider.per_input, paths, strict=True):
        assert b.recommendation == scan(path, tokenizer=tok).recommend(coverage=99).recommendation


def test_one_input_has_no_breakdown(tok):
    assert scan(str(EXAMPLES / "msmarco.jsonl"), tokenizer=tok).per_input == []


def test_longest_texts_are_the_longest_distinct_texts_in_corpus_order(tok, oracle, tmp_path):
    rows = [
        {"query": "short one", "pos": ["alpha beta gamma delta"], "neg": ["x", "alpha beta gamma"]},
        {
            "query": "a much longer query than the others here",
            "pos": ["tiny"],
            "neg": ["one two three four five six"],
        },
        {"query": "short two", "pos": ["one two three four five six"], "neg": ["seven"]},  # repeats a neg
        {"query": "q", "pos": ["b"], "neg": ["c"]},
        {"query": "short one", "pos": ["alpha beta gamma delta"], "neg": ["z"]},  # a duplicate row: dropped
        {"query": "r", "pos": ["e"], "neg": ["f", "g", "h", "i"]},
    ]
    path = tmp_path / "c.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    for shard_bytes in (1, 1 << 20):
        p = scan(str(path), tokenizer=tok, shard_bytes=shard_bytes, workers=1)
        for f in FIELDS:
            texts = []  # (tokens, line, order within the line, item, text): the oracle's listing
            for line, r in enumerate(rows[:4] + rows[5:], start=1):
                line += line >= 5  # the duplicate row at line 5 is not counted
                items = [(None, r["query"])] if f == "query" else []
                for role in ("pos", "neg"):
                    if f in (role, "passage"):
                        items += [(i, t) for i, t in enumerate(r[role])]
                texts += [(oracle([t])[0], line, k, i, t) for k, (i, t) in enumerate(items)]
            texts.sort(key=lambda x: (-x[0], x[1], x[2]))
            expected, seen = [], set()
            for n, line, _, i, t in texts:
                if t not in seen:
                    seen.add(t)
                    expected.append(
                        {
                            "tokens": n,
                            "source": str(path),
                            "line": line,
                            "item": i,
                            "chars": len(t),
                            "head": t,
                        }
                    )
            assert [t.to_dict() for t in p.longest[f]] == expected[:5], (f, shard_bytes)


def test_the_report_lists_longest_texts_and_inputs(tmp_path):
    out = tmp_path / "r.html"
    result = CliRunner().invoke(
        main, ["scan", str(EXAMPLES), "--report", str(out), "-q"], catch_exceptions=False
    )
    assert result.exit_code == 0
    html = out.read_text(encoding="utf-8").replace(str(EXAMPLES), "examples")
    assert html.count("<table class=longest") == 4 and "<h2>Per input</h2>" in html
    assert (
        '<tr data-tokens="51"><td><code>examples/msmarco.jsonl:2</code></td><td>51</td><td>148</td>'
        "<td class=head>_________ justice is designed to repair the harm to victim, the community and th…</td></tr>"
    ) in html
    assert "<tr><td><code>examples/msmarco.jsonl</code></td><td>10</td><td>10</td>" in html
