"""One fixture per reason code, each on its own line, checked through the rejects file."""

from __future__ import annotations

import json

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from conftest import EXAMPLES, write_lines

from lenprof import Fields, ScanOptions, scan
from lenprof.rows.checks import Checked, Dropped, check_row
from lenprof.rows.reasons import DROP_REASONS

# examples/dirty.jsonl, line by line (its README has the same table).
DIRTY_DROPS = {
    3: "empty_query",
    4: "wrong_type",
    5: "query_equals_pos",
    6: "malformed_json",
    7: "no_negatives",
    8: "duplicate_row",
    10: "not_object",
    11: "missing_field",
    12: "invalid_utf8",
    14: "empty_pos",
    15: "wrong_type",
}


def read_jsonl(path):
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]


def test_every_reason_lands_on_its_line(tok, tmp_path):
    rejects = tmp_path / "rejects.jsonl"
    clean = tmp_path / "clean.jsonl"
    profile = scan(
        str(EXAMPLES / "dirty.jsonl"), tokenizer=tok, rejects_out=str(rejects), clean_out=str(clean)
    )
    got = {r["line"]: r["reason"] for r in read_jsonl(rejects)}
    assert got == DIRTY_DROPS
    s = profile.samples
    assert (s.read, s.blank, s.kept) == (14, 1, 3)
    assert s.read == s.kept + sum(s.dropped.values())
    assert s.repaired == {"empty_pos_item": 1, "empty_neg": 1, "pos_in_neg": 1, "duplicate_neg": 1}
    assert s.repaired_rows == {"empty_pos_item": 1, "empty_neg": 1, "pos_in_neg": 1, "duplicate_neg": 1}
    kept = read_jsonl(clean)
    assert [r["query"] for r in kept] == [
        "what does a tokenizer do",
        "how is BM25 computed",
        "what is contrastive learning",
    ]
    assert kept[1]["neg"] == [
        "TF-IDF multiplies term frequency by inverse document frequency.",
        "PageRank ranks pages by the links pointing to them.",
    ]
    # the blank positive went, and its teacher score with it
    assert kept[2]["pos"] == [kept[2]["pos"][0]] and kept[2]["pos_scores"] == [0.98]


def test_rejects_carry_source_detail_and_raw_text(tok, tmp_path):
    rejects = tmp_path / "r.jsonl"
    scan(str(EXAMPLES / "dirty.jsonl"), ScanOptions(raw_limit=30), tokenizer=tok, rejects_out=str(rejects))
    by_line = {r["line"]: r for r in read_jsonl(rejects)}
    bad = by_line[12]
    assert bad["source"] == str(EXAMPLES / "dirty.jsonl")
    assert bad["detail"] == "invalid byte 0xe9 at byte 15"
    assert bad["raw"] == '{"query": "caf\\xe9 opening hou'  # invalid byte escaped, cut at 30
    assert bad["raw_truncated_from"] > 30
    assert by_line[10]["raw"] == '["a", "list", "is", "not", "a"'
    assert all(len(r["raw"]) <= 30 for r in by_line.values())


def check(obj, **kw) -> Checked | Dropped:
    data = obj if isinstance(obj, bytes) else json.dumps(obj).encode()
    return check_row(data, kw.pop("fields", Fields()), **kw)


@pytest.mark.parametrize(
    "row, reason",
    [
        ({"query": 3, "pos": ["p"], "neg": ["n"]}, "wrong_type"),
        ({"query": None, "pos": ["p"], "neg": ["n"]}, "wrong_type"),
        ({"query": "q", "pos": None, "neg": ["n"]}, "wrong_type"),
        ({"query": "q", "pos": ["p"], "neg": None}, "wrong_type"),
        ({"query": "q", "pos": ["p"], "neg": "n"}, "wrong_type"),
        ({"query": "q", "neg": ["n"]}, "missing_field"),
        ({"pos": ["p"], "neg": ["n"]}, "missing_field"),
        ({"query": "q", "pos": [], "neg": ["n"]}, "empty_pos"),
        ({"query": "q", "pos": ["p"]}, "no_negatives"),
        ({"query": "q", "pos": ["p"], "neg": ["p", " p ", ""]}, "no_negatives"),
        ({"query": " Q\n", "pos": ["x", "Q"], "neg": ["n"]}, "query_equals_pos"),
        (b'{"query": "\\ud800", "pos": ["p"], "neg": ["n"]}', "invalid_utf8"),
        (b"123", "not_object"),
        (b'{"query": "q",}', "malformed_json"),
        (b"\xff\xfe{}", "invalid_utf8"),
    ],
)
def test_drop_reasons(row, reason):
    out = check(row)
    assert isinstance(out, Dropped) and out.reason == reason
    assert reason in DROP_REASONS


def test_first_failing_check_decides():
    # blank query and no positives: empty_query runs first
    assert check({"query": " ", "pos": [], "neg": []}).reason == "empty_query"
    # a string pos is a type error before anything about negatives
    assert check({"query": "q", "pos": "p"}).reason == "wrong_type"


def test_min_neg_zero_keeps_rows_without_negatives():
    out = check({"query": "q", "pos": ["p"]}, min_neg=0)
    assert isinstance(out, Checked) and out.neg == []
    assert check({"query": "q", "pos": ["p"], "neg": ["a"]}, min_neg=2).reason == "no_negatives"


def test_repairs_keep_neg_scores_aligned():
    out = check({"query": "q", "pos": ["p"], "neg": ["a", "p", "a ", "", "b"], "neg_scores": [1, 2, 3, 4, 5]})
    assert out.neg == ["a", "b"] and out.obj["neg_scores"] == [1, 5]
    assert out.repairs == {"pos_in_neg": 1, "duplicate_neg": 1, "empty_neg": 1}


def test_mapped_string_columns_count_as_one_item_lists():
    fields = Fields.parse("query=anchor,pos=positive,neg=negative")
    out = check({"anchor": "a", "positive": "p", "negative": "n", "id": 7}, fields=fields)
    assert isinstance(out, Checked) and (out.query, out.pos, out.neg) == ("a", ["p"], ["n"])
    assert out.obj == {"anchor": "a", "positive": "p", "negative": "n", "id": 7}


def test_control_characters_warn_but_keep():
    out = check({"query": "q\x07", "pos": ["p"], "neg": ["n"]})
    assert isinstance(out, Checked) and out.control_chars


def test_parquet_rows_are_checked_like_json(tok, tmp_path):
    table = pa.table(
        {
            "query": ["a question", None, "another question", "a question"],
            "pos": [["an answer"], ["x"], ["the answer"], ["an answer"]],
            "neg": [["wrong", "wrong"], ["y"], None, ["other"]],
        }
    )
    pq.write_table(table, tmp_path / "c.parquet")
    rejects = tmp_path / "r.jsonl"
    profile = scan(str(tmp_path / "c.parquet"), tokenizer=tok, rejects_out=str(rejects))
    assert [(r["line"], r["reason"]) for r in read_jsonl(rejects)] == [
        (2, "wrong_type"),
        (3, "wrong_type"),
        (4, "duplicate_row"),
    ]
    assert json.loads(read_jsonl(rejects)[0]["raw"]) == {"query": None, "pos": ["x"], "neg": ["y"]}
    assert profile.samples.repaired == {"duplicate_neg": 1}


def test_reasons_are_documented():
    from lenprof.rows.reasons import EXPLANATIONS, REPAIR_REASONS, WARNING_REASONS

    assert set(EXPLANATIONS) == set(DROP_REASONS + REPAIR_REASONS + WARNING_REASONS)


def test_write_lines_helper(tmp_path):
    p = write_lines(tmp_path / "x.jsonl", [b"a", b"b"], end=b"\r\n")
    assert p.read_bytes() == b"a\r\nb\r\n"
