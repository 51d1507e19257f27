"""A tokenizer whose Rust code panics on a text: one line, exit 2, nothing written, never a
traceback, in process and from worker processes alike.

tokenizers raises ``pyo3_runtime.PanicException``, a BaseException, so ``except Exception`` misses
it. Rust's panic hook prints its own message to fd 2 before Python hears of the panic; nothing in
Python can stop that, so the subprocess test asserts lenprof's line is the last and only line of
its own, with no Python traceback and no Rust backtrace (RUST_BACKTRACE=0).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner
from test_fastcount import byte_level
from tokenizers import AddedToken

from lenprof.cli import main
from lenprof.count.exact import count_tokens
from lenprof.count.fast.counter import FastCounter
from lenprof.errors import InputError

# tokenizers 0.22 panics ("AddedVocabulary bad split") on this text with the added tokens below.
PANICS = "\u200b__ö \xad\n\u3000\xa0' \xadK["
MESSAGE = (
    f"Error: the tokenizer failed on the text {PANICS!r} (tokenizers panicked: AddedVocabulary bad split); "
    "it is a bug in that tokenizer: scan with --exact-only will not help, fix or replace the tokenizer\n"
)


def panicking():
    tok = byte_level(True)
    tok.add_tokens([AddedToken("\xad", lstrip=True, rstrip=True, normalized=False)])
    tok.add_special_tokens(
        [
            AddedToken("😀", normalized=False, special=True),
            AddedToken("\u3000", lstrip=True, normalized=False, special=True),
        ]
    )
    return tok


@pytest.fixture(scope="module")
def setup(tmp_path_factory) -> tuple[Path, Path]:
    root = tmp_path_factory.mktemp("panics")
    tokenizer = root / "tokenizer.json"
    panicking().save(str(tokenizer))
    corpus = root / "train.jsonl"
    rows = [{"query": "ok", "pos": ["p"], "neg": ["n"]}, {"query": PANICS, "pos": ["p"], "neg": ["n"]}]
    corpus.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    return tokenizer, corpus


def test_the_tokenizer_really_panics():
    with pytest.raises(BaseException) as caught:
        panicking().encode(PANICS)
    assert type(caught.value).__name__ == "PanicException"
    assert not isinstance(caught.value, Exception)


@pytest.mark.parametrize(
    "count", [lambda tok, texts: count_tokens(tok, texts), lambda tok, texts: FastCounter(tok).count(texts)]
)
def test_counting_names_the_text_that_panics(count):
    texts = ["fine", "also fine", PANICS, "after"]
    with pytest.raises(InputError) as caught:
        count(panicking(), texts)
    assert str(caught.value) == MESSAGE.removeprefix("Error: ").rstrip("\n")


def test_the_chunk_path_names_the_chunks_that_panic():
    counter = FastCounter(panicking())
    with pytest.raises(InputError, match=r"^the tokenizer failed on the text .*AddedVocabulary bad split"):
        counter._tokenized_chunks(["fine", PANICS])


@pytest.mark.parametrize("extra", [[], ["--exact-only"]])
def test_scan_in_process_is_one_line_exit_2(setup, tmp_path, extra):
    tokenizer, corpus = setup
    outs = ["--out", str(tmp_path / "p.json"), "--clean-out", str(tmp_path / "c.jsonl")]
    result = CliRunner().invoke(main, ["scan", str(corpus), "--tokenizer", str(tokenizer), *outs, *extra])
    assert (result.exit_code, result.stdout, result.stderr) == (2, "", MESSAGE)
    assert list(tmp_path.iterdir()) == []


def test_scan_with_workers_is_one_line_exit_2(setup, tmp_path):
    tokenizer, corpus = setup
    env = {**os.environ, "RUST_BACKTRACE": "0", "HF_HUB_OFFLINE": "1"}
    outs = ["--out", str(tmp_path / "p.json"), "--clean-out", str(tmp_path / "c.jsonl")]
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "lenprof",
            "scan",
            str(corpus),
            "--tokenizer",
            str(tokenizer),
            "--workers",
            "2",
            *outs,
        ],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
    )
    assert (proc.returncode, proc.stdout) == (2, "")
    lines = proc.stderr.splitlines(keepends=True)
    ours = [line for line in lines if "lenprof" in line or line.startswith("Error")]
    assert ours == [MESSAGE] and lines[-1] == MESSAGE
    # what precedes it is Rust's own panic message (printed before Python hears of the panic), once
    assert "Traceback" not in proc.stderr and "stack backtrace" not in proc.stderr
    assert proc.stderr.count("panicked at") <= 1 and "out of memory" not in proc.stderr
    assert list(tmp_path.iterdir()) == []
