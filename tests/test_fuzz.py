"""Arbitrary input never makes lenprof fail badly: every line lands somewhere (kept, dropped or
blank), every exit code is 0, 1 or 2 with no traceback, and every output is complete or untouched."""

from __future__ import annotations

import gzip
import json
from pathlib import Path

import pyarrow.parquet as pq
import pytest
from click.testing import CliRunner
from conftest import EXAMPLES
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from lenprof import scan
from lenprof.cli import main
from lenprof.rows.layouts import LayoutError

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
    try:
        p = scan(
            str(src),
            tokenizer=tok,
            shard_bytes=shard_bytes,
            clean_out=str(clean),
            rejects_out=str(rejects),
        )
    except LayoutError:  # refused only when objects were read and none has query and pos
        objects = [o for o in map(_object, data.split(b"\n")) if isinstance(o, dict)]
        assert objects and not any("query" in o and "pos" in o for o in objects)
        assert not clean.exists() and not rejects.exists()
        return
    s = p.samples
    physical_lines = len(data.split(b"\n")) - (1 if data.endswith(b"\n") else 0) if data else 0
    assert s.read + s.blank == physical_lines
    assert s.read == s.kept + sum(s.dropped.values())
    kept_lines = clean.read_text(encoding="utf-8").split("\n")[:-1]
    rejected = [json.loads(r) for r in rejects.read_text(encoding="utf-8").split("\n")[:-1]]
    assert len(kept_lines) == s.kept and len(rejected) == sum(s.dropped.values())
    assert all(r["reason"] in s.dropped and r["source"] == str(src) for r in rejected)
    assert len({r["line"] for r in rejected}) == len(rejected)


def _object(line: bytes):
    try:
        return json.loads(line)
    except ValueError:
        return None


# --- the whole command line, on mutated real rows and random JSON values -------------------------------

REAL = [
    line
    for line in (EXAMPLES / "msmarco.jsonl").read_bytes().splitlines()
    + (EXAMPLES / "dirty.jsonl").read_bytes().splitlines()
    if line
]
json_value = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**70), max_value=2**70)
    | st.floats()
    | st.text(max_size=12),
    lambda inner: (
        st.lists(inner, max_size=4)
        | st.dictionaries(
            st.sampled_from(["query", "pos", "neg", "prompt", "pos_scores", "x", "\ud800"])
            | st.text(max_size=5),
            inner,
            max_size=5,
        )
    ),
    max_leaves=12,
)


@st.composite
def mutated_line(draw) -> bytes:
    kind = draw(st.integers(0, 2))
    if kind == 0:  # a real row with bytes flipped, cut or inserted
        data = bytearray(draw(st.sampled_from(REAL)))
        for _ in range(draw(st.integers(0, 4))):
            i = draw(st.integers(0, max(0, len(data) - 1)))
            op = draw(st.integers(0, 2))
            if op == 0 and data:
                data[i] = draw(st.integers(0, 255))
            elif op == 1:
                del data[i : i + draw(st.integers(1, 20))]
            else:
                data[i:i] = draw(st.binary(min_size=1, max_size=8))
        return bytes(data).replace(b"\n", b" ")
    if kind == 1:  # a random JSON value (NaN, huge ints and lone surrogates included)
        return json.dumps(draw(json_value), allow_nan=True).encode("utf-8", "surrogatepass")
    row = {"query": draw(json_value), "pos": draw(json_value), "neg": draw(json_value)}
    return json.dumps(row, allow_nan=True).encode("utf-8", "surrogatepass")


OUTS = {"--clean-out": "clean", "--rejects": "rejects.jsonl", "--out": "profile.json"}


def check_run(result, folder: Path, old: dict[str, bytes]) -> None:
    assert result.exception is None or isinstance(result.exception, SystemExit), result.exception
    assert result.exit_code in (0, 1, 2), result.output
    assert "Traceback" not in result.stderr
    if result.exit_code == 2:  # refused: every old output untouched
        assert {n: (folder / n).read_bytes() for n in old} == old
        return
    profile = json.loads((folder / "profile.json").read_text())
    s = profile["samples"]
    assert s["read"] == s["kept"] + sum(s["dropped"].values())
    clean = next(p for p in folder.iterdir() if p.name.startswith("clean"))
    if clean.suffix == ".parquet":
        kept = pq.read_table(clean).num_rows
    else:
        opened = (
            gzip.open(clean, "rt", encoding="utf-8")
            if clean.suffix == ".gz"
            else open(clean, encoding="utf-8")
        )
        with opened as fh:
            kept = len([json.loads(x) for x in fh.read().split("\n")[:-1]])  # standard JSON again
    assert kept == s["kept"]
    # JSON lines end at "\n" only (str.splitlines would also split at U+0085 and U+2028 inside a text)
    assert (folder / "rejects.jsonl").read_bytes().count(b"\n") == sum(s["dropped"].values())
    assert [p.name for p in folder.iterdir() if ".lenprof-" in p.name] == []


@settings(
    max_examples=100,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(
    lines=st.lists(mutated_line(), min_size=1, max_size=12),
    suffix=st.sampled_from([".jsonl", ".parquet", ".jsonl.gz"]),
    extra=st.sampled_from(
        [
            [],
            ["--query-instruction", "q: "],
            ["--min-neg", "0"],
            ["--train-group-size", "4"],
            ["--fields", "query=x,pos=pos"],
        ]
    ),
    shard=st.sampled_from(["0.0001", "4"]),
)
def test_no_input_makes_the_command_line_fail_badly(tmp_path_factory, lines, suffix, extra, shard):
    folder = tmp_path_factory.mktemp("cli")
    src = folder.parent / f"{folder.name}.jsonl"
    src.write_bytes(b"\n".join(lines))
    old = {"clean" + suffix: b"old", "rejects.jsonl": b"old", "profile.json": b"old"}
    for name, data in old.items():
        (folder / name).write_bytes(data)
    args = ["scan", str(src), "--shard-size", shard, "--format", "json", "-q", *extra]
    for flag, name in OUTS.items():
        args += [flag, str(folder / (name + suffix if name == "clean" else name))]
    check_run(CliRunner().invoke(main, args), folder, old)


@settings(max_examples=150, deadline=None)
@given(value=json_value, as_state=st.booleans())
def test_diagnose_never_fails_badly(tmp_path_factory, value, as_state):
    folder = tmp_path_factory.mktemp("diag")
    if as_state:
        path = folder / "trainer_state.json"
        path.write_text(
            json.dumps({"log_history": value} if isinstance(value, list) else value, allow_nan=True)
        )
    else:
        path = folder / "metrics.jsonl"
        path.write_text(
            "\n".join(json.dumps(v, allow_nan=True) for v in (value if isinstance(value, list) else [value]))
        )
    result = CliRunner().invoke(main, ["diagnose", str(path), "--candidates", "8"])
    assert result.exception is None or isinstance(result.exception, SystemExit), result.exception
    assert result.exit_code in (0, 1, 2) and "Traceback" not in result.stderr


@pytest.fixture(scope="module")
def saved(tmp_path_factory) -> bytes:
    path = tmp_path_factory.mktemp("saved") / "p.json"
    CliRunner().invoke(main, ["scan", str(EXAMPLES), "--out", str(path), "-q"], catch_exceptions=False)
    return path.read_bytes()


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.data())
def test_recommend_never_fails_badly(tmp_path_factory, saved, data):
    d = json.loads(saved)
    # replace one value somewhere in the profile by a random JSON value
    node, path = d, []
    while isinstance(node, (dict, list)) and node and data.draw(st.booleans()):
        key = data.draw(st.sampled_from(sorted(node) if isinstance(node, dict) else range(len(node))))
        path.append(key)
        node = node[key]
    if path:
        parent = d
        for key in path[:-1]:
            parent = parent[key]
        parent[path[-1]] = data.draw(json_value)
    folder = tmp_path_factory.mktemp("rec")
    (folder / "p.json").write_text(json.dumps(d, allow_nan=True))
    result = CliRunner().invoke(
        main, ["recommend", str(folder / "p.json"), "--format", "json", "--report", str(folder / "r.html")]
    )
    assert result.exception is None or isinstance(result.exception, SystemExit), result.exception
    assert result.exit_code in (0, 2) and "Traceback" not in result.stderr
    assert (folder / "r.html").exists() == (result.exit_code == 0)
