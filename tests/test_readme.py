"""The README stays true: its sample output, every lenprof command and its Python example are run.

Commands run from a scratch folder holding a copy of examples/ and docs/layouts/, in README order, with the
packaged tokenizer standing in for hub ids (no hub here). Commands for a Ray cluster
(--address) are the only ones skipped.
"""

from __future__ import annotations

import contextlib
import io
import re
import shlex
import shutil

import pytest
from click.testing import CliRunner
from conftest import EXAMPLES, REPO

from lenprof.cli import main

README = (REPO / "README.md").read_text(encoding="utf-8")
BLOCKS = re.findall(r"```(\w*)\n(.*?)```", README, flags=re.S)


def lenprof_commands() -> list[str]:
    commands = []
    for lang, body in BLOCKS:
        if lang != "bash":
            continue
        for line in body.replace("\\\n", " ").splitlines():
            line = line.split(" #")[0].strip()
            found = re.findall(r"\$\((lenprof [^)]*)\)", line) or (
                [line] if line.startswith("lenprof ") else []
            )
            commands += [c for c in found if "--address" not in c]
    return commands


@pytest.fixture
def scratch(tmp_path, monkeypatch):
    shutil.copytree(EXAMPLES, tmp_path / "examples")
    shutil.copytree(REPO / "docs" / "layouts", tmp_path / "docs" / "layouts")
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("LENPROF_TOKENIZER", raising=False)
    return tmp_path


def test_quick_start_output_is_what_make_demo_prints(scratch):
    demo = re.search(r"`make demo` runs `(lenprof scan [^`]*)`", README).group(1)
    makefile = (REPO / "Makefile").read_text()
    assert demo.replace("lenprof", "$(BIN)/lenprof", 1) in makefile
    shown = re.search(r"`make demo` runs .*?```\n(.*?)```", README, flags=re.S).group(1)
    result = CliRunner().invoke(main, shlex.split(demo)[1:], catch_exceptions=False)
    assert result.exit_code == 0
    assert result.stdout == shown


def test_every_readme_command_runs(scratch):
    commands = lenprof_commands()
    assert len(commands) >= 6  # scan, $(scan), split, scan --out, 2 x recommend
    for command in commands:
        result = CliRunner().invoke(main, shlex.split(command)[1:], catch_exceptions=False)
        assert result.exit_code == 0, (command, result.stderr)


def test_python_example_prints_what_its_comments_say(scratch):
    (code,) = [body for lang, body in BLOCKS if lang == "python"]
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        exec(compile(code, "README.md", "exec"), {})
    expected = [m.strip() for m in re.findall(r"print\(.*\)\s+# (.*)", code)]
    assert out.getvalue().splitlines() == expected
    assert (scratch / "clean.jsonl").exists() and (scratch / "rejects.jsonl").exists()
