"""--split-by-length: FlagEmbedding's bucket files, checked against AutoTokenizer lengths."""

from __future__ import annotations

import json

import pytest
from click.testing import CliRunner
from conftest import EXAMPLES

from lenprof import InputError, scan
from lenprof.cli import main
from lenprof.io.buckets import LengthBuckets


def test_rows_land_in_the_bucket_of_their_longest_text(tok, oracle, corpora, tmp_path):
    folder = corpora / "embedder"
    spec = LengthBuckets.parse("0,64,128", str(tmp_path / "split"), token_budget=32768, group_size=8)
    profile = scan(str(folder), tokenizer=tok, split=spec)
    expected: dict[str, list[dict]] = {}
    for path in sorted(folder.rglob("*.jsonl")):
        for line in path.read_text(encoding="utf-8").splitlines():
            row = json.loads(line)
            first = [
                i for i, n in enumerate(row["neg"]) if row["neg"].index(n) == i
            ]  # the duplicate_neg repair
            row_neg = [row["neg"][i] for i in first]
            if "neg_scores" in row:
                row["neg_scores"] = [row["neg_scores"][i] for i in first]
            # as FlagEmbedding trains them: the query after its prompt; a symmetric row's passages too
            prompt = row.get("prompt") or ""
            query = prompt + row["query"]
            symmetric = row.get("type") in ("symmetric_sts", "symmetric_clustering")
            passages = [prompt + t if symmetric else t for t in (*row["pos"], *row_neg)]
            longest = max(oracle([query, *passages]))
            bucket = "len-0-64" if longest < 64 else "len-64-128" if longest < 128 else "len-128-inf"
            size = {
                "len-0-64": 32768 // (9 * 64),
                "len-64-128": 32768 // (9 * 128),
                "len-128-inf": 32768 // (9 * 512),
            }[bucket]
            expected.setdefault(f"{path.stem}_{bucket}.jsonl", []).append(
                {**row, "neg": row_neg, "batch_size": size}
            )
    written = {
        p.name: [json.loads(x) for x in p.read_text().splitlines()] for p in (tmp_path / "split").iterdir()
    }
    assert written == expected
    assert {name: e["rows"] for name, e in profile.buckets.items()} == {
        name: len(rows) for name, rows in expected.items()
    }
    assert profile.to_dict()["outputs"]["split"] == str(tmp_path / "split")


def test_split_from_the_command_line_names_each_file(tmp_path):
    out = tmp_path / "split"
    result = CliRunner().invoke(
        main,
        ["scan", str(EXAMPLES / "msmarco.jsonl"), "--split-by-length", "0,100", "--split-dir", str(out)],
        catch_exceptions=False,
    )
    assert result.exit_code == 0
    assert (
        f"lenprof: 10 rows (longest 175 tokens) written to {out / 'msmarco_len-100-inf.jsonl'}\n"
        in result.stderr
    )
    rows = [json.loads(x) for x in (out / "msmarco_len-100-inf.jsonl").read_text().splitlines()]
    assert len(rows) == 10 and "batch_size" not in rows[0]


@pytest.mark.parametrize(
    "args, message",
    [
        (["--split-by-length", "0,100"], "--split-by-length EDGES and --split-dir DIR go together"),
        (["--split-by-length", "a,b", "--split-dir", "x"], "--split-by-length 'a,b': expected token lengths"),
    ],
)
def test_split_usage_errors(args, message):
    result = CliRunner().invoke(main, ["scan", str(EXAMPLES / "msmarco.jsonl"), *args])
    assert result.exit_code == 2 and message in result.stderr


def test_split_folder_must_not_hold_inputs(tok):
    with pytest.raises(InputError, match="the split folder holds inputs"):
        scan(
            str(EXAMPLES / "msmarco.jsonl"), tokenizer=tok, split=LengthBuckets.parse("0,100", str(EXAMPLES))
        )
