"""The Ray engine against the local engine: the same bytes out (profile, cleaned rows, rejects).

`make test` installs the ray extra, so a missing Ray fails here rather than skipping.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pyarrow.json as pj
import pyarrow.parquet as pq
import pytest
import ray
import test_fuzz_kinds as fuzz_kinds
from conftest import EXAMPLES
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from test_fuzz import mutated_line

from lenprof import scan
from lenprof.engine.ray import RUNTIME_ENV, RayEngine
from lenprof.rows.layouts import LayoutError
from lenprof.rows.options import ScanOptions


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


def both_engines(src: Path, tok, folder: Path, refused: type[Exception]) -> str:
    """Scan ``src`` with each engine into ``folder/local`` and ``folder/ray`` (64-byte shards):
    "same" when both write the same bytes or are refused alike (``refused``: before either starts)."""
    out = {}
    for name, engine in (("local", None), ("ray", RayEngine())):
        (folder / name).mkdir()
        outputs = {
            k: str(folder / name / f)
            for k, f in (
                ("clean_out", "clean.jsonl"),
                ("rejects_out", "rejects.jsonl"),
                ("profile_out", "profile.json"),
            )
        }
        try:
            scan(str(src), tokenizer=tok, engine=engine, workers=1, shard_bytes=64, **outputs)
            out[name] = outcome(folder / name)
        except refused as exc:
            out[name] = f"{type(exc).__name__}: {exc}"
    return "same" if out["ray"] == out["local"] else f"different: {out}"


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
            assert p.run.shards > 40 and p.run.engine == "ray" and p.run.workers == 2
        out[engine] = outcome(folder)
    assert out["ray"] == out["local"]
    assert out["local"][0]["samples"]["dropped"]["duplicate_row"] >= 10


def test_ray_engine_reads_parquet_and_compressed_pieces(local_ray, tok, corpora, tmp_path):
    src = tmp_path / "nq.parquet"
    pq.write_table(pj.read_json(corpora / "embedder" / "retrieval" / "nq.jsonl"), src, row_group_size=3)
    local = scan(str(src), tokenizer=tok, workers=1)
    distributed = scan(str(src), tokenizer=tok, engine=RayEngine(), shard_bytes=1)
    assert distributed.run.shards == 10  # one row each
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
    assert distributed.stdout == local.stdout == "--query_max_len 56 --passage_max_len 152\n"


@settings(
    max_examples=8,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(lines=st.lists(mutated_line(), min_size=1, max_size=15))
def test_ray_engine_on_mutated_rows_matches_local(local_ray, tok, tmp_path_factory, lines):
    """The property test's inputs, on a sample: Ray gives the same bytes as the local engine."""
    folder = tmp_path_factory.mktemp("rayfuzz")
    src = folder / "in.jsonl"
    src.write_bytes(b"\n".join(lines))
    assert both_engines(src, tok, folder, LayoutError) == "same"


def test_a_ray_worker_error_is_one_line_without_traceback(local_ray, tok, tmp_path):
    from lenprof import InputError
    from lenprof.engine.plan import Outputs, Plan
    from lenprof.engine.ray import RayActors
    from lenprof.io.files import InputFile
    from lenprof.io.records import Shard
    from lenprof.rows.options import ScanOptions

    plan = Plan([InputFile(str(tmp_path / "gone.jsonl"), "jsonl")], ScanOptions(), tok, Outputs())
    actors = RayActors(plan.setup(), 1)
    try:
        actors.submit(0, "check", 0, Shard(0, str(tmp_path / "gone.jsonl"), 0, 10))
        with pytest.raises(InputError) as err:
            actors.result()
    finally:
        actors.close()
    assert str(err.value) == f"{tmp_path / 'gone.jsonl'}: cannot be read (No such file or directory)"


def test_a_dead_ray_worker_is_placed_by_the_node_it_named_at_start(local_ray, tok, tmp_path):
    """An actor says its node as it starts, and the driver keeps the answer: an actor whose node
    is gone is named by it even where Ray's message does not say where (an actor "unavailable"
    after its connection was reset, as a killed node gives)."""
    from lenprof.engine.plan import Outputs, Plan
    from lenprof.engine.pool import WorkerFailed
    from lenprof.engine.ray import RayActors
    from lenprof.io.files import InputFile
    from lenprof.io.records import Shard

    path = tmp_path / "rows.jsonl"
    path.write_bytes((EXAMPLES / "msmarco.jsonl").read_bytes())
    plan = Plan([InputFile(str(path), "jsonl")], ScanOptions(), tok, Outputs())
    actors = RayActors(plan.setup(), 1)
    here = ray.util.get_node_ip_address()
    try:
        actors.submit(0, "check", 0, Shard(0, str(path), 0, path.stat().st_size))
        assert actors.result()[0] == "check"
        ray.kill(actors._actors[0], no_restart=True)
        unavailable = RuntimeError("The actor 9d is unavailable: RpcError: Connection reset by peer")
        assert actors._node(0, unavailable) == here
        actors.submit(0, "check", 0, Shard(0, str(path), 0, path.stat().st_size))
        with pytest.raises(WorkerFailed) as err:
            actors.result()
    finally:
        actors.close()
    assert str(err.value).startswith(f"a Ray worker died on {here}: "), str(err.value)


def descendants(pid: int) -> list[int]:
    from lenprof.engine.reaper import descendants

    return list(descendants(pid))


@pytest.mark.slow
def test_ray_from_a_real_process_is_quiet_and_leaves_nothing_behind(tmp_path):
    """-q means nothing on stderr, Ray's own lines included; and a driver killed mid-scan does
    not leave Ray's processes running."""
    env = {**os.environ, "LENPROF_DEBUG": ""}
    proc = subprocess.run(
        # the tokenizer named: the default one is said even with -q
        [sys.executable, "-m", "lenprof", "scan", str(EXAMPLES), "--engine", "ray", "-q", "--format", "args",
         "--tokenizer", "sentence-transformers/all-MiniLM-L6-v2"],
        capture_output=True, text=True, env=env, timeout=300,
    )  # fmt: skip
    assert (proc.returncode, proc.stdout, proc.stderr) == (
        0,
        "--query_max_len 56 --passage_max_len 152\n",
        "",
    )

    big = tmp_path / "big.jsonl"
    rows = (EXAMPLES / "msmarco.jsonl").read_text().splitlines()
    with open(big, "w") as fh:
        for i in range(3000):
            row = json.loads(rows[i % len(rows)])
            row["query"] = f"{row['query']} {i}"
            fh.write(json.dumps(row) + "\n")
    driver = subprocess.Popen(
        [sys.executable, "-m", "lenprof", "scan", str(big), "--engine", "ray", "--shard-size", "0.01", "-q"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env,
    )  # fmt: skip
    deadline = time.monotonic() + 120
    started: list[int] = []
    while time.monotonic() < deadline and driver.poll() is None:
        started = descendants(driver.pid)
        if any(
            b"raylet" in Path(f"/proc/{p}/cmdline").read_bytes()
            for p in started
            if Path(f"/proc/{p}").exists()
        ):
            break
        time.sleep(0.2)
    assert driver.poll() is None, "the scan ended before Ray was seen running"
    time.sleep(1.0)
    started = descendants(driver.pid)
    driver.kill()
    driver.wait()
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline and any(Path(f"/proc/{p}").exists() for p in started):
        time.sleep(0.5)
    alive = [
        p
        for p in started
        if Path(f"/proc/{p}").exists()
        and b"Z" not in Path(f"/proc/{p}/stat").read_bytes().split(b")")[-1][:3]
    ]
    what = {
        p: (Path(f"/proc/{p}/cmdline").read_bytes()[:100], Path(f"/proc/{p}/stat").read_bytes()[:80])
        for p in alive
        if Path(f"/proc/{p}").exists()
    }
    assert alive == [], f"Ray's processes outlived the killed driver: {what}"


@settings(
    max_examples=8,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(
    kind=st.sampled_from(["jsonl.gz", "jsonl.zst", "json", "csv", "tsv", "parquet"]),
    lines=st.lists(mutated_line(), max_size=6),
    rows=st.lists(fuzz_kinds.row, min_size=1, max_size=8),
)
def test_ray_engine_matches_local_on_every_input_kind_with_added_tokens(
    local_ray, tmp_path_factory, kind, lines, rows
):
    """Every input kind, rows that spell added tokens every way: Ray gives the local engine's bytes."""
    from lenprof import load_tokenizer

    folder = tmp_path_factory.mktemp("raykinds")
    tok = load_tokenizer(str(fuzz_kinds.save_added_tokenizer(folder)))
    lines = lines + [json.dumps(r, ensure_ascii=False).encode() for r in rows]
    src = fuzz_kinds.write(kind, folder / f"in.{kind}", lines, rows)
    assert both_engines(src, tok, folder, Exception) == "same"
