"""The Ray engine against the local engine: same numbers, cleaned rows, rejects and examples.

`make test` installs the ray extra, so a missing Ray fails here rather than skipping.
"""

from __future__ import annotations

import pyarrow.json as pj
import pyarrow.parquet as pq
import pytest
import ray
from conftest import EXAMPLES

from lenprof import ScanOptions, scan
from lenprof.engines.ray import RUNTIME_ENV, scan_ray


@pytest.fixture(scope="module")
def local_ray():
    ray.init(num_cpus=2, runtime_env=RUNTIME_ENV, include_dashboard=False, log_to_driver=False)
    yield
    ray.shutdown()


def outcome(profile, clean, rejects) -> tuple:
    d = profile.to_dict()
    rows = pq.read_table(clean).to_pylist() if clean.suffix == ".parquet" else clean.read_bytes()
    return (
        {k: d[k] for k in ("inputs", "samples", "fields", "recommendation", "examples")},
        rows,
        rejects.read_bytes(),
    )


@pytest.mark.parametrize("suffix", [".jsonl", ".parquet"])
def test_ray_engine_matches_local(local_ray, tok, corpora, tmp_path, suffix):
    # msmarco.jsonl twice: duplicates across shards and a file given twice
    paths = [
        str(corpora),
        str(EXAMPLES / "dirty.jsonl"),
        str(corpora / "embedder" / "retrieval" / "msmarco.jsonl"),
    ]
    options = ScanOptions(batch_size=4)
    out = {}
    for engine in ("local", "ray"):
        clean, rejects = tmp_path / f"{engine}{suffix}", tmp_path / f"{engine}.rejects.jsonl"
        if engine == "local":
            p = scan(paths, options, tokenizer=tok, clean_out=str(clean), rejects_out=str(rejects), workers=1)
        else:  # 20 KB shards: nq.jsonl (640 KB) alone is cut into ~30
            p = scan_ray(
                paths,
                options,
                tokenizer=tok,
                clean_out=str(clean),
                rejects_out=str(rejects),
                shard_bytes=20_000,
            )
            assert p.run["shards"] > 40
        out[engine] = outcome(p, clean, rejects)
    assert out["ray"] == out["local"]
    assert out["local"][0]["samples"]["dropped"]["duplicate_row"] >= 10


def test_ray_engine_reads_parquet_row_groups(local_ray, tok, corpora, tmp_path):
    src = tmp_path / "nq.parquet"
    pq.write_table(pj.read_json(corpora / "embedder" / "retrieval" / "nq.jsonl"), src, row_group_size=3)
    rejects = {e: tmp_path / f"{e}.jsonl" for e in ("local", "ray")}
    local = scan(str(src), tokenizer=tok, workers=1, rejects_out=str(rejects["local"]))
    distributed = scan_ray(str(src), tokenizer=tok, shard_bytes=1, rejects_out=str(rejects["ray"]))
    assert distributed.run["shards"] == 4  # 10 rows in row groups of 3
    assert distributed.to_dict()["fields"] == local.to_dict()["fields"]
    assert distributed.samples == local.samples and distributed.inputs == local.inputs


def test_ray_engine_from_the_command_line(tmp_path):
    from click.testing import CliRunner

    from lenprof.cli import main

    args = ["scan", str(EXAMPLES), "--format", "args", "-q"]
    local = CliRunner().invoke(main, args, catch_exceptions=False)
    # The engine joins a Ray already running in this process, else starts and stops its own.
    distributed = CliRunner().invoke(
        main, [*args, "--engine", "ray", "--shard-size", "1"], catch_exceptions=False
    )
    assert distributed.exit_code == local.exit_code == 0
    assert distributed.stdout == local.stdout == "--query_max_len 40 --passage_max_len 152\n"
