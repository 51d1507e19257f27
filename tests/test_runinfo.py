"""``Profile.run`` is a typed RunInfo that writes the run record's JSON as before and reads it back."""

from __future__ import annotations

import dataclasses
import json
import shutil

import pytest
from conftest import EXAMPLES

from lenprof import Profile, ProfileError, RunInfo, scan
from lenprof.stats.runinfo import Counting


def _round_trip(profile: Profile) -> Profile:
    return Profile.from_dict(json.loads(json.dumps(profile.to_dict())))


@pytest.fixture(scope="module")
def scanned(tok, tmp_path_factory):
    out = tmp_path_factory.mktemp("clean")
    test = (
        tmp_path_factory.mktemp("test") / "msmarco.jsonl"
    )  # a copy: a scanned file cannot be its own test data
    shutil.copy(EXAMPLES / "msmarco.jsonl", test)
    return scan(
        str(EXAMPLES),
        tokenizer=tok,
        against=[str(test)],
        clean_out=f"{out}/",
        workers=1,
    )


def test_a_scans_run_record_round_trips_with_its_keys_in_order(scanned):
    run = scanned.run
    assert run.engine == "local" and run.workers == 1 and run.shards == 2
    assert run.against is not None and (run.against.rows, run.against.drop_leaks) == (10, False)
    assert run.counting is not None and run.counting.path == "chunks:bert-wordpiece"
    assert list(scanned.to_dict()["run"]) == [
        "engine", "workers", "shards", "seconds", "tokenize_s", "against", "filled", "not_written",
        "prompted", "texts_tokenized", "counting",
    ]  # fmt: skip
    back = _round_trip(scanned)
    assert back.run == run and back.to_dict() == scanned.to_dict()


def test_a_failed_fast_count_is_kept_and_an_empty_reason_left_out(scanned):
    failed = dataclasses.replace(scanned.run.counting, fast_path_failed="the chunk count of 'x' was 3, not 4")
    p = dataclasses.replace(scanned, run=dataclasses.replace(scanned.run, counting=failed, against=None))
    d = p.to_dict()["run"]
    assert "against" not in d and d["counting"]["fast_path_failed"] == failed.fast_path_failed
    assert _round_trip(p).run == p.run
    assert Counting("tokenizer", 0.0, 0, fast_path_failed="").to_dict() == {
        "path": "tokenizer",
        "fast_share": 0.0,
        "self_checked": 0,
    }


@pytest.mark.parametrize(
    "old",
    [
        None,  # no run record at all
        {},
        {"workers": 1, "seconds": 0.5, "tokenize_s": 0.1, "texts_tokenized": 10},  # before engines
        {"engine": "ray", "shards": 3, "seconds": 2, "texts_tokenized": 10},  # an int stays an int
    ],
)
def test_a_profile_from_before_loads_and_is_written_back_as_it_was(scanned, old):
    d = json.loads(json.dumps(scanned.to_dict()))
    if old is None:
        del d["run"]
    else:
        d["run"] = old
    p = Profile.from_dict(d)
    assert p.run.counting is None and p.run.filled is None
    assert p.to_dict()["run"] == (old or {})
    assert json.dumps(p.to_dict()["run"]) == json.dumps(old or {})


@pytest.mark.parametrize(
    "run, message",
    [
        ([], "run must be an object, got list"),
        ({"workers": "2"}, "run.workers must be a whole number"),
        ({"seconds": -1}, "run.seconds must be a number from 0"),
        ({"counting": {"path": 3, "fast_share": 1.0, "self_checked": 1}}, "run.counting.path must be text"),
        ({"counting": {"path": "tokenizer", "fast_share": 2, "self_checked": 1}}, "fast_share must be a number from 0 to 1"),
        ({"counting": {"path": "tokenizer"}}, "missing key 'fast_share'"),
        ({"against": {"files": ["a"], "rows": 1, "drop_leaks": "no"}}, "run.against.drop_leaks must be true or false"),
        ({"filled": {"a.jsonl": {"prompt": -1}}}, "run.filled.a.jsonl.prompt must be a whole number"),
        ({"not_written": "a.jsonl"}, "run.not_written must be a list"),
    ],
)  # fmt: skip
def test_a_damaged_run_record_is_refused_by_name(scanned, run, message):
    d = json.loads(json.dumps(scanned.to_dict()))
    d["run"] = run
    with pytest.raises(ProfileError, match="damaged profile") as exc:
        Profile.from_dict(d)
    assert message in str(exc.value)


def test_a_run_info_is_frozen():
    with pytest.raises(dataclasses.FrozenInstanceError):
        RunInfo().workers = 2  # type: ignore[misc]
