"""s3:// inputs and outputs against a real S3 API on 127.0.0.1 (moto's server mode, started by
the ``s3_server`` fixture in conftest.py): a prefix scans as the same folder on disk does, to the
byte, and every fault ends in one line and exit 2, in bounded time, with nothing half-written."""

from __future__ import annotations

import gzip
import json
import re
import shutil
import socket
import subprocess
import sys
import threading
import time
import uuid
from pathlib import Path

import pytest
from conftest import EXAMPLES

from lenprof.count.tokenizer import PACKAGED
from lenprof.io import storage


def lenprof(*args: str, env: dict[str, str], timeout: float = 120) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "lenprof", "scan", *args, "-q", "--tokenizer", PACKAGED],
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


@pytest.fixture
def bucket(s3_server) -> str:
    name = f"lenprof-{uuid.uuid4().hex[:12]}"
    s3_server.client().create_bucket(Bucket=name)
    return name


@pytest.fixture
def corpus(tmp_path) -> Path:
    """A folder of every kind a prefix holds: plain JSONL (read by byte range), a .gz (streamed)
    in a subfolder, and a file that is no data (README.md)."""
    root = tmp_path / "corpus"
    shutil.copytree(EXAMPLES, root)
    (root / "more").mkdir()
    rows = (EXAMPLES / "msmarco.jsonl").read_bytes().splitlines(keepends=True)
    (root / "more" / "tail.jsonl.gz").write_bytes(gzip.compress(b"".join(rows[:4]), mtime=0))
    return root


def put_folder(s3_server, folder: Path, bucket: str, prefix: str) -> None:
    client = s3_server.client()
    for path in sorted(folder.rglob("*")):
        if path.is_file():
            client.put_object(
                Bucket=bucket, Key=f"{prefix}/{path.relative_to(folder)}", Body=path.read_bytes()
            )


def get(s3_server, bucket: str, key: str) -> bytes | None:
    client = s3_server.client()
    try:
        return client.get_object(Bucket=bucket, Key=key)["Body"].read()
    except client.exceptions.NoSuchKey:
        return None


def keys(s3_server, bucket: str) -> list[str]:
    return [o["Key"] for o in s3_server.client().list_objects_v2(Bucket=bucket).get("Contents", [])]


def same_numbers(local: dict, remote: dict, local_root: str, prefix: str) -> None:
    """Equal profiles, once the local folder's paths read as the prefix's URLs (and the run's
    own record, timings and output paths, set aside)."""
    local_text = json.dumps({k: v for k, v in local.items() if k not in ("run", "outputs")})
    remote_text = json.dumps({k: v for k, v in remote.items() if k not in ("run", "outputs")})
    assert json.loads(local_text.replace(local_root + "/", prefix)) == json.loads(remote_text)


@pytest.mark.parametrize("workers", ["1", "2"])
def test_a_prefix_scans_as_its_folder_on_disk_to_the_byte(s3_server, bucket, corpus, tmp_path, workers):
    put_folder(s3_server, corpus, bucket, "in")
    env = s3_server.env()
    small = ["--shard-size", "0.01", "--workers", workers]  # several byte-range shards per object
    local = lenprof(str(corpus), "--format", "json", "--clean-out", f"{tmp_path}/clean/",
                    "--rejects", f"{tmp_path}/rejects.jsonl", *small, env=env)  # fmt: skip
    assert local.returncode == 0, local.stderr
    remote = lenprof(f"s3://{bucket}/in/", "--format", "json", "--clean-out", f"s3://{bucket}/out/",
                     "--rejects", f"s3://{bucket}/rejects.jsonl", "--out", f"s3://{bucket}/profile.json",
                     *small, env=env)  # fmt: skip
    assert remote.returncode == 0, remote.stderr
    same_numbers(json.loads(local.stdout), json.loads(remote.stdout), str(corpus), f"s3://{bucket}/in/")
    for cleaned in sorted((tmp_path / "clean").rglob("*")):
        if cleaned.is_file():
            key = f"out/{cleaned.relative_to(tmp_path / 'clean')}"
            assert get(s3_server, bucket, key) == cleaned.read_bytes(), key
    rejects = get(s3_server, bucket, "rejects.jsonl").decode()
    local_rejects = (tmp_path / "rejects.jsonl").read_text()
    assert rejects == local_rejects.replace(json.dumps(str(corpus))[1:-1] + "/", f"s3://{bucket}/in/")
    assert json.loads(get(s3_server, bucket, "profile.json")) == json.loads(remote.stdout)
    assert sorted(k for k in keys(s3_server, bucket) if not k.startswith("in/")) == [
        "out/dirty.jsonl", "out/more/tail.jsonl.gz", "out/msmarco.jsonl", "profile.json", "rejects.jsonl"
    ]  # fmt: skip


def test_a_key_a_glob_and_parquet(s3_server, bucket, corpus, tmp_path):
    import pyarrow as pa
    import pyarrow.parquet as pq

    rows = [json.loads(line) for line in (EXAMPLES / "msmarco.jsonl").read_text().splitlines()]
    pq.write_table(pa.Table.from_pylist(rows), corpus / "more" / "rows.parquet", row_group_size=3)
    put_folder(s3_server, corpus, bucket, "in")
    env = s3_server.env()

    def inputs(*paths: str) -> list[str]:
        done = lenprof(*paths, "--format", "json", env=env)
        assert done.returncode == 0, done.stderr
        return [i["path"] for i in json.loads(done.stdout)["inputs"]]

    assert inputs(f"s3://{bucket}/in/msmarco.jsonl") == [f"s3://{bucket}/in/msmarco.jsonl"]
    assert inputs(f"s3://{bucket}/in/*.jsonl") == [
        f"s3://{bucket}/in/dirty.jsonl",
        f"s3://{bucket}/in/msmarco.jsonl",
    ]
    assert inputs(f"s3://{bucket}/in/**/*.jsonl.gz") == [f"s3://{bucket}/in/more/tail.jsonl.gz"]
    local = lenprof(str(corpus / "more" / "rows.parquet"), "--format", "json", env=env)
    remote = lenprof(f"s3://{bucket}/in/more/rows.parquet", "--format", "json", env=env)
    assert remote.returncode == 0, remote.stderr
    same_numbers(json.loads(local.stdout), json.loads(remote.stdout), str(corpus), f"s3://{bucket}/in/")


def test_a_prefix_keeps_a_folders_rules(s3_server, bucket):
    client = s3_server.client()
    row = (EXAMPLES / "msmarco.jsonl").read_bytes().splitlines(keepends=True)[0]
    for key in ("d/train.jsonl", "d/test.jsonl"):
        client.put_object(Bucket=bucket, Key=key, Body=row)
    env = s3_server.env()
    both = lenprof(f"s3://{bucket}/d/", env=env)
    assert both.returncode == 2
    assert f"s3://{bucket}/d/: holds 2 splits" in both.stderr and "--split train" in both.stderr
    one = lenprof(f"s3://{bucket}/d/", "--split", "test", "--format", "json", env=env)
    assert [i["path"] for i in json.loads(one.stdout)["inputs"]] == [f"s3://{bucket}/d/test.jsonl"]
    # its own outputs are skipped by the next scan, as in a folder; without --out there, refused
    inside = lenprof(
        f"s3://{bucket}/d/", "--split", "test", "--clean-out", f"s3://{bucket}/d/clean/", env=env
    )
    assert inside.returncode == 2 and "inside the scanned folder" in inside.stderr
    wrote = lenprof(f"s3://{bucket}/d/", "--split", "test", "--clean-out", f"s3://{bucket}/d/clean/test.jsonl",
                    "--out", f"s3://{bucket}/d/profile.json", env=env)  # fmt: skip
    assert wrote.returncode == 0, wrote.stderr
    again = lenprof(f"s3://{bucket}/d/", "--split", "test", "--format", "json", env=env)
    assert [i["path"] for i in json.loads(again.stdout)["inputs"]] == [f"s3://{bucket}/d/test.jsonl"]


# --- faults: one line, exit 2, nothing half-written ---------------------------------------------------


def one_line(done: subprocess.CompletedProcess, *words: str) -> str:
    assert done.returncode == 2, done.stderr
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("Error: "), done.stderr
    assert "Traceback" not in done.stderr and all(w in lines[0] for w in words), lines[0]
    return lines[0]


def test_a_missing_bucket_key_or_credentials(s3_server, bucket):
    s3_server.client().put_object(
        Bucket=bucket, Key="a.jsonl", Body=(EXAMPLES / "msmarco.jsonl").read_bytes()
    )
    env = s3_server.env()
    one_line(lenprof("s3://no-such-bucket-lenprof/x/", env=env), "no such bucket 'no-such-bucket-lenprof'")
    one_line(lenprof(f"s3://{bucket}/b.jsonl", env=env), f"s3://{bucket}/b.jsonl: no such object")
    denied = s3_server.env(AWS_SECRET_ACCESS_KEY="wrong")
    one_line(lenprof(f"s3://{bucket}/a.jsonl", env=denied), "access denied", "AWS_ACCESS_KEY_ID")
    # outputs: a missing bucket or an input as an output is refused before any work
    one_line(
        lenprof(f"s3://{bucket}/a.jsonl", "--out", "s3://no-such-bucket-lenprof/p.json", env=env),
        "no such bucket",
    )
    one_line(
        lenprof(f"s3://{bucket}/a.jsonl", "--rejects", f"s3://{bucket}/a.jsonl", env=env),
        "overwrite an input",
    )
    assert keys(s3_server, bucket) == ["a.jsonl"]


@pytest.fixture
def silent():
    """A server that accepts connections and never answers."""
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(64)
    held: list[socket.socket] = []

    def accept() -> None:
        while True:
            try:
                held.append(server.accept()[0])
            except OSError:
                return

    threading.Thread(target=accept, daemon=True).start()
    yield f"http://127.0.0.1:{server.getsockname()[1]}"
    server.close()
    for conn in held:
        conn.close()


def test_a_server_that_stops_answering_fails_in_bounded_time(s3_server, silent, tmp_path):
    env = s3_server.env(AWS_ENDPOINT_URL=silent, LENPROF_REMOTE_TIMEOUT="1", AWS_MAX_ATTEMPTS="2")
    start = time.monotonic()
    line = one_line(lenprof("s3://bucket/in/", env=env, timeout=60), "the server did not answer", silent)
    assert time.monotonic() - start < 30, line
    # an output there: refused before the scan, as fast
    start = time.monotonic()
    one_line(lenprof(str(EXAMPLES / "msmarco.jsonl"), "--out", "s3://bucket/p.json", env=env, timeout=60),
             "s3://bucket/p.json: cannot write (the server did not answer")  # fmt: skip
    assert time.monotonic() - start < 30


class FreezingProxy:
    """A TCP proxy to the S3 server that stops answering for good at the ``nth`` request
    matching ``freeze_on``: that request and every later one are read and never forwarded
    (or, with ``slow``, forwarded ``slow`` seconds a piece of at most 64 KiB)."""

    def __init__(self, upstream: str, freeze_on: bytes, nth: int = 1, slow: float = 0.0):
        self.upstream = ("127.0.0.1", int(upstream.rsplit(":", 1)[1]))
        self.freeze_on = re.compile(freeze_on)
        self.left = nth
        self.slow = slow
        self.frozen = threading.Event()
        self.server = socket.socket()
        self.server.bind(("127.0.0.1", 0))
        self.server.listen(64)
        self.endpoint = f"http://127.0.0.1:{self.server.getsockname()[1]}"
        self.held: list[socket.socket] = []
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                client = self.server.accept()[0]
            except OSError:
                return
            upstream = socket.create_connection(self.upstream)
            self.held += [client, upstream]
            threading.Thread(target=self._pump, args=(client, upstream, True), daemon=True).start()
            threading.Thread(target=self._pump, args=(upstream, client, False), daemon=True).start()

    def _pump(self, src: socket.socket, dst: socket.socket, asking: bool) -> None:
        try:
            while data := src.recv(1 << 16):
                if asking and not self.frozen.is_set() and self.freeze_on.search(data):
                    self.left -= 1
                    if not self.left:
                        self.frozen.set()
                if asking and self.frozen.is_set() and self.slow:
                    time.sleep(self.slow)
                elif asking and self.frozen.is_set():
                    continue  # swallowed: the server never hears of it
                dst.sendall(data)
        except OSError:
            pass

    def close(self) -> None:
        self.server.close()
        for conn in self.held:
            conn.close()


@pytest.mark.parametrize("nth", [1, 3], ids=["its-first-bytes", "a-workers-shard"])
def test_a_server_that_stops_answering_mid_read_fails_in_bounded_time(s3_server, bucket, nth):
    """The GETs of the object: its first bytes (is it a lenprof output?), its columns, then a
    worker's ranged read of its shard (after which the check that no input changed waits too)."""
    data = (EXAMPLES / "msmarco.jsonl").read_bytes()
    s3_server.client().put_object(Bucket=bucket, Key="in/a.jsonl", Body=data)
    proxy = FreezingProxy(s3_server.endpoint, rb"^GET /[^ ]*/in/a\.jsonl ", nth)
    env = s3_server.env(AWS_ENDPOINT_URL=proxy.endpoint, LENPROF_REMOTE_TIMEOUT="1", AWS_MAX_ATTEMPTS="2")
    try:
        start = time.monotonic()
        done = lenprof(f"s3://{bucket}/in/", "--out", f"s3://{bucket}/p.json", env=env, timeout=120)
        one_line(done, "cannot be read (the server did not answer at " + proxy.endpoint)
        assert proxy.frozen.is_set() and time.monotonic() - start < 40
    finally:
        proxy.close()
    assert keys(s3_server, bucket) == ["in/a.jsonl"]


def test_a_server_that_stops_answering_mid_upload_leaves_no_object(s3_server, bucket):
    """The upload's completion is never answered: no object, old or partial, appears; the
    multipart upload stays incomplete (pyarrow cannot abort it: a lifecycle rule removes it)."""
    client = s3_server.client()
    client.put_object(Bucket=bucket, Key="in/a.jsonl", Body=(EXAMPLES / "msmarco.jsonl").read_bytes())
    client.put_object(Bucket=bucket, Key="clean.jsonl", Body=b"the previous output\n")
    proxy = FreezingProxy(s3_server.endpoint, rb"^POST /[^ ]*/clean\.jsonl\?uploadId=")
    env = s3_server.env(AWS_ENDPOINT_URL=proxy.endpoint, LENPROF_REMOTE_TIMEOUT="1", AWS_MAX_ATTEMPTS="2")
    try:
        start = time.monotonic()
        done = lenprof(f"s3://{bucket}/in/", "--clean-out", f"s3://{bucket}/clean.jsonl",
                       "--out", f"s3://{bucket}/p.json", env=env, timeout=120)  # fmt: skip
        one_line(done, f"s3://{bucket}/clean.jsonl: cannot write (the server did not answer",
                 "no output of this run was changed")  # fmt: skip
        assert proxy.frozen.is_set() and time.monotonic() - start < 40
    finally:
        proxy.close()
    assert sorted(keys(s3_server, bucket)) == ["clean.jsonl", "in/a.jsonl"]
    assert get(s3_server, bucket, "clean.jsonl") == b"the previous output\n"
    uploads = client.list_multipart_uploads(Bucket=bucket).get("Uploads", [])
    assert [u["Key"] for u in uploads] == ["clean.jsonl"]


@pytest.mark.slow
def test_an_interrupt_during_an_upload_lets_that_object_finish_whole(s3_server, bucket, tmp_path):
    """SIGTERM while the rejects (20 MB) go up slowly: that object is finished, byte for byte the
    uninterrupted run's, then the run stops (143) naming it; the profile, last, is not written."""
    row = (EXAMPLES / "msmarco.jsonl").read_bytes().splitlines(keepends=True)[0]
    corpus = tmp_path / "same.jsonl"
    corpus.write_bytes(row * (20_000_000 // len(row)))  # every row after the first: duplicate_row
    whole = lenprof(str(corpus), "--rejects", str(tmp_path / "rejects.jsonl"), env=s3_server.env())
    assert whole.returncode == 0, whole.stderr
    proxy = FreezingProxy(s3_server.endpoint, rb"^POST /[^ ]*/rejects\.jsonl\?uploads", slow=0.05)
    args = [sys.executable, "-m", "lenprof", "scan", str(corpus), "-q", "--tokenizer", PACKAGED,
            "--rejects", f"s3://{bucket}/rejects.jsonl", "--out", f"s3://{bucket}/profile.json"]  # fmt: skip
    env = s3_server.env(AWS_ENDPOINT_URL=proxy.endpoint)
    try:
        run = subprocess.Popen(args, env=env, stderr=subprocess.PIPE, stdout=subprocess.DEVNULL, text=True)
        deadline = time.monotonic() + 120
        while not proxy.frozen.is_set() and time.monotonic() < deadline and run.poll() is None:
            time.sleep(0.05)
        time.sleep(1)
        run.terminate()
        stderr = run.communicate(timeout=120)[1]
    finally:
        proxy.close()
    assert run.returncode == 143, stderr
    assert stderr.strip() == (
        "lenprof: terminated by SIGTERM; outputs already replaced (objects are replaced one by one): "
        f"s3://{bucket}/rejects.jsonl"
    )
    assert keys(s3_server, bucket) == ["rejects.jsonl"]
    assert get(s3_server, bucket, "rejects.jsonl") == (tmp_path / "rejects.jsonl").read_bytes()


def test_an_object_deleted_or_rewritten_mid_scan_stops_it(s3_server, bucket, monkeypatch):
    from lenprof.api import scan
    from lenprof.errors import InputError

    for key, value in s3_server.env().items():
        monkeypatch.setenv(key, value)
    storage._filesystem.cache_clear()
    client = s3_server.client()
    data = (EXAMPLES / "msmarco.jsonl").read_bytes()
    for change in ("delete", "rewrite"):
        client.put_object(Bucket=bucket, Key="a.jsonl", Body=data)

        def meanwhile(progress, change=change):
            if change == "delete":
                client.delete_object(Bucket=bucket, Key="a.jsonl")
            else:  # same size, other bytes: only the ETag tells
                client.put_object(Bucket=bucket, Key="a.jsonl", Body=data.replace(b"the", b"THE"))

        with pytest.raises(InputError, match=r"a\.jsonl changed while it was being read") as caught:
            scan(f"s3://{bucket}/a.jsonl", workers=1, shard_bytes=8 << 10, on_progress=meanwhile,
                 clean_out=f"s3://{bucket}/clean.jsonl", profile_out=f"s3://{bucket}/profile.json")  # fmt: skip
        assert ("removed" in str(caught.value)) == (change == "delete")
        assert "clean.jsonl" not in keys(s3_server, bucket) and "profile.json" not in keys(s3_server, bucket)
    storage._filesystem.cache_clear()


def test_a_commit_that_fails_part_way_says_what_it_replaced(s3_server, bucket):
    """Objects are replaced one by one: the first is new, the denied one absent (never partial),
    the profile (the manifest, written last) absent, and the line says so."""
    import boto3

    iam = boto3.client("iam", endpoint_url=s3_server.endpoint, region_name="us-east-1",
                       aws_access_key_id=s3_server.key_id, aws_secret_access_key=s3_server.secret)  # fmt: skip
    user = f"limited-{bucket}"
    iam.create_user(UserName=user)
    key = iam.create_access_key(UserName=user)["AccessKey"]
    policy = {"Version": "2012-10-17", "Statement": [
        {"Effect": "Allow", "Action": "s3:*", "Resource": "*"},
        {"Effect": "Deny", "Action": "s3:*", "Resource": f"arn:aws:s3:::{bucket}/out/b.jsonl"},
    ]}  # fmt: skip
    iam.put_user_policy(UserName=user, PolicyName="p", PolicyDocument=json.dumps(policy))
    client = s3_server.client()
    rows = (EXAMPLES / "msmarco.jsonl").read_bytes().splitlines(keepends=True)
    client.put_object(Bucket=bucket, Key="in/a.jsonl", Body=b"".join(rows[:5]))
    client.put_object(Bucket=bucket, Key="in/b.jsonl", Body=b"".join(rows[5:]))
    env = s3_server.env(AWS_ACCESS_KEY_ID=key["AccessKeyId"], AWS_SECRET_ACCESS_KEY=key["SecretAccessKey"])
    done = lenprof(f"s3://{bucket}/in/", "--clean-out", f"s3://{bucket}/out/", "--out", f"s3://{bucket}/profile.json", env=env)  # fmt: skip
    one_line(done, f"s3://{bucket}/out/b.jsonl: cannot write (access denied", f"already replaced: s3://{bucket}/out/a.jsonl",
             f"s3://{bucket}/profile.json, written last, was not")  # fmt: skip
    assert sorted(keys(s3_server, bucket)) == ["in/a.jsonl", "in/b.jsonl", "out/a.jsonl"]


def test_gs_and_az_urls_are_read_by_their_own_rules(s3_server):
    """Only S3 has a server here: gs:// and az:// are checked as far as no server is needed."""
    assert storage.split("gs://b/data/x.jsonl") == ("gs", "b", "data/x.jsonl")
    assert storage.fs_path("abfss://box@acct.dfs.core.windows.net/d/x.jsonl") == "box/d/x.jsonl"
    assert storage.url_of("az://box/d/", "box/d/e/x.jsonl") == "az://box/d/e/x.jsonl"
    assert storage.is_url("GS://b/x") and not storage.is_url("s3/x.jsonl")
    env = {k: v for k, v in s3_server.env().items() if not k.startswith("AZURE_")}
    one_line(lenprof("az://box/x.jsonl", env=env), "set AZURE_STORAGE_ACCOUNT_NAME")
