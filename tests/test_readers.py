"""JSON arrays, CSV/TSV, stdin and train/test files in one folder: each reader gives the numbers
of the JSON Lines it was made from, and every row read is kept or rejected with its line."""

from __future__ import annotations

import csv
import gzip
import io
import json
import os
import pty
import subprocess
import sys

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from click.testing import CliRunner
from conftest import REPO
from hypothesis import given, settings
from hypothesis import strategies as st

from lenprof import ScanOptions, scan
from lenprof.cli import main
from lenprof.io.readers import delimited, json_array
from lenprof.rows.fields import Fields


def numbers(profile) -> dict:
    d = profile.to_dict()
    return {k: d[k] for k in ("samples", "fields", "recommendation")}


def corpus_rows(corpus_files) -> list[dict]:
    return [json.loads(line) for p in corpus_files for line in p.read_text(encoding="utf-8").splitlines()]


def rejects(path) -> list[tuple[int, str]]:
    return [(r["line"], r["reason"]) for r in map(json.loads, open(path, encoding="utf-8"))]


# --- JSON arrays ---------------------------------------------------------------------------------


def test_a_json_array_of_the_real_corpus_gives_the_numbers_of_its_jsonl(tok, corpus_files, tmp_path):
    rows = corpus_rows(corpus_files)
    base = scan([str(p) for p in corpus_files], tokenizer=tok)
    pretty = tmp_path / "pretty.json"
    pretty.write_text(json.dumps(rows, indent=2, ensure_ascii=False), encoding="utf-8")
    packed = tmp_path / "packed.json.gz"  # one line, a BOM, compressed
    packed.write_bytes(gzip.compress(b"\xef\xbb\xbf" + json.dumps(rows).encode()))
    for path in (pretty, packed):
        profile = scan(str(path), tokenizer=tok)
        assert numbers(profile) == numbers(base), path
        assert profile.samples.read == len(rows) == 121
    # in pieces of a few rows, on two workers: the same numbers, and the same lines for examples
    small = scan(str(pretty), tokenizer=tok, shard_bytes=3000, workers=2)
    assert numbers(small) == numbers(base)
    nq = next(i for i, p in enumerate(corpus_files) if p.name == "nq.jsonl")
    first_nq = sum(len(p.read_text().splitlines()) for p in corpus_files[:nq]) + 1
    assert [(e.source, e.line) for e in small.examples["duplicate_neg"]] == [(str(pretty), first_nq)]
    assert [i.format for i in scan([str(pretty), str(packed)], tokenizer=tok).inputs] == ["json", "json+gzip"]


def test_every_element_of_an_array_is_kept_or_rejected_at_its_position(tok, tmp_path):
    good = '{"query": "q%d", "pos": ["p%d"], "neg": ["n%d"]}'
    elements = [
        good % (1, 1, 1),
        '{"query": "q2", "pos": ["p2"], "neg": ["n2"], "score": NaN}',
        '{"query": "q3", "query": "again", "pos": ["p3"], "neg": ["n3"]}',
        "3",
        '{"query": "q5\xff", "pos": ["p5"], "neg": ["n5"]}',
        "",  # two commas in a row
        "[1, 2]",
        good % (8, 8, 8),
        "{}",
    ]
    path = tmp_path / "rows.json"
    path.write_bytes(("[\n  " + ",\n  ".join(elements) + "\n]").encode("latin-1"))
    out = tmp_path / "rejects.jsonl"
    p = scan(str(path), tokenizer=tok, rejects_out=str(out))
    assert (p.samples.read, p.samples.kept) == (9, 2)
    assert rejects(out) == [
        (2, "malformed_json"),
        (3, "malformed_json"),
        (4, "not_object"),
        (5, "invalid_utf8"),
        (6, "malformed_json"),
        (7, "not_object"),
        (9, "missing_field"),
    ]
    raws = [r["raw"] for r in map(json.loads, open(out, encoding="utf-8"))]
    assert raws[0] == elements[1] and raws[4] == "" and raws[5] == "[1, 2]"


@pytest.mark.parametrize(
    "text, where",
    [
        ('[\n {"query": "q", "pos": ["p"]},\n {"query": "unclosed', "line 3, column 12"),
        ('[{"query": "q", "pos": ["p"]}]\n[{"query": "r"}]\n', "line 2, column 1"),
        ('[\n {"query": "q", "pos": ["p"]\n', "the array is never closed"),
    ],
)
def test_a_broken_array_is_one_line_naming_where(tmp_path, text, where):
    path = tmp_path / "broken.json"
    path.write_text(text)
    result = CliRunner().invoke(main, ["scan", str(path), "-q"])
    assert result.exit_code == 2
    assert result.stderr.count("\n") == 1 and where in result.stderr and str(path) in result.stderr


def test_a_json_file_of_lines_is_still_json_lines(tok, tmp_path):
    path = tmp_path / "lines.json"
    path.write_text('{"query": "q", "pos": ["p"], "neg": ["n"]}\n[1]\n')
    p = scan(str(path), tokenizer=tok)
    assert p.inputs[0].format == "jsonl" and p.samples.dropped == {"not_object": 1}


# --- CSV / TSV -----------------------------------------------------------------------------------


def st_rows(corpus_files) -> list[dict]:
    """sentence-transformers triplets: anchor, positive, negative strings from the real corpus."""
    return [
        {"anchor": r["query"], "positive": r["pos"][0], "negative": r["neg"][0]}
        for r in corpus_rows(corpus_files)
        if r["neg"]
    ]


@pytest.mark.parametrize("suffix, delimiter", [(".csv", ","), (".tsv", "\t"), (".csv.gz", ",")])
def test_csv_of_st_columns_gives_the_numbers_of_the_same_jsonl(
    tok, corpus_files, tmp_path, suffix, delimiter
):
    rows = st_rows(corpus_files)
    jsonl = tmp_path / "st.jsonl"
    jsonl.write_text("".join(json.dumps(r) + "\n" for r in rows))
    text = io.StringIO()
    writer = csv.DictWriter(text, ["anchor", "positive", "negative"], delimiter=delimiter)
    writer.writeheader()
    writer.writerows(rows)
    table = tmp_path / f"st{suffix}"
    data = text.getvalue().encode()
    table.write_bytes(gzip.compress(data) if suffix.endswith(".gz") else data)
    assert sum(1 for r in rows if "\n" in "".join(r.values())) > 0  # some cells span lines

    options = ScanOptions(fields=Fields.parse("query=anchor,pos=positive,neg=negative"))
    base = scan(str(jsonl), options, tokenizer=tok)
    got = scan(str(table), options, tokenizer=tok, shard_bytes=5000)
    assert numbers(got) == numbers(base)
    assert got.samples.read == len(rows) and got.inputs[0].format == suffix[1:].replace(".gz", "+gzip")


def test_csv_rows_keep_their_file_line_and_bad_rows_are_rejected(tok, tmp_path):
    lines = [
        "query,pos,neg",
        "q1,p1,n1",
        "q2,p2",  # a cell short
        'q3,"p3 spans',
        'two lines",n3',
        "",
        "q4,p4,n4,extra",
        "q5,,n5",
        "q6,p6,n6",
    ]
    path = tmp_path / "rows.csv"
    path.write_text("\n".join(lines) + "\n")
    out = tmp_path / "rejects.jsonl"
    p = scan(str(path), tokenizer=tok, rejects_out=str(out))
    # the oracle: the csv module's own line count at the start of each row
    reader = csv.reader(open(path, newline=""))
    starts, seen = {}, 0
    for row in reader:
        starts[tuple(row)] = seen + 1
        seen = reader.line_num
    assert (
        rejects(out)
        == [
            (starts[("q2", "p2")], "malformed_csv"),
            (starts[("q4", "p4", "n4", "extra")], "malformed_csv"),
            (starts[("q5", "", "n5")], "empty_pos"),
        ]
        == [(3, "malformed_csv"), (7, "malformed_csv"), (8, "empty_pos")]
    )
    assert (p.samples.read, p.samples.kept, p.samples.blank) == (6, 3, 1)
    assert p.samples.read == p.samples.kept + sum(p.samples.dropped.values())
    assert json.loads(open(out).readline())["raw"] == "q2,p2"


def test_a_csv_cell_is_one_text_even_when_it_looks_like_a_list(tok, tmp_path):
    path = tmp_path / "rows.csv"
    path.write_text('query,pos,neg\nq,"[""a"", ""b""]",n\n')
    clean = tmp_path / "clean.jsonl"
    scan(str(path), tokenizer=tok, clean_out=str(clean))
    assert json.loads(clean.read_text()) == {"query": "q", "pos": '["a", "b"]', "neg": "n"}


# --- stdin ---------------------------------------------------------------------------------------


def test_stdin_gives_the_profile_of_the_file(tok, corpora, tmp_path):
    path = corpora / "embedder" / "retrieval" / "nq.jsonl"
    from_file = CliRunner().invoke(main, ["scan", str(path), "--format", "json", "-q"])
    for data in (path.read_bytes(), json.dumps(corpus_rows([path]), indent=1).encode()):
        rejects_out = tmp_path / "rejects.jsonl"
        piped = CliRunner().invoke(
            main, ["scan", "-", "--format", "json", "-q", "--rejects", str(rejects_out)], input=data
        )
        assert piped.exit_code == 0, piped.output
        a, b = json.loads(from_file.stdout), json.loads(piped.stdout)
        assert b["inputs"][0]["path"] == "<stdin>" and b["inputs"][0]["rows"] == 10
        assert {k: a[k] for k in ("samples", "fields", "recommendation")} == {
            k: b[k] for k in ("samples", "fields", "recommendation")
        }
        assert [e["source"] for e in b["examples"]["duplicate_neg"]] == ["<stdin>"]


def test_stdin_twice_or_from_a_terminal_is_refused(tmp_path):
    twice = CliRunner().invoke(main, ["scan", "-", "-"], input=b"")
    assert twice.exit_code == 2 and "stdin is given twice" in twice.stderr
    leader, follower = pty.openpty()
    try:
        done = subprocess.run(
            [sys.executable, "-m", "lenprof", "scan", "-"],
            stdin=follower,
            capture_output=True,
            text=True,
            timeout=120,
            cwd=tmp_path,
            env={**os.environ, "PYTHONPATH": str(REPO)},
        )
    finally:
        os.close(leader)
        os.close(follower)
    assert done.returncode == 2
    assert done.stderr == (
        "Error: -: stdin is a terminal, not data; pipe rows in (cat rows.jsonl | lenprof scan -) "
        "or name the files\n"
    )


# --- train/test files found together -------------------------------------------------------------


def test_train_and_test_files_given_one_by_one_are_named(tok, corpora, tmp_path):
    """A folder of both is refused whole (tests/test_splits.py); files named one by one are the
    user's choice, profiled together with each one's split and a line in the table."""
    src = corpora / "embedder" / "retrieval" / "nq.jsonl"
    data = tmp_path / "ds" / "data"
    data.mkdir(parents=True)
    table = pa.Table.from_pylist(corpus_rows([src]))
    train, test = data / "train-00000-of-00001.parquet", data / "test-00000-of-00001.parquet"
    pq.write_table(table, train)
    pq.write_table(table.slice(0, 4), test)
    result = CliRunner().invoke(main, ["scan", str(test), str(train), "-q"])
    assert f"splits    test {test}; train {train}: scanned as one corpus" in result.stdout
    profile = json.loads(
        CliRunner().invoke(main, ["scan", str(test), str(train), "-q", "--format", "json"]).stdout
    )
    assert [(i["path"], i.get("split")) for i in profile["inputs"]] == [
        (str(test), "test"),
        (str(train), "train"),
    ]
    # one split alone is no finding
    alone = scan(str(train), tokenizer=tok)
    assert alone.inputs[0].split is None and "split" not in alone.to_dict()["inputs"][0]


# --- properties ----------------------------------------------------------------------------------

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=5), inner, max_size=3),
    max_leaves=8,
)


@settings(max_examples=200, deadline=None)
@given(values=st.lists(json_values, max_size=6), indent=st.sampled_from([None, 0, 2]))
def test_splitting_an_array_by_hand_agrees_with_the_decoder(values, indent):
    """The fallback splitter (used when some element is damaged) cuts where msgspec does."""
    data = json.dumps(values, indent=indent).encode()
    by_hand = json_array._split(data, "x.json", ValueError())
    assert by_hand == json_array.elements(data, "x.json")
    assert [json.loads(e) for e in by_hand] == values


cell = st.text(alphabet=st.sampled_from('ab ,"\n\t'), max_size=6)


def csv_line(row: list[str]) -> str:
    text = io.StringIO()
    csv.writer(text, lineterminator="\n").writerow(row)
    return text.getvalue()


@settings(max_examples=200, deadline=None)
@given(rows=st.lists(st.lists(cell, min_size=1, max_size=4), min_size=1, max_size=6))
def test_csv_records_are_the_rows_written_at_their_lines(rows):
    """The oracle is the writer: each row starts on the line after the newlines written before it."""
    written = [csv_line(["c0", "c1", "c2"])] + [csv_line(r) for r in rows]
    records = [
        r for piece, _ in delimited.records(iter(["".join(written).encode()]), ",", 1 << 20) for r in piece
    ]
    assert len(records) == sum(w.count("\n") for w in written)  # a record per physical line
    line = written[0].count("\n") + 1
    for row, text in zip(rows, written[1:], strict=True):
        got = records[line - 1]
        if not text.strip(" \t\n"):
            assert got == b""  # a blank line
        elif len(row) == 3:
            assert got == dict(zip(["c0", "c1", "c2"], row, strict=True))
        else:
            assert (got.reason, got.text) == ("malformed_csv", text[:-1])
        assert records[line : line + text.count("\n") - 1] == [None] * (text.count("\n") - 1)
        line += text.count("\n")


def test_a_trailing_comma_is_an_empty_element_but_an_empty_array_has_none():
    e = json_array.EMPTY
    assert json_array.elements(b'[{"a": 1},\n]', "x.json") == [b'{"a": 1}', e]
    assert json_array.elements(b"[ \n ]", "x.json") == [] == json_array.elements(b"[]", "x.json")
    assert json_array.elements(b'[1,,"x,]"]', "x.json") == [b"1", e, b'"x,]"']


def test_csv_strings_reach_the_trainer_as_one_text_each(tok, tmp_path):
    from lenprof.rows.groups import read_rows

    path = tmp_path / "rows.csv"
    path.write_text("query,pos,neg\nwhat is up,the sky,a cat\n")
    clean = tmp_path / "clean.jsonl"
    scan(str(path), tokenizer=tok, clean_out=str(clean))
    [row] = read_rows(clean)
    assert (row.query, row.pos, row.neg) == ("what is up", ["the sky"], ["a cat"])
