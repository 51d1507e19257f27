"""Messages a user meets when something is off: exact lines and exit codes."""

from __future__ import annotations

import json

import pytest
from click.testing import CliRunner

from lenprof.cli import main
from lenprof.report import FORMATS


def invoke(*args: str):
    return CliRunner().invoke(main, list(args), catch_exceptions=False)


# --- zero kept rows: exit 2 and one line, for every format ------------------------------------


@pytest.fixture
def unusable(tmp_path):
    data = tmp_path / "st.jsonl"
    data.write_text(
        '{"anchor": "a", "positive": "p", "negative": "n"}\n'
        '{"anchor": "b", "positive": "q", "negative": "m"}\n'
        "not json\n"
    )
    return data


@pytest.mark.parametrize("fmt", list(FORMATS))
def test_no_row_kept_is_exit_2_for_every_format(unusable, tmp_path, fmt):
    rejects = tmp_path / "rejects.jsonl"
    result = invoke("scan", str(unusable), "--format", fmt, "--rejects", str(rejects))
    assert (result.exit_code, result.stdout) == (2, "")
    assert result.stderr == (
        "Error: no row was kept: 3 read, all dropped (missing_field 2, malformed_json 1); "
        f"does the data use other keys? see --fields; each dropped row is in {rejects}\n"
    )
    # the rejects still say which rows, and why
    assert [json.loads(line)["reason"] for line in rejects.read_text().splitlines()] == [
        "missing_field",
        "missing_field",
        "malformed_json",
    ]


def test_no_row_kept_without_rejects_says_how_to_get_them(unusable):
    result = invoke("scan", str(unusable), "-q")
    assert (result.exit_code, result.stdout) == (2, "")
    assert result.stderr.endswith("; --rejects FILE writes each dropped row with its reason\n")


def test_empty_input_is_exit_2_too(tmp_path):
    empty = tmp_path / "empty.jsonl"
    empty.write_text("\n\n")
    result = invoke("scan", str(empty), "--format", "json")
    assert (result.exit_code, result.stdout) == (2, "")
    assert result.stderr == (
        "Error: no row was read: the inputs hold no rows (blank lines only, or empty files)\n"
    )


@pytest.mark.parametrize("fmt", list(FORMATS))
def test_recommend_from_a_profile_that_kept_nothing_is_exit_2(unusable, tmp_path, fmt):
    profile = tmp_path / "profile.json"
    assert invoke("scan", str(unusable), "--out", str(profile), "-q").exit_code == 2
    assert json.loads(profile.read_text())["samples"]["kept"] == 0  # --out is still written
    result = invoke("recommend", str(profile), "--format", fmt)
    assert (result.exit_code, result.stdout) == (2, "")
    assert result.stderr == (
        f"Error: {profile}: its scan kept no row, so there are no lengths to recommend\n"
    )
