"""Splits in a folder, as ``datasets.load_dataset`` finds them: the oracle is datasets' own pattern
resolution (``get_data_patterns``), on folders built from the names that trip it up; a folder of
two or more splits is refused whole, ``--split`` picks one, and no cleaned output mixes them."""

from __future__ import annotations

import json
import os

import pytest
from click.testing import CliRunner
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from lenprof.cli import main
from lenprof.io.readers.splits import layout

ROW = {"query": "what is a split", "pos": ["a part of a dataset"], "neg": ["a banana"]}

WORDS = ["train", "training", "test", "testing", "eval", "dev", "val", "valid", "validation",
         "notes", "trainer", "contest", "data", "x"]  # fmt: skip
SEPS = ["-", "_", ".", "", "0", " "]
part = st.builds(lambda a, s, b: a + s + b, st.sampled_from(WORDS), st.sampled_from(SEPS), st.sampled_from(WORDS + [""]))  # fmt: skip
path = st.lists(part, min_size=1, max_size=3).map(lambda parts: "/".join(parts) + ".jsonl")
sharded = st.builds(lambda s, n: f"data/{s}-{n:05d}-of-00002.jsonl", st.sampled_from(["train", "test", "dev", "extra"]), st.integers(0, 1))  # fmt: skip


def datasets_splits(root) -> dict[str, set[str]]:
    from datasets.data_files import DataFilesDict, get_data_patterns

    patterns = get_data_patterns(str(root))
    files = DataFilesDict.from_patterns(patterns, base_path=str(root))
    return {split: {os.path.relpath(f, root) for f in found} for split, found in files.items()}


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(names=st.lists(path | sharded, min_size=1, max_size=5, unique=True))
def test_the_splits_are_those_datasets_finds(tmp_path_factory, names):
    root = tmp_path_factory.mktemp("ds")
    files = []
    for name in names:
        p = root / name
        if any(q.is_file() for q in [p, *p.parents] if q != root) or p.is_dir():
            continue  # a name that is another's folder
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_text("{}\n")
        files.append(str(p))
    want = datasets_splits(root)
    got = {s: {os.path.relpath(f, root) for f in fs} for s, fs in layout(str(root), sorted(files)).items()}
    assert (got or {"train": {os.path.relpath(f, root) for f in files}}) == want


@pytest.fixture
def hub_folder(tmp_path):
    data = tmp_path / "ds" / "data"
    data.mkdir(parents=True)
    for split, n in (("train", 4), ("test", 2)):
        rows = [dict(ROW, query=f"{split} question {i}") for i in range(n)]
        (data / f"{split}-00000-of-00001.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    return tmp_path / "ds"


def test_a_folder_of_splits_is_refused_whole_and_lists_them(hub_folder, tmp_path):
    result = CliRunner().invoke(main, ["scan", str(hub_folder), "--clean-out", f"{tmp_path}/clean/"])
    assert result.exit_code == 2
    assert result.stderr == (
        f"Error: {hub_folder}: holds 2 splits, as datasets.load_dataset reads it: "
        "train (data/train-00000-of-00001.jsonl); test (data/test-00000-of-00001.jsonl); "
        "scan one with --split train, never all of them as one corpus\n"
    )
    assert not (tmp_path / "clean").exists()


def test_split_picks_one_for_a_folder_and_the_cleaned_folder_holds_only_it(hub_folder, tmp_path):
    out = tmp_path / "clean"
    result = CliRunner().invoke(
        main,
        ["scan", str(hub_folder), "--split", "train", "-q", "--format", "json", "--clean-out", f"{out}/"],
    )
    assert result.exit_code == 0, result.output
    profile = json.loads(result.stdout)
    assert [(i["path"], i["split"]) for i in profile["inputs"]] == [
        (str(hub_folder / "data" / "train-00000-of-00001.jsonl"), "train")
    ]
    written = sorted(p.relative_to(out).as_posix() for p in out.rglob("*") if p.is_file())
    assert written == ["train-00000-of-00001.jsonl"]
    queries = [json.loads(line)["query"] for line in (out / written[0]).read_text().splitlines()]
    assert queries == [f"train question {i}" for i in range(4)]
    missing = CliRunner().invoke(main, ["scan", str(hub_folder), "--split", "validation"])
    assert missing.exit_code == 2
    assert "no split 'validation'; its splits are train (data/train-00000-of-00001.jsonl)" in missing.stderr


def test_files_of_two_splits_given_one_by_one_are_profiled_but_never_cleaned_together(hub_folder, tmp_path):
    train, test = sorted((hub_folder / "data").iterdir())[::-1]
    result = CliRunner().invoke(main, ["scan", str(train), str(test), "-q", "--format", "json"])
    assert result.exit_code == 0
    assert [i["split"] for i in json.loads(result.stdout)["inputs"]] == ["train", "test"]
    for out in (f"{tmp_path}/clean/", f"{tmp_path}/clean.jsonl"):
        refused = CliRunner().invoke(main, ["scan", str(train), str(test), "--clean-out", out])
        assert refused.exit_code == 2
        assert (
            f"Error: {out}: the cleaned rows would mix splits train ({train}); test ({test})"
            in refused.stderr
        )


def test_split_on_a_file_alone_says_what_has_splits(hub_folder):
    result = CliRunner().invoke(main, ["scan", str(hub_folder / "data" / "train-00000-of-00001.jsonl"), "--split", "train"])  # fmt: skip
    assert result.exit_code == 2
    assert "only a folder, a datasets folder or a hub id (hf://ORG/NAME) has splits" in result.stderr


def test_evaluation_data_of_several_splits_is_read_whole_by_against(hub_folder, tmp_path):
    """--against looks for test rows in the training data: every split of its folder is test data."""
    train = hub_folder / "data" / "train-00000-of-00001.jsonl"
    evaluation = tmp_path / "eval"
    evaluation.mkdir()
    for split in ("test", "validation"):
        rows = [dict(ROW, query=f"train question {i}") for i in (1, 2) if split == "test" or i == 2]
        (evaluation / f"{split}.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    result = CliRunner().invoke(main, ["scan", str(train), "--against", str(evaluation), "--format", "json"])
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["samples"]["warnings"]["eval_query_leak"] == 2


def test_test_files_beside_files_in_no_split_are_refused_whole(tmp_path):
    """datasets reads `eval_results/` as the test split and ignores train.jsonl beside it: scanned
    whole, the test rows would be trained on."""
    folder = tmp_path / "ds"
    (folder / "eval_results").mkdir(parents=True)
    (folder / "train.jsonl").write_text(json.dumps(ROW) + "\n")
    (folder / "eval_results" / "x.jsonl").write_text(json.dumps(dict(ROW, query="held out")) + "\n")
    whole = CliRunner().invoke(main, ["scan", str(folder)])
    assert whole.exit_code == 2
    assert "holds 1 split, as datasets.load_dataset reads it: test (eval_results/x.jsonl), and 1 files in no split" in whole.stderr  # fmt: skip
    train = CliRunner().invoke(main, ["scan", str(folder), "--split", "train"])
    assert train.exit_code == 2 and "the 1 files in no split are scanned by naming them" in train.stderr
    test = CliRunner().invoke(main, ["scan", str(folder), "--split", "test", "-q", "--format", "json"])
    assert [i["path"] for i in json.loads(test.stdout)["inputs"]] == [
        str(folder / "eval_results" / "x.jsonl")
    ]


def test_hidden_and_special_entries_are_not_read(tmp_path):
    """As datasets: .git/, .backup.jsonl and __pycache__/ are no data of the folder."""
    folder = tmp_path / "ds"
    for name in ("a.jsonl", ".backup.jsonl", ".git/x.jsonl", "__pycache__/y.jsonl", ".test.jsonl"):
        (folder / name).parent.mkdir(parents=True, exist_ok=True)
        (folder / name).write_text(json.dumps(dict(ROW, query=name)) + "\n")
    result = CliRunner().invoke(main, ["scan", str(folder), "-q", "--format", "json"])
    assert result.exit_code == 0, result.output
    assert [i["path"] for i in json.loads(result.stdout)["inputs"]] == [str(folder / "a.jsonl")]


def test_against_data_that_is_also_scanned_is_refused(hub_folder):
    train = hub_folder / "data" / "train-00000-of-00001.jsonl"
    result = CliRunner().invoke(main, ["scan", str(train), "--against", str(hub_folder / "data")])
    assert result.exit_code == 2
    assert (
        result.stderr
        == f"Error: {train}: is both scanned and --against test data: every row would be its own leak\n"
    )
