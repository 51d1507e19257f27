"""Layouts: sentence-transformers columns are read through their mapping, unusable data and
misspelled --fields stop with the columns there are, and the numbers follow an AutoTokenizer oracle."""

from __future__ import annotations

import json

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from click.testing import CliRunner
from conftest import DEFAULT_TOKENIZER, EXAMPLES
from test_scan import oracle_stats

from lenprof import ScanOptions, scan
from lenprof.cli import main
from lenprof.rows.fields import Fields
from lenprof.rows.layouts import LayoutError

ROWS = [json.loads(line) for line in (EXAMPLES / "msmarco.jsonl").read_text().splitlines()]


def cli(*args: str):
    return CliRunner().invoke(main, ["scan", *args], catch_exceptions=False)


def parquet(path, rows) -> str:
    pq.write_table(pa.Table.from_pylist(rows), path)
    return str(path)


def field_numbers(profile, oracle, queries, positives, negatives) -> None:
    """Every field's count, min, max, mean and percentiles as the oracle computes them."""
    texts = {"query": queries, "pos": positives, "neg": negatives, "passage": positives + negatives}
    for name, field_texts in texts.items():
        want = oracle_stats(oracle(field_texts))
        got = profile.field_stats(name)
        assert {k: got[k] for k in want} == want, name


def test_triplets_are_read_without_flags(tok, oracle, tmp_path):
    rows = [{"anchor": r["query"], "positive": r["pos"][0], "negative": r["neg"][0]} for r in ROWS]
    path = parquet(tmp_path / "triplets.parquet", rows)
    profile = scan(path, tokenizer=tok)
    assert (profile.samples.read, profile.samples.kept) == (len(rows), len(rows))
    assert profile.inputs[0].layout == "sentence-transformers triplets"
    assert profile.inputs[0].fields == "query=anchor,pos=positive,neg=negative"
    field_numbers(
        profile,
        oracle,
        [r["anchor"] for r in rows],
        [r["positive"] for r in rows],
        [r["negative"] for r in rows],
    )
    result = cli(path, "--format", "args")
    assert result.exit_code == 0
    assert result.stderr == DEFAULT_TOKENIZER + (
        f"lenprof: {path}: sentence-transformers triplets, read as --fields "
        "query=anchor,pos=positive,neg=negative\n"
    )


def test_query_positive_negative_jsonl(tok, tmp_path):
    path = tmp_path / "qpn.jsonl"
    path.write_text("".join(json.dumps({"query": r["query"], "positive": r["pos"][0]}) + "\n" for r in ROWS))
    with pytest.raises(LayoutError, match="pairs .* --min-neg 0"):
        scan(str(path), tokenizer=tok)
    profile = scan(str(path), ScanOptions(min_neg=0), tokenizer=tok)
    assert profile.samples.kept == len(ROWS)
    assert profile.inputs[0].fields == "query=query,pos=positive"


def test_n_tuples_map_to_neg_in_column_order(tok, oracle, tmp_path):
    rows = []
    for r in ROWS:
        negs = list(dict.fromkeys(r["neg"]))[:3]
        # numbered columns out of order, and past 9, to prove the numeric order
        rows.append({"anchor": r["query"], "positive": r["pos"][0], "negative_10": negs[2], "negative_2": negs[1], "negative_1": negs[0]})  # fmt: skip
    path = parquet(tmp_path / "tuples.parquet", rows)
    profile = scan(path, tokenizer=tok)
    assert profile.inputs[0].fields == "query=anchor,pos=positive,neg=negative_1+negative_2+negative_10"
    negatives = [n for r in rows for n in (r["negative_1"], r["negative_2"], r["negative_10"])]
    field_numbers(profile, oracle, [r["anchor"] for r in rows], [r["positive"] for r in rows], negatives)
    same = scan(
        path, ScanOptions(fields=Fields.parse("query=anchor,pos=positive,neg=negative_*")), tokenizer=tok
    )
    assert same.to_dict()["fields"] == profile.to_dict()["fields"]


def test_a_repaired_tuple_keeps_its_columns(tok, tmp_path):
    rows = [
        {"anchor": "q one", "positive": "p one", "negative_1": "p one", "negative_2": "n two"},
        {"anchor": "q two", "positive": "p two", "negative_1": "n one", "negative_2": "n three"},
    ]
    path = parquet(tmp_path / "tuples.parquet", rows)
    clean = tmp_path / "clean.jsonl"
    profile = scan(path, tokenizer=tok, clean_out=str(clean))
    assert profile.samples.repaired == {"pos_in_neg": 1}
    written = [json.loads(line) for line in clean.read_text().splitlines()]
    assert written[0] == {"anchor": "q one", "positive": "p one", "negative_1": "n two", "negative_2": None}
    assert written[1] == rows[1]
    strict = scan(path, ScanOptions(min_neg=2), tokenizer=tok)  # a full tuple or nothing
    assert (strict.samples.kept, strict.samples.dropped) == (1, {"no_negatives": 1})


@pytest.mark.parametrize(
    ("columns", "message"),
    [
        (["text", "label"], "looks like text classification data (text, label), not (query, positive) rows"),
        (["sentence1", "sentence2", "score"], "looks like sentence-pair similarity or classification data"),
        (["premise", "hypothesis", "label"], "looks like natural-language inference data"),
        (["foo", "bar"], "no 'query' and 'pos' columns (columns there: foo, bar); name them with --fields query=COL,pos=COL,neg=COL, or with no column of negatives --fields query=COL,pos=COL --min-neg 0 (to train on in-batch negatives only)"),
    ],
)  # fmt: skip
def test_data_without_query_rows_stops_with_its_columns(tmp_path, columns, message):
    path = parquet(tmp_path / "data.parquet", [{c: "x" if c != "label" else 1 for c in columns}])
    result = cli(path)
    assert result.exit_code == 2
    assert message in result.stderr
    assert result.stderr.count("\n") == 1


def test_question_answer_data_takes_one_message_to_the_whole_command(tmp_path):
    """Issue 22, point 9: `question,answer` data took two round trips, --fields, then --min-neg 0
    (every row dropped as no_negatives). The first message now holds both: pasted, it scans."""
    import csv
    import shlex

    rows = [{"question": r["query"], "answer": r["pos"][0]} for r in ROWS]
    (tmp_path / "qa.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    with open(tmp_path / "qa.csv", "w", newline="", encoding="utf-8") as fh:
        writer = csv.DictWriter(fh, ["question", "answer"])
        writer.writeheader()
        writer.writerows(rows)
    for name in ("qa.jsonl", "qa.csv"):
        path = str(tmp_path / name)
        refused = cli(path, "--format", "args")
        assert (refused.exit_code, refused.stderr) == (
            2,
            f"Error: {path}: no 'query' and 'pos' columns (columns there: question, answer); to read question "
            "as the query and answer as its positive, pass --fields query=question,pos=answer --min-neg 0 "
            "(no column of negatives: train on in-batch negatives only)\n",
        )
        flags = refused.stderr.split(", pass ")[1].split(" (")[0]
        done = cli(path, "--format", "json", "-q", *shlex.split(flags))
        assert done.exit_code == 0, done.stderr
        assert json.loads(done.stdout)["samples"]["kept"] == len(rows)
    mixed = tmp_path / "mixed.jsonl"  # other spellings, and a column of negatives: no --min-neg 0
    mixed.write_text(json.dumps({"Query": "q", "Passage": "p", "hard negatives": ["n"]}) + "\n")
    assert cli(str(mixed)).stderr.endswith(
        "to read Query as the query and Passage as its positive, pass "
        "--fields 'query=Query,pos=Passage,neg=hard negatives'\n"
    )
    assert cli(path, "--min-neg", "0").stderr.endswith("--fields query=question,pos=answer\n")


def test_a_misspelled_fields_column_is_named(tmp_path):
    rows = [{"anchor": "q", "positive": "p", "negative": "n"}]
    path = parquet(tmp_path / "t.parquet", rows)
    result = cli(path, "--fields", "query=anchr,pos=positive,neg=negative")
    assert (result.exit_code, result.stderr) == (
        2,
        f"Error: {path}: --fields names the column 'anchr', but the input has no such column; "
        "columns there: anchor, positive, negative\n",
    )
    lines = tmp_path / "t.jsonl"
    lines.write_text(json.dumps(rows[0]) + "\n")
    result = cli(str(lines), "--fields", "query=anchor,pos=positive,neg=negatives")
    assert "--fields names the column 'negatives', but the input has no such column" in result.stderr
    result = cli(str(lines), "--fields", "query=anchor,pos=positive,neg=neg_*")
    assert "--fields: no column matches neg=neg_*" in result.stderr


def test_every_real_corpus_as_triplets_matches_its_flagembedding_numbers(tok, corpus_files, tmp_path):
    """The same (query, pos[0], neg[0]) rows, once as FlagEmbedding JSON lines, once as an ST
    parquet folder: the same numbers."""
    fe, st = [], []
    for path in corpus_files:
        for line in path.read_text(encoding="utf-8").splitlines():
            r = json.loads(line)
            if r.get("neg") and r["neg"][0].strip() != r["pos"][0].strip():
                fe.append({"query": r["query"], "pos": [r["pos"][0]], "neg": [r["neg"][0]]})
                st.append({"anchor": r["query"], "positive": r["pos"][0], "negative": r["neg"][0]})
    (tmp_path / "st").mkdir()
    parquet(tmp_path / "st" / "train-00000.parquet", st[: len(st) // 2])
    parquet(tmp_path / "st" / "train-00001.parquet", st[len(st) // 2 :])
    (tmp_path / "fe.jsonl").write_text("".join(json.dumps(r) + "\n" for r in fe))
    a = scan(str(tmp_path / "st"), tokenizer=tok).to_dict()
    b = scan(str(tmp_path / "fe.jsonl"), tokenizer=tok).to_dict()
    assert a["samples"]["read"] > 100
    assert (a["samples"], a["fields"], a["recommendation"]) == (
        b["samples"],
        b["fields"],
        b["recommendation"],
    )


def test_csv_and_json_array_layouts_are_read_without_flags(tok, tmp_path):
    """A CSV header and a JSON array's rows tell their layout as a Parquet schema does."""
    import csv

    rows = [{"anchor": r["query"], "positive": r["pos"][0], "negative": r["neg"][0]} for r in ROWS]
    with open(tmp_path / "t.csv", "w", newline="", encoding="utf-8") as fh:
        writer = csv.DictWriter(fh, ["anchor", "positive", "negative"])
        writer.writeheader()
        writer.writerows(rows)
    (tmp_path / "t.json").write_text(json.dumps(rows, indent=2))
    want = scan(parquet(tmp_path / "t.parquet", rows), tokenizer=tok).to_dict()
    for name in ("t.csv", "t.json"):
        got = scan(str(tmp_path / name), tokenizer=tok)
        assert got.inputs[0].fields == "query=anchor,pos=positive,neg=negative", name
        assert (got.to_dict()["fields"], got.to_dict()["recommendation"]) == (
            want["fields"],
            want["recommendation"],
        )
    result = cli(str(tmp_path / "t.csv"), "--fields", "query=anchor,pos=positiv")
    assert "--fields names the column 'positiv', but the input has no such column" in result.stderr


def test_against_reads_any_format(tok, tmp_path):
    import csv

    train = tmp_path / "train.jsonl"
    train.write_text("".join(json.dumps(r) + "\n" for r in ROWS))
    with open(tmp_path / "test.csv", "w", newline="", encoding="utf-8") as fh:
        writer = csv.writer(fh)
        writer.writerow(["anchor", "positive"])
        writer.writerow(["not in training", "nor this"])
        writer.writerow([ROWS[4]["query"], "a test positive"])
    profile = scan(str(train), tokenizer=tok, against=[str(tmp_path / "test.csv")])
    assert profile.samples.warnings.get("eval_query_leak") == 1
    assert profile.examples["eval_query_leak"][0].detail == f"query of {tmp_path / 'test.csv'} line 3"
