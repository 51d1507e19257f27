"""The fault model: each fault a hostile user found (issue 9) gets a clear error or a reason code,
and no output is ever half-written or harmful. One test (or a few) per numbered fault."""

from __future__ import annotations

import errno
import gzip
import json
import os
import resource
import stat
import subprocess
import sys

import pyarrow.parquet as pq
import pytest
import zstandard
from click.testing import CliRunner
from conftest import EXAMPLES, write_lines

from lenprof import InputError, OutputError, scan
from lenprof.cli import main

GOOD = b'{"query": "what is lenprof", "pos": ["a length profiler"], "neg": ["a bread recipe"]}'


def row(i: int, **extra) -> bytes:
    return json.dumps(
        {"query": f"question {i}", "pos": [f"answer {i}"], "neg": [f"other {i}"], **extra}
    ).encode()


def cli(*args: str, env: dict | None = None):
    return CliRunner().invoke(main, list(args), catch_exceptions=False, env=env)


def lenprof(*args: str, **kw) -> subprocess.CompletedProcess:
    """The real console entry point, in its own process (signals, exit codes, stderr as users see it)."""
    env = {**os.environ, "LENPROF_DEBUG": ""}
    return subprocess.run(
        [sys.executable, "-m", "lenprof", *args], capture_output=True, text=True, env=env, **kw
    )


def one_error_line(proc: subprocess.CompletedProcess) -> str:
    assert "Traceback" not in proc.stderr, proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1, proc.stderr
    return lines[0]


# --- 1. an output never replaces what is not a regular file ------------------------------------------


@pytest.fixture
def data(tmp_path):
    return write_lines(tmp_path / "good.jsonl", [row(i) for i in range(5)])


def test_outputs_that_are_fifos_symlinks_or_folders_are_refused(tok, tmp_path, data):
    fifo = tmp_path / "fifo.json"
    os.mkfifo(fifo)
    target = tmp_path / "precious.txt"
    target.write_text("keep me")
    link = tmp_path / "link.jsonl"
    link.symlink_to(target)
    folder = tmp_path / "folder.jsonl"
    folder.mkdir()
    for kw, what in (
        ({"profile_out": str(fifo)}, "a device, FIFO or socket"),
        ({"clean_out": str(link)}, "a symlink"),
        ({"rejects_out": str(folder)}, "a folder"),
    ):
        with pytest.raises(OutputError, match=f"is {what}, not a regular file"):
            scan(str(data), tokenizer=tok, **kw)
    assert stat.S_ISFIFO(os.lstat(fifo).st_mode) and link.is_symlink() and target.read_text() == "keep me"
    assert folder.is_dir() and not any(folder.iterdir())


@pytest.mark.skipif(os.geteuid() != 0, reason="making a device node needs root")
def test_a_device_node_output_is_refused_before_any_work(tmp_path, data):
    null = tmp_path / "null"
    os.mknod(null, stat.S_IFCHR | 0o666, os.makedev(1, 3))
    proc = lenprof("scan", str(data), "--out", str(null))
    assert proc.returncode == 2 and proc.stdout == ""
    assert (
        one_error_line(proc)
        == f"Error: {null}: is a device, FIFO or socket, not a regular file; lenprof replaces only regular files"
    )
    assert stat.S_ISCHR(os.lstat(null).st_mode)


# --- 3. a truncated or corrupt compressed input is an error, never fewer rows -----------------------


def test_truncated_and_corrupt_zstd_are_exit_2_naming_the_file(tmp_path):
    body = b"\n".join(row(i) for i in range(5000)) + b"\n"
    whole = zstandard.ZstdCompressor().compress(body)
    (tmp_path / "whole.jsonl.zst").write_bytes(whole)
    assert (
        json.loads(cli("scan", str(tmp_path / "whole.jsonl.zst"), "--format", "json", "-q").stdout)[
            "samples"
        ]["read"]
        == 5000
    )
    cut = tmp_path / "cut.jsonl.zst"
    cut.write_bytes(whole[: len(whole) * 2 // 3])
    result = CliRunner().invoke(main, ["scan", str(cut), "--clean-out", str(tmp_path / "c.jsonl")])
    assert result.exit_code == 2 and result.stdout == ""
    assert result.stderr.startswith(
        f"Error: {cut}: truncated zstd data: the stream ends inside a frame after "
    )
    corrupt = tmp_path / "corrupt.jsonl.zst"
    corrupt.write_bytes(whole[:20] + b"\x00" * 64 + whole[84:])
    result = CliRunner().invoke(main, ["scan", str(corrupt)])
    assert result.exit_code == 2 and result.stderr.startswith(f"Error: {corrupt}: corrupt zstd data after ")
    assert not (tmp_path / "c.jsonl").exists()


def test_truncated_gzip_is_exit_2_too(tmp_path):
    gz = tmp_path / "cut.jsonl.gz"
    gz.write_bytes(gzip.compress(b"\n".join(row(i) for i in range(2000)))[:-40])
    result = CliRunner().invoke(main, ["scan", str(gz)])
    assert result.exit_code == 2 and f"Error: {gz}: corrupt or truncated gzip data after " in result.stderr


# --- 4. folders: symlinked subfolders are read, loops end, unreadable entries are errors -------------


def test_folders_follow_symlinked_subfolders_once(tok, tmp_path):
    tree = tmp_path / "tree"
    (tree / "a").mkdir(parents=True)
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    write_lines(tree / "a" / "x.jsonl", [row(i) for i in range(10)])
    write_lines(tree / "y.jsonl", [row(i) for i in range(10, 20)])
    write_lines(elsewhere / "z.jsonl", [row(i) for i in range(20, 30)])
    (tree / "linked").symlink_to(elsewhere)
    (elsewhere / "loop").symlink_to(tree)  # a cycle: tree/linked/loop is tree again
    p = scan(str(tree), tokenizer=tok)
    assert p.samples.read == 30 == scan(str(tree / "**" / "*.jsonl"), tokenizer=tok).samples.read
    assert sorted(os.path.relpath(i.path, tree) for i in p.inputs) == [
        "a/x.jsonl",
        "linked/z.jsonl",
        "y.jsonl",
    ]


def test_unreadable_folders_and_non_regular_files_are_errors(tok, tmp_path, monkeypatch):
    tree = tmp_path / "tree"
    (tree / "locked").mkdir(parents=True)
    write_lines(tree / "ok.jsonl", [row(1)])
    real_scandir = os.scandir

    def scandir(path):
        if str(path).endswith("locked"):
            raise PermissionError(errno.EACCES, "Permission denied")
        return real_scandir(path)

    monkeypatch.setattr(os, "scandir", scandir)
    with pytest.raises(
        InputError, match=f"^{tree / 'locked'}: folder cannot be read \\(Permission denied\\)$"
    ):
        scan(str(tree), tokenizer=tok)
    monkeypatch.undo()
    os.mkfifo(tree / "locked" / "pipe.jsonl")
    with pytest.raises(InputError, match="pipe.jsonl: not a regular file"):
        scan(str(tree), tokenizer=tok)
    zero = tmp_path / "zero.jsonl"
    zero.symlink_to("/dev/zero")
    result = CliRunner().invoke(main, ["scan", str(zero)])
    assert result.exit_code == 2 and result.stderr == (
        f"Error: {zero}: not a regular file (a device, FIFO or socket); lenprof reads files only\n"
    )


# --- 5. no row can make a scan raise -------------------------------------------------------------------


def test_rows_that_used_to_raise_are_dropped_with_a_reason(tok, tmp_path):
    lines = [
        b'{"query": "a", "pos": ["b"], "neg": ["c"], "meta": "\\ud800"}',  # a key lenprof does not check
        b'{"query": "a2", "pos": ["b"], "neg": ["c"], "prompt": "\\udfff x"}',
        b'{"query": "a3", "pos": ["b"], "neg": ["c"], "prompt": 7}',
        b'{"query": "a4", "pos": ["b"], "neg": ["c"], "prompt": null}',  # null: no prompt
        row(5),
    ]
    src = write_lines(tmp_path / "bad.jsonl", lines)
    clean, rejects = tmp_path / "clean.jsonl", tmp_path / "rejects.jsonl"
    result = cli(
        "scan",
        str(src),
        "--query-instruction",
        "q: ",
        "--clean-out",
        str(clean),
        "--rejects",
        str(rejects),
        "-q",
    )
    assert result.exit_code == 0
    got = [(r["line"], r["reason"], r["detail"]) for r in map(json.loads, rejects.read_text().splitlines())]
    assert got == [
        (1, "invalid_utf8", "'meta' holds a lone surrogate escape"),
        (2, "invalid_utf8", "'prompt' holds a lone surrogate escape"),
        (3, "wrong_type", "'prompt' must be a string, got int"),
    ]
    assert [json.loads(x)["query"] for x in clean.read_text().splitlines()] == ["a4", "question 5"]


def test_parquet_clean_output_takes_any_mix_of_values_at_any_shard_size(tok, tmp_path):
    rows = [
        row(1, extra=3, meta={}),
        row(2, extra="three", meta={"a": [1, {"b": None}]}),
        row(3, extra=2**70, score=1.5, flags=[True, False]),
        row(4, score=2, flags=[]),
        row(5, extra=None, ids=[1, 2.5]),
    ]
    src = write_lines(tmp_path / "mixed.jsonl", rows)
    tables = []
    for shard_bytes in (1, 4 << 20):
        out = tmp_path / f"c{shard_bytes}.parquet"
        p = scan(str(src), tokenizer=tok, clean_out=str(out), shard_bytes=shard_bytes)
        assert p.samples.kept == 5
        tables.append(pq.read_table(out))
    assert tables[0].equals(tables[1])
    schema = {f.name: str(f.type) for f in tables[0].schema}
    assert schema == {
        "query": "string", "pos": "list<element: string>", "neg": "list<element: string>",
        "extra": "string", "meta": "string", "score": "double", "flags": "list<element: bool>", "ids": "list<element: double>",
    }  # fmt: skip
    got = tables[0].to_pylist()
    assert [r["extra"] for r in got] == ["3", '"three"', str(2**70), None, None]  # JSON text: nothing lost
    assert [r["meta"] for r in got] == ["{}", '{"a": [1, {"b": null}]}', None, None, None]
    assert [r["score"] for r in got] == [None, None, 1.5, 2.0, None]


def test_non_standard_numbers_and_repeated_keys_are_malformed_json(tok, tmp_path):
    lines = [
        b'{"query": "a", "pos": ["b"], "neg": ["c"], "pos_scores": [NaN]}',
        b'{"query": "a", "pos": ["b"], "neg": ["c"], "s": -Infinity}',
        b'{"query": "a", "pos": ["b"], "neg": ["c"], "s": 1e400}',
        b'{"query": "a", "pos": ["b"], "neg": ["c"], "query": "d"}',
        b'{"query": "a", "pos": ["b"], "neg": ["c"], "s": 1e300}',
    ]
    src = write_lines(tmp_path / "n.jsonl", lines)
    rejects = tmp_path / "r.jsonl"
    p = scan(str(src), tokenizer=tok, rejects_out=str(rejects))
    details = [json.loads(x)["detail"] for x in rejects.read_text().splitlines()]
    assert details == [
        "NaN is not standard JSON (RFC 8259): many readers refuse it, and a NaN score poisons training",
        "-Infinity is not standard JSON (RFC 8259): many readers refuse it, and a NaN score poisons training",
        "the number 1e400 is out of range for a 64-bit float (it would be written back as Infinity)",
        "the key 'query' appears twice (readers disagree on which value counts)",
    ]
    assert p.samples.dropped == {"malformed_json": 4} and p.samples.kept == 1


# --- 6. one endless line never takes the machine's memory ---------------------------------------------


def peak_rss_mib(args: list[str]) -> tuple[subprocess.CompletedProcess, float]:
    """Run lenprof in a fresh child and return its result and its peak RSS."""
    code = (
        "import resource, subprocess, sys\n"
        "p = subprocess.run(sys.argv[1:], capture_output=True, text=True)\n"
        "print(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024)\n"
        "print(p.returncode); print(p.stdout, end='')\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code, sys.executable, "-m", "lenprof", *args],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.split("\n", 2)
    return subprocess.CompletedProcess(args, int(out[1]), out[2], ""), float(out[0])


@pytest.mark.slow
def test_endless_lines_are_dropped_in_bounded_memory(tmp_path):
    endless = tmp_path / "endless.jsonl.gz"
    with gzip.open(endless, "wb", compresslevel=9) as fh:
        fh.write(GOOD + b"\n")
        block = b"x" * (1 << 20)
        for _ in range(2048):  # a 2 GiB line in a ~2 MB file
            fh.write(block)
    assert endless.stat().st_size < 4 << 20
    big = tmp_path / "big.jsonl"
    with open(big, "wb") as fh:
        fh.write(
            GOOD
            + b"\n"
            + b'{"query": "'
            + b"y" * (100 << 20)
            + b'"}\n'
            + GOOD.replace(b"what", b"who")
            + b"\n"
        )
    for path, read in ((endless, 2), (big, 3)):
        proc, rss = peak_rss_mib(["scan", str(path), "--format", "json", "-q"])
        assert proc.returncode == 0, proc
        d = json.loads(proc.stdout)
        assert (d["samples"]["read"], d["samples"]["dropped"]) == (read, {"line_too_long": 1})
        assert rss < 1024, f"{path.name}: peak RSS {rss:.0f} MiB"
    rejects = tmp_path / "r.jsonl"
    cli("scan", str(big), "--rejects", str(rejects), "-q")
    (reject,) = map(json.loads, rejects.read_text().splitlines())
    assert (reject["line"], reject["reason"], reject["raw_truncated_from"]) == (
        2,
        "line_too_long",
        (100 << 20) + 13,
    )
    assert reject["raw"] == '{"query": "' + "y" * 4085 and reject["detail"].startswith(
        "104,857,613 bytes, over --max-line-bytes"
    )


# --- 7. write errors: exit 2, one line naming the path, every old output intact ------------------------


def test_a_file_size_limit_is_exit_2_and_keeps_every_old_output(tmp_path):
    src = write_lines(tmp_path / "many.jsonl", [row(i) for i in range(3000)])  # ~300 KB of clean rows
    outs = {
        "--clean-out": tmp_path / "clean.jsonl",
        "--rejects": tmp_path / "rejects.jsonl",
        "--out": tmp_path / "p.json",
    }
    for path in outs.values():
        path.write_text("old\n")

    def limit() -> None:
        resource.setrlimit(resource.RLIMIT_FSIZE, (100_000, 100_000))

    args = [a for flag, path in outs.items() for a in (flag, str(path))]
    proc = lenprof("scan", str(src), *args, preexec_fn=limit)
    assert proc.returncode == 2
    assert one_error_line(proc) == (
        f"Error: {outs['--clean-out']}: cannot write (the file is larger than this process may write "
        "(ulimit -f)); no output of this run was changed"
    )
    assert all(path.read_text() == "old\n" for path in outs.values())
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        "clean.jsonl",
        "many.jsonl",
        "p.json",
        "rejects.jsonl",
    ]


@pytest.mark.parametrize("code", [errno.ENOSPC, errno.EROFS, errno.EACCES])
def test_write_errors_name_the_path(tmp_path, data, monkeypatch, code):
    import lenprof.io.sinks as outputs

    clean, profile = tmp_path / "clean.jsonl", tmp_path / "profile.json"
    profile.write_text("old")

    def failing_write(self, lines):
        raise outputs.write_failed(self.target, OSError(code, os.strerror(code)))

    monkeypatch.setattr(outputs.RowSink, "write", failing_write)
    result = CliRunner().invoke(main, ["scan", str(data), "--clean-out", str(clean), "--out", str(profile)])
    assert result.exit_code == 2 and result.stderr.startswith(f"Error: {clean}: cannot write (")
    assert result.stderr.endswith("); no output of this run was changed\n")
    assert profile.read_text() == "old" and not clean.exists()
    assert [p.name for p in tmp_path.iterdir() if ".lenprof-" in p.name] == []


def test_an_unwritable_folder_is_refused_before_the_scan(tmp_path, data, monkeypatch):
    import tempfile

    def read_only(*args, **kwargs):
        raise OSError(errno.EROFS, "Read-only file system")

    monkeypatch.setattr(tempfile, "mkstemp", read_only)
    result = CliRunner().invoke(main, ["scan", str(data), "--out", str(tmp_path / "ro" / "p.json")])
    assert result.exit_code == 2
    assert (
        result.stderr
        == f"Error: {tmp_path / 'ro'}: cannot write (the file system is read-only); no output of this run was changed\n"
    )


# --- 8. duplicate-row keys cannot collide ----------------------------------------------------------------


def test_duplicate_detection_keys_are_unambiguous(tok, tmp_path):
    src = write_lines(
        tmp_path / "d.jsonl",
        [
            b'{"query": "zeta", "pos": ["eta\\u001etheta"], "neg": ["n"]}',
            b'{"query": "zeta", "pos": ["eta", "theta"], "neg": ["n"]}',
            b'{"query": "zeta", "pos": ["theta", " eta "], "neg": ["m"]}',  # the same as line 2
        ],
    )
    p = scan(str(src), tokenizer=tok)
    assert p.samples.kept == 2 and p.samples.dropped == {"duplicate_row": 1}
    assert p.examples["duplicate_row"][0].line == 3


# --- 9. an output can never be a bucket file --------------------------------------------------------------


def test_outputs_may_not_collide_with_length_buckets(tmp_path, data):
    split = tmp_path / "sp"
    result = cli(
        "scan",
        str(data),
        "--out",
        str(split / "good_len-0-inf.jsonl"),
        "--split-by-length",
        "0",
        "--split-dir",
        str(split),
    )
    assert (
        result.exit_code == 2
        and result.stderr == f"Error: {split / 'good_len-0-inf.jsonl'}: two outputs name the same file\n"
    )
    assert not split.exists() or not any(split.iterdir())


# --- 10. diagnose, recommend and train --profile check what they read ---------------------------------

BAD_STATES = [
    "[]",
    "5",
    '"text"',
    "{}",
    '{"log_history": 5}',
    '{"log_history": "steps"}',
    '{"log_history": {"loss": 1}}',
    '{"log_history": [5]}',
    '{"log_history": [null]}',
    '{"log_history": [["loss", 1]]}',
    '{"log_history": [{"loss": 1.0}]}',
    '{"log_history": [{"loss": 1.0, "step": null}]}',
    '{"log_history": [{"loss": 1.0, "step": "3"}]}',
    '{"log_history": [{"loss": 1.0, "step": 1.5}]}',
    '{"log_history": [{"loss": 1.0, "step": true}]}',
    '{"log_history": [{"loss": [1.0], "step": 1}]}',
    '{"log_history": [{"loss": {"v": 1}, "step": 1}]}',
    '{"log_history": [{"loss": "one", "step": 1}]}',
    '{"log_history": [{"loss": 1.0, "step": 1, "grad_norm": "big"}]}',
    '{"log_history": [{"loss": 1.0, "step": 1, "grad_norm": [0.1]}]}',
    '{"log_history": [{"loss": 1.0, "step": 1, "learning_rate": {}}]}',
    '{"log_history": [{"loss": 1e999999, "step": 1, "learning_rate": "x"}]}',
    '{"log_history": [{"loss": true, "step": 1}]}',
    "{not json",
]


@pytest.mark.parametrize("text", BAD_STATES)
def test_diagnose_refuses_a_damaged_trainer_state_in_one_line(tmp_path, text):
    path = tmp_path / "trainer_state.json"
    path.write_text(text)
    result = CliRunner().invoke(main, ["diagnose", str(path)])
    assert result.exception is None or isinstance(result.exception, SystemExit)
    assert result.exit_code == 2 and result.stdout == ""
    assert result.stderr.startswith(f"Error: {path}: ") and result.stderr.count("\n") == 1


def test_diagnose_reads_a_metrics_file_cut_mid_line_and_names_a_bad_line(tmp_path):
    rows = [json.dumps({"step": i, "loss": 2.0 / i, "grad_norm": 1.0, "lr": 1e-5}) for i in range(1, 7)]
    cut = tmp_path / "cut" / "metrics.jsonl"
    cut.parent.mkdir()
    cut.write_text("\n".join(rows) + "\n" + rows[0][:12])  # a run killed while writing
    result = cli("diagnose", str(cut))
    assert result.exit_code == 0 and "6 logged steps (steps 1-6)" in result.stdout
    assert result.stderr == f"lenprof: {cut}: line 7 is cut short and was left out\n"
    bad = tmp_path / "bad" / "metrics.jsonl"
    bad.parent.mkdir()
    bad.write_text("\n".join(rows[:3] + ["{oops", *rows[3:]]) + "\n")
    result = CliRunner().invoke(main, ["diagnose", str(bad)])
    assert result.exit_code == 2 and result.stderr.startswith(f"Error: {bad}: line 4 is not JSON (")


@pytest.fixture(scope="module")
def saved_profile(tmp_path_factory):
    path = tmp_path_factory.mktemp("profile") / "p.json"
    assert cli("scan", str(EXAMPLES), "--out", str(path), "-q").exit_code == 0
    return json.loads(path.read_text())


@pytest.mark.parametrize(
    "damage, message",
    [
        (
            lambda d: d["fields"]["query"]["histogram"].update(lengths=[10**12], counts=[1]),
            "must be a whole number from 0 to 16777216, got 1000000000000",
        ),
        (
            lambda d: d["fields"]["passage"]["histogram"].update(
                counts=[-1] * len(d["fields"]["passage"]["histogram"]["counts"])
            ),
            "fields.passage.histogram counts must be a whole number",
        ),
        (
            lambda d: d["fields"]["neg"]["histogram"].update(counts=[1]),
            "fields.neg.histogram needs two lists of one length",
        ),
        (lambda d: d["fields"].pop("pos"), "missing key 'pos'"),
        (lambda d: d["samples"].update(read="24"), "samples.read must be a whole number"),
        (lambda d: d["recommendation"].update(cap=-5), "recommendation.cap must be a whole number"),
        (lambda d: d.update(fields=[]), "damaged profile"),
    ],
)
def test_recommend_refuses_a_damaged_profile(tmp_path, saved_profile, damage, message):
    d = json.loads(json.dumps(saved_profile))
    damage(d)
    path = tmp_path / "p.json"
    path.write_text(json.dumps(d))
    result = CliRunner().invoke(main, ["recommend", str(path), "--format", "args"])
    assert result.exception is None or isinstance(result.exception, SystemExit)
    assert result.exit_code == 2 and result.stdout == ""
    assert result.stderr.startswith(f"Error: {path}: ") and message in result.stderr


def test_train_checks_its_profile_before_scanning(tmp_path):
    bad = tmp_path / "bad.json"
    bad.write_text('{"schema": "lenprof.profile/1", "fields": 3}')
    out = tmp_path / "run"
    result = CliRunner().invoke(
        main, ["train", str(EXAMPLES / "msmarco.jsonl"), "--output-dir", str(out), "--profile", str(bad)]
    )
    assert result.exit_code == 2 and result.stderr.startswith(f"Error: {bad}: damaged profile")
    assert not out.exists()  # nothing was scanned or written


# --- 11. output paths are per run; Ray stays quiet -----------------------------------------------------


def test_output_paths_never_come_from_the_environment(tmp_path, data, monkeypatch):
    for var in ("LENPROF_CLEAN_OUT", "LENPROF_REJECTS", "LENPROF_REPORT", "LENPROF_OUT", "LENPROF_SPLIT_DIR"):
        monkeypatch.setenv(var, str(tmp_path / var.lower()))
    result = cli("scan", str(data), "--format", "args", "-q")
    assert result.exit_code == 0 and sorted(p.name for p in tmp_path.iterdir()) == ["good.jsonl"]
