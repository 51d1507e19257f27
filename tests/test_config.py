"""Project defaults: [tool.lenprof.<command>] and [tool.lenprof], and every error naming the
source of a bad value (the file, table and key; the environment variable; the flag)."""

from __future__ import annotations

import json

import pytest
from click.testing import CliRunner
from conftest import EXAMPLES

from lenprof.cli import main
from lenprof.cli.config import load

DIRTY = str(EXAMPLES / "dirty.jsonl")
ARGS_P100 = "--query_max_len 8 --passage_max_len 33\n"  # coverage 100, multiple-of 1: the maxima
ARGS_P50 = "--query_max_len 8 --passage_max_len 13\n"


@pytest.fixture
def project(tmp_path, monkeypatch):
    """Write pyproject.toml in a fresh folder and run lenprof there, without LENPROF_* set."""
    monkeypatch.chdir(tmp_path)
    for var in ("LENPROF_COVERAGE", "LENPROF_FORMAT", "LENPROF_TOKENIZER", "LENPROF_MULTIPLE_OF"):
        monkeypatch.delenv(var, raising=False)
    pyproject = tmp_path / "pyproject.toml"

    def write(text: str):
        pyproject.write_text(text)
        return pyproject

    return write


@pytest.fixture
def history(tmp_path):
    path = tmp_path / "trainer_state.json"
    path.write_text(json.dumps({"log_history": [{"step": i, "loss": 3 - 0.01 * i} for i in range(1, 60)]}))
    return str(path)


def invoke(*args: str):
    return CliRunner().invoke(main, list(args), catch_exceptions=False)


def test_command_tables_apply_to_their_command_only(project, history):
    project(
        "[tool.lenprof]\nmultiple-of = 1\n\n"
        '[tool.lenprof.scan]\nformat = "args"\ncoverage = 100\n\n'
        '[tool.lenprof.diagnose]\nformat = "json"\n'
    )
    assert invoke("scan", DIRTY, "-q").stdout == ARGS_P100
    diagnosed = invoke("diagnose", history)
    assert diagnosed.exit_code == 0 and json.loads(diagnosed.stdout)["steps"] == 59


def test_precedence_flag_env_command_table_shared_table(project, monkeypatch):
    project(
        '[tool.lenprof]\ncoverage = 90\nmultiple-of = 1\n\n[tool.lenprof.scan]\ncoverage = 100\nformat = "args"\n'
    )
    assert invoke("scan", DIRTY, "-q").stdout == ARGS_P100  # the command's table beats [tool.lenprof]
    monkeypatch.setenv("LENPROF_COVERAGE", "50")
    assert invoke("scan", DIRTY, "-q").stdout == ARGS_P50  # the environment beats both
    assert invoke("scan", DIRTY, "-q", "--coverage", "100").stdout == ARGS_P100  # the flag beats all


def test_shared_keys_with_one_meaning_stay_shared(tmp_path):
    (tmp_path / "pyproject.toml").write_text(
        '[tool.lenprof]\ntokenizer = "t"\ncoverage = 99\nquery-instruction = "q: "\nepochs = 2\n'
    )
    config = load(main.commands, tmp_path)
    assert config.defaults["scan"] == {"tokenizer": "t", "coverage": 99, "query_instruction": "q: "}
    assert config.defaults["recommend"] == {"coverage": 99}
    assert config.defaults["train"] == {
        "tokenizer": "t",
        "query_instruction": "q: ",
        "epochs": 2,
    }  # train-only keys too
    assert config.sources["scan"]["coverage"] == f"{tmp_path / 'pyproject.toml'} [tool.lenprof] coverage"


def test_batch_size_per_command(tmp_path):
    (tmp_path / "pyproject.toml").write_text("[tool.lenprof.train]\nbatch_size = 32\n")
    config = load(main.commands, tmp_path)
    assert config.defaults["train"] == {"batch_size": 32}
    assert config.defaults["diagnose"] == {}


@pytest.mark.parametrize(
    "key, value, commands, tables",
    [
        (
            "format",
            '"args"',
            "diagnose, recommend and scan",
            "[tool.lenprof.diagnose], [tool.lenprof.recommend] or [tool.lenprof.scan]",
        ),
        (
            "batch-size",
            "32",
            "diagnose, scan and train",
            "[tool.lenprof.diagnose], [tool.lenprof.scan] or [tool.lenprof.train]",
        ),
    ],
)
@pytest.mark.parametrize("command", ["scan", "diagnose"])
def test_a_shared_key_with_two_meanings_is_refused(project, history, key, value, commands, tables, command):
    path = project(f"[tool.lenprof]\n{key} = {value}\n")
    result = invoke(command, DIRTY if command == "scan" else history)
    assert (result.exit_code, result.stdout) == (2, "")
    assert result.stderr == (
        f"Error: {path}: [tool.lenprof] {key} means different things in {commands}; move it into {tables}\n"
    )


def test_an_unknown_table_or_key_in_a_table_is_named(project):
    path = project("[tool.lenprof.scna]\ncoverage = 99\n")
    result = invoke("scan", DIRTY)
    assert result.exit_code == 2
    assert result.stderr == (
        f"Error: {path}: [tool.lenprof.scna] is not a lenprof command; tables: [tool.lenprof.diagnose], "
        "[tool.lenprof.recommend], [tool.lenprof.scan], [tool.lenprof.train]\n"
    )
    path = project("[tool.lenprof.recommend]\ncoverage = 99\nmin-neg = 0\n")
    result = invoke("scan", DIRTY)
    assert result.exit_code == 2
    assert result.stderr == (
        f"Error: {path}: [tool.lenprof.recommend] has unknown keys min-neg; "
        "known keys: cap, coverage, for-tokenizer, format, multiple-of\n"
    )


@pytest.mark.parametrize(
    "toml, where, problem, flag",
    [
        ("[tool.lenprof.scan]\ncoverage = 0", "[tool.lenprof.scan] coverage", "0.0 is not in the range 0<x<=100", "--coverage"),
        ("[tool.lenprof]\nmultiple-of = 0", "[tool.lenprof] multiple-of", "0 is not in the range x>=1", "--multiple-of"),
        ('[tool.lenprof.scan]\nformat = "csv"', "[tool.lenprof.scan] format", "'csv' is not one of", "--format"),
        ("[tool.lenprof]\ncoverage = true", "[tool.lenprof] coverage", "expected a number, not true", "--coverage"),
        ('[tool.lenprof]\nquery-instruction = ["a", "b"]', "[tool.lenprof] query-instruction", "expected one value, not a list", "--query-instruction"),
    ],
)  # fmt: skip
def test_a_bad_value_in_pyproject_names_file_table_and_key(project, toml, where, problem, flag):
    path = project(toml + "\n")
    result = invoke("scan", DIRTY)
    assert (result.exit_code, result.stdout) == (2, "")
    assert result.stderr.startswith(f"Error: {path} {where}: {problem}")
    assert result.stderr.endswith(f" (fix it there, or override it with {flag})\n")
    assert "LENPROF_" not in result.stderr and "Invalid value for '--" not in result.stderr


def test_a_bad_value_for_another_command_does_not_stop_this_one(project):
    project('[tool.lenprof.train]\nepochs = 0\n\n[tool.lenprof.scan]\nformat = "args"\n')
    assert invoke("scan", DIRTY, "-q").stdout == "--query_max_len 8 --passage_max_len 40\n"


def test_a_bad_value_names_the_flag_or_the_variable_it_came_from(project, monkeypatch):
    project("")
    flag = invoke("scan", DIRTY, "--coverage", "0")
    assert flag.exit_code == 2
    assert "Error: Invalid value for '--coverage': 0.0 is not in the range 0<x<=100.\n" in flag.stderr
    assert "LENPROF_COVERAGE" not in flag.stderr  # click named the variable although the flag was typed
    monkeypatch.setenv("LENPROF_COVERAGE", "0")
    env = invoke("scan", DIRTY)
    assert env.exit_code == 2
    assert (
        "Error: Invalid value for environment variable LENPROF_COVERAGE: 0.0 is not in the range 0<x<=100.\n"
        in env.stderr
    )
    assert "'--coverage'" not in env.stderr


def test_a_library_error_names_where_the_value_was_set(project, monkeypatch):
    path = project('[tool.lenprof]\ntokenizer = "./nowhere"\nquery-instruction-format = "{}"\n')
    fmt = ("--query-instruction-format", "{}{}")  # typed, so the tokenizer is the one bad value
    result = invoke("scan", DIRTY, *fmt)
    assert (result.exit_code, result.stderr) == (
        2,
        f"Error: --tokenizer ./nowhere: no such file or folder (set by {path} [tool.lenprof] tokenizer)\n",
    )
    result = invoke("scan", DIRTY, *fmt, "--tokenizer", "./nowhere")  # typed: the flag is the source
    assert result.stderr == "Error: --tokenizer ./nowhere: no such file or folder\n"
    monkeypatch.setenv("LENPROF_TOKENIZER", "./elsewhere")
    result = invoke("scan", DIRTY, *fmt)
    assert (
        result.stderr == "Error: --tokenizer ./elsewhere: no such file or folder (set by LENPROF_TOKENIZER)\n"
    )
    monkeypatch.delenv("LENPROF_TOKENIZER")
    project('[tool.lenprof.scan]\nquery-instruction-format = "{}"\n')
    result = invoke("scan", DIRTY)
    assert result.exit_code == 2
    assert result.stderr.startswith("Error: query_instruction_format '{}' must take two plain {} fields")
    assert result.stderr.endswith(f"(set by {path} [tool.lenprof.scan] query-instruction-format)\n")
