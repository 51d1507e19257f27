"""The Ray engine against the local engine: the same bytes out (profile, cleaned rows, rejects).

`make test` installs the ray extra, so a missing Ray fails here rather than skipping.
"""

from __future__ import annotations

import json
import os

import pyarrow.json as pj
import pyarrow.parquet as pq
import pytest
import ray
from conftest import EXAMPLES

from lenprof import scan
from lenprof.engines.ray import RUNTIME_ENV, RayEngine


@pytest.fixture(scope="module")
def local_ray():
    ray.init(num_cpus=2, runtime_env=RUNTIME_ENV, include_dashboard=False, log_to_driver=False)
    yield
    ray.shutdown()


def outcome(folder) -> tuple:
    profile = json.loads((folder / "profile.json").read_text())
    profile.pop("run")
    profile["outputs"] = {k: os.path.basename(v) for k, v in profile["outputs"].items()}
    clean = next(folder.glob("clean.*"))
    rows = pq.read_table(clean).to_pylist() if clean.suffix == ".parquet" else clean.read_bytes()
    return profile, rows, (folder / "rejects.jsonl").read_bytes()


@pytest.mark.parametrize("suffix", [".jsonl", ".parquet"])
def test_ray_engine_matches_local(local_ray, tok, corpora, tmp_path, suffix):
    # msmarco.jsonl twice: duplicates across shards and a file given twice
    paths = [
        str(corpora),
        str(EXAMPLES / "dirty.jsonl"),
        str(corpora / "embedder" / "retrieval" / "msmarco.jsonl"),
    ]
    out = {}
    for engine in ("local", "ray"):
        folder = tmp_path / engine
        outputs = {
            "clean_out": str(folder / f"clean{suffix}"),
            "rejects_out": str(folder / "rejects.jsonl"),
            "profile_out": str(folder / "profile.json"),
        }
        if engine == "local":
            p = scan(paths, tokenizer=tok, workers=1, **outputs)
        else:  # 20 KB shards: nq.jsonl (640 KB) alone is cut into ~30
            p = scan(paths, tokenizer=tok, engine=RayEngine(), shard_bytes=20_000, **outputs)
            assert p.run["shards"] > 40 and p.run["engine"] == "ray" and p.run["workers"] == 2
        out[engine] = outcome(folder)
    assert out["ray"] == out["local"]
    assert out["local"][0]["samples"]["dropped"]["duplicate_row"] >= 10


def test_ray_engine_reads_parquet_and_compressed_pieces(local_ray, tok, corpora, tmp_path):
    src = tmp_path / "nq.parquet"
    pq.write_table(pj.read_json(corpora / "embedder" / "retrieval" / "nq.jsonl"), src, row_group_size=3)
    local = scan(str(src), tokenizer=tok, workers=1)
    distributed = scan(str(src), tokenizer=tok, engine=RayEngine(), shard_bytes=1)
    assert distributed.run["shards"] == 10  # one row each
    assert distributed.to_dict()["fields"] == local.to_dict()["fields"]
    assert distributed.samples == local.samples and distributed.inputs == local.inputs


def test_ray_engine_from_the_command_line(tmp_path):
    from click.testing import CliRunner

    from lenprof.cli import main

    args = ["scan", str(EXAMPLES), "--format", "args", "-q"]
    local = CliRunner().invoke(main, args, catch_exceptions=False)
    # The engine joins a Ray already running in this process, else starts and stops its own.
    distributed = CliRunner().invoke(
        main, [*args, "--engine", "ray", "--shard-size", "0.001"], catch_exceptions=False
    )
    assert distributed.exit_code == local.exit_code == 0
    assert distributed.stdout == local.stdout == "--query_max_len 40 --passage_max_len 152\n"
