"""Parquet read by the workers, a span of row groups each (issue 23): the same results whatever
the file's row-group layout, the worker count or the shard size; the same as the JSONL of the
same rows; the same as the driver's own reading of the file before (records made from its record
batches, as ``datasets`` pieces still are). A slice read from the wrong row, or a span that skips
or repeats one, moves every later row: its line in the rejects and the examples, the rows found
duplicate, and the cleaned rows.
"""

from __future__ import annotations

import json
import random
from itertools import pairwise
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from click.testing import CliRunner

from lenprof import InputError, ScanOptions, scan
from lenprof.cli import main
from lenprof.engine.plan import Plan
from lenprof.io.parquet import capped_rows, row_spans
from lenprof.io.records import Shard

WORDS = (
    "the of and a to in is you that it he was for on are as with his they at be this have from or "
    "one had by word but not what all were we when your can said there use an each which she do how "
    "their if will up other about out many then them these so some her would make like him into time "
    "has look two more write go see number no way could people my than first water been call who"
).split()
N = 10_500  # rows: more than one 10k-row group
OPTIONS = ScanOptions(max_line_bytes=16_384)


def corpus(n: int = N) -> list[dict]:
    """Rows with every fate: kept, repaired, dropped, duplicates of earlier rows, a control
    character, and one row over ``--max-line-bytes``."""
    r = random.Random(23)

    def text(words: int) -> str:
        return " ".join(r.choice(WORDS) for _ in range(words))

    rows: list[dict] = []
    for i in range(n):
        row = {
            "query": f"{text(4)} {i}",
            "pos": [text(12)],
            "neg": [text(10) for _ in range(r.randint(1, 4))],
        }
        if i % 97 == 50:  # the query and positives of a row 40 earlier: a duplicate
            row = {**row, "query": rows[i - 40]["query"], "pos": rows[i - 40]["pos"]}
        elif i % 211 == 7:  # repaired: a repeated, an empty and a positive negative
            row["neg"] = [row["neg"][0], row["neg"][0], " ", row["pos"][0]]
        elif i % 503 == 11:
            row["query"] = " "  # empty_query
        elif i % 509 == 13:
            row["pos"] = []  # empty_pos
        elif i % 401 == 19:
            row["query"] = row["pos"][0]  # query_equals_pos
        elif i % 601 == 17:
            row["query"] += " \x07"  # a control character: kept, with a warning
        rows.append(row)
    rows[n // 2]["neg"].append("x" * 30_000)  # over --max-line-bytes
    return rows


def write_groups(path: Path, rows: list[dict], sizes: list[int]) -> Path:
    """``rows`` in row groups of ``sizes`` (0: an empty row group), then the rest in one."""
    table = pa.Table.from_pylist(rows)
    with pq.ParquetWriter(path, table.schema) as writer:
        at = 0
        for size in sizes:
            writer.write_table(table.slice(at, size), row_group_size=max(size, 1))
            at += size
        if at < len(rows):
            writer.write_table(table.slice(at), row_group_size=len(rows))
    return path


LAYOUTS = {  # the row groups' sizes
    "1 row a group": [1] * N,
    "7 rows a group": [7] * (N // 7),
    "10k rows a group": [10_000],
    "one group": [],
    "an empty group, uneven ones": [3, 0, 500, 1, 2_000, 0, 4_996, 1],
}


@pytest.fixture(scope="module")
def rows() -> list[dict]:
    return pa.Table.from_pylist(corpus()).to_pylist()  # as Parquet gives them back (no key missing)


@pytest.fixture(scope="module")
def files(rows, tmp_path_factory) -> dict[str, Path]:
    folder = tmp_path_factory.mktemp("layouts")
    made = {
        name: write_groups(folder / f"{i}.parquet", rows, sizes)
        for i, (name, sizes) in enumerate(LAYOUTS.items())
    }
    made["jsonl"] = folder / "rows.jsonl"
    made["jsonl"].write_text("".join(json.dumps(row) + "\n" for row in rows))
    return made


def outcome(tok, path: Path, out: Path, **kwargs) -> tuple:
    """The profile (less how the run went, and the input's name and format), the cleaned rows and
    the rejects, each row's source named alike. A row too long is measured and shown as it was
    read (a JSON line's bytes, a Parquet row's cells): only where it is and why are compared."""
    out.mkdir()
    outputs = {"clean_out": str(out / "clean.jsonl"), "rejects_out": str(out / "rejects.jsonl"), "profile_out": str(out / "profile.json")}  # fmt: skip
    scan(str(path), OPTIONS, tokenizer=tok, **outputs, **kwargs)
    profile = json.loads((out / "profile.json").read_text().replace(json.dumps(str(path))[1:-1], "IN"))
    profile.pop("run")
    profile["outputs"] = {k: Path(v).name for k, v in profile["outputs"].items()}
    for item in profile["inputs"]:
        item.pop("format")
    for example in profile["examples"]["line_too_long"]:
        example.pop("detail")
    rejects = [json.loads(line) for line in (out / "rejects.jsonl").read_text().splitlines()]
    for i, reject in enumerate(rejects):
        reject["source"] = "IN"
        if reject["reason"] == "line_too_long":
            rejects[i] = {k: reject[k] for k in ("source", "line", "reason")}
    return profile, (out / "clean.jsonl").read_bytes(), rejects


@pytest.fixture(scope="module")
def expected(tok, files, tmp_path_factory) -> tuple:
    return outcome(tok, files["jsonl"], tmp_path_factory.mktemp("jsonl") / "out", workers=1)


def test_the_corpus_has_every_fate(expected):
    profile = expected[0]
    assert profile["samples"]["read"] == N
    assert profile["samples"]["dropped"] == {"duplicate_row": 107, "empty_query": 21, "empty_pos": 22, "query_equals_pos": 27, "line_too_long": 1}  # fmt: skip
    assert set(profile["samples"]["repaired"]) == {"duplicate_neg", "empty_neg", "pos_in_neg"}
    assert profile["samples"]["warnings"] == {"control_chars": 18}


@pytest.mark.parametrize("layout", LAYOUTS)
@pytest.mark.parametrize("workers, shard_bytes", [(1, 4 << 20), (1, 3000)])
def test_every_layout_gives_the_jsonl_results(tok, files, expected, tmp_path, layout, workers, shard_bytes):
    got = outcome(tok, files[layout], tmp_path / "out", workers=workers, shard_bytes=shard_bytes)
    assert got == expected


@pytest.mark.slow
@pytest.mark.parametrize("layout", ["7 rows a group", "one group", "an empty group, uneven ones"])
def test_two_workers_read_slices_of_one_group_alike(tok, files, expected, tmp_path, layout):
    """Two workers take turns at the slices of a row group: each reads on from where its last
    slice stopped, passing over the other's rows."""
    for shard_bytes in (20_000, 300_000):
        got = outcome(tok, files[layout], tmp_path / str(shard_bytes), workers=2, shard_bytes=shard_bytes)
        assert got == expected, shard_bytes


def driver_read_shards(plan: Plan):
    """The shards before issue 23: the driver reads the file in record batches of about
    ``shard_bytes`` and sends their rows (records when one is too long)."""
    opts = plan.options
    for i, item in enumerate(plan.inputs):
        meta = pq.ParquetFile(item.path).metadata
        size = sum(meta.row_group(g).total_byte_size for g in range(meta.num_row_groups))
        per_batch = max(1, min(65536, plan.shard_bytes * max(meta.num_rows, 1) // max(size, 1)))
        for batch in pq.ParquetFile(item.path).iter_batches(batch_size=per_batch):
            piece = capped_rows(batch, opts.max_line_bytes, opts.line_head_bytes)
            table = not isinstance(piece, list)
            yield Shard(i, item.path, lines=None if table else piece, rows=piece if table else None)


@pytest.mark.parametrize("layout", ["7 rows a group", "one group"])
def test_the_driver_read_the_same_rows_before(tok, files, tmp_path, monkeypatch, layout):
    now = outcome(tok, files[layout], tmp_path / "now", workers=1, shard_bytes=50_000)
    monkeypatch.setattr(Plan, "shards", driver_read_shards)
    before = outcome(tok, files[layout], tmp_path / "before", workers=1, shard_bytes=50_000)
    assert now == before


def test_shards_come_from_the_footer_alone(files, tmp_path):
    """Cutting a file reads no data page: it works on a file whose pages are all zeros."""
    path = files["7 rows a group"]
    data = bytearray(path.read_bytes())
    footer = int.from_bytes(data[-8:-4], "little") + 8
    blank = tmp_path / "blank.parquet"
    blank.write_bytes(b"PAR1" + bytes(len(data) - footer - 4) + data[-footer:])
    rows, spans = row_spans(str(blank), 3000)
    spans = list(spans)
    assert rows == N and spans[0].start == 0 and spans[-1].end == N
    assert all(a.end == b.start for a, b in pairwise(spans))
    with pytest.raises(
        InputError, match=r"blank\.parquet: not a readable Parquet file after 0 rows, in row group 0 \("
    ):
        scan(str(blank), workers=1)


def test_a_corrupt_row_group_names_the_file_the_row_and_the_group(tmp_path):
    rows = corpus(400)
    path = write_groups(tmp_path / "rows.parquet", rows, [100, 100, 100, 100])
    meta = pq.ParquetFile(path).metadata
    chunk = meta.row_group(2).column(1)  # the positives of rows 201-300
    data = bytearray(path.read_bytes())
    start = chunk.dictionary_page_offset or chunk.data_page_offset
    data[start : start + chunk.total_compressed_size] = b"\xff" * chunk.total_compressed_size
    path.write_bytes(bytes(data))
    result = CliRunner().invoke(main, ["scan", str(path), "--workers", "1", "--shard-size", "0.01"])
    assert result.exit_code == 2
    assert result.stderr.startswith(
        f"Error: {path}: not a readable Parquet file after 200 rows, in row group 2 ("
    )
    assert len(result.stderr.strip().splitlines()) == 1


@pytest.mark.parametrize("workers", [1, 2])
def test_a_parquet_file_rewritten_while_workers_read_it_stops_the_scan(tok, tmp_path, workers):
    src = tmp_path / "rows.parquet"
    write_groups(src, corpus(3000), [100] * 30)
    before = src.stat().st_size
    calls = []

    def on_progress(progress):  # the first shard is merged: later ones are still to be read
        if not calls:
            write_groups(src, corpus(3000)[:1000], [1000])
        calls.append(progress)

    with pytest.raises(InputError) as caught:
        scan(str(src), tokenizer=tok, workers=workers, shard_bytes=4096, on_progress=on_progress)
    assert str(caught.value) == (
        f"{src} changed while it was being read (size {before:,} -> {src.stat().st_size:,} bytes); "
        "scan a copy that nothing writes to"
    )


def test_progress_follows_the_rows_read(tok, files):
    seen = []
    scan(
        str(files["10k rows a group"]), tokenizer=tok, workers=1, shard_bytes=200_000, on_progress=seen.append
    )
    size = files["10k rows a group"].stat().st_size
    done = [p.done for p in seen]
    assert done == sorted(done) and done[-1] == size and len(done) > 5
