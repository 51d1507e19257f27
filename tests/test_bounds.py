"""Memory, processes and open files stay bounded whatever the input (issue 20, findings 5-7).

- A row over ``--max-line-bytes`` (a Parquet row with a huge cell, a huge JSON-array element)
  is dropped as ``line_too_long`` and the rest kept, and the row is never made Python strings
  or tokenized: a subprocess's peak memory stays far below what the text would cost.
- A text over ``--max-text-chars`` is dropped as ``text_too_long``, in every input kind.
- ``--workers`` is capped at the shards and ``PER_CORE`` per core.
- ``--clean-out DIR/`` vets its outputs in linear time and holds a few files open at a time.
"""

from __future__ import annotations

import gzip
import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from click.testing import CliRunner

from lenprof.api import scan
from lenprof.cli import main
from lenprof.engine import local
from lenprof.io import transaction as outputs
from lenprof.rows.options import ScanOptions


def rows(n: int, tag: str = "") -> list[dict]:
    return [{"query": f"query {tag}{i}", "pos": [f"passage {i}"], "neg": [f"negative {i}"]} for i in range(n)]


def rejects_of(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines()]


def peak_rss_mb(args: list[str]) -> tuple[subprocess.CompletedProcess, float]:
    """Run ``args`` in a fresh process; its peak resident memory in MiB (ru_maxrss is in KiB)."""
    script = textwrap.dedent(
        """
        import resource, subprocess, sys
        done = subprocess.run(sys.argv[1:], capture_output=True, text=True)
        sys.stdout.write(done.stdout)
        sys.stderr.write(done.stderr)
        print(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss, file=sys.stderr)
        sys.exit(done.returncode)
        """
    )
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    done = subprocess.run([sys.executable, "-c", script, *args], capture_output=True, text=True, env=env)
    return done, int(done.stderr.strip().splitlines()[-1]) / 1024


def lenprof(*args: str) -> list[str]:
    return [sys.executable, "-m", "lenprof", "scan", *args]


# --- 5. a row or a text too large ----------------------------------------------------------------


def test_a_parquet_cell_of_40_mib_is_dropped_without_being_read_into_python(tmp_path):
    pa = pytest.importorskip("pyarrow")
    import pyarrow.parquet as pq

    table = rows(300)
    table[150]["pos"] = ["x" * (40 << 20)]  # compresses to a few KB; 2.6 GB in the tokenizer
    path = tmp_path / "cell.parquet"
    pq.write_table(pa.Table.from_pylist(table), path)
    rejects = tmp_path / "rejects.jsonl"
    done, peak = peak_rss_mb(
        lenprof(
            str(path), "--max-line-bytes", str(1 << 20), "--rejects", str(rejects), "--format", "json", "-q"
        )
    )
    assert done.returncode == 0, done.stderr
    samples = json.loads(done.stdout)["samples"]
    assert (samples["read"], samples["kept"], samples["dropped"]) == (300, 299, {"line_too_long": 1})
    (reject,) = rejects_of(rejects)
    assert (reject["line"], reject["reason"]) == (151, "line_too_long")
    assert reject["detail"].startswith(f"{(40 << 20) + len('query 150') + len('negative 150'):,} bytes, over")
    assert json.loads(reject["raw"])["query"] == "query 150"  # the row's small cells, to find it by
    # The cell costs Arrow a few times its size to decode; as Python strings and tokens it took
    # 2.8 GB before this cap.
    assert peak < 700, f"peak RSS {peak:.0f} MiB"


def test_a_json_gz_array_with_a_huge_element_streams_and_drops_it(tmp_path):
    elements = [json.dumps(r).encode() for r in rows(300)]
    # 70 MiB: over the size an array is read whole, in a .gz of 70 KB
    elements[100] = json.dumps({"query": "huge", "pos": ["y" * (70 << 20)], "neg": ["n"]}).encode()
    path = tmp_path / "rows.json.gz"
    with gzip.open(path, "wb") as fh:
        fh.write(b"[\n" + b",\n".join(elements) + b"\n]\n")
    rejects = tmp_path / "rejects.jsonl"
    clean = tmp_path / "clean.jsonl"
    done, peak = peak_rss_mb(
        lenprof(str(path), "--rejects", str(rejects), "--clean-out", str(clean), "--format", "json", "-q")
    )
    assert done.returncode == 0, done.stderr
    samples = json.loads(done.stdout)["samples"]
    assert (samples["read"], samples["kept"], samples["dropped"]) == (300, 299, {"line_too_long": 1})
    (reject,) = rejects_of(rejects)
    assert (reject["line"], reject["reason"]) == (101, "line_too_long")
    assert reject["raw"].startswith('{"query": "huge", "pos": ["yyy')
    kept = [json.loads(line) for line in clean.read_text().splitlines()]
    assert kept == [r for i, r in enumerate(rows(300)) if i != 100]
    assert peak < 600, f"peak RSS {peak:.0f} MiB"  # the whole array is 70 MiB; one text 4.5 GB


def test_a_json_array_element_over_the_line_cap_is_dropped_also_when_read_whole(tmp_path, tok):
    elements = [json.dumps(r) for r in rows(5)]
    elements[3] = json.dumps({"query": "long", "pos": ["z" * 5000], "neg": ["n"]})
    path = tmp_path / "rows.json"
    path.write_text("[" + ",\n".join(elements) + "]")
    rejects = tmp_path / "rejects.jsonl"
    p = scan(str(path), ScanOptions(max_line_bytes=4096), tokenizer=tok, rejects_out=str(rejects))
    assert (p.samples.read, p.samples.kept, p.samples.dropped) == (5, 4, {"line_too_long": 1})
    assert [(r["line"], r["reason"]) for r in rejects_of(rejects)] == [(4, "line_too_long")]


def test_a_text_over_the_text_cap_is_dropped_in_every_input_kind(tmp_path, tok):
    """A JSONL line under the line cap but with a text over the text cap; the same row in a
    .gz, a JSON array, a CSV and a Parquet file."""
    pa = pytest.importorskip("pyarrow")
    import pyarrow.parquet as pq

    data = tmp_path / "data"  # the rejects go outside the scanned folder
    data.mkdir()

    def table(tag: str) -> list[dict]:
        out = rows(6, tag)
        out[2]["neg"] = ["short", "w" * 3000]
        return out

    def jsonl(tag: str) -> str:
        return "".join(json.dumps(r) + "\n" for r in table(tag))

    (data / "a.jsonl").write_text(jsonl("a"))
    (data / "b.jsonl.gz").write_bytes(gzip.compress(jsonl("b").encode()))
    (data / "c.json").write_text(json.dumps(table("c")))
    flat = [{"query": r["query"], "pos": r["pos"][0], "neg": r["neg"][-1]} for r in table("d")]
    (data / "d.csv").write_text(
        "query,pos,neg\n" + "".join(f"{r['query']},{r['pos']},{r['neg']}\n" for r in flat)
    )
    pq.write_table(pa.Table.from_pylist(table("e")), data / "e.parquet")
    rejects = tmp_path / "out" / "rejects.jsonl"
    p = scan(str(data), ScanOptions(max_text_chars=2000), tokenizer=tok, rejects_out=str(rejects))
    assert (p.samples.read, p.samples.kept, p.samples.dropped) == (30, 25, {"text_too_long": 5})
    got = [(Path(r["source"]).name, r["line"], r["detail"]) for r in rejects_of(rejects)]
    detail = "'neg'[{}] has 3,000 characters, over --max-text-chars 2,000"
    assert got == [
        ("a.jsonl", 3, detail.format(1)),
        ("b.jsonl.gz", 3, detail.format(1)),
        ("c.json", 3, detail.format(1)),
        ("d.csv", 4, detail.format(0)),  # the header is line 1; one negative per CSV row
        ("e.parquet", 3, detail.format(1)),
    ]
    # the default cap (1 Mi characters) keeps them all, as before
    assert scan(str(data), tokenizer=tok).samples.kept == 30


def test_max_text_chars_from_the_command_line_and_the_environment(tmp_path):
    table = rows(4)
    table[1]["query"] = "q" * 600
    path = tmp_path / "a.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in table))
    runner = CliRunner()
    flag = runner.invoke(main, ["scan", str(path), "--max-text-chars", "500", "--format", "json", "-q"])
    env = runner.invoke(
        main, ["scan", str(path), "--format", "json", "-q"], env={"LENPROF_MAX_TEXT_CHARS": "500"}
    )
    for result in (flag, env):
        assert result.exit_code == 0, result.output
        d = json.loads(result.stdout)
        assert d["samples"]["dropped"] == {"text_too_long": 1}
        assert d["settings"]["max_text_chars"] == 500


# --- 6. --workers ---------------------------------------------------------------------------------


def test_a_million_workers_start_no_more_than_the_shards(tmp_path, monkeypatch):
    path = tmp_path / "a.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in rows(300)))
    shard_bytes = 4096
    started = []
    real = local.ProcessPool

    def pool(setup, workers, *loaded):
        started.append(workers)
        return real(setup, workers, *loaded)

    monkeypatch.setattr(local, "ProcessPool", pool)
    args = [
        "scan",
        str(path),
        "--workers",
        "1000000",
        "--shard-size",
        str(shard_bytes / (1 << 20)),
        "--format",
        "json",
    ]
    result = CliRunner().invoke(main, args)
    assert result.exit_code == 0, result.output
    d = json.loads(result.stdout)
    assert d["samples"]["kept"] == 300
    cap = min(-(-path.stat().st_size // shard_bytes), local.PER_CORE * local.default_workers())
    assert d["run"]["workers"] == cap and started == [cap]
    assert f"--workers 1000000 lowered to {cap}: no more than the shards, or 4 per core" in result.stderr
    # a small file, one shard: no worker process at all
    started.clear()
    result = CliRunner().invoke(main, ["scan", str(path), "--workers", "1000000", "--format", "json"])
    assert result.exit_code == 0 and json.loads(result.stdout)["run"]["workers"] == 1


def test_workers_are_capped_at_the_shards_and_a_few_per_core():
    assert local.capped(1_000_000, None, 2) == 8
    assert local.capped(1_000_000, 3, 2) == 3
    assert local.capped(5, 100, 2) == 5
    assert local.capped(5, 100, 1) == 4


# --- 7. many output files ------------------------------------------------------------------------


def test_vetting_many_outputs_is_linear(tmp_path, monkeypatch):
    """Each output path is looked at a fixed number of times, not once per other path."""
    calls = {"n": 0}
    real_stat, real_lstat = os.stat, os.lstat

    def counted(real):
        def call(*args, **kwargs):
            calls["n"] += 1
            return real(*args, **kwargs)

        return call

    monkeypatch.setattr(outputs.os, "stat", counted(real_stat))
    monkeypatch.setattr(outputs.os, "lstat", counted(real_lstat))
    monkeypatch.setattr(outputs.os.path, "samefile", counted(os.path.samefile))
    per = []
    for n in (100, 400):
        inputs = [str(tmp_path / f"in{n}" / f"f{i}.jsonl") for i in range(n)]
        targets = {f"clean {i}": str(tmp_path / f"out{n}" / f"f{i}.jsonl") for i in range(n)}
        calls["n"] = 0
        outputs.vet(targets, inputs, row_outputs=list(targets))
        per.append(calls["n"] / n)
    assert per[1] <= per[0] + 1, per  # pairwise vetting made 4x more calls per path


def test_a_mirror_of_3000_files_holds_few_files_open(tmp_path):
    """Under ``ulimit -n 256``: every cleaned file is written, and right."""
    folder = tmp_path / "in"
    folder.mkdir()
    expected = {}
    for i in range(3000):
        line = (json.dumps({"query": f"q{i}", "pos": [f"p{i}"], "neg": [f"n{i}"]}) + "\n").encode()
        name = f"f{i:04d}.jsonl" + (".gz" if i % 3 == 0 else "")  # a third gzipped, mirrored gzipped
        (folder / name).write_bytes(gzip.compress(line) if i % 3 == 0 else line)
        expected[name] = line
    out = tmp_path / "out"
    script = textwrap.dedent(
        f"""
        import resource
        soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
        resource.setrlimit(resource.RLIMIT_NOFILE, (256, hard))
        from lenprof.api import scan
        p = scan({str(folder)!r}, clean_out={str(out) + "/"!r}, workers=1)
        print(p.samples.read, p.samples.kept)
        """
    )
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, env=env)
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.split() == ["3000", "3000"]
    assert sorted(p.name for p in out.iterdir()) == sorted(expected)
    for name, line in expected.items():
        data = (out / name).read_bytes()
        assert (gzip.decompress(data) if name.endswith(".gz") else data) == line, name
