"""The README and the docs/ pages stay true: every lenprof command in them runs, every Python
example prints what its comments say, and every error line shown is the one lenprof prints.

Each page's commands run in page order from a scratch folder holding a copy of examples/ and
docs/layouts/ (a later command may read what an earlier one wrote), with the packaged tokenizer
standing in for hub ids (no hub here). Commands for a Ray cluster (--address) are the only ones
skipped. A ```python block runs; the sentence-transformers example is a ```py block, which
tests/test_integrations.py runs. The README's sample outputs are checked in tests/test_readme.py.
"""

from __future__ import annotations

import contextlib
import io
import re
import shlex
from pathlib import Path

import pytest
from click.testing import CliRunner, Result
from conftest import REPO

from lenprof.cli import main

PAGES = [REPO / "README.md", *sorted((REPO / "docs").glob("*.md"))]


def fenced_blocks(text: str) -> list[tuple[str, str]]:
    """(language, body) of every fenced block of a Markdown text, in order."""
    return re.findall(r"```(\w*)\n(.*?)```", text, flags=re.S)


def lenprof_commands(text: str) -> list[str]:
    """The lenprof commands of a Markdown text's bash blocks: each line that starts with one (a
    trailing backslash joins the next line), and each `$(lenprof ...)` inside another command."""
    commands = []
    for lang, body in fenced_blocks(text):
        if lang != "bash":
            continue
        for line in body.replace("\\\n", " ").splitlines():
            line = line.split(" #")[0].strip()
            found = re.findall(r"\$\((lenprof [^)]*)\)", line) or (
                [line] if line.startswith("lenprof ") else []
            )
            commands += [c for c in found if "--address" not in c]
    return commands


def run_lenprof(command: str) -> Result:
    """A page's command as a user runs it, but for a hub model (there is no hub here): the
    packaged one, a real model of the same kind, in its place."""
    args = shlex.split(command)[1:]
    if "--model" in args:
        from lenprof.count.tokenizer import packaged_model_weights

        args[args.index("--model") + 1] = str(packaged_model_weights())
    return CliRunner().invoke(main, args, catch_exceptions=False)


def page_id(page: Path) -> str:
    return page.relative_to(REPO).as_posix()


TEXTS = {page: page.read_text(encoding="utf-8") for page in PAGES}
COMMANDS = {page: lenprof_commands(text) for page, text in TEXTS.items()}
PYTHON = [
    (page, body) for page, text in TEXTS.items() for lang, body in fenced_blocks(text) if lang == "python"
]
ERRORS = [  # lines shown in plain blocks as what lenprof prints for an input it refuses
    line
    for text in TEXTS.values()
    for lang, body in fenced_blocks(text)
    if not lang
    for line in body.splitlines()
    if line.startswith("Error: ")
]


def test_the_pages_hold_their_examples():
    """A parser that stops finding commands must not pass as 'every command runs'."""
    found = {page_id(page): len(commands) for page, commands in COMMANDS.items() if commands}
    assert found["README.md"] >= 4  # scan, $(scan), train, diagnose
    assert {"docs/inputs.md", "docs/recommend.md", "docs/training.md", "docs/buckets.md"} <= set(found)
    assert sum(found.values()) >= 14
    assert [page_id(page) for page, _ in PYTHON] == ["docs/api.md"]
    assert len(ERRORS) == 3


@pytest.mark.parametrize("page", [p for p in PAGES if COMMANDS[p]], ids=page_id)
def test_every_command_runs(page, scratch):
    for command in COMMANDS[page]:
        result = run_lenprof(command)
        assert result.exit_code == 0, (command, result.stderr)


@pytest.mark.parametrize("page, code", PYTHON, ids=[page_id(page) for page, _ in PYTHON])
def test_python_example_prints_what_its_comments_say(page, code, scratch):
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        exec(compile(code, page.name, "exec"), {})
    expected = [m.strip() for m in re.findall(r"print\(.*\)\s+# (.*)", code)]
    assert expected and out.getvalue().splitlines() == expected
    for written in re.findall(r'\w+_out="([^"]+)"', code):  # clean_out="clean.jsonl", ...
        assert (scratch / written).exists(), written


@pytest.mark.parametrize("line", ERRORS)
def test_error_lines_are_what_a_scan_of_that_input_prints(line, scratch):
    path = line.removeprefix("Error: ").split(": ")[0]
    result = run_lenprof(f"lenprof scan {path} --format args")
    assert (result.exit_code, result.stdout, result.stderr) == (2, "", line + "\n")
