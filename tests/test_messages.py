"""Messages a user meets when something is off: exact lines and exit codes."""

from __future__ import annotations

import contextlib
import http.server
import json
import os
import re
import shutil
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
from click.testing import CliRunner
from conftest import EXAMPLES, REPO

from lenprof import InputError, NothingKept, scan
from lenprof.cli import main
from lenprof.count.tokenizer import packaged_model_path
from lenprof.report import FORMATS

DIRTY = str(EXAMPLES / "dirty.jsonl")


def invoke(*args: str):
    return CliRunner().invoke(main, list(args), catch_exceptions=False)


# --- zero kept rows: exit 2 and one line, for every format ------------------------------------


@pytest.fixture
def unusable(tmp_path):
    data = tmp_path / "same.jsonl"
    data.write_text(
        '{"query": "a", "pos": ["a"], "neg": ["n"]}\n{"query": "b", "pos": ["b "], "neg": ["m"]}\nnot json\n'
    )
    return data


NOTHING_KEPT = (
    "Error: no row was kept: 3 read, all dropped (query_equals_pos 2, malformed_json 1); first query_equals_pos: "
    "{data} line 1: query equals 'pos'[0]; no output was written\n"
)


@pytest.mark.parametrize("fmt", list(FORMATS))
def test_no_row_kept_is_exit_2_for_every_format(unusable, tmp_path, fmt):
    outs = {
        "--rejects": "rejects.jsonl",
        "--clean-out": "clean.jsonl",
        "--out": "p.json",
        "--report": "r.html",
    }
    for name in outs.values():
        (tmp_path / name).write_text("old")  # a good earlier run's outputs
    flags = [x for flag, name in outs.items() for x in (flag, str(tmp_path / name))]
    result = invoke("scan", str(unusable), "--format", fmt, *flags)
    assert (result.exit_code, result.stdout) == (2, "")
    assert result.stderr == NOTHING_KEPT.format(data=unusable)
    # a failed run changes nothing: no empty cleaned file replaces a good one
    assert {name: (tmp_path / name).read_text() for name in outs.values()} == dict.fromkeys(
        outs.values(), "old"
    )


def test_empty_input_is_exit_2_too(tmp_path):
    empty = tmp_path / "empty.jsonl"
    empty.write_text("\n\n")
    result = invoke("scan", str(empty), "--format", "json")
    assert (result.exit_code, result.stdout) == (2, "")
    assert (
        result.stderr
        == "Error: no row was read: the inputs hold no rows (blank lines only, or empty files)\n"
    )


def test_the_library_raises_nothing_kept_when_asked(unusable):
    assert scan([str(unusable)]).samples.kept == 0  # by default a profile, as before
    with pytest.raises(NothingKept) as err:
        scan([str(unusable)], require_kept=True)
    assert isinstance(err.value, InputError)
    assert (err.value.profile.samples.read, err.value.profile.samples.kept) == (3, 0)
    assert str(err.value) + "\n" == NOTHING_KEPT.format(data=unusable).removeprefix("Error: ")


@pytest.mark.parametrize("fmt", list(FORMATS))
def test_recommend_from_a_profile_that_kept_nothing_is_exit_2(unusable, tmp_path, fmt):
    profile = tmp_path / "profile.json"
    scan([str(unusable)], profile_out=str(profile))  # such a profile: from the API, or an older lenprof
    result = invoke("recommend", str(profile), "--format", fmt)
    assert (result.exit_code, result.stdout) == (2, "")
    assert result.stderr == f"Error: {profile}: its scan kept no row, so there are no lengths to recommend\n"


# --- tokenizers: a hub that cannot answer, a folder without one -------------------------------


def lenprof_online(endpoint: str, hf_home: Path, *args: str, timeout: str = "1"):
    """lenprof in a fresh process whose hub is ``endpoint`` (a local port: never the network),
    with HF_HUB_OFFLINE unset, as a user with no offline setting has it."""
    env = {k: v for k, v in os.environ.items() if not k.endswith(("_PROXY", "_proxy"))}
    for name in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE", "HF_TOKEN", "HF_HUB_CACHE"):
        env.pop(name, None)
    env.update(
        HF_ENDPOINT=endpoint,
        HF_HOME=str(hf_home),
        HF_HUB_ETAG_TIMEOUT=timeout,
        NO_PROXY="*",
        PYTHONPATH=str(REPO),
    )
    started = time.monotonic()
    proc = subprocess.run(
        [sys.executable, "-m", "lenprof", "scan", DIRTY, *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    return proc, time.monotonic() - started


def closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def silent_hub():
    """A hub that accepts connections and never answers; counts the connections."""
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(16)
    accepted: list[socket.socket] = []

    def serve():
        with contextlib.suppress(OSError):
            while True:
                accepted.append(server.accept()[0])

    threading.Thread(target=serve, daemon=True).start()
    yield f"http://127.0.0.1:{server.getsockname()[1]}", accepted
    server.close()
    for conn in accepted:
        conn.close()


def test_a_refused_hub_is_one_line_and_exit_2(tmp_path):
    endpoint = f"http://127.0.0.1:{closed_port()}"
    proc, _ = lenprof_online(endpoint, tmp_path / "hf", "--tokenizer", "some-org/some-model", "-q")
    assert (proc.returncode, proc.stdout) == (2, "")
    assert re.fullmatch(
        rf"Error: --tokenizer some-org/some-model: the hub \({re.escape(endpoint)}\) cannot be reached "
        rf"\([^)]*refused[^)]*\) and the model is not in the cache \({re.escape(str(tmp_path / 'hf' / 'hub'))}\); "
        r"check the network, or download it once and set HF_HUB_OFFLINE=1, or pass a local model folder "
        r"or a tokenizer.json\n",
        proc.stderr,
    ), proc.stderr


def test_a_silent_hub_is_asked_once_without_retries(tmp_path, silent_hub):
    endpoint, accepted = silent_hub
    proc, elapsed = lenprof_online(endpoint, tmp_path / "hf", "--tokenizer", "some-org/some-model")
    assert (proc.returncode, proc.stdout) == (2, "")
    assert proc.stderr.startswith(
        f"Error: --tokenizer some-org/some-model: the hub ({endpoint}) cannot be reached ("
    )
    assert len(proc.stderr.splitlines()) == 1 and "Retrying" not in proc.stderr
    assert len(accepted) == 1  # one question, no backoff (huggingface_hub alone asks 6 times)
    assert elapsed < 15  # a bound on the failure mode (5 retries with backoff take ~50 s), not a speed claim


class _NotFound(http.server.BaseHTTPRequestHandler):
    def do_GET(self):  # noqa: N802 - http.server's name
        self.send_response(401)  # what the hub answers for a repo it does not have
        self.send_header("X-Error-Code", "RepoNotFound")
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, *args):
        pass


def test_a_model_the_hub_does_not_have_is_named(tmp_path):
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _NotFound)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    endpoint = f"http://127.0.0.1:{server.server_address[1]}"
    try:
        proc, _ = lenprof_online(endpoint, tmp_path / "hf", "--tokenizer", "some-org/no-such-model")
    finally:
        server.shutdown()
    assert (proc.returncode, proc.stdout) == (2, "")
    assert proc.stderr == (
        f"Error: --tokenizer some-org/no-such-model: no such model on {endpoint} (check the id; for a "
        "private model, log in with hf auth login), or pass a local model folder or a tokenizer.json\n"
    )


def fake_hub_cache(hf_home: Path, repo_id: str) -> None:
    """``repo_id`` in a Hugging Face cache, as a download leaves it: refs/main and a snapshot."""
    repo = hf_home / "hub" / ("models--" + repo_id.replace("/", "--"))
    (repo / "refs").mkdir(parents=True)
    (repo / "refs" / "main").write_text("0123abcd")
    shutil.copytree(packaged_model_path(), repo / "snapshots" / "0123abcd")


def test_an_unreachable_hub_falls_back_to_the_cache(tmp_path, tok):
    fake_hub_cache(tmp_path / "hf", "some-org/cached-model")
    endpoint = f"http://127.0.0.1:{closed_port()}"
    proc, _ = lenprof_online(
        endpoint, tmp_path / "hf", "--tokenizer", "some-org/cached-model", "--format", "json", "-q"
    )
    assert (proc.returncode, proc.stderr) == (0, "")
    profile = json.loads(proc.stdout)
    assert (profile["tokenizer"]["name"], profile["tokenizer"]["source"]) == ("some-org/cached-model", "hub")
    # the same lengths as the packaged model it is a copy of
    packaged = invoke("scan", DIRTY, "--format", "json", "-q")
    assert profile["fields"] == json.loads(packaged.stdout)["fields"]


def test_offline_and_not_cached_says_so(monkeypatch, tmp_path):
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf"))
    monkeypatch.delenv("HF_HUB_CACHE", raising=False)
    result = invoke("scan", DIRTY, "--tokenizer", "some-org/some-model")
    assert (result.exit_code, result.stdout) == (2, "")
    assert result.stderr == (
        f"Error: --tokenizer some-org/some-model: not in the Hugging Face cache ({tmp_path / 'hf' / 'hub'}), "
        "and HF_HUB_OFFLINE=1 keeps lenprof off the hub; run once with the network to download it, "
        "or pass a local model folder or a tokenizer.json\n"
    )


NO_TOKENIZER = (
    "no tokenizer in this folder (looked for tokenizer.json, or tokenizer_config.json with its "
    "vocabulary: vocab.txt, vocab.json + merges.txt, or a sentencepiece .model)"
)


@pytest.mark.parametrize("files", [{}, {"config.json": '{"model_type": "bert"}'}])
def test_a_folder_without_a_tokenizer_says_so(tmp_path, files):
    folder = tmp_path / "model"
    folder.mkdir()
    for name, text in files.items():
        (folder / name).write_text(text)  # a lone config.json once built an empty-vocabulary tokenizer
    result = invoke("scan", DIRTY, "--tokenizer", str(folder))
    assert (result.exit_code, result.stdout) == (2, "")
    assert result.stderr == (
        f"Error: --tokenizer {folder}: {NO_TOKENIZER}; pass the model folder that holds them\n"
    )


def test_a_folder_whose_tokenizer_is_one_level_down_names_it(tmp_path):
    (tmp_path / "st" / "0_Transformer").mkdir(parents=True)
    shutil.copy(packaged_model_path() / "tokenizer.json", tmp_path / "st" / "0_Transformer")
    result = invoke("scan", DIRTY, "--tokenizer", str(tmp_path / "st"))
    assert (result.exit_code, result.stdout) == (2, "")
    assert result.stderr == (
        f"Error: --tokenizer {tmp_path / 'st'}: {NO_TOKENIZER}; {tmp_path / 'st' / '0_Transformer'} has one: "
        "pass that\n"
    )


@pytest.mark.parametrize("fmt", sorted(set(FORMATS) - {"table"}))
def test_warnings_reach_stderr_in_every_format_without_a_table(fmt):
    # --format args is the README's way into FlagEmbedding: its warnings must not vanish (issue 22)
    result = CliRunner().invoke(main, ["scan", str(EXAMPLES), "--format", fmt])
    assert result.exit_code == 0
    assert (
        "lenprof: warnings: partial_prompt 3 rows, partial_scores 2 rows; "
        "--format table or --report FILE shows each with examples\n"
    ) in result.stderr
    assert "warnings" not in CliRunner().invoke(main, ["scan", str(EXAMPLES), "--format", fmt, "-q"]).stderr
    table = CliRunner().invoke(main, ["scan", str(EXAMPLES)])
    assert "lenprof: warnings:" not in table.stderr and "warnings  partial_prompt 3 rows" in table.stdout
