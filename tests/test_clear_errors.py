"""Internal errors made clear ones (issue 20): deep nesting, coverage and shard-size values, the
signals that end a process, a write-only stdin, a closed stdout pipe, an unterminated CSV quote,
and lenprof's own outputs inside a scanned folder. Each is one line and its exit code, or the
behaviour a careful user expects; never a traceback, never exit 0 with something lost."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from decimal import Decimal
from fractions import Fraction
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner
from conftest import DEFAULT_TOKENIZER, EXAMPLES, write_lines
from hypothesis import given, settings
from hypothesis import strategies as st
from test_signals import corpus, start, workers_alive  # noqa: F401 - corpus is a fixture

from lenprof import InputError, ScanOptions, scan
from lenprof.cli import main
from lenprof.io.readers import delimited
from lenprof.rows.parse import NESTED_TOO_DEEP
from lenprof.stats.histogram import LengthHistogram


def row(i: int, words: int = 1, **extra) -> bytes:
    text = " ".join(["word"] * words)
    return json.dumps(
        {"query": f"question {i}", "pos": [f"answer {i} {text}"], "neg": [f"other {i}"], **extra}
    ).encode()


def nested(depth: int) -> bytes:
    return b"[" * depth + b"]" * depth


def lenprof(*args: str, **kw) -> subprocess.CompletedProcess:
    """The real console entry point, in its own process (signals, exit codes, stderr as users see it)."""
    env = {**os.environ, "LENPROF_DEBUG": ""}
    return subprocess.run(
        [sys.executable, "-m", "lenprof", *args], capture_output=True, text=True, env=env, **kw
    )


def one_line(stderr: str) -> str:
    assert "Traceback" not in stderr, stderr
    lines = stderr.strip().splitlines()
    assert len(lines) == 1, stderr
    return lines[0]


def rejects(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines()]


# --- a. deep nesting -----------------------------------------------------------------------------------


def test_an_array_element_nested_3000_deep_is_dropped_as_in_json_lines(tok, tmp_path):
    rows = [row(0), row(1)[:-1] + b', "x": ' + nested(3000) + b"}", row(2)]
    lines = write_lines(tmp_path / "rows.jsonl", rows)
    array = tmp_path / "rows.json"
    array.write_bytes(b"[" + b",\n".join(rows) + b"]")
    got = {}
    for path in (lines, array):
        out = tmp_path / f"{path.suffix[1:]}.rejects.jsonl"
        profile = scan([str(path)], ScanOptions(), tokenizer=tok, rejects_out=str(out))
        got[path.suffix] = (profile.samples.read, profile.samples.kept, profile.samples.dropped)
        assert [(r["line"], r["reason"], r["detail"]) for r in rejects(out)] == [
            (2, "malformed_json", NESTED_TOO_DEEP)
        ]
    assert got[".json"] == got[".jsonl"] == (3, 2, {"malformed_json": 1})


@pytest.mark.parametrize("workers", [1, 2])
def test_a_row_nests_at_most_100_levels_and_deeper_rows_are_dropped_wherever_they_fail(
    tok, tmp_path, workers
):
    """99 levels inside the row's object are kept and written back; 100 and more are dropped with
    one reason, whether the stack would have ended at 1,000 levels or at writing the row."""
    depths = [1, 99, 100, 500, 990, 2000]
    rows = [row(i)[:-1] + b', "x": ' + nested(d) + b"}" for i, d in enumerate(depths)]
    data = write_lines(tmp_path / "deep.jsonl", rows)
    clean, out = tmp_path / "clean.jsonl", tmp_path / "rejects.jsonl"
    engine = None
    if workers > 1:
        from lenprof.engine import get_engine

        engine = get_engine("local", workers, None)
    profile = scan(
        [str(data)], ScanOptions(), tokenizer=tok, clean_out=str(clean), rejects_out=str(out),
        **({"engine": engine, "shard_bytes": 1000} if engine else {}),
    )  # fmt: skip
    assert [json.loads(line)["query"] for line in clean.read_text().splitlines()] == [
        "question 0",
        "question 1",
    ]
    assert [(r["line"], r["detail"]) for r in rejects(out)] == [(n, NESTED_TOO_DEEP) for n in (3, 4, 5, 6)]
    assert profile.samples.dropped == {"malformed_json": 4}


@pytest.mark.parametrize("command", ["recommend", "diagnose"])
@pytest.mark.parametrize(
    "text", [nested(100_000), b'{"log_history": [{"step": 1, "loss": ' + nested(200) + b"}]}"]
)
def test_recommend_and_diagnose_on_json_nested_deep_say_so_in_one_line(tmp_path, command, text):
    path = tmp_path / "trainer_state.json"
    path.write_bytes(text)
    proc = lenprof(command, str(path))
    assert proc.returncode == 2
    assert one_line(proc.stderr).startswith(
        f"Error: {path}: not JSON (arrays and objects nested more than 100"
    )


# --- b. coverage and shard size -------------------------------------------------------------------------


def exact_numpy(values: np.ndarray, coverage: str) -> int:
    """numpy's own inverted_cdf, fed an exact fraction (an object array keeps numpy's arithmetic exact)."""
    q = np.array([Fraction(coverage) / 100], dtype=object)
    return int(np.quantile(values, q, method="inverted_cdf")[0])


coverages = st.one_of(
    st.decimals(min_value=Decimal("1e-30"), max_value=100, places=30).map(
        lambda d: format(d.normalize(), "f")
    ),
    st.decimals(min_value=0, max_value=100, places=14).filter(lambda d: d > 0).map(str),
    st.floats(min_value=5e-324, max_value=100).map(repr),
    st.sampled_from(["1e-13", "1e-300", "97.33333333333333", "99.9", "50", "100"]),
)


@settings(max_examples=300, deadline=None)
@given(
    st.lists(
        st.tuples(st.integers(0, 3000), st.integers(1, 40_000)),
        min_size=1,
        max_size=12,
        unique_by=lambda t: t[0],
    ),
    coverages,
)
def test_percentile_equals_numpy_inverted_cdf_exactly_for_any_coverage(pairs, coverage):
    """Counts up to 480,000 texts with 30-digit coverages: what int64 arithmetic overflowed on."""
    pairs.sort()
    h = LengthHistogram.from_sparse([length for length, _ in pairs], [n for _, n in pairs])
    values = np.repeat([length for length, _ in pairs], [n for _, n in pairs])
    assert h.percentile(coverage) == exact_numpy(values, coverage)


def test_percentiles_at_tiny_and_long_coverages_are_exact_on_a_large_histogram():
    h = LengthHistogram.from_sparse([1, 9], [5000, 5000])
    assert h.percentile("1e-13") == 1  # int64 overflow gave 9
    assert h.percentile("97.33333333333333") == 9  # an IndexError
    assert h.percentile(1e-300) == 1  # an OverflowError
    assert h.percentile("50") == 1 and h.percentile("50.00000000000001") == 9


@pytest.fixture
def small(tmp_path) -> Path:
    return write_lines(tmp_path / "small.jsonl", [row(i, words=i) for i in range(40)])


@pytest.mark.parametrize(
    ("args", "env", "lengths"),
    [
        (["--coverage", "97.33333333333333"], {}, (8, 48)),
        (["--coverage", "1e-13"], {}, (8, 8)),
        ([], {"LENPROF_COVERAGE": "1e-300"}, (8, 8)),
        (["--coverage", "2.5"], {}, (8, 8)),
    ],
)
def test_coverages_of_any_decimal_are_computed_exactly(small, oracle, args, env, lengths):
    result = CliRunner().invoke(main, ["scan", str(small), "--format", "args", "-q", *args], env=env)
    assert result.exit_code == 0, result.output
    coverage = args[1] if args else env["LENPROF_COVERAGE"]
    rows = [json.loads(line) for line in small.read_text().splitlines()]
    query = exact_numpy(np.array(oracle([r["query"] for r in rows])), coverage)
    passage = exact_numpy(np.array(oracle([t for r in rows for t in r["pos"] + r["neg"]])), coverage)
    assert (-(-query // 8) * 8, -(-passage // 8) * 8) == lengths
    assert result.stdout == f"--query_max_len {lengths[0]} --passage_max_len {lengths[1]}\n"


@pytest.mark.parametrize(
    ("args", "env", "message"),
    [
        (
            ["--coverage", "99.999999999999999"],
            {},
            "'--coverage': 99.999999999999999 cannot be stored exactly",
        ),
        (["--coverage", "1e-400"], {}, "'--coverage': 1e-400 cannot be stored exactly"),
        (["--coverage", "nan"], {}, "'--coverage': nan is not in the range 0<x<=100."),
        (["--coverage", "100.5"], {}, "'--coverage': 100.5 is not in the range 0<x<=100."),
        (
            [],
            {"LENPROF_COVERAGE": "0"},
            "environment variable LENPROF_COVERAGE: 0.0 is not in the range 0<x<=100.",
        ),
        (
            ["--shard-size", "nan"],
            {},
            "'--shard-size': 'nan' is not a finite number; give one in the range x>0",
        ),
        (
            ["--shard-size", "inf"],
            {},
            "'--shard-size': 'inf' is not a finite number; give one in the range x>0",
        ),
        (["--progress-interval", "inf"], {}, "'--progress-interval': 'inf' is not a finite number"),
    ],
)
def test_bad_coverage_or_shard_size_is_a_usage_error_naming_the_option(small, args, env, message):
    result = CliRunner().invoke(main, ["scan", str(small), *args], env=env)
    assert result.exit_code == 2
    assert f"Error: Invalid value for {message}" in result.output
    assert "Traceback" not in result.output


def test_recommend_takes_the_same_coverages_and_the_profile_keeps_its_key(small, tmp_path):
    profile = tmp_path / "p.json"
    for coverage in ("95", "99", "99.9"):
        result = CliRunner().invoke(
            main, ["scan", str(small), "--coverage", coverage, "--out", str(profile), "-q"]
        )
        assert result.exit_code == 0
        assert f'"coverage": {float(coverage)!r},' in profile.read_text()
    again = CliRunner().invoke(main, ["recommend", str(profile), "--coverage", "1e-13", "--format", "args"])
    assert again.exit_code == 0 and again.stdout == "--query_max_len 8 --passage_max_len 8\n"
    bad = CliRunner().invoke(main, ["recommend", str(profile), "--coverage", "97.1234567890123456789"])
    assert bad.exit_code == 2 and "cannot be stored exactly" in bad.output


# --- c. the signals that end a process -----------------------------------------------------------------


@pytest.mark.slow
@pytest.mark.parametrize("sig", [signal.SIGHUP, signal.SIGQUIT, signal.SIGUSR1, signal.SIGALRM])
def test_other_terminating_signals_clean_up_as_sigterm_does(corpus, tmp_path, sig):  # noqa: F811
    out = tmp_path / "out"
    (out / "split").mkdir(parents=True)
    old = {
        name: f"old {name}\n" for name in ("clean.parquet", "rejects.jsonl", "profile.json", "report.html")
    }
    for name, text in old.items():
        (out / name).write_text(text)
    proc = start(corpus, out)
    deadline = time.monotonic() + 60
    while not [p for p in out.rglob("*") if ".lenprof-" in p.name] and time.monotonic() < deadline:
        time.sleep(0.05)  # until it writes its temporary files: mid-run, whatever the machine's speed
    proc.send_signal(sig)
    _, stderr = proc.communicate(timeout=30)
    assert proc.returncode == 128 + sig
    assert (
        one_line(stderr)
        == f"lenprof: terminated by {signal.Signals(sig).name}; no output of this run was changed"
    )
    assert [p.name for p in out.rglob("*") if ".lenprof-" in p.name] == []
    assert {name: (out / name).read_text() for name in old} == old
    deadline = time.monotonic() + 5
    while workers_alive() and time.monotonic() < deadline:
        time.sleep(0.1)
    assert workers_alive() == []


# --- d. a stdin opened for writing only ----------------------------------------------------------------


def test_a_write_only_stdin_is_one_line(tmp_path):
    fd = os.open(tmp_path / "out.txt", os.O_WRONLY | os.O_CREAT)
    try:
        proc = lenprof("scan", "-", "--format", "args", stdin=fd)
    finally:
        os.close(fd)
    assert proc.returncode == 2
    assert one_line(proc.stderr) == (
        "Error: -: stdin cannot be read (it is open for writing only): Bad file descriptor; "
        "pipe rows in (cat rows.jsonl | lenprof scan -) or name the files"
    )


# --- e. a stdout closed before all was written ---------------------------------------------------------


def test_a_stdout_closed_early_is_exit_141_and_one_line(tmp_path):
    """``lenprof scan ... | head -1``: the profile JSON (about 200 KB) outgrows the pipe, the
    reader takes one line and goes: output was lost, so never exit 0, and never a traceback."""
    data = write_lines(tmp_path / "wide.jsonl", [row(i, words=i) for i in range(2500)])
    env = {**os.environ, "LENPROF_DEBUG": ""}
    proc = subprocess.Popen(
        [sys.executable, "-m", "lenprof", "scan", str(data), "--format", "json", "-q"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env,
    )  # fmt: skip
    assert proc.stdout.readline() == b"{\n"
    proc.stdout.close()
    stderr = proc.stderr.read().decode()
    assert proc.wait(timeout=60) == 141
    assert stderr.startswith(DEFAULT_TOKENIZER)  # said before the output, as it names no tokenizer
    assert (
        one_line(stderr.removeprefix(DEFAULT_TOKENIZER))
        == "lenprof: stdout was closed before all output was written to it; the output is cut short"
    )


def test_a_profile_json_is_larger_than_a_pipe_holds(tok, tmp_path):
    """The test above relies on it: a pipe holds 64 KiB on Linux."""
    data = write_lines(tmp_path / "wide.jsonl", [row(i, words=i) for i in range(2500)])
    profile = scan([str(data)], ScanOptions(), tokenizer=tok)
    from lenprof.report import FORMATS

    assert len(FORMATS["json"](profile)) > 2 * 65536  # beyond the pipe and a read buffer


# --- f. an unterminated CSV quote ---------------------------------------------------------------------


def test_an_unterminated_csv_quote_says_how_many_lines_its_row_took(tok, tmp_path):
    data = tmp_path / "rows.csv"
    data.write_text('query,pos,neg\n"a b",hello,x\n"oops,hello,x\nc,d,e\nf,g,h\n')
    out = tmp_path / "rejects.jsonl"
    profile = scan([str(data)], ScanOptions(), tokenizer=tok, rejects_out=str(out))
    assert (profile.samples.read, profile.samples.kept) == (2, 1)
    [reject] = rejects(out)
    assert (reject["line"], reject["reason"]) == (3, "malformed_csv")
    assert reject["detail"] == (
        "a quote opened in this row is never closed, so the row runs to the end of the file: it holds "
        "the 3 lines 3 to 5; close the quote, or double a quote inside a quoted CSV cell"
    )
    assert reject["raw"] == '"oops,hello,x\nc,d,e\nf,g,h'


def test_an_unterminated_quote_is_dropped_even_when_its_cells_fit_the_header():
    """One column: the swallowed lines made one cell, and the row looked whole."""
    pieces = list(delimited.records(iter([b'query\nq1\n"q2\nq3\nq4\n']), ",", 1 << 20))
    records = [r for piece, _ in pieces for r in piece]
    assert records[:2] == [None, {"query": "q1"}]
    assert records[2].reason == "malformed_csv" and "holds the 3 lines 3 to 5" in records[2].detail
    assert records[3:] == [None, None]


def test_a_header_with_an_unterminated_quote_is_an_input_error(tmp_path):
    data = tmp_path / "rows.tsv"
    data.write_text('query\t"pos\nq\tp\n')
    with pytest.raises(
        InputError, match=r"rows.tsv: the header \(line 1\): a quote opened in this row is never closed"
    ):
        list(
            delimited.pieces(
                __import__("lenprof.io.files", fromlist=["classify"]).classify(str(data)), 1 << 20, 1 << 20
            )
        )


def test_multi_line_cells_that_close_are_read_as_before():
    pieces = list(delimited.records(iter([b'query,pos\nq1,"p\n1"\nq2,p2\n']), ",", 1 << 20))
    assert [r for piece, _ in pieces for r in piece] == [
        None,
        {"query": "q1", "pos": "p\n1"},
        None,
        {"query": "q2", "pos": "p2"},
    ]


# --- g. lenprof's own outputs inside the scanned folder -----------------------------------------------


@pytest.fixture
def folder(tmp_path, monkeypatch) -> Path:
    data = tmp_path / "data"
    data.mkdir()
    for name in ("dirty.jsonl", "msmarco.jsonl"):
        shutil.copy(EXAMPLES / name, data / name)
    monkeypatch.chdir(tmp_path)
    return data


def read_and_inputs(result) -> tuple[int, list[str]]:
    assert result.exit_code == 0, result.output
    profile = json.loads(result.stdout)
    return profile["samples"]["read"], [i["path"] for i in profile["inputs"]]


@pytest.mark.parametrize("clean", ["data/clean.jsonl", "data/clean/"])
def test_a_folder_scan_skips_the_outputs_an_earlier_scan_wrote_inside_it(folder, clean, monkeypatch):
    outputs = ["--clean-out", clean, "--rejects", "data/rejects.jsonl", "--out", "data/profile.json",
               "--split-by-length", "0,64", "--split-dir", "data/split"]  # fmt: skip
    first = read_and_inputs(CliRunner().invoke(main, ["scan", "data", "--format", "json", *outputs]))
    assert first == (24, ["data/dirty.jsonl", "data/msmarco.jsonl"])
    again = CliRunner().invoke(main, ["scan", "data", "--format", "json", *outputs])
    assert read_and_inputs(again) == first
    skipped = (
        "data/clean/dirty.jsonl (cleaned rows" if clean.endswith("/") else "data/clean.jsonl (cleaned rows"
    )
    assert "lenprof: data: not read as data, as an earlier scan wrote them: " in again.stderr
    assert skipped in again.stderr and "data/profile.json (a lenprof profile)" in again.stderr
    # from inside the folder, whose profile names everything relative to the folder above
    monkeypatch.chdir(folder)
    assert read_and_inputs(CliRunner().invoke(main, ["scan", ".", "--format", "json"])) == (
        24,
        ["dirty.jsonl", "msmarco.jsonl"],
    )


def test_a_rejects_file_inside_the_folder_is_skipped_without_a_profile(folder):
    first = CliRunner().invoke(main, ["scan", "data", "--format", "json", "--rejects", "data/rejects.jsonl"])
    again = CliRunner().invoke(main, ["scan", "data", "--format", "json"])
    assert (
        read_and_inputs(again) == read_and_inputs(first) == (24, ["data/dirty.jsonl", "data/msmarco.jsonl"])
    )
    assert "data/rejects.jsonl (a lenprof rejects file)" in again.stderr


def test_cleaned_rows_inside_the_folder_without_a_profile_are_refused(folder):
    # without a profile there, nothing would tell the next scan of data/ that they are no data
    for target in (
        ["--clean-out", "data/c2.jsonl"],
        ["--split-by-length", "0,64", "--split-dir", "data/split"],
    ):
        refused = CliRunner().invoke(main, ["scan", "data", *target, "--format", "args"])
        assert refused.exit_code == 2 and refused.stdout == ""
        assert refused.stderr == (
            f"Error: {' '.join(target[-2:])}: inside the scanned folder data, so a later scan of it would read "
            "them as data; write them elsewhere, or add --out data/profile.json (a scan skips what a profile "
            "there lists)\n"
        )
    assert sorted(p.name for p in folder.iterdir()) == ["dirty.jsonl", "msmarco.jsonl"]


def test_a_file_put_where_an_old_profile_lists_an_output_is_read_as_data(folder):
    first = CliRunner().invoke(
        main,
        ["scan", "data/msmarco.jsonl", "--out", "data/p.json", "--clean-out", "data/cleaned.jsonl", "-q"],
    )
    assert first.exit_code == 0
    assert read_and_inputs(CliRunner().invoke(main, ["scan", "data", "--format", "json"]))[0] == 24
    # new data copied over the old cleaned rows: newer than the profile, so read again
    time.sleep(0.01)
    shutil.copy(EXAMPLES / "dirty.jsonl", folder / "cleaned.jsonl")
    read, inputs = read_and_inputs(CliRunner().invoke(main, ["scan", "data", "--format", "json"]))
    assert "data/cleaned.jsonl" in inputs and read == 24 + 14


@pytest.mark.parametrize("flag", ["--out", "--report"])
def test_no_output_replaces_the_tokenizers_files(tmp_path, flag):
    from lenprof.count.tokenizer import packaged_model_path

    model = tmp_path / "model"
    shutil.copytree(packaged_model_path(), model)
    for tokenizer, target in (
        (model / "tokenizer.json", model / "tokenizer.json"),
        (model, model / "tokenizer_config.json"),
    ):
        before = target.read_bytes()
        result = CliRunner().invoke(
            main, ["scan", str(EXAMPLES / "msmarco.jsonl"), "--tokenizer", str(tokenizer), flag, str(target)]
        )
        assert result.exit_code == 2, result.output
        assert (
            result.stderr == f"Error: {target}: this output would overwrite an input; choose another path\n"
        )
        assert target.read_bytes() == before


@pytest.mark.parametrize("fmt", ["{!r:>99999999999}{}", "{:>5}{}", "{}{!s}", "{0}{0}"])
def test_an_instruction_format_takes_two_plain_fields(fmt):
    result = CliRunner().invoke(
        main, ["scan", str(EXAMPLES), "--query-instruction", "x", "--query-instruction-format", fmt]
    )
    assert result.exit_code == 2 and "Traceback" not in result.output
    assert result.stderr == (
        f"Error: query_instruction_format {fmt!r} must take two plain {{}} fields (no conversion or width): "
        "instruction, then text\n"
    )
