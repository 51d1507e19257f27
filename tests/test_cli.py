"""The command line: exact output for a small fixture, formats, exit codes and messages."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys

import pytest
from click.testing import CliRunner
from conftest import DEFAULT_TOKENIZER, EXAMPLES, REPO

from lenprof.cli import main

DIRTY = str(EXAMPLES / "dirty.jsonl")


def run(*args: str):
    result = CliRunner().invoke(main, ["scan", *args], catch_exceptions=False)
    return result


def test_table_is_exact(tok):
    result = run(DIRTY)
    assert result.exit_code == 0
    assert result.stdout == (REPO / "tests" / "golden" / "dirty_table.txt").read_text()
    assert result.stderr == (
        DEFAULT_TOKENIZER + "lenprof: 11 rows dropped; --rejects FILE writes each with its line and reason\n"
    )


def test_args_line_is_all_stdout_carries():
    result = run(DIRTY, "--format", "args", "-q", "--tokenizer", "sentence-transformers/all-MiniLM-L6-v2")
    assert (result.exit_code, result.stdout, result.stderr) == (
        0,
        "--query_max_len 8 --passage_max_len 40\n",
        "",
    )


def test_the_default_tokenizer_is_named_even_with_q(tmp_path, monkeypatch):
    """Issue 22, point 6b: with `-q --format args`, a forgotten LENPROF_TOKENIZER measured every
    length with all-MiniLM-L6-v2 and said nothing. Named, the tokenizer is no default: silence."""

    def said() -> tuple[str, str]:
        result = run(DIRTY, "--format", "args", "-q")
        return result.stdout, result.stderr

    args, packaged = "--query_max_len 8 --passage_max_len 40\n", "sentence-transformers/all-MiniLM-L6-v2"
    monkeypatch.delenv("LENPROF_TOKENIZER", raising=False)
    assert said() == (args, DEFAULT_TOKENIZER)
    monkeypatch.setenv("LENPROF_TOKENIZER", packaged)
    assert said() == (args, "")
    monkeypatch.delenv("LENPROF_TOKENIZER")
    (tmp_path / "pyproject.toml").write_text(f'[tool.lenprof]\ntokenizer = "{packaged}"\n')
    monkeypatch.chdir(tmp_path)
    assert said() == (args, "")


def test_json_contract(tmp_path):
    out = tmp_path / "profile.json"
    result = run(
        DIRTY, str(EXAMPLES / "msmarco.jsonl"), "--format", "json", "--out", str(out), "--coverage", "99"
    )
    assert result.exit_code == 0
    d = json.loads(result.stdout)
    assert d == json.loads(out.read_text())
    assert d["schema"] == "lenprof.profile/1"
    assert (
        d["tokenizer"]["name"] == "sentence-transformers/all-MiniLM-L6-v2"
        and d["tokenizer"]["model_max_length"] == 512
    )
    assert [i["path"] for i in d["inputs"]] == [DIRTY, str(EXAMPLES / "msmarco.jsonl")]
    assert all(i["format"] == "jsonl" for i in d["inputs"])
    s = d["samples"]
    assert set(s) >= {"read", "blank", "kept", "dropped", "repaired"}
    assert s["read"] == s["kept"] + sum(s["dropped"].values()) == 24
    for field in ("query", "pos", "neg", "passage"):
        f = d["fields"][field]
        assert set(f) >= {"count", "unique", "min", "max", "mean", "percentiles"}
        assert list(f["percentiles"]) == ["50", "90", "95", "99", "99.9"]
    rec = d["recommendation"]
    assert {k: rec[k] for k in ("coverage", "multiple_of", "cap")} == {
        "coverage": 99,
        "multiple_of": 8,
        "cap": 512,
    }
    assert rec["query_max_len"] % 8 == 0 and rec["passage_max_len"] % 8 == 0


def test_clean_and_rejects_files(tmp_path):
    clean, rejects = tmp_path / "clean.jsonl", tmp_path / "rejects.jsonl"
    result = run(DIRTY, "--clean-out", str(clean), "--rejects", str(rejects))
    assert result.exit_code == 0
    assert result.stderr == DEFAULT_TOKENIZER + (
        f"lenprof: 3 cleaned rows written to {clean}\n"
        f"lenprof: {clean}: every row has the same keys, written with null as 'pos_scores' on 2 rows, "
        "null as 'neg_scores' on 2 rows\n"
        f"lenprof: 11 dropped rows written to {rejects}\n"
    )
    assert len(clean.read_text().splitlines()) == 3 and len(rejects.read_text().splitlines()) == 11


def test_fail_on_drop_exits_1():
    assert run(DIRTY, "--fail-on-drop", "-q").exit_code == 1
    assert run(str(EXAMPLES / "msmarco.jsonl"), "--fail-on-drop", "-q").exit_code == 0


@pytest.mark.parametrize(
    "args, message",
    [
        (["missing.jsonl"], "Error: missing.jsonl: no such file or folder\n"),
        ([DIRTY, "--fields", "query=a=b"], "Error: --fields: cannot read 'query=a=b'"),
        (
            [DIRTY, "--clean-out", DIRTY],
            f"Error: {DIRTY}: this output would overwrite an input; choose another path\n",
        ),
        (
            [DIRTY, "--rejects", "r.csv"],
            "Error: r.csv: output must end in .jsonl, .json, .jsonl.gz or .parquet\n",
        ),
        ([DIRTY, "--tokenizer", "./nowhere"], "Error: --tokenizer ./nowhere: no such file or folder\n"),
        (
            [DIRTY, "--query-instruction-format", "{}"],
            "Error: query_instruction_format '{}' must take two plain {} fields",
        ),
        ([DIRTY, "--coverage", "0"], "Invalid value for '--coverage'"),
    ],
)
def test_usage_errors_exit_2_with_a_message(args, message):
    result = run(*args)
    assert result.exit_code == 2
    assert message in result.stderr
    assert result.stdout == ""


def test_tokenizer_from_environment(monkeypatch, tmp_path):
    from lenprof.count.tokenizer import packaged_model_path

    shutil.copy(packaged_model_path() / "tokenizer.json", tmp_path / "tokenizer.json")
    monkeypatch.setenv("LENPROF_TOKENIZER", str(tmp_path / "tokenizer.json"))
    result = run(DIRTY, "--format", "json", "-q")
    assert json.loads(result.stdout)["tokenizer"]["name"] == str(tmp_path / "tokenizer.json")


def test_all_rows_dropped_says_why(tmp_path):
    data = tmp_path / "pairs.jsonl"
    data.write_text('{"query": "a", "pos": ["p"]}\n')
    result = run(str(data), "--format", "args")
    assert result.exit_code == 2
    assert result.stderr.startswith("Error: no row was kept: 1 read, all dropped (no_negatives 1); ")
    assert "to train on in-batch negatives only, --min-neg 0 keeps rows without any" in result.stderr
    ok = run(str(data), "--min-neg", "0", "--format", "args", "-q")
    assert ok.stdout == "--query_max_len 8 --passage_max_len 8\n"


def test_python_dash_m_and_console_script_run_offline():
    proc = subprocess.run(
        [sys.executable, "-m", "lenprof", "scan", DIRTY, "--format", "args"],
        capture_output=True,
        text=True,
        check=False,
    )
    assert (proc.returncode, proc.stdout) == (0, "--query_max_len 8 --passage_max_len 40\n")
    assert "PyTorch was not found" not in proc.stderr


@pytest.mark.parametrize(
    "fmt, expected",
    [
        ("yaml", "# lenprof: p95 of token lengths, multiple of 8, cap 512, tokenizer sentence-transformers/all-MiniLM-L6-v2\nquery_max_len: 8\npassage_max_len: 40\n"),
        ("env", "QUERY_MAX_LEN=8\nPASSAGE_MAX_LEN=40\n"),
        ("st", "model.max_seq_length = 40  # sentence-transformers: one limit serves queries and passages alike (query_max_len 8, passage_max_len 40; p95 of token lengths, multiple of 8, cap 512, tokenizer sentence-transformers/all-MiniLM-L6-v2)\n"),
    ],
)  # fmt: skip
def test_config_formats(fmt, expected):
    result = run(DIRTY, "--format", fmt, "-q")
    assert (result.exit_code, result.stdout) == (0, expected)


def test_yaml_and_env_formats_load_as_what_they_say():
    import yaml

    assert yaml.safe_load(run(DIRTY, "--format", "yaml", "-q").stdout) == {
        "query_max_len": 8,
        "passage_max_len": 40,
    }
    env = dict(line.split("=") for line in run(DIRTY, "--format", "env", "-q").stdout.split())
    assert env == {"QUERY_MAX_LEN": "8", "PASSAGE_MAX_LEN": "40"}


def test_markdown_table_has_every_field():
    md = run(DIRTY, "--format", "markdown", "-q").stdout
    table = [line for line in md.splitlines() if line.startswith("|")]
    assert table[0] == "| field | texts | unique | min | mean | p50 | p90 | p95 | p99 | p99.9 | max |"
    assert table[2] == "| query | 3 | 3 | 7 | 7.7 | 8 | 8 | 8 | 8 | 8 | 8 |"
    assert [row.split(" | ")[0] for row in table[2:]] == ["| query", "| pos", "| neg", "| passage"]
    assert md.endswith(
        "Recommended: `query_max_len` 8, `passage_max_len` 40 (p95 of token lengths, multiple of 8, cap 512, tokenizer sentence-transformers/all-MiniLM-L6-v2).\n"
    )


@pytest.mark.parametrize(
    "settings", [["--coverage", "99"], ["--multiple-of", "64"], ["--coverage", "50", "--multiple-of", "1"]]
)
def test_recommend_from_a_saved_profile_equals_a_fresh_scan(tmp_path, settings):
    saved = tmp_path / "p.json"
    assert run(str(EXAMPLES), "--out", str(saved), "-q").exit_code == 0
    rescanned = json.loads(run(str(EXAMPLES), "--format", "json", "-q", *settings).stdout)["recommendation"]
    result = CliRunner().invoke(
        main, ["recommend", str(saved), "--format", "json", *settings], catch_exceptions=False
    )
    assert result.exit_code == 0
    assert json.loads(result.stdout)["recommendation"] == rescanned


def test_recommend_with_another_cap(tmp_path):
    saved = tmp_path / "p.json"
    run(str(EXAMPLES), "--out", str(saved), "-q")
    result = CliRunner().invoke(main, ["recommend", str(saved), "--cap", "128", "--format", "json"])
    rec = json.loads(result.stdout)["recommendation"]
    assert (rec["cap"], rec["passage_max_len"], rec["cap_binds"]["passage"]) == (128, 128, True)
    none = CliRunner().invoke(
        main, ["recommend", str(saved), "--cap", "0", "--coverage", "100", "--format", "args"]
    )
    assert none.stdout == "--query_max_len 56 --passage_max_len 176\n"  # max 51 and 175, rounded up


def test_recommend_refuses_what_is_not_a_profile(tmp_path):
    bad = tmp_path / "x.json"
    bad.write_text('{"schema": "something/else"}')
    result = CliRunner().invoke(main, ["recommend", str(bad)])
    assert result.exit_code == 2
    assert result.stderr == (
        f"Error: {bad}: not a lenprof profile (schema 'something/else', expected 'lenprof.profile/1'); "
        "write a profile with lenprof scan --out\n"
    )


def test_defaults_from_pyproject_then_environment_then_flags(tmp_path, monkeypatch):
    (tmp_path / "pyproject.toml").write_text(
        '[project]\nname = "x"\n\n[tool.lenprof]\ncoverage = 100\nmultiple_of = 1\n\n[tool.lenprof.scan]\nformat = "args"\n'
    )
    sub = tmp_path / "sub"
    sub.mkdir()
    monkeypatch.chdir(sub)  # the nearest pyproject.toml upwards
    monkeypatch.delenv("LENPROF_COVERAGE", raising=False)
    assert run(DIRTY, "-q").stdout == "--query_max_len 8 --passage_max_len 33\n"  # p100 = max
    monkeypatch.setenv("LENPROF_COVERAGE", "50")
    assert run(DIRTY, "-q").stdout == "--query_max_len 8 --passage_max_len 13\n"  # p50
    assert run(DIRTY, "-q", "--coverage", "90").stdout == "--query_max_len 8 --passage_max_len 29\n"  # p90


def test_unknown_pyproject_keys_are_named(tmp_path, monkeypatch):
    (tmp_path / "pyproject.toml").write_text("[tool.lenprof]\ncoverge = 99\nclean-out = 'x.jsonl'\n")
    monkeypatch.chdir(tmp_path)
    result = run(DIRTY)
    assert result.exit_code == 2
    assert (
        f"{tmp_path / 'pyproject.toml'}: [tool.lenprof] has unknown keys clean-out, coverge; known keys: "
        in result.stderr
    )
