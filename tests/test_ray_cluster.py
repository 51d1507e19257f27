"""A real multi-node Ray run: a cluster of two nodes on this machine (Ray's own ``Cluster``), its
inputs in the S3 test server, its outputs written back there.

The nodes start without the AWS variables, as a cluster's nodes have their own environment: what
the actors know of the endpoint and its credentials is what the driver gives them
(``engine.ray.actor_env``). Each actor reads its own byte ranges and row groups from the bucket,
and the numbers and cleaned bytes are the local engine's, read from the same files on disk. A node
killed mid-scan fails the scan with exit 2, one line, and nothing written.

Skipped without Ray or moto_server, unless ``LENPROF_REQUIRE_RAY=1`` / ``LENPROF_REQUIRE_S3=1``.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest
from conftest import REPO, absent
from test_object_storage import get, keys, lenprof, put_folder, same_numbers

from lenprof.count.tokenizer import PACKAGED

NODE = {"num_cpus": 1, "object_store_memory": 80 << 20}  # two fit in 2 cores and a few GiB


@pytest.fixture(scope="module")
def cluster():
    """A head node and one worker node, each one CPU (so two actors, one on each), in a Ray temp
    dir of their own: a ``ray.init()`` elsewhere on the machine never finds and joins them."""
    try:
        from ray.cluster_utils import Cluster
    except ImportError:
        absent("Ray is not installed (pip install 'lenprof[ray]')", "LENPROF_REQUIRE_RAY")
    temp = tempfile.mkdtemp(prefix="lpray-", dir="/tmp")  # short: Ray's socket paths live under it
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("RAY_TMPDIR", temp)  # the nodes', and the CLI's, which inherits it
        with pytest.MonkeyPatch.context() as nodes_env:  # only while the nodes start
            for name in [k for k in os.environ if k.startswith("AWS_")]:
                nodes_env.delenv(name)
            # the actors import this checkout's lenprof, wherever the nodes start them
            nodes_env.setenv("PYTHONPATH", os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")]))
            # a node killed is known dead in about a second, not Ray's default 15
            system = {"health_check_period_ms": 500, "health_check_failure_threshold": 2}
            c = Cluster(initialize_head=True, head_node_args={**NODE, "include_dashboard": False,
                                                              "_system_config": system})  # fmt: skip
            c.add_node(**NODE)
            c.wait_for_nodes()
        try:
            yield c
        finally:
            c.shutdown()
            shutil.rmtree(temp, ignore_errors=True)


def actors(cluster) -> dict[str, dict]:
    """Every actor the cluster has had, alive or dead, by id (from its GCS: no dashboard needed)."""
    return cluster.global_state.actor_table(None)


def ray_scan(cluster, *args: str) -> list[str]:
    """The command of a scan on ``cluster``, as a user joins it."""
    return [sys.executable, "-m", "lenprof", "scan", *args, "--engine", "ray", "--address", cluster.address,
            "-q", "--tokenizer", PACKAGED]  # fmt: skip


@pytest.fixture
def bucket(s3_server) -> str:
    name = f"lenprof-ray-{os.urandom(6).hex()}"
    s3_server.client().create_bucket(Bucket=name)
    return name


def test_actors_get_the_drivers_storage_settings_only_for_inputs_in_storage(tok, monkeypatch):
    from lenprof.engine.plan import Outputs, Plan
    from lenprof.engine.ray import actor_env
    from lenprof.io.files import InputFile
    from lenprof.rows.options import ScanOptions

    monkeypatch.setenv("AWS_ENDPOINT_URL", "http://127.0.0.1:9")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "s3cr3t")
    monkeypatch.setenv("AWS_PROFILE", "mine")  # names a file of this machine: not given

    def env(*paths: str) -> dict[str, str]:
        inputs = [InputFile(p, "jsonl") for p in paths]
        return actor_env(Plan(inputs, ScanOptions(), tok, Outputs()))

    assert env("/data/a.jsonl") == {}
    given = env("/data/a.jsonl", "s3://bucket/b.jsonl")
    assert "AWS_PROFILE" not in given
    assert (given["AWS_ENDPOINT_URL"], given["AWS_SECRET_ACCESS_KEY"]) == ("http://127.0.0.1:9", "s3cr3t")


@pytest.mark.slow
def test_a_scan_of_s3_on_two_nodes_gives_the_local_numbers_and_bytes(
    cluster, s3_server, bucket, corpora, tmp_path
):
    import pyarrow.json as pj
    import pyarrow.parquet as pq

    corpus = tmp_path / "corpus"
    shutil.copytree(corpora, corpus)
    (corpus / "parquet").mkdir()  # nq's 10 rows (640 KB) again, in 5 row groups
    nq = pj.read_json(corpora / "embedder" / "retrieval" / "nq.jsonl")
    pq.write_table(nq, corpus / "parquet" / "nq.parquet", row_group_size=2)
    put_folder(s3_server, corpus, bucket, "in")
    env = s3_server.env()
    small = ["--shard-size", "0.02", "--format", "json"]  # nq.jsonl alone is ~30 byte ranges

    local = lenprof(str(corpus), *small, "--workers", "1", "--clean-out", f"{tmp_path}/clean.jsonl",
                    "--rejects", f"{tmp_path}/rejects.jsonl", env=env)  # fmt: skip
    assert local.returncode == 0, local.stderr
    before = set(actors(cluster))
    remote = subprocess.run(
        ray_scan(cluster, f"s3://{bucket}/in/", *small, "--clean-out", f"s3://{bucket}/out/clean.jsonl",
                 "--rejects", f"s3://{bucket}/out/rejects.jsonl"),
        env=env, capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert remote.returncode == 0, remote.stderr

    ran = [a for i, a in actors(cluster).items() if i not in before]
    nodes = {n.node_id for n in cluster.list_all_nodes()}
    assert {a["Address"]["NodeID"] for a in ran} == nodes and len(nodes) == 2
    profile = json.loads(remote.stdout)
    assert (profile["run"]["engine"], profile["run"]["workers"]) == ("ray", 2)
    assert profile["run"]["shards"] > 40
    same_numbers(json.loads(local.stdout), profile, str(corpus), f"s3://{bucket}/in/")
    assert get(s3_server, bucket, "out/clean.jsonl") == (tmp_path / "clean.jsonl").read_bytes()
    local_rejects = (tmp_path / "rejects.jsonl").read_text()
    rejects = local_rejects.replace(json.dumps(str(corpus))[1:-1] + "/", f"s3://{bucket}/in/")
    assert get(s3_server, bucket, "out/rejects.jsonl").decode() == rejects


def test_out_of_core_on_two_nodes_the_actors_decide_and_the_numbers_are_local(
    cluster, s3_server, bucket, tmp_path
):
    """Past --memory-budget the partitions are decided by the actors, on both nodes: the numbers
    and cleaned bytes are the local in-memory scan's."""
    from test_out_of_core import tiny_rows

    corpus = tmp_path / "corpus"
    corpus.mkdir()
    tiny_rows(corpus / "tiny.jsonl", 30_000)  # its decisions outgrow half of 1 MiB: out of core
    put_folder(s3_server, corpus, bucket, "in")
    env = s3_server.env()
    local = lenprof(str(corpus), "--format", "json", "--min-neg", "0", "--clean-out", f"{tmp_path}/clean.jsonl",
                    env=env)  # fmt: skip
    assert local.returncode == 0, local.stderr
    before = set(actors(cluster))
    remote = subprocess.run(
        ray_scan(cluster, f"s3://{bucket}/in/", "--format", "json", "--min-neg", "0", "--memory-budget", "1M",
                 "--shard-size", "0.05", "--clean-out", f"s3://{bucket}/out/clean.jsonl"),
        env=env, capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert remote.returncode == 0, remote.stderr
    profile = json.loads(remote.stdout)
    assert profile["run"]["out_of_core"] is True and not json.loads(local.stdout)["run"].get("out_of_core")
    ran = [a for i, a in actors(cluster).items() if i not in before]
    assert {a["Address"]["NodeID"] for a in ran} == {n.node_id for n in cluster.list_all_nodes()}
    same_numbers(json.loads(local.stdout), profile, str(corpus), f"s3://{bucket}/in/")
    assert profile["samples"]["dropped"]["duplicate_row"] == 300
    assert get(s3_server, bucket, "out/clean.jsonl") == (tmp_path / "clean.jsonl").read_bytes()


def test_without_an_address_a_scan_starts_its_own_ray_and_never_joins_a_running_cluster(cluster, tmp_path):
    """A bare ``ray.init()`` joins a cluster started on this machine (here: found through the
    same RAY_TMPDIR); a scan without --address starts its own Ray, and stops it."""
    corpus = tmp_path / "c.jsonl"
    corpus.write_text('{"query": "q", "pos": ["p"], "neg": ["n"]}\n')
    env = {k: v for k, v in os.environ.items() if k not in ("RAY_ADDRESS", "LENPROF_RAY_ADDRESS")}
    before = set(actors(cluster))
    scan = subprocess.run(
        [sys.executable, "-m", "lenprof", "scan", str(corpus), "--engine", "ray", "-q", "--format", "json",
         "--tokenizer", PACKAGED],
        env=env, capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert scan.returncode == 0, scan.stderr
    assert json.loads(scan.stdout)["samples"]["kept"] == 1
    assert set(actors(cluster)) == before  # no actor of the scan on the running cluster


def big_corpus(corpora: Path, folder: Path, rows: int) -> Path:
    """``rows`` rows of the examples' retrieval files, each query made distinct."""
    lines = []
    for name in ("msmarco", "nli"):
        lines += (corpora / "embedder" / "retrieval" / f"{name}.jsonl").read_text().splitlines()
    folder.mkdir()
    with open(folder / "big.jsonl", "w") as fh:
        for i in range(rows):
            row = json.loads(lines[i % len(lines)])
            row["query"] = f"{row['query']} {i}"
            fh.write(json.dumps(row) + "\n")
    return folder


@pytest.mark.slow
def test_a_node_killed_mid_scan_fails_it_cleanly_with_nothing_written(
    cluster, s3_server, bucket, corpora, tmp_path
):
    """A third node joins, its actor starts work, and the node is killed: the scan ends with exit
    2 and one line, and nothing is written (or, were its shards retried, the local numbers)."""
    corpus = big_corpus(corpora, tmp_path / "big", 3000)
    put_folder(s3_server, corpus, bucket, "in")
    env = s3_server.env(LENPROF_DEBUG="")  # the user's view: no traceback
    doomed = cluster.add_node(**NODE)
    cluster.wait_for_nodes()
    before = set(actors(cluster))
    args = [f"s3://{bucket}/in/", "--shard-size", "0.05", "--format", "json",
            "--clean-out", f"s3://{bucket}/out/clean.jsonl"]  # fmt: skip
    scan = subprocess.Popen(
        ray_scan(cluster, *args), env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )

    def working_there() -> bool:
        return any(
            a["Address"]["NodeID"] == doomed.node_id and a["State"] == "ALIVE"
            for i, a in actors(cluster).items()
            if i not in before
        )

    try:
        deadline = time.monotonic() + 120
        while not working_there() and scan.poll() is None and time.monotonic() < deadline:
            time.sleep(0.05)
        assert working_there(), "no actor of the scan started on the third node"
        assert scan.poll() is None, "the scan ended before the third node could be killed"
        cluster.remove_node(doomed, allow_graceful=False)
        killed_at = time.monotonic()
        out, err = scan.communicate(timeout=120)
    finally:
        if scan.poll() is None:
            scan.kill()
            scan.wait()
    took = time.monotonic() - killed_at
    if scan.returncode == 0:  # its shards were retried: then the numbers are the local scan's
        local = lenprof(str(corpus), "--shard-size", "0.05", "--format", "json", "--workers", "1", env=env)
        same_numbers(json.loads(local.stdout), json.loads(out), str(corpus), f"s3://{bucket}/in/")
        return
    assert scan.returncode == 2, err
    # one line, where and why (Ray's own dump of the node's log is not on stdout, which is data)
    assert len(err.splitlines()) == 1 and err.startswith("Error: a Ray worker died on "), err
    assert err.endswith(" (LENPROF_DEBUG=1 shows the details)\n") and out == ""
    assert [k for k in keys(s3_server, bucket) if not k.startswith("in/")] == []
    assert took < 30, f"the scan took {took:.0f} s to fail after the node was killed"
