"""Arbitrary bytes never crash a scan, and every line lands somewhere: kept, dropped or blank."""

from __future__ import annotations

import json

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from lenprof import scan

GOOD = b'{"query": "what is lenprof", "pos": ["a length profiler"], "neg": ["a bread recipe"]}'
# Lines made of pieces that reach every check, glued with arbitrary bytes in between.
piece = st.one_of(
    st.binary(max_size=40),
    st.just(GOOD),
    st.sampled_from(
        [
            b"{",
            b"}",
            b'"query"',
            b'"pos"',
            b'"neg"',
            b":",
            b",",
            b"[",
            b"]",
            b'"x"',
            b"null",
            b"\\ud800",
            b"\xff",
            b"\r",
            b" ",
        ]
    ),
)
line = st.lists(piece, max_size=8).map(b"".join)
corpus = st.lists(line, max_size=25).map(b"\n".join)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=corpus, shard_bytes=st.sampled_from([1, 200, 4 << 20]))
def test_arbitrary_bytes_are_kept_or_rejected(tok, tmp_path_factory, data, shard_bytes):
    d = tmp_path_factory.mktemp("fuzz")
    src = d / "in.jsonl"
    src.write_bytes(data)
    clean, rejects = d / "clean.jsonl", d / "rejects.jsonl"
    p = scan(
        str(src),
        tokenizer=tok,
        shard_bytes=shard_bytes,
        clean_out=str(clean),
        rejects_out=str(rejects),
    )
    s = p.samples
    physical_lines = len(data.split(b"\n")) - (1 if data.endswith(b"\n") else 0) if data else 0
    assert s.read + s.blank == physical_lines
    assert s.read == s.kept + sum(s.dropped.values())
    kept_lines = clean.read_text(encoding="utf-8").splitlines()
    rejected = [json.loads(r) for r in rejects.read_text(encoding="utf-8").splitlines()]
    assert len(kept_lines) == s.kept and len(rejected) == sum(s.dropped.values())
    assert all(r["reason"] in s.dropped and r["source"] == str(src) for r in rejected)
    assert len({r["line"] for r in rejected}) == len(rejected)
