"""--against: test queries and positives inside the training rows, found exactly and after
normalising whitespace and case, against a plain-Python oracle; --drop-leaks drops those rows."""

from __future__ import annotations

import json

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from click.testing import CliRunner

from lenprof import scan
from lenprof.cli import main
from lenprof.stats.runinfo import Against


def norm(text: str) -> str:
    return " ".join(text.split()).lower()


def oracle(train: list[dict], test: list[dict]) -> dict[int, str]:
    """Line of each training row -> the first leak it holds (the query first)."""
    queries = {norm(r["query"]) for r in test}
    positives = {norm(p) for r in test for p in r["pos"]}
    found = {}
    for line, r in enumerate(train, 1):
        if norm(r["query"]) in queries:
            found[line] = "eval_query_leak"
        elif any(norm(p) in positives for p in r["pos"]):
            found[line] = "eval_pos_leak"
    return found


@pytest.fixture
def split(corpus_files, tmp_path):
    """Real training rows, and a test file holding some of their queries and positives, a few
    changed in case and spacing, beside rows of its own."""
    rows = [
        json.loads(line) for path in corpus_files for line in path.read_text(encoding="utf-8").splitlines()
    ]
    train = list({r["query"].strip(): r for r in reversed(rows)}.values())[::-1]  # no duplicate rows
    test = []
    for i, r in enumerate(train[::9]):
        if i % 3 == 0:
            test.append({"query": r["query"], "pos": ["a passage of the test set only"]})
        elif i % 3 == 1:
            test.append({"query": f"  {r['query'].upper()}\t", "pos": ["another test passage"]})
        else:
            test.append({"query": f"a test query {i}", "pos": [" ".join(r["pos"][0].split()).title()]})
    test.append({"query": "a query no training row has", "pos": ["nor this passage"]})
    (tmp_path / "train.jsonl").write_text("".join(json.dumps(r) + "\n" for r in train))
    pq.write_table(pa.Table.from_pylist(test), tmp_path / "test.parquet")
    return tmp_path / "train.jsonl", tmp_path / "test.parquet", train, test


def test_leaks_are_found_as_the_oracle_finds_them(tok, split):
    train_path, test_path, train, test = split
    profile = scan(str(train_path), tokenizer=tok, against=[str(test_path)])
    want = oracle(train, test)
    assert len(want) > 10
    counts = {r: sum(1 for v in want.values() if v == r) for r in ("eval_query_leak", "eval_pos_leak")}
    assert profile.samples.kept == profile.samples.read == len(train)
    assert {r: profile.samples.warnings.get(r, 0) for r in counts} == counts
    assert [e.line for e in profile.examples["eval_query_leak"]] == [
        line for line, r in sorted(want.items()) if r == "eval_query_leak"
    ][:5]
    assert profile.run.against == Against((str(test_path),), len(test), drop_leaks=False)


def test_drop_leaks_drops_exactly_those_rows(tok, split, tmp_path):
    train_path, test_path, train, test = split
    clean, rejects = tmp_path / "clean.jsonl", tmp_path / "rejects.jsonl"
    profile = scan(str(train_path), tokenizer=tok, against=[str(test_path)], drop_leaks=True, clean_out=str(clean), rejects_out=str(rejects))  # fmt: skip
    want = oracle(train, test)
    dropped = [json.loads(line) for line in rejects.read_text().splitlines()]
    assert sorted(d["line"] for d in dropped if d["reason"] == "eval_leak") == sorted(want)
    assert profile.samples.dropped["eval_leak"] == len(want)
    kept_queries = {norm(json.loads(line)["query"]) for line in clean.read_text().splitlines()}
    assert not kept_queries & {norm(r["query"]) for r in test}


def test_the_cli_says_what_it_found(tmp_path):
    (tmp_path / "train.jsonl").write_text(
        json.dumps({"query": "What is RAG?", "pos": ["p"], "neg": ["n"]}) + "\n"
    )
    (tmp_path / "test.jsonl").write_text(json.dumps({"query": "what is  rag?", "pos": ["x"]}) + "\n")
    runner = CliRunner()
    result = runner.invoke(main, ["scan", str(tmp_path / "train.jsonl"), "--against", str(tmp_path / "test.jsonl"), "--format", "args"])  # fmt: skip
    assert result.exit_code == 0
    assert f"lenprof: 1 training rows hold test data of {tmp_path / 'test.jsonl'} (1 test rows): kept, with a warning (--drop-leaks drops them)\n" in result.stderr  # fmt: skip
    result = runner.invoke(main, ["scan", str(tmp_path / "train.jsonl"), "--drop-leaks"])
    assert (result.exit_code, result.stderr) == (2, "Error: --drop-leaks needs --against EVAL (the evaluation files to compare with)\n")  # fmt: skip
    result = runner.invoke(main, ["scan", str(tmp_path / "train.jsonl"), "--against", str(tmp_path / "test.jsonl"), "--rejects", str(tmp_path / "test.jsonl")])  # fmt: skip
    assert result.exit_code == 2 and "would overwrite an input" in result.stderr


def test_the_test_texts_fingerprints_are_keyed_per_index():
    from lenprof.hashing import fingerprints
    from lenprof.rows.leaks import _Texts

    a, b = _Texts.of(["what is lenprof"], [0]), _Texts.of(["what is lenprof"], [0])
    assert a.key != b.key and a.exact.tolist() != b.exact.tolist()
    # each finds its own text, and only by its own key
    assert a.places(["what is lenprof", "other"])[0].tolist() == [0, -1]
    assert fingerprints(["x"], a.key).tolist() != fingerprints(["x"], b.key).tolist()
