"""The command line: exact output for a small fixture, formats, exit codes and messages."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys

import pytest
from click.testing import CliRunner
from conftest import EXAMPLES, REPO

from lenprof.cli import main

DIRTY = str(EXAMPLES / "dirty.jsonl")


def run(*args: str):
    result = CliRunner().invoke(main, ["scan", *args], catch_exceptions=False)
    return result


def test_table_is_exact(tok):
    result = run(DIRTY)
    assert result.exit_code == 0
    assert result.stdout == (REPO / "tests" / "golden" / "dirty_table.txt").read_text()
    assert result.stderr == "lenprof: 11 rows dropped; --rejects FILE writes each with its line and reason\n"


def test_args_line_is_all_stdout_carries():
    result = run(DIRTY, "--format", "args", "-q")
    assert (result.exit_code, result.stdout, result.stderr) == (
        0,
        "--query_max_len 8 --passage_max_len 40\n",
        "",
    )


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
    assert result.stderr == (
        f"lenprof: 3 cleaned rows written to {clean}\nlenprof: 11 dropped rows written to {rejects}\n"
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
            "Error: query_instruction_format '{}' must take two {} fields",
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
    from lenprof.tokenize import packaged_model_path

    shutil.copy(packaged_model_path() / "tokenizer.json", tmp_path / "tokenizer.json")
    monkeypatch.setenv("LENPROF_TOKENIZER", str(tmp_path / "tokenizer.json"))
    result = run(DIRTY, "--format", "json", "-q")
    assert json.loads(result.stdout)["tokenizer"]["name"] == str(tmp_path / "tokenizer.json")


def test_all_rows_dropped_says_why(tmp_path):
    data = tmp_path / "st.jsonl"
    data.write_text('{"anchor": "a", "positive": "p", "negative": "n"}\n')
    result = run(str(data), "--format", "args")
    assert result.exit_code == 2
    assert "no rows were kept" in result.stderr
    result = run(str(data))
    assert (
        "the most common reason is missing_field (1 rows) (does the data use other keys? see --fields)"
        in result.stderr
    )
    ok = run(str(data), "--fields", "query=anchor,pos=positive,neg=negative", "--format", "args", "-q")
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
