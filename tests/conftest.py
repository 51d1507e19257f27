from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile  # noqa: E402
import time
from dataclasses import dataclass
from pathlib import Path  # noqa: E402

os.environ.setdefault("HF_HUB_OFFLINE", "1")  # tests load local files only; never wait on the hub
os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
os.environ.setdefault("LENPROF_DEBUG", "1")  # an internal error shows its traceback
# A tokenizer cache of the session's own: tests never read or fill the user's.
os.environ["LENPROF_CACHE_DIR"] = tempfile.mkdtemp(prefix="lenprof-test-cache-")

import pytest  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
EXAMPLES = REPO / "examples"
# What a scan says on stderr, even with -q, when no --tokenizer, LENPROF_TOKENIZER or config names one.
DEFAULT_TOKENIZER = (
    "lenprof: tokenizer: sentence-transformers/all-MiniLM-L6-v2 (the default; "
    "set --tokenizer or LENPROF_TOKENIZER to measure for your model)\n"
)
CORPORA = (
    Path(os.environ.get("LENPROF_CORPORA", REPO.parent / "shared" / "corpora")) / "flagembedding-examples"
)


@pytest.fixture(scope="session")
def corpora() -> Path:
    """FlagEmbedding's real example data, read as it is (../shared/corpora beside the checkout).

    A fresh clone has none beside it: those tests skip there. CI sets LENPROF_REQUIRE_CORPORA=1
    (see .ci/run), which makes them required.
    """
    if not CORPORA.is_dir():
        absent(
            f"FlagEmbedding's example data is not at {CORPORA} (set LENPROF_CORPORA)",
            "LENPROF_REQUIRE_CORPORA",
        )
    return CORPORA


def absent(message: str, required_by: str) -> None:
    """Skip a test whose outside resource is missing, or fail it where ``required_by`` is set to 1."""
    if os.environ.get(required_by) == "1":
        pytest.fail(message)
    pytest.skip(message)


@pytest.fixture(scope="session")
def corpus_files(corpora: Path) -> list[Path]:
    return sorted(corpora.rglob("*.jsonl"))


@pytest.fixture(scope="session")
def tok():
    """lenprof's tokenizer (the packaged all-MiniLM-L6-v2), loaded once."""
    from lenprof import load_tokenizer

    return load_tokenizer(None)


@pytest.fixture(scope="session")
def oracle():
    """An independent AutoTokenizer instance: the lengths a transformers user would compute."""
    from transformers import AutoTokenizer

    from lenprof.count.tokenizer import packaged_model_path

    t = AutoTokenizer.from_pretrained(str(packaged_model_path()))

    def lengths(texts: list[str]) -> list[int]:
        return [len(ids) for ids in t(texts, add_special_tokens=True)["input_ids"]]

    return lengths


def write_lines(path: Path, lines: list[bytes], end: bytes = b"\n") -> Path:
    path.write_bytes(b"".join(line + end for line in lines))
    return path


FLAGEMBEDDING_VENV = Path(os.environ.get("LENPROF_FLAGEMBEDDING_VENV", REPO / ".venv-fe"))


@pytest.fixture(scope="session")
def flagembedding_python() -> Path:
    """The python of a venv holding FlagEmbedding itself (its pins clash with ours: transformers < 5).

    `make test` builds it (`make peers`, at .venv-fe); elsewhere those tests skip unless
    LENPROF_REQUIRE_PEERS=1 (CI), which makes them required.
    """
    python = FLAGEMBEDDING_VENV / "bin" / "python"
    if not python.exists():
        absent(
            f"no FlagEmbedding venv at {FLAGEMBEDDING_VENV} (run `make peers` or set LENPROF_FLAGEMBEDDING_VENV)",
            "LENPROF_REQUIRE_PEERS",
        )
    return python


@pytest.fixture
def scratch(tmp_path, monkeypatch) -> Path:
    """A folder holding copies of examples/ and docs/layouts/, made the current one: where the
    README's and docs/' commands run (tests/test_readme.py, tests/test_docs.py)."""
    shutil.copytree(EXAMPLES, tmp_path / "examples")
    shutil.copytree(REPO / "docs" / "layouts", tmp_path / "docs" / "layouts")
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("LENPROF_TOKENIZER", raising=False)
    return tmp_path


# Real retrieval text no model here was tuned on (benchmarks/make_retrieval.py): a function's
# one-line summary against the rest of its docstring, three negatives from the same package.
DOCSTRING_PACKAGES = ["email", "asyncio", "http", "xml", "unittest", "importlib", "multiprocessing", "concurrent",
                      "logging", "json", "urllib", "collections", "tkinter", "idlelib", "ctypes", "sqlite3", "wsgiref",
                      "xmlrpc", "curses", "dbm", "html", "venv"]  # fmt: skip


@pytest.fixture(scope="session")
def docstrings(tmp_path_factory) -> Path:
    """400 rows of real retrieval data, from the standard library's docstrings."""
    import importlib.util
    import json
    import sysconfig

    spec = importlib.util.spec_from_file_location("make_retrieval", REPO / "benchmarks" / "make_retrieval.py")
    make_retrieval = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(make_retrieval)  # type: ignore[union-attr]
    data = make_retrieval.rows(
        Path(sysconfig.get_paths()["stdlib"]), 400, 3, max_body=300, packages=DOCSTRING_PACKAGES
    )
    assert len(data) == 400
    path = tmp_path_factory.mktemp("docstrings") / "docstrings.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in data))
    return path


# --- a real S3 API on 127.0.0.1 (moto's server mode) ---------------------------------------------


@dataclass(frozen=True)
class S3Server:
    """moto's S3 server, with an IAM user whose key signs every request (the server checks each
    one, so wrong credentials are denied as AWS denies them)."""

    endpoint: str
    key_id: str
    secret: str

    def env(self, **more: str) -> dict[str, str]:
        """The environment of a CLI run against this server: the AWS variables, as a user sets them."""
        env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
        env.update(
            AWS_ENDPOINT_URL=self.endpoint,
            AWS_ACCESS_KEY_ID=self.key_id,
            AWS_SECRET_ACCESS_KEY=self.secret,
            AWS_DEFAULT_REGION="us-east-1",
            AWS_EC2_METADATA_DISABLED="true",
        )
        env.update(more)
        return env

    def client(self):
        import boto3

        return boto3.client(
            "s3",
            endpoint_url=self.endpoint,
            aws_access_key_id=self.key_id,
            aws_secret_access_key=self.secret,
            region_name="us-east-1",
        )


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="session")
def s3_server():
    """moto_server on a free port of 127.0.0.1 for the session (``pip install 'lenprof[dev]'``
    brings it; without it these tests skip, unless LENPROF_REQUIRE_S3=1 makes them required)."""
    server = Path(sys.executable).with_name("moto_server")
    if not server.exists():
        absent("moto_server is not installed (pip install 'moto[server]')", "LENPROF_REQUIRE_S3")
    import boto3

    port = free_port()
    # the first 3 requests (the IAM user, its key, its policy) need no signature; then all do
    env = {**os.environ, "INITIAL_NO_AUTH_ACTION_COUNT": "3"}
    proc = subprocess.Popen(
        [str(server), "-H", "127.0.0.1", "-p", str(port)],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                if proc.poll() is not None or time.monotonic() > deadline:
                    pytest.fail(f"moto_server did not start on port {port}")
                time.sleep(0.1)
        endpoint = f"http://127.0.0.1:{port}"
        iam = boto3.client(
            "iam", endpoint_url=endpoint, region_name="us-east-1",
            aws_access_key_id="bootstrap", aws_secret_access_key="bootstrap",
        )  # fmt: skip
        iam.create_user(UserName="lenprof")
        key = iam.create_access_key(UserName="lenprof")["AccessKey"]
        allow_all = {
            "Version": "2012-10-17",
            "Statement": [{"Effect": "Allow", "Action": "*", "Resource": "*"}],
        }
        iam.put_user_policy(UserName="lenprof", PolicyName="all", PolicyDocument=json.dumps(allow_all))
        yield S3Server(endpoint, key["AccessKeyId"], key["SecretAccessKey"])
    finally:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


@pytest.fixture(scope="session")
def cls_model(tmp_path_factory) -> Path:
    """The packaged all-MiniLM-L6-v2 pooled by its [CLS] token (BGE's pooling) instead of the mean."""
    import json
    import shutil

    from lenprof.count.tokenizer import packaged_model_weights

    folder = tmp_path_factory.mktemp("cls") / "model"
    shutil.copytree(packaged_model_weights(), folder)
    config = folder / "1_Pooling" / "config.json"
    d = json.loads(config.read_text())
    config.write_text(json.dumps({**d, "pooling_mode_mean_tokens": False, "pooling_mode_cls_token": True}))
    return folder
