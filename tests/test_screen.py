"""The screen (``rows/screen.py``) decides every row as ``check_row`` does, row for row.

The screen clears most rows by work over the whole shard and sends the rest through
``check_row``; these tests hold its fates equal to ``check_row``'s one row at a time, on shards
built to break it: texts that strip to each other, keys given twice (also hidden behind escaped
quotes), control characters behind escapes, lone surrogates, rows nested deep, extra keys, rows
that are no object, blank lines, a BOM, CR line ends, lines too long, decoded (Parquet) rows,
mapped and n-tuple layouts. The texts' and rows' fingerprints it hands on are checked against
those made from the kept rows themselves."""

from __future__ import annotations

import json

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from lenprof.hashing import RunKey, fingerprints, row_fingerprints, unique
from lenprof.io.files import BOM, LineTooLong, Unreadable
from lenprof.rows.checks import Checked, check_row, dedup_key, watched_keys
from lenprof.rows.fields import Fields
from lenprof.rows.screen import screen

KEY = RunKey(b"s" * 16)
WORDS = [
    "a",
    "b",
    "a ",
    " a",
    "\u3000a",
    "",
    " ",
    "\t",
    "中文",
    'x"y',
    "x\\",
    "\x07",
    "\x7f",
    "\ud800",
    "é",
    ":",
]


def oracle(records: list, fields: Fields, min_neg: int, max_line: int, max_text: int, first: bool):
    """check_row one record at a time, as the scan did before the screen."""
    kept, drops, blank, skipped = [], [], 0, 0
    for r, record in enumerate(records):
        if type(record) is bytes:
            if r == 0 and first and record.startswith(BOM):
                record = record[len(BOM) :]
            if record.endswith(b"\r"):
                record = record[:-1]
            if not record.strip():
                blank += 1
                continue
        elif record is None:
            skipped += 1
            continue
        fate = check_row(record, fields, min_neg, max_line, max_text)
        if type(fate) is Checked:
            kept.append((r, fate, record))
        else:
            drops.append((r, fate, record))
    return kept, drops, blank, skipped


def same(
    records: list, fields: Fields | None = None, min_neg: int = 1, max_text: int = 1 << 20, first: bool = True
):
    fields = fields or Fields()
    s = screen(records, fields, KEY, min_neg, 1 << 20, max_text, first)
    kept, drops, blank, skipped = oracle(records, fields, min_neg, 1 << 20, max_text, first)
    assert (s.blank, s.skipped) == (blank, skipped)
    assert s.drops == drops
    assert s.at == [r for r, _, _ in kept] and s.raws == [x for _, _, x in kept]
    assert s.rows == [c for _, c, _ in kept]
    assert s.watched.tolist() == [list(watched_keys(c.obj)) for _, c, _ in kept]
    rows = s.rows
    if s.ids is not None:
        every = [c.query for c in rows] + [t for c in rows for t in c.pos] + [t for c in rows for t in c.neg]
        assert [s.distinct[i] for i in s.ids.tolist()] == every
        assert s.prints.tolist() == fingerprints(s.distinct, KEY).tolist()
    if s.dedup is not None:
        assert s.dedup.tolist() == row_fingerprints([dedup_key(c) for c in rows], KEY).tolist()
    return s


def line(obj, ascii_only: bool = False) -> bytes:
    return json.dumps(obj, ensure_ascii=ascii_only).encode("utf-8", "surrogatepass")


texts = st.lists(st.sampled_from(WORDS), min_size=0, max_size=4).map(lambda w: "".join(w))


@st.composite
def rows(draw):
    """A JSON line: mostly a FlagEmbedding row, with every way to go wrong now and then."""
    obj = {
        "query": draw(texts),
        "pos": draw(st.lists(texts, max_size=3)),
        "neg": draw(st.lists(texts, max_size=4)),
    }
    kind = draw(st.integers(0, 19))
    if kind == 1:
        obj["pos"].append(obj["query"] + " ")
    elif kind == 2 and obj["pos"]:
        obj["neg"].append(" " + obj["pos"][0])
    elif kind == 3 and obj["neg"]:
        obj["neg"].append(obj["neg"][0] + "\n")
    elif kind == 4:
        obj[draw(st.sampled_from(["prompt", "pos_scores", "neg_scores", "type", "id"]))] = draw(
            st.sampled_from([None, "p", 1, [0.5], {"a": [1]}, "symmetric_sts"])
        )
    elif kind == 5:
        obj[draw(st.sampled_from(["query", "pos", "neg"]))] = draw(st.sampled_from([None, 3, "s", ["a", 1]]))
    elif kind == 6:
        del obj[draw(st.sampled_from(["query", "pos", "neg"]))]
    data = line(obj, ascii_only=draw(st.booleans()))
    if kind == 7:  # a key given twice, first or last
        data = data[:-1] + b', "query": ' + line(draw(texts)) + b"}"
    elif kind == 8:  # quotes and colons in texts that look like keys
        data = data[:-1] + b', "x": "\\"query\\": \\\\\\": \\\\"}'
    elif kind == 9:
        data = b"[" * 120 + b"]" * 120
    elif kind == 10:
        data = draw(
            st.sampled_from([b"{bad", b"[1]", b'"s"', b"\xff\xfe", b'{"query": NaN}', b" ", b"", b"\r"])
        )
    elif kind == 11:
        data = b"  " + data + b" \r"
    elif kind == 12:  # nested more than 100 levels deep in an extra key
        data = data[:-1] + b', "deep": ' + b"[" * 101 + b"]" * 101 + b"}"
    elif kind == 13:
        data = data.replace(b'": ', b'" :', 1)
    return data


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(rows(), max_size=12), st.integers(0, 2), st.booleans(), st.sampled_from([1 << 20, 6]))
def test_the_screen_decides_every_line_as_check_row(lines, min_neg, bom, max_text):
    if bom and lines:
        lines[0] = BOM + lines[0]
    same(lines, min_neg=min_neg, max_text=max_text)


@settings(max_examples=150, deadline=None)
@given(st.lists(rows(), max_size=8), st.integers(0, 2))
def test_decoded_rows_and_other_records_meet_the_same_checks(lines, min_neg):
    records: list = []
    for data in lines:
        try:
            obj = json.loads(data)  # a Parquet row: decoded already (readers decode objects only)
        except ValueError:
            obj = None
        records.append(obj if isinstance(obj, dict) else data)
    records += [None, LineTooLong(b"{", 10), Unreadable("malformed_csv", "a cell", "a,b")]
    same(records, min_neg=min_neg)


@pytest.mark.parametrize(
    "fields",
    [
        Fields.parse("query=anchor,pos=positive,neg=negative"),
        Fields.parse("query=anchor,pos=positive,neg=n1+n2"),
        Fields(strings=True),
        Fields.parse("query=prompt,pos=pos,neg=neg"),
    ],
)
def test_other_layouts_meet_the_same_checks(fields):
    names = (fields.query, fields.pos, *(fields.neg_columns or (fields.neg,)))
    objs = [
        dict(zip(names, ["q", ["p"], *(["n"] if fields.neg_columns else [["n", "m"]])], strict=False)),
        dict(zip(names, ["q", "p", "n", "m"], strict=False)),
        dict(zip(names, [" q", ["q"], ["n"], "q"], strict=False)),
        {"anchor": "q"},
    ]
    same([line(o) for o in objs], fields=fields)


def test_a_shard_of_plain_rows_is_cleared_whole():
    """The common shard: every row cleared, its texts' fingerprints reused, no row looked at."""
    lines = [line({"query": f"q{i}", "pos": [f"p{i}"], "neg": ["n", f"m{i}", "\u3000k "]}) for i in range(50)]
    s = same(lines)
    assert len(s.rows) == 50 and s.ids is not None and s.dedup is not None
    assert np.array_equal(s.watched, np.zeros((50, 2), dtype=bool))


def test_a_key_given_twice_is_found_behind_escaped_quotes_and_backslashes():
    """The screen counts a line's quotes to find a key given twice: a quote after an escaped
    backslash still counts (``"x\\\\"`` ends a string), one after a lone backslash does not."""
    plain = {"query": "q", "pos": ["p\\"], "neg": ["a\\", "b\\", 'c"', "d\\\\"]}
    twice = line(plain)[:-1] + b', "query": "r"}'
    hidden = line({**plain, "neg": plain["neg"] + ['\\"query\\": "q"']})
    s = same([line(plain), twice, hidden])
    assert [(r, d.reason) for r, d, _ in s.drops] == [(1, "malformed_json")] and s.at == [0, 2]


def test_lines_among_other_records_are_looked_at_as_lines():
    """A JSON line beside a line too long, an unreadable row or a decoded row is still checked for
    keys given twice and depth."""
    row = line({"query": "q", "pos": ["p"], "neg": ["n"]})
    twice = row[:-1] + b', "pos": ["q"]}'
    deep = row[:-1] + b', "x": ' + b"[" * 101 + b"]" * 101 + b"}"
    for other in (
        LineTooLong(b"{", 10),
        Unreadable("malformed_csv", "a cell", "a,b"),
        {"query": "q", "pos": ["p"], "neg": ["m"]},
    ):
        s = same([row, twice, deep, other, None])
        assert [(r, d.reason) for r, d, _ in s.drops][:2] == [(1, "malformed_json"), (2, "malformed_json")]


@settings(max_examples=200, deadline=None)
@given(st.lists(st.integers(0, 5), max_size=40) | st.lists(st.integers(0, 2**64 - 1), max_size=40))
def test_the_unstable_unique_is_np_unique(values):
    prints = np.array(values, dtype=np.uint64)
    assert [a.tolist() for a in unique(prints)] == [
        a.tolist() for a in np.unique(prints, return_index=True, return_inverse=True)
    ]
