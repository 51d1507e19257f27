"""``datasets`` inputs: save_to_disk folders read as their data, DatasetDicts by --split, and hub
ids that fail at once, in one line, when offline with nothing cached. No test touches the network."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import datasets  # the hf extra, which `make test` installs
import pytest
from click.testing import CliRunner
from conftest import REPO

from lenprof import InputError, scan
from lenprof.cli import main


def numbers(profile) -> dict:
    d = profile.to_dict()
    return {k: d[k] for k in ("samples", "fields", "recommendation")}


def rows_of(paths) -> list[dict]:
    return [json.loads(line) for p in paths for line in p.read_text(encoding="utf-8").splitlines()]


@pytest.fixture(scope="module")
def retrieval(corpora):
    """The real retrieval corpora: same keys in every row, as a Dataset needs."""
    return sorted((corpora / "embedder" / "retrieval").glob("*.jsonl"))


def test_a_saved_dataset_gives_the_numbers_of_its_jsonl(tok, retrieval, tmp_path):
    folder = tmp_path / "saved"
    datasets.Dataset.from_list(rows_of(retrieval)).save_to_disk(str(folder))
    base = scan([str(p) for p in retrieval], tokenizer=tok)
    got = scan(str(folder), tokenizer=tok, shard_bytes=4000)
    assert numbers(got) == numbers(base)
    assert (got.inputs[0].path, got.inputs[0].format, got.inputs[0].rows) == (str(folder), "datasets", 30)
    # nq (rows 21-30) repeats two negatives in its first row: a line is a position in the dataset
    assert [e.line for e in got.examples["duplicate_neg"]] == [21]
    # inside a scanned folder, the saved dataset is one input, never its metadata files
    outer = scan(str(tmp_path), tokenizer=tok)
    assert [i.path for i in outer.inputs] == [str(folder)] and numbers(outer) == numbers(base)


def test_a_dataset_dict_needs_a_split_and_lists_them(tok, retrieval, tmp_path):
    train, test = rows_of(retrieval[:2]), rows_of(retrieval[2:])
    folder = tmp_path / "dd"
    datasets.DatasetDict(
        {"train": datasets.Dataset.from_list(train), "test": datasets.Dataset.from_list(test)}
    ).save_to_disk(str(folder))
    result = CliRunner().invoke(main, ["scan", str(folder)])
    assert result.exit_code == 2
    assert result.stderr == (
        f"Error: {folder}: a datasets DatasetDict that holds the splits train, test; "
        "choose one with --split, e.g. --split train\n"
    )
    wrong = CliRunner().invoke(main, ["scan", str(folder), "--split", "dev"])
    assert wrong.exit_code == 2 and "has no split 'dev'; its splits are train, test" in wrong.stderr
    got = scan(str(folder), tokenizer=tok, dataset_split="test")
    assert numbers(got) == numbers(scan([str(p) for p in retrieval[2:]], tokenizer=tok))
    assert (got.inputs[0].path, got.inputs[0].split) == (str(folder / "test"), "test")
    with pytest.raises(InputError, match="only a folder, a datasets folder or a hub id"):
        scan(str(retrieval[0]), tokenizer=tok, dataset_split="train")


def test_an_uncached_hub_dataset_offline_fails_in_one_line(tmp_path):
    env = {
        **os.environ,
        "PYTHONPATH": str(REPO),
        "HF_HUB_OFFLINE": "1",
        "HF_HOME": str(tmp_path / "hf"),  # an empty cache
    }
    done = subprocess.run(
        [sys.executable, "-m", "lenprof", "scan", "hf://nobody/no-such-dataset", "--split", "train"],
        capture_output=True,
        text=True,
        timeout=120,  # a guard against a hang (retries), not a measurement
        env=env,
        cwd=tmp_path,
    )
    assert done.returncode == 2, done.stderr
    assert done.stderr.count("\n") == 1
    assert done.stderr.startswith(
        "Error: hf://nobody/no-such-dataset: cannot load the dataset "
        "(offline: only what the Hugging Face cache holds can be read): "
    )


def test_a_hub_id_needs_a_split_and_the_extra(monkeypatch):
    result = CliRunner().invoke(main, ["scan", "hf://org/name"])
    assert (result.exit_code, result.stderr) == (
        2,
        "Error: hf://org/name: a hub dataset needs --split (e.g. --split train)\n",
    )
    monkeypatch.setitem(sys.modules, "datasets", None)  # as if the extra were not installed
    result = CliRunner().invoke(main, ["scan", "hf://org/name", "--split", "train"])
    assert (result.exit_code, result.stderr) == (
        2,
        "Error: hf://org/name: reading datasets needs the datasets library: pip install 'lenprof[hf]'\n",
    )


def test_an_unreachable_hub_goes_offline_at_once(monkeypatch):
    """No network: one probe fails, the load reads the cache only (no retries), one line."""
    import socket

    from lenprof.io.readers import hf

    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    monkeypatch.delenv("HF_DATASETS_OFFLINE", raising=False)
    probes = []

    def no_route(address, timeout):
        probes.append((address, timeout))
        raise OSError(-2, "Name or service not known")

    monkeypatch.setattr(socket, "create_connection", no_route)
    with pytest.raises(InputError) as failed:
        hf.load(hf.hub("hf://nobody/no-such-dataset", "train"))
    assert probes == [(("huggingface.co", 443), 3.0)]
    assert str(failed.value).startswith(
        "hf://nobody/no-such-dataset: cannot load the dataset (huggingface.co cannot be reached "
        "(Name or service not known); only what the Hugging Face cache holds can be read): "
    )


def test_a_cached_hub_dataset_is_read_offline(tok, retrieval, tmp_path, monkeypatch):
    """What a past load_dataset("acme/pairs") left in the cache serves the scan, with no network."""
    import glob
    import shutil

    cache = tmp_path / "cache"
    datasets.load_dataset(
        "json", data_files={"train": str(retrieval[2])}, split="train", cache_dir=str(cache)
    )
    [built] = [p for p in glob.glob(str(cache / "json" / "*" / "*" / "*")) if os.path.isdir(p)]
    home = cache / "acme___pairs" / "default" / "0.0.0"  # where a hub load of acme/pairs caches
    home.mkdir(parents=True)
    shutil.move(built, home / os.path.basename(built))
    for arrow in (home / os.path.basename(built)).glob("json-*.arrow"):
        arrow.rename(arrow.with_name("pairs-" + arrow.name.removeprefix("json-")))
    monkeypatch.setattr(datasets.config, "HF_DATASETS_CACHE", str(cache))
    got = scan("hf://acme/pairs", tokenizer=tok, dataset_split="train")
    assert numbers(got) == numbers(scan(str(retrieval[2]), tokenizer=tok))
    assert (got.inputs[0].path, got.inputs[0].format, got.inputs[0].split) == (
        "hf://acme/pairs",
        "datasets",
        "train",
    )
