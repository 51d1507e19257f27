"""Shell completion (issue 22, point 9): the commands docs/index.md and the README give write each
shell's script, and the bash one, loaded as documented, completes lenprof's commands and options."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import REPO

DOCS = (REPO / "docs" / "index.md").read_text(encoding="utf-8")
README = (REPO / "README.md").read_text(encoding="utf-8")
ONCE = dict(re.findall(r"^\| (\w+) \| `([^`]+)` \|", DOCS, flags=re.M))  # shell -> the command run once
SCRIPT = {  # a line each shell's script holds
    "bash": "complete -o nosort -F _lenprof_completion lenprof",
    "zsh": "#compdef lenprof",
    "fish": "complete --no-files --command lenprof",
}


@pytest.fixture
def shell_env(tmp_path: Path) -> dict[str, str]:
    """A HOME of its own, and `lenprof` on PATH as the console script runs it (this checkout's)."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    shim = bin_dir / "lenprof"
    code = "import sys; sys.argv[0] = 'lenprof'; from lenprof.cli import entry; entry()"
    shim.write_text(f'#!/bin/sh\nexec "{sys.executable}" -c "{code}" "$@"\n')
    shim.chmod(0o755)
    return {**os.environ, "HOME": str(tmp_path), "PATH": f"{bin_dir}{os.pathsep}{os.environ['PATH']}"}


def bash(command: str, env: dict[str, str]) -> str:
    done = subprocess.run(["bash", "-c", command], env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    return done.stdout


def test_the_documented_commands_write_each_shells_script(shell_env, tmp_path):
    assert sorted(ONCE) == ["bash", "fish", "zsh"]
    assert f"`{ONCE['bash']}`" in README
    for shell, once in ONCE.items():
        bash(once, shell_env)  # each is also a POSIX shell line
        written = Path(re.search(r"> (\S+)$", once).group(1).replace("~", str(tmp_path), 1))
        assert SCRIPT[shell] in written.read_text(), shell


@pytest.mark.skipif(shutil.which("bash") is None, reason="no bash here")
def test_bash_loaded_as_documented_completes_commands_and_options(shell_env):
    load = re.search(r"\| `(\. ~/\.lenprof-complete\.bash)` in `~/\.bashrc` \|", DOCS).group(1)
    complete = "; ".join(
        [
            ONCE["bash"],
            load,
            "complete -p lenprof",
            "COMP_WORDS=(lenprof sc); COMP_CWORD=1; _lenprof_completion lenprof",
            'echo "${COMPREPLY[@]}"',
            "COMPREPLY=(); COMP_WORDS=(lenprof scan --tokeni); COMP_CWORD=2; _lenprof_completion lenprof",
            'echo "${COMPREPLY[@]}"',
        ]
    )
    assert bash(complete, shell_env).splitlines() == [
        "complete -o nosort -F _lenprof_completion lenprof",
        "scan",
        "--tokenizer",
    ]
    evaluated = 'eval "$(_LENPROF_COMPLETE=bash_source lenprof)"'
    assert f"`{evaluated}`" in DOCS
    assert bash(f"{evaluated}; complete -p lenprof", shell_env) == SCRIPT["bash"] + "\n"
